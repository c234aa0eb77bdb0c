//! Cloud-Optimized GeoTIFF window reads over HTTP `Range` requests.
//!
//! A [`CogReader`] parses each file's header once ([`CogHeader`], kept in an
//! in-memory index keyed by href), then reads a pixel window by fetching only
//! the internal tiles it intersects — through the shared [`TileCache`], with
//! nearby tiles coalesced into one request — and decodes them on blocking
//! threads. Callers should share **one** reader (or at least one
//! [`TileCache`] and [`HttpRangeClient`]) across all tasks: that is what
//! bounds memory and lets concurrent reads of a tile share one fetch.
//!
//! Limits of this first cut: one sample per pixel (GDAL-style single-band
//! COGs), tiled TIFFs only, north-up georeferencing from
//! ModelPixelScale + ModelTiepoint.

use crate::fetch::{HttpRangeClient, Lookup, ObjectVersion, Samples, Tile, TileData, TileKey};
use crate::header_store::{HeaderStore, StoredHeader};
use crate::{Epsg, Error, GeoTransform, GridSpec, Result};
use async_tiff::decoder::DecoderRegistry;
use async_tiff::error::{AsyncTiffError, AsyncTiffResult};
use async_tiff::metadata::TiffMetadataReader;
use async_tiff::metadata::cache::ReadaheadMetadataCache;
use async_tiff::reader::AsyncFileReader;
use async_tiff::tags::{PlanarConfiguration, SampleFormat};
use async_tiff::{ImageFileDirectory, TypedArray};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use ndarray::Array2;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

pub use crate::fetch::TileCache;

/// Largest image accepted, in pixels (2^34): beyond this a header is taken as corrupt.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 34;
/// Largest compressed tile accepted, in bytes (64 MiB).
pub const MAX_TILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest tile accepted, in pixels (4096 × 4096).
pub const MAX_TILE_PIXELS: u64 = 4096 * 4096;
/// Largest window one [`CogReader::read_window`] call returns, in pixels (2^28).
pub const MAX_WINDOW_PIXELS: u64 = 1 << 28;
/// Extra output room of a partial inflate: more than the longest element
/// libdeflate writes at once (a 65,535-byte stored block).
const PARTIAL_SLACK: usize = 66 * 1024;
/// First header read, in bytes; later reads double (async-tiff readahead).
const HEADER_READAHEAD: u64 = 8 * 1024;

/// The numeric type of a COG's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SampleType {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 64-bit.
    U64,
    /// Signed 8-bit.
    I8,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// Signed 64-bit.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl SampleType {
    fn from_tags(format: &[SampleFormat], bits: &[u16]) -> Option<Self> {
        let f = format.first().copied().unwrap_or(SampleFormat::Uint);
        Some(match (f, *bits.first()?) {
            (SampleFormat::Uint, 8) => SampleType::U8,
            (SampleFormat::Uint, 16) => SampleType::U16,
            (SampleFormat::Uint, 32) => SampleType::U32,
            (SampleFormat::Uint, 64) => SampleType::U64,
            (SampleFormat::Int, 8) => SampleType::I8,
            (SampleFormat::Int, 16) => SampleType::I16,
            (SampleFormat::Int, 32) => SampleType::I32,
            (SampleFormat::Int, 64) => SampleType::I64,
            (SampleFormat::Float, 32) => SampleType::F32,
            (SampleFormat::Float, 64) => SampleType::F64,
            _ => return None,
        })
    }
}

/// One image of a COG: the full-resolution image (index 0) or an overview.
#[derive(Debug, Clone, PartialEq)]
pub struct IfdInfo {
    /// Image width, pixels.
    pub width: usize,
    /// Image height, pixels.
    pub height: usize,
    /// Tile width, pixels (0 when the image is not tiled).
    pub tile_width: usize,
    /// Tile height, pixels (0 when the image is not tiled).
    pub tile_height: usize,
    /// Tiles across.
    pub tiles_across: usize,
    /// Tiles down.
    pub tiles_down: usize,
    /// Byte offset of each tile, row-major (tile `(x, y)` at `y·tiles_across + x`).
    pub tile_offsets: Vec<u64>,
    /// Compressed size of each tile in bytes, same order (0 = sparse tile).
    pub tile_byte_counts: Vec<u64>,
    /// Samples per pixel.
    pub samples_per_pixel: u16,
    /// Sample type, `None` when unsupported.
    pub sample_type: Option<SampleType>,
    /// TIFF Compression tag value (1 none, 5 LZW, 8 DEFLATE, 7 JPEG, 50000 ZSTD…).
    pub compression: u16,
    /// TIFF Predictor tag value (1 none, 2 horizontal, 3 floating point).
    pub predictor: u16,
}

impl IfdInfo {
    /// Byte range of tile `(x, y)`, `None` outside the tile grid.
    pub fn tile_range(&self, x: usize, y: usize) -> Option<Range<u64>> {
        if x >= self.tiles_across || y >= self.tiles_down {
            return None;
        }
        let i = y * self.tiles_across + x;
        let (o, n) = (*self.tile_offsets.get(i)?, *self.tile_byte_counts.get(i)?);
        Some(o..o.checked_add(n)?)
    }
}

/// What a COG's header says, parsed once per href.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::{CogReader, TileCache};
/// use tilestack::fetch::{HttpRangeClient, RetryConfig};
/// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30));
/// let h = reader.header("http://127.0.0.1:8080/data/a/B04.tif").await?;
/// println!("{}×{} px, {} overviews, nodata {:?}", h.width, h.height, h.ifds.len() - 1, h.nodata);
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
#[derive(Debug)]
pub struct CogHeader {
    /// The file's URL.
    pub href: String,
    /// Full-resolution width, pixels.
    pub width: usize,
    /// Full-resolution height, pixels.
    pub height: usize,
    /// Full-resolution tile width, pixels.
    pub tile_width: usize,
    /// Full-resolution tile height, pixels.
    pub tile_height: usize,
    /// Every IFD in file order: full resolution first, then overviews (and any masks).
    pub ifds: Vec<IfdInfo>,
    /// Pixel → CRS transform of the full-resolution image, if georeferenced.
    pub transform: Option<GeoTransform>,
    /// CRS from the GeoKeyDirectory, if any.
    pub epsg: Option<Epsg>,
    /// `GDAL_NODATA`, parsed.
    pub nodata: Option<f64>,
    /// Sample type of the full-resolution image.
    pub sample_type: Option<SampleType>,
    /// TIFF Compression tag of the full-resolution image.
    pub compression: u16,
    /// TIFF Predictor tag of the full-resolution image.
    pub predictor: u16,
    /// The file's size and `ETag` when the header was read: a tile response
    /// showing another version means the header is stale.
    pub version: ObjectVersion,
    raw: Vec<ImageFileDirectory>,
    /// Byte order of the file ("II" = little-endian).
    little_endian: bool,
}

impl CogHeader {
    fn from_ifds(href: &str, raw: Vec<ImageFileDirectory>, little_endian: bool) -> Result<Self> {
        let bad = |m: String| Error::Cog {
            href: href.to_string(),
            message: m,
        };
        let first = raw.first().ok_or_else(|| bad("no IFD".into()))?;
        let mut ifds = Vec::with_capacity(raw.len());
        for (i, d) in raw.iter().enumerate() {
            let (w, h) = (d.image_width() as u64, d.image_height() as u64);
            if w * h > MAX_IMAGE_PIXELS {
                return Err(bad(format!(
                    "IFD {i} declares {w}×{h} px, over the 2^34 limit"
                )));
            }
            let (tw, th) = (
                d.tile_width().unwrap_or(0) as u64,
                d.tile_height().unwrap_or(0) as u64,
            );
            if tw * th > MAX_TILE_PIXELS {
                return Err(bad(format!("IFD {i} declares {tw}×{th} px tiles")));
            }
            let counts = d.tile_byte_counts().unwrap_or(&[]).to_vec();
            if let Some(c) = counts.iter().find(|&&c| c > MAX_TILE_BYTES) {
                return Err(bad(format!(
                    "IFD {i} declares a {c}-byte tile, over 64 MiB"
                )));
            }
            let (across, down) = if tw > 0 && th > 0 {
                (w.div_ceil(tw) as usize, h.div_ceil(th) as usize)
            } else {
                (0, 0)
            };
            let offsets = d.tile_offsets().unwrap_or(&[]).to_vec();
            if tw > 0 && (offsets.len() < across * down || counts.len() < across * down) {
                return Err(bad(format!(
                    "IFD {i}: {} tile offsets / {} byte counts for {across}×{down} tiles",
                    offsets.len(),
                    counts.len()
                )));
            }
            ifds.push(IfdInfo {
                width: w as usize,
                height: h as usize,
                tile_width: tw as usize,
                tile_height: th as usize,
                tiles_across: across,
                tiles_down: down,
                tile_offsets: offsets,
                tile_byte_counts: counts,
                samples_per_pixel: d.samples_per_pixel(),
                sample_type: SampleType::from_tags(d.sample_format(), d.bits_per_sample()),
                compression: d.compression().to_u16(),
                predictor: d.predictor().map(|p| p.to_u16()).unwrap_or(1),
            });
        }
        let transform = match (first.model_pixel_scale(), first.model_tiepoint()) {
            (Some(s), Some(t)) if s.len() >= 2 && t.len() >= 6 && s[0] > 0.0 && s[1] > 0.0 => {
                Some(GeoTransform {
                    x0: t[3] - t[0] * s[0],
                    y0: t[4] + t[1] * s[1],
                    dx: s[0],
                    dy: -s[1],
                })
            }
            _ => None,
        };
        let epsg = match first.geo_key_directory().and_then(|g| g.epsg_code()) {
            Some(code) => Some(Epsg::new(code.into()).map_err(|e| bad(e.to_string()))?),
            None => None,
        };
        let nodata = match first.gdal_nodata() {
            Some(s) => {
                let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
                Some(match s.to_ascii_lowercase().as_str() {
                    "nan" => f64::NAN,
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    v => v
                        .parse::<f64>()
                        .map_err(|_| bad(format!("GDAL_NODATA {s:?} is not a number")))?,
                })
            }
            None => None,
        };
        let f = &ifds[0];
        Ok(CogHeader {
            href: href.to_string(),
            width: f.width,
            height: f.height,
            tile_width: f.tile_width,
            tile_height: f.tile_height,
            transform,
            epsg,
            nodata,
            sample_type: f.sample_type,
            compression: f.compression,
            predictor: f.predictor,
            ifds,
            version: ObjectVersion::default(),
            raw,
            little_endian,
        })
    }

    /// The pixel → CRS transform of IFD `ifd` (overviews scale the
    /// full-resolution one by the size ratio), if georeferenced.
    pub fn ifd_transform(&self, ifd: usize) -> Option<GeoTransform> {
        let t = self.transform?;
        let i = self.ifds.get(ifd)?;
        if i.width == 0 || i.height == 0 {
            return None;
        }
        Some(GeoTransform {
            dx: t.dx * self.width as f64 / i.width as f64,
            dy: t.dy * self.height as f64 / i.height as f64,
            ..t
        })
    }
}

/// The reads of one header parse: each range as asked, with what came back.
type HeaderReads = Vec<(Range<u64>, Bytes)>;

/// `AsyncFileReader` over one URL of an [`HttpRangeClient`], for header reads
/// (ranges running past EOF are cut short, as readahead needs). Reads are
/// served from a persisted header when it has them, and recorded so the
/// header can be persisted.
#[derive(Debug)]
struct HttpFile {
    client: HttpRangeClient,
    url: String,
    replay: Option<StoredHeader>,
    record: Arc<Mutex<HeaderReads>>,
    fetched: Arc<std::sync::atomic::AtomicBool>,
}

impl HttpFile {
    fn new(client: HttpRangeClient, url: &str, replay: Option<StoredHeader>) -> Self {
        HttpFile {
            client,
            url: url.to_string(),
            replay,
            record: Arc::new(Mutex::new(Vec::new())),
            fetched: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    async fn read(&self, range: Range<u64>, to_eof: bool) -> Result<Bytes> {
        let bytes = match self.replay.as_ref().and_then(|h| h.replay(&range)) {
            Some(b) => b,
            None => {
                self.fetched
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if to_eof {
                    self.client
                        .get_range_to_eof(&self.url, range.clone())
                        .await?
                } else {
                    self.client.get_range(&self.url, range.clone()).await?
                }
            }
        };
        let mut rec = self.record.lock().unwrap_or_else(|p| p.into_inner());
        rec.push((range, bytes.clone()));
        Ok(bytes)
    }

    /// Several exact ranges: replayed where persisted, the rest fetched in
    /// one coalesced, concurrent batch.
    async fn read_many(&self, ranges: Vec<Range<u64>>) -> Result<Vec<Bytes>> {
        let replayed: Vec<Option<Bytes>> = ranges
            .iter()
            .map(|r| self.replay.as_ref().and_then(|h| h.replay(r)))
            .collect();
        let missing: Vec<Range<u64>> = ranges
            .iter()
            .zip(&replayed)
            .filter(|(_, b)| b.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        let mut fetched = if missing.is_empty() {
            Vec::new()
        } else {
            self.fetched
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.client.get_ranges(&self.url, missing).await?
        }
        .into_iter();
        let out: Vec<Bytes> = replayed
            .into_iter()
            .map(|b| b.or_else(|| fetched.next()).unwrap_or_default())
            .collect();
        let mut rec = self.record.lock().unwrap_or_else(|p| p.into_inner());
        rec.extend(ranges.into_iter().zip(out.iter().cloned()));
        Ok(out)
    }
}

fn external(e: Error) -> AsyncTiffError {
    AsyncTiffError::External(Box::new(e))
}

impl AsyncFileReader for HttpFile {
    fn get_bytes<'a, 'b>(&'a self, range: Range<u64>) -> BoxFuture<'b, AsyncTiffResult<Bytes>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move { self.read(range, true).await.map_err(external) })
    }

    fn get_byte_ranges<'a, 'b>(
        &'a self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'b, AsyncTiffResult<Vec<Bytes>>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move { self.read_many(ranges).await.map_err(external) })
    }
}

/// `AsyncFileReader` over bytes already fetched: hands async-tiff a tile's
/// bytes so it can build the `Tile` to decode.
#[derive(Debug)]
struct Fetched {
    range: Range<u64>,
    bytes: Bytes,
}

impl AsyncFileReader for Fetched {
    fn get_bytes<'a, 'b>(&'a self, range: Range<u64>) -> BoxFuture<'b, AsyncTiffResult<Bytes>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            if range == self.range {
                Ok(self.bytes.clone())
            } else {
                Err(AsyncTiffError::General(format!(
                    "bytes {range:?} requested, {:?} fetched",
                    self.range
                )))
            }
        })
    }
}

type HeaderCell = Arc<tokio::sync::OnceCell<Arc<CogHeader>>>;

/// Reads pixel windows of COGs over HTTP, fetching only the tiles a window
/// needs. Cheap to clone; clones share the header index, cache and client.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::{CogReader, TileCache};
/// use tilestack::fetch::{HttpRangeClient, RetryConfig};
/// let client = HttpRangeClient::new(RetryConfig::default())?;
/// let reader = CogReader::new(client, TileCache::new(512 << 20));
/// let href = "http://127.0.0.1:8080/data/a/B04.tif";
/// let px = reader.read_window(href, 0, 100, 200, 256, 256).await?;  // ifd 0 = full resolution
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
}

impl CogReader {
    /// A reader fetching through `client` and caching decoded tiles in `cache`.
    pub fn new(client: HttpRangeClient, cache: TileCache) -> Self {
        CogReader {
            client,
            cache,
            headers: Arc::new(Mutex::new(HashMap::new())),
            store: None,
        }
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

    async fn load_header(&self, href: &str) -> Result<Arc<CogHeader>> {
        let stored = self.store.as_ref().and_then(|s| s.load(href));
        let stored_version = stored.as_ref().map(|h| h.version.clone());
        let file = HttpFile::new(self.client.clone(), href, stored);
        let (record, fetched) = (file.record.clone(), file.fetched.clone());
        let cache = ReadaheadMetadataCache::new(file).with_initial_size(HEADER_READAHEAD);
        let tiff_err = |e: AsyncTiffError| match e {
            AsyncTiffError::External(inner) => match inner.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Error::Cog {
                    href: href.to_string(),
                    message: other.to_string(),
                },
            },
            e => Error::Cog {
                href: href.to_string(),
                message: format!("reading the header: {e}"),
            },
        };
        let mut meta = TiffMetadataReader::try_open(&cache)
            .await
            .map_err(tiff_err)?;
        let le = matches!(
            meta.endianness(),
            async_tiff::reader::Endianness::LittleEndian
        );
        let ifds = meta.read_all_ifds(&cache).await.map_err(tiff_err)?;
        let mut header = CogHeader::from_ifds(href, ifds, le)?;
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
            let _ = store.save(href, &entry);
        }
        Ok(Arc::new(header))
    }

    /// The decoded tiles of IFD `ifd` that the `width × height` window at
    /// `(col_off, row_off)` intersects (through the cache, like
    /// [`CogReader::read_window`]), each decoded down to the window's last
    /// row; `None` when the window misses the image. Sample them with
    /// [`TileWindow::sample`] without copying the window first.
    ///
    /// # Errors
    /// As [`CogReader::read_window`].
    pub async fn window_tiles(
        &self,
        href: &str,
        ifd: usize,
        col_off: usize,
        row_off: usize,
        width: usize,
        height: usize,
    ) -> Result<Option<TileWindow>> {
        if (width as u64).saturating_mul(height as u64) > MAX_WINDOW_PIXELS {
            return Err(Error::invalid(
                "window",
                format!("{width}×{height} px is over the 2^28 px limit"),
            ));
        }
        let header = self.header(href).await?;
        let bad = |m: String| Error::Cog {
            href: href.to_string(),
            message: m,
        };
        let info = header
            .ifds
            .get(ifd)
            .ok_or_else(|| bad(format!("no IFD {ifd} (file has {})", header.ifds.len())))?;
        // The window clipped to the image, in image pixels.
        let c0 = col_off.min(info.width);
        let c1 = col_off.saturating_add(width).min(info.width);
        let r0 = row_off.min(info.height);
        let r1 = row_off.saturating_add(height).min(info.height);
        if c0 >= c1 || r0 >= r1 {
            return Ok(None);
        }
        if info.tile_width == 0 || info.tile_height == 0 {
            return Err(bad(format!("IFD {ifd} is not tiled")));
        }
        if info.samples_per_pixel != 1 {
            return Err(bad(format!(
                "IFD {ifd} has {} samples per pixel; only 1 is supported",
                info.samples_per_pixel
            )));
        }
        let (tw, th) = (info.tile_width, info.tile_height);
        let (tx0, tx1) = (c0 / tw, (c1 - 1) / tw);
        let (ty0, ty1) = (r0 / th, (r1 - 1) / th);
        let xy: Vec<(usize, usize)> = (ty0..=ty1)
            .flat_map(|y| (tx0..=tx1).map(move |x| (x, y)))
            .collect();
        // Rows each tile must have decoded: down to the window's last row.
        let need: Vec<usize> = xy.iter().map(|&(_, y)| (r1 - y * th).min(th)).collect();
        let tiles = self.tiles(&header, ifd, &xy, &need).await?;
        Ok(Some(TileWindow {
            window: (col_off, row_off, width, height),
            width: info.width,
            height: info.height,
            tile_width: tw,
            tile_height: th,
            tx0,
            ty0,
            across: tx1 - tx0 + 1,
            down: ty1 - ty0 + 1,
            tiles,
        }))
    }

    /// The `width × height` window at `(col_off, row_off)` of IFD `ifd`
    /// (0 = full resolution) as `(rows, cols)` f32; pixels outside the image
    /// and nodata pixels are NaN. Only the intersecting tiles are fetched
    /// (through the cache); decoding runs on blocking threads.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a window over [`MAX_WINDOW_PIXELS`], an
    /// [`Error::Cog`] naming the href for a missing IFD, an unsupported layout
    /// or a tile that fails to decode, and [`Error::Http`] naming the URL and
    /// byte range for a failed fetch.
    pub async fn read_window(
        &self,
        href: &str,
        ifd: usize,
        col_off: usize,
        row_off: usize,
        width: usize,
        height: usize,
    ) -> Result<Array2<f32>> {
        let tiles = self
            .window_tiles(href, ifd, col_off, row_off, width, height)
            .await?;
        let mut out = Array2::from_elem((height, width), f32::NAN);
        let Some(tiles) = tiles else { return Ok(out) };
        let (tw, th) = (tiles.tile_width, tiles.tile_height);
        let c0 = col_off.min(tiles.width);
        let c1 = col_off.saturating_add(width).min(tiles.width);
        let r0 = row_off.min(tiles.height);
        let r1 = row_off.saturating_add(height).min(tiles.height);
        for (i, tile) in tiles.tiles.iter().enumerate() {
            let (x, y) = (tiles.tx0 + i % tiles.across, tiles.ty0 + i / tiles.across);
            // Intersection of this tile with the clipped window, image pixels.
            let (tx0, ty0) = (x * tw, y * th);
            let (ix0, ix1) = (c0.max(tx0), c1.min(tx0 + tw));
            let (iy0, iy1) = (r0.max(ty0), r1.min(ty0 + th));
            for row in iy0..iy1 {
                let mut dst = out.row_mut(row - row_off);
                if let Some(dst) = dst.as_slice_mut() {
                    let at = ix0 - col_off;
                    tile.copy_row(
                        row - ty0,
                        ix0 - tx0..ix1 - tx0,
                        &mut dst[at..at + (ix1 - ix0)],
                    );
                }
            }
        }
        Ok(out)
    }

    /// Decoded tiles `xy` of IFD `ifd`, in order, each with at least `need`
    /// rows: hits from the cache, waits for tiles others are fetching, and
    /// fetches the rest in one coalesced batch. A cached tile decoded less
    /// far down than needed is decoded again from its kept compressed bytes.
    async fn tiles(
        &self,
        header: &Arc<CogHeader>,
        ifd: usize,
        xy: &[(usize, usize)],
        need: &[usize],
    ) -> Result<Vec<TileData>> {
        let mut waits = Vec::with_capacity(xy.len());
        let mut claims = Vec::new();
        for (&(x, y), &rows) in xy.iter().zip(need) {
            let key = TileKey {
                href: header.href.clone(),
                ifd,
                x,
                y,
            };
            match self.cache.lookup(&key) {
                Lookup::Hit(t) => waits.push(futures::future::ready(Ok(t)).boxed().shared()),
                Lookup::Wait(f) => waits.push(f),
                Lookup::Lead(f, claim) => {
                    waits.push(f);
                    claims.push((x, y, rows, claim));
                }
            }
        }
        if !claims.is_empty() {
            // Spawned so that the fetch completes (and wakes other waiters)
            // even if this caller is cancelled.
            let job = fetch_tiles(self.clone(), header.clone(), ifd, claims);
            tokio::spawn(job);
        }
        let mut out = Vec::with_capacity(waits.len());
        for ((w, &(x, y)), &rows) in waits.into_iter().zip(xy).zip(need) {
            let tile = w.await.map_err(unshare)?;
            out.push(if tile.rows >= rows {
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
            return Err(Error::Cog {
                href: header.href.clone(),
                message: format!("tile ({x}, {y}) of IFD {ifd}: partial tile without its bytes"),
            });
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
            },
            &full,
        );
        Ok(full)
    }
}

/// A shared error, re-owned for one caller (the variants this module produces).
/// The decoded tiles under a window of one IFD, from
/// [`CogReader::window_tiles`]: sampled straight from the tiles, so that a
/// nearest-neighbour warp needs no intermediate window copy.
#[derive(Debug, Clone)]
pub struct TileWindow {
    /// The window asked for: column, row, width, height (image pixels).
    window: (usize, usize, usize, usize),
    width: usize,
    height: usize,
    tile_width: usize,
    tile_height: usize,
    tx0: usize,
    ty0: usize,
    across: usize,
    down: usize,
    tiles: Vec<TileData>,
}

impl TileWindow {
    /// The window warped onto `dst` by nearest neighbour within one CRS,
    /// sampled straight from the tiles; `window_transform` georeferences
    /// the window's top-left pixel. Bit-identical to
    /// [`crate::warp::warp`] of [`CogReader::read_window`]'s array, without
    /// that intermediate copy (pixels outside the window or the image: NaN).
    pub fn nearest(&self, window_transform: &GeoTransform, dst: &GridSpec) -> Array2<f32> {
        let (c0, r0, w, h) = self.window;
        let (rows, cols) = crate::warp::nearest_indices(window_transform, h, w, dst);
        let shift = |v: Vec<Option<usize>>, by: usize| -> Vec<Option<usize>> {
            v.into_iter().map(|i| i.map(|i| i + by)).collect()
        };
        // `sample` writes every value (NaN where nothing is read).
        let mut out = Array2::zeros((dst.height, dst.width));
        if let Some(o) = out.as_slice_mut() {
            self.sample(&shift(rows, r0), &shift(cols, c0), o);
        }
        out
    }

    /// Writes the image pixels `(rows[i], cols[j])` into `out[i * cols.len() + j]`
    /// as f32 (nodata → NaN). `None`, a pixel outside the image or outside
    /// the tiles this window holds, or a row not decoded, gives NaN.
    /// `out` must hold `rows.len() × cols.len()` values; extra rows are left.
    pub fn sample(&self, rows: &[Option<usize>], cols: &[Option<usize>], out: &mut [f32]) {
        let (tw, th) = (self.tile_width.max(1), self.tile_height.max(1));
        let x_end = (self.tx0 + self.across) * tw;
        let y_end = (self.ty0 + self.down) * th;
        // Columns as runs over one tile column each: (tile column, first
        // output column, the in-tile columns); `None` runs are NaN.
        let mut runs: Vec<(Option<usize>, usize, Vec<usize>)> = Vec::new();
        for (j, c) in cols.iter().enumerate() {
            let at = c
                .filter(|&c| c < self.width && c >= self.tx0 * tw && c < x_end)
                .map(|c| (c / tw - self.tx0, c % tw));
            let tile = at.map(|(t, _)| t);
            match runs.last_mut() {
                Some((t, _, cc)) if *t == tile => cc.extend(at.map(|(_, c)| c)),
                _ => runs.push((tile, j, at.map(|(_, c)| c).into_iter().collect())),
            }
        }
        // The first in-tile column of runs whose columns are consecutive.
        let consecutive: Vec<Option<usize>> = runs
            .iter()
            .map(|(_, _, cc)| {
                let c0 = *cc.first()?;
                cc.iter()
                    .enumerate()
                    .all(|(k, &c)| c == c0 + k)
                    .then_some(c0)
            })
            .collect();
        let n = cols.len();
        for (orow, r) in out.chunks_exact_mut(n.max(1)).zip(rows) {
            let r = r.filter(|&r| r < self.height && r >= self.ty0 * th && r < y_end);
            let Some(r) = r else {
                orow.fill(f32::NAN);
                continue;
            };
            let (ty, rr) = (r / th - self.ty0, r % th);
            for (k, ((tile, j, cc), step)) in runs.iter().zip(&consecutive).enumerate() {
                let end = runs.get(k + 1).map_or(n, |next| next.1);
                let dst = &mut orow[*j..end];
                match (
                    tile.and_then(|t| self.tiles.get(ty * self.across + t)),
                    step,
                ) {
                    // source pixels side by side (same resolution): a row copy
                    (Some(t), Some(c0)) => t.copy_row(rr, *c0..*c0 + cc.len(), dst),
                    (Some(t), None) => t.gather_row(rr, cc, dst),
                    (None, _) => dst.fill(f32::NAN),
                }
            }
        }
    }
}

fn unshare(e: Arc<Error>) -> Error {
    match &*e {
        Error::Http { url, message } => Error::Http {
            url: url.clone(),
            message: message.clone(),
        },
        Error::Cog { href, message } => Error::Cog {
            href: href.clone(),
            message: message.clone(),
        },
        other => Error::Cog {
            href: String::new(),
            message: other.to_string(),
        },
    }
}

/// Fetches the claimed tiles in one coalesced `get_ranges`, decodes each on a
/// blocking thread and completes its claim.
async fn fetch_tiles(
    reader: CogReader,
    header: Arc<CogHeader>,
    ifd: usize,
    claims: Vec<(usize, usize, usize, crate::fetch::Claim)>,
) {
    let href = header.href.clone();
    let info = &header.ifds[ifd];
    let ranges: Vec<Range<u64>> = claims
        .iter()
        .map(|(x, y, _, _)| info.tile_range(*x, *y).unwrap_or(0..0))
        .collect();
    let client = &reader.client;
    let fetched = client
        .get_ranges(
            &href,
            ranges.iter().filter(|r| r.end > r.start).cloned().collect(),
        )
        .await;
    // Tile offsets from a header of another version of the file would
    // decode garbage: fail these reads and read the header again next time.
    let fetched = match client.object_version(&href) {
        Some(now) if header.version.differs(&now) => {
            reader.forget_header(&href);
            Err(Error::Cog {
                href: href.clone(),
                message: format!(
                    "the file changed since its header was read (size {:?} -> {:?}, ETag {:?} -> {:?}); \
                     the header is read again on the next read",
                    header.version.size, now.size, header.version.etag, now.etag
                ),
            })
        }
        _ => fetched,
    };
    let mut fetched = match fetched {
        Ok(b) => b.into_iter(),
        Err(e) => {
            let e = Arc::new(e);
            for (_, _, _, claim) in claims {
                claim.complete(Err(e.clone()));
            }
            return;
        }
    };
    // Decode every tile of the batch at once (each on a blocking thread), so
    // a multi-tile window uses all cores rather than one tile after another.
    let jobs = claims
        .into_iter()
        .zip(ranges)
        .map(|((x, y, rows, claim), range)| {
            let bytes = if range.end > range.start {
                fetched.next()
            } else {
                None // a sparse tile: all nodata
            };
            let header = header.clone();
            async move {
                let result = decode_rows(header, ifd, x, y, range, bytes, rows).await;
                claim.complete(result.map_err(Arc::new));
            }
        });
    futures::future::join_all(jobs.collect::<Vec<_>>()).await;
}

/// Decodes tile `(x, y)` of IFD `ifd` from its compressed `bytes` (fetched
/// by any means: the reader's own fetch, a shard, a test) on a blocking
/// thread: the whole tile, nodata as NaN. What [`CogReader::read_window`]
/// does to every tile it fetches, without the fetch and the cache.
///
/// # Errors
/// [`Error::Cog`] naming the href, tile and byte range when the bytes do not
/// decode to the tile's size.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::{decode_tile, CogReader, TileCache};
/// use tilestack::fetch::{HttpRangeClient, RetryConfig};
/// let url = "http://127.0.0.1:8080/data/a/B04.tif";
/// let client = HttpRangeClient::new(RetryConfig::default())?;
/// let reader = CogReader::new(client.clone(), TileCache::new(1 << 30));
/// let h = reader.header(url).await?;
/// let range = h.ifds[0].tile_range(0, 0).expect("tile (0, 0)");
/// let tile = decode_tile(h.clone(), 0, 0, 0, client.get_range(url, range).await?).await?;
/// assert_eq!(tile.to_f32().len(), h.tile_width * h.tile_height);
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
pub async fn decode_tile(
    header: Arc<CogHeader>,
    ifd: usize,
    x: usize,
    y: usize,
    bytes: Bytes,
) -> Result<TileData> {
    if ifd >= header.ifds.len() {
        return Err(Error::Cog {
            href: header.href.clone(),
            message: format!("no IFD {ifd} (file has {})", header.ifds.len()),
        });
    }
    let range = header.ifds[ifd].tile_range(x, y).unwrap_or(0..0);
    decode_rows(header, ifd, x, y, range, Some(bytes), usize::MAX).await
}

async fn decode_rows(
    header: Arc<CogHeader>,
    ifd: usize,
    x: usize,
    y: usize,
    range: Range<u64>,
    bytes: Option<Bytes>,
    rows: usize,
) -> Result<TileData> {
    let info = &header.ifds[ifd];
    let (tw, th) = (info.tile_width, info.tile_height);
    let n = tw * th;
    let Some(bytes) = bytes else {
        return Ok(Arc::new(Tile::full(tw, th, vec![f32::NAN; n])));
    };
    let bad = |m: String| Error::Cog {
        href: header.href.clone(),
        message: format!("tile ({x}, {y}) of IFD {ifd} (bytes {range:?}): {m}"),
    };
    if let Some(fast) = FastDeflate::of(&header, ifd) {
        let nodata = header.nodata;
        let decoded = tokio::task::spawn_blocking(move || fast.decode(&bytes, nodata, rows))
            .await
            .map_err(|e| bad(format!("decoder task failed: {e}")))?
            .map_err(bad)?;
        return Ok(Arc::new(decoded));
    }
    let raw = &header.raw[ifd];
    if raw.planar_configuration() != PlanarConfiguration::Chunky && info.samples_per_pixel != 1 {
        return Err(bad("planar multi-sample tiles are not supported".into()));
    }
    let tile = raw
        .fetch_tile(
            x,
            y,
            &Fetched {
                range: range.clone(),
                bytes,
            },
        )
        .await
        .map_err(|e| bad(e.to_string()))?;
    let nodata = header.nodata;
    let decoded = tokio::task::spawn_blocking(move || -> std::result::Result<Vec<f32>, String> {
        let arr = tile
            .decode(&DecoderRegistry::default())
            .map_err(|e| e.to_string())?;
        let (data, _, _) = arr.into_inner();
        let mut v = to_f32(data)?;
        if let Some(nd) = nodata {
            let nd32 = nd as f32;
            for p in &mut v {
                if *p == nd32 || (nd.is_nan() && p.is_nan()) {
                    *p = f32::NAN;
                }
            }
        }
        Ok(v)
    })
    .await
    .map_err(|e| bad(format!("decoder task failed: {e}")))?
    .map_err(bad)?;
    if decoded.len() != n {
        return Err(bad(format!(
            "decoded {} values, expected {n}",
            decoded.len()
        )));
    }
    Ok(Arc::new(Tile::full(tw, th, decoded)))
}

/// The common COG case decoded without async-tiff's generic path:
/// little-endian, one 8/16-bit unsigned sample, DEFLATE, predictor 1 or 2.
/// libdeflate inflates straight into a buffer of the known tile size (about
/// twice zlib's speed, and allocation-free beyond that buffer); the predictor
/// is undone in place and the samples become f32 in one pass.
#[derive(Debug, Clone, Copy)]
struct FastDeflate {
    width: usize,
    height: usize,
    bytes_per_sample: usize,
    predictor: bool,
}

impl FastDeflate {
    fn of(header: &CogHeader, ifd: usize) -> Option<Self> {
        let info = header.ifds.get(ifd)?;
        let bytes_per_sample = match info.sample_type? {
            SampleType::U8 => 1,
            SampleType::U16 => 2,
            _ => return None,
        };
        let ok = header.little_endian
            && info.samples_per_pixel == 1
            && matches!(info.compression, 8 | 32946)
            && matches!(info.predictor, 1 | 2);
        ok.then_some(FastDeflate {
            width: info.tile_width,
            height: info.tile_height,
            bytes_per_sample,
            predictor: info.predictor == 2,
        })
    }

    /// Inflates the top `rows` rows (all of them when `rows >= height`).
    ///
    /// A partial inflate gives libdeflate an output buffer [`PARTIAL_SLACK`]
    /// bytes longer than the rows needed and stops at its "insufficient
    /// space" answer. libdeflate writes every element of the stream whole
    /// (a literal, a match of at most 258 bytes, a stored block of at most
    /// 65,535 bytes) or returns before writing it, so everything before the
    /// last `PARTIAL_SLACK` bytes of the buffer is the exact prefix of the
    /// tile (checked against whole-tile inflates in the tests).
    fn decode(
        &self,
        compressed: &Bytes,
        nodata: Option<f64>,
        rows: usize,
    ) -> std::result::Result<Tile, String> {
        let row_bytes = self.width * self.bytes_per_sample;
        let full = row_bytes * self.height;
        let avail = rows.saturating_mul(row_bytes).saturating_add(PARTIAL_SLACK);
        let mut inflater = libdeflater::Decompressor::new();
        // Zeroed by the allocator (fresh pages): not filled twice.
        let (mut raw, rows) = if avail >= full {
            let mut raw = vec![0u8; full];
            let got = inflater
                .zlib_decompress(compressed, &mut raw)
                .map_err(|e| format!("inflate: {e}"))?;
            if got != full {
                return Err(format!("inflated {got} bytes, expected {full}"));
            }
            (raw, self.height)
        } else {
            let mut raw = vec![0u8; avail];
            match inflater.zlib_decompress(compressed, &mut raw) {
                Err(libdeflater::DecompressionError::InsufficientSpace) => {}
                Ok(got) => return Err(format!("inflated {got} bytes, expected {full}")),
                Err(e) => return Err(format!("inflate: {e}")),
            }
            raw.truncate(rows * row_bytes);
            (raw, rows)
        };
        // Horizontal differencing undone in place: the inflated buffer is
        // the tile (no second buffer, no f32 until a window copies pixels).
        if self.predictor {
            for row in raw.chunks_exact_mut(row_bytes) {
                if self.bytes_per_sample == 1 {
                    let mut acc = 0u8;
                    for b in row.iter_mut() {
                        acc = acc.wrapping_add(*b);
                        *b = acc;
                    }
                } else {
                    let mut acc = 0u16;
                    for p in row.chunks_exact_mut(2) {
                        acc = acc.wrapping_add(u16::from_le_bytes([p[0], p[1]]));
                        p.copy_from_slice(&acc.to_le_bytes());
                    }
                }
            }
        }
        // A nodata no sample can take (negative, fractional, too large, NaN)
        // applies to no pixel.
        let nd = nodata.filter(|v| v.fract() == 0.0 && *v >= 0.0);
        let samples = if self.bytes_per_sample == 1 {
            Samples::U8 {
                values: raw,
                nodata: nd.filter(|v| *v <= f64::from(u8::MAX)).map(|v| v as u8),
            }
        } else {
            Samples::U16 {
                le_bytes: raw,
                nodata: nd.filter(|v| *v <= f64::from(u16::MAX)).map(|v| v as u16),
            }
        };
        Ok(Tile {
            width: self.width,
            height: self.height,
            rows,
            samples,
            compressed: (rows < self.height).then(|| Bytes::copy_from_slice(compressed)),
        })
    }
}

fn to_f32(data: TypedArray) -> std::result::Result<Vec<f32>, String> {
    Ok(match data {
        TypedArray::UInt8(v) => v.into_iter().map(f32::from).collect(),
        TypedArray::UInt16(v) => v.into_iter().map(f32::from).collect(),
        TypedArray::Int8(v) => v.into_iter().map(f32::from).collect(),
        TypedArray::Int16(v) => v.into_iter().map(f32::from).collect(),
        TypedArray::UInt32(v) => v.into_iter().map(|x| x as f32).collect(),
        TypedArray::Int32(v) => v.into_iter().map(|x| x as f32).collect(),
        TypedArray::UInt64(v) => v.into_iter().map(|x| x as f32).collect(),
        TypedArray::Int64(v) => v.into_iter().map(|x| x as f32).collect(),
        TypedArray::Float32(v) => v,
        TypedArray::Float64(v) => v.into_iter().map(|x| x as f32).collect(),
        TypedArray::Bool(v) => v.into_iter().map(|b| if b { 1.0 } else { 0.0 }).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A 512×512 u16 tile of smooth-plus-noise values, predictor-2 encoded
    /// and zlib-compressed at `level` (0 = stored blocks only).
    fn tile(level: u32) -> (FastDeflate, Vec<u16>, Bytes) {
        let (w, h) = (512usize, 512usize);
        let mut state = 12345u32;
        let values: Vec<u16> = (0..w * h)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((i % w) as u16 * 3 + (i / w) as u16).wrapping_add((state >> 28) as u16)
            })
            .collect();
        let mut raw = Vec::with_capacity(w * h * 2);
        for row in values.chunks_exact(w) {
            let mut prev = 0u16;
            for &v in row {
                raw.extend_from_slice(&v.wrapping_sub(prev).to_le_bytes());
                prev = v;
            }
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        z.write_all(&raw).unwrap();
        let fast = FastDeflate {
            width: w,
            height: h,
            bytes_per_sample: 2,
            predictor: true,
        };
        (fast, values, Bytes::from(z.finish().unwrap()))
    }

    #[test]
    fn partial_inflate_is_an_exact_prefix() {
        for level in [0, 1, 6, 9] {
            let (fast, values, z) = tile(level);
            let whole = fast.decode(&z, None, usize::MAX).unwrap();
            assert_eq!(whole.rows, 512);
            assert!(whole.compressed.is_none());
            let want: Vec<f32> = values.iter().map(|&v| f32::from(v)).collect();
            assert_eq!(whole.to_f32(), want, "level {level}");
            let mut partial_seen = false;
            for rows in (0..=512).step_by(7).chain([1, 2, 511]) {
                let t = fast.decode(&z, None, rows).unwrap();
                assert!(t.rows >= rows.min(512), "level {level} rows {rows}");
                assert_eq!(t.to_f32().len(), t.rows * 512);
                assert_eq!(
                    t.to_f32()[..],
                    want[..t.rows * 512],
                    "level {level} rows {rows}"
                );
                assert_eq!(t.compressed.is_some(), t.rows < 512);
                partial_seen |= t.rows < 512;
            }
            assert!(partial_seen, "level {level}: no partial inflate exercised");
        }
    }

    #[test]
    fn nodata_becomes_nan_and_nothing_else_does() {
        let (fast, values, z) = tile(6);
        let nd = values[5];
        let t = fast.decode(&z, Some(f64::from(nd)), usize::MAX).unwrap();
        assert!(values.iter().filter(|&&v| v == nd).count() > 1);
        for (got, &v) in t.to_f32().iter().zip(&values) {
            assert_eq!(got.is_nan(), v == nd);
        }
        // a nodata no sample can take (negative, fractional, NaN) changes nothing
        for nd in [-9999.0, 0.5, 70_000.0, f64::NAN] {
            let t = fast.decode(&z, Some(nd), usize::MAX).unwrap();
            assert!(t.to_f32().iter().all(|v| v.is_finite()), "nodata {nd}");
        }
    }

    #[test]
    fn a_short_or_corrupt_stream_is_an_error_not_a_partial_tile() {
        let (fast, _, z) = tile(6);
        // cut in the first rows: even a partial inflate must fail
        let cut = z.slice(..200);
        assert!(fast.decode(&cut, None, 10).is_err());
        assert!(fast.decode(&cut, None, usize::MAX).is_err());
        let mut bad = z.to_vec();
        bad[2] ^= 0xff; // first deflate block header
        assert!(fast.decode(&Bytes::from(bad), None, usize::MAX).is_err());
    }
}
