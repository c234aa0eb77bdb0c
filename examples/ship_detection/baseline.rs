//! The baseline to beat: the brightness threshold a user would try first
//! (the mean reflectance of the red, green and blue bands), scored on the
//! same held-out pixels as the model.

use chrono::NaiveDate;

use crate::data::{Loaders, Split, gather, host, slices};
use crate::metrics::Counts;
use crate::{Res, dbg_err};

/// Brightness (mean RGB reflectance, DN) histograms of ship and other
/// valid pixels, 5 DN bins up to 15 000 (and one above).
#[derive(Debug, Clone)]
struct Hist {
    pos: Vec<u64>,
    neg: Vec<u64>,
}

const BIN_DN: f32 = 5.0;
const BINS: usize = 3001;

impl Hist {
    fn new() -> Hist {
        Hist {
            pos: vec![0; BINS],
            neg: vec![0; BINS],
        }
    }
    fn add(&mut self, brightness: f32, ship: bool) {
        let k = ((brightness.max(0.0) / BIN_DN) as usize).min(BINS - 1);
        if ship {
            self.pos[k] += 1;
        } else {
            self.neg[k] += 1;
        }
    }
    /// Counts of "ship where brightness ≥ threshold bin `k`".
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

/// The brightness-threshold baseline, evaluated on the held-out pixels with
/// the threshold tuned on the training days and with the held-out days'
/// own best threshold.
#[derive(Debug, Clone)]
pub(crate) struct Baseline {
    pub(crate) train_tuned_dn: f32,
    pub(crate) train_tuned: Counts,
    pub(crate) oracle_dn: f32,
    pub(crate) oracle: Counts,
}

impl Baseline {
    pub(crate) fn best_f1(&self) -> f64 {
        self.train_tuned.f1().max(self.oracle.f1())
    }
}

/// One pass over the evaluation loader: the baseline's histograms (train
/// and held-out days), and the days each split has data on.
pub(crate) fn baseline(l: &Loaders) -> Res<(Baseline, Vec<NaiveDate>, Vec<NaiveDate>, usize)> {
    let (mut train, mut held) = (Hist::new(), Hist::new());
    let mut days = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    let mut train_slices = 0;
    for batch in burn::data::dataloader::DataLoader::iter(&l.eval) {
        let batch = batch.map_err(dbg_err)?;
        for split in [Split::Train, Split::Heldout] {
            let sl = slices(&batch, &l.info, split)?;
            if sl.is_empty() {
                continue;
            }
            let idx: Vec<usize> = sl.iter().map(|s| s.0).collect();
            let [x, y, v] = gather(&batch, &l.info, &idx)?;
            let [n, c, h, w] = x.dims();
            let (x, y, v) = (host(x)?, host(y)?, host(v)?);
            let hist = if split == Split::Train {
                &mut train
            } else {
                &mut held
            };
            for i in 0..n {
                for p in 0..h * w {
                    if v[i * h * w + p] < 0.5 {
                        continue;
                    }
                    let bright = l
                        .info
                        .rgb
                        .iter()
                        .map(|&b| l.info.dn(b, x[(i * c + b) * h * w + p]))
                        .sum::<f32>()
                        / 3.0;
                    hist.add(bright, y[i * h * w + p] > 0.5);
                }
            }
            if split == Split::Train {
                train_slices += sl.len();
            }
            let set = if split == Split::Train {
                &mut days.0
            } else {
                &mut days.1
            };
            set.extend(sl.iter().map(|s| s.1));
        }
    }
    let (kt, ko) = (train.best(), held.best());
    Ok((
        Baseline {
            train_tuned_dn: kt as f32 * BIN_DN,
            train_tuned: held.counts_at(kt),
            oracle_dn: ko as f32 * BIN_DN,
            oracle: held.counts_at(ko),
        },
        days.0.into_iter().collect(),
        days.1.into_iter().collect(),
        train_slices,
    ))
}
