//! What a run measured, and `metrics.json`: every figure of the run (the
//! options, the days of each split, the baseline, per-epoch and per-day
//! metrics, the loss of every step).

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::args::Opts;
use crate::baseline::Baseline;
use crate::metrics::Counts;
use crate::ships::Matches;

/// One epoch's figures.
#[derive(Debug, Clone)]
pub(crate) struct EpochReport {
    pub(crate) epoch: usize,
    pub(crate) loss: f64,
    pub(crate) heldout: Counts,
    pub(crate) wait_fraction: f64,
    pub(crate) tiles_per_s: f64,
    pub(crate) seconds: f64,
    pub(crate) steps: usize,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) baseline: Baseline,
    pub(crate) train_days: Vec<NaiveDate>,
    pub(crate) heldout_days: Vec<NaiveDate>,
    /// Days the model's evaluation saw.
    pub(crate) evaluated_days: Vec<NaiveDate>,
    /// Days the training steps saw.
    pub(crate) trained_days: Vec<NaiveDate>,
    pub(crate) epochs: Vec<EpochReport>,
    /// Loss of every optimizer step, in order.
    pub(crate) step_losses: Vec<f32>,
    pub(crate) model: Counts,
    /// The model's held-out counts per day.
    pub(crate) per_day: std::collections::BTreeMap<NaiveDate, Counts>,
    /// The model's ship-level counts (IoU ≥ 0.3), all held-out days.
    pub(crate) ships: Matches,
    /// ... and per day.
    pub(crate) ships_per_day: std::collections::BTreeMap<NaiveDate, Matches>,
    /// The model's arrivals and departures against the true ones.
    pub(crate) events: Matches,
    pub(crate) model_path: Option<PathBuf>,
}

/// The `metrics.json` document of a run.
pub(crate) fn report_json(r: &Report, o: &Opts) -> serde_json::Value {
    let days = |d: &[NaiveDate]| d.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "config": o.config, "shards": o.shards, "device": o.device,
        "epochs": o.epochs, "lr": o.lr, "width": o.width, "micro_batch": o.micro_batch,
        "seed": o.seed,
        "train_days": days(&r.train_days), "heldout_days": days(&r.heldout_days),
        "trained_days": days(&r.trained_days), "evaluated_days": days(&r.evaluated_days),
        "model_path": r.model_path, "step_losses": r.step_losses,
        "baseline": {
            "train_tuned_threshold_dn": r.baseline.train_tuned_dn,
            "train_tuned": r.baseline.train_tuned.json(),
            "heldout_tuned_threshold_dn": r.baseline.oracle_dn,
            "heldout_tuned": r.baseline.oracle.json(),
        },
        "epoch_metrics": r.epochs.iter().map(|e| serde_json::json!({
            "epoch": e.epoch + 1, "loss": e.loss, "heldout": e.heldout.json(),
            "data_wait_fraction": e.wait_fraction, "tiles_per_s": e.tiles_per_s,
            "seconds": e.seconds, "steps": e.steps,
        })).collect::<Vec<_>>(),
        "model": r.model.json(),
        "model_ships": r.ships.json(),
        "model_arrivals_departures": r.events.json(),
        "model_ships_per_day": r.ships_per_day.iter().map(|(d, c)| (d.to_string(), c.json())).collect::<serde_json::Map<_, _>>(),
        "model_per_day": r.per_day.iter().map(|(d, c)| (d.to_string(), c.json())).collect::<serde_json::Map<_, _>>(),
    })
}
