//! What a run measured, and `metrics.json`: every figure of the run (the
//! options, the days of each split, the baselines, per-epoch figures, the
//! model's pixel, ship, event and per-terminal scores, the unseen world's,
//! the loss of every step).

use std::path::PathBuf;

use chrono::NaiveDate;

use crate::args::Opts;
use crate::baseline::Baseline;
use crate::calibrate::Calibration;
use crate::metrics::Evaluation;

/// One epoch's figures.
#[derive(Debug, Clone)]
pub(crate) struct EpochReport {
    pub(crate) epoch: usize,
    pub(crate) loss: f64,
    pub(crate) wait_fraction: f64,
    pub(crate) tiles_per_s: f64,
    pub(crate) seconds: f64,
    pub(crate) steps: usize,
}

/// The model and the baselines on a world it was not trained on.
#[derive(Debug, Clone)]
pub(crate) struct WorldReport {
    pub(crate) config: PathBuf,
    pub(crate) model: Evaluation,
    pub(crate) brightness: Evaluation,
    pub(crate) median: Evaluation,
    pub(crate) unet: Option<Evaluation>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The thresholds and their pixel scores.
    pub(crate) baseline: Baseline,
    /// The brightness threshold (tuned on training days), scored as the model is.
    pub(crate) brightness: Evaluation,
    /// The temporal-median difference (tuned on training days), scored as the model is.
    pub(crate) median: Evaluation,
    /// The per-day UNet baseline, when trained beside the temporal model.
    pub(crate) unet: Option<Evaluation>,
    /// The model's threshold (`None`: logit 0, `--no-calibration`).
    pub(crate) calibration: Option<Calibration>,
    /// The UNet baseline's threshold.
    pub(crate) unet_calibration: Option<Calibration>,
    /// The model's held-out `(logit, ship F1, pixel F1)` at each logit tried
    /// (with calibration; never used to choose).
    pub(crate) sensitivity: Option<Vec<(f32, f64, f64)>>,
    pub(crate) train_days: Vec<NaiveDate>,
    pub(crate) heldout_days: Vec<NaiveDate>,
    /// Days the model's evaluation scored.
    pub(crate) evaluated_days: Vec<NaiveDate>,
    /// Days the training steps saw.
    pub(crate) trained_days: Vec<NaiveDate>,
    pub(crate) epochs: Vec<EpochReport>,
    /// Loss of every optimizer step, in order.
    pub(crate) step_losses: Vec<f32>,
    /// The model on the held-out days.
    pub(crate) model: Evaluation,
    /// With `--with-input`: the model on the held-out days the optical
    /// input cannot see at a place and the other input observes, scored on
    /// the other input's pixels, with those (place, day)s.
    pub(crate) unseen_by_optical: Option<(Evaluation, Vec<(String, NaiveDate)>)>,
    /// `--eval-world`'s scores.
    pub(crate) other_world: Option<WorldReport>,
    pub(crate) model_path: Option<PathBuf>,
    pub(crate) seconds: f64,
}

/// An evaluation's figures.
pub(crate) fn evaluation_json(e: &Evaluation) -> serde_json::Value {
    let (err, n) = e.count_error();
    serde_json::json!({
        "pixels": e.counts.json(),
        "ships": e.ships.json(),
        "arrivals_departures": e.events.json(),
        "count_abs_error_per_terminal_day": err,
        "terminal_days_scored": n,
        "ships_per_day": e.ships_per_day.iter().map(|(d, c)| (d.to_string(), c.json())).collect::<serde_json::Map<_, _>>(),
        "pixels_per_day": e.per_day.iter().map(|(d, c)| (d.to_string(), c.json())).collect::<serde_json::Map<_, _>>(),
        "terminals": e.terminals.iter().map(|(name, days)| (name.clone(), days.iter().map(|d| serde_json::json!({
            "day": d.day.to_string(), "heldout": d.heldout, "valid_fraction": d.valid,
            "tile_cloud_fraction": if d.cloud.is_finite() { Some(d.cloud) } else { None },
            "true_ships": d.ships.as_ref().map(|s| s.0.len()),
            "predicted_ships": d.ships.as_ref().map(|s| s.1.len()),
        })).collect::<Vec<_>>().into())).collect::<serde_json::Map<String, serde_json::Value>>(),
    })
}

/// The `metrics.json` document of a run.
pub(crate) fn report_json(r: &Report, o: &Opts) -> serde_json::Value {
    let days = |d: &[NaiveDate]| d.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    serde_json::json!({
        "config": o.config, "shards": o.shards, "device": o.device, "model_kind": o.model,
        "epochs": o.epochs, "unet_epochs": o.unet_epochs, "lr": o.lr, "width": o.width,
        "micro_batch": o.micro_batch, "places_per_step": o.places_per_step, "seed": o.seed,
        "min_ship_px": o.min_ship_px,
        "ablations": { "no_metadata": o.no_metadata, "no_mask_attention": o.no_mask_attention },
        "train_days": days(&r.train_days), "heldout_days": days(&r.heldout_days),
        "trained_days": days(&r.trained_days), "evaluated_days": days(&r.evaluated_days),
        "model_path": r.model_path, "seconds": r.seconds, "step_losses": r.step_losses,
        "baseline": {
            "brightness": r.baseline.brightness.json(),
            "temporal_median": r.baseline.median.json(),
        },
        "calibration": {
            "model": r.calibration.as_ref().map(Calibration::json),
            "unet_baseline": r.unet_calibration.as_ref().map(Calibration::json),
            "model_heldout_days_not_used_to_choose": r.sensitivity.as_ref().map(|s| s.iter().map(|&(t, ship, px)| serde_json::json!({
                "logit": t, "ship_f1": ship, "pixel_f1": px,
            })).collect::<Vec<_>>()),
        },
        "epoch_metrics": r.epochs.iter().map(|e| serde_json::json!({
            "epoch": e.epoch + 1, "loss": e.loss,
            "data_wait_fraction": e.wait_fraction, "tiles_per_s": e.tiles_per_s,
            "seconds": e.seconds, "steps": e.steps,
        })).collect::<Vec<_>>(),
        "model": evaluation_json(&r.model),
        "model_where_only_the_other_input_sees": r.unseen_by_optical.as_ref().map(|(e, days)| serde_json::json!({
            "place_days": days.iter().map(|(p, d)| serde_json::json!([p, d.to_string()])).collect::<Vec<_>>(),
            "evaluation": evaluation_json(e),
        })),
        "brightness_baseline": evaluation_json(&r.brightness),
        "temporal_median_baseline": evaluation_json(&r.median),
        "unet_baseline": r.unet.as_ref().map(evaluation_json),
        "unseen_world": r.other_world.as_ref().map(|w| serde_json::json!({
            "config": w.config,
            "model": evaluation_json(&w.model),
            "brightness_baseline": evaluation_json(&w.brightness),
            "temporal_median_baseline": evaluation_json(&w.median),
            "unet_baseline": w.unet.as_ref().map(evaluation_json),
        })),
    })
}
