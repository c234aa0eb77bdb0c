//! A small, dependency-light Cloud-Optimized GeoTIFF (COG) writer.
//!
//! Used to generate the synthetic Sentinel-2-like demo world. It writes single-band, tiled,
//! Deflate-compressed (with horizontal predictor) classic little-endian TIFFs with internal
//! overviews, laid out the way GDAL's COG driver does it:
//!
//! ```text
//! header (8 bytes) | IFD main + its values | IFD ovr 1 + values | ... | IFD ovr N + values
//!                  | tiles ovr N | ... | tiles ovr 1 | tiles main
//! ```
//!
//! * The main IFD is at offset 8, overview IFDs follow in decreasing resolution order.
//! * Every IFD's out-of-line tag values directly follow that IFD; all IFDs come before any
//!   tile data.
//! * Tile data is written smallest overview first and main-resolution tiles last, each IFD's
//!   tiles in row-major order.
//!
//! Overviews are generated (each a factor 2 smaller, rounding up) while the largest dimension of
//! the current level exceeds the tile size, i.e. the smallest overview fits in a single tile.
//!
//! Output passes `rio cogeo validate --strict` and GDAL's `validate_cloud_optimized_geotiff.py`,
//! and is readable with `async-tiff`. The output is byte-for-byte deterministic regardless of
//! the number of rayon threads used for compression.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use rayon::prelude::*;

/// Largest accepted internal tile size (pixels per side).
///
/// Bounds the memory used per tile (`MAX_TILE_SIZE² × 2` bytes for `u16`).
pub const MAX_TILE_SIZE: usize = 4096;

/// Largest accepted Deflate level (flate2/zlib levels are `0..=9`).
pub const MAX_DEFLATE_LEVEL: u32 = 9;

/// Pixel type of a COG band.
///
/// Both variants borrow row-major samples, `width * height` of them.
#[derive(Debug, Clone, Copy)]
pub enum CogPixels<'a> {
    /// Unsigned 8-bit samples.
    U8(&'a [u8]),
    /// Unsigned 16-bit samples (e.g. Sentinel-2 L2A reflectances).
    U16(&'a [u16]),
    /// 32-bit IEEE floats (e.g. Sentinel-1 RTC backscatter, a DEM), written
    /// with the floating-point predictor (3) as GDAL's COG driver does.
    F32(&'a [f32]),
}

impl CogPixels<'_> {
    /// Number of samples in the slice.
    pub fn len(&self) -> usize {
        match self {
            CogPixels::U8(p) => p.len(),
            CogPixels::U16(p) => p.len(),
            CogPixels::F32(p) => p.len(),
        }
    }

    /// Whether the slice holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How overview levels are computed from the next-larger level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverviewResampling {
    /// Mean (rounded half up) of the valid (non-nodata) pixels of each 2×2 block; nodata when
    /// all of them are nodata. Pixels past the right/bottom edge of odd-sized levels are ignored.
    /// If the mean of valid pixels happens to equal the nodata value it is nudged by one so
    /// that valid data never turns into nodata.
    Average,
    /// Top-left pixel of each 2×2 block (suitable for categorical data such as masks).
    Nearest,
}

/// Georeferencing and layout options for [`encode_cog`] / [`write_cog`].
#[derive(Debug, Clone, PartialEq)]
pub struct CogOptions {
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// EPSG code of the projected CRS (e.g. `32610` for UTM 10N), written as
    /// `ProjectedCSTypeGeoKey` with `GTModelTypeGeoKey = 1` (projected) and
    /// `GTRasterTypeGeoKey = 1` (PixelIsArea).
    pub epsg: u16,
    /// X coordinate (CRS units) of the top-left corner of the top-left pixel.
    pub origin_x: f64,
    /// Y coordinate (CRS units) of the top-left corner of the top-left pixel.
    pub origin_y: f64,
    /// Pixel size in CRS units (square pixels, north-up).
    pub resolution: f64,
    /// Internal tile size in pixels (a positive multiple of 16, at most [`MAX_TILE_SIZE`]).
    pub tile_size: usize,
    /// Nodata value, written as the `GDAL_NODATA` tag on every IFD. Must be an integer
    /// representable in the pixel type (any finite value or NaN for [`CogPixels::F32`]).
    /// Also used to pad partial edge tiles (0 if `None`).
    pub nodata: Option<f64>,
    /// Resampling used to build overviews.
    pub overview_resampling: OverviewResampling,
    /// Deflate (zlib) compression level, `0..=9`.
    pub deflate_level: u32,
}

impl CogOptions {
    /// Options with the given size and georeferencing, and defaults for the rest:
    /// 512 px tiles, no nodata, [`OverviewResampling::Average`], Deflate level 6.
    pub fn new(
        width: usize,
        height: usize,
        epsg: u16,
        origin_x: f64,
        origin_y: f64,
        resolution: f64,
    ) -> Self {
        Self {
            width,
            height,
            epsg,
            origin_x,
            origin_y,
            resolution,
            tile_size: 512,
            nodata: None,
            overview_resampling: OverviewResampling::Average,
            deflate_level: 6,
        }
    }
}

/// Errors returned by [`encode_cog`] and [`write_cog`].
#[derive(Debug, thiserror::Error)]
pub enum CogWriteError {
    /// Width or height is zero.
    #[error("image size must be non-zero, got {width}x{height}")]
    ZeroSize {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
    },
    /// Width or height does not fit a classic TIFF (or `width * height` overflows).
    #[error("image size {width}x{height} is too large for a classic TIFF")]
    DimensionsTooLarge {
        /// Requested width.
        width: usize,
        /// Requested height.
        height: usize,
    },
    /// The pixel slice length is not `width * height`.
    #[error("pixel buffer has {actual} samples, expected width*height = {expected}")]
    SizeMismatch {
        /// `width * height`.
        expected: usize,
        /// Length of the supplied slice.
        actual: usize,
    },
    /// The tile size is zero, not a multiple of 16, or larger than [`MAX_TILE_SIZE`].
    #[error("tile size {0} must be a positive multiple of 16 and at most {MAX_TILE_SIZE}")]
    BadTileSize(usize),
    /// The nodata value is not an integer representable in the pixel type.
    #[error("nodata value {value} is not representable as {pixel_type}")]
    InvalidNodata {
        /// Requested nodata value.
        value: f64,
        /// Pixel type name (`u8` / `u16`).
        pixel_type: &'static str,
    },
    /// The Deflate level is outside `0..=9`.
    #[error("deflate level {0} is out of range 0..={MAX_DEFLATE_LEVEL}")]
    InvalidDeflateLevel(u32),
    /// Origin or resolution is not finite, or the resolution is not positive.
    #[error("invalid georeferencing: {0}")]
    InvalidGeoreference(String),
    /// The encoded file would exceed the 4 GiB limit of classic TIFF.
    #[error("encoded COG would be {size} bytes, exceeding the classic TIFF 4 GiB limit")]
    FileTooLarge {
        /// Size the file would have, in bytes.
        size: u64,
    },
    /// Deflate compression failed.
    #[error("deflate compression failed")]
    Compress(#[source] std::io::Error),
    /// Writing the output file failed.
    #[error("failed to write COG {}", path.display())]
    Io {
        /// File that could not be written.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
}

/// Encodes a single-band Cloud-Optimized GeoTIFF into memory.
///
/// See the module documentation of `src/demo/cog_writer.rs` for the exact layout.
pub fn encode_cog(pixels: CogPixels<'_>, opts: &CogOptions) -> Result<Vec<u8>, CogWriteError> {
    match pixels {
        CogPixels::U8(p) => encode_typed(p, opts),
        CogPixels::U16(p) => encode_typed(p, opts),
        CogPixels::F32(p) => encode_typed(p, opts),
    }
}

/// Encodes a COG (see [`encode_cog`]) and writes it to `path`.
///
/// The file is first written to `<path>.partial` and then renamed into place, so readers never
/// observe a half-written COG.
pub fn write_cog(
    path: &Path,
    pixels: CogPixels<'_>,
    opts: &CogOptions,
) -> Result<(), CogWriteError> {
    let bytes = encode_cog(pixels, opts)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    if let Err(source) = std::fs::write(&tmp, &bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(CogWriteError::Io { path: tmp, source });
    }
    if let Err(source) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(CogWriteError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sample types
// ---------------------------------------------------------------------------------------------

/// Sample types supported by the writer: unsigned integers (predictor 2)
/// and f32 (predictor 3).
trait Sample: Copy + PartialEq + Default + Send + Sync + 'static {
    /// Bytes per sample.
    const BYTES: usize;
    /// TIFF `SampleFormat`: 1 unsigned integer, 3 IEEE float.
    const SAMPLE_FORMAT: u16;
    /// TIFF `Predictor`: 2 horizontal differencing, 3 floating point.
    const PREDICTOR: u16;
    /// Human-readable type name.
    const NAME: &'static str;
    /// The nodata value as this type, `None` when it is not representable.
    fn nodata_from(v: f64) -> Option<Self>;
    /// The nodata value as GDAL writes it in the `GDAL_NODATA` tag.
    fn nodata_text(self) -> String;
    /// Mean of the valid samples of a 2×2 block (`None` when there are none).
    fn mean(vals: &[Self], nodata: Option<Self>) -> Option<Self>;
    /// Applies the predictor to one row of samples and appends its bytes.
    fn predict_row(row: &mut [Self], out: &mut Vec<u8>);
}

/// Unsigned integer samples: averaging in integers (rounded half up),
/// horizontal differencing.
trait UInt: Copy + PartialEq + Default {
    const MAX: u64;
    fn to_u64(self) -> u64;
    /// Converts, saturating at `MAX`.
    fn from_u64_saturating(v: u64) -> Self;
    fn wrapping_sub(self, rhs: Self) -> Self;
    fn push_le(self, out: &mut Vec<u8>);
}

impl UInt for u8 {
    const MAX: u64 = u8::MAX as u64;
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
    fn from_u64_saturating(v: u64) -> Self {
        u8::try_from(v).unwrap_or(u8::MAX)
    }
    fn wrapping_sub(self, rhs: Self) -> Self {
        u8::wrapping_sub(self, rhs)
    }
    fn push_le(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

impl UInt for u16 {
    const MAX: u64 = u16::MAX as u64;
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
    fn from_u64_saturating(v: u64) -> Self {
        u16::try_from(v).unwrap_or(u16::MAX)
    }
    fn wrapping_sub(self, rhs: Self) -> Self {
        u16::wrapping_sub(self, rhs)
    }
    fn push_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

fn uint_nodata<T: UInt>(v: f64) -> Option<T> {
    // `T::MAX` is at most u16::MAX, so the conversion to f64 is exact.
    if !v.is_finite() || v.fract() != 0.0 || v < 0.0 || v > T::MAX as f64 {
        return None;
    }
    // Checked above: `v` is an integer in `0..=T::MAX`, so the cast is exact.
    Some(T::from_u64_saturating(v as u64))
}

fn uint_mean<T: UInt>(vals: &[T], nodata: Option<T>) -> Option<T> {
    let mut sum = 0u64;
    let mut n = 0u64;
    for &v in vals {
        if Some(v) != nodata {
            sum += v.to_u64();
            n += 1;
        }
    }
    // `None` only when all the pixels are nodata (n == 0).
    let m = (sum + n / 2).checked_div(n)?;
    // Keep valid data valid: nudge a mean that collides with nodata.
    Some(if nodata == Some(T::from_u64_saturating(m)) {
        T::from_u64_saturating(if m < T::MAX { m + 1 } else { m - 1 })
    } else {
        T::from_u64_saturating(m)
    })
}

fn uint_predict_row<T: UInt>(row: &mut [T], out: &mut Vec<u8>) {
    // Predictor 2: horizontal differencing per row, on native-width samples.
    for i in (1..row.len()).rev() {
        row[i] = row[i].wrapping_sub(row[i - 1]);
    }
    for v in row.iter() {
        v.push_le(out);
    }
}

macro_rules! uint_sample {
    ($t:ty, $name:literal) => {
        impl Sample for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            const SAMPLE_FORMAT: u16 = 1;
            const PREDICTOR: u16 = 2;
            const NAME: &'static str = $name;
            fn nodata_from(v: f64) -> Option<Self> {
                uint_nodata(v)
            }
            fn nodata_text(self) -> String {
                self.to_u64().to_string()
            }
            fn mean(vals: &[Self], nodata: Option<Self>) -> Option<Self> {
                uint_mean(vals, nodata)
            }
            fn predict_row(row: &mut [Self], out: &mut Vec<u8>) {
                uint_predict_row(row, out)
            }
        }
    };
}
uint_sample!(u8, "u8");
uint_sample!(u16, "u16");

impl Sample for f32 {
    const BYTES: usize = 4;
    const SAMPLE_FORMAT: u16 = 3;
    const PREDICTOR: u16 = 3;
    const NAME: &'static str = "f32";
    fn nodata_from(v: f64) -> Option<Self> {
        // NaN stays NaN; a finite value must fit f32.
        let f = v as f32;
        (v.is_nan() || (f.is_finite() && f64::from(f) == v)).then_some(f)
    }
    fn nodata_text(self) -> String {
        if self.is_nan() {
            "nan".into()
        } else {
            // As GDAL prints it: the shortest text that reads back as the same value.
            format!("{self}")
        }
    }
    fn mean(vals: &[Self], nodata: Option<Self>) -> Option<Self> {
        let is_nodata =
            |v: f32| v.is_nan() || nodata.is_some_and(|nd| v == nd || (nd.is_nan() && v.is_nan()));
        let (mut sum, mut n) = (0f64, 0u32);
        for &v in vals {
            if !is_nodata(v) {
                sum += f64::from(v);
                n += 1;
            }
        }
        (n > 0).then(|| (sum / f64::from(n)) as f32)
    }
    fn predict_row(row: &mut [Self], out: &mut Vec<u8>) {
        // Predictor 3 (TIFF Technical Note 3, as libtiff writes it): the
        // row's bytes in planes, most significant first, then byte-wise
        // horizontal differencing over the whole row.
        let w = row.len();
        let start = out.len();
        out.resize(start + 4 * w, 0);
        let planes = &mut out[start..];
        for (i, v) in row.iter().enumerate() {
            let b = v.to_be_bytes();
            for (k, &byte) in b.iter().enumerate() {
                planes[k * w + i] = byte;
            }
        }
        for i in (1..planes.len()).rev() {
            planes[i] = planes[i].wrapping_sub(planes[i - 1]);
        }
    }
}

/// Validates the nodata value against the sample type.
fn nodata_sample<T: Sample>(nodata: Option<f64>) -> Result<Option<T>, CogWriteError> {
    let Some(v) = nodata else { return Ok(None) };
    match T::nodata_from(v) {
        Some(t) => Ok(Some(t)),
        None => Err(CogWriteError::InvalidNodata {
            value: v,
            pixel_type: T::NAME,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Pyramid
// ---------------------------------------------------------------------------------------------

/// One resolution level of the pyramid.
struct Level<'a, T: Sample> {
    width: usize,
    height: usize,
    data: Cow<'a, [T]>,
}

impl<T: Sample> Level<'_, T> {
    fn tiles_across(&self, tile: usize) -> usize {
        self.width.div_ceil(tile)
    }
    fn tiles_down(&self, tile: usize) -> usize {
        self.height.div_ceil(tile)
    }
    fn tile_count(&self, tile: usize) -> usize {
        self.tiles_across(tile) * self.tiles_down(tile)
    }
}

/// Computes the next (2× smaller, rounding up) level.
fn downsample<T: Sample>(
    src: &Level<'_, T>,
    resampling: OverviewResampling,
    nodata: Option<T>,
) -> Level<'static, T> {
    let (sw, sh) = (src.width, src.height);
    let (ow, oh) = (sw.div_ceil(2), sh.div_ceil(2));
    let fill = nodata.unwrap_or_default();
    let mut out = vec![fill; ow * oh];
    let data: &[T] = &src.data;
    out.par_chunks_mut(ow).enumerate().for_each(|(oy, row)| {
        let sy = 2 * oy;
        for (ox, px) in row.iter_mut().enumerate() {
            let sx = 2 * ox;
            *px = match resampling {
                OverviewResampling::Nearest => data[sy * sw + sx],
                OverviewResampling::Average => {
                    let mut block = [fill; 4];
                    let mut k = 0;
                    for yy in sy..(sy + 2).min(sh) {
                        for &v in &data[yy * sw + sx..yy * sw + (sx + 2).min(sw)] {
                            block[k] = v;
                            k += 1;
                        }
                    }
                    T::mean(&block[..k], nodata).unwrap_or(fill)
                }
            };
        }
    });
    Level {
        width: ow,
        height: oh,
        data: Cow::Owned(out),
    }
}

/// Extracts, pads, predicts and deflates one tile.
fn encode_tile<T: Sample>(
    level: &Level<'_, T>,
    tx: usize,
    ty: usize,
    tile: usize,
    fill: T,
    level_cfg: Compression,
) -> Result<Vec<u8>, CogWriteError> {
    let mut buf = vec![fill; tile * tile];
    let (x0, y0) = (tx * tile, ty * tile);
    let w = tile.min(level.width - x0);
    let h = tile.min(level.height - y0);
    for r in 0..h {
        let src = &level.data[(y0 + r) * level.width + x0..][..w];
        buf[r * tile..r * tile + w].copy_from_slice(src);
    }
    let mut raw = Vec::with_capacity(tile * tile * T::BYTES);
    for row in buf.chunks_exact_mut(tile) {
        T::predict_row(row, &mut raw);
    }
    let mut enc = ZlibEncoder::new(Vec::with_capacity(raw.len() / 2), level_cfg);
    enc.write_all(&raw).map_err(CogWriteError::Compress)?;
    enc.finish().map_err(CogWriteError::Compress)
}

// ---------------------------------------------------------------------------------------------
// TIFF structure
// ---------------------------------------------------------------------------------------------

const TYPE_ASCII: u16 = 2;
const TYPE_SHORT: u16 = 3;
const TYPE_LONG: u16 = 4;
const TYPE_DOUBLE: u16 = 12;

const TAG_NEW_SUBFILE_TYPE: u16 = 254;
const TAG_IMAGE_WIDTH: u16 = 256;
const TAG_IMAGE_LENGTH: u16 = 257;
const TAG_BITS_PER_SAMPLE: u16 = 258;
const TAG_COMPRESSION: u16 = 259;
const TAG_PHOTOMETRIC: u16 = 262;
const TAG_SAMPLES_PER_PIXEL: u16 = 277;
const TAG_PLANAR_CONFIGURATION: u16 = 284;
const TAG_PREDICTOR: u16 = 317;
const TAG_TILE_WIDTH: u16 = 322;
const TAG_TILE_LENGTH: u16 = 323;
const TAG_TILE_OFFSETS: u16 = 324;
const TAG_TILE_BYTE_COUNTS: u16 = 325;
const TAG_SAMPLE_FORMAT: u16 = 339;
const TAG_MODEL_PIXEL_SCALE: u16 = 33550;
const TAG_MODEL_TIEPOINT: u16 = 33922;
const TAG_GEO_KEY_DIRECTORY: u16 = 34735;
const TAG_GDAL_NODATA: u16 = 42113;

/// One IFD entry with its little-endian encoded value bytes.
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    data: Vec<u8>,
}

impl Entry {
    fn short(tag: u16, vals: &[u16]) -> Self {
        Self::new(
            tag,
            TYPE_SHORT,
            vals.len(),
            vals.iter().flat_map(|v| v.to_le_bytes()),
        )
    }
    fn long(tag: u16, vals: &[u32]) -> Self {
        Self::new(
            tag,
            TYPE_LONG,
            vals.len(),
            vals.iter().flat_map(|v| v.to_le_bytes()),
        )
    }
    fn double(tag: u16, vals: &[f64]) -> Self {
        Self::new(
            tag,
            TYPE_DOUBLE,
            vals.len(),
            vals.iter().flat_map(|v| v.to_le_bytes()),
        )
    }
    fn ascii(tag: u16, s: &str) -> Self {
        let bytes = s.bytes().chain(std::iter::once(0));
        Self::new(tag, TYPE_ASCII, s.len() + 1, bytes)
    }
    fn new(tag: u16, kind: u16, count: usize, data: impl Iterator<Item = u8>) -> Self {
        Self {
            tag,
            kind,
            // Counts are bounded by the tile count, which is checked to fit a u32 (file < 4 GiB).
            count: u32::try_from(count).unwrap_or(u32::MAX),
            data: data.collect(),
        }
    }
    /// Bytes this entry needs after the IFD (0 when the value fits in the 4-byte field).
    fn out_of_line_len(&self) -> usize {
        if self.data.len() <= 4 {
            0
        } else {
            self.data.len().next_multiple_of(4)
        }
    }
}

/// Size of an IFD including its out-of-line values.
fn ifd_len(entries: &[Entry]) -> usize {
    2 + 12 * entries.len() + 4 + entries.iter().map(Entry::out_of_line_len).sum::<usize>()
}

/// Per-IFD parameters shared by all levels.
struct IfdCommon<'a> {
    opts: &'a CogOptions,
    bits: u16,
    sample_format: u16,
    predictor: u16,
    nodata: Option<String>,
}

/// Builds the sorted tag list of one IFD.
fn build_entries(
    common: &IfdCommon<'_>,
    is_main: bool,
    width: u32,
    height: u32,
    tile: u32,
    offsets: &[u32],
    counts: &[u32],
) -> Vec<Entry> {
    let opts = common.opts;
    let mut e = vec![
        Entry::long(TAG_NEW_SUBFILE_TYPE, &[u32::from(!is_main)]),
        Entry::long(TAG_IMAGE_WIDTH, &[width]),
        Entry::long(TAG_IMAGE_LENGTH, &[height]),
        Entry::short(TAG_BITS_PER_SAMPLE, &[common.bits]),
        Entry::short(TAG_COMPRESSION, &[8]),
        Entry::short(TAG_PHOTOMETRIC, &[1]),
        Entry::short(TAG_SAMPLES_PER_PIXEL, &[1]),
        Entry::short(TAG_PLANAR_CONFIGURATION, &[1]),
        Entry::short(TAG_PREDICTOR, &[common.predictor]),
        Entry::long(TAG_TILE_WIDTH, &[tile]),
        Entry::long(TAG_TILE_LENGTH, &[tile]),
        Entry::long(TAG_TILE_OFFSETS, offsets),
        Entry::long(TAG_TILE_BYTE_COUNTS, counts),
        Entry::short(TAG_SAMPLE_FORMAT, &[common.sample_format]),
    ];
    if is_main {
        // Like GDAL, georeferencing lives on the main IFD only; overviews inherit it.
        e.push(Entry::double(
            TAG_MODEL_PIXEL_SCALE,
            &[opts.resolution, opts.resolution, 0.0],
        ));
        e.push(Entry::double(
            TAG_MODEL_TIEPOINT,
            &[0.0, 0.0, 0.0, opts.origin_x, opts.origin_y, 0.0],
        ));
        e.push(Entry::short(
            TAG_GEO_KEY_DIRECTORY,
            &[
                1, 1, 0, 3, // version 1.1.0, 3 keys
                1024, 0, 1, 1, // GTModelTypeGeoKey = ModelTypeProjected
                1025, 0, 1, 1, // GTRasterTypeGeoKey = RasterPixelIsArea
                3072, 0, 1, opts.epsg, // ProjectedCSTypeGeoKey
            ],
        ));
    }
    if let Some(nd) = &common.nodata {
        e.push(Entry::ascii(TAG_GDAL_NODATA, nd));
    }
    debug_assert!(e.windows(2).all(|w| w[0].tag < w[1].tag));
    e
}

/// Serializes an IFD at `pos` (which must equal `out.len()`), its values right after it.
fn write_ifd(out: &mut Vec<u8>, entries: &[Entry], next_ifd: u32) {
    let pos = out.len();
    let mut value_pos = pos + 2 + 12 * entries.len() + 4;
    // Entry counts are small constants (< 20).
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.kind.to_le_bytes());
        out.extend_from_slice(&e.count.to_le_bytes());
        if e.data.len() <= 4 {
            let mut field = [0u8; 4];
            field[..e.data.len()].copy_from_slice(&e.data);
            out.extend_from_slice(&field);
        } else {
            // The whole file was checked to be < 4 GiB before serialization.
            out.extend_from_slice(&(value_pos as u32).to_le_bytes());
            value_pos += e.out_of_line_len();
        }
    }
    out.extend_from_slice(&next_ifd.to_le_bytes());
    for e in entries.iter().filter(|e| e.data.len() > 4) {
        out.extend_from_slice(&e.data);
        out.resize(out.len() + e.out_of_line_len() - e.data.len(), 0);
    }
    debug_assert_eq!(out.len(), value_pos);
}

fn validate(opts: &CogOptions, len: usize) -> Result<(), CogWriteError> {
    let (width, height) = (opts.width, opts.height);
    if width == 0 || height == 0 {
        return Err(CogWriteError::ZeroSize { width, height });
    }
    let too_large = CogWriteError::DimensionsTooLarge { width, height };
    if u32::try_from(width).is_err() || u32::try_from(height).is_err() {
        return Err(too_large);
    }
    let expected = width.checked_mul(height).ok_or(too_large)?;
    if opts.tile_size == 0 || !opts.tile_size.is_multiple_of(16) || opts.tile_size > MAX_TILE_SIZE {
        return Err(CogWriteError::BadTileSize(opts.tile_size));
    }
    if len != expected {
        return Err(CogWriteError::SizeMismatch {
            expected,
            actual: len,
        });
    }
    if opts.deflate_level > MAX_DEFLATE_LEVEL {
        return Err(CogWriteError::InvalidDeflateLevel(opts.deflate_level));
    }
    if !opts.resolution.is_finite() || opts.resolution <= 0.0 {
        return Err(CogWriteError::InvalidGeoreference(format!(
            "resolution must be finite and > 0, got {}",
            opts.resolution
        )));
    }
    if !opts.origin_x.is_finite() || !opts.origin_y.is_finite() {
        return Err(CogWriteError::InvalidGeoreference(format!(
            "origin must be finite, got ({}, {})",
            opts.origin_x, opts.origin_y
        )));
    }
    Ok(())
}

fn encode_typed<T: Sample>(pixels: &[T], opts: &CogOptions) -> Result<Vec<u8>, CogWriteError> {
    validate(opts, pixels.len())?;
    let nodata = nodata_sample::<T>(opts.nodata)?;
    let fill = nodata.unwrap_or_default();
    let tile = opts.tile_size;
    // Validated: tile_size <= MAX_TILE_SIZE, dimensions fit u32.
    let tile_u32 = tile as u32;

    // Pyramid: main level, then halve while the level does not fit a single tile.
    let mut levels = vec![Level {
        width: opts.width,
        height: opts.height,
        data: Cow::Borrowed(pixels),
    }];
    while let Some(last) = levels.last()
        && last.width.max(last.height) > tile
    {
        let next = downsample(last, opts.overview_resampling, nodata);
        levels.push(next);
    }

    // Compress every tile of every level in parallel; collect() keeps job order, so the
    // output does not depend on scheduling.
    let jobs: Vec<(usize, usize, usize)> = levels
        .iter()
        .enumerate()
        .flat_map(|(li, l)| {
            let across = l.tiles_across(tile);
            (0..l.tile_count(tile)).map(move |i| (li, i % across, i / across))
        })
        .collect();
    let level_cfg = Compression::new(opts.deflate_level);
    let mut compressed = jobs
        .par_iter()
        .map(|&(li, tx, ty)| encode_tile(&levels[li], tx, ty, tile, fill, level_cfg))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let tiles: Vec<Vec<Vec<u8>>> = levels
        .iter()
        .map(|l| compressed.by_ref().take(l.tile_count(tile)).collect())
        .collect();

    let common = IfdCommon {
        opts,
        bits: (T::BYTES * 8) as u16,
        sample_format: T::SAMPLE_FORMAT,
        predictor: T::PREDICTOR,
        nodata: nodata.map(Sample::nodata_text),
    };

    // Pass 1: IFD sizes (independent of the offset values) -> IFD positions and data start.
    let mut ifd_offsets = Vec::with_capacity(levels.len());
    let mut pos: u64 = 8;
    for (li, l) in levels.iter().enumerate() {
        let n = l.tile_count(tile);
        let zeros = vec![0u32; n];
        let entries = build_entries(&common, li == 0, 0, 0, tile_u32, &zeros, &zeros);
        ifd_offsets.push(pos);
        pos += ifd_len(&entries) as u64;
    }
    let data_start = pos;

    // Tile data: smallest overview first, main resolution last.
    let mut tile_offsets: Vec<Vec<u64>> = vec![Vec::new(); levels.len()];
    let mut cursor = data_start;
    for li in (0..levels.len()).rev() {
        for t in &tiles[li] {
            tile_offsets[li].push(cursor);
            cursor += t.len() as u64;
        }
    }
    let total = cursor;
    if total > u64::from(u32::MAX) {
        return Err(CogWriteError::FileTooLarge { size: total });
    }
    // From here on every offset/size fits in a u32 (checked just above).
    let to_u32 = |v: u64| v as u32;

    // Pass 2: serialize.
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(b"II");
    out.extend_from_slice(&42u16.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    for (li, l) in levels.iter().enumerate() {
        let offsets: Vec<u32> = tile_offsets[li].iter().map(|&o| to_u32(o)).collect();
        let counts: Vec<u32> = tiles[li].iter().map(|t| to_u32(t.len() as u64)).collect();
        let entries = build_entries(
            &common,
            li == 0,
            to_u32(l.width as u64),
            to_u32(l.height as u64),
            tile_u32,
            &offsets,
            &counts,
        );
        let next = ifd_offsets.get(li + 1).map_or(0, |&o| to_u32(o));
        debug_assert_eq!(out.len() as u64, ifd_offsets[li]);
        write_ifd(&mut out, &entries, next);
    }
    debug_assert_eq!(out.len() as u64, data_start);
    for level_tiles in tiles.iter().rev() {
        for t in level_tiles {
            out.extend_from_slice(t);
        }
    }
    debug_assert_eq!(out.len() as u64, total);
    Ok(out)
}

impl From<CogWriteError> for crate::error::Error {
    fn from(e: CogWriteError) -> Self {
        crate::error::Error::Demo {
            message: "writing a COG".into(),
            source: Some(crate::error::Cause::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use super::*;

    /// A parsed IFD: tag -> (type, count, values widened to u64 / f64 / raw bytes).
    #[derive(Debug)]
    struct ParsedIfd {
        offset: usize,
        end_of_values: usize,
        tags: Vec<u16>,
        ints: BTreeMap<u16, Vec<u64>>,
        doubles: BTreeMap<u16, Vec<f64>>,
        ascii: BTreeMap<u16, String>,
    }

    impl ParsedIfd {
        fn int(&self, tag: u16) -> u64 {
            self.ints[&tag][0]
        }
    }

    fn rd16(b: &[u8], o: usize) -> u16 {
        u16::from_le_bytes([b[o], b[o + 1]])
    }
    fn rd32(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }

    /// Tiny hand-written IFD walker for classic little-endian TIFF.
    fn parse(b: &[u8]) -> Vec<ParsedIfd> {
        assert_eq!(&b[..4], b"II*\0");
        let mut next = rd32(b, 4) as usize;
        let mut ifds = Vec::new();
        while next != 0 {
            let n = rd16(b, next) as usize;
            let mut p = ParsedIfd {
                offset: next,
                end_of_values: next + 2 + 12 * n + 4,
                tags: vec![],
                ints: BTreeMap::new(),
                doubles: BTreeMap::new(),
                ascii: BTreeMap::new(),
            };
            for i in 0..n {
                let e = next + 2 + 12 * i;
                let (tag, kind, count) = (rd16(b, e), rd16(b, e + 2), rd32(b, e + 4) as usize);
                let size = match kind {
                    2 => 1,
                    3 => 2,
                    4 => 4,
                    12 => 8,
                    k => panic!("unexpected type {k}"),
                };
                let len = size * count;
                let at = if len <= 4 {
                    e + 8
                } else {
                    let o = rd32(b, e + 8) as usize;
                    assert_eq!(o % 2, 0, "values must be word aligned");
                    p.end_of_values = p.end_of_values.max(o + len);
                    o
                };
                let raw = &b[at..at + len];
                p.tags.push(tag);
                match kind {
                    2 => {
                        assert_eq!(raw.last(), Some(&0));
                        let s = std::str::from_utf8(&raw[..len - 1]).unwrap();
                        p.ascii.insert(tag, s.to_string());
                    }
                    3 => {
                        let v = raw.chunks(2).map(|c| u64::from(rd16(c, 0))).collect();
                        p.ints.insert(tag, v);
                    }
                    4 => {
                        let v = raw.chunks(4).map(|c| u64::from(rd32(c, 0))).collect();
                        p.ints.insert(tag, v);
                    }
                    _ => {
                        let v = raw
                            .chunks(8)
                            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                            .collect();
                        p.doubles.insert(tag, v);
                    }
                }
            }
            next = rd32(b, next + 2 + 12 * n) as usize;
            ifds.push(p);
        }
        ifds
    }

    /// Inflates a tile and undoes the predictor; returns full `tile x tile` samples.
    fn decode_tile(b: &[u8], ifd: &ParsedIfd, idx: usize) -> Vec<u64> {
        let off = ifd.ints[&324][idx] as usize;
        let len = ifd.ints[&325][idx] as usize;
        let tile = ifd.int(322) as usize;
        let bytes_per = ifd.int(258) as usize / 8;
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&b[off..off + len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), tile * tile * bytes_per);
        let mut vals: Vec<u64> = match bytes_per {
            1 => raw.iter().map(|&v| u64::from(v)).collect(),
            _ => raw.chunks(2).map(|c| u64::from(rd16(c, 0))).collect(),
        };
        let modulus = 1u64 << (8 * bytes_per);
        for row in vals.chunks_mut(tile) {
            for i in 1..tile {
                row[i] = (row[i] + row[i - 1]) % modulus;
            }
        }
        vals
    }

    fn gradient_u16(w: usize, h: usize) -> Vec<u16> {
        let mut px: Vec<u16> = (0..w * h)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                (1 + x * 37 + y * 91 + (x * y) % 1013) as u16
            })
            .collect();
        // Some nodata: a block in the top-left tile and a stripe on the bottom edge.
        for y in 10..20 {
            for x in 30..45 {
                px[y * w + x] = 0;
            }
        }
        for x in 0..w {
            px[(h - 1) * w + x] = 0;
        }
        px
    }

    fn opts_u16(w: usize, h: usize) -> CogOptions {
        let mut o = CogOptions::new(w, h, 32610, 499_980.0, 4_200_000.0, 10.0);
        o.tile_size = 256;
        o.nodata = Some(0.0);
        o
    }

    /// Reference (scalar) 2x2 average with nodata, for checking overviews.
    fn ref_average(src: &[u16], w: usize, h: usize, nd: u16) -> Vec<u16> {
        let (ow, oh) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = vec![nd; ow * oh];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut vals = vec![];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (x, y) = (2 * ox + dx, 2 * oy + dy);
                    if x < w && y < h && src[y * w + x] != nd {
                        vals.push(u64::from(src[y * w + x]));
                    }
                }
                if !vals.is_empty() {
                    let n = vals.len() as u64;
                    let mut m = (vals.iter().sum::<u64>() + n / 2) / n;
                    if m == u64::from(nd) {
                        m += 1;
                    }
                    out[oy * ow + ox] = m as u16;
                }
            }
        }
        out
    }

    #[test]
    fn structure_and_roundtrip_u16() {
        let (w, h) = (1000, 700);
        let px = gradient_u16(w, h);
        let opts = opts_u16(w, h);
        let b = encode_cog(CogPixels::U16(&px), &opts).unwrap();
        let ifds = parse(&b);

        // Main IFD at 8; 1000x700 with tile 256 -> overviews 500x350, 250x175.
        assert_eq!(ifds[0].offset, 8);
        assert_eq!(ifds.len(), 3);
        let dims: Vec<(u64, u64)> = ifds.iter().map(|i| (i.int(256), i.int(257))).collect();
        assert_eq!(dims, vec![(1000, 700), (500, 350), (250, 175)]);

        for (k, ifd) in ifds.iter().enumerate() {
            assert!(ifd.tags.windows(2).all(|t| t[0] < t[1]), "tags sorted");
            assert_eq!(ifd.int(254), u64::from(k > 0));
            assert_eq!(ifd.int(258), 16);
            assert_eq!(ifd.int(259), 8);
            assert_eq!(ifd.int(262), 1);
            assert_eq!(ifd.int(277), 1);
            assert_eq!(ifd.int(284), 1);
            assert_eq!(ifd.int(317), 2);
            assert_eq!((ifd.int(322), ifd.int(323)), (256, 256));
            assert_eq!(ifd.int(339), 1);
            assert_eq!(ifd.ascii[&42113], "0");
            let (tw, th) = (ifd.int(256).div_ceil(256), ifd.int(257).div_ceil(256));
            assert_eq!(ifd.ints[&324].len() as u64, tw * th);
            assert_eq!(ifd.ints[&325].len() as u64, tw * th);
            // Values of this IFD precede the next IFD.
            if let Some(next) = ifds.get(k + 1) {
                assert!(ifd.end_of_values <= next.offset);
                assert!(ifd.offset < next.offset);
            }
        }
        // Geo tags on main.
        let main = &ifds[0];
        assert_eq!(main.doubles[&33550], vec![10.0, 10.0, 0.0]);
        assert_eq!(
            main.doubles[&33922],
            vec![0.0, 0.0, 0.0, 499_980.0, 4_200_000.0, 0.0]
        );
        assert_eq!(
            main.ints[&34735],
            vec![1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32610]
        );

        // Tile data ordering: all after the last IFD's values, smallest overview first, each
        // level's tiles contiguous + row-major, main last, file ends with the last tile.
        let last_ifd_end = ifds.last().unwrap().end_of_values;
        let mut prev_end = last_ifd_end;
        for ifd in ifds.iter().rev() {
            for (o, c) in ifd.ints[&324].iter().zip(&ifd.ints[&325]) {
                assert_eq!(*o as usize, prev_end, "tiles contiguous and ordered");
                prev_end = (*o + *c) as usize;
            }
        }
        assert_eq!(prev_end, b.len());

        // Tile (0,0) and the bottom-right edge tile of the main image.
        let tile = 256;
        let (tw, th) = (w.div_ceil(tile), h.div_ceil(tile));
        for (tx, ty) in [(0, 0), (tw - 1, th - 1), (tw - 1, 0)] {
            let vals = decode_tile(&b, main, ty * tw + tx);
            for r in 0..tile {
                for c in 0..tile {
                    let (x, y) = (tx * tile + c, ty * tile + r);
                    let want = if x < w && y < h {
                        u64::from(px[y * w + x])
                    } else {
                        0 // padding = nodata
                    };
                    assert_eq!(vals[r * tile + c], want, "tile ({tx},{ty}) px ({c},{r})");
                }
            }
        }

        // Overview 1 (500x350), tile (1,1) is an edge tile: check against reference average.
        let ov = ref_average(&px, w, h, 0);
        let (ow, oh) = (500, 350);
        let vals = decode_tile(&b, &ifds[1], 2 + 1);
        for r in 0..(oh - 256) {
            for c in 0..(ow - 256) {
                let want = u64::from(ov[(256 + r) * ow + 256 + c]);
                assert_eq!(vals[r * tile + c], want);
            }
        }
        // The nodata block in the main image stays nodata in the overview.
        assert_eq!(decode_tile(&b, &ifds[1], 0)[7 * tile + 17], 0);
    }

    #[test]
    fn deterministic_across_thread_counts() {
        let (w, h) = (1000, 700);
        let px = gradient_u16(w, h);
        let opts = opts_u16(w, h);
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| encode_cog(CogPixels::U16(&px), &opts).unwrap())
        };
        assert_eq!(run(1), run(4));
    }

    #[test]
    fn overview_count_rule() {
        let count = |w, h, t| {
            let mut o = CogOptions::new(w, h, 32610, 0.0, 0.0, 10.0);
            o.tile_size = t;
            parse(&encode_cog(CogPixels::U8(&vec![1; w * h]), &o).unwrap()).len()
        };
        assert_eq!(count(2048, 2048, 512), 3); // 2048, 1024, 512
        assert_eq!(count(512, 512, 512), 1);
        assert_eq!(count(513, 10, 512), 2);
        assert_eq!(count(3, 5, 16), 1);
    }

    /// In-memory `AsyncFileReader` (clamps over-long reads like an object store would).
    #[derive(Debug, Clone)]
    struct MemReader(bytes::Bytes);

    impl async_tiff::reader::AsyncFileReader for MemReader {
        fn get_bytes<'life0, 'async_trait>(
            &'life0 self,
            range: std::ops::Range<u64>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = async_tiff::error::AsyncTiffResult<bytes::Bytes>>
                    + Send
                    + 'async_trait,
            >,
        >
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            let len = self.0.len() as u64;
            let (start, end) = (range.start.min(len), range.end.min(len));
            let out = self.0.slice(start as usize..end as usize);
            Box::pin(async move { Ok(out) })
        }
    }

    #[tokio::test]
    async fn readable_by_async_tiff() {
        use async_tiff::TypedArray;
        use async_tiff::decoder::DecoderRegistry;
        use async_tiff::metadata::TiffMetadataReader;
        use async_tiff::metadata::cache::ReadaheadMetadataCache;

        let (w, h) = (1000, 700);
        let px = gradient_u16(w, h);
        let opts = opts_u16(w, h);
        let reader = MemReader(encode_cog(CogPixels::U16(&px), &opts).unwrap().into());
        let cache = ReadaheadMetadataCache::new(reader.clone()).with_initial_size(4096);
        let tiff = TiffMetadataReader::try_open(&cache)
            .await
            .unwrap()
            .read(&cache)
            .await
            .unwrap();
        let ifds = tiff.ifds();
        assert_eq!(ifds.len(), 3);
        let main = &ifds[0];
        assert_eq!((main.image_width(), main.image_height()), (1000, 700));
        assert_eq!(main.tile_count(), Some((4, 3)));
        assert_eq!(main.geo_key_directory().unwrap().epsg_code(), Some(32610));
        assert_eq!(main.gdal_nodata(), Some("0"));
        assert_eq!(main.model_pixel_scale(), Some(&[10.0, 10.0, 0.0][..]));
        assert_eq!(ifds[1].new_subfile_type(), Some(1));
        assert_eq!(ifds[2].gdal_nodata(), Some("0"));

        let registry = DecoderRegistry::default();
        for (tx, ty) in [(0usize, 0usize), (3, 2)] {
            let tile = main.fetch_tile(tx, ty, &reader).await.unwrap();
            let arr = tile.decode(&registry).unwrap();
            assert_eq!(arr.shape(), [256, 256, 1]);
            let TypedArray::UInt16(v) = arr.data() else {
                panic!("expected u16, got {:?}", arr.data_type());
            };
            for r in 0..256 {
                for c in 0..256 {
                    let (x, y) = (tx * 256 + c, ty * 256 + r);
                    let want = if x < w && y < h { px[y * w + x] } else { 0 };
                    assert_eq!(v[r * 256 + c], want);
                }
            }
        }
        // Smallest overview (250x175) is a single tile.
        let arr = ifds[2]
            .fetch_tile(0, 0, &reader)
            .await
            .unwrap()
            .decode(&registry)
            .unwrap();
        let ov1 = ref_average(&px, w, h, 0);
        let ov2 = ref_average(&ov1, 500, 350, 0);
        let TypedArray::UInt16(v) = arr.data() else {
            panic!("expected u16");
        };
        for y in 0..175 {
            assert_eq!(&v[y * 256..y * 256 + 250], &ov2[y * 250..(y + 1) * 250]);
        }
    }

    #[test]
    fn u8_nearest_overviews() {
        let (w, h) = (300, 200);
        let px: Vec<u8> = (0..w * h).map(|i| ((i % w) ^ (i / w)) as u8).collect();
        let mut opts = CogOptions::new(w, h, 32633, 300_000.0, 5_000_000.0, 20.0);
        opts.tile_size = 64;
        opts.overview_resampling = OverviewResampling::Nearest;
        let b = encode_cog(CogPixels::U8(&px), &opts).unwrap();
        let ifds = parse(&b);
        // 300x200 -> 150x100 -> 75x50 -> 38x25 (fits in 64).
        let dims: Vec<(u64, u64)> = ifds.iter().map(|i| (i.int(256), i.int(257))).collect();
        assert_eq!(dims, vec![(300, 200), (150, 100), (75, 50), (38, 25)]);
        assert!(
            ifds.iter()
                .all(|i| i.int(258) == 8 && !i.ascii.contains_key(&42113))
        );
        assert_eq!(ifds[0].ints[&34735][15], 32633);

        // Level k pixel (x, y) == main pixel (x * 2^k, y * 2^k).
        for (k, ifd) in ifds.iter().enumerate() {
            let (lw, lh) = (ifd.int(256) as usize, ifd.int(257) as usize);
            let tw = lw.div_ceil(64);
            for ty in 0..lh.div_ceil(64) {
                for tx in 0..tw {
                    let vals = decode_tile(&b, ifd, ty * tw + tx);
                    for r in 0..64 {
                        for c in 0..64 {
                            let (x, y) = (tx * 64 + c, ty * 64 + r);
                            let want = if x < lw && y < lh {
                                u64::from(px[(y << k) * w + (x << k)])
                            } else {
                                0
                            };
                            assert_eq!(vals[r * 64 + c], want, "level {k} ({x},{y})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn average_handles_nodata_and_odd_edges() {
        // 3x3 u8, nodata 7, tile 16 => no overview; exercise downsample directly.
        let src = [
            7u8, 7, 1, //
            7, 7, 3, //
            2, 8, 9,
        ];
        let level = Level {
            width: 3,
            height: 3,
            data: Cow::Borrowed(&src[..]),
        };
        let out = downsample(&level, OverviewResampling::Average, Some(7));
        assert_eq!((out.width, out.height), (2, 2));
        // [all nodata -> 7, mean(1,3)=2, mean(2,8)=5, 9]
        assert_eq!(&*out.data, &[7, 2, 5, 9]);
        // A mean that collides with nodata is nudged.
        let src = [6u8, 8, 6, 8];
        let level = Level {
            width: 2,
            height: 2,
            data: Cow::Borrowed(&src[..]),
        };
        let out = downsample(&level, OverviewResampling::Average, Some(7));
        assert_eq!(&*out.data, &[8]);
    }

    #[test]
    fn write_cog_writes_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b04.tif");
        let px = vec![5u16; 40 * 30];
        let opts = CogOptions::new(40, 30, 32610, 0.0, 0.0, 10.0);
        write_cog(&path, CogPixels::U16(&px), &opts).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b, encode_cog(CogPixels::U16(&px), &opts).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_cog(
            &dir.path().join("missing/x.tif"),
            CogPixels::U16(&px),
            &opts,
        )
        .unwrap_err();
        assert!(matches!(err, CogWriteError::Io { .. }));
    }

    #[test]
    fn rejects_bad_input() {
        let px = vec![0u16; 100];
        let base = CogOptions::new(10, 10, 32610, 0.0, 0.0, 10.0);
        let enc = |o: &CogOptions, p: &[u16]| encode_cog(CogPixels::U16(p), o).unwrap_err();

        assert!(matches!(
            enc(&base, &px[..99]),
            CogWriteError::SizeMismatch {
                expected: 100,
                actual: 99
            }
        ));
        for t in [0, 8, 100, MAX_TILE_SIZE + 16] {
            let o = CogOptions {
                tile_size: t,
                ..base.clone()
            };
            assert!(matches!(enc(&o, &px), CogWriteError::BadTileSize(x) if x == t));
        }
        let o = CogOptions {
            width: 0,
            ..base.clone()
        };
        assert!(matches!(enc(&o, &[]), CogWriteError::ZeroSize { .. }));
        for nd in [-1.0, 0.5, 70_000.0, f64::NAN] {
            let o = CogOptions {
                nodata: Some(nd),
                ..base.clone()
            };
            assert!(matches!(enc(&o, &px), CogWriteError::InvalidNodata { .. }));
        }
        let o = CogOptions {
            nodata: Some(300.0),
            ..base.clone()
        };
        let e = encode_cog(CogPixels::U8(&[0; 100]), &o).unwrap_err();
        assert!(matches!(
            e,
            CogWriteError::InvalidNodata {
                pixel_type: "u8",
                ..
            }
        ));
        let o = CogOptions {
            deflate_level: 10,
            ..base.clone()
        };
        assert!(matches!(
            enc(&o, &px),
            CogWriteError::InvalidDeflateLevel(10)
        ));
        let o = CogOptions {
            resolution: 0.0,
            ..base.clone()
        };
        assert!(matches!(
            enc(&o, &px),
            CogWriteError::InvalidGeoreference(_)
        ));
        let o = CogOptions {
            width: usize::MAX,
            ..base.clone()
        };
        assert!(matches!(
            enc(&o, &px),
            CogWriteError::DimensionsTooLarge { .. }
        ));
    }
}
