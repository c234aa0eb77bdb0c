//! Ships coming and going, in burn, end to end: STAC search → daily stacks
//! → the `StackDataLoader` → a temporal model over each place's whole daily
//! stack → ships, ships per terminal and arrivals/departures on held-out
//! days, next to the baselines a user would try first.
//!
//! ```sh
//! cargo run --release --features cli,burn --example ship_detection
//! cargo run --release --features cli,burn --example ship_detection -- --unet-epochs 12
//! cargo run --release --features cli,burn --example ship_detection -- --eval-world datasets/second-port-ships.toml
//! cargo run --release --features cli,burn --example ship_detection -- --model unet
//! cargo run --release --features cli,burn --example ship_detection -- --shards shards/oakland-ships
//! cargo run --release --features cli,burn --example ship_detection -- --eval ship-detection-out/model.bpk
//! ```
//!
//! With the default `datasets/oakland-ships.toml`, the example serves the
//! embedded Oakland port demo world on 127.0.0.1 itself (generated once and
//! cached): 32 places around the terminals, one 128 × 128 tile per day of
//! August 2019, B04 B03 B02 B08, the world's ship footprints as the label
//! layer, SCL cloud classes 8 and 9 masked before fusion, the terminals as
//! the mask layer. One more place is centred on each terminal (the mask
//! layer's features): ships per terminal per day come from those.
//!
//! **Split by day.** Days before `--holdout-from` (default: 60 % into the
//! time range, 2019-08-19 here) train; the later ones are only ever
//! scored. The temporal model trains on the training days of each place
//! (a random subset of them per step) and, when scoring, sees each place's
//! whole month of imagery — as an analyst would run it — but never a
//! held-out label. Pixels without data are out of the loss and the metrics.
//!
//! **Why a hand-written loop** rather than burn's `SupervisedTraining`: one
//! batch of stacks holds training *and* held-out days of the same places,
//! and the step picks what it needs from it; the metrics (ships matched at
//! IoU 0.3, arrivals and departures, counts per terminal, the loader's data
//! wait) are not burn-train's. The loop is the one burn's own examples
//! write: `forward`, `backward`, `GradientsParams::from_grads`, `optim.step`.
//!
//! **Backends.** CPU (`flex`) by default; `--features cuda` or
//! `--features wgpu` select burn's GPU backends (`--device cuda|wgpu|cpu`).
//! The loaders deliver to the host; a step uploads only its own inputs.
//!
//! **Side by side.** With `--unet-epochs N` the per-day UNet baseline
//! trains and scores on a thread and a one-thread rayon pool of its own
//! beside the model, and `--eval-world` opens its world beside the rest
//! (`beside.rs`: one training leaves a third of this 2-core machine idle);
//! `--sequential` does the same work one thing after another, with the
//! same figures bit for bit.
//!
//! Outputs, in `--out` (default `ship-detection-out/`): `model.bpk` (burn's
//! burnpack record), `metrics.json`, `heldout.png` (held-out days: RGB,
//! true ships outlined cyan, predicted ships yellow, no data grey) and
//! `terminals.png` (per terminal, ships over the month).

mod args; // the command line; the burn device `--device` names
mod baseline; // the threshold baselines to beat
mod beside; // work on a thread and a one-thread rayon pool of its own
mod calibrate; // a model's threshold, chosen on the training days
mod data; // the loaders; the day slices of a batch each pass uses
mod metrics; // pixel counts, ships, events, terminals: a detector scored
mod model; // the per-day UNet and the masked loss
mod picture; // heldout.png, terminals.png
mod predict; // every detector behind one call
mod report; // what a run measured: metrics.json
mod ships; // ships as instances: matching at IoU 0.3, arrivals and departures
mod temporal; // the temporal model over a place's whole daily stack
#[cfg(test)]
mod tests; // shortened trainings, online and from shards
mod train; // the two training loops

use std::process::ExitCode;
use std::time::Instant;

use args::{Opts, device};
use baseline::baseline;
use burn::module::Module;
use chrono::NaiveDate;
use data::{Loaders, loaders};
use metrics::{EvalSet, Evaluation, Scored, evaluate, per_day_table, ship_line};
use model::ShipNet;
use picture::{month_chart, picture};
use predict::Predictor;
use report::{Report, WorldReport, report_json};
use temporal::{Parts, TemporalNet};

/// Any error, printed by its message.
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// An error that has only `Debug` (burn's), as the example's error.
fn dbg_err(e: impl std::fmt::Debug) -> Box<dyn std::error::Error + Send + Sync> {
    format!("{e:?}").into()
}

fn main() -> ExitCode {
    // parsing the command line starts no thread: mallopt still comes first
    let o = Opts::from_args();
    if !o.keep_glibc_defaults {
        keep_freed_memory();
    }
    match run(&o) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// burn's CPU backend allocates and frees tensors of several megabytes in
/// every operation. glibc serves blocks over its mmap threshold (128 KiB at
/// first) with fresh mappings and returns freed memory above its trim
/// threshold to the kernel, so each step faults the same pages in again
/// (and unmapping them stops both cores to flush their TLBs). Serving
/// blocks up to 32 MiB from the heap and keeping what is freed there cut
/// the minor page faults of a shortened run from 4.7–5.0 M to 1.3 M and its
/// system time from 14–15 s to 5–6 s (wall 111 s to 97–100 s, the same
/// losses; `--keep-glibc-defaults` runs without it). The same effect
/// without code:
/// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647`.
#[allow(unsafe_code)] // mallopt, above
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of glibc's allocation thresholds; it is
    // called at the start of `main`, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn say(o: &Opts, s: impl AsRef<str>) {
    if !o.quiet {
        println!("{}", s.as_ref());
    }
}

/// A trained (or loaded) detector.
enum Trained {
    Temporal(Box<TemporalNet>),
    Unet(Box<ShipNet>),
}

impl Trained {
    /// The model as a detector cut at logit `thr`.
    fn predictor(&self, thr: f32) -> Predictor<'_> {
        match self {
            Trained::Temporal(m) => Predictor::Temporal(m, thr),
            Trained::Unet(m) => Predictor::Unet(m, thr),
        }
    }
    fn save(&self, path: &std::path::Path) -> Res<()> {
        match self {
            Trained::Temporal(m) => m.clone().save_file(path),
            Trained::Unet(m) => m.clone().save_file(path),
        }
        .map_err(|e| format!("{}: {e:?}", path.display()).into())
    }
}

fn fmt_days(d: &[NaiveDate]) -> String {
    d.iter()
        .map(|d| d.format("%m-%d").to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The unseen world's loaders and held-out days (`--eval-world`).
type World = (Loaders, EvalSet);

/// The whole run: data, the baselines, training (or `--eval`'s scoring of
/// a saved model), the scores, the outputs. The unseen world is opened
/// (generated, the first time: ~40 s) beside the rest, on a core of its own.
fn run(o: &Opts) -> Res<Report> {
    let t_start = Instant::now();
    std::thread::scope(|s| {
        let world = match &o.eval_world {
            Some(cfg) => {
                // a config that does not parse fails the run now, not after the training
                tilestack::DatasetConfig::from_file(cfg)?;
                let oo = Opts {
                    config: cfg.clone(),
                    shards: None,
                    holdout_from: None,
                    out: o.out.join("eval-world"),
                    ..o.clone()
                };
                let device = device(&o.device)?.autodiff();
                Some(beside::beside(
                    s,
                    "eval-world",
                    o.sequential,
                    move || -> Res<World> {
                        let lw = loaders(&oo, &device)?;
                        let wset = EvalSet::read(&lw, oo.min_ship_px)?;
                        Ok((lw, wset))
                    },
                )?)
            }
            None => None,
        };
        run_with(o, t_start, world)
    })
}

/// [`run`], given the unseen world being opened.
fn run_with(o: &Opts, t_start: Instant, world: Option<beside::Pending<'_, World>>) -> Res<Report> {
    let device = device(&o.device)?;
    device.seed(o.seed);
    let ad = device.clone().autodiff();
    let l = loaders(o, &ad)?;
    say(
        o,
        format!(
            "data: {} ({} samples, batch {:?}, {} terminal places), label {:?}, held out from {}",
            o.shards
                .as_deref()
                .unwrap_or(&o.config.display().to_string()),
            l.train.batches().num_items(),
            l.train.batches().batch_shape(),
            l.terminals.as_ref().map_or(0, |t| t.batches().num_items()),
            l.info.label,
            l.info.holdout_from
        ),
    );
    let (base, train_days, heldout_days, train_slices) = baseline(&l)?;
    say(o, format!("train days:    {}", fmt_days(&train_days)));
    say(o, format!("held-out days: {}", fmt_days(&heldout_days)));
    let micro = o.micro_batch;
    let set = EvalSet::read(&l, o.min_ship_px)?;
    let (bright, median) = thresholds(&base, &set, &l.info, micro, &device)?;
    say(
        o,
        format!(
            "brightness baseline (threshold {:.0} DN tuned on train days): pixel F1 {:.3} \
             (F1 {:.3} at the held-out days' own best {:.0} DN); {}",
            base.brightness.train_tuned_dn,
            base.brightness.train_tuned.f1(),
            base.brightness.oracle.f1(),
            base.brightness.oracle_dn,
            ship_line(&bright)
        ),
    );
    say(
        o,
        format!(
            "temporal-median baseline (day minus its median over valid days >= {:.0} DN): pixel F1 {:.3}; {}",
            base.median.train_tuned_dn,
            base.median.train_tuned.f1(),
            ship_line(&median)
        ),
    );

    let parts = Parts {
        metadata: !o.no_metadata,
        mask: !o.no_mask_attention,
    };
    let mut trained = match o.model.as_str() {
        "unet" => Trained::Unet(Box::new(ShipNet::new(l.info.bands, o.width, &ad))),
        _ => Trained::Temporal(Box::new(TemporalNet::new(
            l.info.bands,
            l.info.extra_planes,
            o.width,
            parts,
            &ad,
        ))),
    };
    let mut log = train::Log::default();
    let mut unet_model = match &o.eval_unet {
        Some(path) => Some(
            ShipNet::new(l.info.bands, o.width, &ad)
                .try_load_file(path)
                .map_err(|e| format!("{}: {e:?}", path.display()))?,
        ),
        None => None,
    };
    if let Some(path) = &o.eval {
        trained = match trained {
            Trained::Temporal(m) => Trained::Temporal(Box::new(
                m.try_load_file(path)
                    .map_err(|e| format!("{}: {e:?}", path.display()))?,
            )),
            Trained::Unet(m) => Trained::Unet(Box::new(
                m.try_load_file(path)
                    .map_err(|e| format!("{}: {e:?}", path.display()))?,
            )),
        };
    } else {
        // The per-day UNet baseline trains beside the model (`beside.rs`).
        let with_unet = o.model == "temporal" && o.unet_epochs > 0 && unet_model.is_none();
        if with_unet {
            say(
                o,
                format!(
                    "the per-day UNet baseline, {} epochs, trains {}:",
                    o.unet_epochs,
                    if o.sequential {
                        "first (--sequential)"
                    } else {
                        "beside the model"
                    }
                ),
            );
        }
        let stop = std::sync::atomic::AtomicBool::new(false);
        let main_lane = train::Lane {
            name: "",
            train: &l.train,
            stop: &stop,
        };
        // Made here, after the model: its weights are drawn in that order,
        // and its epochs are those it drew when it trained after the model.
        let unet_start = match with_unet {
            true => Some((
                l.twin(o.epochs as u64)?,
                ShipNet::new(l.info.bands, o.width, &ad),
            )),
            false => None,
        };
        let (l, stop) = (&l, &stop);
        let unet = unet_start.map(|(twin, init)| {
            move || {
                let lane = train::Lane {
                    name: "per-day UNet ",
                    train: &twin,
                    stop,
                };
                let mut ulog = train::Log::default();
                lane.end(train::unet(
                    o,
                    l,
                    init,
                    o.unet_epochs,
                    train_slices,
                    lane,
                    &mut ulog,
                ))
            }
        });
        let (t, u) = beside::both(
            "unet-baseline",
            o.sequential,
            || {
                main_lane.end(match trained {
                    Trained::Temporal(m) => train::temporal(o, l, *m, main_lane, &mut log)
                        .map(|m| Trained::Temporal(Box::new(m))),
                    Trained::Unet(m) => {
                        train::unet(o, l, *m, o.epochs, train_slices, main_lane, &mut log)
                            .map(|m| Trained::Unet(Box::new(m)))
                    }
                })
            },
            unet,
        )?;
        trained = t;
        if let Some(u) = u {
            let p = o.out.join("unet.bpk");
            std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
            u.clone()
                .save_file(&p)
                .map_err(|e| format!("{}: {e:?}", p.display()))?;
            unet_model = Some(u);
        }
    }
    // The model runs once over every evaluation day: its threshold (the
    // training days), the sensitivity check and the evaluation (the
    // held-out days) all count from these scores.
    let t_eval = Instant::now();
    let (scores, unet_scores) = beside::both(
        "unet-scores",
        o.sequential,
        || set.score(&trained.predictor(0.0), &l.info, micro, &device),
        unet_model
            .as_ref()
            .map(|u| || set.score(&Predictor::Unet(u, 0.0), &l.info, micro, &device)),
    )?;
    let cal = threshold(o, "model", &trained.predictor(0.0), &set, &scores, &l.info);
    let thr = cal.as_ref().map_or(0.0, |c| c.threshold);
    // How much the choice matters: the held-out ship F1 at every logit
    // tried (reported, never used to choose).
    let sensitivity = cal.as_ref().map(|_| {
        let s = calibrate::sweep(
            &trained.predictor(0.0),
            &set,
            &scores,
            &l.info,
            data::Split::Heldout,
        );
        say(
            o,
            format!(
                "held-out ship F1 by logit (not used to choose): {}",
                s.iter()
                    .filter(|t| t.0.fract() == 0.0)
                    .map(|t| format!("{:+.0}: {:.3}", t.0, t.1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        s
    });
    let ev = evaluate(&trained.predictor(thr), &set, &scores, &l.info, true);
    say(
        o,
        format!(
            "evaluation (one forward pass over every day{}; threshold, scores): {:.1} s",
            match (&unet_model, o.sequential) {
                (None, _) => "",
                (Some(_), false) => ", the per-day UNet's beside it",
                (Some(_), true) => ", the per-day UNet's before it",
            },
            t_eval.elapsed().as_secs_f64()
        ),
    );
    let (unet_cal, unet_base) = match (&unet_model, unet_scores) {
        (Some(u), Some(scores)) => {
            let c = threshold(
                o,
                "per-day UNet",
                &Predictor::Unet(u, 0.0),
                &set,
                &scores,
                &l.info,
            );
            let t = c.as_ref().map_or(0.0, |c| c.threshold);
            let ev = evaluate(&Predictor::Unet(u, t), &set, &scores, &l.info, false);
            (c, Some((ev, t)))
        }
        _ => (None, None),
    };
    say(o, per_day_table(&ev));
    say(o, terminal_table(&ev));
    say(o, format!("model: {}", ship_line(&ev)));
    let unseen_by_optical =
        metrics::evaluate_unseen_by_optical(&trained.predictor(thr), &set, &scores, &l.info);
    if let (Some((blind, days)), Some(name)) = (&unseen_by_optical, &l.info.extra) {
        let mut which: Vec<NaiveDate> = days.iter().map(|d| d.1).collect();
        which.sort_unstable();
        which.dedup();
        say(
            o,
            format!(
                "where only {name:?} sees (held-out place-days with the berths under half seen by the optical input: {} over {}), on {name:?}'s pixels: pixel P {:.3} R {:.3} F1 {:.3}; {}",
                days.len(),
                fmt_days(&which),
                blind.counts.precision(),
                blind.counts.recall(),
                blind.counts.f1(),
                ship_line(blind)
            ),
        );
        say(o, per_day_table(blind));
    }

    let shared = metrics::evaluate_shared(&trained.predictor(thr), &set, &scores, &l.info);
    if let (Some(ev), Some(name)) = (&shared, &l.info.extra) {
        say(
            o,
            format!(
                "on every held-out day and pixel the optical input or {name:?} observed (as --inputs s2, {name}, s2,{name} are all scored; nothing predicted where the model reads nothing): pixel P {:.3} R {:.3} F1 {:.3}; {}",
                ev.counts.precision(),
                ev.counts.recall(),
                ev.counts.f1(),
                ship_line(ev)
            ),
        );
        say(o, per_day_table(ev));
    }

    // another world, never trained on
    let mut other = None;
    if let (Some(cfg), Some(world)) = (&o.eval_world, world) {
        let (lw, wset) = world.join()?;
        let (model, unet) = beside::both(
            "unet-scores",
            o.sequential,
            || scored(&trained.predictor(thr), &wset, &lw.info, micro, &device),
            unet_model
                .as_ref()
                .zip(unet_base.as_ref())
                .map(|(u, (_, t))| {
                    || scored(&Predictor::Unet(u, *t), &wset, &lw.info, micro, &device)
                }),
        )?;
        let (b, m) = thresholds(&base, &wset, &lw.info, micro, &device)?;
        say(
            o,
            format!(
                "unseen world {} (held out from {}): model {}\n  brightness baseline ship F1 {:.3}, temporal-median baseline ship F1 {:.3}, per-day UNet {}",
                cfg.display(),
                lw.info.holdout_from,
                ship_line(&model),
                b.ships.f1(),
                m.ships.f1(),
                unet.as_ref()
                    .map_or("-".to_string(), |u| format!("ship F1 {:.3}", u.ships.f1()))
            ),
        );
        other = Some(WorldReport {
            config: cfg.clone(),
            model,
            brightness: b,
            median: m,
            unet,
        });
    }

    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let model_path = match &o.eval {
        Some(p) => p.clone(),
        None => {
            let p = o.out.join("model.bpk");
            trained.save(&p)?;
            p
        }
    };
    let png = o.out.join("heldout.png");
    picture(&ev.shown, &png)?;
    let chart = o.out.join("terminals.png");
    month_chart(&ev, &l.info, &chart)?;
    let report = Report {
        baseline: base,
        brightness: bright,
        median,
        unet: unet_base.map(|u| u.0),
        calibration: cal,
        sensitivity,
        unet_calibration: unet_cal,
        train_days,
        heldout_days,
        evaluated_days: ev.days(),
        trained_days: log.trained_days.into_iter().collect(),
        epochs: log.epochs,
        step_losses: log.losses,
        model: ev,
        unseen_by_optical,
        shared,
        other_world: other,
        model_path: Some(model_path.clone()),
        seconds: t_start.elapsed().as_secs_f64(),
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
            "wrote {}, {}, {}, {} ({:.0} s in all)",
            model_path.display(),
            png.display(),
            chart.display(),
            metrics.display(),
            t_start.elapsed().as_secs_f64()
        ),
    );
    println!(
        "other baselines (ship F1): temporal-median difference {:.3}, per-day UNet {}; \
         arrivals/departures F1: model {:.3}, temporal-median {:.3}; count error per terminal-day: model {:.2}, temporal-median {:.2}",
        report.median.ships.f1(),
        report
            .unet
            .as_ref()
            .map_or("not trained (--unet-epochs N)".to_string(), |u| format!(
                "{:.3}",
                u.ships.f1()
            )),
        report.model.events.f1(),
        report.median.events.f1(),
        report.model.count_error().0,
        report.median.count_error().0,
    );
    println!(
        "model F1 {:.3}, brightness baseline F1 {:.3}",
        report.model.ships.f1(),
        report.brightness.ships.f1()
    );
    Ok(report)
}

/// A model's logit threshold: calibrated on the training days (printed),
/// or `None` (0) with `--no-calibration`. `scores`: `set` scored by the model.
fn threshold(
    o: &Opts,
    what: &str,
    model: &Predictor,
    set: &EvalSet,
    scores: &Scored,
    info: &data::DataInfo,
) -> Option<calibrate::Calibration> {
    if o.no_calibration {
        return None;
    }
    let c = calibrate::calibrate(model, set, scores, info);
    let at = |t: f32| c.tried.iter().find(|x| x.0 == t).map_or(f64::NAN, |x| x.1);
    say(
        o,
        format!(
            "{what} threshold: logit {:.2} (training days' ship F1 {:.3}; {:.3} at logit 0)",
            c.threshold,
            at(c.threshold),
            at(0.0)
        ),
    );
    Some(c)
}

/// `pred` scored over `set` and evaluated at its threshold.
fn scored(
    pred: &Predictor,
    set: &EvalSet,
    info: &data::DataInfo,
    micro: usize,
    device: &burn::tensor::Device,
) -> Res<Evaluation> {
    let scores = set.score(pred, info, micro, device)?;
    Ok(evaluate(pred, set, &scores, info, false))
}

/// The brightness and temporal-median baselines (thresholds tuned on the
/// training world's training days) scored on `set`'s held-out days.
fn thresholds(
    base: &baseline::Baseline,
    set: &EvalSet,
    info: &data::DataInfo,
    micro: usize,
    device: &burn::tensor::Device,
) -> Res<(Evaluation, Evaluation)> {
    Ok((
        scored(
            &Predictor::Brightness(base.brightness.train_tuned_dn),
            set,
            info,
            micro,
            device,
        )?,
        scored(
            &Predictor::MedianDiff(base.median.train_tuned_dn),
            set,
            info,
            micro,
            device,
        )?,
    ))
}

/// Per terminal and held-out day: true and predicted ship counts.
fn terminal_table(ev: &Evaluation) -> String {
    let mut s = String::from("terminal     held-out day   true  predicted");
    for (name, days) in &ev.terminals {
        for d in days.iter().filter(|d| d.heldout) {
            s += &match &d.ships {
                Some((t, p)) => format!("\n{name:<12} {}   {:>4}  {:>9}", d.day, t.len(), p.len()),
                None => format!("\n{name:<12} {}   unknown (under half observed)", d.day),
            };
        }
    }
    s
}
