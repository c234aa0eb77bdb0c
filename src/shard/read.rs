//! [`ShardSet`]: materialized shards opened for reading.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::dataset::config::DatasetConfig;
use crate::dataset::inputs::{InputLayout, InputStack};
use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;
use crate::geo::grid::{GeoTransform, GridSpec};
use crate::shard::config_hash;
use crate::shard::index::{
    Opened, SampleEntry, ShardIndex, Slot, Table, read_entry, read_meta, shard_file,
};
use crate::shard::location::Location;
use crate::stack::{Layers, SampleLayout, TileStack};
use crate::units::Epsg;

/// Ids kept of the samples loaded last (see [`ShardSet::id`]): far more
/// than a loader has in flight, a few MB at most.
const RECENT_IDS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(1 << 16).unwrap();

/// When a sample's checksum is checked against the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// The first time each sample is read by this [`ShardSet`] (default):
    /// a corrupt shard is caught in the first epoch, later epochs run at
    /// memory speed.
    #[default]
    First,
    /// Every read.
    Always,
    /// Never (the files are trusted).
    Never,
}

/// How [`ShardSet::open_with`] opens shards.
#[derive(Debug, Clone, Default)]
pub struct ShardOptions {
    /// The dataset config to read with (its normalization, augmentation,
    /// loader options and seed apply). Its [`config_hash`] must equal the
    /// shards'. `None`: the config stored in the index.
    pub config: Option<DatasetConfig>,
    /// Checksum checks.
    pub verify: Verify,
    /// The client for `s3://` / `gs://` / `az://` / `http(s)://` shards
    /// (with its registered object stores); `None`: a default one.
    pub client: Option<HttpRangeClient>,
}

/// Shards written by [`materialize`](crate::shard::materialize::materialize), opened: the index
/// read and checked, local shard files checked for presence and size. Loads
/// samples as the online [`TileDataset`](crate::dataset::TileDataset) does — the
/// stack, its label and mask layers — for
/// [`BatchLoader::from_shards`](crate::loader::BatchLoader::from_shards).
///
/// ```no_run
/// use std::sync::Arc;
/// use tilestack::{BatchLoader, ShardSet};
/// let shards = Arc::new(ShardSet::open("shards/oakland-ships")?);
/// let loader = BatchLoader::from_shards(shards.clone(), shards.config().loader.clone())?;
/// for batch in loader.iter()? {
///     let batch = batch?;
///     println!("{:?}", batch.ids);
/// }
/// # Ok::<(), tilestack::Error>(())
/// ```
pub struct ShardSet {
    /// `None` only while dropping. Loads run here.
    rt: Option<tokio::runtime::Runtime>,
    /// The header.
    index: ShardIndex,
    /// The sample table(s): one, or one per part when opened from parts.
    tables: Vec<Table>,
    /// What every load needs, per sample; the rest is read from `tables`.
    slots: Vec<Slot>,
    config: DatasetConfig,
    location: Location,
    /// Where the index came from, for messages.
    index_name: String,
    verify: Verify,
    verified: Vec<AtomicBool>,
    /// Ids of the samples loaded last (a loaded sample's record was just
    /// read: the loader asks for its id right after), bounded.
    ids: std::sync::Mutex<lru::LruCache<usize, String>>,
    bytes: AtomicU64,
    reads: AtomicU64,
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSet")
            .field("index", &self.index_name)
            .field("samples", &self.slots.len())
            .field("shards", &self.index.shard_count)
            .finish()
    }
}

impl Drop for ShardSet {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl ShardSet {
    /// Opens the shards in `location` (a folder, or a URL prefix) with the
    /// config stored in their index.
    ///
    /// # Errors
    /// As [`ShardSet::open_with`].
    pub fn open(location: &str) -> Result<ShardSet> {
        ShardSet::open_with(location, ShardOptions::default())
    }

    /// Opens the shards in `location`: reads `index.json` and its sample
    /// table (in a local folder, the parts' `index-I-of-N.json` and tables
    /// when every part is there and no merged index is), checks every row,
    /// and checks that every local shard it names exists with its recorded
    /// size. Holds ~90 bytes per sample; each sample's variable-length
    /// fields (id, days, scene ids, …) are read when it is loaded or asked
    /// for ([`ShardSet::entry`]). An index of the earlier format
    /// ([`INDEX_FORMAT_V1`](crate::shard::INDEX_FORMAT_V1), entries inline)
    /// is read too, converted in memory.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the index or shard file: no index, parts
    /// missing, an index of another format, a shard missing or of another
    /// size; [`Error::Config`] naming the config file when its hash differs
    /// from the shards' (they were written from another dataset);
    /// [`Error::Invalid`] for a call from inside an async runtime;
    /// [`Error::Internal`] when its runtime cannot start.
    pub fn open_with(location: &str, opts: ShardOptions) -> Result<ShardSet> {
        let threads = opts.config.as_ref().and_then(|c| c.loader.threads);
        let rt = crate::runtime::own_runtime("ShardSet::open", "tilestack-shards", threads)?;
        let loc = Location::parse(location, opts.client.clone())?;
        let opened = rt.block_on(read_index(&loc));
        let (opened, index_name) = match opened {
            Ok(x) => x,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        let config = match opts.config {
            Some(c) => {
                let hash = config_hash(&c);
                if hash != opened.header.config_hash {
                    rt.shutdown_background();
                    return Err(c.error(
                        "config",
                        format!(
                            "its samples (catalog, stack, time, sampler, labels, masks, filters, seed) \
                             hash to {hash}, but {index_name} was written from a config hashing to {} \
                             (dataset {:?}): these shards hold another dataset; materialize this config",
                            opened.header.config_hash, opened.header.name
                        ),
                    ));
                }
                c
            }
            None => opened.header.config.clone(),
        };
        let verified = (0..opened.slots.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        Ok(ShardSet {
            rt: Some(rt),
            index: opened.header,
            tables: opened.tables,
            slots: opened.slots,
            config,
            location: loc,
            index_name,
            verify: opts.verify,
            verified,
            ids: std::sync::Mutex::new(lru::LruCache::new(RECENT_IDS)),
            bytes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        })
    }

    /// The index's header: dataset, layout, shards, where the table is
    /// (opened from parts: the table their merge writes).
    pub fn index(&self) -> &ShardIndex {
        &self.index
    }

    /// Sample `index`'s entry, read from the table (a row and one JSON
    /// line; blocking, from a plain thread).
    ///
    /// ```no_run
    /// let shards = tilestack::ShardSet::open("shards/oakland-ships")?;
    /// let e = shards.entry(0)?;
    /// println!("{} in shard {}: {} days", e.id, e.shard, e.days.len());
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] for no such sample, or naming the table file
    /// when its row or record does not read or parse; a call from inside
    /// an async runtime (use [`ShardSet::entry_async`]).
    pub fn entry(&self, index: usize) -> Result<SampleEntry> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::invalid(
                "ShardSet::entry",
                "called inside an async runtime; use entry_async",
            ));
        }
        self.handle()?.block_on(self.entry_async(index))
    }

    /// [`ShardSet::entry`], from async code.
    ///
    /// # Errors
    /// As [`ShardSet::entry`].
    pub async fn entry_async(&self, index: usize) -> Result<SampleEntry> {
        let slot = self.slot(index)?;
        read_entry(&self.location, &self.tables, slot, index, &self.index_name).await
    }

    /// Every sample's entry in order, each read when the iterator reaches
    /// it (blocking; from a plain thread): memory of one entry at a time.
    pub fn entries(&self) -> impl Iterator<Item = Result<SampleEntry>> + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }

    /// Where sample `index`'s region is, from memory (no read): what a
    /// loader needs to shuffle, slice and read it.
    pub fn region(&self, index: usize) -> Option<SampleRegion> {
        let s = self.slots.get(index)?;
        Some(SampleRegion {
            shard: s.shard as usize,
            offset: s.offset,
            length: if s.failed { 0 } else { self.region_len() },
            crc32: s.crc32,
            failed: s.failed,
        })
    }

    /// Sample `index`'s id (one record read, unless it was just loaded).
    ///
    /// # Errors
    /// As [`ShardSet::entry`].
    pub async fn id(&self, index: usize) -> Result<String> {
        if let Some(id) = self.recent_id(index) {
            return Ok(id);
        }
        let slot = self.slot(index)?;
        read_meta(&self.location, &self.tables, slot, index, &self.index_name)
            .await
            .map(|m| m.id)
    }

    fn recent_id(&self, index: usize) -> Option<String> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(&index).cloned()
    }

    /// Sample `index`'s id from sync code inside the loader's runtime:
    /// from the samples loaded last (the loader asks right after a load),
    /// else read (blocking this worker briefly); empty when it cannot be
    /// read (the load's own error is reported with the sample).
    pub(crate) fn id_now(&self, index: usize) -> String {
        if let Some(id) = self.recent_id(index) {
            return id;
        }
        let got = match tokio::runtime::Handle::try_current() {
            Err(_) => self.handle().and_then(|h| h.block_on(self.id(index))),
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(self.id(index)))
            }
            Ok(_) => Err(Error::invalid(
                "ShardSet::id",
                "called from a single-threaded runtime",
            )),
        };
        got.unwrap_or_else(|e| {
            tracing::warn!(sample = index, error = %e.chain(), "sample id not read");
            String::new()
        })
    }

    fn slot(&self, index: usize) -> Result<&Slot> {
        self.slots.get(index).ok_or_else(|| {
            Error::invalid(
                "sample",
                format!("no sample {index} (of {})", self.slots.len()),
            )
        })
    }

    /// Bytes of a loaded sample's region (checked at open not to overflow).
    fn region_len(&self) -> u64 {
        self.index.region_bytes().unwrap_or(0)
    }

    /// The config read with (see [`ShardOptions::config`]).
    pub fn config(&self) -> &DatasetConfig {
        &self.config
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// `[T, C, H, W]` of every sample.
    pub fn shape(&self) -> [usize; 4] {
        self.index.shape
    }

    /// The layouts of the inputs after the first, in config order (none
    /// for a dataset of one input).
    pub fn input_layouts(&self) -> &[InputLayout] {
        &self.index.inputs
    }

    /// The layout every sample shares: shape, bands, label and mask names.
    pub fn layout(&self) -> SampleLayout {
        self.index.layout()
    }

    /// Label layer names.
    pub fn label_names(&self) -> &[String] {
        &self.index.labels
    }

    /// Input mask names.
    pub fn mask_names(&self) -> &[String] {
        &self.index.masks
    }

    /// The runtime loads run on.
    ///
    /// # Errors
    /// [`Error::Internal`] while dropping (its runtime is shut down).
    pub fn handle(&self) -> Result<tokio::runtime::Handle> {
        self.rt
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| Error::internal("shards", "its runtime is shut down"))
    }

    /// Bytes read and reads made so far.
    pub(crate) fn io(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.reads.load(Ordering::Relaxed),
        )
    }

    /// Sample `index`'s stack (blocking; from a plain thread).
    ///
    /// # Errors
    /// As [`ShardSet::load_with_layers`]'s; a call from inside an async runtime.
    pub fn load(&self, index: usize) -> Result<TileStack> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::invalid(
                "ShardSet::load",
                "called inside an async runtime; use load_with_layers",
            ));
        }
        self.handle()?
            .block_on(self.load_with_layers(index, None))
            .map(|(s, _, _)| s)
    }

    /// Sample `index`'s stack (into `buffer` when its shape fits) and its
    /// label and mask layers, exactly as the online loader built them.
    ///
    /// # Errors
    /// The error recorded for a sample that failed when the shards were
    /// written ([`Error::Recorded`]); [`Error::Invalid`] naming the shard
    /// file and sample: a short read, a checksum that differs from the
    /// index (a corrupt shard).
    pub async fn load_with_layers(
        &self,
        index: usize,
        buffer: Option<ndarray::Array4<f32>>,
    ) -> Result<(TileStack, Layers, Vec<InputStack>)> {
        let e = *self.slot(index)?;
        let meta = read_meta(&self.location, &self.tables, &e, index, &self.index_name).await?;
        {
            let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            ids.put(index, meta.id.clone());
        }
        if e.failed {
            return Err(Error::Recorded {
                message: meta.error.unwrap_or_default(),
            });
        }
        let [t, c, h, w] = self.index.shape;
        if meta.days.len() != t {
            return Err(Error::invalid(
                "shard index",
                format!(
                    "{}: sample {index} ({}) has {} days, its shape {:?} has {t} steps",
                    self.index_name,
                    meta.id,
                    meta.days.len(),
                    self.index.shape
                ),
            ));
        }
        let px = h * w;
        let (nl, nm) = (self.index.labels.len(), self.index.masks.len());
        let mut data = match buffer {
            Some(b) if b.dim() == (t, c, h, w) && b.is_standard_layout() => b,
            _ => ndarray::Array4::<f32>::zeros((t, c, h, w)),
        };
        let file = shard_file(e.shard as usize);
        let name = self.location.name(&file);
        let data_bytes = (t * c * px * 4) as u64;
        // The index was checked at open: its region size does not overflow.
        let rest_len = usize::try_from(self.region_len() - data_bytes)
            .map_err(|_| Error::internal("shard", "region larger than memory"))?;
        let mut rest = vec![0u8; rest_len];
        {
            let slice = data
                .as_slice_mut()
                .ok_or_else(|| Error::internal("shard", "stack array not contiguous"))?;
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(slice);
            self.location.read_into(&file, e.offset, bytes).await?;
            self.location
                .read_into(&file, e.offset + data_bytes, &mut rest)
                .await?;
            self.bytes
                .fetch_add(data_bytes + rest_len as u64, Ordering::Relaxed);
            self.reads.fetch_add(2, Ordering::Relaxed);
            let check = match self.verify {
                Verify::Always => true,
                Verify::Never => false,
                Verify::First => !self.verified[index].load(Ordering::Relaxed),
            };
            if check {
                let mut h = crc32fast::Hasher::new();
                h.update(bytes);
                h.update(&rest);
                let got = h.finalize();
                if got != e.crc32 {
                    return Err(Error::invalid(
                        "shard",
                        format!(
                            "{name}: sample {index} ({}) has checksum {got:08x}, the index {:08x}: \
                             the shard is corrupt; delete it and rerun materialize",
                            meta.id, e.crc32
                        ),
                    ));
                }
                self.verified[index].store(true, Ordering::Relaxed);
            }
        }
        if cfg!(target_endian = "big")
            && let Some(s) = data.as_slice_mut()
        {
            for x in s {
                *x = f32::from_bits(x.to_bits().swap_bytes());
            }
        }
        let f32s = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|q| f32::from_le_bytes([q[0], q[1], q[2], q[3]]))
                .collect()
        };
        let (steps, layers) = rest.split_at(12 * t);
        let eo_cloud_cover = f32s(&steps[..4 * t]);
        let pct_nans = f32s(&steps[4 * t..8 * t]);
        let tile_cloud_fraction = f32s(&steps[8 * t..]);

        let (layers, mut others) = layers.split_at((nl * t + nm) * px);
        let (lab, msk) = layers.split_at(nl * t * px);
        let labels = lab
            .chunks_exact(t * px)
            .map(|layer| layer.chunks_exact(px).map(<[u8]>::to_vec).collect())
            .collect();
        let masks = msk.chunks_exact(px).map(<[u8]>::to_vec).collect();
        let grid = GridSpec {
            epsg: Epsg::new(e.epsg)?,
            transform: GeoTransform::from_gdal(e.transform),
            width: w,
            height: h,
        };
        let mut inputs = Vec::with_capacity(self.index.inputs.len());
        for (k, l) in self.index.inputs.iter().enumerate() {
            let [it, ic, ih, iw] = l.shape;
            let n = it * ic * ih * iw;
            // The region's length was checked against the layouts at open.
            let (values, rest) = others.split_at(4 * n);
            let (steps, rest) = rest.split_at(12 * it);
            let (has, rest) = rest.split_at(it);
            others = rest;
            let entry = meta.inputs.get(k).filter(|e| e.name == l.name);
            let Some(entry) = entry.filter(|e| e.days.len() == it) else {
                return Err(Error::invalid(
                    "shard index",
                    format!(
                        "{}: sample {index} ({}) has no record of input {:?} with {it} days",
                        self.index_name, meta.id, l.name
                    ),
                ));
            };
            let data = ndarray::Array4::from_shape_vec((it, ic, ih, iw), f32s(values))
                .map_err(|e| Error::internal_because("shard", "input shape", e))?;
            inputs.push(InputStack {
                name: l.name.clone(),
                rule: l.rule,
                stack: TileStack {
                    data,
                    bands: l.bands.clone(),
                    days: entry.days.clone(),
                    eo_cloud_cover: f32s(&steps[..4 * it]),
                    pct_nans: f32s(&steps[4 * it..8 * it]),
                    tile_cloud_fraction: f32s(&steps[8 * it..]),
                    items: entry.items.clone(),
                    grid: grid.clone(),
                    read_errors: entry.read_errors.clone(),
                },
                has_data: has.iter().map(|&b| b != 0).collect(),
                orbit_state: entry.orbit_state.clone(),
                platform: entry.platform.clone(),
            });
        }
        let stack = TileStack {
            data,
            bands: self.index.bands.clone(),
            days: meta.days,
            eo_cloud_cover,
            pct_nans,
            tile_cloud_fraction,
            items: meta.items,
            grid,
            read_errors: meta.read_errors,
        };
        Ok((stack, Layers { labels, masks }, inputs))
    }
}

/// Where a sample's region is: [`ShardSet::region`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRegion {
    /// The shard holding it.
    pub shard: usize,
    /// Byte offset of its region in the shard file.
    pub offset: u64,
    /// Bytes of its region; 0 for a failed sample.
    pub length: u64,
    /// CRC-32 of the region's bytes.
    pub crc32: u32,
    /// True for a sample that failed to load when the shards were written.
    pub failed: bool,
}

/// The index of the shards at `loc` (its table, or the parts' tables in a
/// local folder without `index.json`), every row checked; and its name
/// for messages. Local shards are checked for presence and size.
async fn read_index(loc: &Location) -> Result<(Opened, String)> {
    let opened = crate::shard::index::open(loc).await?;
    let name = opened.name.clone();
    if loc.is_local() {
        for s in &opened.header.shards {
            match loc.size(&s.file).await? {
                Some(n) if n == s.bytes => {}
                Some(n) => {
                    return Err(Error::invalid(
                        "shards",
                        format!(
                            "{} has {n} bytes, {name} says {}: the shard is truncated or replaced",
                            loc.name(&s.file),
                            s.bytes
                        ),
                    ));
                }
                None => {
                    return Err(Error::invalid(
                        "shards",
                        format!("{name} names {}, which does not exist", loc.name(&s.file)),
                    ));
                }
            }
        }
    }
    Ok((opened, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::index::{ShardInfo, write_index, write_index_v1};
    use chrono::NaiveDate;

    const SHAPE: [usize; 4] = [2, 1, 2, 2];
    /// Region bytes of SHAPE: data 2·1·2·2 f32, 3 f32 per step.
    const REGION: u64 = 32 + 24;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 8, d).expect("a day")
    }

    fn config() -> DatasetConfig {
        DatasetConfig::from_toml_str(
            "[catalog]\ndemo = \"oakland\"\n[stack]\nbands = [\"B04\"]\n[time]\n\
             range = \"2019-08-01/2019-08-05\"\n[sampler]\nkind = \"random\"\n\
             bbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 4\n",
            "a.toml".as_ref(),
        )
        .expect("a config")
    }

    /// Five samples, two per shard (sample 3 failed), every field set, and
    /// their shard files (zeros: each region's checksum is of zeros).
    fn fixture(dir: &std::path::Path) -> (ShardIndex, Vec<SampleEntry>) {
        let zeros = crc32fast::hash(&[0u8; REGION as usize]);
        let entries: Vec<SampleEntry> = (0..5)
            .map(|i| {
                let failed = i == 3;
                SampleEntry {
                    index: i,
                    id: format!("p{i}-\"quoted\" ünïcode"),
                    shard: i / 2,
                    offset: if failed { 0 } else { 64 + 64 * (i as u64 % 2) },
                    length: if failed { 0 } else { REGION },
                    crc32: if failed { 0 } else { zeros },
                    centroid: [-122.3 + 0.001 * i as f64, 37.8],
                    start: day(1),
                    end: day(5),
                    days: if failed {
                        vec![]
                    } else {
                        vec![day(1), day(3 + i as u32 % 2)]
                    },
                    epsg: 32610,
                    transform: [500_000.0 + i as f64, 10.0, 0.0, 4_000_000.0, 0.0, -10.0],
                    eo_cloud_cover: if failed {
                        vec![]
                    } else {
                        vec![Some(1.5), None]
                    },
                    pct_nans: if failed {
                        vec![]
                    } else {
                        vec![Some(0.0), Some(100.0)]
                    },
                    tile_cloud_fraction: if failed {
                        vec![]
                    } else {
                        vec![None, Some(0.25)]
                    },
                    items: if failed {
                        vec![]
                    } else {
                        vec![vec!["S2A_a".into(), "S2B_b".into()], vec![]]
                    },
                    read_errors: if i == 1 {
                        vec!["B04 window 3: 503".into()]
                    } else {
                        vec![]
                    },
                    error: failed.then(|| "no scene: boom".to_string()),
                    inputs: Vec::new(),
                }
            })
            .collect();
        let mut h = ShardIndex::empty(&config(), SHAPE, 2);
        h.samples = 5;
        h.shard_count = 3;
        for k in 0..3 {
            let file = shard_file(k);
            let bytes = 64 + 64 * 2;
            std::fs::write(dir.join(&file), vec![0u8; bytes as usize]).expect("a shard");
            h.shards.push(ShardInfo {
                shard: k,
                file,
                bytes,
            });
        }
        (h, entries)
    }

    fn open(dir: &std::path::Path) -> Result<ShardSet> {
        ShardSet::open(&dir.to_string_lossy())
    }

    #[test]
    fn the_table_reads_back_every_field_of_the_json_index() {
        let (new, old) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (h, entries) = fixture(new.path());
        fixture(old.path());
        let written = write_index(
            &new.path().to_string_lossy(),
            None,
            h.clone(),
            entries.clone(),
        )
        .expect("the table");
        assert_eq!(written.table.count, 5);
        write_index_v1(&old.path().to_string_lossy(), &h, entries.clone()).expect("v1");
        let (a, b) = (open(new.path()).unwrap(), open(old.path()).unwrap());
        assert_eq!(b.index().format, crate::shard::INDEX_FORMAT_V1);
        for set in [&a, &b] {
            assert_eq!(set.len(), 5);
            let got: Vec<SampleEntry> = set.entries().collect::<Result<_>>().unwrap();
            assert_eq!(got, entries, "{set:?}");
            for e in &entries {
                let r = set.region(e.index).unwrap();
                assert_eq!(
                    (r.shard, r.offset, r.length, r.crc32, r.failed),
                    (e.shard, e.offset, e.length, e.crc32, e.error.is_some())
                );
            }
            assert!(set.region(5).is_none());
            assert!(
                set.entry(5)
                    .unwrap_err()
                    .to_string()
                    .contains("no sample 5")
            );
            // a load: the stack from the shard, its fields from the table
            let s = set.load(1).unwrap();
            assert_eq!(
                (&s.days, &s.items, &s.read_errors),
                (&entries[1].days, &entries[1].items, &entries[1].read_errors)
            );
            assert_eq!(s.grid.transform.to_gdal(), entries[1].transform);
            let e = set.load(3).unwrap_err();
            assert!(
                matches!(&e, Error::Recorded { message } if message == "no scene: boom"),
                "{e}"
            );
        }
        // the header is the old one's, but for the format and the table
        let mut x = a.index().clone();
        x.format = b.index().format.clone();
        x.table = b.index().table.clone();
        assert_eq!(&x, b.index());
        // the files, one line in numpy (tests/py/check_shard.py reads them)
        let rows = std::fs::read(new.path().join("index.samples.bin")).unwrap();
        assert_eq!(rows.len(), 5 * crate::shard::ROW_BYTES);
        let lines = std::fs::read_to_string(new.path().join("index.meta.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 5);
        assert!(lines.lines().nth(3).unwrap().contains("no scene: boom"));
    }

    /// Overwrites `len` bytes at `at` in `path`.
    fn poke(path: &std::path::Path, at: usize, b: &[u8]) {
        let mut v = std::fs::read(path).unwrap();
        v[at..at + b.len()].copy_from_slice(b);
        std::fs::write(path, v).unwrap();
    }

    #[test]
    fn hostile_tables_are_errors_naming_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let (h, entries) = fixture(dir.path());
        write_index(&dir.path().to_string_lossy(), None, h, entries).unwrap();
        let rows = dir.path().join("index.samples.bin");
        let meta = dir.path().join("index.meta.jsonl");
        let index = dir.path().join("index.json");
        let (good_rows, good_meta, good_index) = (
            std::fs::read(&rows).unwrap(),
            std::fs::read(&meta).unwrap(),
            std::fs::read(&index).unwrap(),
        );
        let restore = || {
            std::fs::write(&rows, &good_rows).unwrap();
            std::fs::write(&meta, &good_meta).unwrap();
            std::fs::write(&index, &good_index).unwrap();
        };
        let err = |want: &[&str]| {
            let e = open(dir.path()).unwrap_err();
            let text = e.chain();
            for w in want {
                assert!(text.contains(w), "{w:?} not in: {text}");
            }
            restore();
        };
        let row = crate::shard::ROW_BYTES;
        // a truncated table, and a truncated record file
        std::fs::write(&rows, &good_rows[..good_rows.len() - 10]).unwrap();
        err(&["index.samples.bin", "truncated"]);
        std::fs::write(&meta, &good_meta[..good_meta.len() - 1]).unwrap();
        err(&["index.meta.jsonl", "truncated"]);
        // a record past the end of the record file
        poke(&rows, 2 * row + 24, &u64::MAX.to_le_bytes());
        err(&["index.samples.bin", "row 2", "meta_offset"]);
        poke(&rows, 2 * row + 120, &u32::MAX.to_le_bytes());
        err(&["index.samples.bin", "row 2", "meta_offset"]);
        // a region past its shard, of another size, in no shard
        poke(&rows, row + 8, &(u64::MAX - 8).to_le_bytes());
        err(&["index.samples.bin", "row 1", "`offset`", "outside shard 0"]);
        poke(&rows, row + 16, &7u64.to_le_bytes());
        err(&["index.samples.bin", "row 1", "`length`"]);
        poke(&rows, row + 112, &9u32.to_le_bytes());
        err(&["index.samples.bin", "row 1", "`shard`"]);
        // rows out of order, a flag that is not one
        poke(&rows, 4 * row, &0u64.to_le_bytes());
        err(&["index.samples.bin", "row 4", "`index`"]);
        poke(&rows, 132, &2u32.to_le_bytes());
        err(&["index.samples.bin", "row 0", "`failed`"]);
        // another version, another row layout, a count that is not there
        let text = String::from_utf8(good_index.clone()).unwrap();
        let edit = |from: &str, to: &str| {
            assert!(text.contains(from), "{from}");
            std::fs::write(&index, text.replacen(from, to, 1)).unwrap();
        };
        edit("tilestack-shards/2", "tilestack-shards/9");
        err(&["index.json", "tilestack-shards/9", "tilestack-shards/2"]);
        edit("\"row_bytes\": 136", "\"row_bytes\": 128");
        err(&["index.json", "field `table`", "128"]);
        edit("\"count\": 5", "\"count\": 1152921504606846976");
        err(&["index.json", "field `table`"]);
        edit("\"samples\": 5", "\"samples\": 1152921504606846976");
        err(&["index.json", "field `table`"]);
        edit("\"rows\": \"index.samples.bin\"", "\"rows\": \"../x.bin\"");
        err(&["index.json", "../x.bin"]);
        edit("\"shard_count\": 3", "\"shard_count\": 1000000000000");
        err(&["index.json", "field `shards`"]);
        // a record that is not JSON: found when the sample is read, named
        let mut bad = good_meta.clone();
        bad[0] = b'[';
        std::fs::write(&meta, &bad).unwrap();
        let set = open(dir.path()).unwrap();
        let e = set.entry(0).unwrap_err().chain();
        assert!(
            e.contains("index.meta.jsonl") && e.contains("sample 0's record"),
            "{e}"
        );
        // the stack's load reads the same record: the same error
        let e = set.load(0).unwrap_err().chain();
        assert!(e.contains("sample 0's record"), "{e}");
        set.entry(1).unwrap();
        restore();
    }
}
