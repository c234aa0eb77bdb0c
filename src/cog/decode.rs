//! Tile decode, sync and on blocking threads: a fast path for the common
//! COG (little-endian 8/16-bit DEFLATE, predictor 1/2: libdeflate straight
//! into native samples, stopping at the rows a window needs) and async-tiff's
//! decoders for everything else.

use super::header::{CogHeader, SampleType};
use super::source::Fetched;
use super::tile::{Samples, Tile, TileData};
use crate::error::Cause;
use crate::{Error, Result};
use async_tiff::TypedArray;
use async_tiff::decoder::DecoderRegistry;
use async_tiff::tags::PlanarConfiguration;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

/// Extra output room of a partial inflate: more than the longest element
/// libdeflate writes at once (a 65,535-byte stored block).
const PARTIAL_SLACK: usize = 66 * 1024;
/// Decodes tile `(x, y)` of IFD `ifd` from its compressed `bytes` (fetched
/// by any means: the reader's own fetch, a shard, a test) on a blocking
/// thread: the whole tile, nodata as NaN. What [`CogReader::read_window`](crate::CogReader::read_window)
/// does to every tile it fetches, without the fetch and the cache.
///
/// # Errors
/// [`Error::Cog`] naming the href, tile and byte range when the bytes do not
/// decode to the tile's size.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::{decode_tile, CogReader, HttpRangeClient, RetryConfig, TileCache};
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
    let info = &header.ifds[ifd];
    let (tw, th) = (info.tile_width, info.tile_height);
    let n = tw * th;
    let Some(bytes) = bytes else {
        return Ok(Arc::new(Tile::full(tw, th, vec![f32::NAN; n])));
    };
    let what = format!("tile ({x}, {y}) of IFD {ifd} (bytes {range:?})");
    let href = header.href.clone();
    let caused = move |m: &str, source: Option<Cause>| Error::Cog {
        href: href.clone(),
        message: format!("{what}: {m}"),
        source,
    };
    let bad = |m: String| caused(&m, None);
    if let Some(fast) = FastDeflate::of(&header, ifd) {
        let nodata = header.nodata;
        let decoded = tokio::task::spawn_blocking(move || fast.decode(&bytes, nodata, rows))
            .await
            .map_err(|e| caused("decoder task failed", Some(Cause::new(e))))?
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
        .map_err(|e| caused("reading the tile", Some(Cause::new(e))))?;
    let nodata = header.nodata;
    let decoded = tokio::task::spawn_blocking(move || -> std::result::Result<Vec<f32>, Cause> {
        let arr = tile
            .decode(&DecoderRegistry::default())
            .map_err(Cause::new)?;
        let (data, _, _) = arr.into_inner();
        let mut v = to_f32(data);
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
    .map_err(|e| caused("decoder task failed", Some(Cause::new(e))))?
    .map_err(|e| caused("decoding", Some(e)))?;
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

fn to_f32(data: TypedArray) -> Vec<f32> {
    match data {
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
    }
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
