//! What a COG's header says: image and overview sizes, tile grids, offsets,
//! sample type, compression, georeferencing and nodata — checked against
//! limits before anything is allocated from it.

use crate::fetch::ObjectVersion;
use crate::{Epsg, Error, GeoTransform, Result};
use async_tiff::ImageFileDirectory;
use async_tiff::tags::SampleFormat;
use std::ops::Range;

/// Largest image accepted, in pixels (2^34): beyond this a header is taken as corrupt.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 34;
/// Most IFDs read from one file (full resolution, overviews, masks): a
/// longer chain is taken as corrupt.
pub const MAX_IFDS: usize = 256;
/// Largest compressed tile accepted, in bytes (64 MiB).
pub const MAX_TILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest tile accepted, in pixels (4096 × 4096).
pub const MAX_TILE_PIXELS: u64 = 4096 * 4096;
/// Largest window one [`CogReader::read_window`](crate::CogReader::read_window) call returns, in pixels (2^28).
pub const MAX_WINDOW_PIXELS: u64 = 1 << 28;

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
/// use tilestack::{CogReader, HttpRangeClient, RetryConfig, TileCache};
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
    /// async-tiff's IFDs, for its generic decode path.
    pub(crate) raw: Vec<ImageFileDirectory>,
    /// Byte order of the file ("II" = little-endian).
    pub(crate) little_endian: bool,
}

impl CogHeader {
    pub(super) fn from_ifds(
        href: &str,
        raw: Vec<ImageFileDirectory>,
        little_endian: bool,
    ) -> Result<Self> {
        let bad = |m: String| Error::cog(href, m);
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
