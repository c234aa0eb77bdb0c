//! Zarr window reads: the second raster source beside [`crate::cog`], over
//! the same fetch layer and the same decoded-tile cache.
//!
//! A [`ZarrReader`] reads a pixel window of a 2-D array (or a 2-D slice of a
//! 3-D one) of a Zarr v2 store (`.zarray`/`.zattrs`, consolidated
//! `.zmetadata`, as ESA's EOPF Sentinel-2 samples are written) or a Zarr v3
//! store (`zarr.json`, the `sharding_indexed` codec, as GeoZarr converters
//! write), fetching only the chunks (v2) or the shard index plus the inner
//! chunks (v3) the window needs, each through the caller's
//! [`HttpRangeClient`] (its retries, signing, per-host limits, metrics and
//! coalescing of the inner chunks of one shard). Decoded chunks go into the
//! shared [`TileCache`], keyed by the array's URL
//! (store + array path), the slice and the chunk's grid position, with
//! concurrent reads of a chunk sharing one fetch.
//!
//! Codecs: `bytes` (either byte order), Blosc (LZ4, Zstandard, zlib; byte-
//! and bit-shuffle; decoded in Rust, see [`blosc`]), Zstandard, gzip, zlib,
//! CRC-32C, `sharding_indexed` (index at the start or end, with or without
//! its checksum), fill values for chunks never written. Anything else is an
//! [`Error::Invalid`] naming the codec, the store and the array.
//!
//! Values are the **raw** stored samples as f32, like
//! [`CogReader::read_window`](crate::cog::CogReader::read_window): CF
//! `scale_factor`/`add_offset` are reported by [`ArrayMeta::cf`], not
//! applied (the plan applies radiometry once, for COG and Zarr alike);
//! pixels equal to the nodata value ([`Cf::nodata`]) and pixels outside the
//! array are NaN.
//!
//! Georeferencing ([`ZarrReader::georef`]): GeoZarr `spatial:transform` /
//! `proj:transform` attributes, then a `grid_mapping` variable's GDAL
//! `GeoTransform`, then the `x`/`y` coordinate arrays of pixel centres,
//! checked to be regular; the EPSG code from `proj:code`/`proj:epsg` on the
//! array, its grid mapping, its groups or the root's
//! `stac_discovery.properties`.
//!
//! # Why not `zarrs`
//! `zarrs` (+ `zarrs_object_store`) reads these stores too, but through its
//! own storage layer (object_store's HTTP client): retries, signing (SAS
//! tokens, Planetary Computer), per-host limits, fetch metrics and the
//! byte-bounded cache would live twice, once there and once in
//! [`crate::fetch`] and [`crate::cog`]. Decoding chunks fetched by our own
//! client keeps them in one place; the same-run measurement behind the
//! choice is in the CHANGELOG entry of this module.
//!
//! # How the stacks call it
//! An asset whose media type names Zarr (`application/vnd+zarr`,
//! `application/x-zarr`) or whose href has a `.zarr` path component is a
//! [`AssetFormat::Zarr`](crate::stac::scene::AssetFormat) asset of its
//! scene, and `StackPlan::read_one` (`stack/read.rs`) reads it here instead
//! of through the COG reader: [`ZarrReader::array`] (metadata, once per
//! href), then [`ZarrReader::window_tiles`] (nearest within one CRS: the
//! decoded chunks sampled straight into the grid, as a COG's tiles are) or
//! [`ZarrReader::read_window`] (then warped). One `ZarrReader` is kept
//! beside each `CogReader` and shares its client and cache, so one byte
//! budget bounds both. The grid comes from the item (`proj:transform`, or
//! `proj:bbox` + `proj:shape`), like a COG's, and where the item declares
//! none (EOPF's Sample Service items) from [`ZarrReader::georef`] through
//! [`fill_zarr_grids`](crate::stack::fill_zarr_grids); the CF attributes' part in the
//! radiometry is [`CfUse`](crate::stac::scene::CfUse). Overviews are
//! separate arrays in GeoZarr (another href), so a Zarr read is always at
//! the array's own resolution; a 3-D array is read at slice 0.
//!
//! May import: [`crate::error`], [`crate::units`], [`crate::geo`],
//! [`crate::fetch`], [`crate::cog`] (its tile cache and tiles).

pub mod blosc;
pub(crate) mod codec;
pub(crate) mod georef;
pub(crate) mod meta;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;
use ndarray::{Array2, Array3, Axis};
use serde_json::{Map, Value};

pub use codec::{ShardIndex, crc32c, parse_shard_index};
pub use georef::{GeoSource, ZarrGeo};
pub use meta::{
    ArrayMeta, BytesCodec, Cf, ChunkKeys, Consolidated, DataType, Endian, IndexLocation,
    MAX_ARRAY_ELEMENTS, MAX_CHUNK_BYTES, MAX_DIMS, MAX_METADATA_BYTES, MAX_SHARD_CHUNKS, Pipeline,
    Sharding, ZarrFormat,
};

use crate::cog::MAX_WINDOW_PIXELS;
use crate::cog::cache::{Claim, Lookup, TileCache};
use crate::cog::tile::{TileData, TileKey};
use crate::cog::window::TileWindow;
use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;
use crate::geo::grid::PixelWindow;
use meta::{zarr_error, zarr_error_because};

type Cell<T> = Arc<tokio::sync::OnceCell<T>>;

/// Shard indexes kept (by shard URL), most recently used first.
const SHARD_INDEXES: usize = 4096;

/// Reads pixel windows of Zarr arrays over HTTP Range requests (or
/// `file://`, `s3://`… as the client does), fetching only the chunks a
/// window needs. Cheap to clone; clones share metadata, shard indexes, the
/// tile cache and the client.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::TileCache;
/// use tilestack::fetch::RetryConfig;
/// use tilestack::geo::PixelWindow;
/// use tilestack::zarr::ZarrReader;
/// use tilestack::HttpRangeClient;
/// let reader = ZarrReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(512 << 20));
/// let href = "http://127.0.0.1:8080/S2A_MSIL2A.zarr/measurements/reflectance/r10m/b04";
/// let px = reader.read_window(href, 0, PixelWindow::new(100, 200, 256, 256)).await?;
/// assert_eq!(px.dim(), (256, 256));                     // (rows, cols); raw counts, NaN = nodata
/// let cf = reader.array(href).await?.cf();              // scale_factor / add_offset, reported
/// let geo = reader.georef(href).await?;                 // EPSG + corner transform
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ZarrReader {
    client: HttpRangeClient,
    cache: TileCache,
    arrays: Arc<Mutex<HashMap<String, Cell<Arc<ArrayMeta>>>>>,
    stores: Arc<Mutex<HashMap<String, Cell<Arc<Consolidated>>>>>,
    shards: Arc<Mutex<ShardIndexes>>,
    georefs: Arc<Mutex<HashMap<String, Cell<ZarrGeo>>>>,
    /// Coordinate arrays read for a georeference, by href (`None`: none
    /// there): read once however many arrays of their group ask.
    axes: Arc<Mutex<HashMap<String, Cell<Option<georef::Axis>>>>>,
    /// Attributes of nodes read outside consolidated metadata, by href
    /// (`None`: no such node): a group's `spatial_ref` read once however
    /// many of its arrays ask.
    nodes: Arc<Mutex<HashMap<String, Cell<Option<Attributes>>>>>,
}

/// A node's attributes, shared.
type Attributes = Arc<Map<String, Value>>;

/// Shard indexes read, by shard URL (`None`: a shard that does not exist,
/// all fill value), least recently used dropped first.
type ShardIndexes = lru::LruCache<String, Cell<Option<Arc<ShardIndex>>>>;

/// Splits an array href into its store root (up to and including the last
/// path component ending in `.zarr`) and the array's path inside it. An href
/// without a `.zarr` component is a store that is itself the array. A
/// trailing `/zarr.json`, `/.zarray` or `/.zattrs` is dropped.
///
/// # Examples
/// ```
/// use tilestack::zarr::split_href;
/// assert_eq!(
///     split_href("https://h/S2A.zarr/measurements/reflectance/r10m/b04"),
///     ("https://h/S2A.zarr".to_string(), "measurements/reflectance/r10m/b04".to_string())
/// );
/// assert_eq!(split_href("file:///d/a.zarr/b/zarr.json").1, "b");
/// assert_eq!(split_href("http://h/array").1, "");
/// ```
pub fn split_href(href: &str) -> (String, String) {
    let mut h = href.trim_end_matches('/');
    for leaf in ["/zarr.json", "/.zarray", "/.zattrs"] {
        if let Some(s) = h.strip_suffix(leaf) {
            h = s;
        }
    }
    let after_scheme = h.find("://").map_or(0, |i| i + 3);
    let lower = h.to_ascii_lowercase();
    let mut cut = None;
    for (i, _) in h.match_indices('/').chain(std::iter::once((h.len(), ""))) {
        if i > after_scheme && lower[..i].ends_with(".zarr") {
            cut = Some(i);
        }
    }
    match cut {
        Some(i) => (h[..i].to_string(), h[i..].trim_matches('/').to_string()),
        None => (h.to_string(), String::new()),
    }
}

/// Whether `href` names something in a Zarr store (a `.zarr` path
/// component, or a `zarr.json`/`.zarray` document): what the CLI and,
/// later, the plan use to choose this reader over the COG reader.
///
/// ```
/// assert!(tilestack::zarr::is_zarr_href("https://h/S2A.zarr/measurements/r10m/b04"));
/// assert!(!tilestack::zarr::is_zarr_href("https://h/B04.tif"));
/// ```
pub fn is_zarr_href(href: &str) -> bool {
    let h = href.trim_end_matches('/').to_ascii_lowercase();
    h.ends_with("/zarr.json")
        || h.ends_with("/.zarray")
        || h.split('/').any(|c| c.ends_with(".zarr"))
}

/// Whether a fetch failed because the object is not there (HTTP 404/410, a
/// missing local file, an object store's NotFound): a chunk never written.
fn is_missing(e: &Error) -> bool {
    match e {
        Error::Http {
            status: Some(404 | 410),
            ..
        } => true,
        Error::Http {
            status: None,
            source: Some(c),
            ..
        } => {
            let inner = c.get();
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                return io.kind() == std::io::ErrorKind::NotFound;
            }
            #[cfg(feature = "cloud")]
            if let Some(os) = inner.downcast_ref::<object_store::Error>() {
                return matches!(os, object_store::Error::NotFound { .. });
            }
            false
        }
        _ => false,
    }
}

fn join(base: &str, leaf: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), leaf)
}

fn product(v: &[u64]) -> u64 {
    v.iter().product()
}

/// One chunk (or inner chunk) a read must fetch and decode.
struct ChunkClaim {
    x: usize,
    y: usize,
    claim: Claim,
}

impl ZarrReader {
    /// A reader fetching through `client` and caching decoded chunks in
    /// `cache` (share the [`CogReader`](crate::cog::CogReader)'s to keep one
    /// byte budget).
    pub fn new(client: HttpRangeClient, cache: TileCache) -> Self {
        ZarrReader {
            client,
            cache,
            arrays: Arc::default(),
            stores: Arc::default(),
            georefs: Arc::default(),
            axes: Arc::default(),
            nodes: Arc::default(),
            shards: Arc::new(Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(SHARD_INDEXES).unwrap_or(std::num::NonZeroUsize::MIN),
            ))),
        }
    }

    /// The shared tile cache.
    pub fn cache(&self) -> &TileCache {
        &self.cache
    }

    /// The HTTP client.
    pub fn client(&self) -> &HttpRangeClient {
        &self.client
    }

    /// A whole small object (metadata, a v2 chunk) of at most `limit`
    /// bytes; `None` when it does not exist.
    async fn get_object(
        &self,
        url: &str,
        limit: u64,
        store: &str,
        array: &str,
    ) -> Result<Option<Bytes>> {
        match self.client.get_range_to_eof(url, 0..limit + 1).await {
            Ok(b) if b.len() as u64 > limit => Err(zarr_error(
                store,
                array,
                format!("{url} is over the {limit}-byte limit for it"),
            )),
            Ok(b) => Ok(Some(b)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A JSON document of the store, `None` when absent.
    async fn get_json(&self, url: &str, store: &str, array: &str) -> Result<Option<Value>> {
        let Some(b) = self
            .get_object(url, MAX_METADATA_BYTES, store, array)
            .await?
        else {
            return Ok(None);
        };
        let leaf = url.rsplit('/').next().unwrap_or(url);
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| zarr_error_because(store, array, format!("{leaf} is not valid JSON"), e))
    }

    /// The store's consolidated metadata (`.zmetadata`, or the root
    /// `zarr.json`'s `consolidated_metadata`), fetched once per store;
    /// empty when it has none.
    async fn consolidated(&self, store: &str) -> Result<Arc<Consolidated>> {
        let cell = {
            let mut m = self.stores.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(store.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            if let Some(b) = self
                .get_object(&join(store, ".zmetadata"), MAX_METADATA_BYTES, store, "")
                .await?
            {
                return Ok(Arc::new(Consolidated::from_v2(store, &b)?));
            }
            match self.get_json(&join(store, "zarr.json"), store, "").await? {
                Some(root) => Ok(Arc::new(Consolidated::from_v3_root(&root))),
                None => Ok(Arc::new(Consolidated::default())),
            }
        })
        .await
        .cloned()
    }

    /// The metadata of the array at `href` (see [`split_href`]): from the
    /// store's consolidated metadata, else its `zarr.json`, else its
    /// `.zarray` + `.zattrs`. Read once per href (concurrent first calls
    /// share the requests).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming store and array for missing, broken or
    /// unsupported metadata (see [`ArrayMeta::from_v3`]); [`Error::Http`]
    /// for a failed fetch.
    pub async fn array(&self, href: &str) -> Result<Arc<ArrayMeta>> {
        let cell = {
            let mut m = self.arrays.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(href.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            self.load_array(href).await?.ok_or_else(|| {
                let (store, path) = split_href(href);
                zarr_error(
                    &store,
                    &path,
                    "no array there: neither zarr.json nor .zarray (nor consolidated metadata naming it)",
                )
            })
        })
        .await
        .cloned()
    }

    /// The array's metadata, `None` when there is no array at `href`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub(crate) async fn load_array(&self, href: &str) -> Result<Option<Arc<ArrayMeta>>> {
        let (store, path) = split_href(href);
        let consolidated = self.consolidated(&store).await?;
        if let Some(m) = consolidated.array(&store, &path)? {
            return Ok(Some(Arc::new(m)));
        }
        if consolidated.format == Some(ZarrFormat::V2) {
            // consolidated v2 metadata lists every array
            return Ok(None);
        }
        let base = join(&store, &path);
        let base = base.trim_end_matches('/');
        if let Some(doc) = self
            .get_json(&join(base, "zarr.json"), &store, &path)
            .await?
        {
            return Ok(Some(Arc::new(ArrayMeta::from_v3(&store, &path, &doc)?)));
        }
        if let Some(doc) = self.get_json(&join(base, ".zarray"), &store, &path).await? {
            let attrs = self.get_json(&join(base, ".zattrs"), &store, &path).await?;
            return Ok(Some(Arc::new(ArrayMeta::from_v2(
                &store,
                &path,
                &doc,
                attrs.as_ref(),
            )?)));
        }
        Ok(None)
    }

    /// The attributes of the group or array at `path` in `store` (from the
    /// consolidated metadata, else its `zarr.json` or `.zattrs`); `None`
    /// when there is no such node.
    pub(crate) async fn node_attributes(
        &self,
        store: &str,
        path: &str,
    ) -> Result<Option<Map<String, Value>>> {
        let c = self.consolidated(store).await?;
        if c.format.is_some() {
            return Ok(c.attributes(path));
        }
        let base = join(store, path);
        let base = base.trim_end_matches('/');
        let cell = {
            let mut m = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(base.to_string()).or_default().clone()
        };
        let attrs = cell
            .get_or_try_init(|| async {
                if let Some(doc) = self.get_json(&join(base, "zarr.json"), store, path).await? {
                    return Ok::<_, Error>(
                        doc.get("attributes")
                            .and_then(Value::as_object)
                            .cloned()
                            .map(Arc::new),
                    );
                }
                Ok(self
                    .get_json(&join(base, ".zattrs"), store, path)
                    .await?
                    .and_then(|v| v.as_object().cloned())
                    .map(Arc::new))
            })
            .await?;
        Ok(attrs.as_deref().cloned())
    }

    /// The `width × height` window at `(col_off, row_off)` of a 2-D array,
    /// or of slice `slice` (leading index) of a 3-D one, as `(rows, cols)`
    /// f32 raw values; nodata pixels ([`Cf::nodata`]) and pixels outside the
    /// array are NaN. Only the chunks (v2) or the shard indexes and inner
    /// chunks (v3) under the window are fetched, through the cache.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a window over [`MAX_WINDOW_PIXELS`], an array
    /// not of 2 or 3 dimensions, a slice past the array, and — naming store,
    /// array and chunk — a chunk that does not decode (truncated, a codec's
    /// error, a shard index pointing outside its shard); [`Error::Http`] for
    /// a failed fetch.
    pub async fn read_window(
        &self,
        href: &str,
        slice: usize,
        window: PixelWindow,
    ) -> Result<Array2<f32>> {
        let meta = self.array(href).await?;
        self.read_meta_window(&meta, slice, window).await
    }

    /// [`ZarrReader::read_window`] for each of `bands`, **1-based** slices
    /// of a 3-D array's leading axis (as `tilestack read --bands` numbers
    /// them; empty = every slice; a 2-D array has band 1 only), as
    /// `[bands, rows, cols]`.
    ///
    /// # Errors
    /// As [`ZarrReader::read_window`], plus a band past the array.
    pub async fn read_bands(
        &self,
        href: &str,
        window: PixelWindow,
        bands: &[usize],
    ) -> Result<Array3<f32>> {
        let meta = self.array(href).await?;
        let n = if meta.shape.len() == 3 {
            usize::try_from(meta.shape[0]).unwrap_or(usize::MAX)
        } else {
            1
        };
        let slices: Vec<usize> = if bands.is_empty() {
            (0..n).collect()
        } else {
            let mut v = Vec::with_capacity(bands.len());
            for &b in bands {
                if b == 0 || b > n {
                    return Err(meta.error(format!("no band {b}: bands are 1..={n}")));
                }
                v.push(b - 1);
            }
            v
        };
        if (slices.len() as u64).saturating_mul(window.pixels()) > MAX_WINDOW_PIXELS {
            return Err(Error::invalid(
                "window",
                format!(
                    "{} bands of {}×{} px is over the 2^28 px limit",
                    slices.len(),
                    window.width,
                    window.height
                ),
            ));
        }
        let mut out = Array3::from_elem((slices.len(), window.height, window.width), f32::NAN);
        for (k, &s) in slices.iter().enumerate() {
            let px = self.read_meta_window(&meta, s, window).await?;
            out.index_axis_mut(Axis(0), k).assign(&px);
        }
        Ok(out)
    }

    async fn read_meta_window(
        &self,
        meta: &Arc<ArrayMeta>,
        slice: usize,
        window: PixelWindow,
    ) -> Result<Array2<f32>> {
        Ok(match self.meta_window_tiles(meta, slice, window).await? {
            Some(t) => t.to_array(),
            None => Array2::from_elem((window.height, window.width), f32::NAN),
        })
    }

    /// The decoded (inner) chunks under the `window` of `slice` (see
    /// [`ZarrReader::read_window`]), for sampling straight from them as the
    /// stacks do with a COG's tiles; `None` when the window misses the
    /// array (nothing fetched).
    ///
    /// # Errors
    /// As [`ZarrReader::read_window`].
    pub async fn window_tiles(
        &self,
        href: &str,
        slice: usize,
        window: PixelWindow,
    ) -> Result<Option<TileWindow>> {
        let meta = self.array(href).await?;
        self.meta_window_tiles(&meta, slice, window).await
    }

    async fn meta_window_tiles(
        &self,
        meta: &Arc<ArrayMeta>,
        slice: usize,
        window: PixelWindow,
    ) -> Result<Option<TileWindow>> {
        if window.pixels() > MAX_WINDOW_PIXELS {
            return Err(Error::invalid(
                "window",
                format!(
                    "{}×{} px is over the 2^28 px limit",
                    window.width, window.height
                ),
            ));
        }
        let nd = meta.shape.len();
        if nd != 2 && nd != 3 {
            return Err(meta.error(format!(
                "{nd} dimensions: windows are read from 2-D arrays and 2-D slices of 3-D ones"
            )));
        }
        if nd == 2 && slice != 0 {
            return Err(meta.error(format!("slice {slice} of a 2-D array (only 0)")));
        }
        if nd == 3 && slice as u64 >= meta.shape[0] {
            return Err(meta.error(format!(
                "slice {slice} past the {} of the leading axis",
                meta.shape[0]
            )));
        }
        let dim = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let (h, w) = (dim(meta.shape[nd - 2]), dim(meta.shape[nd - 1]));
        let rc = meta.read_chunk_shape();
        let (th, tw) = (dim(rc[nd - 2]), dim(rc[nd - 1]));
        let Some(clipped) = window.clip(w, h) else {
            return Ok(None);
        };
        let (c0, c1) = (clipped.col_off, clipped.col_end());
        let (r0, r1) = (clipped.row_off, clipped.row_end());
        let (tx0, tx1) = (c0 / tw, (c1 - 1) / tw);
        let (ty0, ty1) = (r0 / th, (r1 - 1) / th);
        let xy: Vec<(usize, usize)> = (ty0..=ty1)
            .flat_map(|y| (tx0..=tx1).map(move |x| (x, y)))
            .collect();
        let tiles = self.tiles(meta, slice, &xy).await?;
        Ok(Some(TileWindow::from_tiles(
            window,
            (w, h),
            (tw, th),
            (tx0, ty0),
            (tx1 - tx0 + 1, ty1 - ty0 + 1),
            tiles,
        )))
    }

    /// The decoded (inner) chunks `(x, y)` of `slice`, through the cache.
    async fn tiles(
        &self,
        meta: &Arc<ArrayMeta>,
        slice: usize,
        xy: &[(usize, usize)],
    ) -> Result<Vec<TileData>> {
        let href = meta.href();
        let mut waits = Vec::with_capacity(xy.len());
        let mut claims = Vec::new();
        for &(x, y) in xy {
            let key = TileKey {
                href: href.clone(),
                ifd: slice,
                x,
                y,
                band: 0,
            };
            match self.cache.lookup(&key) {
                Lookup::Hit(t) => waits.push(futures::future::ready(Ok(t)).boxed().shared()),
                Lookup::Wait(f) => waits.push(f),
                Lookup::Lead(f, claim) => {
                    waits.push(f);
                    claims.push(ChunkClaim { x, y, claim });
                }
            }
        }
        if !claims.is_empty() {
            // Spawned so that the fetch completes (and wakes other waiters)
            // even if this caller is cancelled.
            tokio::spawn(fetch_chunks(self.clone(), meta.clone(), slice, claims));
        }
        let mut out = Vec::with_capacity(waits.len());
        for w in waits {
            out.push(w.await.map_err(|e| e.duplicate())?);
        }
        Ok(out)
    }

    /// The index of the shard at `url` (`None`: the shard was never
    /// written), fetched once and kept in a bounded LRU.
    async fn shard_index(
        &self,
        meta: &ArrayMeta,
        s: &Sharding,
        url: &str,
    ) -> Result<Option<Arc<ShardIndex>>> {
        let cell = {
            let mut m = self.shards.lock().unwrap_or_else(|p| p.into_inner());
            match m.get(url) {
                Some(c) => c.clone(),
                None => {
                    let c: Cell<Option<Arc<ShardIndex>>> = Arc::default();
                    m.put(url.to_string(), c.clone());
                    c
                }
            }
        };
        cell.get_or_try_init(|| self.load_shard_index(meta, s, url))
            .await
            .cloned()
    }

    async fn load_shard_index(
        &self,
        meta: &ArrayMeta,
        s: &Sharding,
        url: &str,
    ) -> Result<Option<Arc<ShardIndex>>> {
        let n = product(&s.chunks_per_shard(&meta.chunk_shape));
        let len = s.index_len(n);
        let leaf = url
            .strip_prefix(&meta.href())
            .unwrap_or(url)
            .trim_start_matches('/');
        let bad = |m: String| meta.error(format!("shard {leaf}: {m}"));
        // The shard's size: known from an earlier response, else from a
        // 1-byte read (what an index at the end needs; a missing shard shows).
        let mut size = self.client.object_version(url).and_then(|v| v.size);
        let bytes = match s.index_location {
            IndexLocation::Start => match self.client.get_range_to_eof(url, 0..len).await {
                Ok(b) => b,
                Err(e) if is_missing(&e) => return Ok(None),
                Err(e) => return Err(e),
            },
            IndexLocation::End => {
                if size.is_none() {
                    match self.client.get_range_to_eof(url, 0..1).await {
                        Ok(_) => {}
                        Err(e) if is_missing(&e) => return Ok(None),
                        Err(e) => return Err(e),
                    }
                    size = self.client.object_version(url).and_then(|v| v.size);
                }
                let range = codec::index_range(s, n, size).ok_or_else(|| {
                    bad(match size {
                        Some(z) => format!("{z} bytes, shorter than its {len}-byte index"),
                        None => "the server did not tell the shard's size (Content-Range)".into(),
                    })
                })?;
                self.client.get_range(url, range).await?
            }
        };
        if size.is_none() {
            size = self.client.object_version(url).and_then(|v| v.size);
        }
        if (bytes.len() as u64) < len {
            return Err(bad(format!(
                "{} bytes, shorter than its {len}-byte index",
                bytes.len()
            )));
        }
        let at = codec::index_range(s, n, size).unwrap_or(0..len);
        let n = usize::try_from(n).map_err(|_| bad("too many inner chunks".into()))?;
        let index = codec::parse_shard_index(
            &bytes,
            n,
            s.index_endian == Endian::Big,
            s.index_crc32c,
            size,
            at,
        )
        .map_err(bad)?;
        tracing::debug!(shard = url, chunks = n, "shard index read");
        Ok(Some(Arc::new(index)))
    }
}

/// Fetches and decodes the claimed (inner) chunks of one read, completing
/// each claim: v2 and unsharded v3 chunks one object each (concurrently,
/// under the client's limits); inner chunks of one shard in one coalesced
/// `get_ranges` after its index.
async fn fetch_chunks(
    reader: ZarrReader,
    meta: Arc<ArrayMeta>,
    slice: usize,
    claims: Vec<ChunkClaim>,
) {
    let nd = meta.shape.len();
    let rc = meta.read_chunk_shape().to_vec();
    // the (inner) chunk's grid index and the plane of `slice` inside it
    let lead = |d: u64| {
        if nd == 3 {
            vec![slice as u64 / d]
        } else {
            vec![]
        }
    };
    let plane = if nd == 3 {
        slice % rc[0].max(1) as usize
    } else {
        0
    };
    let (th, tw) = (rc[nd - 2] as usize, rc[nd - 1] as usize);
    let expected = product(&rc) as usize * meta.dtype.size();
    let nodata = meta.cf().nodata;
    let href = meta.href();
    let finish = |claim: Claim, r: Result<Vec<u8>>| {
        let r = r.map(|le| Arc::new(codec::to_tile(meta.dtype, &le, plane, th, tw, nodata)));
        claim.complete(r.map_err(Arc::new));
    };
    let decode = |stored: Bytes, inner: Pipeline, what: String| {
        let meta = meta.clone();
        async move {
            let dtype = meta.dtype;
            let out = tokio::task::spawn_blocking(move || {
                codec::decode_chunk(&inner, dtype, &stored, expected)
            })
            .await
            .map_err(|e| Error::task("Zarr chunk decode", e))?;
            out.map_err(|m| meta.error(format!("{what}: {m}")))
        }
    };
    match meta.pipeline.sharding.clone() {
        None => {
            let jobs = claims.into_iter().map(|c| {
                let mut idx = lead(meta.chunk_shape[0]);
                idx.extend([c.y as u64, c.x as u64]);
                let key = meta.chunk_key(&idx);
                let url = join(&href, &key);
                let reader = reader.clone();
                let meta = meta.clone();
                let decode = &decode;
                async move {
                    let limit = 2 * expected as u64 + (1 << 20);
                    let r = match reader
                        .get_object(&url, limit, &meta.store, &meta.path)
                        .await
                    {
                        Ok(Some(b)) => {
                            decode(b, meta.pipeline.clone(), format!("chunk {key}")).await
                        }
                        Ok(None) => Ok(codec::filled(
                            meta.dtype,
                            meta.fill_value,
                            expected / meta.dtype.size(),
                        )),
                        Err(e) => Err(e),
                    };
                    (c.claim, r)
                }
            });
            for (claim, r) in futures::future::join_all(jobs).await {
                finish(claim, r);
            }
        }
        Some(s) => {
            // group the inner chunks by shard
            let per = s.chunks_per_shard(&meta.chunk_shape);
            let mut shards: HashMap<Vec<u64>, Vec<(usize, ChunkClaim)>> = HashMap::new();
            for c in claims {
                let mut g = lead(rc[0]);
                g.extend([c.y as u64, c.x as u64]);
                let shard: Vec<u64> = g.iter().zip(&per).map(|(g, p)| g / p).collect();
                let inner: Vec<u64> = g.iter().zip(&per).map(|(g, p)| g % p).collect();
                let linear = inner.iter().zip(&per).fold(0u64, |a, (i, p)| a * p + i) as usize;
                shards.entry(shard).or_default().push((linear, c));
            }
            let jobs = shards.into_iter().map(|(shard, chunks)| {
                let reader = reader.clone();
                let meta = meta.clone();
                let s = s.clone();
                let decode = &decode;
                async move {
                    let key = meta.chunk_key(&shard);
                    let url = join(&href_of(&meta), &key);
                    let index = match reader.shard_index(&meta, &s, &url).await {
                        Ok(i) => i,
                        Err(e) => {
                            let e = Arc::new(e);
                            return chunks
                                .into_iter()
                                .map(|(_, c)| (c.claim, Err(e.clone())))
                                .collect::<Vec<_>>();
                        }
                    };
                    let fill = || {
                        Ok(codec::filled(
                            meta.dtype,
                            meta.fill_value,
                            expected / meta.dtype.size(),
                        ))
                    };
                    let Some(index) = index else {
                        return chunks
                            .into_iter()
                            .map(|(_, c)| (c.claim, fill().map_err(Arc::new)))
                            .collect();
                    };
                    let ranges: Vec<_> = chunks
                        .iter()
                        .filter_map(|(k, _)| index.get(*k).cloned().flatten())
                        .filter(|r| r.end > r.start)
                        .collect();
                    let fetched = reader.client.get_ranges(&url, ranges).await;
                    let mut fetched = match fetched {
                        Ok(b) => b.into_iter(),
                        Err(e) => {
                            let e = Arc::new(e);
                            return chunks
                                .into_iter()
                                .map(|(_, c)| (c.claim, Err(e.clone())))
                                .collect();
                        }
                    };
                    let mut decodes = Vec::with_capacity(chunks.len());
                    for (k, c) in chunks {
                        let job = match index.get(k).cloned().flatten() {
                            Some(r) if r.end > r.start => match fetched.next() {
                                Some(b) => decode(
                                    b,
                                    s.inner.clone(),
                                    format!("shard {key}, inner chunk {k}"),
                                )
                                .boxed(),
                                None => futures::future::ready(Err(
                                    meta.error(format!("shard {key}: inner chunk {k} not fetched"))
                                ))
                                .boxed(),
                            },
                            Some(_) => futures::future::ready(Err(
                                meta.error(format!("shard {key}: inner chunk {k} has 0 bytes"))
                            ))
                            .boxed(),
                            None => futures::future::ready(fill()).boxed(),
                        };
                        decodes.push(async move { (c.claim, job.await.map_err(Arc::new)) });
                    }
                    futures::future::join_all(decodes).await
                }
            });
            for results in futures::future::join_all(jobs).await {
                for (claim, r) in results {
                    match r {
                        Ok(le) => finish(claim, Ok(le)),
                        Err(e) => claim.complete(Err(e)),
                    }
                }
            }
        }
    }
}

fn href_of(meta: &ArrayMeta) -> String {
    meta.href()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::retry::RetryConfig;

    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zarr")
    }

    fn reader() -> ZarrReader {
        ZarrReader::new(
            HttpRangeClient::new(RetryConfig::default()).unwrap(),
            TileCache::new(64 << 20),
        )
    }

    /// Every window Python's zarr read (tests/py/make_zarr_fixtures.py) reads
    /// the same here, through `file://` (tests/it/zarr.rs does it over HTTP).
    #[tokio::test]
    async fn windows_equal_pythons_through_file_urls() {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap())
                .unwrap();
        let r = reader();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 15);
        for c in cases {
            let href = format!(
                "file://{}/{}/{}",
                fixtures().display(),
                c["store"].as_str().unwrap(),
                c["array"].as_str().unwrap()
            );
            let w: Vec<usize> = c["window"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let slice = c["slice"].as_u64().unwrap_or(0) as usize;
            let px = r
                .read_window(&href, slice, PixelWindow::new(w[0], w[1], w[2], w[3]))
                .await
                .unwrap_or_else(|e| panic!("{href}: {}", e.chain()));
            let want = c["raw"].as_array().unwrap();
            assert_eq!(px.len(), want.len(), "{href}");
            for (k, (got, want)) in px.iter().zip(want).enumerate() {
                match want.as_f64() {
                    Some(v) => assert_eq!(*got, v as f32, "{href} {w:?} pixel {k}"),
                    None => assert!(got.is_nan(), "{href} {w:?} pixel {k}: {got}, want NaN"),
                }
            }
        }
    }

    #[tokio::test]
    async fn metadata_and_georeference_of_both_formats() {
        let r = reader();
        let v2 = format!(
            "file://{}/eopf_v2.zarr/measurements/reflectance/r10m/b04",
            fixtures().display()
        );
        let m = r.array(&v2).await.unwrap();
        assert_eq!(
            (m.format, m.shape.clone(), m.dtype),
            (ZarrFormat::V2, vec![190, 250], DataType::U16)
        );
        assert_eq!(m.cf().scale_factor, Some(0.0001));
        let g = r.georef(&v2).await.unwrap();
        assert_eq!(
            g.transform,
            crate::geo::grid::GeoTransform::north_up(399960.0, 4200000.0, 10.0)
        );
        assert_eq!(g.epsg.map(crate::units::Epsg::code), Some(32610));
        assert!(matches!(g.source, GeoSource::Coordinates { .. }));
        let r20 = format!(
            "file://{}/eopf_v2.zarr/measurements/reflectance/r20m/b05",
            fixtures().display()
        );
        let g = r.georef(&r20).await.unwrap();
        assert_eq!(
            g.transform,
            crate::geo::grid::GeoTransform::north_up(399960.0, 4200000.0, 20.0)
        );

        let v3 = format!(
            "file://{}/geozarr_v3.zarr/measurements/reflectance/r10m/b04",
            fixtures().display()
        );
        let m = r.array(&v3).await.unwrap();
        assert_eq!(m.format, ZarrFormat::V3);
        assert_eq!(
            m.pipeline.sharding.as_ref().unwrap().chunk_shape,
            vec![32, 32]
        );
        let g = r.georef(&v3).await.unwrap();
        assert_eq!(
            g.source,
            GeoSource::GridMapping("measurements/reflectance/r10m/spatial_ref".into())
        );
        assert_eq!(
            g.transform,
            crate::geo::grid::GeoTransform::north_up(399960.0, 4200000.0, 10.0)
        );
        assert_eq!(g.epsg.map(crate::units::Epsg::code), Some(32610));
        let aot = v3.replace("r10m/b04", "r20m/aot");
        let g = r.georef(&aot).await.unwrap();
        assert_eq!(g.source, GeoSource::TransformAttribute);
        assert_eq!(g.transform.dx, 20.0);
        let noref = format!("file://{}/geozarr_v3.zarr/noref/band", fixtures().display());
        let e = r.georef(&noref).await.unwrap_err().to_string();
        assert!(
            e.contains("geozarr_v3.zarr")
                && e.contains("noref/band")
                && e.contains("no georeference"),
            "{e}"
        );
    }
}
