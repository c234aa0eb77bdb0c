//! `heldout.png`: for each held-out day, the tile with the most ship
//! pixels, with the truth and the model's prediction drawn over it; and
//! `terminals.png`: per terminal, its ships over the month.

use std::path::Path;

use chrono::NaiveDate;

use crate::Res;
use crate::data::DataInfo;
use crate::metrics::{Evaluation, TerminalDay};
use crate::ships::{Kind, Ship, events};

/// A held-out tile kept for the picture.
#[derive(Debug, Clone)]
pub(crate) struct Shown {
    pub(crate) day: NaiveDate,
    pub(crate) id: String,
    pub(crate) rgb: [Vec<f32>; 3],
    pub(crate) truth: Vec<bool>,
    pub(crate) pred: Vec<bool>,
    pub(crate) valid: Vec<bool>,
    pub(crate) ships: usize,
}

/// Held-out tiles side by side: RGB (2–98 % stretch), true ships outlined
/// cyan, predicted ships yellow (green where both), no data grey; the day
/// and sample id above each.
pub(crate) fn picture(shown: &[Shown], path: &Path) -> Res<()> {
    let Some(first) = shown.first() else {
        return Ok(());
    };
    let side = (first.truth.len() as f64).sqrt() as usize;
    let (scale, pad, title) = (3usize, 6usize, 22usize);
    let cell = side * scale;
    let (w, h) = (shown.len() * (cell + pad) + pad, cell + title + 2 * pad);
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    for (k, s) in shown.iter().enumerate() {
        let x0 = pad + k * (cell + pad);
        let y0 = pad + title;
        let stretch: Vec<(f32, f32)> = s
            .rgb
            .iter()
            .map(|b| {
                let mut v: Vec<f32> = b
                    .iter()
                    .zip(&s.valid)
                    .filter(|(_, ok)| **ok)
                    .map(|(v, _)| *v)
                    .collect();
                v.sort_by(f32::total_cmp);
                let q = |f: f64| {
                    v.get(((v.len() as f64 - 1.0) * f) as usize)
                        .copied()
                        .unwrap_or(0.0)
                };
                (q(0.02), q(0.98))
            })
            .collect();
        let edge = |m: &[bool], p: usize| {
            let (r, c) = (p / side, p % side);
            m[p] && (r == 0
                || c == 0
                || r + 1 == side
                || c + 1 == side
                || !m[p - 1]
                || !m[p + 1]
                || !m[p - side]
                || !m[p + side])
        };
        for p in 0..side * side {
            let px = if !s.valid[p] {
                [150, 150, 150]
            } else {
                let (t, q) = (edge(&s.truth, p), edge(&s.pred, p));
                match (t, q) {
                    (true, true) => [0, 230, 0],
                    (true, false) => [0, 230, 255],
                    (false, true) => [255, 220, 0],
                    _ => {
                        let mut c = [0u8; 3];
                        for (ci, (b, (lo, hi))) in s.rgb.iter().zip(&stretch).enumerate() {
                            let f = ((b[p] - lo) / (hi - lo).max(1e-6)).clamp(0.0, 1.0);
                            c[ci] = (255.0 * f.powf(0.8)) as u8;
                        }
                        c
                    }
                }
            };
            let (r, c) = (p / side, p % side);
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(
                        (x0 + c * scale + dx) as u32,
                        (y0 + r * scale + dy) as u32,
                        image::Rgb(px),
                    );
                }
            }
        }
        let text = format!("{} {}", s.day, s.id);
        for (i, ch) in text.chars().take(cell / 8).enumerate() {
            if let Some(glyph) = font8x8::legacy::BASIC_LEGACY.get(ch as usize) {
                for (gy, bits) in glyph.iter().enumerate() {
                    for gx in 0..8 {
                        if bits >> gx & 1 == 1 {
                            img.put_pixel(
                                (x0 + i * 8 + gx) as u32,
                                (pad + 4 + gy) as u32,
                                image::Rgb([0, 0, 0]),
                            );
                        }
                    }
                }
            }
        }
    }
    img.save(path)
        .map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Draws `text` in black with its top-left corner at `(x, y)`.
fn text(img: &mut image::RgbImage, x: usize, y: usize, text: &str) {
    for (i, ch) in text.chars().enumerate() {
        let Some(glyph) = font8x8::legacy::BASIC_LEGACY.get(ch as usize) else {
            continue;
        };
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                let (px, py) = ((x + i * 8 + gx) as u32, (y + gy) as u32);
                if bits >> gx & 1 == 1 && px < img.width() && py < img.height() {
                    img.put_pixel(px, py, image::Rgb([0, 0, 0]));
                }
            }
        }
    }
}

fn rect(img: &mut image::RgbImage, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
    for yy in y..y + h {
        for xx in x..x + w {
            if (xx as u32) < img.width() && (yy as u32) < img.height() {
                img.put_pixel(xx as u32, yy as u32, image::Rgb(c));
            }
        }
    }
}

/// `terminals.png`: per terminal, its ships over the month — true count
/// (cyan bar) and predicted (yellow bar) per observed day; days without a
/// valid observation of the terminal grey, cloudy ones (tile cloud
/// fraction ≥ 0.2) pale blue; true arrivals ▲ green and departures ▼ red
/// in the upper strip, the model's in the lower one; held-out days under a
/// black rule.
pub(crate) fn month_chart(ev: &Evaluation, info: &DataInfo, path: &Path) -> Res<()> {
    let all: Vec<NaiveDate> = ev
        .terminals
        .values()
        .flat_map(|d| d.iter().map(|d| d.day))
        .collect();
    let (Some(&first), Some(&last)) = (all.iter().min(), all.iter().max()) else {
        return Ok(());
    };
    let ndays = (last - first).num_days() as usize + 1;
    let (col, left, top, bars, strip) = (18usize, 130usize, 26usize, 90usize, 12usize);
    let max_count = ev
        .terminals
        .values()
        .flat_map(|d| d.iter())
        .filter_map(|d| d.ships.as_ref().map(|(t, p)| t.len().max(p.len())))
        .max()
        .unwrap_or(1)
        .max(4);
    let unit = bars / max_count;
    let panel = bars + 2 * strip + 18;
    let (w, h) = (
        left + ndays * col + 10,
        top + ev.terminals.len() * panel + 24,
    );
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    text(
        &mut img,
        6,
        6,
        "ships per terminal per day: true cyan, predicted yellow; grey unknown, blue cloudy",
    );
    for (k, (name, days)) in ev.terminals.iter().enumerate() {
        let y0 = top + k * panel;
        text(&mut img, 6, y0 + strip * 2 + bars / 2, name);
        let by_day: std::collections::BTreeMap<NaiveDate, &TerminalDay> =
            days.iter().map(|d| (d.day, d)).collect();
        // arrivals and departures, truth and prediction
        let track = |side: usize| -> Vec<Option<Vec<Ship>>> {
            (0..ndays)
                .map(|i| {
                    let day = first + chrono::Days::new(i as u64);
                    by_day.get(&day).and_then(|d| {
                        d.ships
                            .as_ref()
                            .map(|(t, p)| if side == 0 { t.clone() } else { p.clone() })
                    })
                })
                .collect()
        };
        for i in 0..ndays {
            let day = first + chrono::Days::new(i as u64);
            let x = left + i * col;
            let yb = y0 + 2 * strip;
            match by_day.get(&day) {
                Some(d) if d.ships.is_some() => {
                    if d.cloud.is_finite() && d.cloud >= 0.2 {
                        rect(&mut img, x, yb, col - 1, bars, [205, 225, 250]);
                    }
                    if let Some((t, p)) = &d.ships {
                        let (ht, hp) = (t.len() * unit, p.len() * unit);
                        rect(
                            &mut img,
                            x + 2,
                            yb + bars - ht,
                            col / 2 - 2,
                            ht,
                            [0, 190, 230],
                        );
                        rect(
                            &mut img,
                            x + col / 2,
                            yb + bars - hp,
                            col / 2 - 2,
                            hp,
                            [240, 200, 0],
                        );
                    }
                }
                _ => rect(&mut img, x, yb, col - 1, bars, [200, 200, 200]),
            }
            if info.split(day) == crate::data::Split::Heldout {
                rect(&mut img, x, y0 + 2 * strip + bars + 1, col, 3, [0, 0, 0]);
            }
            if i % 5 == 0 || i + 1 == ndays {
                text(
                    &mut img,
                    x,
                    y0 + 2 * strip + bars + 6,
                    &day.format("%d").to_string(),
                );
            }
        }
        for side in 0..2 {
            for e in events(&track(side)) {
                let x = left + e.day * col + col / 2 - 4;
                let y = y0 + side * strip;
                let c = match e.kind {
                    Kind::Arrival => [0, 170, 0],
                    Kind::Departure => [220, 0, 0],
                };
                // a small triangle: ▲ arrival, ▼ departure
                for r in 0..8usize {
                    let half = match e.kind {
                        Kind::Arrival => r / 2,
                        Kind::Departure => (7 - r) / 2,
                    };
                    rect(
                        &mut img,
                        x + 4 - half.min(4),
                        y + 2 + r,
                        2 * half.min(4) + 1,
                        1,
                        c,
                    );
                }
            }
        }
        // count axis
        for n in 0..=max_count {
            let y = y0 + 2 * strip + bars - n * unit;
            rect(&mut img, left - 6, y, 4, 1, [0, 0, 0]);
        }
        text(&mut img, left - 22, y0 + 2 * strip, &max_count.to_string());
        text(&mut img, 60, y0 + 2, "truth");
        text(&mut img, 60, y0 + strip + 2, "model");
    }
    img.save(path)
        .map_err(|e| format!("{}: {e}", path.display()).into())
}
