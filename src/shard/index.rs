//! The shard index: what a folder of shards holds (`index.json`, one
//! [`SampleEntry`] per sample, the [`ShardInfo`] of each shard), how its
//! files are named, parts' indexes (`index-I-of-N.json`) and their merge.
//! Both the writer ([`materialize`](crate::shard::materialize())) and the
//! reader ([`ShardSet`](crate::shard::ShardSet)) use it; neither imports the other.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::dataset::config::DatasetConfig;
use crate::error::{Error, Result};
use crate::shard::location::Location;
use crate::stack::SampleLayout;

/// `format` of an index and of `dataset.json`.
pub const INDEX_FORMAT: &str = "tilestack-shards/1";

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
    /// SHA-256 of what determines the samples (see [`config_hash`](crate::shard::config_hash)).
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

impl ShardIndex {
    /// The layout of the samples it indexes.
    pub fn layout(&self) -> SampleLayout {
        SampleLayout {
            shape: self.shape,
            bands: self.bands.clone(),
            labels: self.labels.clone(),
            masks: self.masks.clone(),
        }
    }

    /// An index from the JSON of an `index.json` (or a part's), checked as
    /// [`ShardSet::open`](crate::shard::ShardSet::open) checks it: format, entries complete and in order,
    /// each sample's region the size its shape needs. `name` names the file
    /// in errors.
    ///
    /// ```
    /// let e = tilestack::shard::ShardIndex::from_json(b"{}", "index.json").unwrap_err();
    /// assert!(e.to_string().contains("index.json"));
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `name` and what is wrong (the JSON parser's
    /// error as its source when it is not an index at all).
    pub fn from_json(bytes: &[u8], name: &str) -> Result<ShardIndex> {
        let index = parse_index(bytes, name)?;
        check_index(&index, name)?;
        Ok(index)
    }
}

/// An index from its JSON.
pub(crate) fn parse_index(bytes: &[u8], name: &str) -> Result<ShardIndex> {
    let index: ShardIndex = serde_json::from_slice(bytes).map_err(|e| {
        Error::invalid_because(
            "shard index",
            format!("{name}: not a tilestack shard index"),
            e,
        )
    })?;
    if index.format != INDEX_FORMAT {
        return Err(Error::invalid(
            "shard index",
            format!(
                "{name}: format {:?}, this tilestack reads {INDEX_FORMAT:?}",
                index.format
            ),
        ));
    }
    Ok(index)
}

/// Entries complete, in order, each region the size the shape says.
pub(crate) fn check_index(index: &ShardIndex, name: &str) -> Result<()> {
    let bad = |m: String| Error::invalid("shard index", format!("{name}: {m}"));
    if index.entries.len() != index.samples {
        return Err(bad(format!(
            "{} entries for {} samples",
            index.entries.len(),
            index.samples
        )));
    }
    if index.shards.len() != index.shard_count {
        return Err(bad(format!(
            "{} shards listed of {}",
            index.shards.len(),
            index.shard_count
        )));
    }
    let want = index
        .layout()
        .region_bytes()
        .ok_or_else(|| bad(format!("shape {:?} overflows", index.shape)))?;
    let sizes: std::collections::HashMap<usize, u64> =
        index.shards.iter().map(|s| (s.shard, s.bytes)).collect();
    for (i, e) in index.entries.iter().enumerate() {
        if e.index != i {
            return Err(bad(format!("entry {i} is sample {}", e.index)));
        }
        if e.shard >= index.shard_count {
            return Err(bad(format!(
                "sample {i} in shard {} of {}",
                e.shard, index.shard_count
            )));
        }
        let in_shard = sizes.get(&e.shard).is_some_and(|&bytes| {
            e.offset
                .checked_add(e.length)
                .is_some_and(|end| end <= bytes)
        });
        if e.error.is_none() && !in_shard {
            return Err(bad(format!(
                "sample {i} (bytes {}+{}) lies outside shard {}",
                e.offset, e.length, e.shard
            )));
        }
        if e.error.is_none() && e.length != want {
            return Err(bad(format!(
                "sample {i} has {} bytes, its shape {:?} needs {want}",
                e.length, index.shape
            )));
        }
    }
    Ok(())
}

pub(crate) fn index_json(index: &ShardIndex) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(index)
        .map_err(|e| Error::internal_because("shard index", "cannot write it as JSON", e))?;
    v.push(b'\n');
    Ok(v)
}

/// One index of every part's (all of `0..n`), checked to be one dataset
/// and to cover it.
pub(crate) fn merge(parts: Vec<ShardIndex>, name: &str) -> Result<ShardIndex> {
    let Some(first) = parts.first() else {
        return Err(Error::invalid("shard index", format!("{name}: no part")));
    };
    let mut out = first.clone();
    out.part = None;
    out.shards.clear();
    out.entries.clear();
    for p in &parts {
        if p.config_hash != out.config_hash || p.samples_per_shard != out.samples_per_shard {
            return Err(Error::invalid(
                "shard index",
                format!(
                    "{name}: part {:?} is another dataset or layout (config hash {}, {} samples \
                     per shard; part 0: {}, {})",
                    p.part,
                    p.config_hash,
                    p.samples_per_shard,
                    out.config_hash,
                    out.samples_per_shard
                ),
            ));
        }
        out.shards.extend(p.shards.iter().cloned());
        out.entries.extend(p.entries.iter().cloned());
    }
    out.shards.sort_by_key(|s| s.shard);
    out.entries.sort_by_key(|e| e.index);
    if out.entries.len() != out.samples || out.shards.len() != out.shard_count {
        return Err(Error::invalid(
            "shard index",
            format!(
                "{name}: the parts hold {} of {} samples and {} of {} shards",
                out.entries.len(),
                out.samples,
                out.shards.len(),
                out.shard_count
            ),
        ));
    }
    Ok(out)
}

/// Reads parts `0..n`'s indexes; `None` when one is missing.
pub(crate) async fn read_parts(loc: &Location, n: usize) -> Result<Option<Vec<ShardIndex>>> {
    let mut parts = Vec::with_capacity(n);
    for i in 0..n {
        let f = part_index_file(i, n);
        match loc.read_all(&f).await? {
            Some(b) => parts.push(parse_index(&b, &loc.name(&f))?),
            None => return Ok(None),
        }
    }
    Ok(Some(parts))
}

/// Writes `index.json` when every part's index is there; true when it did.
pub(crate) async fn try_merge(loc: &Location, n: usize) -> Result<bool> {
    let Some(parts) = read_parts(loc, n).await? else {
        return Ok(false);
    };
    let index = merge(parts, &loc.name("index.json"))?;
    loc.put("index.json", vec![Bytes::from(index_json(&index)?)])
        .await?;
    Ok(true)
}

/// The merged index of a local folder's part indexes, when one count `N`
/// has all its parts there (what [`ShardSet`](crate::shard::read::ShardSet) reads when
/// `index.json` is missing).
pub(crate) async fn local_parts(loc: &Location) -> Result<Option<ShardIndex>> {
    let mut counts: Vec<usize> = loc
        .list_local()?
        .iter()
        .filter_map(|f| {
            let rest = f.strip_prefix("index-")?.strip_suffix(".json")?;
            let (_, n) = rest.split_once("-of-")?;
            n.parse().ok()
        })
        .collect();
    counts.sort_unstable();
    counts.dedup();
    for n in counts {
        if let Some(parts) = read_parts(loc, n).await? {
            return merge(parts, &loc.name("index.json")).map(Some);
        }
    }
    Ok(None)
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
