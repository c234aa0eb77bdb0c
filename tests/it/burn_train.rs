//! tilestack's `StackDataLoader` under burn's own training API (burn-train's
//! `SupervisedTraining::launch` with a `Learner`), over the small demo world
//! served on 127.0.0.1: a tiny conv net learns the "ships" label with a loss
//! masked by `valid`, and records every batch burn hands its training and
//! validation steps. Every epoch sees every sample once in a new seeded
//! order; the error policies behave under burn's loop (replace and nan train
//! on; fail ends `launch` with the sample's error in its result).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::optim::SgdConfig;
use burn::optim::lr_scheduler::constant::ConstantLr;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::LossMetric;
use burn::train::{
    InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep,
    TrainingError,
};
use tilestack::loader::{LoaderMetrics, SampleStatus};
use tilestack::{BatchLoader, LoaderConfig, StackDataLoader, TileBatch, TileDataset};

use crate::dataloader::{EAST, Fixture, WEST};

/// A whole training run may take this long before the test fails instead of hanging.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// One batch as a training or validation step received it.
#[derive(Debug, Clone)]
struct Step {
    epoch: u64,
    index: usize,
    samples: Vec<usize>,
    status: Vec<SampleStatus>,
    loss: f32,
}

/// What burn handed the model's steps, shared by every copy of the model.
#[derive(Debug, Default)]
struct Seen {
    train: Mutex<Vec<Step>>,
    valid: Mutex<Vec<Step>>,
}

/// One 3×3 conv from the `T·C` input channels of a stack to `T` ship logits.
#[derive(Module, Debug)]
struct ShipNet {
    conv: Conv2d,
    #[module(skip)]
    seen: Arc<Seen>,
}

impl ShipNet {
    fn new(steps: usize, bands: usize, seen: Arc<Seen>, device: &Device) -> ShipNet {
        ShipNet {
            conv: Conv2dConfig::new([steps * bands, steps], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            seen,
        }
    }

    /// The loss masked by `valid` (squared error of the ship probability,
    /// averaged over valid pixels), the predictions and targets as `[B, T·H·W]`.
    fn forward(&self, batch: &TileBatch) -> RegressionOutput {
        let [b, t, c, h, w] = batch.inputs.dims();
        let logits = self
            .conv
            .forward(batch.inputs.clone().reshape([b, t * c, h, w]));
        let target = batch.label("ships").expect("a ships label").clone();
        let valid = batch.valid.clone();
        let p = sigmoid(logits);
        let err = (p.clone() - target.clone()).powi_scalar(2) * valid.clone();
        let loss = err.sum().div(valid.sum().add_scalar(1.0));
        RegressionOutput::new(
            loss,
            p.reshape([b, t * h * w]),
            target.reshape([b, t * h * w]),
        )
    }

    fn record(&self, into: &Mutex<Vec<Step>>, batch: &TileBatch, loss: &Tensor<1>) {
        into.lock().unwrap().push(Step {
            epoch: batch.epoch,
            index: batch.index,
            samples: batch.samples.clone(),
            status: batch.status.clone(),
            loss: loss.clone().into_scalar::<f32>(),
        });
    }
}

impl TrainStep for ShipNet {
    type Input = TileBatch;
    type Output = RegressionOutput;

    fn step(&self, batch: TileBatch) -> TrainOutput<RegressionOutput> {
        let out = self.forward(&batch);
        self.record(&self.seen.train, &batch, &out.loss);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for ShipNet {
    type Input = TileBatch;
    type Output = RegressionOutput;

    fn step(&self, batch: TileBatch) -> RegressionOutput {
        let out = self.forward(&batch);
        self.record(&self.seen.valid, &batch, &out.loss);
        out
    }
}

// The tests' configs normalize the inputs: raw reflectances (thousands of DN)
// saturate the sigmoid at exactly 0 or 1 in f32 for some random initial
// weights, leaving no gradient at all (1 run in 8 did not train).

/// What a training run left behind.
#[derive(Debug)]
struct Run {
    train: Vec<Step>,
    valid: Vec<Step>,
    /// `LearningResult::error`, shown.
    error: Option<String>,
    /// The error is burn's `TrainingError::Dataset`.
    dataset_error: bool,
    interrupted: bool,
    /// The conv weights changed: burn's optimizer stepped.
    trained: bool,
    /// The train loader's metrics and the epoch its next `iter()` would run.
    metrics: Option<LoaderMetrics>,
    next_epoch: u64,
}

/// `f` on its own thread, failing the test (not hanging it) after `limit`;
/// a panic in `f` is the test's panic.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            thread.join().unwrap();
            v
        }
        Err(RecvTimeoutError::Timeout) => panic!("burn's training did not end within {limit:?}"),
        Err(RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().unwrap_err())
        }
    }
}

/// `epochs` epochs of `SupervisedTraining` over `ds`: a train and a valid
/// `StackDataLoader` of their own, SGD, the default (CLI) renderer, the
/// loss metric, artifacts in a temporary directory.
fn train(ds: Arc<TileDataset>, opts: LoaderConfig, epochs: usize) -> Run {
    within(RUN_LIMIT, move || {
        let device = Device::default();
        let train = Arc::new(StackDataLoader::new(ds.clone(), opts.clone(), &device).unwrap());
        let valid = Arc::new(StackDataLoader::new(ds, opts, &device).unwrap());
        let [_, t, c, _, _] = train.batches().batch_shape();
        let seen = Arc::new(Seen::default());
        // On the autodiff device, as burn-train's own tests build theirs: a
        // model built on the plain device and forked there by `launch` has
        // no parameter requiring a gradient (`backward` panics).
        let model = ShipNet::new(t, c, seen.clone(), &device.clone().autodiff());
        let before = model.conv.weight.val().into_data();
        let learner = Learner::new(model, SgdConfig::new().init(), ConstantLr::new(0.5));
        let dir = tempfile::tempdir().unwrap();
        let result = SupervisedTraining::new(dir.path(), train.clone(), valid)
            .num_epochs(epochs)
            .metrics((LossMetric::new(),))
            .with_metric_logger(InMemoryMetricLogger::new())
            .with_application_logger(None)
            .launch(learner);
        let after = result.model.conv.weight.val().into_data();
        Run {
            train: seen.train.lock().unwrap().clone(),
            valid: seen.valid.lock().unwrap().clone(),
            error: result.error.as_ref().map(|e| e.to_string()),
            dataset_error: matches!(result.error.as_deref(), Some(TrainingError::Dataset(_))),
            interrupted: result.interrupted.is_some(),
            trained: after.as_slice::<f32>().unwrap() != before.as_slice::<f32>().unwrap(),
            metrics: train.last_metrics(),
            next_epoch: train.batches().next_epoch(),
        }
    })
}

/// The steps of each epoch (the loader's epoch number), in the order burn ran them.
fn by_epoch(steps: &[Step]) -> BTreeMap<u64, Vec<&Step>> {
    let mut out: BTreeMap<u64, Vec<&Step>> = BTreeMap::new();
    for s in steps {
        out.entry(s.epoch).or_default().push(s);
    }
    out
}

fn order(steps: &[&Step]) -> Vec<usize> {
    steps
        .iter()
        .flat_map(|s| s.samples.iter().copied())
        .collect()
}

fn orders(steps: &[Step]) -> Vec<Vec<usize>> {
    by_epoch(steps).values().map(|e| order(e)).collect()
}

#[test]
fn burn_training_api_sees_every_sample_once_per_epoch_in_new_orders() {
    let f = Fixture::new();
    let pts: Vec<[f64; 2]> = (0..6)
        .map(|i| [WEST[i % 5][0] + 0.0005 * i as f64, WEST[i % 5][1]])
        .collect();
    let cfg = f.config(&pts, None, "[normalize]\nmean = [1500.0, 2000.0]\nstd = [1000.0, 1200.0]\n[loader]\nbatch_size = 2\nprefetch_batches = 2");
    let ds = f.dataset(&cfg);
    assert_eq!(ds.len(), 6);
    let planned = BatchLoader::new(ds.clone(), cfg.loader.clone()).unwrap();
    let a = train(ds, cfg.loader.clone(), 3);
    assert_eq!(a.error, None);
    assert!(!a.interrupted);
    assert!(a.trained, "burn's optimizer changed the weights");

    let epochs = by_epoch(&a.train);
    assert_eq!(
        epochs.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2],
        "3 train epochs"
    );
    for (&e, steps) in &epochs {
        let idx: Vec<usize> = steps.iter().map(|s| s.index).collect();
        assert_eq!(idx, [0, 1, 2], "epoch {e}: batches 0..3 in order");
        let mut seen = order(steps);
        assert_eq!(
            seen,
            planned.epoch_order(e),
            "epoch {e}: the loader's seeded order"
        );
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..6).collect::<Vec<_>>(),
            "epoch {e}: every sample once"
        );
        for s in steps {
            assert!(s.status.iter().all(|st| *st == SampleStatus::Ok), "{s:?}");
            assert!(s.loss.is_finite(), "{s:?}");
        }
    }
    let o = orders(&a.train);
    assert!(
        o[0] != o[1] || o[1] != o[2],
        "a new order each epoch: {o:?}"
    );

    // Validation ran after every train epoch, over every sample.
    let valid = by_epoch(&a.valid);
    assert_eq!(valid.len(), 3);
    for steps in valid.values() {
        let mut s = order(steps);
        s.sort_unstable();
        assert_eq!(s, (0..6).collect::<Vec<_>>());
    }
    // The loader burn drove is the one the test holds: its third epoch ended.
    let m = a.metrics.expect("an epoch ended");
    assert_eq!((m.epoch, m.batches, m.samples), (2, 3, 6), "{m}");
    assert_eq!(a.next_epoch, 3);

    // A second run with the same seed: the same orders.
    let b = train(f.dataset(&cfg), cfg.loader.clone(), 3);
    assert_eq!(b.error, None);
    assert_eq!(orders(&b.train), o, "same seed, same per-epoch orders");
}

#[test]
fn burn_training_api_error_policies() {
    let f = Fixture::new();
    let snap = f.broken_snapshot();
    let mut pts = WEST.to_vec();
    pts.push(EAST);
    let open = |policy: &str| {
        let cfg = f.config(
            &pts,
            Some(&format!("snapshot = {snap:?}")),
            &format!("[normalize]\nmean = [1500.0, 2000.0]\nstd = [1000.0, 1200.0]\n[loader]\nbatch_size = 2\nprefetch_batches = 2\nerrors = {policy:?}"),
        );
        let ds = f.dataset(&cfg);
        (ds, cfg.loader)
    };

    // replace: every epoch trains on 6 rows; the broken sample's row holds another.
    let (ds, opts) = open("replace");
    let east = ds.samples().iter().position(|s| s.id == "p5").unwrap();
    let run = train(ds, opts, 3);
    assert_eq!(run.error, None);
    assert!(run.trained);
    let epochs = by_epoch(&run.train);
    assert_eq!(epochs.len(), 3, "all 3 epochs trained");
    for (e, steps) in &epochs {
        let rows = order(steps);
        assert_eq!(rows.len(), 6, "epoch {e}");
        assert!(!rows.contains(&east), "epoch {e}: {rows:?}");
        let others: BTreeSet<usize> = (0..6).filter(|&s| s != east).collect();
        assert_eq!(rows.iter().copied().collect::<BTreeSet<_>>(), others);
        let replaced: Vec<&SampleStatus> = steps
            .iter()
            .flat_map(|s| &s.status)
            .filter(|st| **st != SampleStatus::Ok)
            .collect();
        assert_eq!(replaced.len(), 1, "epoch {e}: {replaced:?}");
        let SampleStatus::Replaced { failed, error } = replaced[0] else {
            panic!("epoch {e}: {replaced:?}")
        };
        assert_eq!(*failed, east);
        assert!(error.contains(".missing"), "{error}");
        assert!(steps.iter().all(|s| s.loss.is_finite()));
    }
    let m = run.metrics.expect("an epoch ended");
    assert!(m.replaced >= 1, "{m}");

    // nan: the row stays, invalid everywhere; the masked loss stays finite.
    let (ds, opts) = open("nan");
    let run = train(ds, opts, 1);
    assert_eq!(run.error, None);
    let rows: Vec<(usize, &SampleStatus)> = run
        .train
        .iter()
        .flat_map(|s| s.samples.iter().copied().zip(&s.status))
        .collect();
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .any(|(s, st)| *s == east && matches!(st, SampleStatus::Failed { .. })),
        "{rows:?}"
    );
    assert!(
        run.train.iter().all(|s| s.loss.is_finite()),
        "{:?}",
        run.train
    );
    assert_eq!(run.metrics.expect("the epoch ended").failed, 1);

    // fail: burn's loop stops at the failing batch and `launch` returns
    // with the loader's error (naming the sample and the URL) in its result.
    let (ds, opts) = open("fail");
    let bad = BatchLoader::new(ds.clone(), opts.clone())
        .unwrap()
        .epoch_order(0)
        .iter()
        .position(|&s| s == east)
        .unwrap()
        / 2;
    let run = train(ds, opts, 3);
    let err = run
        .error
        .clone()
        .expect("the result carries the loader's error");
    assert!(run.dataset_error, "a TrainingError::Dataset: {err}");
    assert!(!run.interrupted, "an error, not an interruption");
    assert!(err.contains(&format!("sample {east}")), "{err}");
    assert!(err.contains(".missing"), "names the URL: {err}");
    let idx: Vec<(u64, usize)> = run.train.iter().map(|s| (s.epoch, s.index)).collect();
    assert_eq!(
        idx,
        (0..bad).map(|i| (0, i)).collect::<Vec<_>>(),
        "the batches before the failing one, then no more"
    );
    assert!(run.valid.is_empty(), "no validation after the failed epoch");
    assert_eq!(run.next_epoch, 1, "burn asked for no further epoch");
}
