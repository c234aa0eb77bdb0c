//! What a COG's header says: image and overview sizes, tile grids, offsets,
//! sample type, compression, georeferencing and nodata — checked against
//! limits before anything is allocated from it.

use std::ops::Range;

use async_tiff::ImageFileDirectory;
use async_tiff::tags::{PhotometricInterpretation, PlanarConfiguration, SampleFormat, Tag};

use crate::error::{Error, Result};
use crate::fetch::version::ObjectVersion;
use crate::geo::grid::GeoTransform;
use crate::units::Epsg;

/// Largest image accepted, in pixels (2^34): beyond this a header is taken as corrupt.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 34;
/// Most IFDs read from one file (full resolution, overviews, masks): a
/// longer chain is taken as corrupt.
pub const MAX_IFDS: usize = 256;
/// Largest compressed tile accepted, in bytes (64 MiB).
pub const MAX_TILE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest tile accepted, in pixels (4096 × 4096).
pub const MAX_TILE_PIXELS: u64 = 4096 * 4096;
/// Largest window one [`CogReader::read_window`](crate::cog::CogReader::read_window) call returns, in pixels (2^28).
pub const MAX_WINDOW_PIXELS: u64 = 1 << 28;

/// The numeric type a COG's samples are read as. Packed samples narrower
/// than their type (GDAL's `NBITS`: 1–7-bit masks and bands as [`SampleType::U8`],
/// 12-bit as [`SampleType::U16`], 17–31-bit as [`SampleType::U32`]) keep
/// their stored width in [`IfdInfo::bits_per_sample`].
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
    /// 16-bit (IEEE half) float.
    F16,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl SampleType {
    fn from_tags(format: &[SampleFormat], bits: &[u16]) -> Option<Self> {
        let f = format.first().copied().unwrap_or(SampleFormat::Uint);
        // Every sample of one type: mixed formats or depths are not read.
        if format.iter().any(|g| *g != f) || bits.iter().any(|b| Some(b) != bits.first()) {
            return None;
        }
        Some(match (f, *bits.first()?) {
            (SampleFormat::Uint, 1..=8) => SampleType::U8,
            (SampleFormat::Uint, 9..=16) => SampleType::U16,
            (SampleFormat::Uint, 17..=32) => SampleType::U32,
            (SampleFormat::Uint, 64) => SampleType::U64,
            (SampleFormat::Int, 8) => SampleType::I8,
            (SampleFormat::Int, 16) => SampleType::I16,
            (SampleFormat::Int, 32) => SampleType::I32,
            (SampleFormat::Int, 64) => SampleType::I64,
            (SampleFormat::Float, 16) => SampleType::F16,
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
    /// Bits per sample as stored (8 for u8, 16 for u16/i16/f16, 32 for f32…;
    /// 1 for GDAL's mask IFDs, 12 for `NBITS=12`: packed, MSB first).
    pub bits_per_sample: u16,
    /// Samples stored band by band (PlanarConfiguration 2, "separate"):
    /// each band has its own tiles; else pixel-interleaved ("chunky").
    pub planar: bool,
    /// Stored in strips, not tiles: each strip is read as a tile of the
    /// image's full width and RowsPerStrip rows ([`IfdInfo::tile_width`] and
    /// [`IfdInfo::tile_height`] then give that strip size).
    pub striped: bool,
    /// NewSubfileType (bit 0: a reduced-resolution overview, bit 2: a mask).
    pub subfile_type: u32,
    /// PhotometricInterpretation (0 WhiteIsZero, 1 BlackIsZero, 2 RGB,
    /// 3 palette, 4 mask, 5 CMYK/separated, 6 YCbCr, 8 CIELab).
    pub photometric: u16,
    /// ExtraSamples: what each sample beyond the colour ones is (0
    /// unspecified, 1 associated alpha, 2 unassociated alpha). They read as
    /// further bands, as GDAL reads them.
    pub extra_samples: Vec<u16>,
    /// YCbCrSubSampling (horizontal, vertical) of a YCbCr image: the tag's
    /// value, or TIFF's default (2, 2) when absent; `None` for other
    /// photometric interpretations.
    pub ycbcr_subsampling: Option<(u16, u16)>,
}

impl IfdInfo {
    /// Byte range of tile `(x, y)` (of the first band when the file is
    /// [planar](IfdInfo::planar)), `None` outside the tile grid.
    pub fn tile_range(&self, x: usize, y: usize) -> Option<Range<u64>> {
        self.chunk_range(x, y, 0)
    }

    /// Byte range of tile `(x, y)` holding band `band` (0-based): the one
    /// tile of all bands when pixel-interleaved, that band's own tile when
    /// [planar](IfdInfo::planar); `None` outside the grid or the bands.
    ///
    /// # Examples
    /// ```
    /// # use tilestack::cog::IfdInfo;
    /// let info = IfdInfo {
    ///     width: 20, height: 10, tile_width: 16, tile_height: 16, tiles_across: 2, tiles_down: 1,
    ///     tile_offsets: vec![100, 200, 300, 400], tile_byte_counts: vec![10, 20, 30, 40],
    ///     samples_per_pixel: 2, sample_type: None, compression: 1, predictor: 1,
    ///     bits_per_sample: 8, planar: true, striped: false, subfile_type: 0,
    ///     photometric: 1, extra_samples: vec![0], ycbcr_subsampling: None,
    /// };
    /// assert_eq!(info.chunk_range(1, 0, 1), Some(400..440)); // band 2's tile (1, 0)
    /// assert_eq!(info.chunk_range(0, 0, 2), None);
    /// ```
    pub fn chunk_range(&self, x: usize, y: usize, band: usize) -> Option<Range<u64>> {
        if x >= self.tiles_across || y >= self.tiles_down || band >= self.bands() {
            return None;
        }
        let per_band = if self.planar {
            self.tiles_across * self.tiles_down
        } else {
            0
        };
        let i = band * per_band + y * self.tiles_across + x;
        let (o, n) = (*self.tile_offsets.get(i)?, *self.tile_byte_counts.get(i)?);
        Some(o..o.checked_add(n)?)
    }

    /// The name of [`IfdInfo::compression`] ("DEFLATE", "ZSTD", "LERC"…;
    /// "unknown" for a code not in the TIFF registry).
    ///
    /// # Examples
    /// ```
    /// # use tilestack::cog::IfdInfo;
    /// let mut info = IfdInfo {
    ///     width: 1, height: 1, tile_width: 1, tile_height: 1, tiles_across: 1, tiles_down: 1,
    ///     tile_offsets: vec![8], tile_byte_counts: vec![1], samples_per_pixel: 1,
    ///     sample_type: None, compression: 50000, predictor: 1, bits_per_sample: 8,
    ///     planar: false, striped: false, subfile_type: 0, photometric: 1,
    ///     extra_samples: vec![], ycbcr_subsampling: None,
    /// };
    /// assert_eq!(info.compression_name(), "ZSTD");
    /// info.compression = 34887;
    /// assert_eq!(info.compression_name(), "LERC");
    /// ```
    pub fn compression_name(&self) -> &'static str {
        compression_name(self.compression)
    }

    /// Bands (samples per pixel, at least 1).
    pub fn bands(&self) -> usize {
        usize::from(self.samples_per_pixel.max(1))
    }

    /// Whether this IFD is a mask (NewSubfileType bit 2), e.g. GDAL's
    /// internal nodata mask.
    pub fn is_mask(&self) -> bool {
        self.subfile_type & 4 != 0
    }

    /// The name of [`IfdInfo::photometric`] ("minisblack", "rgb", "ycbcr",
    /// "cmyk"…, as GDAL's `PHOTOMETRIC` option spells them; "unknown" else).
    pub fn photometric_name(&self) -> &'static str {
        match self.photometric {
            0 => "miniswhite",
            1 => "minisblack",
            2 => "rgb",
            3 => "palette",
            4 => "mask",
            5 => "cmyk",
            6 => "ycbcr",
            8 => "cielab",
            9 => "icclab",
            10 => "itulab",
            _ => "unknown",
        }
    }

    /// Whether GDAL reads this image's samples as RGBA rather than as
    /// stored: 8-bit CMYK with 4 samples, which GDAL converts through
    /// libtiff's RGBA interface (R = (255 − K)(255 − C) / 255, …, alpha
    /// 255; signed samples taken as their bytes). Other CMYK images (16-bit,
    /// 5 samples) read raw, as GDAL reads them.
    pub fn cmyk_as_rgba(&self) -> bool {
        self.photometric == 5 && self.bits_per_sample == 8 && self.samples_per_pixel == 4
    }
}

/// What a COG's header says, parsed once per href.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::TileCache;
/// use tilestack::fetch::RetryConfig;
/// use tilestack::{CogReader, HttpRangeClient};
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
    /// Per band (index 0 = band 1): the scale GDAL's metadata gives
    /// (`<Item role="scale">`), `None` when absent. Physical value =
    /// raw × scale + offset; reads return raw values, as GDAL's do.
    pub scale: Vec<Option<f64>>,
    /// Per band: the offset GDAL's metadata gives (`<Item role="offset">`).
    pub offset: Vec<Option<f64>>,
    /// Byte offset of each IFD in the file, in file order.
    pub ifd_offsets: Vec<u64>,
    /// BigTIFF (64-bit offsets).
    pub bigtiff: bool,
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
            let spp = u64::from(d.samples_per_pixel().max(1));
            let planar = spp > 1 && d.planar_configuration() == PlanarConfiguration::Planar;
            // Strips are tiles of the full width and RowsPerStrip rows
            // (absent or larger than the image: one strip).
            let striped = d.tile_width().is_none() && d.strip_offsets().is_some();
            let (tw, th) = if striped {
                let rps = d.rows_per_strip().map_or(h, u64::from).clamp(1, h.max(1));
                (w, rps)
            } else {
                (
                    d.tile_width().unwrap_or(0) as u64,
                    d.tile_height().unwrap_or(0) as u64,
                )
            };
            let what = if striped { "strips" } else { "tiles" };
            let chunk_samples = tw * th * if planar { 1 } else { spp };
            if tw * th > MAX_TILE_PIXELS || chunk_samples > 4 * MAX_TILE_PIXELS {
                return Err(bad(format!(
                    "IFD {i} declares {tw}×{th} px {what} of {spp} samples, over the limit \
                     ({MAX_TILE_PIXELS} px, {} samples)",
                    4 * MAX_TILE_PIXELS
                )));
            }
            let (offsets, counts) = if striped {
                (d.strip_offsets(), d.strip_byte_counts())
            } else {
                (d.tile_offsets(), d.tile_byte_counts())
            };
            let counts = counts.unwrap_or(&[]).to_vec();
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
            let offsets = offsets.unwrap_or(&[]).to_vec();
            let chunks = across * down * if planar { spp as usize } else { 1 };
            if tw > 0 && (offsets.len() < chunks || counts.len() < chunks) {
                return Err(bad(format!(
                    "IFD {i}: {} {what} offsets / {} byte counts for {across}×{down} {what}{}",
                    offsets.len(),
                    counts.len(),
                    if planar {
                        format!(" × {spp} bands")
                    } else {
                        String::new()
                    }
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
                bits_per_sample: d.bits_per_sample().first().copied().unwrap_or(1),
                planar,
                striped,
                subfile_type: d.new_subfile_type().unwrap_or(0),
                photometric: d.photometric_interpretation().to_u16(),
                extra_samples: d
                    .extra_samples()
                    .unwrap_or(&[])
                    .iter()
                    .map(|e| e.to_u16())
                    .collect(),
                ycbcr_subsampling: ycbcr_subsampling(d),
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
            Some(code) => Some(
                Epsg::new(code.into())
                    .map_err(|e| Error::cog_because(href, "its GeoKeys' EPSG code", e))?,
            ),
            None => None,
        };
        let nodata = match first.gdal_nodata() {
            Some(s) => {
                let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
                Some(match s.to_ascii_lowercase().as_str() {
                    "nan" => f64::NAN,
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    v => v.parse::<f64>().map_err(|e| {
                        Error::cog_because(href, format!("GDAL_NODATA {s:?} is not a number"), e)
                    })?,
                })
            }
            None => None,
        };
        let f = &ifds[0];
        let (scale, offset) = scale_offset(first.gdal_metadata().unwrap_or(""), f.bands());
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
            scale,
            offset,
            ifd_offsets: Vec::new(),
            bigtiff: false,
            ifds,
            version: ObjectVersion::default(),
            raw,
            little_endian,
        })
    }

    /// Whether the file is little-endian ("II"); big-endian ("MM") otherwise.
    pub fn little_endian(&self) -> bool {
        self.little_endian
    }

    /// The index of the mask IFD of IFD `ifd` (GDAL's internal nodata mask:
    /// `NewSubfileType` bit 2, the same size), if it has one.
    pub fn mask_ifd(&self, ifd: usize) -> Option<usize> {
        let info = self.ifds.get(ifd)?;
        self.ifds
            .iter()
            .position(|m| m.is_mask() && m.width == info.width && m.height == info.height)
    }

    /// Why this file's layout is not a valid Cloud-Optimized GeoTIFF, as
    /// GDAL's `validate_cloud_optimized_geotiff.py` and `rio cogeo validate`
    /// judge it: `(errors, warnings)`; no errors = a valid COG layout.
    /// Checks: the full-resolution image and overviews are tiled, the
    /// IFDs come first in file order (main, then overviews from largest),
    /// overviews shrink, the main IFD starts near the start of the file,
    /// overview tiles come before the main image's, and an image over
    /// 512 px has overviews (a warning, as there).
    ///
    /// # Examples
    /// ```no_run
    /// # tokio_test::block_on(async {
    /// use tilestack::cog::TileCache;
    /// use tilestack::fetch::RetryConfig;
    /// use tilestack::{CogReader, HttpRangeClient};
    /// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 20));
    /// let (errors, warnings) = reader.header("file:///data/a.tif").await?.cog_layout();
    /// if errors.is_empty() { println!("a valid COG ({} warnings)", warnings.len()) }
    /// # Ok::<(), tilestack::Error>(())
    /// # });
    /// ```
    pub fn cog_layout(&self) -> (Vec<String>, Vec<String>) {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let Some(main) = self.ifds.first() else {
            return (vec!["no IFD".into()], warnings);
        };
        if main.striped || main.tile_width == 0 {
            if main.width > 512 || main.height > 512 {
                errors.push("the full-resolution image is not tiled (strips)".to_string());
            } else {
                warnings.push("the image is not tiled (fine under 512 px)".to_string());
            }
        }
        let overviews: Vec<(usize, &IfdInfo)> = self
            .ifds
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, i)| !i.is_mask())
            .collect();
        if overviews.is_empty() && (main.width > 512 || main.height > 512) {
            warnings.push(format!(
                "{}×{} px without overviews: zoomed-out reads fetch the whole image",
                main.width, main.height
            ));
        }
        let mut prev = main;
        for &(i, o) in &overviews {
            if o.striped || o.tile_width == 0 {
                errors.push(format!("overview IFD {i} is not tiled"));
            }
            if o.width > prev.width || o.height > prev.height {
                errors.push(format!(
                    "overview IFD {i} ({}×{}) is larger than the image before it ({}×{})",
                    o.width, o.height, prev.width, prev.height
                ));
            }
            prev = o;
        }
        if let Some(&first) = self.ifd_offsets.first() {
            if first > 300 && !self.bigtiff || first > 600 {
                errors.push(format!(
                    "the main IFD is at byte {first}, not at the start of the file"
                ));
            }
            if self.ifd_offsets.windows(2).any(|w| w[1] < w[0]) {
                errors.push(
                    "IFDs are not in increasing file order (the header is not all at the start)"
                        .to_string(),
                );
            }
        }
        // Data: the smallest overview's tiles first, the main image's last.
        let first_data = |info: &IfdInfo| {
            info.tile_offsets
                .iter()
                .zip(&info.tile_byte_counts)
                .filter(|(_, n)| **n > 0)
                .map(|(o, _)| *o)
                .min()
        };
        let last_ifd = self.ifd_offsets.iter().copied().max().unwrap_or(0);
        if let Some(d) = first_data(main)
            && d < last_ifd
        {
            errors.push(format!(
                "tile data of the main image (byte {d}) comes before the last IFD (byte {last_ifd})"
            ));
        }
        for &(i, o) in &overviews {
            if let (Some(m), Some(v)) = (first_data(main), first_data(o))
                && v > m
            {
                errors.push(format!(
                    "tile data of overview IFD {i} (byte {v}) comes after the main image's (byte {m})"
                ));
                break;
            }
        }
        (errors, warnings)
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

/// Per-band scale and offset from GDAL's metadata XML (`<Item name="SCALE"
/// sample="0" role="scale">0.0001</Item>`); bands without one get `None`.
fn scale_offset(xml: &str, bands: usize) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let (mut scale, mut offset) = (vec![None; bands], vec![None; bands]);
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[at..].find('"')?;
        Some(tag[at..at + end].to_string())
    };
    for item in xml.split("<Item").skip(1) {
        let Some(close) = item.find('>') else {
            continue;
        };
        let (tag, rest) = item.split_at(close);
        let value = rest[1..].split("</Item>").next().unwrap_or("").trim();
        let Some(band) = attr(tag, "sample").and_then(|b| b.parse::<usize>().ok()) else {
            continue;
        };
        let slot = match attr(tag, "role").as_deref() {
            Some("scale") => &mut scale,
            Some("offset") => &mut offset,
            _ => continue,
        };
        if let (Some(s), Ok(v)) = (slot.get_mut(band), value.parse::<f64>()) {
            *s = Some(v);
        }
    }
    (scale, offset)
}

/// YCbCrSubSampling (tag 530) of a YCbCr IFD: the tag, else TIFF's default
/// (2, 2); `None` when the image is not YCbCr.
fn ycbcr_subsampling(d: &ImageFileDirectory) -> Option<(u16, u16)> {
    if d.photometric_interpretation() != PhotometricInterpretation::YCbCr {
        return None;
    }
    let tag = d
        .other_tags()
        .get(&Tag::Unknown(530))
        .and_then(|v| v.clone().into_u16_vec().ok());
    Some(match tag.as_deref() {
        Some([h, v, ..]) => (*h, *v),
        _ => (2, 2),
    })
}

/// The name of a TIFF compression code, for messages and `tilestack info`
/// (public as [`IfdInfo::compression_name`]).
pub(crate) fn compression_name(code: u16) -> &'static str {
    match code {
        1 => "none",
        2 => "CCITT RLE",
        3 => "CCITT Group 3",
        4 => "CCITT Group 4",
        5 => "LZW",
        6 => "old-style JPEG",
        7 => "JPEG",
        8 | 32946 => "DEFLATE",
        32773 => "PackBits",
        34712 => "JPEG 2000",
        34887 => "LERC",
        34925 => "LZMA",
        50000 => "ZSTD",
        50001 => "WebP",
        50002 => "JPEG XL",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdal_metadata_scale_and_offset_per_band() {
        let xml = r#"<GDALMetadata>
  <Item name="OFFSET" sample="0" role="offset">-1000</Item>
  <Item name="SCALE" sample="0" role="scale">0.0001</Item>
  <Item name="SCALE" sample="2" role="scale">2.5</Item>
  <Item name="SCALE" sample="9" role="scale">7</Item>
  <Item name="DESCRIPTION" sample="1" role="description">nir</Item>
</GDALMetadata>"#;
        let (s, o) = scale_offset(xml, 3);
        assert_eq!(s, vec![Some(0.0001), None, Some(2.5)]);
        assert_eq!(o, vec![Some(-1000.0), None, None]);
        assert_eq!(scale_offset("", 1), (vec![None], vec![None]));
        assert_eq!(
            scale_offset("<Item sample=\"0\" role=\"scale\">x", 1).0,
            vec![None]
        );
    }
}
