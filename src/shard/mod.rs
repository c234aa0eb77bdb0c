//! Shards for offline training: [`materialize`] writes every sample of a
//! dataset config once — through the same load path as the online loader —
//! into safetensors shards plus an index; [`ShardSet`] reads them back, and
//! [`BatchLoader::from_shards`](crate::loader::BatchLoader::from_shards) batches them
//! with the online loader's own code, so that shards and the online loader
//! give bit-identical batches for the same seed and epoch.
//!
//! # The files
//!
//! ```text
//! DIR/dataset.json              what the folder holds: config hash, name, layout
//! DIR/shard-00000.safetensors   samples 0 … S−1 (S samples per shard)
//! DIR/shard-00001.safetensors   …
//! DIR/index.json                the index's header: dataset, layout, shards, its table
//! DIR/index.samples.bin         one fixed-width row per sample: shard, offset, checksum,
//!                               dates, centroid, EPSG, transform (a numpy record)
//! DIR/index.meta.jsonl          one JSON line per sample: id, days, cloud/NaN metadata,
//!                               scene ids, read errors, error
//! DIR/index-I-of-N.*            one part's index (`--part I/N`), merged into index.*
//! ```
//!
//! The index opens a million samples in about a second, holding ~90 bytes
//! each (why a table, and not JSON or Parquet: below); in Python:
//!
//! ```python
//! h = json.load(open("DIR/index.json"))
//! rows = np.fromfile("DIR/" + h["table"]["rows"], dtype=[tuple(c) for c in h["table"]["columns"]])
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
//!   **Layers as U8** (0/1, or a raster label's class indexes): a quarter
//!   of their f32 size.
//! * **Several inputs** (`[[inputs]]`): each input after the first is
//!   more tensors of the same region, after the layers
//!   (`{k}/inputs/{name}/data`, its per-step cloud/NaN metadata and
//!   `has_data` flags; see the `format` table); its days, scene ids,
//!   orbit directions and platforms are in the sample's JSON line, its
//!   layout in the index header (`inputs`). A dataset of one input writes
//!   exactly what it wrote before.
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
//! * **The index is a fixed-width table**, not one JSON document: opening
//!   reads 136 bytes per sample and keeps ~90 (shard, offset, checksum,
//!   grid); a sample's variable-length fields (id, days, cloud and NaN
//!   fractions, scene ids, read errors) are one line of `index.meta.jsonl`,
//!   read when the sample is. A JSON index of a million samples is ~4 GB
//!   to parse. Not Parquet: the reader is in the default library, which
//!   stays free of arrow's build (feature `geoparquet`), and numpy reads a
//!   packed little-endian record in one line without pyarrow. The header
//!   is written after its table, so its presence means the table is whole;
//!   parts' tables are merged by streaming them, a buffer at a time.
//!   An `index.json` of the earlier format ([`INDEX_FORMAT_V1`], entries
//!   inline) is still read (converted in memory); rerunning `materialize`
//!   on the folder rewrites it as a table without loading a sample again.
//!
//! Local shards are read with positioned reads (`pread`) rather than a
//! memory map: the bytes are copied once either way (into the loader's
//! array), and a shard truncated or replaced under a running loader is an
//! error naming it instead of a `SIGBUS`.
//!
//! May import: every stage up to [`crate::dataset`] (`materialize` writes a
//! dataset through the online load path).

pub(crate) mod format;
pub(crate) mod index;
pub(crate) mod location;
pub(crate) mod materialize;
pub(crate) mod read;

pub use index::{
    Column, INDEX_FORMAT, INDEX_FORMAT_V1, InputEntry, ROW_BYTES, SampleEntry, SampleTable,
    ShardIndex, ShardInfo, write_index, write_index_v1,
};
pub use materialize::{
    MaterializeOptions, MaterializeProgress, MaterializeReport, materialize, merge_parts,
    part_from_env,
};
pub use read::{SampleRegion, ShardOptions, ShardSet, Verify};
use serde::Serialize;

use crate::dataset::config::DatasetConfig;

/// The default shard size: 256 MiB.
pub const DEFAULT_SHARD_BYTES: u64 = 256 << 20;

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
/// assert_eq!(tilestack::shard::config_hash(&a), tilestack::shard::config_hash(&b));
/// b.seed = 1; // another random draw of samples
/// assert_ne!(tilestack::shard::config_hash(&a), tilestack::shard::config_hash(&b));
/// # Ok::<(), tilestack::Error>(())
/// ```
pub fn config_hash(cfg: &DatasetConfig) -> String {
    use sha2::Digest;
    #[derive(Serialize)]
    struct Identity<'a> {
        catalog: &'a crate::dataset::config::CatalogConfig,
        stack: serde_json::Value,
        time: &'a crate::dataset::sampler::TimeWindows,
        sampler: &'a crate::dataset::sampler::SamplerConfig,
        labels: &'a [crate::dataset::config::LayerConfig],
        masks: &'a [crate::dataset::config::LayerConfig],
        filters: &'a crate::dataset::config::FilterConfig,
        seed: u64,
        // absent for one input: the hashes of one-input configs are unchanged
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        inputs: &'a [crate::dataset::config::InputConfig],
    }
    // An input's normalization applies when it is read, as `[normalize]`.
    let inputs: Vec<_> = cfg
        .inputs
        .iter()
        .map(|i| crate::dataset::config::InputConfig {
            normalize: None,
            ..i.clone()
        })
        .collect();
    let what = Identity {
        catalog: &cfg.catalog,
        stack: cfg.stack.canonical(),
        time: &cfg.time,
        sampler: &cfg.sampler,
        labels: &cfg.labels,
        masks: &cfg.masks,
        filters: &cfg.filters,
        seed: cfg.seed,
        inputs: &inputs,
    };
    // Serializing these types cannot fail (string keys only).
    let text = serde_json::to_vec(&what).unwrap_or_default();
    let d = sha2::Sha256::digest(&text);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> DatasetConfig {
        DatasetConfig::from_toml_str(text, "a.toml".as_ref()).expect("a valid config")
    }

    const BASE: &str = "[catalog]\ndemo = \"oakland\"\n[stack]\nbands = [\"B04\"]\n\
        [time]\nrange = \"2019-08-01/2019-08-05\"\n\
        [sampler]\nkind = \"random\"\nbbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 4\n";

    #[test]
    fn the_hash_covers_parsed_values_not_the_toml_text() {
        let a = config(BASE);
        // Other formatting, a comment, keys in another order, a default
        // spelled out, an integer where a float is meant: the same values.
        let b = config(
            "# the same dataset, written otherwise\n\
             [sampler]\ncount = 4\nkind = \"random\"\nbbox = [ -122.35, 37.79, -122.31, 37.83 ]\n\
             [stack]\nbands = [ \"B04\" ]   # red\ntile_size = 256\nresolution = 10\n\
             [catalog]\ndemo = \"oakland\"\n[time]\nrange = \"2019-08-01/2019-08-05\"\n",
        );
        assert_eq!(a.stack, b.stack);
        assert_eq!(config_hash(&a), config_hash(&b));
        // A value that changes the samples changes the hash.
        let c = config(&BASE.replace("bands = [\"B04\"]", "bands = [\"B04\"]\ntile_size = 128"));
        assert_ne!(config_hash(&a), config_hash(&c));
        assert_eq!(config_hash(&a).len(), 64);
    }

    #[test]
    fn stack_keys_are_refused_naming_the_key() {
        let unknown = BASE.replace("bands = [\"B04\"]", "bands = [\"B04\"]\ntile_sise = 64");
        let e = DatasetConfig::from_toml_str(&unknown, "a.toml".as_ref()).unwrap_err();
        // the TOML error (naming the key) is the source, printed by chain
        assert!(e.chain().contains("tile_sise"), "{}", e.chain());
        let centroid = BASE.replace(
            "bands = [\"B04\"]",
            "bands = [\"B04\"]\ncentroid = [0.0, 0.0]",
        );
        let e = DatasetConfig::from_toml_str(&centroid, "a.toml".as_ref()).unwrap_err();
        assert!(e.chain().contains("stack.centroid"), "{}", e.chain());
        assert!(e.to_string().contains("a.toml"), "{e}");
    }
}
