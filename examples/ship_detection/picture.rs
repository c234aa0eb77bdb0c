//! `heldout.png`: for each held-out day, the tile with the most ship
//! pixels, with the truth and the model's prediction drawn over it.

use std::path::Path;

use chrono::NaiveDate;

use crate::Res;

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
