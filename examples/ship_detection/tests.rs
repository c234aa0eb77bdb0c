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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let text = std::fs::read_to_string(root.join("oakland-ships.toml"))
        .expect("the dataset config")
        .replace(
            "\"oakland-port/terminals.geojson\"",
            &format!("{:?}", root.join("oakland-port/terminals.geojson")),
        )
        .replace("count = 32", "count = 4")
        .replace("tile_size = 128", "tile_size = 64")
        .replace("batch_size = 8", "batch_size = 2");
    let path = dir.join("small-ships.toml");
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

#[test]
fn shortened_training_learns_on_train_days_and_scores_held_out_days_only() {
    let _one = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let o = short(small_config(dir.path()), dir.path().join("out"));
    let r = run(&o).expect("a shortened training");
    let split = NaiveDate::from_ymd_opt(2019, 8, 19).expect("a day");

    let n = r.step_losses.len();
    assert_eq!(n, 12, "2 epochs × 6 steps");
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
    // Held-out pixels only: the model's counts cover exactly the pixels
    // the baseline was scored on (its held-out histogram).
    let c = r.model;
    let b = r.baseline.oracle;
    assert_eq!(c.tp + c.fp + c.fn_ + c.tn, b.tp + b.fp + b.fn_ + b.tn);
    assert_eq!(c.tp + c.fn_, b.tp + b.fn_, "the same ship pixels");
    assert!(c.tp + c.fn_ > 0, "held-out ships to find");

    // The saved model loads back and reproduces the held-out counts.
    let path = r.model_path.clone().expect("a saved model");
    let again = run(&Opts {
        eval: Some(path),
        ..o.clone()
    })
    .expect("evaluation of the saved model");
    assert_eq!(again.model, r.model);
    assert!(again.step_losses.is_empty(), "--eval does not train");
    assert!(dir.path().join("out/heldout.png").is_file());
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/metrics.json")).expect("metrics.json"),
    )
    .expect("JSON");
    assert_eq!(m["epoch_metrics"].as_array().map(Vec::len), Some(2));
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
    assert_eq!(online.model, offline.model);
    assert_eq!(online.trained_days, offline.trained_days);
}
