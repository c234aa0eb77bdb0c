//! Ship detection in burn, end to end: STAC search → daily stacks → the
//! `StackDataLoader` → a small UNet → held-out metrics, next to the
//! brightness threshold a user would try first.
//!
//! ```sh
//! cargo run --release --features cli,burn --example ship_detection
//! cargo run --release --features cli,burn --example ship_detection -- --shards shards/oakland-ships
//! cargo run --release --features cli,burn --example ship_detection -- --config my-dataset.toml
//! cargo run --release --features cli,burn --example ship_detection -- --eval ship-detection-out/model.bpk
//! ```
//!
//! With the default `datasets/oakland-ships.toml`, the example serves the
//! embedded Oakland port demo world on 127.0.0.1 itself (generated once and
//! cached): 32 places around the terminals, one 128 × 128 tile per day of
//! August 2019, B04 B03 B02 B08, the world's ship footprints as the label
//! layer, SCL cloud classes 8 and 9 masked before fusion.
//!
//! **Split by day.** Days before `--holdout-from` (default: 60 % into the
//! time range, 2019-08-19 here) train; the later ones — a partly cloudy day,
//! two hazy days and two with sun glint — are only ever evaluated. Pixels
//! without data (no scene, swath edge, opaque cloud masked through SCL) are
//! out of the loss and the metrics via the loader's `valid`; hazy and
//! thin-cloud pixels stay in.
//!
//! **Why a hand-written loop** rather than burn's `SupervisedTraining`: one
//! batch of stacks holds training days *and* held-out days of the same
//! places, and the step picks the day slices it needs from it; the metrics
//! (ship-pixel precision/recall/F1/IoU under a validity mask, the loader's
//! data wait) are not burn-train's classification metrics. The loop is the
//! one burn's own examples write: `forward`, `backward`,
//! `GradientsParams::from_grads`, `optim.step`.
//!
//! **Backends.** CPU (`flex`) by default; `--features cuda` or
//! `--features wgpu` select burn's GPU backends (`--device cuda|wgpu|cpu`).
//!
//! Outputs, in `--out` (default `ship-detection-out/`): `model.bpk` (burn's
//! burnpack record), `metrics.json`, and `heldout.png` (held-out days: RGB,
//! true ships outlined cyan, predicted ships yellow, no data grey).

mod args; // the command line; the burn device `--device` names
mod baseline; // the brightness threshold to beat
mod data; // the two loaders; the day slices of a batch each pass uses
mod metrics; // ship-pixel P/R/F1/IoU; the model on the held-out days
mod model; // the UNet and its masked loss
mod picture; // heldout.png
mod report; // what a run measured: metrics.json
mod ships; // ships as instances: matching at IoU 0.3, arrivals and departures
#[cfg(test)]
mod tests; // shortened trainings, online and from shards

use std::process::ExitCode;
use std::time::Instant;

use args::{Opts, device};
use baseline::baseline;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use chrono::NaiveDate;
use data::{Mix, Split, gather, host, loaders, slices};
use metrics::{Counts, evaluate, per_day_table, ship_line};
use model::{ShipNet, masked_loss};
use picture::picture;
use report::{EpochReport, Report, report_json};

/// Any error, printed by its message.
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// An error that has only `Debug` (burn's), as the example's error.
fn dbg_err(e: impl std::fmt::Debug) -> Box<dyn std::error::Error + Send + Sync> {
    format!("{e:?}").into()
}

fn main() -> ExitCode {
    let o = Opts::from_args();
    match run(&o) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn say(o: &Opts, s: impl AsRef<str>) {
    if !o.quiet {
        println!("{}", s.as_ref());
    }
}

/// The whole run: data, the baseline, training (or `--eval`'s scoring of a
/// saved model), the outputs.
fn run(o: &Opts) -> Res<Report> {
    let t_start = Instant::now();
    let device = device(&o.device)?;
    device.seed(o.seed);
    let ad = device.clone().autodiff();
    let l = loaders(o, &ad)?;
    say(
        o,
        format!(
            "data: {} ({} samples, batch {:?}), label {:?}, held out from {}",
            o.shards
                .as_deref()
                .unwrap_or(&o.config.display().to_string()),
            l.train.batches().num_items(),
            l.train.batches().batch_shape(),
            l.info.label,
            l.info.holdout_from
        ),
    );
    let (base, train_days, heldout_days, train_slices) = baseline(&l)?;
    let fmt_days = |d: &[NaiveDate]| {
        d.iter()
            .map(|d| d.format("%m-%d").to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    say(o, format!("train days:    {}", fmt_days(&train_days)));
    say(o, format!("held-out days: {}", fmt_days(&heldout_days)));
    say(
        o,
        format!(
            "brightness baseline on held-out days: F1 {:.3} (threshold {:.0} DN tuned on train days), \
             F1 {:.3} at best (threshold {:.0} DN tuned on the held-out days themselves)",
            base.train_tuned.f1(),
            base.train_tuned_dn,
            base.oracle.f1(),
            base.oracle_dn
        ),
    );

    let mut model = ShipNet::new(l.info.bands, o.width, &ad);
    if let Some(path) = &o.eval {
        model = model
            .try_load_file(path)
            .map_err(|e| format!("{}: {e:?}", path.display()))?;
        let ev = evaluate(&model, &l, o.micro_batch)?;
        say(o, per_day_table(&ev));
        say(o, ship_line(&ev));
        println!(
            "model F1 {:.3}, brightness baseline F1 {:.3}",
            ev.counts.f1(),
            base.best_f1()
        );
        return Ok(Report {
            baseline: base,
            train_days,
            heldout_days,
            evaluated_days: ev.days(),
            trained_days: Vec::new(),
            epochs: Vec::new(),
            step_losses: Vec::new(),
            model: ev.counts,
            per_day: ev.per_day,
            ships: ev.ships,
            ships_per_day: ev.ships_per_day,
            events: ev.events,
            model_path: Some(path.clone()),
        });
    }

    let mut optim = AdamConfig::new().init();
    // Steps per epoch: each batch's training slices in micro-batches.
    let per_epoch = train_slices.div_ceil(o.micro_batch) + l.train.batches().num_batches();
    let est_steps = o.epochs * o.max_steps.map_or(per_epoch, |m| m.min(per_epoch));
    let mut mix = Mix(o.seed);
    let (mut step, mut losses, mut epochs) = (0usize, Vec::new(), Vec::new());
    let mut trained_days = std::collections::BTreeSet::new();
    let mut last = None;
    for epoch in 0..o.epochs {
        let t0 = Instant::now();
        let (mut wait, mut tiles, mut esteps, mut eloss) = (0.0f64, 0usize, 0usize, 0.0f64);
        let mut train_counts = Counts::default();
        let mut it = burn::data::dataloader::DataLoader::iter(&l.train);
        loop {
            if o.max_steps.is_some_and(|m| esteps >= m) {
                break;
            }
            let tw = Instant::now();
            let Some(batch) = it.next() else { break };
            wait += tw.elapsed().as_secs_f64();
            let batch = batch.map_err(dbg_err)?;
            let mut sl = slices(&batch, &l.info, Split::Train)?;
            // Day slices in a seeded random order (Fisher–Yates).
            for i in (1..sl.len()).rev() {
                sl.swap(i, (mix.next() % (i as u64 + 1)) as usize);
            }
            for chunk in sl.chunks(o.micro_batch) {
                if o.max_steps.is_some_and(|m| esteps >= m) {
                    break;
                }
                let idx: Vec<usize> = chunk.iter().map(|s| s.0).collect();
                trained_days.extend(chunk.iter().map(|s| s.1));
                let [x, y, v] = gather(&batch, &l.info, &idx)?;
                let logits = model.forward(x, v.clone());
                {
                    let (z, yh, vh) = (host(logits.clone())?, host(y.clone())?, host(v.clone())?);
                    for p in 0..z.len() {
                        if vh[p] >= 0.5 {
                            train_counts.add(z[p] > 0.0, yh[p] > 0.5);
                        }
                    }
                }
                let loss = masked_loss(logits, y, v, o.pos_weight);
                let lv = loss.clone().into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                // Cosine decay to 5 % of the rate over the run.
                let frac = (step as f64 / est_steps.max(1) as f64).min(1.0);
                let lr = o.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()));
                model = optim.step(lr, model, grads);
                losses.push(lv);
                eloss += lv as f64;
                tiles += idx.len();
                step += 1;
                esteps += 1;
            }
        }
        drop(it);
        let seconds = t0.elapsed().as_secs_f64();
        let ev = evaluate(&model, &l, o.micro_batch)?;
        let heldout = ev.counts;
        let rep = EpochReport {
            epoch,
            loss: eloss / esteps.max(1) as f64,
            heldout,
            wait_fraction: wait / seconds.max(1e-9),
            tiles_per_s: tiles as f64 / seconds.max(1e-9),
            seconds,
            steps: esteps,
        };
        say(
            o,
            format!(
                "epoch {:>2}/{}  loss {:.4}  train F1 {:.3}  held-out P {:.3} R {:.3} F1 {:.3} IoU {:.3}  \
                 data wait {:.1} %  {:.1} tiles/s  ({:.1} s, eval {:.1} s)",
                epoch + 1,
                o.epochs,
                rep.loss,
                train_counts.f1(),
                heldout.precision(),
                heldout.recall(),
                heldout.f1(),
                heldout.iou(),
                100.0 * rep.wait_fraction,
                rep.tiles_per_s,
                seconds,
                t0.elapsed().as_secs_f64() - seconds
            ),
        );
        epochs.push(rep);
        last = Some(ev);
    }
    let ev = match last {
        Some(ev) => ev,
        None => evaluate(&model, &l, o.micro_batch)?,
    };
    say(o, per_day_table(&ev));
    say(o, ship_line(&ev));
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let model_path = o.out.join("model.bpk");
    model
        .clone()
        .save_file(&model_path)
        .map_err(|e| format!("{}: {e:?}", model_path.display()))?;
    let png = o.out.join("heldout.png");
    picture(&ev.shown, &png)?;
    let report = Report {
        baseline: base,
        train_days,
        heldout_days,
        evaluated_days: ev.days(),
        trained_days: trained_days.into_iter().collect(),
        epochs,
        step_losses: losses,
        model: ev.counts,
        per_day: ev.per_day,
        ships: ev.ships,
        ships_per_day: ev.ships_per_day,
        events: ev.events,
        model_path: Some(model_path.clone()),
    };
    let metrics = o.out.join("metrics.json");
    std::fs::write(
        &metrics,
        serde_json::to_string_pretty(&report_json(&report, o))?,
    )
    .map_err(|e| format!("{}: {e}", metrics.display()))?;
    say(
        o,
        format!(
            "wrote {}, {}, {} ({:.0} s in all)",
            model_path.display(),
            png.display(),
            metrics.display(),
            t_start.elapsed().as_secs_f64()
        ),
    );
    println!(
        "model F1 {:.3}, brightness baseline F1 {:.3}",
        report.model.f1(),
        report.baseline.best_f1()
    );
    Ok(report)
}
