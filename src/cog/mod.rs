//! Cloud-Optimized GeoTIFF window reads over HTTP `Range` requests.
//!
//! A [`CogReader`] parses each file's header once ([`CogHeader`], kept in an
//! in-memory index keyed by href and optionally on disk in a
//! [`HeaderStore`]), then reads a pixel window by fetching only the internal
//! tiles it intersects — through the shared [`TileCache`], with nearby tiles
//! coalesced into one request — and decodes them on blocking threads.
//! Callers should share **one** reader (or at least one [`TileCache`] and
//! [`HttpRangeClient`]) across all tasks: that is what bounds memory and lets
//! concurrent reads of a tile share one fetch.
//!
//! [`CogReader::read_window`] reads single-band files (the pipeline's
//! case, with a fast path for 8/16-bit DEFLATE); [`CogReader::read_bands`]
//! reads any band selection of tiled or striped, pixel-interleaved or planar
//! GeoTIFFs. Georeferencing is north-up, from ModelPixelScale +
//! ModelTiepoint.
//!
//! May import: [`crate::error`], [`crate::units`], [`crate::geo`], [`crate::fetch`].

pub(crate) mod cache;
pub(crate) mod decode;
pub(crate) mod header;
pub(crate) mod header_store;
pub(crate) mod jpeg;
pub(crate) mod lerc;
pub(crate) mod scan;
pub(crate) mod source;
pub(crate) mod tile;
pub(crate) mod window;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_tiff::error::AsyncTiffError;
use async_tiff::metadata::TiffMetadataReader;
use async_tiff::metadata::cache::ReadaheadMetadataCache;
pub use cache::TileCache;
use cache::{Claim, Lookup};
pub use decode::{DecodeError, DecodeErrorKind, decode_tile};
use decode::{decode_bands, decode_rows};
use futures::FutureExt;
pub use header::{
    CogHeader, IfdInfo, MAX_IFDS, MAX_IMAGE_PIXELS, MAX_TILE_BYTES, MAX_TILE_PIXELS,
    MAX_WINDOW_PIXELS, SampleType,
};
use header_store::StoredHeader;
pub use header_store::{HeaderStore, cache_root};
use ndarray::{Array2, Array3, Axis};
pub use scan::{MAX_IFD_ENTRIES, MAX_TAG_VALUES};

use source::HttpFile;
pub use tile::{Samples, Tile, TileData, TileKey};
pub use window::TileWindow;

use crate::error::{Cause, Error, Result};
use crate::fetch::HttpRangeClient;
use crate::geo::grid::PixelWindow;

/// First header read, in bytes; later reads double (async-tiff readahead).
const HEADER_READAHEAD: u64 = 8 * 1024;

/// One LERC chunk (tile or strip) of `width × rows` pixels of `samples`
/// values, decoded as the reader decodes it (pixel-interleaved f32);
/// `params` is the IFD's LercParameters tag (`[version, 0|1|2]`: none,
/// DEFLATE or ZSTD around the LERC blob). Not an API: `bench/decode-harness` (`lerc_blobs`)
/// times it against Esri's C++ library on the same blobs
/// (`bench/lerc_vs_cpp.py`), where [`decode_tile`]'s hand-off to a
/// blocking thread would swamp a 32×32 tile.
#[doc(hidden)]
pub fn decode_lerc_chunk(
    bytes: &[u8],
    params: Option<&[u32]>,
    width: usize,
    rows: usize,
    samples: usize,
    sample_type: SampleType,
) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(lerc::decode_chunk(
        bytes,
        params,
        width,
        rows,
        samples,
        sample_type,
    )?)
}

type HeaderCell = Arc<tokio::sync::OnceCell<Arc<CogHeader>>>;

/// Reads pixel windows of COGs over HTTP, fetching only the tiles a window
/// needs. Cheap to clone; clones share the header index, cache and client.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::TileCache;
/// use tilestack::fetch::RetryConfig;
/// use tilestack::geo::PixelWindow;
/// use tilestack::{CogReader, HttpRangeClient};
/// let client = HttpRangeClient::new(RetryConfig::default())?;
/// let reader = CogReader::new(client, TileCache::new(512 << 20));
/// let href = "http://127.0.0.1:8080/data/a/B04.tif";
/// let px = reader.read_window(href, 0, PixelWindow::new(100, 200, 256, 256)).await?; // ifd 0: full resolution
/// assert_eq!(px.dim(), (256, 256));                                   // (rows, cols); NaN = nodata
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct CogReader {
    client: HttpRangeClient,
    cache: TileCache,
    headers: Arc<Mutex<HashMap<String, HeaderCell>>>,
    store: Option<HeaderStore>,
    companion: Companion,
}

/// One value of any type kept beside a reader and shared by its clones (the
/// stack's Zarr reader, sharing this one's client and cache): see
/// [`CogReader::companion`].
#[derive(Clone, Default)]
struct Companion(Arc<std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>>);

impl std::fmt::Debug for Companion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Companion(set)"
        } else {
            "Companion(unset)"
        })
    }
}

impl CogReader {
    /// A reader fetching through `client` and caching decoded tiles in `cache`.
    pub fn new(client: HttpRangeClient, cache: TileCache) -> Self {
        CogReader {
            client,
            cache,
            headers: Arc::new(Mutex::new(HashMap::new())),
            store: None,
            companion: Companion::default(),
        }
    }

    /// The value of type `T` kept beside this reader (and its clones), made
    /// by `make` on first use; `None` when a value of another type is kept
    /// there. The stacks keep their Zarr reader here, so that one reader
    /// (its metadata, shard indexes) serves every read through this one,
    /// with this client and this cache: one byte budget for both.
    pub(crate) fn companion<T: Clone + Send + Sync + 'static>(
        &self,
        make: impl FnOnce() -> T,
    ) -> Option<T> {
        self.companion
            .0
            .get_or_init(|| Arc::new(make()))
            .downcast_ref::<T>()
            .cloned()
    }

    /// Keeps headers in `store` too, across processes: a href whose header
    /// is there is opened with zero requests. A tile response that shows
    /// another size or `ETag` than the header saw fails that read with an
    /// [`Error::Cog`] naming the href, drops the header (here and in the
    /// store), and the next read fetches it again.
    pub fn with_header_store(mut self, store: HeaderStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Forgets the header of `href` (memory and store): the next read
    /// fetches it again.
    pub fn forget_header(&self, href: &str) {
        let mut map = self.headers.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(href);
        drop(map);
        if let Some(s) = &self.store {
            s.remove(href);
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

    /// The header of `href`: from the index, or fetched and parsed once
    /// (concurrent first calls share one parse).
    ///
    /// # Errors
    /// [`Error::Http`] when the file cannot be fetched (the message names the
    /// URL and byte range), [`Error::Cog`] when it is not a usable TIFF.
    pub async fn header(&self, href: &str) -> Result<Arc<CogHeader>> {
        let cell = {
            let mut map = self.headers.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(href.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| self.load_header(href))
            .await
            .cloned()
    }

    #[tracing::instrument(level = "debug", name = "header", skip(self))]
    async fn load_header(&self, href: &str) -> Result<Arc<CogHeader>> {
        let t0 = std::time::Instant::now();
        let stored = self.store.as_ref().and_then(|s| s.load(href));
        let stored_version = stored.as_ref().map(|h| h.version.clone());
        let file = HttpFile::new(self.client.clone(), href, stored);
        let (record, fetched) = (file.record.clone(), file.fetched.clone());
        let cache = ReadaheadMetadataCache::new(file).with_initial_size(HEADER_READAHEAD);
        let tiff_err = |e: AsyncTiffError| match e {
            // Our own read failed inside the parser: that error, unwrapped.
            AsyncTiffError::External(inner) => match inner.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Error::Cog {
                    href: href.to_string(),
                    message: "reading the header".into(),
                    source: Some(Cause::from_boxed(other)),
                },
            },
            e => Error::Cog {
                href: href.to_string(),
                message: "reading the header".into(),
                source: Some(Cause::new(e)),
            },
        };
        let mut meta = contained(href, TiffMetadataReader::try_open(&cache))
            .await?
            .map_err(tiff_err)?;
        let le = matches!(
            meta.endianness(),
            async_tiff::reader::Endianness::LittleEndian
        );
        // IFD by IFD, each offset once: a chain that points back into itself
        // (hostile or corrupt) is an error, not an endless read.
        let mut ifds = Vec::new();
        let mut ifd_offsets = Vec::new();
        let mut visited = std::collections::HashSet::new();
        // The file's size, known once its first bytes came (or from the
        // stored header): every IFD entry is checked against it.
        let size = self
            .client
            .object_version(href)
            .or_else(|| stored_version.clone())
            .and_then(|v| v.size);
        while let Some(offset) = meta.next_ifd_offset() {
            if !visited.insert(offset) {
                return Err(Error::Cog {
                    href: href.to_string(),
                    message: format!(
                        "the IFD chain loops: IFD {} points back to offset {offset}",
                        ifds.len()
                    ),
                    source: None,
                });
            }
            if ifds.len() >= MAX_IFDS {
                return Err(Error::Cog {
                    href: href.to_string(),
                    message: format!("more than {MAX_IFDS} IFDs"),
                    source: None,
                });
            }
            scan::check_ifd(&cache, offset, le, meta.bigtiff(), size)
                .await
                .map_err(|p| Error::Cog {
                    href: href.to_string(),
                    message: format!("malformed TIFF: {}", p.message),
                    source: p.source,
                })?;
            match contained(href, meta.read_next_ifd(&cache))
                .await?
                .map_err(tiff_err)?
            {
                Some(ifd) => {
                    ifds.push(ifd);
                    ifd_offsets.push(offset);
                }
                None => break,
            }
        }
        let mut header = CogHeader::from_ifds(href, ifds, le)?;
        header.ifd_offsets = ifd_offsets;
        header.bigtiff = meta.bigtiff();
        let fetched = fetched.load(std::sync::atomic::Ordering::Relaxed);
        header.version = match (fetched, stored_version) {
            (false, Some(v)) => v,
            _ => self.client.object_version(href).unwrap_or_default(),
        };
        if let (Some(store), true) = (&self.store, fetched) {
            let reads = std::mem::take(&mut *record.lock().unwrap_or_else(|p| p.into_inner()));
            let entry = StoredHeader {
                version: header.version.clone(),
                reads,
            };
            // A store that cannot be written only costs the next process
            // its header requests: not worth failing the read.
            if let Err(e) = store.save(href, &entry) {
                tracing::warn!(href, error = %e.chain(), "could not persist the header");
            }
        }
        tracing::debug!(
            ifds = header.ifds.len(),
            fetched,
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "header read"
        );
        Ok(Arc::new(header))
    }

    /// The decoded tiles of IFD `ifd` that the `width × height` window at
    /// `(col_off, row_off)` intersects (through the cache, like
    /// [`CogReader::read_window`]), each decoded down to the window's last
    /// row; `None` when the window misses the image. Sample them with
    /// [`TileWindow::sample`] without copying the window first.
    ///
    /// # Errors
    /// As [`CogReader::read_window`]; a file of more than one band is an
    /// error here (read it with [`CogReader::read_bands`]).
    pub async fn window_tiles(
        &self,
        href: &str,
        ifd: usize,
        window: PixelWindow,
    ) -> Result<Option<TileWindow>> {
        let header = self.header(href).await?;
        if let Some(info) = header.ifds.get(ifd)
            && info.samples_per_pixel != 1
        {
            return Err(Error::cog(
                href,
                format!(
                    "IFD {ifd} has {} bands; a single-band read needs one (read_bands selects bands)",
                    info.samples_per_pixel
                ),
            ));
        }
        Ok(self
            .band_windows(&header, ifd, window, &[0])
            .await?
            .and_then(|mut w| w.pop()))
    }

    /// The tiles under `window` of each of `bands` (0-based), one
    /// [`TileWindow`] per band; `None` when the window misses the image.
    async fn band_windows(
        &self,
        header: &Arc<CogHeader>,
        ifd: usize,
        window: PixelWindow,
        bands: &[usize],
    ) -> Result<Option<Vec<TileWindow>>> {
        if window.pixels() > MAX_WINDOW_PIXELS {
            return Err(Error::invalid(
                "window",
                format!(
                    "{}×{} px is over the 2^28 px limit",
                    window.width, window.height
                ),
            ));
        }
        let href = &header.href;
        let bad = |m: String| Error::cog(href, m);
        let info = header
            .ifds
            .get(ifd)
            .ok_or_else(|| bad(format!("no IFD {ifd} (file has {})", header.ifds.len())))?;
        if let Some(b) = bands.iter().find(|&&b| b >= info.bands()) {
            return Err(bad(format!(
                "no band {} in IFD {ifd} (it has {})",
                b + 1,
                info.bands()
            )));
        }
        // The window clipped to the image, in image pixels.
        let Some(clipped) = window.clip(info.width, info.height) else {
            return Ok(None);
        };
        let (c0, c1) = (clipped.col_off, clipped.col_end());
        let (r0, r1) = (clipped.row_off, clipped.row_end());
        if info.tile_width == 0 || info.tile_height == 0 {
            return Err(bad(format!("IFD {ifd} has neither tiles nor strips")));
        }
        let (tw, th) = (info.tile_width, info.tile_height);
        let (tx0, tx1) = (c0 / tw, (c1 - 1) / tw);
        let (ty0, ty1) = (r0 / th, (r1 - 1) / th);
        let xy: Vec<(usize, usize)> = (ty0..=ty1)
            .flat_map(|y| (tx0..=tx1).map(move |x| (x, y)))
            .collect();
        // Rows each tile must have decoded: down to the window's last row.
        let need: Vec<usize> = xy.iter().map(|&(_, y)| (r1 - y * th).min(th)).collect();
        let tiles = self.tiles(header, ifd, bands, &xy, &need).await?;
        Ok(Some(
            tiles
                .into_iter()
                .map(|tiles| TileWindow {
                    window,
                    width: info.width,
                    height: info.height,
                    tile_width: tw,
                    tile_height: th,
                    tx0,
                    ty0,
                    across: tx1 - tx0 + 1,
                    down: ty1 - ty0 + 1,
                    tiles,
                })
                .collect(),
        ))
    }

    /// The `width × height` window at `(col_off, row_off)` of IFD `ifd`
    /// (0 = full resolution) as `(rows, cols)` f32; pixels outside the image
    /// and nodata pixels are NaN. Only the intersecting tiles are fetched
    /// (through the cache); decoding runs on blocking threads.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a window over [`MAX_WINDOW_PIXELS`], an
    /// [`Error::Cog`] naming the href for a missing IFD, an unsupported layout
    /// or a tile that fails to decode (then naming the tile, with a
    /// [`DecodeError`] as its source: codec, tile, and the decoder's own
    /// error), and [`Error::Http`] naming the URL and byte range for a failed
    /// fetch.
    pub async fn read_window(
        &self,
        href: &str,
        ifd: usize,
        window: PixelWindow,
    ) -> Result<Array2<f32>> {
        match self.window_tiles(href, ifd, window).await? {
            Some(tiles) => Ok(tiles.to_array()),
            None => Ok(Array2::from_elem((window.height, window.width), f32::NAN)),
        }
    }

    /// The `width × height` window at `(col_off, row_off)` of IFD `ifd`
    /// (0 = full resolution) for each of `bands` — **1-based**, as GDAL
    /// numbers them; empty = every band — as `[bands, rows, cols]` f32.
    /// Pixels outside the image, nodata pixels and pixels an internal mask
    /// (GDAL's mask IFD) marks invalid are NaN; sparse tiles read as nodata
    /// (NaN) when the file has one, else 0, as in GDAL. Values are raw
    /// samples: scale and offset ([`CogHeader::scale`]) are not applied.
    ///
    /// Works on tiled and striped files, pixel-interleaved or planar, any
    /// sample type of 8 to 64 bits, and the codecs async-tiff decodes
    /// (none, DEFLATE, LZW, JPEG, ZSTD) plus PackBits.
    ///
    /// # Errors
    /// As [`CogReader::read_window`], plus an [`Error::Cog`] naming the file
    /// for a band it does not have, and for a codec that cannot be decoded
    /// (its [`DecodeError`] source names the codec).
    ///
    /// # Examples
    /// ```no_run
    /// # tokio_test::block_on(async {
    /// use tilestack::cog::TileCache;
    /// use tilestack::fetch::RetryConfig;
    /// use tilestack::geo::PixelWindow;
    /// use tilestack::{CogReader, HttpRangeClient};
    /// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(256 << 20));
    /// // NAIP: red, green, blue, near infrared; read NIR and red
    /// let px = reader.read_bands("file:///data/naip.tif", 0, PixelWindow::new(0, 0, 512, 512), &[4, 1]).await?;
    /// assert_eq!(px.dim(), (2, 512, 512));
    /// # Ok::<(), tilestack::Error>(())
    /// # });
    /// ```
    pub async fn read_bands(
        &self,
        href: &str,
        ifd: usize,
        window: PixelWindow,
        bands: &[usize],
    ) -> Result<Array3<f32>> {
        let header = self.header(href).await?;
        let info = header.ifds.get(ifd).ok_or_else(|| {
            Error::cog(
                href,
                format!("no IFD {ifd} (file has {})", header.ifds.len()),
            )
        })?;
        let zero_based: Vec<usize> = if bands.is_empty() {
            (0..info.bands()).collect()
        } else {
            let mut v = Vec::with_capacity(bands.len());
            for &b in bands {
                if b == 0 || b > info.bands() {
                    return Err(Error::cog(
                        href,
                        format!("no band {b} in IFD {ifd}: bands are 1..={}", info.bands()),
                    ));
                }
                v.push(b - 1);
            }
            v
        };
        let (h, w) = (window.height, window.width);
        let mut out = Array3::from_elem((zero_based.len(), h, w), f32::NAN);
        let Some(windows) = self.band_windows(&header, ifd, window, &zero_based).await? else {
            return Ok(out);
        };
        for (k, tw) in windows.iter().enumerate() {
            out.index_axis_mut(Axis(0), k).assign(&tw.to_array());
        }
        if let Some(m) = header.mask_ifd(ifd).filter(|&m| m != ifd)
            && let Some(mask) = self
                .band_windows(&header, m, window, &[0])
                .await?
                .and_then(|mut w| w.pop())
        {
            let mask = mask.to_array();
            for mut band in out.outer_iter_mut() {
                ndarray::Zip::from(&mut band).and(&mask).for_each(|v, &m| {
                    if m == 0.0 {
                        *v = f32::NAN;
                    }
                });
            }
        }
        Ok(out)
    }

    async fn tiles(
        &self,
        header: &Arc<CogHeader>,
        ifd: usize,
        bands: &[usize],
        xy: &[(usize, usize)],
        need: &[usize],
    ) -> Result<Vec<Vec<TileData>>> {
        let mut waits = Vec::with_capacity(xy.len() * bands.len());
        let mut claims = Vec::new();
        for &band in bands {
            for (&(x, y), &rows) in xy.iter().zip(need) {
                let key = TileKey {
                    href: header.href.clone(),
                    ifd,
                    x,
                    y,
                    band,
                };
                match self.cache.lookup(&key) {
                    Lookup::Hit(t) => waits.push(futures::future::ready(Ok(t)).boxed().shared()),
                    Lookup::Wait(f) => waits.push(f),
                    Lookup::Lead(f, claim) => {
                        waits.push(f);
                        claims.push(TileClaim {
                            x,
                            y,
                            band,
                            rows,
                            claim,
                        });
                    }
                }
            }
        }
        if !claims.is_empty() {
            // Spawned so that the fetch completes (and wakes other waiters)
            // even if this caller is cancelled.
            let job = fetch_tiles(self.clone(), header.clone(), ifd, claims);
            tokio::spawn(job);
        }
        let mut out: Vec<Vec<TileData>> =
            bands.iter().map(|_| Vec::with_capacity(xy.len())).collect();
        let per_band = xy.len().max(1);
        for (i, w) in waits.into_iter().enumerate() {
            let k = i % per_band;
            let ((x, y), rows) = (xy[k], need[k]);
            let tile = w.await.map_err(|e| e.duplicate())?;
            out[i / per_band].push(if tile.rows >= rows {
                tile
            } else {
                self.decode_rest(header, ifd, x, y, tile).await?
            });
        }
        Ok(out)
    }

    /// The whole of a tile that was decoded only partly, from its kept
    /// compressed bytes (no fetch); the cache keeps the whole one.
    async fn decode_rest(
        &self,
        header: &Arc<CogHeader>,
        ifd: usize,
        x: usize,
        y: usize,
        partial: TileData,
    ) -> Result<TileData> {
        let range = header.ifds[ifd].tile_range(x, y).unwrap_or(0..0);
        if partial.compressed.is_none() {
            return Err(Error::internal(
                "COG reader",
                format!(
                    "{}: tile ({x}, {y}) of IFD {ifd}: partial tile without its bytes",
                    header.href
                ),
            ));
        }
        let full = decode_rows(
            header.clone(),
            ifd,
            x,
            y,
            range,
            partial.compressed.clone(),
            usize::MAX,
        )
        .await?;
        self.cache.upgrade(
            &TileKey {
                href: header.href.clone(),
                ifd,
                x,
                y,
                band: 0,
            },
            &full,
        );
        Ok(full)
    }
}

/// One tile a reader must fetch and decode for the cache.
struct TileClaim {
    x: usize,
    y: usize,
    band: usize,
    rows: usize,
    claim: Claim,
}

/// Fetches the claimed tiles in one coalesced `get_ranges`, decodes each on a
/// blocking thread and completes its claim. The bands of a pixel-interleaved
/// tile share one fetch and one decode.
async fn fetch_tiles(
    reader: CogReader,
    header: Arc<CogHeader>,
    ifd: usize,
    claims: Vec<TileClaim>,
) {
    let href = header.href.clone();
    let info = &header.ifds[ifd];
    // One chunk per (x, y) and, for a planar file, band.
    struct Group {
        x: usize,
        y: usize,
        range: Range<u64>,
        rows: usize,
        bands: Vec<usize>,
        claims: Vec<Claim>,
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut at: HashMap<(usize, usize, usize), usize> = HashMap::new();
    for c in claims {
        let chunk_band = if info.planar { c.band } else { 0 };
        let i = *at.entry((c.x, c.y, chunk_band)).or_insert_with(|| {
            groups.push(Group {
                x: c.x,
                y: c.y,
                range: info.chunk_range(c.x, c.y, chunk_band).unwrap_or(0..0),
                rows: 0,
                bands: Vec::new(),
                claims: Vec::new(),
            });
            groups.len() - 1
        });
        let g = &mut groups[i];
        g.rows = g.rows.max(c.rows);
        g.bands.push(c.band);
        g.claims.push(c.claim);
    }
    let client = &reader.client;
    let t0 = std::time::Instant::now();
    let fetched = client
        .get_ranges(
            &href,
            groups
                .iter()
                .map(|g| g.range.clone())
                .filter(|r| r.end > r.start)
                .collect(),
        )
        .await;
    tracing::debug!(
        href = %href,
        ifd,
        tiles = groups.len(),
        bytes = groups.iter().map(|g| g.range.end - g.range.start).sum::<u64>(),
        ms = t0.elapsed().as_secs_f64() * 1e3,
        ok = fetched.is_ok(),
        "tile fetch"
    );
    // Tile offsets from a header of another version of the file would
    // decode garbage: fail these reads and read the header again next time.
    let fetched = match client.object_version(&href) {
        Some(now) if header.version.differs(&now) => {
            reader.forget_header(&href);
            Err(Error::cog(
                href.clone(),
                format!(
                    "the file changed since its header was read (size {:?} -> {:?}, ETag {:?} -> {:?}); \
                     the header is read again on the next read",
                    header.version.size, now.size, header.version.etag, now.etag
                ),
            ))
        }
        _ => fetched,
    };
    let mut fetched = match fetched {
        Ok(b) => b.into_iter(),
        Err(e) => {
            let e = Arc::new(e);
            for g in groups {
                for claim in g.claims {
                    claim.complete(Err(e.clone()));
                }
            }
            return;
        }
    };
    // Decode every tile of the batch at once (each on a blocking thread), so
    // a multi-tile window uses all cores rather than one tile after another.
    let jobs = groups.into_iter().map(|g| {
        let bytes = if g.range.end > g.range.start {
            fetched.next()
        } else {
            None // a sparse tile: nodata, or 0 without one (GDAL)
        };
        let header = header.clone();
        async move {
            let result =
                decode_bands(header, ifd, g.x, g.y, g.range, bytes, g.rows, &g.bands).await;
            match result {
                Ok(tiles) => {
                    for (claim, tile) in g.claims.into_iter().zip(tiles) {
                        claim.complete(Ok(tile));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for claim in g.claims {
                        claim.complete(Err(e.clone()));
                    }
                }
            }
        }
    });
    let t0 = std::time::Instant::now();
    let n = futures::future::join_all(jobs.collect::<Vec<_>>())
        .await
        .len();
    tracing::trace!(href = %href, tiles = n, ms = t0.elapsed().as_secs_f64() * 1e3, "tile decode");
}

/// Runs a step of the TIFF parser (async-tiff) so that a panic inside it
/// (async-tiff 0.4 asserts on some malformed tags, e.g. a GeoKeyDirectory
/// whose version is not 1) becomes an error naming the file instead of
/// ending the process.
async fn contained<T>(href: &str, step: impl std::future::Future<Output = T>) -> Result<T> {
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(step)
        .catch_unwind()
        .await
        .map_err(|panic| {
            let what = match crate::runtime::panic_text(&*panic) {
                t if t.is_empty() => "no message".to_string(),
                t => t,
            };
            Error::cog(
                href,
                format!(
                    "malformed TIFF header: the TIFF parser (async-tiff) panicked reading it: {what}"
                ),
            )
        })
}
