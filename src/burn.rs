//! burn adapters (feature `burn`): the only module that imports burn.
//!
//! * [`StackDataLoader`] implements burn's `DataLoader<TileBatch>`:
//!   tilestack owns the order, the batching and the prefetch
//!   ([`BatchLoader`]), and hands burn whole batches as tensors. Each
//!   `iter()` is one epoch with its own seeded order; `slice` is burn's
//!   multi-device split (equal batch counts); `to_device` shares the
//!   prefetcher. It works under burn's training API (`SupervisedTraining`,
//!   which calls `iter()` once per epoch) and in a hand-written loop.
//! * [`TileDataset`] (and [`ShardSet`]) as a burn `Dataset<TileStack>` with
//!   [`TileBatcher`], for users who want burn's own `DataLoaderBuilder`. Its limits are
//!   burn's: the builder freezes a shuffled order at its first epoch, keeps
//!   up to 100 finished batches outside any byte budget, and one failing
//!   sample ends a training run. Prefer [`StackDataLoader`].
//!
//! ```no_run
//! use burn::data::dataloader::DataLoader;
//! use burn::tensor::Device;
//! use tilestack::StackDataLoader;
//! let loader = StackDataLoader::from_config("datasets/oakland-ships.toml".as_ref(), &Device::default())?;
//! for epoch in 0..3 {
//!     for batch in loader.iter() {
//!         let batch = batch.expect("a sample failed to load");
//!         let [b, t, c, h, w] = batch.inputs.dims(); // no mask or label channels
//!         let ships = batch.label("ships").expect("a label layer"); // [B, T, H, W]
//!         let valid = &batch.valid; // [B, T, H, W]: 1 where every band has data
//!         # let _ = (b, t, c, h, w, ships, valid, epoch);
//!     }
//!     println!("{}", loader.last_metrics().expect("an epoch ended"));
//! }
//! # Ok::<(), tilestack::Error>(())
//! ```
//!
//! May import: every stage up to [`crate::loader`]; nothing else in the crate
//! imports burn.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};
use chrono::NaiveDate;

use crate::dataset::TileDataset;
use crate::dataset::config::{DatasetConfig, LoaderConfig};
use crate::loader::{BatchLoader, EpochBatches, HostBatch, LoaderMetrics, SampleStatus};
use crate::shard::read::{ShardOptions, ShardSet};
use crate::stack::TileStack;

/// A dataset as a burn `Dataset`, for burn's own `DataLoaderBuilder` with
/// [`TileBatcher`]: sample `index`'s stack (no label or mask layers; those
/// come with [`StackDataLoader`]), loaded on the dataset's runtime. burn's
/// builder then owns the order and the prefetch, with its limits: it
/// freezes a shuffled order at its first epoch, keeps up to 100 finished
/// batches outside any byte budget, and one failing sample ends a training
/// run (the error names the sample). Prefer [`StackDataLoader`].
impl Dataset<TileStack> for TileDataset {
    fn get(&self, index: usize) -> Result<TileStack, DatasetError> {
        self.load_blocking(index)
            .map_err(|e| DatasetError::new(Chained(e)))
    }

    fn len(&self) -> usize {
        TileDataset::len(self)
    }
}

/// Shards as a burn `Dataset`: sample `index`'s stack as
/// [`TileDataset`]'s `Dataset` gives it (no label layers; prefer
/// [`ShardDataLoader`] for training).
impl Dataset<TileStack> for ShardSet {
    fn get(&self, index: usize) -> Result<TileStack, DatasetError> {
        ShardSet::load(self, index).map_err(|e| DatasetError::new(Chained(e)))
    }

    fn len(&self) -> usize {
        ShardSet::len(self)
    }
}

/// A tilestack error shown with its causes: burn prints only the top error.
#[derive(Debug)]
struct Chained(crate::error::Error);

impl std::fmt::Display for Chained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.chain())
    }
}

impl std::error::Error for Chained {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A batch as tensors on a device, with its samples' metadata.
#[derive(Debug, Clone)]
pub struct TileBatch {
    /// `[B, T, C, H, W]` inputs: the requested bands only (no mask or label
    /// channels), normalized as the config says, no-data replaced by the
    /// fill value (`normalize.fill`, default 0).
    pub inputs: Tensor<5>,
    /// `[B, T, H, W]`: 1 where every input band has data, else 0. Multiply
    /// a per-pixel loss by it to keep no-data pixels out.
    pub valid: Tensor<4>,
    /// Label layer names, in [`TileBatch::labels`] order.
    pub label_names: Vec<String>,
    /// Per label layer, `[B, T, H, W]` targets (1 inside its features).
    pub labels: Vec<Tensor<4>>,
    /// Input mask names, in [`TileBatch::masks`] order.
    pub mask_names: Vec<String>,
    /// Per input mask, `[B, H, W]`.
    pub masks: Vec<Tensor<3>>,
    /// `[B, T]` max scene `eo:cloud_cover` per step, percent; NaN when no scene.
    pub eo_cloud_cover: Tensor<2>,
    /// `[B, T]` percent of no-data input pixels per step.
    pub pct_nans: Tensor<2>,
    /// `[B, T]` the tile's own cloud fraction, 0–1; NaN when no cloud band.
    pub tile_cloud_fraction: Tensor<2>,
    /// Dataset sample index of each row.
    pub samples: Vec<usize>,
    /// Sample ids.
    pub ids: Vec<String>,
    /// Per row, the first day of each step.
    pub days: Vec<Vec<NaiveDate>>,
    /// Per row, what became of the sample (replaced, failed, padded).
    pub status: Vec<SampleStatus>,
    /// Per row, windows read as no data after failing (`errors_as_nodata`).
    pub read_errors: Vec<Vec<String>>,
    /// The epoch, and the batch's index in it.
    pub epoch: u64,
    /// The batch's index in its epoch.
    pub index: usize,
    /// The inputs after the first (`[[inputs]]`), per source: see
    /// [`SourceBatch`](crate::loader::SourceBatch) for why per-source
    /// tensors, and [`TileBatch::input`].
    pub sources: Vec<SourceTensors>,
}

/// One input after the first, on a device.
#[derive(Debug, Clone)]
pub struct SourceTensors {
    /// The input's name.
    pub name: String,
    /// Band names, in `C` order.
    pub bands: Vec<String>,
    /// True for a static input (one step: `T` = 1).
    pub is_static: bool,
    /// `[B, T, C, H, W]` values (raw), no data replaced by the fill value;
    /// `T` = 1 for a static input.
    pub values: Tensor<5>,
    /// `[B, T, H, W]`: 1 where every band has data.
    pub valid: Tensor<4>,
    /// `[B, T]`: 1 when a scene filled the step (0: a `nearest` gap).
    pub has_data: Tensor<2>,
    /// `[B, T]` max `eo:cloud_cover` of the step's scenes, percent; NaN
    /// when none declares it or no scene.
    pub eo_cloud_cover: Tensor<2>,
    /// `[B, T]` percent of the step's pixels without data.
    pub pct_nans: Tensor<2>,
    /// `[B, T]` the tile's own cloud fraction, 0–1; NaN without a cloud band.
    pub tile_cloud_fraction: Tensor<2>,
    /// Per row and step, `sat:orbit_state` of its scenes (empty when undeclared).
    pub orbit_state: Vec<Vec<String>>,
    /// Per row and step, `platform` of its scenes.
    pub platform: Vec<Vec<String>>,
}

impl TileBatch {
    /// Moves a host batch onto `device` (the arrays are handed over, not copied, on the CPU).
    pub fn from_host(b: HostBatch, device: &Device) -> TileBatch {
        let [n, t, c, h, w] = b.shape;
        let t4 = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [n, t, h, w]), device);
        let t2 = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [n, t]), device);
        TileBatch {
            inputs: Tensor::from_data(TensorData::new(b.inputs, [n, t, c, h, w]), device),
            valid: t4(b.valid),
            label_names: b.label_names,
            labels: b.labels.into_iter().map(t4).collect(),
            mask_names: b.mask_names,
            masks: b
                .masks
                .into_iter()
                .map(|v| Tensor::<3>::from_data(TensorData::new(v, [n, h, w]), device))
                .collect(),
            eo_cloud_cover: t2(b.eo_cloud_cover),
            pct_nans: t2(b.pct_nans),
            tile_cloud_fraction: t2(b.tile_cloud_fraction),
            samples: b.samples,
            ids: b.ids,
            days: b.days,
            status: b.status,
            read_errors: b.read_errors,
            epoch: b.epoch,
            index: b.index,
            sources: b
                .sources
                .into_iter()
                .map(|src| {
                    let is_static = src.shape.len() == 4;
                    let st = if is_static { 1 } else { src.shape[1] };
                    let sc = src.bands.len();
                    SourceTensors {
                        values: Tensor::from_data(
                            TensorData::new(src.values, [n, st, sc, h, w]),
                            device,
                        ),
                        valid: Tensor::from_data(TensorData::new(src.valid, [n, st, h, w]), device),
                        has_data: Tensor::from_data(TensorData::new(src.has_data, [n, st]), device),
                        eo_cloud_cover: Tensor::from_data(
                            TensorData::new(src.eo_cloud_cover, [n, st]),
                            device,
                        ),
                        pct_nans: Tensor::from_data(TensorData::new(src.pct_nans, [n, st]), device),
                        tile_cloud_fraction: Tensor::from_data(
                            TensorData::new(src.tile_cloud_fraction, [n, st]),
                            device,
                        ),
                        name: src.name,
                        bands: src.bands,
                        is_static,
                        orbit_state: src.orbit_state,
                        platform: src.platform,
                    }
                })
                .collect(),
        }
    }

    /// The label layer called `name`.
    pub fn label(&self, name: &str) -> Option<&Tensor<4>> {
        self.label_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.labels.get(i))
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when the batch has no row.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The input named `name`: `[B, T, C, H, W]` (`T` = 1 for a static
    /// input: `squeeze_dim(1)` gives `[B, C, H, W]`). The first input
    /// (the config's first, e.g. `"s2"`) is [`TileBatch::inputs`] itself.
    pub fn input(&self, name: &str) -> Option<Tensor<5>> {
        self.sources
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.values.clone())
    }

    /// The input named `name` with its validity and metadata.
    pub fn source(&self, name: &str) -> Option<&SourceTensors> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Stacks [`TileStack`]s into a [`TileBatch`] (inputs, validity; no labels)
/// for burn's `DataLoaderBuilder` over a [`TileDataset`] or [`ShardSet`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TileBatcher {
    /// The value no-data pixels take in `inputs` (default 0; `f32::NAN` keeps them NaN).
    pub nan_fill: f32,
}

impl Default for TileBatcher {
    fn default() -> Self {
        TileBatcher { nan_fill: 0.0 }
    }
}

impl Batcher<TileStack, TileBatch> for TileBatcher {
    /// The first stack's shape is the batch's; a stack of another shape
    /// (which [`TileDataset::open`] rules out) is no data, never
    /// a panic inside the training loop.
    fn batch(&self, items: Vec<TileStack>, device: &Device) -> TileBatch {
        TileBatch::from_host(HostBatch::from_stacks(&items, self.nan_fill), device)
    }
}

/// tilestack's burn `DataLoader`: batches of a [`TileDataset`] as
/// [`TileBatch`]es (see the module docs and [`BatchLoader`] for the order,
/// prefetch, budget, error policies and resume).
#[derive(Debug, Clone)]
pub struct StackDataLoader {
    batches: BatchLoader,
    device: Device,
}

impl StackDataLoader {
    /// Opens the config's dataset and a loader over it with the config's
    /// `[loader]` options, on `device`.
    ///
    /// # Errors
    /// The config's and [`TileDataset::open`]'s errors, naming file and key.
    pub fn from_config(
        path: &std::path::Path,
        device: &Device,
    ) -> crate::error::Result<StackDataLoader> {
        let cfg = DatasetConfig::from_file(path)?;
        let ds = Arc::new(TileDataset::open(&cfg)?);
        StackDataLoader::new(ds, cfg.loader, device)
    }

    /// A loader over `ds` with `opts`, on `device`.
    ///
    /// # Errors
    /// As [`BatchLoader::new`].
    pub fn new(
        ds: Arc<TileDataset>,
        opts: LoaderConfig,
        device: &Device,
    ) -> crate::error::Result<StackDataLoader> {
        Ok(StackDataLoader {
            batches: BatchLoader::new(ds, opts)?,
            device: device.clone(),
        })
    }

    /// A loader over the shards at `location` (a folder or URL prefix
    /// written by [`materialize`](crate::shard::materialize::materialize)), on `device`: the
    /// same batches as the online loader over the same config, bit for
    /// bit. With `config`, its loader options, normalization, augmentation
    /// and seed apply (its samples must be the shards': same
    /// [`config_hash`](crate::shard::config_hash)); without, the config stored in
    /// the index.
    ///
    /// ```no_run
    /// use burn::tensor::Device;
    /// use tilestack::ShardDataLoader;
    /// let loader = ShardDataLoader::from_shards("shards/oakland-ships", None, &Device::default())?;
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ShardSet::open_with`]'s (no index, a missing shard, another
    /// dataset's config) and [`BatchLoader::from_shards`]'s.
    pub fn from_shards(
        location: &str,
        config: Option<&std::path::Path>,
        device: &Device,
    ) -> crate::error::Result<StackDataLoader> {
        let config = config.map(DatasetConfig::from_file).transpose()?;
        let shards = Arc::new(ShardSet::open_with(
            location,
            ShardOptions {
                config,
                ..ShardOptions::default()
            },
        )?);
        let opts = shards.config().loader.clone();
        Ok(StackDataLoader::from_batches(
            BatchLoader::from_shards(shards, opts)?,
            device,
        ))
    }

    /// A loader over host batches made elsewhere (rank, slice), on `device`.
    pub fn from_batches(batches: BatchLoader, device: &Device) -> StackDataLoader {
        StackDataLoader {
            batches,
            device: device.clone(),
        }
    }

    /// The batch engine (order, resume, metrics).
    pub fn batches(&self) -> &BatchLoader {
        &self.batches
    }

    /// Makes the next `iter()` run `epoch` from batch `batch` (resume after
    /// a checkpoint); see [`BatchLoader::resume`].
    pub fn resume(&self, epoch: u64, batch: usize) {
        self.batches.resume(epoch, batch);
    }

    /// The metrics of the last epoch that ended.
    pub fn last_metrics(&self) -> Option<LoaderMetrics> {
        self.batches.last_metrics()
    }

    /// The device batches are put on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// The burn `DataLoader` over materialized shards: a [`StackDataLoader`]
/// made by [`StackDataLoader::from_shards`] — one type, so that a training
/// loop takes either.
pub type ShardDataLoader = StackDataLoader;

/// One epoch as burn's iterator.
struct BurnEpoch {
    it: Option<EpochBatches>,
    error: Option<crate::error::Error>,
    device: Device,
    items: usize,
    batch_size: usize,
}

impl Iterator for BurnEpoch {
    type Item = Result<TileBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(DatasetError::new(Chained(e))));
        }
        let b = self.it.as_mut()?.next()?;
        Some(
            b.map(|b| TileBatch::from_host(b, &self.device))
                .map_err(|e| DatasetError::new(Chained(e))),
        )
    }
}

impl DataLoaderIterator<TileBatch> for BurnEpoch {
    fn progress(&self) -> Progress {
        let done = self
            .it
            .as_ref()
            .map_or(0, |it| it.position() * self.batch_size);
        Progress::new(done.min(self.items), self.items, None)
    }
}

impl DataLoader<TileBatch> for StackDataLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<TileBatch> + 'a> {
        let (it, error) = match self.batches.iter() {
            Ok(it) => (Some(it), None),
            Err(e) => (None, Some(e)),
        };
        Box::new(BurnEpoch {
            it,
            error,
            device: self.device.clone(),
            items: self.batches.num_items(),
            batch_size: self.batches.options().batch_size,
        })
    }

    fn num_items(&self) -> usize {
        self.batches.num_items()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<TileBatch>> {
        Arc::new(StackDataLoader::from_batches(self.batches.clone(), device))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<TileBatch>> {
        Arc::new(StackDataLoader::from_batches(
            self.batches.slice(start, end),
            &self.device,
        ))
    }
}
