//! A shortened training on a small version of the Oakland dataset
//! (4 places, 64 px tiles): the loss falls, the metrics come from the
//! held-out days only, the saved model reproduces them, and shards feed
//! the same batches in the same order as the online loader.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use tilestack::DatasetConfig;

use crate::args::Opts;
use crate::run;

/// burn's seeded initialisation is one RNG per process: trainings in
/// concurrent tests would interleave their draws. One at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `datasets/oakland-ships.toml`, shrunk, written into `dir`.
fn small_config(dir: &Path) -> PathBuf {
    small_config_of(dir, "oakland-ships.toml")
}

/// `datasets/{name}`, shrunk, written into `dir`.
fn small_config_of(dir: &Path, name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let text = std::fs::read_to_string(root.join(name))
        .expect("the dataset config")
        .replace(
            "\"oakland-port/terminals.geojson\"",
            &format!("{:?}", root.join("oakland-port/terminals.geojson")),
        )
        .replace("count = 32", "count = 4")
        .replace("tile_size = 128", "tile_size = 64")
        .replace("batch_size = 8", "batch_size = 2");
    let path = dir.join(format!("small-{name}"));
    std::fs::write(&path, text).expect("write the config");
    path
}

fn short(config: PathBuf, out: PathBuf) -> Opts {
    Opts {
        config,
        out,
        epochs: 2,
        max_steps: Some(6),
        width: 8,
        micro_batch: 6,
        lr: 3e-3,
        device: "cpu".into(),
        quiet: true,
        ..Opts::default()
    }
}

fn mean(v: &[f32]) -> f32 {
    v.iter().sum::<f32>() / v.len().max(1) as f32
}

/// The scores two runs must share to be the same model on the same data.
fn scores(e: &crate::metrics::Evaluation) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        e.counts, e.ships, e.events, e.ships_per_day
    )
}

#[test]
fn shortened_temporal_training_learns_on_train_days_and_scores_held_out_days_only() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Opts {
        epochs: 3,
        max_steps: Some(4),
        places_per_step: 1,
        ..short(small_config(dir.path()), dir.path().join("out"))
    };
    let r = run(&o).expect("a shortened training");
    let split = NaiveDate::from_ymd_opt(2019, 8, 19).expect("a day");

    let n = r.step_losses.len();
    assert_eq!(n, 12, "3 epochs × 4 steps");
    let (first, last) = (mean(&r.step_losses[..4]), mean(&r.step_losses[n - 4..]));
    assert!(last < first, "loss {first} → {last}: {:?}", r.step_losses);

    assert!(!r.trained_days.is_empty() && r.trained_days.iter().all(|d| *d < split));
    assert!(!r.evaluated_days.is_empty());
    assert!(
        r.evaluated_days.iter().all(|d| *d >= split),
        "{:?}",
        r.evaluated_days
    );
    assert!(r.evaluated_days.iter().all(|d| r.heldout_days.contains(d)));
    assert!(
        r.unseen_by_optical.is_none(),
        "no other input, no such days"
    );
    // Held-out pixels only: the model's counts cover exactly the pixels
    // the baselines were scored on (their held-out histograms).
    let c = r.model.counts;
    for b in [r.baseline.brightness.oracle, r.baseline.median.oracle] {
        assert_eq!(c.tp + c.fp + c.fn_ + c.tn, b.tp + b.fp + b.fn_ + b.tn);
        assert_eq!(c.tp + c.fn_, b.tp + b.fn_, "the same ship pixels");
    }
    assert!(c.tp + c.fn_ > 0, "held-out ships to find");
    // every detector is scored on the same true ships
    let truth = |e: &crate::metrics::Evaluation| e.ships.tp + e.ships.fn_;
    assert!(truth(&r.model) > 0);
    assert_eq!(truth(&r.model), truth(&r.brightness));
    assert_eq!(truth(&r.model), truth(&r.median));
    assert_eq!(
        r.model.events.tp + r.model.events.fn_,
        r.median.events.tp + r.median.events.fn_,
        "the same true arrivals and departures"
    );
    // one place per terminal, every observed day of the month
    assert_eq!(r.model.terminals.len(), 2, "{:?}", r.model.terminals.keys());
    for days in r.model.terminals.values() {
        assert!(days.iter().any(|d| d.heldout) && days.iter().any(|d| !d.heldout));
        assert!(
            days.iter()
                .any(|d| d.ships.as_ref().is_some_and(|s| !s.0.is_empty()))
        );
    }

    // The saved model loads back and reproduces the held-out scores.
    let path = r.model_path.clone().expect("a saved model");
    let again = run(&Opts {
        eval: Some(path),
        ..o.clone()
    })
    .expect("evaluation of the saved model");
    assert_eq!(scores(&again.model), scores(&r.model));
    assert_eq!(again.model.terminals, r.model.terminals);
    assert!(again.step_losses.is_empty(), "--eval does not train");
    // The threshold: chosen on the training days, so the same again.
    let cal = r.calibration.clone().expect("calibrated by default");
    assert!(crate::calibrate::grid().contains(&cal.threshold), "{cal:?}");
    assert_eq!(again.calibration, r.calibration);
    let best = cal.tried.iter().map(|t| t.1).fold(f64::MIN, f64::max);
    assert!(
        cal.tried
            .iter()
            .any(|t| t.0 == cal.threshold && t.1 == best)
    );
    for f in ["heldout.png", "terminals.png", "model.bpk"] {
        assert!(dir.path().join("out").join(f).is_file(), "{f}");
    }
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/metrics.json")).expect("metrics.json"),
    )
    .expect("JSON");
    assert!(m["model"]["ships"]["f1"].is_number());
    assert_eq!(
        m["calibration"]["model"]["threshold_logit"].as_f64(),
        Some(f64::from(cal.threshold))
    );
    assert_eq!(
        m["calibration"]["model"]["train_days"]
            .as_array()
            .map(Vec::len),
        Some(33)
    );
    assert!(m["temporal_median_baseline"]["arrivals_departures"]["f1"].is_number());
}

#[test]
fn shortened_unet_training_and_ablations_run_and_learn() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(dir.path());
    let r = run(&Opts {
        model: "unet".into(),
        no_calibration: true,
        ..short(config.clone(), dir.path().join("unet"))
    })
    .expect("the per-day UNet");
    assert_eq!(r.calibration, None, "--no-calibration: logit 0");
    let n = r.step_losses.len();
    assert_eq!(n, 12, "2 epochs × 6 steps");
    assert!(mean(&r.step_losses[n - 4..]) < mean(&r.step_losses[..4]));
    assert!(r.model.ships.tp + r.model.ships.fn_ > 0);
    // the ablated temporal model has other parts and still trains
    let a = run(&Opts {
        no_metadata: true,
        no_mask_attention: true,
        places_per_step: 2,
        ..short(config, dir.path().join("ablated"))
    })
    .expect("the ablated temporal model");
    assert_eq!(a.step_losses.len(), 4, "2 epochs × 2 steps of two places");
    assert!(a.step_losses.iter().all(|l| l.is_finite()));
    // with Sentinel-1 as an extra input, on its own days
    let s1 = run(&Opts {
        with_input: Some("s1".into()),
        places_per_step: 2,
        ..short(
            small_config_of(dir.path(), "oakland-ships-s1-daily.toml"),
            dir.path().join("s1"),
        )
    })
    .expect("the temporal model with Sentinel-1");
    assert_eq!(s1.step_losses.len(), 4);
    assert!(s1.step_losses.iter().all(|l| l.is_finite()));
    // radar-only days train too (the loss covers what some input saw), the
    // optical scores stay on optical days, and the held-out days the
    // optical input cannot see are scored on the radar's pixels
    assert!(
        s1.trained_days.iter().any(|d| !s1.train_days.contains(d)),
        "a day without an optical scene trained: {:?} vs {:?}",
        s1.trained_days,
        s1.train_days
    );
    assert!(
        s1.evaluated_days
            .iter()
            .all(|d| s1.heldout_days.contains(d))
    );
    let (blind, days) = s1
        .unseen_by_optical
        .as_ref()
        .expect("held-out days only the radar sees (08-20 and 08-29 have no S2 scene)");
    assert!(!days.is_empty());
    let last_train = *s1.train_days.last().expect("training days");
    assert!(days.iter().all(|(_, d)| *d > last_train), "{days:?}");
    let no_s2 = NaiveDate::from_ymd_opt(2019, 8, 20).expect("a day");
    assert!(days.iter().any(|(_, d)| *d == no_s2), "{days:?}");
    assert!(blind.counts.tp + blind.counts.fp + blind.counts.fn_ + blind.counts.tn > 0);
    // Sentinel-1 alone (`--inputs s1`): it trains and is scored on the
    // radar's own days; all three choices are scored on the same held-out
    // days and pixels (the same truth on each)
    let s1_only = run(&Opts {
        inputs: Some("s1".into()),
        places_per_step: 2,
        ..short(
            small_config_of(dir.path(), "oakland-ships-s1-daily.toml"),
            dir.path().join("s1-only"),
        )
    })
    .expect("the temporal model with Sentinel-1 alone");
    assert!(s1_only.step_losses.iter().all(|l| l.is_finite()));
    assert!(
        s1_only.evaluated_days.contains(&no_s2),
        "the radar's own held-out days: {:?}",
        s1_only.evaluated_days
    );
    assert_eq!(s1_only.unseen_by_optical.as_ref().map(|u| &u.1), Some(days));
    let s2_only = run(&Opts {
        inputs: Some("s2".into()),
        ..short(
            small_config_of(dir.path(), "oakland-ships-s1-daily.toml"),
            dir.path().join("s2-only"),
        )
    })
    .expect("the temporal model with Sentinel-2 alone");
    assert!(s2_only.unseen_by_optical.is_none());
    assert!(
        s2_only
            .evaluated_days
            .iter()
            .all(|d| s2_only.heldout_days.contains(d))
    );
    let truth = |r: &crate::report::Report| {
        let e = r.shared.as_ref().expect("scored on the shared pixels");
        e.per_day
            .iter()
            .map(|(d, c)| (*d, c.tp + c.fn_, c.tp + c.fn_ + c.fp + c.tn))
            .collect::<Vec<_>>()
    };
    assert_eq!(truth(&s1_only), truth(&s1));
    assert_eq!(truth(&s2_only), truth(&s1));
    assert!(truth(&s1).iter().any(|(d, ..)| *d == no_s2));
    let on_shared = |r: &crate::report::Report| r.shared.as_ref().map(|e| e.per_day[&no_s2]);
    assert_eq!(
        on_shared(&s2_only).map(|c| (c.tp, c.fp)),
        Some((0, 0)),
        "no S2 scene on 08-20: the S2 model predicts nothing there"
    );
    let e = run(&Opts {
        with_input: Some("s3".into()),
        ..short(
            small_config_of(dir.path(), "oakland-ships-s1.toml"),
            dir.path().join("bad"),
        )
    })
    .expect_err("an input the dataset lacks");
    assert!(e.to_string().contains("--with-input \"s3\""), "{e}");
}

#[test]
fn shards_feed_the_trainer_the_online_batches_in_the_online_order() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(dir.path());
    let cfg = DatasetConfig::from_file(&config).expect("config");
    let shards = dir.path().join("shards");
    tilestack::materialize(
        &cfg,
        &tilestack::shard::MaterializeOptions::new(shards.display().to_string()),
        &mut |_| {},
    )
    .expect("materialize");
    let online = run(&short(config.clone(), dir.path().join("a"))).expect("online");
    let offline = run(&Opts {
        shards: Some(shards.display().to_string()),
        ..short(config, dir.path().join("b"))
    })
    .expect("from shards");
    // Same batches in the same order, same seed: the same steps, bit for bit.
    assert_eq!(online.step_losses, offline.step_losses);
    assert_eq!(scores(&online.model), scores(&offline.model));
    assert_eq!(online.trained_days, offline.trained_days);
}

/// The per-day UNet baseline trains and scores beside the model (and the
/// unseen world opens beside both) without touching the model's training:
/// the same steps, bit for bit, as `--sequential`. The UNet draws the
/// epochs it drew when it trained after the model, its saved record
/// reloads to the same scores, and a stopped lane trains nothing.
#[test]
fn the_unet_beside_the_model_leaves_the_model_as_the_sequential_run() {
    use std::sync::atomic::AtomicBool;

    use crate::train::{Lane, Log};

    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(dir.path());
    let with_unet = |out: &str, sequential: bool| Opts {
        unet_epochs: 2,
        eval_world: Some(config.clone()),
        sequential,
        ..short(config.clone(), dir.path().join(out))
    };
    let beside = run(&with_unet("beside", false)).expect("the UNet beside the model");
    let after = run(&with_unet("after", true)).expect("--sequential");
    assert_eq!(beside.step_losses, after.step_losses);
    assert_eq!(scores(&beside.model), scores(&after.model));
    let unet = |r: &crate::report::Report| scores(r.unet.as_ref().expect("the UNet scored"));
    let world = |r: &crate::report::Report| {
        let w = r.other_world.as_ref().expect("the unseen world scored");
        (scores(&w.model), w.unet.as_ref().map(scores))
    };
    // the UNet too: its own pool's one thread computes what two did
    assert_eq!(unet(&beside), unet(&after));
    assert_eq!(world(&beside), world(&after));
    assert!(
        world(&beside).1.is_some(),
        "the UNet scored on the unseen world"
    );
    assert!(
        beside
            .unet
            .as_ref()
            .is_some_and(|u| u.ships.tp + u.ships.fn_ > 0)
    );

    // the saved UNet reloads to the scores it had
    let out = dir.path().join("beside");
    let again = run(&Opts {
        eval: Some(out.join("model.bpk")),
        eval_unet: Some(out.join("unet.bpk")),
        ..with_unet("again", false)
    })
    .expect("both saved models, evaluated");
    assert_eq!(unet(&again), unet(&beside));
    assert_eq!(world(&again), world(&beside));

    // its loader: the training loader's epochs from `--epochs` on
    let o = short(config.clone(), dir.path().join("lanes"));
    let device = burn::tensor::Device::flex().autodiff();
    let l = crate::data::loaders(&o, &device).expect("the loaders");
    let twin = l.twin(2).expect("a second training loader");
    assert_eq!(twin.batches().next_epoch(), 2);
    for e in 2..4 {
        assert_eq!(
            twin.batches().epoch_order(e),
            l.train.batches().epoch_order(e)
        );
    }
    assert_ne!(
        l.train.batches().epoch_order(0),
        l.train.batches().epoch_order(2)
    );

    // a lane whose flag is set trains nothing; an error sets the flag
    let stop = AtomicBool::new(false);
    let lane = Lane {
        name: "",
        train: &twin,
        stop: &stop,
    };
    assert!(lane.end::<()>(Err("the other loop failed".into())).is_err());
    let (.., slices) = crate::baseline::baseline(&l).expect("the day split");
    let mut log = Log::default();
    let m = crate::model::ShipNet::new(l.info.bands, o.width, &device);
    crate::train::unet(&o, &l, m, 2, slices, lane, &mut log).expect("a stopped training");
    assert!(log.epochs.is_empty() && log.losses.is_empty());
}

/// A model's initial weights depend on the seed and the order models are
/// made in, not on which one is first used: burn draws lazily, the models
/// draw when made ([`crate::model::drawn_now`]).
#[test]
fn models_draw_their_weights_when_made_not_when_first_used() {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;

    use crate::model::ShipNet;

    struct Weights(Vec<Vec<f32>>);
    impl ModuleVisitor for Weights {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let v = p
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 weights");
            self.0.push(v);
        }
    }
    let weights = |m: &ShipNet| {
        let mut w = Weights(Vec::new());
        m.visit(&mut w);
        w.0
    };
    let _one = serial();
    let device = burn::tensor::Device::flex();
    let made = |second_first: bool| {
        device.seed(11);
        let a = ShipNet::new(4, 4, &device);
        let b = ShipNet::new(4, 4, &device);
        if second_first {
            let wb = weights(&b);
            (weights(&a), wb)
        } else {
            (weights(&a), weights(&b))
        }
    };
    let (a, b) = made(false);
    assert!(a != b, "two models, two draws");
    assert!(
        made(true) == (a, b),
        "the second model's weights depend on which model is read first"
    );
}
