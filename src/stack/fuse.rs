//! Fusion kernels, sync and pure: the per-pixel rules that turn a time
//! step's warped scenes into one slice (first valid, NaN-skipping mean and
//! median), sat-tile-stack's all-bands-zero nodata rule, normalized
//! differences and min–max normalization.

use ndarray::Array2;

/// sat-tile-stack's nodata rule on one scene's warped bands: a pixel where
/// every band is exactly 0 becomes NaN in all of them. A band not read (all
/// NaN, never 0) means the rule cannot apply.
pub(crate) fn nan_where_all_zero(head: &mut [Option<Vec<f32>>]) {
    if head.iter().any(Option::is_none) {
        return;
    }
    // One pass: the first band is rarely 0, so most pixels cost one load.
    let n = head.iter().flatten().map(Vec::len).min().unwrap_or(0);
    let mut bands: Vec<&mut [f32]> = head.iter_mut().flatten().map(|b| &mut b[..n]).collect();
    if let Some((first, rest)) = bands.split_first_mut() {
        for (p, v) in first.iter_mut().enumerate() {
            if *v == 0.0 && rest.iter().all(|b| b[p] == 0.0) {
                *v = f32::NAN;
                for b in rest.iter_mut() {
                    b[p] = f32::NAN;
                }
            }
        }
    }
}

/// Cloud masking of one scene: where band `cloud` holds a value `flagged`
/// says is cloud (a class, or a bit of a flag band), every other band
/// becomes NaN. A scene without that band is left as it is.
pub(crate) fn nan_where_flagged(
    scene: &mut [Option<Vec<f32>>],
    cloud: usize,
    flagged: impl Fn(f32) -> bool,
) {
    let Some(Some(flags)) = scene.get(cloud) else {
        return;
    };
    let masked: Vec<bool> = flags.iter().map(|&v| flagged(v)).collect();
    if !masked.contains(&true) {
        return;
    }
    for (bi, band) in scene.iter_mut().enumerate() {
        if bi == cloud {
            continue;
        }
        if let Some(b) = band {
            for (v, &m) in b.iter_mut().zip(&masked) {
                if m {
                    *v = f32::NAN;
                }
            }
        }
    }
}

/// How one band of one time step is fused, folded scene by scene as the
/// scenes arrive, so that a step keeps its running state rather than every
/// scene's window: memory proportional to the output, not to the number of
/// scenes. Each rule gives exactly what the per-pixel list would:
///
/// - [`BandFold::Mean`]: a NaN-skipping f64 sum and count, divided once at
///   the end (scenes folded in plan order: the same sum in the same order);
/// - [`BandFold::Ranked`]: the valid value of the best-ranked scene (rank =
///   the scene's place in the step's order: plan order for `first`, least
///   cloudy first for `least-cloudy` and categorical bands), in any arrival
///   order;
/// - [`BandFold::All`]: every window, for the median, which needs them all.
#[derive(Debug)]
pub(crate) enum BandFold {
    /// NaN-skipping mean.
    Mean {
        /// Sum of the valid values.
        sum: Vec<f64>,
        /// Number of valid values.
        count: Vec<u32>,
    },
    /// First valid value in rank order.
    Ranked {
        /// The value of the best-ranked valid scene so far (NaN: none yet).
        value: Vec<f32>,
        /// Its rank.
        rank: Vec<u32>,
    },
    /// The median of the valid values: the windows, in arrival order.
    All(Vec<Vec<f32>>),
}

impl BandFold {
    /// An empty fold of `npx` pixels for `rule`.
    pub(crate) fn new(rule: FoldRule, npx: usize) -> BandFold {
        match rule {
            FoldRule::Mean => BandFold::Mean {
                sum: vec![0.0; npx],
                count: vec![0; npx],
            },
            FoldRule::Ranked => BandFold::Ranked {
                value: vec![f32::NAN; npx],
                rank: vec![u32::MAX; npx],
            },
            FoldRule::Median => BandFold::All(Vec::new()),
        }
    }

    /// Folds one scene's window in; `rank` orders scenes for
    /// [`BandFold::Ranked`] (lower wins). A window of another size is ignored.
    pub(crate) fn add(&mut self, window: Vec<f32>, rank: u32) {
        match self {
            BandFold::Mean { sum, count } => {
                if window.len() != sum.len() {
                    return;
                }
                for ((s, n), &v) in sum.iter_mut().zip(count.iter_mut()).zip(&window) {
                    if !v.is_nan() {
                        *s += f64::from(v);
                        *n += 1;
                    }
                }
            }
            BandFold::Ranked { value, rank: r } => {
                if window.len() != value.len() {
                    return;
                }
                for ((o, or), &v) in value.iter_mut().zip(r.iter_mut()).zip(&window) {
                    if !v.is_nan() && (o.is_nan() || rank < *or) {
                        *o = v;
                        *or = rank;
                    }
                }
            }
            BandFold::All(windows) => windows.push(window),
        }
    }

    /// The fused band, into `dst` (every value written; NaN where no scene
    /// had a valid value).
    pub(crate) fn finish(&self, dst: &mut [f32]) {
        match self {
            BandFold::Mean { sum, count } => {
                for ((o, &s), &n) in dst.iter_mut().zip(sum).zip(count) {
                    *o = if n == 0 {
                        f32::NAN
                    } else {
                        (s / f64::from(n)) as f32
                    };
                }
            }
            BandFold::Ranked { value, .. } => dst.copy_from_slice(&value[..dst.len()]),
            BandFold::All(windows) => {
                let mut buf = Vec::with_capacity(windows.len());
                for (p, o) in dst.iter_mut().enumerate() {
                    buf.clear();
                    buf.extend(
                        windows
                            .iter()
                            .filter_map(|w| w.get(p))
                            .filter(|v| !v.is_nan())
                            .map(|&v| f64::from(v)),
                    );
                    *o = if buf.is_empty() {
                        f32::NAN
                    } else {
                        median(&mut buf) as f32
                    };
                }
            }
        }
    }
}

/// Which [`BandFold`] a band gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FoldRule {
    /// NaN-skipping mean.
    Mean,
    /// First valid in rank order.
    Ranked,
    /// Median of the valid values.
    Median,
}

/// An `Array2` as its values in row-major order (no copy when it is in
/// standard layout).
pub(crate) fn into_values(a: Array2<f32>) -> Vec<f32> {
    if a.is_standard_layout() {
        a.into_raw_vec_and_offset().0
    } else {
        a.iter().copied().collect()
    }
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `(a − b) / (a + b)`, NaN where either is NaN or the sum is 0.
pub(crate) fn normalized_difference(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let sum = x + y;
            if sum == 0.0 { f32::NAN } else { (x - y) / sum }
        })
        .collect()
}

/// Linear power → decibels in place: `10·log10(v)`; `v ≤ 0` becomes NaN.
pub(crate) fn to_decibels(band: &mut [f32]) {
    for v in band {
        *v = if *v > 0.0 { 10.0 * v.log10() } else { f32::NAN };
    }
}

pub(crate) fn normalize(a: &mut [f32]) {
    let (lo, hi) = a
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if lo.is_finite() {
        let span = hi - lo;
        for v in a.iter_mut() {
            *v = if span > 0.0 {
                (*v - lo) / span
            } else {
                0.0 * *v
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The batch rules the folds replaced: the reference they are tested against.
    /// The warped windows of a stack, `[scene][band]` as `h × w` values; `None`
    /// where nothing was read (the asset misses the tile, or a read failed and
    /// became NaN): all NaN.
    #[derive(Debug)]
    struct Warped {
        bands: Vec<Vec<Option<Vec<f32>>>>,
        npx: usize,
    }

    impl Warped {
        fn new(scenes: usize, bands: usize, npx: usize) -> Warped {
            Warped {
                bands: vec![vec![None; bands]; scenes],
                npx,
            }
        }

        fn put(&mut self, scene: usize, band: usize, a: Array2<f32>) {
            let v = if a.is_standard_layout() {
                a.into_raw_vec_and_offset().0
            } else {
                a.iter().copied().collect()
            };
            if v.len() == self.npx {
                self.bands[scene][band] = Some(v);
            }
        }

        fn band(&self, scene: usize, band: usize) -> Option<&[f32]> {
            self.bands[scene][band].as_deref()
        }
    }

    /// The first non-NaN value over the scenes in `order`, into `dst`.
    fn first_valid(per: &Warped, order: &[usize], b: usize, dst: &mut [f32]) {
        dst.fill(f32::NAN);
        for &si in order {
            let Some(src) = per.band(si, b) else { continue };
            for (o, &v) in dst.iter_mut().zip(src) {
                if o.is_nan() && !v.is_nan() {
                    *o = v;
                }
            }
        }
    }

    /// NaN-skipping mean over the scenes in `order`, into `dst`: an f64 sum in
    /// scene order, divided once (the same arithmetic as summing a per-pixel list).
    fn mean_of(per: &Warped, order: &[usize], b: usize, dst: &mut [f32]) {
        let read: Vec<&[f32]> = order.iter().filter_map(|&si| per.band(si, b)).collect();
        if let [only] = read[..] {
            // One scene: v / 1 in f64 is v again; only NaN is normalized.
            for (o, &v) in dst.iter_mut().zip(only) {
                *o = if v.is_nan() { f32::NAN } else { v };
            }
            return;
        }
        let mut sum = vec![0.0f64; dst.len()];
        let mut count = vec![0u32; dst.len()];
        for band in read {
            for ((s, n), &v) in sum.iter_mut().zip(count.iter_mut()).zip(band) {
                if !v.is_nan() {
                    *s += f64::from(v);
                    *n += 1;
                }
            }
        }
        for ((o, &s), &n) in dst.iter_mut().zip(&sum).zip(&count) {
            *o = if n == 0 {
                f32::NAN
            } else {
                (s / f64::from(n)) as f32
            };
        }
    }

    /// `f` of the non-NaN values over the scenes in `order`, per pixel, into `dst`.
    fn reduce(per: &Warped, order: &[usize], b: usize, dst: &mut [f32], f: fn(&mut [f64]) -> f64) {
        let bands: Vec<&[f32]> = order.iter().filter_map(|&si| per.band(si, b)).collect();
        let mut buf = Vec::with_capacity(bands.len());
        for (p, o) in dst.iter_mut().enumerate() {
            buf.clear();
            buf.extend(
                bands
                    .iter()
                    .map(|band| band[p])
                    .filter(|v| !v.is_nan())
                    .map(f64::from),
            );
            *o = if buf.is_empty() {
                f32::NAN
            } else {
                f(&mut buf) as f32
            };
        }
    }

    #[test]
    fn all_zero_pixels_become_nan_in_every_band_and_only_those() {
        let mut scene = vec![
            Some(vec![0.0, 0.0, 5.0, 0.0]),
            Some(vec![0.0, 3.0, 0.0, 0.0]),
            Some(vec![0.0, 0.0, 0.0, f32::NAN]),
        ];
        nan_where_all_zero(&mut scene);
        let bits = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| v.iter().map(|x| x.is_nan()).collect::<Vec<_>>())
        };
        // pixel 0 is 0 everywhere; pixel 3 has a NaN band: not all zero
        assert_eq!(bits(&scene[0]), Some(vec![true, false, false, false]));
        assert_eq!(bits(&scene[2]), Some(vec![true, false, false, true]));
        assert_eq!(scene[1].as_ref().unwrap()[1], 3.0);
        // a band not read: the rule cannot apply
        let mut partial = vec![Some(vec![0.0]), None];
        nan_where_all_zero(&mut partial);
        assert_eq!(partial[0], Some(vec![0.0]));
    }

    #[test]
    fn cloud_classes_mask_other_bands_of_their_scene() {
        let mut scene = vec![
            Some(vec![1.0, 2.0, 3.0, 4.0]),
            Some(vec![9.0, 4.0, 8.0, f32::NAN]),
            None,
        ];
        nan_where_flagged(&mut scene, 1, |v| v == 8.0 || v == 9.0);
        let b0 = scene[0].as_ref().unwrap();
        assert!(b0[0].is_nan() && b0[2].is_nan(), "{b0:?}");
        assert_eq!((b0[1], b0[3]), (2.0, 4.0));
        assert_eq!(scene[1].as_ref().unwrap()[0], 9.0, "the class band stays");
        let mut unread = vec![Some(vec![1.0]), None];
        nan_where_flagged(&mut unread, 1, |v| v == 8.0);
        assert_eq!(unread[0], Some(vec![1.0]));
    }

    #[test]
    fn decibels_of_power_and_of_nothing() {
        let mut b = vec![1.0, 0.1, 100.0, 0.0, -1.0, f32::NAN];
        to_decibels(&mut b);
        assert_eq!(&b[..3], &[0.0, -10.0, 20.0]);
        assert!(b[3..].iter().all(|v| v.is_nan()), "{b:?}");
    }

    #[test]
    fn folds_scene_by_scene_equal_the_batch_rules_bit_for_bit() {
        // pseudo-random windows with NaNs, scenes not read, any rank order
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for trial in 0..50 {
            let (scenes, npx) = (1 + trial % 7, 97);
            let mut per = Warped::new(scenes, 1, npx);
            for si in 0..scenes {
                if next() % 5 == 0 {
                    continue; // not read
                }
                let v: Vec<f32> = (0..npx)
                    .map(|_| match next() % 4 {
                        0 => f32::NAN,
                        _ => (next() % 100_000) as f32 * 0.37 - 900.0,
                    })
                    .collect();
                per.put(si, 0, Array2::from_shape_vec((1, npx), v).unwrap());
            }
            let order: Vec<usize> = (0..scenes).collect();
            let mut ranked: Vec<usize> = order.clone();
            ranked.sort_by_key(|_| next() % 1000);
            let fold = |rule: FoldRule, rank_of: &dyn Fn(usize) -> u32| {
                let mut f = BandFold::new(rule, npx);
                for &si in &order {
                    if let Some(w) = per.band(si, 0) {
                        f.add(w.to_vec(), rank_of(si));
                    }
                }
                let mut out = vec![0.0f32; npx];
                f.finish(&mut out);
                out
            };
            let batch = |f: &dyn Fn(&mut [f32])| {
                let mut out = vec![0.0f32; npx];
                f(&mut out);
                out
            };
            let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let rank_of = |si: usize| ranked.iter().position(|&s| s == si).unwrap() as u32;
            assert_eq!(
                bits(fold(FoldRule::Mean, &|_| 0)),
                bits(batch(&|d| mean_of(&per, &order, 0, d)))
            );
            assert_eq!(
                bits(fold(FoldRule::Median, &|_| 0)),
                bits(batch(&|d| reduce(&per, &order, 0, d, median)))
            );
            assert_eq!(
                bits(fold(FoldRule::Ranked, &rank_of)),
                bits(batch(&|d| first_valid(&per, &ranked, 0, d)))
            );
        }
    }

    #[test]
    fn fusion_rules() {
        let mut per = Warped::new(4, 1, 3);
        for (si, v) in [
            vec![1.0, f32::NAN, 4.0],
            vec![3.0, 2.0, f32::NAN],
            vec![8.0, 6.0, f32::NAN],
        ]
        .into_iter()
        .enumerate()
        {
            per.put(si, 0, Array2::from_shape_vec((1, 3), v).unwrap());
        }
        let run = |f: &dyn Fn(&mut [f32])| {
            let mut v = vec![0.0f32; 3];
            f(&mut v);
            v
        };
        // scene 3 was not read: it counts as NaN everywhere
        assert_eq!(
            run(&|d| mean_of(&per, &[0, 3, 1], 0, d)),
            vec![2.0, 2.0, 4.0]
        );
        assert_eq!(run(&|d| mean_of(&per, &[0, 1], 0, d)), vec![2.0, 2.0, 4.0]);
        assert_eq!(
            run(&|d| reduce(&per, &[0, 1, 2], 0, d, median)),
            vec![3.0, 4.0, 4.0]
        );
        assert_eq!(
            run(&|d| first_valid(&per, &[1, 0], 0, d)),
            vec![3.0, 2.0, 4.0]
        );
        assert!(
            run(&|d| first_valid(&per, &[3], 0, d))
                .iter()
                .all(|v| v.is_nan())
        );
        let mut n = vec![2.0, 4.0, f32::NAN];
        normalize(&mut n);
        assert_eq!(n[1], 1.0);
        assert!(n[2].is_nan());
    }

    #[test]
    fn normalized_difference_of_zero_sum_is_nan() {
        let nd = normalized_difference(&[3.0, 3.0], &[1.0, -3.0]);
        assert_eq!(nd[0], 0.5);
        assert!(nd[1].is_nan());
    }
}
