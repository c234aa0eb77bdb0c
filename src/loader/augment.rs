//! Augmentation as a pixel map: each sample's crop, quarter turns and flips
//! drawn from (seed, epoch, sample) and applied to its inputs, labels and
//! masks alike, so a label moves with its image.

use rand::{RngExt, SeedableRng};

use crate::dataset::config::AugmentConfig;

/// Destination pixel → source pixel of one sample's augmentation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PixelMap {
    pub(crate) src_h: usize,
    pub(crate) src_w: usize,
    /// Source pixel index of each destination pixel (row-major).
    pub(crate) index: Vec<u32>,
    /// `index[i] == i` everywhere: rows are copied without the gather.
    pub(crate) identity: bool,
}

impl PixelMap {
    pub(crate) fn identity(h: usize, w: usize) -> PixelMap {
        PixelMap {
            src_h: h,
            src_w: w,
            index: (0..(h * w) as u32).collect(),
            identity: true,
        }
    }

    /// A crop of side `s` at `(oy, ox)`, then `k` quarter turns, then flips.
    pub(crate) fn new(
        (h, w): (usize, usize),
        s: (usize, usize),
        (oy, ox): (usize, usize),
        k: u8,
        (fh, fv): (bool, bool),
    ) -> PixelMap {
        let (sh, sw) = s;
        // Quarter turns need a square; a non-square crop is only flipped.
        let k = if sh == sw { k % 4 } else { 0 };
        let mut index = Vec::with_capacity(sh * sw);
        for y in 0..sh {
            for x in 0..sw {
                let (mut sy, mut sx) = (y, x);
                for _ in 0..k {
                    // One counter-clockwise quarter turn: dst (y, x) ← src (x, S−1−y).
                    (sy, sx) = (sx, sw - 1 - sy);
                }
                if fh {
                    sx = sw - 1 - sx;
                }
                if fv {
                    sy = sh - 1 - sy;
                }
                index.push(((oy + sy) * w + ox + sx) as u32);
            }
        }
        let identity = (h, w) == s && index.iter().enumerate().all(|(i, &j)| i as u32 == j);
        PixelMap {
            src_h: h,
            src_w: w,
            index,
            identity,
        }
    }

    /// The augmentation of `sample` in `epoch`, from the dataset seed alone.
    pub(crate) fn augmented(
        aug: &AugmentConfig,
        seed: u64,
        epoch: u64,
        sample: usize,
        hw: (usize, usize),
    ) -> PixelMap {
        let (h, w) = hw;
        if !aug.any() {
            return PixelMap::identity(h, w);
        }
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(mix(&[
            seed,
            epoch,
            sample as u64,
            0xA06_u64,
        ]));
        let s = aug.crop.map_or((h, w), |c| (c.min(h), c.min(w)));
        let oy = rng.random_range(0..=h - s.0);
        let ox = rng.random_range(0..=w - s.1);
        let k = if aug.rot90 {
            rng.random_range(0..4u8)
        } else {
            0
        };
        let (fh, fv) = if aug.flips {
            (rng.random_bool(0.5), rng.random_bool(0.5))
        } else {
            (false, false)
        };
        PixelMap::new((h, w), s, (oy, ox), k, (fh, fv))
    }
}

/// SplitMix64 over the words: a portable seed from several numbers.
pub(crate) fn mix(words: &[u64]) -> u64 {
    let mut z: u64 = 0x9E37_79B9_7F4A_7C15;
    for &v in words {
        z = z.wrapping_add(v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(map: &PixelMap, src: &[f32]) -> Vec<f32> {
        map.index.iter().map(|&i| src[i as usize]).collect()
    }

    #[test]
    fn quarter_turns_compose_to_identity_and_flips_are_involutions() {
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let one = PixelMap::new((4, 4), (4, 4), (0, 0), 1, (false, false));
        let mut x = src.clone();
        for _ in 0..4 {
            x = apply(&one, &x);
        }
        assert_eq!(x, src);
        assert_ne!(apply(&one, &src), src);
        // dst (0, 0) comes from src (0, 3) for one counter-clockwise turn.
        assert_eq!(apply(&one, &src)[0], 3.0);
        let flip = PixelMap::new((4, 4), (4, 4), (0, 0), 0, (true, false));
        assert_eq!(apply(&flip, &apply(&flip, &src)), src);
        assert_eq!(apply(&flip, &src)[0], 3.0);
    }

    #[test]
    fn crops_read_inside_the_source() {
        let src: Vec<f32> = (0..64).map(|v| v as f32).collect();
        let m = PixelMap::new((8, 8), (3, 3), (5, 5), 2, (true, true));
        let out = apply(&m, &src);
        assert_eq!(out.len(), 9);
        // rotation by 180° then both flips is the identity on the crop
        assert_eq!(
            out,
            vec![45.0, 46.0, 47.0, 53.0, 54.0, 55.0, 61.0, 62.0, 63.0]
        );
    }

    #[test]
    fn augmentation_is_a_function_of_seed_epoch_and_sample() {
        let aug = AugmentConfig {
            flips: true,
            rot90: true,
            crop: Some(6),
        };
        let a = PixelMap::augmented(&aug, 7, 1, 3, (8, 8));
        assert_eq!(a, PixelMap::augmented(&aug, 7, 1, 3, (8, 8)));
        let others: Vec<PixelMap> = (0..8)
            .map(|e| PixelMap::augmented(&aug, 7, e, 3, (8, 8)))
            .collect();
        assert!(others.iter().any(|m| *m != a), "epochs vary the draw");
        assert_eq!(
            PixelMap::augmented(&AugmentConfig::default(), 7, 1, 3, (8, 8)),
            PixelMap::identity(8, 8)
        );
    }
}
