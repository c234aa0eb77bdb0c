//! The data side: the two loaders over the dataset config (or its shards),
//! which day slices of a batch the training and the held-out passes use, and
//! those slices as tensors.
//!
//! A batch is `[B, T, C, H, W]`: B places, T days each. The split is by day,
//! so one batch holds training *and* held-out days of the same places; each
//! pass picks its own day slices out of it.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use chrono::NaiveDate;
use tilestack::dataset::{AugmentConfig, SamplerConfig, TimeRule};
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
    /// Another input of the dataset read beside the optical one: the one
    /// `--inputs`/`--with-input` feed the temporal model, or else the
    /// first input read on its own days (its validity, with the optical
    /// input's, makes the held-out pixels every `--inputs` choice is
    /// scored on).
    pub(crate) extra: Option<String>,
    /// What the temporal model reads of the optical input and `extra`.
    pub(crate) view: View,
    /// The planes `extra` adds to the temporal model's input per day (its
    /// bands and its validity; 0 when the model does not read it).
    pub(crate) extra_planes: usize,
    /// Whether `extra` is read on its own acquisition days (`time =
    /// "daily"`): then a step it has data on is a day it observed, and a
    /// day only it observed joins the sequence. With `nearest`, a step's
    /// scene may be another day's: only the optical days are sequenced.
    pub(crate) extra_own_days: bool,
    /// The near-infrared band (`B08`/`nir`), if any.
    pub(crate) nir: Option<usize>,
}

/// Which inputs the temporal model reads (`--inputs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    /// The optical input: its bands, validity and metadata.
    pub(crate) optical: bool,
    /// [`DataInfo::extra`].
    pub(crate) other: bool,
}

impl DataInfo {
    pub(crate) fn split(&self, day: NaiveDate) -> Split {
        if day < self.holdout_from {
            Split::Train
        } else {
            Split::Heldout
        }
    }

    /// A change of `dn` reflectance DN in band `b`, in normalized units.
    pub(crate) fn dn_delta(&self, b: usize, dn: f32) -> f32 {
        dn / self.std.get(b).copied().unwrap_or(1.0)
    }

    /// Reflectance DN of band `b` from its normalized value.
    pub(crate) fn dn(&self, b: usize, v: f32) -> f32 {
        let m = self.mean.get(b).copied().unwrap_or(0.0);
        let s = self.std.get(b).copied().unwrap_or(1.0);
        v * s + m
    }
}

#[cfg(test)]
impl DataInfo {
    /// One band (red, green and blue alike), no normalization, held out
    /// from `holdout_from`, with another input read (on its own days or
    /// not) and `view` of them.
    pub(crate) fn for_tests(holdout_from: NaiveDate, view: View, extra_own_days: bool) -> DataInfo {
        DataInfo {
            label: "ships".into(),
            bands: 1,
            rgb: [0; 3],
            mean: vec![0.0],
            std: vec![1.0],
            holdout_from,
            extra: Some("s1".into()),
            view,
            extra_planes: if view.other { 2 } else { 0 },
            extra_own_days,
            nir: None,
        }
    }
}

/// The two loaders: training (the config's augmentation) and evaluation
/// (none), over the same samples — online, or from shards.
pub(crate) struct Loaders {
    pub(crate) train: StackDataLoader,
    pub(crate) eval: StackDataLoader,
    /// One place per terminal (the mask layer's features), centred on it:
    /// ships per terminal per day. `None` without a mask layer or with
    /// shards (whose places are fixed).
    pub(crate) terminals: Option<StackDataLoader>,
    pub(crate) info: DataInfo,
    /// The device the models train on. The loaders deliver to the host
    /// (burn's CPU device): every batch is read there ([`HostBatch`],
    /// [`gather`]) and only a step's own inputs go to this device, once —
    /// on a GPU, a batch is never uploaded to be read back.
    pub(crate) device: Device,
}

impl Loaders {
    /// A second training loader over the same samples (and the same chunk
    /// cache) with an epoch count of its own, whose first `iter()` is epoch
    /// `first_epoch`: a training beside another one draws the epochs it
    /// would have drawn after it, whichever thread asks first.
    pub(crate) fn twin(&self, first_epoch: u64) -> Res<StackDataLoader> {
        let b = self.train.batches();
        let batches = match (b.dataset(), b.shards()) {
            (Some(ds), _) => BatchLoader::new(ds.clone(), b.options().clone())?,
            (None, Some(set)) => BatchLoader::from_shards(set.clone(), b.options().clone())?,
            (None, None) => {
                return Err("the training loader has neither a dataset nor shards".into());
            }
        };
        batches.resume(first_epoch, 0);
        Ok(StackDataLoader::from_batches(batches, self.train.device()))
    }
}

/// The loaders of `o`'s dataset (or shards), delivering to the host, for
/// models on `device`.
pub(crate) fn loaders(o: &Opts, device: &Device) -> Res<Loaders> {
    let host = Device::flex();
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
                Ok(StackDataLoader::from_batches(batches, &host))
            };
            (open(&cfg)?, open(&ecfg)?)
        }
        None => {
            let open = |c: &DatasetConfig| -> Res<StackDataLoader> {
                let ds = Arc::new(TileDataset::open(c)?);
                Ok(StackDataLoader::new(ds, c.loader.clone(), &host)?)
            };
            (open(&cfg)?, open(&ecfg)?)
        }
    };
    let terminals = match (&o.shards, eval.batches().dataset()) {
        (None, Some(ds)) => terminal_loader(&ecfg, ds, &o.out, &host)?,
        _ => None,
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
    let wanted = o.model_inputs()?;
    let layouts = match (train.batches().dataset(), train.batches().shards()) {
        (Some(ds), _) => ds.input_layouts().to_vec(),
        (None, Some(set)) => set.index().inputs.clone(),
        (None, None) => Vec::new(),
    };
    let layout = match &wanted.other {
        Some(name) => Some(layouts.iter().find(|i| i.name == *name).ok_or_else(|| {
            format!(
                "{} {name:?}: the dataset's inputs after the first are {:?}",
                if o.inputs.is_some() {
                    "--inputs"
                } else {
                    "--with-input"
                },
                layouts.iter().map(|i| &i.name).collect::<Vec<_>>()
            )
        })?),
        // read for the shared held-out pixels only
        None => layouts.iter().find(|i| i.rule == TimeRule::Daily),
    };
    let view = View {
        optical: wanted.optical,
        other: wanted.other.is_some(),
    };
    let extra_planes = match layout {
        Some(l) if view.other => l.bands.len() + 1,
        _ => 0,
    };
    let extra_own_days = layout.is_some_and(|l| l.rule == TimeRule::Daily);
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
        terminals,
        device: device.clone(),
        info: DataInfo {
            label,
            bands,
            rgb,
            mean: cfg.normalize.mean.clone(),
            std: cfg.normalize.std.clone(),
            holdout_from,
            extra: layout.map(|l| l.name.clone()),
            view,
            extra_planes,
            extra_own_days,
            nir: names.iter().position(|n| n == "b08" || n == "nir"),
        },
    })
}

/// The evaluation config with one place at the centre of each feature of
/// the first mask layer (the terminals), ids `terminal-1`, `terminal-2`, …
/// in the layer's order; the points file is written into `out`.
fn terminal_loader(
    cfg: &DatasetConfig,
    ds: &TileDataset,
    out: &Path,
    device: &Device,
) -> Res<Option<StackDataLoader>> {
    // The mask layers as the evaluation dataset `ds` read them (a demo
    // world's `demo:terminals` is resolved once the world is served).
    let Some((_, mask)) = ds.masks().first() else {
        return Ok(None);
    };
    let mut csv = String::new();
    for (i, f) in mask.features.iter().enumerate() {
        // the outer rings' vertices (the closing one once)
        let ring: Vec<(f64, f64)> = f
            .polygons
            .iter()
            .filter_map(|p| p.first())
            .flat_map(|r| r.iter().skip(1).copied())
            .collect();
        if ring.is_empty() {
            continue;
        }
        let n = ring.len() as f64;
        let lon = ring.iter().map(|p| p.0).sum::<f64>() / n;
        let lat = ring.iter().map(|p| p.1).sum::<f64>() / n;
        csv += &format!("{lon},{lat},terminal-{}\n", i + 1);
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let points = out.join("terminal-places.csv");
    std::fs::write(&points, csv).map_err(|e| format!("{}: {e}", points.display()))?;
    let mut tcfg = cfg.clone();
    tcfg.sampler = SamplerConfig::Points {
        file: std::path::absolute(&points).map_err(|e| format!("{}: {e}", points.display()))?,
    };
    tcfg.filters.min_days_with_data = 1;
    let ds = Arc::new(TileDataset::open(&tcfg)?);
    Ok(Some(StackDataLoader::new(ds, tcfg.loader.clone(), device)?))
}

/// A batch on the host, the fields the example reads.
#[derive(Debug, Clone)]
pub(crate) struct HostBatch {
    /// `[B, T, C, H, W]`.
    pub(crate) shape: [usize; 5],
    pub(crate) inputs: Vec<f32>,
    /// `[B, T, H, W]`.
    pub(crate) valid: Vec<f32>,
    /// `[B, T, H, W]` the label layer learned.
    pub(crate) label: Vec<f32>,
    /// `[B, H, W]` the first mask layer, if any.
    pub(crate) mask: Option<Vec<f32>>,
    /// `[B, T]`.
    pub(crate) eo_cloud_cover: Vec<f32>,
    pub(crate) pct_nans: Vec<f32>,
    pub(crate) tile_cloud_fraction: Vec<f32>,
    pub(crate) days: Vec<Vec<NaiveDate>>,
    pub(crate) ids: Vec<String>,
    pub(crate) status: Vec<SampleStatus>,
    /// [`DataInfo::extra`]'s input: `[B, T, E, H, W]` values, `[B, T, H, W]`
    /// validity, and `E`.
    pub(crate) extra: Option<(Vec<f32>, Vec<f32>, usize)>,
    /// [`DataInfo::extra_own_days`].
    pub(crate) extra_own_days: bool,
    /// [`DataInfo::view`].
    pub(crate) view: View,
}

impl HostBatch {
    pub(crate) fn new(batch: &TileBatch, info: &DataInfo) -> Res<HostBatch> {
        let extra = match &info.extra {
            None => None,
            Some(name) => {
                let s = batch.source(name).ok_or_else(|| {
                    format!(
                        "input {name:?}: the batch has no such input (inputs: {:?})",
                        batch.sources.iter().map(|s| &s.name).collect::<Vec<_>>()
                    )
                })?;
                if s.is_static {
                    return Err(format!("input {name:?}: a static input has no days").into());
                }
                let e = s.values.dims()[2];
                Some((
                    s.values
                        .clone()
                        .into_data()
                        .try_to_vec::<f32>()
                        .map_err(dbg_err)?,
                    host(s.valid.clone())?,
                    e,
                ))
            }
        };
        let label = batch
            .label(&info.label)
            .ok_or_else(|| format!("batch has no label layer {:?}", info.label))?;
        let v2 = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().map_err(dbg_err);
        Ok(HostBatch {
            shape: batch.inputs.dims(),
            inputs: batch
                .inputs
                .clone()
                .into_data()
                .try_to_vec::<f32>()
                .map_err(dbg_err)?,
            valid: host(batch.valid.clone())?,
            label: host(label.clone())?,
            mask: match batch.masks.first() {
                Some(m) => Some(m.clone().into_data().try_to_vec::<f32>().map_err(dbg_err)?),
                None => None,
            },
            eo_cloud_cover: v2(batch.eo_cloud_cover.clone())?,
            pct_nans: v2(batch.pct_nans.clone())?,
            tile_cloud_fraction: v2(batch.tile_cloud_fraction.clone())?,
            days: batch.days.clone(),
            ids: batch.ids.clone(),
            status: batch.status.clone(),
            extra,
            extra_own_days: info.extra_own_days,
            view: info.view,
        })
    }

    /// Whether row `row` counts for `split` (evaluation counts each sample
    /// once: no padding repeats, no replacement stand-ins).
    pub(crate) fn keep(&self, row: usize, split: Split) -> bool {
        match &self.status[row] {
            SampleStatus::Ok => true,
            SampleStatus::Failed { .. } => false,
            SampleStatus::Replaced { .. } | SampleStatus::Padded => split == Split::Train,
        }
    }
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

/// The day slices `idx` of a batch: inputs `[n, C, H, W]`, label and valid
/// `[n, 1, H, W]`, on the batch's device (the host).
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

/// Sun glint as a training augmentation, on one day tile `x` (`[C, H, W]`,
/// normalized): with probability 1/3, a Gaussian blob (σ 25–90 px, peak
/// 0.5–1.2) of speckled brightening (2 px facets, 0.3–1.4 × the blob), as
/// wind-roughened water glints: up to ~2 250 DN in the visible bands, 1 500
/// DN in the near infrared. The held-out days have glint of their own; the
/// training days have three glint days only, so the model sees more.
pub(crate) fn glint(x: &mut [f32], c: usize, h: usize, w: usize, info: &DataInfo, mix: &mut Mix) {
    if !mix.next().is_multiple_of(3) {
        return;
    }
    let u = |mix: &mut Mix| (mix.next() >> 11) as f64 / (1u64 << 53) as f64;
    let (cy, cx) = (u(mix) * h as f64, u(mix) * w as f64);
    let sigma = 25.0 + 65.0 * u(mix);
    let peak = 0.5 + 0.7 * u(mix);
    let (bh, bw) = (h.div_ceil(2), w.div_ceil(2));
    let facets: Vec<f64> = (0..bh * bw).map(|_| 0.3 + 1.1 * u(mix)).collect();
    for y in 0..h {
        for xx in 0..w {
            let d2 = (y as f64 - cy).powi(2) + (xx as f64 - cx).powi(2);
            let g = peak * (-d2 / (2.0 * sigma * sigma)).exp() * facets[(y / 2) * bw + xx / 2];
            if g < 1e-3 {
                continue;
            }
            for b in 0..c {
                let dn = if Some(b) == info.nir { 1500.0 } else { 2250.0 };
                x[(b * h + y) * w + xx] += info.dn_delta(b, (g * dn) as f32);
            }
        }
    }
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
