//! The baselines to beat: the brightness threshold a user would try first
//! (the mean reflectance of the red, green and blue bands) and the
//! temporal-median difference an analyst tries second (each day's
//! brightness minus its per-pixel median over the place's valid days),
//! thresholds tuned on the training days' pixels, scored on the same
//! held-out pixels as the model.

use chrono::NaiveDate;

use crate::data::{HostBatch, Loaders, Split, slices};
use crate::metrics::Counts;
use crate::predict::{brightness, median_diff};
use crate::temporal::sequences;
use crate::{Res, dbg_err};

/// Histograms of a score (DN) of ship and other valid pixels, 5 DN bins
/// from `lo` over 15 000 DN (the ends open).
#[derive(Debug, Clone)]
struct Hist {
    lo: f32,
    pos: Vec<u64>,
    neg: Vec<u64>,
}

const BIN_DN: f32 = 5.0;
const BINS: usize = 3001;

impl Hist {
    fn new(lo: f32) -> Hist {
        Hist {
            lo,
            pos: vec![0; BINS],
            neg: vec![0; BINS],
        }
    }
    fn add(&mut self, score: f32, ship: bool) {
        let k = (((score - self.lo).max(0.0) / BIN_DN) as usize).min(BINS - 1);
        if ship {
            self.pos[k] += 1;
        } else {
            self.neg[k] += 1;
        }
    }
    fn dn(&self, k: usize) -> f32 {
        self.lo + k as f32 * BIN_DN
    }
    /// Counts of "ship where the score ≥ threshold bin `k`".
    fn counts_at(&self, k: usize) -> Counts {
        let tp: u64 = self.pos[k..].iter().sum();
        let fp: u64 = self.neg[k..].iter().sum();
        let p: u64 = self.pos.iter().sum();
        let n: u64 = self.neg.iter().sum();
        Counts {
            tp,
            fp,
            fn_: p - tp,
            tn: n - fp,
        }
    }
    /// The threshold bin with the best F1 here.
    fn best(&self) -> usize {
        (0..BINS)
            .max_by(|&a, &b| self.counts_at(a).f1().total_cmp(&self.counts_at(b).f1()))
            .unwrap_or(0)
    }
}

/// A threshold baseline on the held-out pixels, with the threshold tuned on
/// the training days and with the held-out days' own best threshold.
#[derive(Debug, Clone, Default)]
pub(crate) struct Threshold {
    pub(crate) train_tuned_dn: f32,
    pub(crate) train_tuned: Counts,
    pub(crate) oracle_dn: f32,
    pub(crate) oracle: Counts,
}

impl Threshold {
    fn of(train: &Hist, held: &Hist) -> Threshold {
        let (kt, ko) = (train.best(), held.best());
        Threshold {
            train_tuned_dn: train.dn(kt),
            train_tuned: held.counts_at(kt),
            oracle_dn: held.dn(ko),
            oracle: held.counts_at(ko),
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "train_tuned_threshold_dn": self.train_tuned_dn,
            "train_tuned": self.train_tuned.json(),
            "heldout_tuned_threshold_dn": self.oracle_dn,
            "heldout_tuned": self.oracle.json(),
        })
    }
}

/// The threshold baselines: brightness (the mean RGB reflectance) and the
/// temporal-median difference (brightness minus its per-pixel median over
/// the place's valid days of the month).
#[derive(Debug, Clone, Default)]
pub(crate) struct Baseline {
    pub(crate) brightness: Threshold,
    pub(crate) median: Threshold,
}

/// One pass over the evaluation loader: the baselines' pixel histograms
/// (train and held-out days), the days each split has data on, and the
/// number of training day slices.
pub(crate) fn baseline(l: &Loaders) -> Res<(Baseline, Vec<NaiveDate>, Vec<NaiveDate>, usize)> {
    let mut h = [
        [Hist::new(0.0), Hist::new(0.0)],
        [Hist::new(-5000.0), Hist::new(-5000.0)],
    ];
    let mut days = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    let mut train_slices = 0;
    for batch in burn::data::dataloader::DataLoader::iter(&l.eval) {
        let batch = batch.map_err(dbg_err)?;
        let hb = HostBatch::new(&batch, &l.info)?;
        train_slices += slices(&batch, &l.info, Split::Train)?.len();
        for s in sequences(&hb, |r| hb.keep(r, Split::Heldout), |_| true) {
            let p = s.h * s.w;
            let scores = [brightness(&s, &l.info), median_diff(&s, &l.info)];
            // the days the optical input observed (another input's own
            // days have no optical pixel)
            for i in (0..s.len()).filter(|&i| s.optical[i]) {
                let split = l.info.split(s.days[i]);
                let k = usize::from(split == Split::Heldout);
                if k == 0 {
                    days.0.insert(s.days[i]);
                } else {
                    days.1.insert(s.days[i]);
                }
                let (v, y) = (s.valid_of(i), s.label_of(i));
                for q in 0..p {
                    if v[q] >= 0.5 {
                        for (b, sc) in scores.iter().enumerate() {
                            h[b][k].add(sc[i * p + q], y[q] > 0.5);
                        }
                    }
                }
            }
        }
    }
    Ok((
        Baseline {
            brightness: Threshold::of(&h[0][0], &h[0][1]),
            median: Threshold::of(&h[1][0], &h[1][1]),
        },
        days.0.into_iter().collect(),
        days.1.into_iter().collect(),
        train_slices,
    ))
}
