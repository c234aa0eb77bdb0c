//! Where a [`BatchLoader`](crate::loader::BatchLoader)'s samples come from: a
//! [`TileDataset`] (stacks built online from the catalog) or a [`ShardSet`]
//! (the same stacks, materialized). Everything after the load — order,
//! batching, normalization, augmentation, error policies, resume — is the
//! loader's one code path, which is why the two give bit-identical batches.

use std::sync::Arc;

use crate::dataset::TileDataset;
use crate::dataset::config::DatasetConfig;
use crate::dataset::inputs::{InputLayout, InputStack};
use crate::error::Result;
use crate::shard::read::ShardSet;
use crate::stack::{Layers, SampleLayout, TileStack};

/// The samples a loader batches.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Built from the catalog on demand.
    Online(Arc<TileDataset>),
    /// Read from shards written by `materialize`.
    Shards(Arc<ShardSet>),
}

/// I/O counters at one moment: tile cache hits and misses, bytes and requests.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) bytes: u64,
    pub(crate) requests: u64,
}

impl Source {
    pub(crate) fn len(&self) -> usize {
        match self {
            Source::Online(d) => d.len(),
            Source::Shards(s) => s.len(),
        }
    }

    /// The config whose seed, normalization, augmentation and error policy apply.
    pub(crate) fn config(&self) -> &DatasetConfig {
        match self {
            Source::Online(d) => d.config(),
            Source::Shards(s) => s.config(),
        }
    }

    /// The layout every sample shares.
    pub(crate) fn layout(&self) -> SampleLayout {
        match self {
            Source::Online(d) => d.layout(),
            Source::Shards(s) => s.layout(),
        }
    }

    /// The layouts of the inputs after the first.
    pub(crate) fn input_layouts(&self) -> Vec<InputLayout> {
        match self {
            Source::Online(d) => d.input_layouts().to_vec(),
            Source::Shards(s) => s.input_layouts().to_vec(),
        }
    }

    /// Sample `i`'s id.
    pub(crate) fn id(&self, i: usize) -> String {
        match self {
            Source::Online(d) => d.samples().get(i).map(|s| s.id.clone()),
            Source::Shards(s) => Some(s.id_now(i)),
        }
        .unwrap_or_default()
    }

    pub(crate) fn handle(&self) -> Result<tokio::runtime::Handle> {
        match self {
            Source::Online(d) => d.handle(),
            Source::Shards(s) => s.handle(),
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        match self {
            Source::Online(d) => {
                let r = d.reader();
                Counters {
                    hits: r.cache().metrics().cache_hits(),
                    misses: r.cache().metrics().cache_misses(),
                    bytes: r.client().metrics().bytes(),
                    requests: r.client().metrics().requests(),
                }
            }
            Source::Shards(s) => {
                let (bytes, requests) = s.io();
                Counters {
                    bytes,
                    requests,
                    ..Counters::default()
                }
            }
        }
    }

    /// Sample `i`'s stack (into `buffer` when its shape fits), layers and
    /// other inputs.
    pub(crate) async fn load(
        &self,
        i: usize,
        buffer: Option<ndarray::Array4<f32>>,
    ) -> Result<(TileStack, Layers, Vec<InputStack>)> {
        match self {
            Source::Online(d) => d.load_with_layers(i, buffer).await,
            Source::Shards(s) => s.load_with_layers(i, buffer).await,
        }
    }
}
