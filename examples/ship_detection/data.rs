//! The data side: the two loaders over the dataset config (or its shards),
//! which day slices of a batch the training and the held-out passes use, and
//! those slices as tensors.
//!
//! A batch is `[B, T, C, H, W]`: B places, T days each. The split is by day,
//! so one batch holds training *and* held-out days of the same places; each
//! pass picks its own day slices out of it.

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use chrono::NaiveDate;
use tilestack::dataset::AugmentConfig;
use tilestack::loader::SampleStatus;
use tilestack::shard::ShardOptions;
use tilestack::{BatchLoader, DatasetConfig, ShardSet, StackDataLoader, TileBatch, TileDataset};

use crate::args::Opts;
use crate::{Res, dbg_err};

/// Which day slices of a batch a pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    Train,
    Heldout,
}

/// What the example needs to know about the dataset.
#[derive(Debug, Clone)]
pub(crate) struct DataInfo {
    pub(crate) label: String,
    pub(crate) bands: usize,
    pub(crate) rgb: [usize; 3],
    mean: Vec<f32>,
    std: Vec<f32>,
    pub(crate) holdout_from: NaiveDate,
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
    pub(crate) fn dn(&self, b: usize, v: f32) -> f32 {
        let m = self.mean.get(b).copied().unwrap_or(0.0);
        let s = self.std.get(b).copied().unwrap_or(1.0);
        v * s + m
    }
}

/// The two loaders: training (the config's augmentation) and evaluation
/// (none), over the same samples — online, or from shards.
pub(crate) struct Loaders {
    pub(crate) train: StackDataLoader,
    pub(crate) eval: StackDataLoader,
    pub(crate) info: DataInfo,
}

pub(crate) fn loaders(o: &Opts, device: &Device) -> Res<Loaders> {
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
pub(crate) fn slices(
    batch: &TileBatch,
    info: &DataInfo,
    split: Split,
) -> Res<Vec<(usize, NaiveDate)>> {
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
pub(crate) fn gather(batch: &TileBatch, info: &DataInfo, idx: &[usize]) -> Res<[Tensor<4>; 3]> {
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

pub(crate) fn host(x: Tensor<4>) -> Res<Vec<f32>> {
    x.into_data().try_to_vec::<f32>().map_err(dbg_err)
}

/// A splitmix64 stream for the order of day slices within a batch.
pub(crate) struct Mix(pub(crate) u64);
impl Mix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
