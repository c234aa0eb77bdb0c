//! Pictures of a stack, for a person checking it before training: a grid of
//! daily RGB tiles (2–98 % stretch, NaN grey, mask outlined in red, titles
//! with date, cloud % and NaN %) and a time series of cloud and NaN %.
//! Text uses a bundled 8×8 bitmap font: no system font lookups.
//!
//! May import: [`crate::error`], [`crate::stack`] (the stack it draws).

use chrono::NaiveDate;
use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::stack::TileStack;

/// What [`plot_days`] draws.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Bands shown as red, green, blue. Default `B04, B03, B02`.
    pub rgb: [String; 3],
    /// First day shown (default: the stack's first).
    pub start: Option<NaiveDate>,
    /// At most this many days (default: all).
    pub days: Option<usize>,
    /// Tiles per row. Default 6.
    pub cols: usize,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            rgb: ["B04".into(), "B03".into(), "B02".into()],
            start: None,
            days: None,
            cols: 6,
        }
    }
}

const NAN_GREY: Rgb<u8> = Rgb([150, 150, 150]);
const RED: Rgb<u8> = Rgb([230, 20, 20]);
const TITLE_H: u32 = 24;
const PAD: u32 = 6;

/// Draws `text` with the bundled 8×8 font at `(x, y)`, clipped to `max_x`.
fn text(img: &mut RgbImage, x: u32, y: u32, s: &str, color: Rgb<u8>, max_x: u32) {
    for (k, ch) in s.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY
            .get(ch as usize)
            .copied()
            .unwrap_or([0; 8]);
        let gx = x + 8 * k as u32;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                let (px, py) = (gx + col, y + row as u32);
                if bits & (1 << col) != 0 && px < max_x.min(img.width()) && py < img.height() {
                    img.put_pixel(px, py, color);
                }
            }
        }
    }
}

/// 2nd and 98th percentiles of the finite values.
fn percentiles(vals: &mut Vec<f32>) -> Option<(f32, f32)> {
    vals.retain(|v| v.is_finite());
    if vals.is_empty() {
        return None;
    }
    vals.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| vals[((vals.len() - 1) as f64 * q).round() as usize];
    Some((at(0.02), at(0.98)))
}

fn band_index(stack: &TileStack, name: &str) -> Result<usize> {
    stack.bands.iter().position(|b| b == name).ok_or_else(|| {
        Error::invalid(
            "plot bands",
            format!(
                "stack has no band {name:?} (it has: {})",
                stack.bands.join(", ")
            ),
        )
    })
}

/// The daily tiles as one picture.
///
/// # Errors
/// [`Error::Invalid`] when an RGB band is missing or no day is selected.
///
/// # Examples
/// ```
/// use tilestack::plot::{PlotOptions, plot_days};
/// # use tilestack::geo::{GeoTransform, GridSpec};
/// # use tilestack::{Epsg, TileStack};
/// # let stack = TileStack { data: ndarray::Array4::from_elem((2, 3, 8, 8), 100.0), bands: vec!["B04".into(), "B03".into(), "B02".into()],
/// #   days: vec![chrono::NaiveDate::from_ymd_opt(2019, 8, 1).unwrap(), chrono::NaiveDate::from_ymd_opt(2019, 8, 2).unwrap()],
/// #   eo_cloud_cover: vec![0.0, f32::NAN], pct_nans: vec![0.0, 100.0], tile_cloud_fraction: vec![f32::NAN; 2], items: vec![vec![], vec![]],
/// #   grid: GridSpec { epsg: Epsg::new(32610).unwrap(), transform: GeoTransform::north_up(0.0, 80.0, 10.0), width: 8, height: 8 },
/// #   read_errors: vec![] };
/// let img = plot_days(&stack, &PlotOptions::default()).unwrap();
/// assert!(img.width() > 16 && img.height() > 16);
/// ```
pub fn plot_days(stack: &TileStack, opts: &PlotOptions) -> Result<RgbImage> {
    if stack.is_empty() {
        return Err(Error::invalid(
            "plot",
            "the stack has no time step (its time range holds no day): nothing to draw",
        ));
    }
    let idx = [
        band_index(stack, &opts.rgb[0])?,
        band_index(stack, &opts.rgb[1])?,
        band_index(stack, &opts.rgb[2])?,
    ];
    let mask = stack.bands.iter().position(|b| b == "mask");
    let first = match opts.start {
        Some(d) => stack.days.iter().position(|&x| x >= d).ok_or_else(|| {
            Error::invalid("plot start", format!("{d} is after the stack's last day"))
        })?,
        None => 0,
    };
    let n = opts
        .days
        .unwrap_or(usize::MAX)
        .min(stack.len().saturating_sub(first));
    if n == 0 {
        return Err(Error::invalid("plot days", "no day selected"));
    }
    let days: Vec<usize> = (first..first + n).collect();
    let (_, _, h, w) = stack.data.dim();
    // downscale big tiles to at most 256 px per side
    let step = h.max(w).div_ceil(256).max(1);
    let (th, tw) = (h.div_ceil(step) as u32, w.div_ceil(step) as u32);
    let cols = opts.cols.clamp(1, n) as u32;
    let rows = n.div_ceil(cols as usize) as u32;
    let (cw, ch) = (tw + PAD, th + TITLE_H + PAD);
    let mut img = RgbImage::from_pixel(cols * cw + PAD, rows * ch + PAD, Rgb([255, 255, 255]));
    for (k, &t) in days.iter().enumerate() {
        let (ox, oy) = (PAD + (k as u32 % cols) * cw, PAD + (k as u32 / cols) * ch);
        let title = format!("{} ({})", stack.days[t], stack.items[t].len());
        text(&mut img, ox, oy + 2, &title, Rgb([0, 0, 0]), ox + tw);
        let pct = |v: f32| {
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:.0}%")
            }
        };
        let mut sub = format!(
            "cloud {} nan {}",
            pct(stack.eo_cloud_cover[t]),
            pct(stack.pct_nans[t])
        );
        if stack.tile_cloud_fraction[t].is_finite() {
            sub = format!(
                "cld {}/{} nan {}",
                pct(stack.eo_cloud_cover[t]),
                pct(100.0 * stack.tile_cloud_fraction[t]),
                pct(stack.pct_nans[t])
            );
        }
        text(&mut img, ox, oy + 12, &sub, Rgb([60, 60, 60]), ox + tw);
        let top = oy + TITLE_H - 2;
        // per-tile, per-band 2–98 % stretch over the finite pixels
        let stretch: Vec<Option<(f32, f32)>> = idx
            .iter()
            .map(|&b| {
                let mut v: Vec<f32> = stack
                    .data
                    .slice(ndarray::s![t, b, .., ..])
                    .iter()
                    .copied()
                    .collect();
                percentiles(&mut v)
            })
            .collect();
        for y in 0..th as usize {
            for x in 0..tw as usize {
                let (r, c) = (y * step, x * step);
                let vals = idx.map(|b| stack.data[[t, b, r, c]]);
                let px = if vals.iter().any(|v| v.is_nan()) {
                    NAN_GREY
                } else {
                    let mut p = [0u8; 3];
                    for ch in 0..3 {
                        p[ch] = match stretch[ch] {
                            Some((lo, hi)) if hi > lo => {
                                (((vals[ch] - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0) as u8
                            }
                            _ => 128,
                        };
                    }
                    Rgb(p)
                };
                img.put_pixel(ox + x as u32, top + y as u32, px);
            }
        }
        if let Some(m) = mask {
            // contour at 0.5: inside pixels with an outside 4-neighbour (or the tile edge)
            let inside = |r: isize, c: isize| {
                r >= 0
                    && c >= 0
                    && (r as usize) < h
                    && (c as usize) < w
                    && stack.data[[t, m, r as usize, c as usize]] >= 0.5
            };
            for r in 0..h as isize {
                for c in 0..w as isize {
                    if inside(r, c)
                        && !(inside(r - 1, c)
                            && inside(r + 1, c)
                            && inside(r, c - 1)
                            && inside(r, c + 1))
                    {
                        let (y, x) = ((r as usize / step) as u32, (c as usize / step) as u32);
                        img.put_pixel(ox + x, top + y, RED);
                    }
                }
            }
        }
    }
    Ok(img)
}

/// Cloud % (scene-level, and the tile's own when known) and NaN % per day.
///
/// # Errors
/// [`Error::Invalid`] for an empty stack.
pub fn plot_timeseries(stack: &TileStack) -> Result<RgbImage> {
    let n = stack.len();
    if n == 0 {
        return Err(Error::invalid("plot", "the stack has no time step"));
    }
    let (left, top, ph) = (40u32, 30u32, 200u32);
    let dx = 14u32;
    let width = left + dx * n as u32 + 20;
    let mut img = RgbImage::from_pixel(width.max(420), top + ph + 40, Rgb([255, 255, 255]));
    let y_of = |v: f32| top + ph - ((v.clamp(0.0, 100.0) / 100.0) * ph as f32) as u32;
    for v in [0.0f32, 50.0, 100.0] {
        let y = y_of(v);
        for x in left..left + dx * n as u32 {
            img.put_pixel(x, y, Rgb([210, 210, 210]));
        }
        text(
            &mut img,
            4,
            y.saturating_sub(4),
            &format!("{v:>3.0}"),
            Rgb([0, 0, 0]),
            left,
        );
    }
    let blue = Rgb([30, 90, 220]);
    let orange = Rgb([240, 140, 0]);
    for t in 0..n {
        let x0 = left + dx * t as u32;
        let p = stack.pct_nans[t];
        if p.is_finite() {
            for y in y_of(p)..=top + ph {
                for x in x0 + 2..x0 + dx - 2 {
                    img.put_pixel(x, y, Rgb([185, 185, 185]));
                }
            }
        }
        for (v, c) in [
            (stack.eo_cloud_cover[t], blue),
            (100.0 * stack.tile_cloud_fraction[t], orange),
        ] {
            if v.is_finite() {
                let y = y_of(v);
                for yy in y.saturating_sub(2)..=(y + 2).min(top + ph) {
                    for xx in x0 + dx / 2 - 2..=x0 + dx / 2 + 2 {
                        img.put_pixel(xx, yy, c);
                    }
                }
            }
        }
        if t % 5 == 0 {
            let label = stack.days[t].format("%m-%d").to_string();
            text(&mut img, x0, top + ph + 6, &label, Rgb([0, 0, 0]), width);
        }
    }
    text(&mut img, left, 8, "NaN %", Rgb([130, 130, 130]), width);
    text(&mut img, left + 60, 8, "scene cloud %", blue, width);
    text(&mut img, left + 180, 8, "tile cloud %", orange, width);
    Ok(img)
}

/// Saves a picture as PNG.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn save_png(img: &RgbImage, path: &std::path::Path) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))
}
