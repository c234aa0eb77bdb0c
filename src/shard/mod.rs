//! Shards for offline training: [`materialize`] writes every sample of a
//! dataset config once — through the same load path as the online loader —
//! into safetensors shards plus an index; [`ShardSet`] reads them back, and
//! [`BatchLoader::from_shards`](crate::BatchLoader::from_shards) batches them
//! with the online loader's own code, so that shards and the online loader
//! give bit-identical batches for the same seed and epoch.
//!
//! # The files
//!
//! ```text
//! DIR/dataset.json              what the folder holds: config hash, name, layout
//! DIR/shard-00000.safetensors   samples 0 … S−1 (S samples per shard)
//! DIR/shard-00001.safetensors   …
//! DIR/index.json                every sample: shard, offset, dates, bands, EPSG,
//!                               transform, centroid, cloud/NaN metadata, checksum
//! DIR/index-I-of-N.json         one part's index (`--part I/N`), merged into index.json
//! ```
//!
//! Shards are plain safetensors, one line to open from Python:
//!
//! ```python
//! from safetensors.numpy import load_file
//! t = load_file("DIR/shard-00000.safetensors")   # {"000000/data": f32[T, C, H, W], ...}
//! ```
//!
//! # Why this layout
//! * **One sample, one contiguous region** (its data, metadata and layers,
//!   in that order), starting on a 64-byte boundary: a sample is two reads
//!   (its data straight into the loader's recycled array, then the small
//!   rest), page-cache friendly and memory-mappable. Samples are not
//!   grouped by tensor kind because the loader never wants one kind alone.
//! * **f32 data** exactly as the online loader holds it (NaN = no data):
//!   bit-identity needs the stack itself, and normalization and
//!   augmentation are seeded per epoch, so they are applied at read time.
//!   **Layers as U8** (they are 0/1): a quarter of their f32 size.
//! * **The split is a pure function of the sample list**: shard `k` holds
//!   samples `k·S … k·S + S − 1`; part `I` of `N` writes shards
//!   `⌊I·K/N⌋ … ⌊(I+1)·K/N⌋ − 1`. Parts are disjoint, cover every sample,
//!   and write exactly the shards a single run writes.
//! * **Crash-safe**: a shard is written under a temporary name, synced and
//!   renamed (an object store: one whole upload), so a shard either exists
//!   complete or not at all; a rerun keeps the shards that exist and writes
//!   the rest — the same bytes an uninterrupted run writes (nothing in a
//!   shard or an index depends on time or on the run).
//!
//! Local shards are read with positioned reads (`pread`) rather than a
//! memory map: the bytes are copied once either way (into the loader's
//! array), and a shard truncated or replaced under a running loader is an
//! error naming it instead of a `SIGBUS`.

mod format;
mod location;
mod read;
mod write;

pub use read::{ShardOptions, ShardSet, Verify};
pub use write::{
    MaterializeOptions, MaterializeProgress, MaterializeReport, materialize, merge_parts,
    part_from_env,
};

use crate::DatasetConfig;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `format` of an index and of `dataset.json`.
pub const INDEX_FORMAT: &str = "tilestack-shards/1";

/// The default shard size: 256 MiB.
pub const DEFAULT_SHARD_BYTES: u64 = 256 << 20;

/// One sample as the index records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleEntry {
    /// Its index in the dataset (and the tensor prefix, six digits).
    pub index: usize,
    /// The sample id.
    pub id: String,
    /// The shard holding it.
    pub shard: usize,
    /// Byte offset of its region (its `data` tensor) in the shard file.
    pub offset: u64,
    /// Bytes of its region (tensors, without the pad); 0 for a failed sample.
    pub length: u64,
    /// CRC-32 of the region's bytes.
    pub crc32: u32,
    /// `[lon, lat]` of the tile centre.
    pub centroid: [f64; 2],
    /// First day of the sample's time window.
    pub start: NaiveDate,
    /// Last day of the sample's time window.
    pub end: NaiveDate,
    /// First day of each step.
    pub days: Vec<NaiveDate>,
    /// EPSG code of the tile grid.
    pub epsg: u32,
    /// GDAL geotransform of the tile grid.
    pub transform: [f64; 6],
    /// Per step, max scene `eo:cloud_cover`, percent (`null`: no scene).
    pub eo_cloud_cover: Vec<Option<f32>>,
    /// Per step, percent of no-data input pixels.
    pub pct_nans: Vec<Option<f32>>,
    /// Per step, the tile's own cloud fraction (`null`: not read).
    pub tile_cloud_fraction: Vec<Option<f32>>,
    /// Scene ids per step.
    pub items: Vec<Vec<String>>,
    /// Windows read as no data (`errors_as_nodata`).
    pub read_errors: Vec<String>,
    /// Why the sample failed to load, when it did (it has no tensors then;
    /// the loaders apply their error policy to it as they would online).
    pub error: Option<String>,
}

/// One shard as the index records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Its number.
    pub shard: usize,
    /// File name, relative to the index.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// `index.json` (or one part's `index-I-of-N.json`): the dataset and every sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// [`INDEX_FORMAT`].
    pub format: String,
    /// The tilestack version that wrote it.
    pub tilestack_version: String,
    /// The dataset's name.
    pub name: String,
    /// SHA-256 of what determines the samples (see [`config_hash`]).
    pub config_hash: String,
    /// The config the shards were written from.
    pub config: DatasetConfig,
    /// Samples in the dataset (all parts).
    pub samples: usize,
    /// `[T, C, H, W]` of every sample.
    pub shape: [usize; 4],
    /// Band names, in `C` order.
    pub bands: Vec<String>,
    /// Label layer names.
    pub labels: Vec<String>,
    /// Input mask names.
    pub masks: Vec<String>,
    /// Samples per shard (the last shard may hold fewer).
    pub samples_per_shard: usize,
    /// Shards in the dataset (all parts).
    pub shard_count: usize,
    /// Candidates the sampler produced, and those the filters dropped, by reason.
    pub candidates: usize,
    /// Samples dropped before materializing, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// `[I, N]` for one part's index; absent in a whole index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<[usize; 2]>,
    /// The shards it covers.
    pub shards: Vec<ShardInfo>,
    /// The samples it covers, by index.
    pub entries: Vec<SampleEntry>,
}

/// SHA-256 (hex) of what determines a dataset's samples: its catalog,
/// stack, time windows, sampler, labels, masks, filters and seed. The name,
/// normalization, augmentation and loader options are left out — they
/// apply when shards are read, so changing them needs no new shards.
///
/// ```
/// let a = tilestack::DatasetConfig::from_toml_str(
///     "[catalog]\ndemo = \"oakland\"\n[stack]\nbands = [\"B04\"]\n[time]\nrange = \"2019-08-01/2019-08-05\"\n\
///      [sampler]\nkind = \"random\"\nbbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 4\n[loader]\nbatch_size = 4\n",
///     "a.toml".as_ref())?;
/// let mut b = a.clone();
/// b.loader.batch_size = 16; // read-time option: same shards
/// assert_eq!(tilestack::config_hash(&a), tilestack::config_hash(&b));
/// b.seed = 1; // another random draw of samples
/// assert_ne!(tilestack::config_hash(&a), tilestack::config_hash(&b));
/// # Ok::<(), tilestack::Error>(())
/// ```
pub fn config_hash(cfg: &DatasetConfig) -> String {
    use sha2::Digest;
    #[derive(Serialize)]
    struct Identity<'a> {
        catalog: &'a crate::CatalogConfig,
        stack: &'a toml::Table,
        time: &'a crate::TimeWindows,
        sampler: &'a crate::SamplerConfig,
        labels: &'a [crate::LayerConfig],
        masks: &'a [crate::LayerConfig],
        filters: &'a crate::FilterConfig,
        seed: u64,
    }
    let what = Identity {
        catalog: &cfg.catalog,
        stack: &cfg.stack,
        time: &cfg.time,
        sampler: &cfg.sampler,
        labels: &cfg.labels,
        masks: &cfg.masks,
        filters: &cfg.filters,
        seed: cfg.seed,
    };
    // Serializing these types cannot fail (string keys only).
    let text = serde_json::to_vec(&what).unwrap_or_default();
    let d = sha2::Sha256::digest(&text);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Shard `k`'s file name.
pub(crate) fn shard_file(k: usize) -> String {
    format!("shard-{k:05}.safetensors")
}

/// Part `i` of `n`'s index file name.
pub(crate) fn part_index_file(i: usize, n: usize) -> String {
    format!("index-{i}-of-{n}.json")
}

/// The shards part `i` of `n` writes, of `k` in all.
pub(crate) fn part_shards(i: usize, n: usize, k: usize) -> std::ops::Range<usize> {
    (i * k / n)..((i + 1) * k / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_disjoint_and_cover_every_shard() {
        for k in [0, 1, 2, 5, 7, 100] {
            for n in 1..=6 {
                let mut all = Vec::new();
                for i in 0..n {
                    all.extend(part_shards(i, n, k));
                }
                assert_eq!(all, (0..k).collect::<Vec<_>>(), "k {k} n {n}");
            }
        }
    }
}
