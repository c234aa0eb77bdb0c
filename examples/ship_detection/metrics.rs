//! Ship-pixel metrics: confusion counts (precision, recall, F1, IoU) over
//! valid pixels only, the model scored on the held-out days, and the per-day
//! table printed at the end.

use burn::module::Module;
use chrono::NaiveDate;

use crate::data::{Loaders, Split, gather, host, slices};
use crate::model::ShipNet;
use crate::picture::Shown;
use crate::ships::{Matches, Ship, day_matches, event_matches, events, ships};
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

/// Predicted ships smaller than this (pixels) are noise, not ships.
pub(crate) const MIN_SHIP_PX: usize = 3;

/// What the model scored on the held-out days.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evaluation {
    pub(crate) counts: Counts,
    pub(crate) per_day: std::collections::BTreeMap<NaiveDate, Counts>,
    /// Ship-level counts (instances matched at IoU ≥ 0.3), all held-out days.
    pub(crate) ships: Matches,
    /// Ship-level counts per day.
    pub(crate) ships_per_day: std::collections::BTreeMap<NaiveDate, Matches>,
    /// Arrivals and departures (each place's held-out days in order; days
    /// under half valid are unknown), matched as [`crate::ships`] says.
    pub(crate) events: Matches,
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
    let mut ships_per_day: std::collections::BTreeMap<NaiveDate, Matches> = Default::default();
    // per place and day: the predicted and true ships, None where the
    // day's tile is under half valid (no valid observation)
    type Seen = Option<(Vec<Ship>, Vec<Ship>)>;
    let mut tracks: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<NaiveDate, Seen>,
    > = Default::default();
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
                let mut ship_px = 0;
                for p in 0..h * w {
                    if lv[p] >= 0.5 {
                        counts.add(lz[p] > 0.0, ly[p] > 0.5);
                        today.add(lz[p] > 0.0, ly[p] > 0.5);
                        ship_px += usize::from(ly[p] > 0.5);
                    }
                }
                // Ships where they can be seen: predicted and true ship
                // pixels on valid pixels, as instances.
                let seen = |a: &[f32], on: fn(f32) -> bool| -> Vec<bool> {
                    a.iter()
                        .zip(&lv)
                        .map(|(&v, &ok)| ok >= 0.5 && on(v))
                        .collect()
                };
                let pred_ships = ships(&seen(&lz, |v| v > 0.0), w, MIN_SHIP_PX);
                let true_ships = ships(&seen(&ly, |v| v > 0.5), w, 1);
                ships_per_day
                    .entry(day)
                    .or_default()
                    .add(day_matches(&pred_ships, &true_ships));
                let valid = lv.iter().filter(|&&v| v >= 0.5).count();
                let place = batch.ids[flat / batch.days[0].len()].clone();
                tracks.entry(place).or_default().insert(
                    day,
                    (2 * valid >= h * w).then_some((pred_ships, true_ships)),
                );
                if shown.get(&day).is_none_or(|s| s.ships < ship_px) {
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
                            ships: ship_px,
                        },
                    );
                }
            }
        }
    }
    let mut all_ships = Matches::default();
    for m in ships_per_day.values() {
        all_ships.add(*m);
    }
    let mut all_events = Matches::default();
    for days in tracks.values() {
        let side = |k: usize| -> Vec<Option<Vec<Ship>>> {
            days.values()
                .map(|d| {
                    d.as_ref()
                        .map(|p| if k == 0 { p.0.clone() } else { p.1.clone() })
                })
                .collect()
        };
        all_events.add(event_matches(&events(&side(0)), &events(&side(1))));
    }
    Ok(Evaluation {
        counts,
        per_day,
        ships: all_ships,
        ships_per_day,
        events: all_events,
        shown: shown.into_values().collect(),
    })
}

/// The held-out figures per day, one line each.
pub(crate) fn per_day_table(ev: &Evaluation) -> String {
    let mut s =
        String::from("held-out day   ship px   P      R      F1     | ships  P      R      F1");
    for (day, c) in &ev.per_day {
        let m = ev.ships_per_day.get(day).copied().unwrap_or_default();
        s += &format!(
            "\n{day}    {:>7}   {:.3}  {:.3}  {:.3}  | {:>5}  {:.3}  {:.3}  {:.3}",
            c.tp + c.fn_,
            c.precision(),
            c.recall(),
            c.f1(),
            m.tp + m.fn_,
            m.precision(),
            m.recall(),
            m.f1()
        );
    }
    s
}

/// The ship-level figures in a line.
pub(crate) fn ship_line(ev: &Evaluation) -> String {
    format!(
        "ships (IoU >= {}): P {:.3} R {:.3} F1 {:.3} over {} true ships; \
         arrivals/departures: P {:.3} R {:.3} F1 {:.3} over {} true events",
        crate::ships::MATCH_IOU,
        ev.ships.precision(),
        ev.ships.recall(),
        ev.ships.f1(),
        ev.ships.tp + ev.ships.fn_,
        ev.events.precision(),
        ev.events.recall(),
        ev.events.f1(),
        ev.events.tp + ev.events.fn_,
    )
}
