//! Tile decode, sync and on blocking threads: a fast path for the common
//! COG (little-endian 8/16-bit DEFLATE, predictor 1/2: libdeflate straight
//! into native samples, stopping at the rows a window needs) and async-tiff's
//! decoders for everything else.

use std::ops::Range;
use std::sync::Arc;

use async_tiff::ImageFileDirectory;
use async_tiff::decoder::DecoderRegistry;
use async_tiff::tags::{Compression, PhotometricInterpretation};
use bytes::Bytes;

use crate::cog::header::{CogHeader, SampleType, compression_name};
use crate::cog::tile::{Samples, Tile, TileData};
use crate::cog::{jpeg, lerc};
use crate::error::{Cause, Error, Result};

/// A tile (or strip) that did not decode: which file, IFD, tile and bytes,
/// which codec, and why ([`DecodeErrorKind`]). The decoder's own error, where
/// there is one, is its [`source`](std::error::Error::source). It reaches
/// callers as the source of an [`Error::Cog`] naming the same file and tile.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::{CogReader, HttpRangeClient, cog::DecodeError, cog::TileCache, fetch::RetryConfig};
/// use tilestack::geo::PixelWindow;
/// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30));
/// let href = "file:///data/corrupt.tif";
/// let e = reader.read_window(href, 0, PixelWindow::new(0, 0, 64, 64)).await.unwrap_err();
/// if let Some(d) = std::error::Error::source(&e)
///     .and_then(|s| s.downcast_ref::<tilestack::error::Cause>())
///     .and_then(|c| c.get().downcast_ref::<DecodeError>())
/// {
///     println!("{} tile ({}, {}) of IFD {}: {}", d.codec, d.x, d.y, d.ifd, d.kind);
/// }
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct DecodeError {
    /// The file's URL.
    pub href: String,
    /// The codec's name (`DEFLATE`, `LZW`, `JPEG`, ...; see
    /// [`IfdInfo::compression_name`](crate::cog::IfdInfo::compression_name)).
    pub codec: &'static str,
    /// The IFD (0 = full resolution).
    pub ifd: usize,
    /// The tile's (or strip's) column.
    pub x: usize,
    /// The tile's (or strip's) row.
    pub y: usize,
    /// The tile's compressed bytes in the file.
    pub bytes: Range<u64>,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

/// Why a tile did not decode.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// No decoder for the file's compression in this build (WebP is the
    /// `webp` feature).
    UnsupportedCompression {
        /// The TIFF compression code.
        code: u16,
    },
    /// A sample layout the decoders do not read (a sample format, a
    /// predictor, a bit depth).
    Unsupported(String),
    /// The codec refused the bytes: its error is the source.
    Codec(Cause),
    /// The codec panicked on the bytes (contained; corrupt data).
    Panicked(String),
    /// The codec returned fewer bytes than the tile holds.
    Short {
        /// Bytes decoded.
        decoded: usize,
        /// Bytes the tile needs.
        expected: usize,
    },
}

impl std::fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeErrorKind::UnsupportedCompression { code } => {
                let optional = |on: bool, name: &str| {
                    if on {
                        format!(", {name}")
                    } else {
                        format!("; {name} with the `{}` feature", name.to_lowercase())
                    }
                };
                write!(
                    f,
                    "compression {} ({code}) is not supported (tilestack decodes none, DEFLATE, \
                     LZW, JPEG, ZSTD, LZMA, PackBits, LERC{})",
                    compression_name(*code),
                    optional(cfg!(feature = "webp"), "WebP"),
                )
            }
            DecodeErrorKind::Unsupported(what) => write!(f, "{what} is not supported"),
            DecodeErrorKind::Codec(_) => f.write_str("the decoder failed"),
            DecodeErrorKind::Panicked(why) => {
                write!(
                    f,
                    "the decoder panicked inside async-tiff (corrupt data): {why}"
                )
            }
            DecodeErrorKind::Short { decoded, expected } => {
                write!(f, "decoded {decoded} bytes, expected {expected}")
            }
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            // the message names the codec already
            DecodeErrorKind::UnsupportedCompression { .. } => write!(f, "{}", self.kind),
            // the decoder's own error follows, as the source
            DecodeErrorKind::Codec(_) => write!(f, "{} decode failed", self.codec),
            kind => write!(f, "{} decode: {kind}", self.codec),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            DecodeErrorKind::Codec(c) => Some(c),
            _ => None,
        }
    }
}

impl DecodeError {
    /// The [`Error::Cog`] for this failure: its message names the tile and
    /// bytes, its source is this error.
    fn into_error(self) -> Error {
        let message = format!(
            "tile ({}, {}) of IFD {} (bytes {:?})",
            self.x, self.y, self.ifd, self.bytes
        );
        Error::cog_because(self.href.clone(), message, self)
    }
}

/// Extra output room of a partial inflate: more than the longest element
/// libdeflate writes at once (a 65,535-byte stored block).
const PARTIAL_SLACK: usize = 66 * 1024;

/// Decodes tile `(x, y)` of IFD `ifd` from its compressed `bytes` (fetched
/// by any means: the reader's own fetch, a shard, a test) on a blocking
/// thread: the whole tile, nodata as NaN. What [`CogReader::read_window`](crate::cog::CogReader::read_window)
/// does to every tile it fetches, without the fetch and the cache.
///
/// # Errors
/// [`Error::Cog`] naming the href, tile and byte range when the bytes do not
/// decode to the tile's size, with a [`DecodeError`] (the codec, the tile,
/// the decoder's own error) as its source.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::{TileCache, decode_tile};
/// use tilestack::fetch::RetryConfig;
/// use tilestack::{CogReader, HttpRangeClient};
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
        return Err(Error::cog(
            &header.href,
            format!("no IFD {ifd} (file has {})", header.ifds.len()),
        ));
    }
    let range = header.ifds[ifd].tile_range(x, y).unwrap_or(0..0);
    decode_rows(header, ifd, x, y, range, Some(bytes), usize::MAX).await
}

pub(super) async fn decode_rows(
    header: Arc<CogHeader>,
    ifd: usize,
    x: usize,
    y: usize,
    range: Range<u64>,
    bytes: Option<Bytes>,
    rows: usize,
) -> Result<TileData> {
    let mut tiles = decode_bands(header.clone(), ifd, x, y, range, bytes, rows, &[0]).await?;
    tiles
        .pop()
        .ok_or_else(|| Error::cog(&header.href, "no band decoded"))
}

/// Decodes the chunk (tile or strip) `(x, y)` of IFD `ifd` from its
/// compressed `bytes` and returns one tile per entry of `bands` (0-based;
/// for a planar file the chunk holds exactly one band, and `bands` names it).
/// `bytes` `None` is a sparse chunk (offset and byte count 0): GDAL reads it
/// as nodata when there is one (NaN here), else 0.
#[allow(clippy::too_many_arguments)]
pub(super) async fn decode_bands(
    header: Arc<CogHeader>,
    ifd: usize,
    x: usize,
    y: usize,
    range: Range<u64>,
    bytes: Option<Bytes>,
    rows: usize,
    bands: &[usize],
) -> Result<Vec<TileData>> {
    let info = header
        .ifds
        .get(ifd)
        .ok_or_else(|| Error::cog(&header.href, format!("no IFD {ifd}")))?;
    let (tw, th) = (info.tile_width, info.tile_height);
    let n = tw * th;
    // A mask IFD's samples are validity flags (0 = invalid), never nodata.
    let nodata = if info.is_mask() { None } else { header.nodata };
    let Some(bytes) = bytes else {
        // GDAL's sparse blocks: nodata when the file has one, else 0.
        let fill = if nodata.is_some() { f32::NAN } else { 0.0 };
        let tile = Arc::new(Tile::full(tw, th, vec![fill; n]));
        return Ok(bands.iter().map(|_| tile.clone()).collect());
    };
    let what = format!("tile ({x}, {y}) of IFD {ifd} (bytes {range:?})");
    let task_failed = |e: tokio::task::JoinError| {
        Error::cog_because(&header.href, format!("{what}: decoder task failed"), e)
    };
    let bad = |kind: DecodeErrorKind| {
        DecodeError {
            href: header.href.clone(),
            codec: info.compression_name(),
            ifd,
            x,
            y,
            bytes: range.clone(),
            kind,
        }
        .into_error()
    };
    if let (Some(fast), [0]) = (FastDeflate::of(&header, ifd), bands) {
        let decoded = tokio::task::spawn_blocking(move || fast.decode(&bytes, nodata, rows))
            .await
            .map_err(task_failed)?
            .map_err(bad)?;
        return Ok(vec![Arc::new(decoded)]);
    }
    let chunk = Chunk::of(&header, ifd, y).map_err(bad)?;
    let bands = bands.to_vec();
    let header2 = header.clone();
    let decoded =
        tokio::task::spawn_blocking(move || -> std::result::Result<_, DecodeErrorKind> {
            let raw = &header2.raw[ifd];
            let values = chunk.decode(raw, bytes)?;
            Ok(chunk.split(&values, &bands, nodata))
        })
        .await
        .map_err(task_failed)?
        .map_err(bad)?;
    Ok(decoded.into_iter().map(Arc::new).collect())
}

/// async-tiff's decoders plus PackBits, which async-tiff 0.4 lacks, and an
/// LZW decoder that returns an error where async-tiff's panics.
fn registry() -> &'static DecoderRegistry {
    static R: std::sync::OnceLock<DecoderRegistry> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        let mut r = DecoderRegistry::default();
        r.as_mut()
            .insert(Compression::PackBits, Box::new(PackBitsDecoder));
        r.as_mut().insert(Compression::LZW, Box::new(LzwDecoder));
        r
    })
}

/// TIFF's LZW (compression 5): MSB-first codes with the early size switch,
/// as libtiff writes them; corrupt data is an error.
#[derive(Debug)]
struct LzwDecoder;

impl async_tiff::decoder::Decoder for LzwDecoder {
    fn decode_tile(
        &self,
        buffer: Bytes,
        _: PhotometricInterpretation,
        _: Option<&[u8]>,
        _: u16,
        _: u16,
        _: Option<&[u32]>,
    ) -> async_tiff::error::AsyncTiffResult<Vec<u8>> {
        weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .decode(&buffer)
            .map_err(|e| async_tiff::error::AsyncTiffError::External(Box::new(e)))
    }
}

/// Apple's PackBits run-length coding (TIFF compression 32773).
#[derive(Debug)]
struct PackBitsDecoder;

impl async_tiff::decoder::Decoder for PackBitsDecoder {
    fn decode_tile(
        &self,
        buffer: Bytes,
        _: PhotometricInterpretation,
        _: Option<&[u8]>,
        _: u16,
        _: u16,
        _: Option<&[u32]>,
    ) -> async_tiff::error::AsyncTiffResult<Vec<u8>> {
        Ok(unpack_bits(&buffer))
    }
}

/// PackBits: a header byte `n` then `n + 1` literal bytes (0..=127), or one
/// byte repeated `1 - n` times (-127..=-1); -128 is a no-op. A truncated
/// run ends the output early (the size check after decoding catches it).
fn unpack_bits(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut i = 0;
    while i < src.len() {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let end = (i + n as usize + 1).min(src.len());
            out.extend_from_slice(&src[i..end]);
            i = end;
        } else if n != -128 {
            if let Some(&b) = src.get(i) {
                out.extend(std::iter::repeat_n(b, 1 + n.unsigned_abs() as usize));
            }
            i += 1;
        }
    }
    out
}

/// How one chunk (tile or strip) of an IFD decodes: everything the generic
/// path needs, copied out of the header so it can move to a blocking thread.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    width: usize,
    height: usize,
    /// Rows actually stored (the last strip may be short).
    rows: usize,
    /// Samples per pixel in this chunk (1 for a planar file's band chunk).
    samples: usize,
    sample_type: SampleType,
    /// Bits per sample as stored: 8, 16, 32, 64, or packed (1–31, MSB first).
    bits: usize,
    bytes_per_sample: usize,
    predictor: u16,
    little_endian: bool,
    /// JPEG tiles of a pixel-interleaved YCbCr image: converted to RGB, as
    /// libtiff's `JPEGCOLORMODE_RGB` (GDAL's read) converts them.
    ycbcr: bool,
    /// 8-bit CMYK read as RGBA ([`IfdInfo::cmyk_as_rgba`](crate::cog::IfdInfo::cmyk_as_rgba)).
    cmyk_as_rgba: bool,
}

impl Chunk {
    fn of(header: &CogHeader, ifd: usize, y: usize) -> std::result::Result<Self, DecodeErrorKind> {
        let info = &header.ifds[ifd];
        let sample_type = info.sample_type.ok_or_else(|| {
            DecodeErrorKind::Unsupported(format!(
                "{}-bit samples of this sample format",
                info.bits_per_sample
            ))
        })?;
        let rows = if info.striped {
            info.tile_height
                .min(info.height.saturating_sub(y * info.tile_height))
        } else {
            info.tile_height
        };
        let cmyk_as_rgba = info.cmyk_as_rgba();
        if cmyk_as_rgba && info.planar {
            return Err(DecodeErrorKind::Unsupported(
                "band-interleaved 8-bit CMYK (GDAL reads it as RGBA)".into(),
            ));
        }
        Ok(Chunk {
            width: info.tile_width,
            height: info.tile_height,
            rows,
            samples: if info.planar { 1 } else { info.bands() },
            sample_type,
            bits: usize::from(info.bits_per_sample),
            bytes_per_sample: usize::from(info.bits_per_sample / 8),
            predictor: info.predictor,
            little_endian: header.little_endian,
            ycbcr: info.photometric == 6 && !info.planar,
            cmyk_as_rgba,
        })
    }

    /// Decompresses, undoes the predictor and returns the chunk's samples
    /// (`rows × width × samples`, pixel-interleaved) as f32.
    fn decode(
        &self,
        raw: &ImageFileDirectory,
        bytes: Bytes,
    ) -> std::result::Result<Vec<f32>, DecodeErrorKind> {
        let comp = raw.compression();
        let code = comp.to_u16();
        if code == lerc::COMPRESSION {
            return lerc::decode_chunk(
                &bytes,
                raw.lerc_parameters(),
                self.width,
                self.rows,
                self.samples,
                self.sample_type,
            )
            .map_err(|e| DecodeErrorKind::Codec(Cause::new(e)));
        }
        // JPEG as GDAL's libjpeg decodes it; a JPEG process it does not
        // cover (progressive, 12-bit…) goes to async-tiff's decoder.
        let own_jpeg = if code == 7 && self.bits == 8 {
            jpeg::decode(
                raw.jpeg_tables(),
                &bytes,
                (self.width, self.rows, self.height),
                self.samples,
                self.ycbcr,
            )
            .map_err(|e| DecodeErrorKind::Codec(Cause::new(e)))?
        } else {
            None
        };
        let mut buf = match own_jpeg {
            Some(buf) => buf,
            None => {
                let decoder = registry()
                    .as_ref()
                    .get(&comp)
                    .ok_or(DecodeErrorKind::UnsupportedCompression { code })?;
                // async-tiff's decoders panic on some corrupt input (LZW's
                // `expect`, JPEG tables shorter than a marker): a panic is
                // this tile's error, naming the codec.
                let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    decoder.decode_tile(
                        bytes,
                        raw.photometric_interpretation(),
                        raw.jpeg_tables(),
                        self.samples as u16,
                        self.bits as u16,
                        raw.lerc_parameters(),
                    )
                }))
                .map_err(|p| DecodeErrorKind::Panicked(crate::runtime::panic_text(&*p)))?;
                decoded.map_err(|e| DecodeErrorKind::Codec(Cause::new(e)))?
            }
        };
        let row_samples = self.width * self.samples;
        if !matches!(self.bits, 8 | 16 | 32 | 64) {
            // Packed samples (GDAL's NBITS): each row starts on a byte.
            if self.predictor != 1 {
                return Err(DecodeErrorKind::Unsupported(format!(
                    "predictor {} on {}-bit samples",
                    self.predictor, self.bits
                )));
            }
            return unpack_samples(&buf, self.rows, row_samples, self.bits);
        }
        let want = self.rows * row_samples * self.bytes_per_sample;
        if buf.len() < want {
            return Err(DecodeErrorKind::Short {
                decoded: buf.len(),
                expected: want,
            });
        }
        buf.truncate(want);
        let mut le = self.little_endian;
        match self.predictor {
            1 => {}
            2 => undo_hdiff(
                &mut buf,
                row_samples,
                self.samples,
                self.bytes_per_sample,
                le,
            ),
            3 => {
                undo_float_predictor(&mut buf, row_samples, self.samples, self.bytes_per_sample);
                le = true;
            }
            p => return Err(DecodeErrorKind::Unsupported(format!("predictor {p}"))),
        }
        if self.cmyk_as_rgba {
            return Ok(cmyk_to_rgba(&buf));
        }
        Ok(samples_to_f32(&buf, self.sample_type, le))
    }

    /// The tiles of `bands` out of the chunk's interleaved samples, nodata
    /// as NaN; each `height` rows tall with the stored rows decoded.
    fn split(&self, values: &[f32], bands: &[usize], nodata: Option<f64>) -> Vec<Tile> {
        let nd = nodata.map(|v| v as f32);
        bands
            .iter()
            .map(|&b| {
                let b = if self.samples == 1 { 0 } else { b };
                let mut v: Vec<f32> = values
                    .iter()
                    .skip(b)
                    .step_by(self.samples)
                    .map(|&p| match nd {
                        Some(nd) if p == nd || (nd.is_nan() && p.is_nan()) => f32::NAN,
                        _ => p,
                    })
                    .collect();
                v.truncate(self.rows * self.width);
                Tile {
                    width: self.width,
                    height: self.height,
                    rows: self.rows,
                    samples: Samples::F32(v),
                    compressed: None,
                }
            })
            .collect()
    }
}

/// 8-bit CMYK pixels as GDAL reads them, through libtiff's RGBA interface:
/// each ink is a byte (a signed sample's two's complement), R =
/// (255 − K)·(255 − C) / 255 in integers (G with M, B with Y), alpha 255.
fn cmyk_to_rgba(buf: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(buf.len());
    for px in buf.chunks_exact(4) {
        let k = 255 - u32::from(px[3]);
        for &ink in &px[..3] {
            out.push((k * (255 - u32::from(ink)) / 255) as f32);
        }
        out.push(255.0);
    }
    out
}

/// Packed unsigned samples of `bits` bits (1 to 31; TIFF packs them most
/// significant bit first, whatever the byte order, each row starting on a
/// byte boundary) as f32: `rows × row_samples` values.
fn unpack_samples(
    buf: &[u8],
    rows: usize,
    row_samples: usize,
    bits: usize,
) -> std::result::Result<Vec<f32>, DecodeErrorKind> {
    if !(1..32).contains(&bits) {
        return Err(DecodeErrorKind::Unsupported(format!("{bits}-bit samples")));
    }
    let row_bytes = (row_samples * bits).div_ceil(8);
    let want = rows * row_bytes;
    if buf.len() < want {
        return Err(DecodeErrorKind::Short {
            decoded: buf.len(),
            expected: want,
        });
    }
    let mut out = Vec::with_capacity(rows * row_samples);
    for row in buf[..want].chunks_exact(row_bytes) {
        let (mut acc, mut have, mut bytes) = (0u64, 0usize, row.iter());
        for _ in 0..row_samples {
            while have < bits {
                acc = (acc << 8) | u64::from(*bytes.next().unwrap_or(&0));
                have += 8;
            }
            have -= bits;
            out.push(((acc >> have) & ((1u64 << bits) - 1)) as f32);
        }
    }
    Ok(out)
}

/// An IEEE 754 half-precision float's bits as f32 (exact: every f16 is an f32).
fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match (exp, man) {
        // zero and subnormals: man · 2^-24
        (0, m) => {
            let v = m as f32 * f32::powi(2.0, -24);
            if negative { -v } else { v }
        }
        (31, 0) => f32::from_bits(sign | 0x7f80_0000),
        (31, m) => f32::from_bits(sign | 0x7fc0_0000 | (m << 13)),
        (e, m) => f32::from_bits(sign | ((e + 127 - 15) << 23) | (m << 13)),
    }
}

fn read_uint(b: &[u8], le: bool) -> u64 {
    let mut v = 0u64;
    if le {
        for &x in b.iter().rev() {
            v = (v << 8) | u64::from(x);
        }
    } else {
        for &x in b {
            v = (v << 8) | u64::from(x);
        }
    }
    v
}

fn write_uint(b: &mut [u8], mut v: u64, le: bool) {
    let n = b.len();
    for i in 0..n {
        let at = if le { i } else { n - 1 - i };
        b[at] = v as u8;
        v >>= 8;
    }
}

/// Predictor 2: each sample is stored as the difference from the sample
/// `stride` before it in the row (wrapping, in the sample's own width).
fn undo_hdiff(buf: &mut [u8], row_samples: usize, stride: usize, bytes: usize, le: bool) {
    if bytes == 1 {
        for row in buf.chunks_exact_mut(row_samples) {
            for i in stride..row.len() {
                row[i] = row[i].wrapping_add(row[i - stride]);
            }
        }
        return;
    }
    let mask = if bytes >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * bytes)) - 1
    };
    for row in buf.chunks_exact_mut(row_samples * bytes) {
        for i in stride..row_samples {
            let prev = read_uint(&row[(i - stride) * bytes..(i - stride + 1) * bytes], le);
            let cur = &mut row[i * bytes..(i + 1) * bytes];
            let v = read_uint(cur, le).wrapping_add(prev) & mask;
            write_uint(cur, v, le);
        }
    }
}

/// Predictor 3 (TIFF Technical Note 3, as libtiff writes it): each row's
/// bytes are differenced with a stride of the samples per pixel, after the
/// samples were split into byte planes, most significant first. Leaves the
/// samples little-endian, whatever the file's byte order.
fn undo_float_predictor(buf: &mut [u8], row_samples: usize, stride: usize, bytes: usize) {
    let mut tmp = vec![0u8; row_samples * bytes];
    for row in buf.chunks_exact_mut(row_samples * bytes) {
        for i in stride..row.len() {
            row[i] = row[i].wrapping_add(row[i - stride]);
        }
        tmp.copy_from_slice(row);
        for s in 0..row_samples {
            for k in 0..bytes {
                // plane k holds byte k counted from the most significant
                row[s * bytes + (bytes - 1 - k)] = tmp[k * row_samples + s];
            }
        }
    }
}

fn samples_to_f32(buf: &[u8], t: SampleType, le: bool) -> Vec<f32> {
    macro_rules! conv {
        ($ty:ty, $n:expr) => {
            buf.chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    let v = if le {
                        <$ty>::from_le_bytes(a)
                    } else {
                        <$ty>::from_be_bytes(a)
                    };
                    v as f32
                })
                .collect()
        };
    }
    match t {
        SampleType::U8 => buf.iter().map(|&b| f32::from(b)).collect(),
        SampleType::I8 => buf.iter().map(|&b| f32::from(b as i8)).collect(),
        SampleType::U16 => conv!(u16, 2),
        SampleType::I16 => conv!(i16, 2),
        SampleType::U32 => conv!(u32, 4),
        SampleType::I32 => conv!(i32, 4),
        SampleType::U64 => conv!(u64, 8),
        SampleType::I64 => conv!(i64, 8),
        SampleType::F16 => buf
            .chunks_exact(2)
            .map(|c| {
                let a = [c[0], c[1]];
                f16_to_f32(if le {
                    u16::from_le_bytes(a)
                } else {
                    u16::from_be_bytes(a)
                })
            })
            .collect(),
        SampleType::F32 => conv!(f32, 4),
        SampleType::F64 => conv!(f64, 8),
    }
}

/// The common COG case decoded without async-tiff's generic path:
/// little-endian, one 8/16-bit unsigned sample, DEFLATE, predictor 1 or 2.
/// libdeflate inflates straight into a buffer of the known tile size (about
/// twice zlib's speed, and allocation-free beyond that buffer); the predictor
/// is undone in place and the samples become f32 in one pass.
#[derive(Debug, Clone, Copy)]
pub(super) struct FastDeflate {
    width: usize,
    height: usize,
    bytes_per_sample: usize,
    predictor: bool,
}

impl FastDeflate {
    pub(super) fn of(header: &CogHeader, ifd: usize) -> Option<Self> {
        let info = header.ifds.get(ifd)?;
        let bytes_per_sample = match info.sample_type? {
            SampleType::U8 => 1,
            SampleType::U16 => 2,
            _ => return None,
        };
        let ok = header.little_endian
            && usize::from(info.bits_per_sample) == 8 * bytes_per_sample
            // a strip file's last strip is short: the generic path knows
            && !info.striped
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
    ) -> std::result::Result<Tile, DecodeErrorKind> {
        let row_bytes = self.width * self.bytes_per_sample;
        let full = row_bytes * self.height;
        let avail = rows.saturating_mul(row_bytes).saturating_add(PARTIAL_SLACK);
        let mut inflater = libdeflater::Decompressor::new();
        // Zeroed by the allocator (fresh pages): not filled twice.
        let (mut raw, rows) = if avail >= full {
            let mut raw = vec![0u8; full];
            let got = inflater
                .zlib_decompress(compressed, &mut raw)
                .map_err(|e| DecodeErrorKind::Codec(Cause::new(e)))?;
            if got != full {
                return Err(DecodeErrorKind::Short {
                    decoded: got,
                    expected: full,
                });
            }
            (raw, self.height)
        } else {
            let mut raw = vec![0u8; avail];
            match inflater.zlib_decompress(compressed, &mut raw) {
                Err(libdeflater::DecompressionError::InsufficientSpace) => {}
                Ok(got) => {
                    return Err(DecodeErrorKind::Short {
                        decoded: got,
                        expected: full,
                    });
                }
                Err(e) => return Err(DecodeErrorKind::Codec(Cause::new(e))),
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

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
    fn packed_samples_unpack_msb_first_rows_on_byte_boundaries() {
        // 12-bit rows of one sample: 0xABC | 0x123, each row padded to a
        // byte boundary (row 2 starts on a new byte)
        let rows = [0xAB, 0xC0, 0x12, 0x30];
        assert_eq!(
            unpack_samples(&rows, 2, 1, 12).unwrap(),
            vec![0xABC as f32, 0x123 as f32]
        );
        // rows of two samples: 0xABC, 0xDEF (3 bytes, no padding)
        let buf = [0xAB, 0xCD, 0xEF];
        assert_eq!(
            unpack_samples(&buf[..3], 1, 2, 12).unwrap(),
            vec![0xABC as f32, 0xDEF as f32]
        );
        // 1-bit mask rows of 10 px: 2 bytes each
        let m = unpack_samples(&[0b1010_0000, 0b1100_0000], 1, 10, 1).unwrap();
        assert_eq!(m, [1., 0., 1., 0., 0., 0., 0., 0., 1., 1.]);
        let e = format!("{:?}", (unpack_samples(&[0xff], 2, 10, 1)).unwrap_err());
        assert!(e.contains("Short { decoded: 1, expected: 4 }"), "{e}");
        let e = format!("{:?}", (unpack_samples(&[0xff], 1, 1, 40)).unwrap_err());
        assert!(e.contains("Unsupported(\"40-bit samples\")"), "{e}");
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), f32::powi(2.0, -24));
        assert_eq!(f16_to_f32(0x8000), 0.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
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
        let e = format!("{:?}", (fast.decode(&cut, None, 10)).unwrap_err());
        assert!(e.contains("Codec(BadData)"), "{e}");
        let e = format!("{:?}", (fast.decode(&cut, None, usize::MAX)).unwrap_err());
        assert!(e.contains("Codec(BadData)"), "{e}");
        let mut bad = z.to_vec();
        bad[2] ^= 0xff; // first deflate block header
        let e = format!(
            "{:?}",
            (fast.decode(&Bytes::from(bad), None, usize::MAX)).unwrap_err()
        );
        assert!(e.contains("Codec(BadData)"), "{e}");
    }

    #[test]
    fn a_corrupt_tile_names_codec_and_tile_and_keeps_the_decoder_error() {
        let (fast, _, z) = tile(6);
        let mut bad = z.to_vec();
        bad[2] ^= 0xff;
        let kind = fast
            .decode(&Bytes::from(bad), None, usize::MAX)
            .expect_err("corrupt");
        let cause = match &kind {
            DecodeErrorKind::Codec(c) => c.clone(),
            other => panic!("not the codec's error: {other:?}"),
        };
        assert!(
            cause.get().is::<libdeflater::DecompressionError>(),
            "{cause:?}"
        );
        let e = DecodeError {
            href: "http://h/a.tif".into(),
            codec: compression_name(8),
            ifd: 1,
            x: 2,
            y: 3,
            bytes: 100..200,
            kind,
        }
        .into_error();
        // the Error names file and tile; its source is the DecodeError,
        // naming the codec, whose source is libdeflate's error
        assert!(
            matches!(&e, Error::Cog { href, message, .. }
                if href == "http://h/a.tif" && message == "tile (2, 3) of IFD 1 (bytes 100..200)"),
            "{e:?}"
        );
        let source = std::error::Error::source(&e).expect("the decode error");
        let d = source
            .downcast_ref::<Cause>()
            .and_then(|c| c.get().downcast_ref::<DecodeError>())
            .expect("a DecodeError");
        assert_eq!((d.codec, d.ifd, d.x, d.y), ("DEFLATE", 1, 2, 3));
        assert!(d.to_string().starts_with("DEFLATE decode"), "{d}");
        assert!(std::error::Error::source(d).is_some());
        assert!(
            e.chain()
                .ends_with(&format!("DEFLATE decode failed: {cause}")),
            "{}",
            e.chain()
        );
    }
}
