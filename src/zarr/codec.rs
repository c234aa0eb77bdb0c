//! Decoding stored chunks: bytes-to-bytes codecs undone in reverse (Blosc,
//! Zstandard, gzip, zlib, CRC-32C), then the samples' byte order; a shard's
//! index; and samples turned into the cache's [`Tile`]s. Pure and sync: the
//! reader runs it on blocking threads.

use std::ops::Range;

use crate::cog::tile::{Samples, Tile};
use crate::zarr::blosc;
use crate::zarr::meta::{BytesCodec, DataType, Endian, Pipeline, Sharding};

/// Slack over a chunk's decoded size that an intermediate stage may have
/// (a checksum, a codec's framing).
const SLACK: usize = 1 << 16;

/// Undoes `pipeline` on one stored (inner) chunk: `expected` is the decoded
/// size in bytes (chunk elements × sample size). Returns the samples in
/// little-endian order.
///
/// # Errors
/// A message naming the codec that failed and why (the caller names store,
/// array and chunk).
pub(crate) fn decode_chunk(
    pipeline: &Pipeline,
    dtype: DataType,
    stored: &[u8],
    expected: usize,
) -> Result<Vec<u8>, String> {
    let mut buf: Option<Vec<u8>> = None;
    for codec in pipeline.codecs.iter().rev() {
        let input: &[u8] = buf.as_deref().unwrap_or(stored);
        let limit = expected + SLACK;
        let out = match codec {
            BytesCodec::Crc32c => {
                let (data, sum) = split_crc(input)?;
                let want = crc32c(data);
                if sum != want {
                    return Err(format!(
                        "crc32c: checksum {sum:#010x} stored, {want:#010x} computed"
                    ));
                }
                data.to_vec()
            }
            BytesCodec::Blosc => blosc::decompress(input, limit).map_err(|e| e.to_string())?,
            BytesCodec::Zstd => zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress(input, limit))
                .map_err(|e| format!("zstd: {e}"))?,
            BytesCodec::Gzip | BytesCodec::Zlib => {
                let mut out = vec![0u8; limit];
                let mut d = libdeflater::Decompressor::new();
                let n = if *codec == BytesCodec::Gzip {
                    d.gzip_decompress(input, &mut out)
                } else {
                    d.zlib_decompress(input, &mut out)
                }
                .map_err(|e| format!("{}: {e}", codec.name()))?;
                out.truncate(n);
                out
            }
        };
        buf = Some(out);
    }
    let mut out = buf.unwrap_or_else(|| stored.to_vec());
    if out.len() != expected {
        return Err(format!(
            "decoded to {} bytes, expected {expected} ({} samples of {})",
            out.len(),
            expected / dtype.size().max(1),
            dtype.name()
        ));
    }
    if pipeline.endian == Endian::Big && dtype.size() > 1 {
        for s in out.chunks_exact_mut(dtype.size()) {
            s.reverse();
        }
    }
    Ok(out)
}

fn split_crc(b: &[u8]) -> Result<(&[u8], u32), String> {
    let n = b
        .len()
        .checked_sub(4)
        .ok_or_else(|| format!("crc32c: {} bytes, shorter than the checksum", b.len()))?;
    let sum = u32::from_le_bytes([b[n], b[n + 1], b[n + 2], b[n + 3]]);
    Ok((&b[..n], sum))
}

/// CRC-32C (Castagnoli), as Zarr's `crc32c` codec computes it.
///
/// ```
/// assert_eq!(tilestack::zarr::crc32c(b"123456789"), 0xe306_9283);
/// ```
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82f6_3b78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// A shard's index: for each inner chunk (C order), its byte range in the
/// shard, or `None` for a chunk never written.
pub type ShardIndex = Vec<Option<Range<u64>>>;

/// Parses a shard index of `n` entries from `bytes` (exactly
/// [`Sharding::index_len`] of them), checking its checksum and that every
/// range lies inside a shard of `shard_len` bytes (when known) and outside
/// the index itself.
///
/// # Errors
/// A message saying which entry is wrong.
///
/// # Examples
/// ```
/// use tilestack::zarr::parse_shard_index;
/// // two entries, little-endian, no checksum: chunk 0 at 0..10, chunk 1 missing
/// let mut b = Vec::new();
/// for v in [0u64, 10, u64::MAX, u64::MAX] { b.extend(v.to_le_bytes()); }
/// let idx = parse_shard_index(&b, 2, false, false, Some(42), 10..42).unwrap();
/// assert_eq!(idx, vec![Some(0..10), None]);
/// // an entry past the end of an 8-byte shard
/// assert!(parse_shard_index(&b, 2, false, false, Some(8), 8..40).is_err());
/// ```
pub fn parse_shard_index(
    bytes: &[u8],
    n: usize,
    big_endian: bool,
    crc: bool,
    shard_len: Option<u64>,
    index_at: Range<u64>,
) -> Result<ShardIndex, String> {
    let want = 16 * n + if crc { 4 } else { 0 };
    if bytes.len() != want {
        return Err(format!(
            "shard index of {} bytes, expected {want} ({n} entries)",
            bytes.len()
        ));
    }
    let data = if crc {
        let (data, sum) = split_crc(bytes)?;
        let computed = crc32c(data);
        if sum != computed {
            return Err(format!(
                "shard index checksum {sum:#010x} stored, {computed:#010x} computed"
            ));
        }
        data
    } else {
        bytes
    };
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&data[8 * i..8 * i + 8]);
        if big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    };
    (0..n)
        .map(|k| {
            let (off, len) = (u64_at(2 * k), u64_at(2 * k + 1));
            if off == u64::MAX && len == u64::MAX {
                return Ok(None);
            }
            let end = off.checked_add(len).ok_or_else(|| {
                format!("shard index entry {k}: offset {off} + {len} bytes overflows")
            })?;
            if let Some(size) = shard_len
                && end > size
            {
                return Err(format!(
                    "shard index entry {k} points to bytes {off}..{end}, past the shard's {size} bytes"
                ));
            }
            if off < index_at.end && end > index_at.start && len > 0 {
                return Err(format!(
                    "shard index entry {k} points to bytes {off}..{end}, inside the index"
                ));
            }
            Ok(Some(off..end))
        })
        .collect()
}

/// Where a shard's index lies, given the shard's size (needed for an index
/// at the end).
pub(crate) fn index_range(s: &Sharding, n: u64, shard_len: Option<u64>) -> Option<Range<u64>> {
    let len = s.index_len(n);
    match s.index_location {
        crate::zarr::meta::IndexLocation::Start => Some(0..len),
        crate::zarr::meta::IndexLocation::End => {
            let size = shard_len?;
            Some(size.checked_sub(len)?..size)
        }
    }
}

/// Samples of a decoded chunk as a cache tile: `rows × cols` from `plane`
/// (the 2-D plane at byte offset `plane * rows * cols * size`). 8 and
/// 16-bit unsigned samples stay native (with nodata); others become f32
/// with nodata as NaN.
pub(crate) fn to_tile(
    dtype: DataType,
    le: &[u8],
    plane: usize,
    rows: usize,
    cols: usize,
    nodata: Option<f64>,
) -> Tile {
    let n = rows * cols;
    let size = dtype.size();
    let start = plane * n * size;
    let src = le.get(start..start + n * size).unwrap_or(&[]);
    let samples = match dtype {
        DataType::U8 | DataType::Bool => Samples::U8 {
            values: src.to_vec(),
            nodata: nodata.and_then(exact::<u8>),
        },
        DataType::U16 => Samples::U16 {
            le_bytes: src.to_vec(),
            nodata: nodata.and_then(exact::<u16>),
        },
        _ => {
            let mut v: Vec<f32> = Vec::with_capacity(n);
            for s in src.chunks_exact(size) {
                let x = sample_f64(dtype, s);
                let is_nodata = nodata.is_some_and(|nd| x == nd || (x.is_nan() && nd.is_nan()));
                v.push(if is_nodata { f32::NAN } else { x as f32 });
            }
            Samples::F32(v)
        }
    };
    Tile {
        width: cols,
        height: rows,
        rows: if src.is_empty() && n > 0 { 0 } else { rows },
        samples,
        compressed: None,
    }
}

/// `v` as `T` when it is one exactly (a nodata value that a sample can equal).
fn exact<T: TryFrom<i64>>(v: f64) -> Option<T> {
    if v.fract() == 0.0 && v.is_finite() {
        T::try_from(v as i64).ok()
    } else {
        None
    }
}

/// One little-endian sample as f64.
pub(crate) fn sample_f64(dtype: DataType, s: &[u8]) -> f64 {
    let a = |n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&s[..n]);
        b
    };
    match dtype {
        DataType::Bool | DataType::U8 => f64::from(s[0]),
        DataType::I8 => f64::from(s[0] as i8),
        DataType::U16 => f64::from(u16::from_le_bytes([s[0], s[1]])),
        DataType::I16 => f64::from(i16::from_le_bytes([s[0], s[1]])),
        DataType::U32 => f64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        DataType::I32 => f64::from(i32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        DataType::F32 => f64::from(f32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        DataType::U64 => u64::from_le_bytes(a(8)) as f64,
        DataType::I64 => i64::from_le_bytes(a(8)) as f64,
        DataType::F64 => f64::from_le_bytes(a(8)),
    }
}

/// The little-endian bytes of `n` samples of `dtype` equal to `value`
/// (a chunk never written).
pub(crate) fn filled(dtype: DataType, value: f64, n: usize) -> Vec<u8> {
    let one: Vec<u8> = match dtype {
        DataType::Bool | DataType::U8 => vec![value as u8],
        DataType::I8 => (value as i8).to_le_bytes().to_vec(),
        DataType::U16 => (value as u16).to_le_bytes().to_vec(),
        DataType::I16 => (value as i16).to_le_bytes().to_vec(),
        DataType::U32 => (value as u32).to_le_bytes().to_vec(),
        DataType::I32 => (value as i32).to_le_bytes().to_vec(),
        DataType::U64 => (value as u64).to_le_bytes().to_vec(),
        DataType::I64 => (value as i64).to_le_bytes().to_vec(),
        DataType::F32 => (value as f32).to_le_bytes().to_vec(),
        DataType::F64 => value.to_le_bytes().to_vec(),
    };
    one.repeat(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn index_entries_are_checked() {
        let mut b = Vec::new();
        for v in [100u64, 10, u64::MAX, u64::MAX, 5, 3] {
            b.extend(v.to_le_bytes());
        }
        let mut with_crc = b.clone();
        with_crc.extend(crc32c(&b).to_le_bytes());
        let ok = parse_shard_index(&with_crc, 3, false, true, Some(200), 110..162).unwrap();
        assert_eq!(ok, vec![Some(100..110), None, Some(5..8)]);
        // checksum
        let mut bad = with_crc.clone();
        bad[0] ^= 1;
        assert!(
            parse_shard_index(&bad, 3, false, true, Some(200), 110..162)
                .unwrap_err()
                .contains("checksum")
        );
        // past the end, inside the index, overflowing, short
        assert!(
            parse_shard_index(&b, 3, false, false, Some(109), 0..0)
                .unwrap_err()
                .contains("past the shard")
        );
        assert!(
            parse_shard_index(&b, 3, false, false, Some(200), 0..50)
                .unwrap_err()
                .contains("inside the index")
        );
        let mut over = b.clone();
        over[0..8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        let e = format!(
            "{:?}",
            (parse_shard_index(&over, 3, false, false, None, 0..0)).unwrap_err()
        );
        assert!(
            e.contains("offset 18446744073709551613 + 10 bytes overflows"),
            "{e}"
        );
        let e = format!(
            "{:?}",
            (parse_shard_index(&b[..40], 3, false, false, None, 0..0)).unwrap_err()
        );
        assert!(
            e.contains("shard index of 40 bytes, expected 48 (3 entries)"),
            "{e}"
        );
    }

    #[test]
    fn tiles_keep_u16_native_and_mask_nodata() {
        let le: Vec<u8> = [1u16, 0, 3, 4]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = to_tile(DataType::U16, &le, 0, 2, 2, Some(0.0));
        assert!(matches!(
            t.samples,
            Samples::U16 {
                nodata: Some(0),
                ..
            }
        ));
        let v = t.to_f32();
        assert_eq!(v[0], 1.0);
        assert!(v[1].is_nan());
        let le: Vec<u8> = [-1i16, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = to_tile(DataType::I16, &le, 0, 1, 2, Some(-1.0));
        let v = t.to_f32();
        assert!(v[0].is_nan() && v[1] == 7.0);
        // plane 1 of a 2-plane chunk
        let le = filled(DataType::F32, 2.5, 8);
        assert_eq!(
            to_tile(DataType::F32, &le, 1, 2, 2, None).to_f32(),
            vec![2.5; 4]
        );
    }
}
