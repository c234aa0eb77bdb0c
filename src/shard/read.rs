//! [`ShardSet`]: materialized shards opened for reading.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::dataset::config::DatasetConfig;
use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;
use crate::geo::grid::{GeoTransform, GridSpec};
use crate::shard::config_hash;
use crate::shard::index::{
    SampleEntry, ShardIndex, check_index, local_parts, parse_index, shard_file,
};
use crate::shard::location::Location;
use crate::stack::{Layers, SampleLayout, TileStack};
use crate::units::Epsg;

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
    index: ShardIndex,
    config: DatasetConfig,
    location: Location,
    /// Where the index came from, for messages.
    index_name: String,
    verify: Verify,
    verified: Vec<AtomicBool>,
    bytes: AtomicU64,
    reads: AtomicU64,
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSet")
            .field("index", &self.index_name)
            .field("samples", &self.index.samples)
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

    /// Opens the shards in `location`: reads `index.json` (in a local
    /// folder, the part indexes `index-I-of-N.json` when every part is
    /// there and no merged index is), checks it, and checks that every
    /// local shard it names exists with its recorded size.
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
        let (index, index_name) = match opened {
            Ok(x) => x,
            Err(e) => {
                rt.shutdown_background();
                return Err(e);
            }
        };
        let config = match opts.config {
            Some(c) => {
                let hash = config_hash(&c);
                if hash != index.config_hash {
                    rt.shutdown_background();
                    return Err(c.error(
                        "config",
                        format!(
                            "its samples (catalog, stack, time, sampler, labels, masks, filters, seed) \
                             hash to {hash}, but {index_name} was written from a config hashing to {} \
                             (dataset {:?}): these shards hold another dataset; materialize this config",
                            index.config_hash, index.name
                        ),
                    ));
                }
                c
            }
            None => index.config.clone(),
        };
        let verified = (0..index.entries.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        Ok(ShardSet {
            rt: Some(rt),
            index,
            config,
            location: loc,
            index_name,
            verify: opts.verify,
            verified,
            bytes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        })
    }

    /// The index.
    pub fn index(&self) -> &ShardIndex {
        &self.index
    }

    /// Every sample's entry, by dataset index.
    pub fn entries(&self) -> &[SampleEntry] {
        &self.index.entries
    }

    /// The config read with (see [`ShardOptions::config`]).
    pub fn config(&self) -> &DatasetConfig {
        &self.config
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.index.entries.is_empty()
    }

    /// `[T, C, H, W]` of every sample.
    pub fn shape(&self) -> [usize; 4] {
        self.index.shape
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
            .map(|(s, _)| s)
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
    ) -> Result<(TileStack, Layers)> {
        let e = self
            .index
            .entries
            .get(index)
            .ok_or_else(|| Error::invalid("sample", format!("no sample {index}")))?;
        if let Some(message) = &e.error {
            return Err(Error::Recorded {
                message: message.clone(),
            });
        }
        let [t, c, h, w] = self.index.shape;
        let px = h * w;
        let (nl, nm) = (self.index.labels.len(), self.index.masks.len());
        let mut data = match buffer {
            Some(b) if b.dim() == (t, c, h, w) && b.is_standard_layout() => b,
            _ => ndarray::Array4::<f32>::zeros((t, c, h, w)),
        };
        let file = shard_file(e.shard);
        let name = self.location.name(&file);
        let data_bytes = (t * c * px * 4) as u64;
        // The index was checked at open: its region size does not overflow.
        let rest_len = 12 * t + (nl * t + nm) * px;
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
                            e.id, e.crc32
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
        let (meta, layers) = rest.split_at(12 * t);
        let eo_cloud_cover = f32s(&meta[..4 * t]);
        let pct_nans = f32s(&meta[4 * t..8 * t]);
        let tile_cloud_fraction = f32s(&meta[8 * t..]);

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
        let stack = TileStack {
            data,
            bands: self.index.bands.clone(),
            days: e.days.clone(),
            eo_cloud_cover,
            pct_nans,
            tile_cloud_fraction,
            items: e.items.clone(),
            grid,
            read_errors: e.read_errors.clone(),
        };
        Ok((stack, Layers { labels, masks }))
    }
}

/// The index of the shards at `loc` (merged from its parts in a local
/// folder without `index.json`), checked; and its name for messages.
async fn read_index(loc: &Location) -> Result<(ShardIndex, String)> {
    let name = loc.name("index.json");
    let index = match loc.read_all("index.json").await? {
        Some(bytes) => parse_index(&bytes, &name)?,
        None => {
            let parts = if loc.is_local() {
                local_parts(loc).await?
            } else {
                None
            };
            match parts {
                Some(index) => index,
                None => {
                    return Err(Error::invalid(
                        "shards",
                        format!(
                            "{name} not found: not a shard folder, or materialize has not \
                             finished (with parts: run `tilestack materialize --merge`)"
                        ),
                    ));
                }
            }
        }
    };
    check_index(&index, &name)?;
    if loc.is_local() {
        for s in &index.shards {
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
    Ok((index, name))
}
