//! Ship detection in burn, end to end: STAC search → daily stacks → the
//! `StackDataLoader` → a small UNet → held-out metrics, next to the
//! brightness threshold a user would try first.
//!
//! ```sh
//! cargo run --release --features demo,burn,plot --example ship_detection
//! cargo run --release --features demo,burn,plot --example ship_detection -- --shards shards/oakland-ships
//! cargo run --release --features demo,burn,plot --example ship_detection -- --config my-dataset.toml
//! cargo run --release --features demo,burn,plot --example ship_detection -- --eval ship-detection-out/model.bpk
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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};
use chrono::NaiveDate;
use tilestack::dataset::AugmentConfig;
use tilestack::loader::SampleStatus;
use tilestack::shard::ShardOptions;
use tilestack::{BatchLoader, DatasetConfig, ShardSet, StackDataLoader, TileBatch, TileDataset};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Command-line options (see `--help`).
#[derive(Debug, Clone)]
struct Opts {
    config: PathBuf,
    shards: Option<String>,
    eval: Option<PathBuf>,
    out: PathBuf,
    label: Option<String>,
    holdout_from: Option<NaiveDate>,
    epochs: usize,
    lr: f64,
    width: usize,
    micro_batch: usize,
    crop: Option<usize>,
    pos_weight: f32,
    max_steps: Option<usize>,
    device: String,
    seed: u64,
    quiet: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            config: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/datasets/oakland-ships.toml"
            )),
            shards: None,
            eval: None,
            out: PathBuf::from("ship-detection-out"),
            label: None,
            holdout_from: None,
            epochs: 24,
            lr: 2e-3,
            width: 16,
            micro_batch: 8,
            crop: None,
            pos_weight: 8.0,
            max_steps: None,
            device: default_device().into(),
            seed: 7,
            quiet: false,
        }
    }
}

const HELP: &str = "ship_detection: train a UNet on daily tile stacks, evaluate on held-out days

  --config FILE        dataset config (default datasets/oakland-ships.toml)
  --shards DIR|URL     train from shards written by `tilestack materialize`
  --eval MODEL         load a saved model and evaluate it on the held-out days only
  --out DIR            outputs: model.bpk, metrics.json, heldout.png (ship-detection-out)
  --label NAME         label layer (default: the config's first)
  --holdout-from DAY   first held-out day, YYYY-MM-DD (default: 60 % into the time range)
  --epochs N           (24)      --lr X (0.002)      --width N: first-level channels (16)
  --micro-batch N      day tiles per optimizer step (8)
  --crop N             train on random N px crops of each sample (default: whole tiles);
                       evaluation always sees whole tiles
  --pos-weight X       BCE weight of ship pixels (8)
  --max-steps N        optimizer steps per epoch at most (shortened runs)
  --device cpu|cuda|wgpu   (cuda/wgpu need the cargo feature)
  --seed N             model initialisation and step order (7)
  --quiet              only the final line";

impl Opts {
    fn parse(args: impl Iterator<Item = String>) -> Res<Opts> {
        let mut o = Opts::default();
        let mut it = args.peekable();
        while let Some(a) = it.next() {
            let mut val = |name: &str| {
                it.next()
                    .ok_or_else(|| format!("{name} needs a value (see --help)"))
            };
            match a.as_str() {
                "--config" => o.config = val(&a)?.into(),
                "--shards" => o.shards = Some(val(&a)?),
                "--eval" => o.eval = Some(val(&a)?.into()),
                "--out" => o.out = val(&a)?.into(),
                "--label" => o.label = Some(val(&a)?),
                "--holdout-from" => {
                    let v = val(&a)?;
                    o.holdout_from = Some(
                        NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                            .map_err(|e| format!("--holdout-from {v:?}: {e}"))?,
                    );
                }
                "--epochs" => o.epochs = num(&a, &val(&a)?)?,
                "--lr" => o.lr = num(&a, &val(&a)?)?,
                "--width" => o.width = num(&a, &val(&a)?)?,
                "--micro-batch" => o.micro_batch = num(&a, &val(&a)?)?,
                "--crop" => {
                    let v: usize = num(&a, &val(&a)?)?;
                    o.crop = (v > 0).then_some(v);
                }
                "--pos-weight" => o.pos_weight = num(&a, &val(&a)?)?,
                "--max-steps" => o.max_steps = Some(num(&a, &val(&a)?)?),
                "--device" => o.device = val(&a)?,
                "--seed" => o.seed = num(&a, &val(&a)?)?,
                "--quiet" => o.quiet = true,
                "-h" | "--help" => {
                    println!("{HELP}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?} (see --help)").into()),
            }
        }
        if o.width == 0 || o.micro_batch == 0 {
            return Err("--width and --micro-batch must be > 0".into());
        }
        Ok(o)
    }
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Res<T>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag} {v:?}: {e}").into())
}

fn default_device() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "wgpu") {
        "wgpu"
    } else {
        "cpu"
    }
}

fn device(name: &str) -> Res<Device> {
    Ok(match name {
        "cpu" | "flex" => Device::flex(),
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(0),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        other => {
            return Err(format!(
                "--device {other:?}: this build has cpu{}{} (cargo features cuda, wgpu)",
                if cfg!(feature = "cuda") { ", cuda" } else { "" },
                if cfg!(feature = "wgpu") { ", wgpu" } else { "" },
            )
            .into());
        }
    })
}

// ---------------------------------------------------------------- model

/// Two 3 × 3 convolutions, each with group normalization and ReLU.
#[derive(Module, Debug)]
struct Block {
    a: Conv2d,
    na: GroupNorm,
    b: Conv2d,
    nb: GroupNorm,
}

impl Block {
    fn new(cin: usize, cout: usize, device: &Device) -> Block {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        let norm = || GroupNormConfig::new((cout / 4).clamp(1, 8), cout).init(device);
        Block {
            a: conv(cin, cout),
            na: norm(),
            b: conv(cout, cout),
            nb: norm(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.na.forward(self.a.forward(x)));
        relu(self.nb.forward(self.b.forward(x)))
    }
}

/// A small UNet: two 2× downsamplings (receptive field ~ 40 px, 400 m: a
/// ship and the water around it), skip connections, one logit per pixel.
#[derive(Module, Debug)]
struct ShipNet {
    enc1: Block,
    enc2: Block,
    mid: Block,
    up2: ConvTranspose2d,
    dec2: Block,
    up1: ConvTranspose2d,
    dec1: Block,
    head: Conv2d,
}

impl ShipNet {
    fn new(bands: usize, w: usize, device: &Device) -> ShipNet {
        let up = |i, o| {
            ConvTranspose2dConfig::new([i, o], [2, 2])
                .with_stride([2, 2])
                .init(device)
        };
        ShipNet {
            enc1: Block::new(bands + 1, w, device),
            enc2: Block::new(w, 2 * w, device),
            mid: Block::new(2 * w, 4 * w, device),
            up2: up(4 * w, 2 * w),
            dec2: Block::new(4 * w, 2 * w, device),
            up1: up(2 * w, w),
            dec1: Block::new(2 * w, w, device),
            head: Conv2dConfig::new([w, 1], [1, 1]).init(device),
        }
    }

    /// `[N, C, H, W]` inputs and `[N, 1, H, W]` validity (H, W multiples
    /// of 4) → `[N, 1, H, W]` logits.
    ///
    /// Each day tile is first standardized per band over its valid pixels
    /// (haze and glint shift a whole tile's levels; the ships are local
    /// contrast), and the validity mask is an input channel of its own.
    fn forward(&self, x: Tensor<4>, valid: Tensor<4>) -> Tensor<4> {
        let n = valid.clone().sum_dim(2).sum_dim(3) + 1.0;
        let mean = (x.clone() * valid.clone()).sum_dim(2).sum_dim(3) / n.clone();
        let dev = (x - mean) * valid.clone();
        let var = dev.clone().powi_scalar(2).sum_dim(2).sum_dim(3) / n;
        let x = Tensor::cat(vec![dev / (var + 1e-4).sqrt(), valid], 1);
        let pool = |t: Tensor<4>| max_pool2d(t, MaxPoolOptions::new([2, 2]));
        let e1 = self.enc1.forward(x);
        let e2 = self.enc2.forward(pool(e1.clone()));
        let m = self.mid.forward(pool(e2.clone()));
        let d2 = self
            .dec2
            .forward(Tensor::cat(vec![self.up2.forward(m), e2], 1));
        let d1 = self
            .dec1
            .forward(Tensor::cat(vec![self.up1.forward(d2), e1], 1));
        // Ships are rare: start from "no ship" (p ≈ 0.12), not 0.5.
        self.head.forward(d1) - 2.0
    }
}

/// Weighted binary cross-entropy plus soft Dice, both over valid pixels only.
fn masked_loss(logits: Tensor<4>, y: Tensor<4>, valid: Tensor<4>, pos_weight: f32) -> Tensor<1> {
    // BCE with logits, stable: max(z, 0) − z·y + log(1 + e^−|z|)
    let bce = relu(logits.clone()) - logits.clone() * y.clone()
        + logits.clone().abs().neg().exp().log1p();
    let w = valid.clone() * (y.clone() * (pos_weight - 1.0) + 1.0);
    let bce = (bce * w.clone()).sum() / (w.sum() + 1e-6);
    let p = sigmoid(logits) * valid.clone();
    let yv = y * valid;
    let inter = (p.clone() * yv.clone()).sum();
    let dice = (inter * 2.0 + 1.0) / (p.sum() + yv.sum() + 1.0);
    bce - dice + 1.0
}

// ---------------------------------------------------------------- data

/// Which day slices of a batch a pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Heldout,
}

/// What the example needs to know about the dataset.
#[derive(Debug, Clone)]
struct DataInfo {
    label: String,
    bands: usize,
    rgb: [usize; 3],
    mean: Vec<f32>,
    std: Vec<f32>,
    holdout_from: NaiveDate,
}

impl DataInfo {
    fn split(&self, day: NaiveDate) -> Split {
        if day < self.holdout_from {
            Split::Train
        } else {
            Split::Heldout
        }
    }

    /// Reflectance DN of band `b` from its normalized value.
    fn dn(&self, b: usize, v: f32) -> f32 {
        let m = self.mean.get(b).copied().unwrap_or(0.0);
        let s = self.std.get(b).copied().unwrap_or(1.0);
        v * s + m
    }
}

/// The two loaders: training (the config's augmentation) and evaluation
/// (none), over the same samples — online, or from shards.
struct Loaders {
    train: StackDataLoader,
    eval: StackDataLoader,
    info: DataInfo,
}

fn loaders(o: &Opts, device: &Device) -> Res<Loaders> {
    let mut cfg = DatasetConfig::from_file(&o.config)?;
    let mut ecfg = cfg.clone();
    ecfg.augment = AugmentConfig::default();
    if o.crop.is_some() {
        cfg.augment.crop = o.crop;
    }
    let (train, eval) = match &o.shards {
        Some(loc) => {
            let open = |c: &DatasetConfig| -> Res<StackDataLoader> {
                let set = Arc::new(ShardSet::open_with(
                    loc,
                    ShardOptions {
                        config: Some(c.clone()),
                        ..ShardOptions::default()
                    },
                )?);
                let batches = BatchLoader::from_shards(set, c.loader.clone())?;
                Ok(StackDataLoader::from_batches(batches, device))
            };
            (open(&cfg)?, open(&ecfg)?)
        }
        None => {
            let open = |c: &DatasetConfig| -> Res<StackDataLoader> {
                let ds = Arc::new(TileDataset::open(c)?);
                Ok(StackDataLoader::new(ds, c.loader.clone(), device)?)
            };
            (open(&cfg)?, open(&ecfg)?)
        }
    };
    let label = match &o.label {
        Some(l) => l.clone(),
        None => cfg
            .labels
            .first()
            .map(|l| l.name.clone())
            .ok_or_else(|| format!("{}: no [[labels]] layer to learn", o.config.display()))?,
    };
    if !cfg.labels.iter().any(|l| l.name == label) {
        return Err(format!("{}: no label layer {label:?}", o.config.display()).into());
    }
    let names: Vec<String> = cfg
        .stack
        .fields()
        .bands
        .iter()
        .map(|b| b.to_string().to_ascii_lowercase())
        .collect();
    let bands = train.batches().batch_shape()[2];
    let find = |keys: [&str; 2], fallback: usize| {
        names
            .iter()
            .position(|n| keys.contains(&n.as_str()))
            .unwrap_or(fallback.min(bands.saturating_sub(1)))
    };
    let rgb = [
        find(["b04", "red"], 0),
        find(["b03", "green"], 1),
        find(["b02", "blue"], 2),
    ];
    let holdout_from = match o.holdout_from {
        Some(d) => d,
        None => {
            let w = cfg.time.windows()?;
            let (Some(a), Some(b)) = (w.first().map(|w| w.0), w.last().map(|w| w.1)) else {
                return Err(format!("{}: [time] has no window", o.config.display()).into());
            };
            a + chrono::Days::new((((b - a).num_days() + 1) as f64 * 0.6).round() as u64)
        }
    };
    Ok(Loaders {
        train,
        eval,
        info: DataInfo {
            label,
            bands,
            rgb,
            mean: cfg.normalize.mean.clone(),
            std: cfg.normalize.std.clone(),
            holdout_from,
        },
    })
}

/// Flat `b·T + t` indices of the day slices of `split` that have data
/// (at least 1 % of the tile valid), with their days.
fn slices(batch: &TileBatch, info: &DataInfo, split: Split) -> Res<Vec<(usize, NaiveDate)>> {
    let [_, t, _, _, _] = batch.inputs.dims();
    let pct = batch
        .pct_nans
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(dbg_err)?;
    let mut out = Vec::new();
    for (row, days) in batch.days.iter().enumerate() {
        // Training takes every row with data; evaluation counts each sample
        // once (no padding repeats, no replacement stand-ins).
        let keep = match &batch.status[row] {
            SampleStatus::Ok => true,
            SampleStatus::Failed { .. } => false,
            SampleStatus::Replaced { .. } | SampleStatus::Padded => split == Split::Train,
        };
        if !keep {
            continue;
        }
        for (ti, &day) in days.iter().enumerate().take(t) {
            if info.split(day) == split && pct[row * t + ti] < 99.0 {
                out.push((row * t + ti, day));
            }
        }
    }
    Ok(out)
}

/// The day slices `idx` of a batch: inputs `[n, C, H, W]`, label and valid `[n, 1, H, W]`.
fn gather(batch: &TileBatch, info: &DataInfo, idx: &[usize]) -> Res<[Tensor<4>; 3]> {
    let [b, t, c, h, w] = batch.inputs.dims();
    let dev = batch.inputs.device();
    let ix: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let ix = Tensor::<1, Int>::from_data(TensorData::new(ix, [idx.len()]), &dev);
    let label = batch
        .label(&info.label)
        .ok_or_else(|| format!("batch has no label layer {:?}", info.label))?;
    let per_day = |x: Tensor<4>| x.reshape([b * t, 1, h, w]).select(0, ix.clone());
    Ok([
        batch
            .inputs
            .clone()
            .reshape([b * t, c, h, w])
            .select(0, ix.clone()),
        per_day(label.clone()),
        per_day(batch.valid.clone()),
    ])
}

fn dbg_err(e: impl std::fmt::Debug) -> Box<dyn std::error::Error + Send + Sync> {
    format!("{e:?}").into()
}

fn host(x: Tensor<4>) -> Res<Vec<f32>> {
    x.into_data().try_to_vec::<f32>().map_err(dbg_err)
}

// ---------------------------------------------------------------- metrics

/// Ship-pixel confusion counts over valid pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_: u64,
    tn: u64,
}

impl Counts {
    fn add(&mut self, pred: bool, truth: bool) {
        match (pred, truth) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    fn f1(&self) -> f64 {
        2.0 * self.tp as f64 / (2 * self.tp + self.fp + self.fn_).max(1) as f64
    }
    fn iou(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp + self.fn_).max(1) as f64
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "precision": self.precision(), "recall": self.recall(), "f1": self.f1(),
            "iou": self.iou(), "tp": self.tp, "fp": self.fp, "fn": self.fn_, "tn": self.tn,
        })
    }
}

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
struct Baseline {
    train_tuned_dn: f32,
    train_tuned: Counts,
    oracle_dn: f32,
    oracle: Counts,
}

impl Baseline {
    fn best_f1(&self) -> f64 {
        self.train_tuned.f1().max(self.oracle.f1())
    }
}

/// One pass over the evaluation loader: the baseline's histograms (train
/// and held-out days), and the days each split has data on.
fn baseline(l: &Loaders) -> Res<(Baseline, Vec<NaiveDate>, Vec<NaiveDate>, usize)> {
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

/// A held-out tile kept for the picture.
#[derive(Debug, Clone)]
struct Shown {
    day: NaiveDate,
    id: String,
    rgb: [Vec<f32>; 3],
    truth: Vec<bool>,
    pred: Vec<bool>,
    valid: Vec<bool>,
    ships: usize,
}

/// What the model scored on the held-out days.
#[derive(Debug, Clone, Default)]
struct Evaluation {
    counts: Counts,
    per_day: std::collections::BTreeMap<NaiveDate, Counts>,
    /// Per day, the tile with the most ship pixels (for the picture).
    shown: Vec<Shown>,
}

impl Evaluation {
    fn days(&self) -> Vec<NaiveDate> {
        self.per_day.keys().copied().collect()
    }
}

/// The model on the held-out days.
fn evaluate(model: &ShipNet, l: &Loaders, micro: usize) -> Res<Evaluation> {
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

// ---------------------------------------------------------------- training

/// One epoch's figures.
#[derive(Debug, Clone)]
struct EpochReport {
    epoch: usize,
    loss: f64,
    heldout: Counts,
    wait_fraction: f64,
    tiles_per_s: f64,
    seconds: f64,
    steps: usize,
}

/// What a run measured.
#[derive(Debug, Clone)]
struct Report {
    baseline: Baseline,
    train_days: Vec<NaiveDate>,
    heldout_days: Vec<NaiveDate>,
    /// Days the model's evaluation saw.
    evaluated_days: Vec<NaiveDate>,
    /// Days the training steps saw.
    trained_days: Vec<NaiveDate>,
    epochs: Vec<EpochReport>,
    /// Loss of every optimizer step, in order.
    step_losses: Vec<f32>,
    model: Counts,
    /// The model's held-out counts per day.
    per_day: std::collections::BTreeMap<NaiveDate, Counts>,
    model_path: Option<PathBuf>,
}

/// The held-out figures per day, one line each.
fn per_day_table(ev: &Evaluation) -> String {
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

fn say(o: &Opts, s: impl AsRef<str>) {
    if !o.quiet {
        println!("{}", s.as_ref());
    }
}

/// A splitmix64 stream for the order of day slices within a batch.
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

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

fn report_json(r: &Report, o: &Opts) -> serde_json::Value {
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
        "model_per_day": r.per_day.iter().map(|(d, c)| (d.to_string(), c.json())).collect::<serde_json::Map<_, _>>(),
    })
}

// ---------------------------------------------------------------- picture

/// Held-out tiles side by side: RGB (2–98 % stretch), true ships outlined
/// cyan, predicted ships yellow (green where both), no data grey; the day
/// and sample id above each.
fn picture(shown: &[Shown], path: &Path) -> Res<()> {
    let Some(first) = shown.first() else {
        return Ok(());
    };
    let side = (first.truth.len() as f64).sqrt() as usize;
    let (scale, pad, title) = (3usize, 6usize, 22usize);
    let cell = side * scale;
    let (w, h) = (shown.len() * (cell + pad) + pad, cell + title + 2 * pad);
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    for (k, s) in shown.iter().enumerate() {
        let x0 = pad + k * (cell + pad);
        let y0 = pad + title;
        let stretch: Vec<(f32, f32)> = s
            .rgb
            .iter()
            .map(|b| {
                let mut v: Vec<f32> = b
                    .iter()
                    .zip(&s.valid)
                    .filter(|(_, ok)| **ok)
                    .map(|(v, _)| *v)
                    .collect();
                v.sort_by(f32::total_cmp);
                let q = |f: f64| {
                    v.get(((v.len() as f64 - 1.0) * f) as usize)
                        .copied()
                        .unwrap_or(0.0)
                };
                (q(0.02), q(0.98))
            })
            .collect();
        let edge = |m: &[bool], p: usize| {
            let (r, c) = (p / side, p % side);
            m[p] && (r == 0
                || c == 0
                || r + 1 == side
                || c + 1 == side
                || !m[p - 1]
                || !m[p + 1]
                || !m[p - side]
                || !m[p + side])
        };
        for p in 0..side * side {
            let px = if !s.valid[p] {
                [150, 150, 150]
            } else {
                let (t, q) = (edge(&s.truth, p), edge(&s.pred, p));
                match (t, q) {
                    (true, true) => [0, 230, 0],
                    (true, false) => [0, 230, 255],
                    (false, true) => [255, 220, 0],
                    _ => {
                        let mut c = [0u8; 3];
                        for (ci, (b, (lo, hi))) in s.rgb.iter().zip(&stretch).enumerate() {
                            let f = ((b[p] - lo) / (hi - lo).max(1e-6)).clamp(0.0, 1.0);
                            c[ci] = (255.0 * f.powf(0.8)) as u8;
                        }
                        c
                    }
                }
            };
            let (r, c) = (p / side, p % side);
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(
                        (x0 + c * scale + dx) as u32,
                        (y0 + r * scale + dy) as u32,
                        image::Rgb(px),
                    );
                }
            }
        }
        let text = format!("{} {}", s.day, s.id);
        for (i, ch) in text.chars().take(cell / 8).enumerate() {
            if let Some(glyph) = font8x8::legacy::BASIC_LEGACY.get(ch as usize) {
                for (gy, bits) in glyph.iter().enumerate() {
                    for gx in 0..8 {
                        if bits >> gx & 1 == 1 {
                            img.put_pixel(
                                (x0 + i * 8 + gx) as u32,
                                (pad + 4 + gy) as u32,
                                image::Rgb([0, 0, 0]),
                            );
                        }
                    }
                }
            }
        }
    }
    img.save(path)
        .map_err(|e| format!("{}: {e}", path.display()).into())
}

fn main() {
    let o = match Opts::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    //! A shortened training on a small version of the Oakland dataset
    //! (4 places, 64 px tiles): the loss falls, the metrics come from the
    //! held-out days only, the saved model reproduces them, and shards feed
    //! the same batches in the same order as the online loader.
    use super::*;

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
}
