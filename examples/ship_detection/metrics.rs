//! Ship-pixel metrics: confusion counts (precision, recall, F1, IoU) over
//! valid pixels only, the model scored on the held-out days, and the per-day
//! table printed at the end.

use burn::module::Module;
use chrono::NaiveDate;

use crate::data::{Loaders, Split, gather, host, slices};
use crate::model::ShipNet;
use crate::picture::Shown;
use crate::{Res, dbg_err};

/// Ship-pixel confusion counts over valid pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Counts {
    pub(crate) tp: u64,
    pub(crate) fp: u64,
    pub(crate) fn_: u64,
    pub(crate) tn: u64,
}

impl Counts {
    pub(crate) fn add(&mut self, pred: bool, truth: bool) {
        match (pred, truth) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    pub(crate) fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    pub(crate) fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    pub(crate) fn f1(&self) -> f64 {
        2.0 * self.tp as f64 / (2 * self.tp + self.fp + self.fn_).max(1) as f64
    }
    pub(crate) fn iou(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp + self.fn_).max(1) as f64
    }
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "precision": self.precision(), "recall": self.recall(), "f1": self.f1(),
            "iou": self.iou(), "tp": self.tp, "fp": self.fp, "fn": self.fn_, "tn": self.tn,
        })
    }
}

/// What the model scored on the held-out days.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evaluation {
    pub(crate) counts: Counts,
    pub(crate) per_day: std::collections::BTreeMap<NaiveDate, Counts>,
    /// Per day, the tile with the most ship pixels (for the picture).
    pub(crate) shown: Vec<Shown>,
}

impl Evaluation {
    pub(crate) fn days(&self) -> Vec<NaiveDate> {
        self.per_day.keys().copied().collect()
    }
}

/// The model on the held-out days.
pub(crate) fn evaluate(model: &ShipNet, l: &Loaders, micro: usize) -> Res<Evaluation> {
    let model = model.valid();
    let mut counts = Counts::default();
    let mut per_day: std::collections::BTreeMap<NaiveDate, Counts> = Default::default();
    let mut shown: std::collections::BTreeMap<NaiveDate, Shown> = Default::default();
    for batch in burn::data::dataloader::DataLoader::iter(&l.eval) {
        let batch = batch.map_err(dbg_err)?;
        let sl = slices(&batch, &l.info, Split::Heldout)?;
        for chunk in sl.chunks(micro) {
            let idx: Vec<usize> = chunk.iter().map(|s| s.0).collect();
            let [x, y, v] = gather(&batch, &l.info, &idx)?;
            let [n, c, h, w] = x.dims();
            let x = x.without_autodiff();
            let logits = host(model.forward(x.clone(), v.clone().without_autodiff()))?;
            let (xs, y, v) = (host(x)?, host(y)?, host(v)?);
            for i in 0..n {
                let px = |a: &[f32]| a[i * h * w..(i + 1) * h * w].to_vec();
                let (ly, lv, lz) = (px(&y), px(&v), px(&logits));
                let (flat, day) = chunk[i];
                let today = per_day.entry(day).or_default();
                let mut ships = 0;
                for p in 0..h * w {
                    if lv[p] >= 0.5 {
                        counts.add(lz[p] > 0.0, ly[p] > 0.5);
                        today.add(lz[p] > 0.0, ly[p] > 0.5);
                        ships += usize::from(ly[p] > 0.5);
                    }
                }
                if shown.get(&day).is_none_or(|s| s.ships < ships) {
                    let band = |b: usize| xs[(i * c + b) * h * w..][..h * w].to_vec();
                    shown.insert(
                        day,
                        Shown {
                            day,
                            id: batch.ids[flat / batch.days[0].len()].clone(),
                            rgb: l.info.rgb.map(band),
                            truth: ly.iter().map(|&v| v > 0.5).collect(),
                            pred: lz.iter().map(|&v| v > 0.0).collect(),
                            valid: lv.iter().map(|&v| v >= 0.5).collect(),
                            ships,
                        },
                    );
                }
            }
        }
    }
    Ok(Evaluation {
        counts,
        per_day,
        shown: shown.into_values().collect(),
    })
}

/// The held-out figures per day, one line each.
pub(crate) fn per_day_table(ev: &Evaluation) -> String {
    let mut s = String::from("held-out day   ship px   P      R      F1");
    for (day, c) in &ev.per_day {
        s += &format!(
            "\n{day}    {:>7}   {:.3}  {:.3}  {:.3}",
            c.tp + c.fn_,
            c.precision(),
            c.recall(),
            c.f1()
        );
    }
    s
}
