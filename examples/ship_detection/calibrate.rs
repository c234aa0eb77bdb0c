//! A model's decision threshold, chosen on the training days. The loss
//! weighs ship pixels `--pos-weight` times, which moves the logit at which a
//! balanced detector should cut away from 0 (by ln w for a calibrated
//! model: ln 8 ≈ 2.1 at the default), and ships are scored as instances,
//! which pixel-level calibration does not see. So the threshold is the
//! logit whose **ship F1 over the training days** of the evaluation places
//! is best — the baselines' thresholds are tuned on the same days. The
//! held-out days are never looked at.

use crate::data::{DataInfo, Split};
use crate::metrics::{EvalSet, Scored, Scorer};
use crate::predict::Predictor;

/// The logits tried: −3 to 5 in steps of 0.25.
pub(crate) fn grid() -> Vec<f32> {
    (0..=32).map(|k| -3.0 + 0.25 * k as f32).collect()
}

/// The threshold chosen, and the training days' ship F1 at each one tried.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Calibration {
    pub(crate) threshold: f32,
    /// `(logit, ship F1, pixel F1)` on the training days.
    pub(crate) tried: Vec<(f32, f64, f64)>,
}

impl Calibration {
    /// The threshold of the best ship F1 in `tried` (ties: the one nearest
    /// to 0, then the lower).
    pub(crate) fn best(tried: Vec<(f32, f64, f64)>) -> Calibration {
        let mut best: Option<(f32, f64)> = None;
        for &(t, f1, _) in &tried {
            let better = match best {
                None => true,
                Some((bt, bf)) => f1 > bf || (f1 == bf && t.abs() < bt.abs()),
            };
            if better {
                best = Some((t, f1));
            }
        }
        Calibration {
            threshold: best.map_or(0.0, |b| b.0),
            tried,
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "threshold_logit": self.threshold,
            "train_days": self.tried.iter().map(|&(t, ship, px)| serde_json::json!({
                "logit": t, "ship_f1": ship, "pixel_f1": px,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The logit threshold of `pred` (a model; its own threshold is ignored)
/// with the best ship F1 on the training days of `set`'s places, from
/// `scored` (`set` scored by `pred`'s model).
pub(crate) fn calibrate(
    pred: &Predictor,
    set: &EvalSet,
    scored: &Scored,
    info: &DataInfo,
) -> Calibration {
    Calibration::best(sweep(pred, set, scored, info, Split::Train))
}

/// `(logit, ship F1, pixel F1)` of `pred` cut at each logit of [`grid`],
/// on the days of `split` of `set`'s places.
pub(crate) fn sweep(
    pred: &Predictor,
    set: &EvalSet,
    scored: &Scored,
    info: &DataInfo,
    split: Split,
) -> Vec<(f32, f64, f64)> {
    let grid = grid();
    let mut scorers: Vec<Scorer> = grid.iter().map(|_| set.scorer(false)).collect();
    for (s, i, z) in set.place_days(scored) {
        if info.split(s.days[i]) == split && s.optical[i] {
            for (sc, &t) in scorers.iter_mut().zip(&grid) {
                sc.score(pred, s, i, z, t, info);
            }
        }
    }
    grid.into_iter()
        .zip(scorers)
        .map(|(t, sc)| {
            let ev = sc.finish();
            (t, ev.ships.f1(), ev.counts.f1())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_ship_f1_wins_and_ties_go_towards_zero() {
        let c = Calibration::best(vec![
            (-1.0, 0.5, 0.4),
            (0.0, 0.7, 0.6),
            (1.5, 0.8, 0.5),
            (2.0, 0.8, 0.7),
            (3.0, 0.6, 0.7),
        ]);
        assert_eq!(c.threshold, 1.5);
        let c = Calibration::best(vec![(-0.5, 0.9, 0.0), (0.5, 0.9, 0.0)]);
        assert_eq!(c.threshold, -0.5, "equal distance: the lower");
        assert_eq!(Calibration::best(vec![]).threshold, 0.0);
        let g = grid();
        assert_eq!((g.len(), g[0], g[12], g[32]), (33, -3.0, 0.0, 5.0));
    }
}
