//! burn adapters (feature `burn`): the only module that imports burn.
//!
//! * [`StackLoader`] is a burn `Dataset<TileStack>`: hand an
//!   `Arc<StackLoader>` to burn's `DataLoaderBuilder` and keep a clone to
//!   call [`StackLoader::set_epoch`] between epochs and read its stats.
//!   Shuffle with [`crate::loader::LoaderOptions::shuffle`], **not** with
//!   `DataLoaderBuilder::shuffle`: the loader prefetches ahead of each
//!   worker's contiguous chunk of positions, which a framework-side shuffle
//!   would scramble.
//! * [`TileBatcher`] stacks tile stacks into a [`TileBatch`] of tensors.
//!
//! ```no_run
//! use std::sync::Arc;
//! use burn::data::dataloader::DataLoaderBuilder;
//! use tilestack::{LoaderOptions, StackLoader};
//! use tilestack::TileBatcher;
//! # use tilestack::{BandName, CogReader, TileCache, HttpRangeClient, RetryConfig};
//! # use tilestack::{Catalog, StackRequest};
//! # let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
//! # let catalog = Catalog::stac("http://127.0.0.1:8090", "sentinel-2-l2a")?;
//! # let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30));
//! # let requests = vec![StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(30))?];
//! let opts = LoaderOptions { shuffle: Some(1), ..LoaderOptions::default() };
//! let loader = Arc::new(StackLoader::plan(&catalog, requests, reader, None, opts)?);
//! let data = DataLoaderBuilder::new(TileBatcher::default())
//!     .batch_size(8)
//!     .num_workers(2)
//!     .build(loader.clone());
//! for epoch in 0..3 {
//!     loader.set_epoch(epoch);
//!     for batch in data.iter() {
//!         let batch = batch.expect("a stack failed to load");
//!         println!("{:?}", batch.images.dims()); // [8, T, C, H, W]
//!     }
//! }
//! # Ok::<(), tilestack::Error>(())
//! ```

use crate::loader::StackLoader;
use crate::stack::TileStack;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};

impl Dataset<TileStack> for StackLoader {
    fn get(&self, index: usize) -> Result<TileStack, DatasetError> {
        StackLoader::get(self, index).map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        StackLoader::len(self)
    }
}

/// Stacks [`TileStack`]s into a [`TileBatch`] on a device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TileBatcher {
    /// The value NaN (nodata) pixels take in `images` (default `None`: they
    /// stay NaN; most models want a number, e.g. `Some(0.0)`).
    pub nan_fill: Option<f32>,
}

/// A batch of `B` tile stacks of one shape.
#[derive(Debug, Clone)]
pub struct TileBatch {
    /// `[B, T, C, H, W]` pixels (the mask band, if any, last in `C`).
    pub images: Tensor<5>,
    /// `[B, T]` percent of NaN pixels per step over the requested bands, 0–100.
    pub pct_nans: Tensor<2>,
    /// `[B, T]` max scene `eo:cloud_cover` per step, percent; NaN when no scene.
    pub eo_cloud_cover: Tensor<2>,
}

impl Batcher<TileStack, TileBatch> for TileBatcher {
    /// The first stack's shape is the batch's; a stack of another shape
    /// (which [`StackLoader`] rules out when it is built) is cut or padded
    /// with NaN, never a panic inside the training loop.
    fn batch(&self, items: Vec<TileStack>, device: &Device) -> TileBatch {
        let b = items.len();
        let [t, c, h, w] = items
            .first()
            .map(|s| {
                let d = s.data.dim();
                [d.0, d.1, d.2, d.3]
            })
            .unwrap_or([0; 4]);
        let n = t * c * h * w;
        let mut px = Vec::with_capacity(b * n);
        let (mut nans, mut cloud) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        for s in &items {
            let start = px.len();
            px.extend(s.data.iter().take(n));
            px.resize(start + n, f32::NAN);
            for (list, v) in [(&mut nans, &s.pct_nans), (&mut cloud, &s.eo_cloud_cover)] {
                let start = list.len();
                list.extend(v.iter().take(t));
                list.resize(start + t, f32::NAN);
            }
        }
        if let Some(fill) = self.nan_fill {
            for v in px.iter_mut().filter(|v| v.is_nan()) {
                *v = fill;
            }
        }
        TileBatch {
            images: Tensor::from_data(TensorData::new(px, [b, t, c, h, w]), device),
            pct_nans: Tensor::from_data(TensorData::new(nans, [b, t]), device),
            eo_cloud_cover: Tensor::from_data(TensorData::new(cloud, [b, t]), device),
        }
    }
}
