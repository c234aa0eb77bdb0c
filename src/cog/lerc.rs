//! LERC tiles (TIFF compression 34887: Esri's Limited Error Raster
//! Compression, format "Lerc2"), decoded in pure Rust: no C++ library, no
//! bindgen. Written from Esri's open description of the format
//! (github.com/Esri/lerc); the layout of one blob, all integers
//! little-endian:
//!
//! - **header**: `"Lerc2 "`, version (2 to 6), a Fletcher-32 checksum of the
//!   rest of the blob (version 3 on, verified here), then rows, columns,
//!   values per pixel (`nDepth`, version 4 on), valid pixels, micro-block
//!   size, blob size and data type as `i32`s, and maxZError, zMin, zMax as
//!   `f64`s (version 6 adds a blob count, four flag bytes and two nodata
//!   values);
//! - **valid-pixel mask**: a byte count, then (when some but not all pixels
//!   are valid) a run-length coded bitmap, most significant bit first;
//! - **per-depth minima and maxima** (version 4 on), unless the image is
//!   constant;
//! - **data**: either every valid value raw ("one sweep"), or Huffman codes
//!   (8-bit data, lossless), or micro-blocks of up to 32×32 pixels, each per
//!   depth one of: raw values, constant 0, constant offset, or an offset plus
//!   bit-stuffed integers scaled by `2 · maxZError` (optionally through a
//!   lookup table).
//!
//! A TIFF tile is one blob holding every sample of a pixel (`nDepth` = the
//! samples per pixel), or several blobs one after the other (GDAL writes one
//! per band for multi-band floats with per-band masks), possibly compressed
//! again as a whole with DEFLATE or ZSTD (the LercParameters tag, 33302:
//! `[version, 0 none | 1 deflate | 2 zstd]`). Masked pixels read as GDAL
//! reads them: NaN for floats, 0 for integers; a `u8` tile whose blob holds
//! one sample less than the pixel has its last sample (alpha) from the mask,
//! 255 where valid.
//!
//! Every size is checked against the tile's own (rows, columns, samples), so
//! hostile input allocates at most a few times the tile and ends in an error,
//! never a panic.

use crate::cog::header::SampleType;

/// TIFF compression code of LERC.
pub(crate) const COMPRESSION: u16 = 34887;

/// Why a LERC tile did not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LercError {
    /// The blob ends before a part that it declares.
    #[error("LERC blob truncated: {what} needs {need} bytes, {have} left")]
    Truncated {
        /// The part being read.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// The bytes do not start with a Lerc2 header.
    #[error("not a Lerc2 blob (starts with {0:02x?})")]
    NotLerc2(Vec<u8>),
    /// The stored checksum does not match the blob's bytes.
    #[error("LERC checksum {stored:#010x} does not match the blob's {computed:#010x}")]
    Checksum {
        /// In the header.
        stored: u32,
        /// Of the bytes.
        computed: u32,
    },
    /// The blob's size, type or values per pixel do not fit the tile.
    #[error("LERC blob does not fit the tile: {0}")]
    Shape(String),
    /// The blob is inconsistent with itself.
    #[error("corrupt LERC blob: {0}")]
    Corrupt(String),
    /// A valid LERC feature this decoder does not read.
    #[error("{0} is not supported")]
    Unsupported(String),
}

type Result<T, E = LercError> = std::result::Result<T, E>;

fn corrupt(what: impl Into<String>) -> LercError {
    LercError::Corrupt(what.into())
}

/// Decodes one LERC tile (or strip) of `rows × width` pixels of `samples`
/// values each into pixel-interleaved f32 samples. `params` is the IFD's
/// LercParameters tag (none: no further compression).
pub(crate) fn decode_chunk(
    bytes: &[u8],
    params: Option<&[u32]>,
    width: usize,
    rows: usize,
    samples: usize,
    sample_type: SampleType,
) -> Result<Vec<f32>> {
    let dt = DataType::of(sample_type)?;
    let raw_len = width
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(samples))
        .and_then(|n| n.checked_mul(dt.size()))
        .ok_or_else(|| LercError::Shape(format!("{width}×{rows}×{samples} overflows")))?;
    // A blob is at most a little larger than the raw samples (headers, one
    // blob per band, micro-block flags): the cap of a decompressed tile.
    let cap = raw_len + raw_len / 2 + 64 * 1024;
    let inner;
    let blobs: &[u8] = match params.and_then(|p| p.get(1)).copied().unwrap_or(0) {
        0 => bytes,
        1 => {
            let mut out = vec![0u8; cap];
            let n = libdeflater::Decompressor::new()
                .zlib_decompress(bytes, &mut out)
                .map_err(|e| corrupt(format!("DEFLATE around the LERC blob: {e}")))?;
            out.truncate(n);
            inner = out;
            &inner
        }
        2 => {
            inner = zstd::bulk::decompress(bytes, cap)
                .map_err(|e| corrupt(format!("ZSTD around the LERC blob: {e}")))?;
            &inner
        }
        n => {
            return Err(LercError::Unsupported(format!(
                "LERC additional compression {n}"
            )));
        }
    };
    let shape = Shape {
        width,
        rows,
        samples,
    };
    match dt {
        DataType::I8 => decode_bands::<i8>(blobs, shape),
        DataType::U8 => decode_bands::<u8>(blobs, shape),
        DataType::I16 => decode_bands::<i16>(blobs, shape),
        DataType::U16 => decode_bands::<u16>(blobs, shape),
        DataType::I32 => decode_bands::<i32>(blobs, shape),
        DataType::U32 => decode_bands::<u32>(blobs, shape),
        DataType::F32 => decode_bands::<f32>(blobs, shape),
        DataType::F64 => decode_bands::<f64>(blobs, shape),
    }
}

/// The tile a chunk's blobs must fill.
#[derive(Debug, Clone, Copy)]
struct Shape {
    width: usize,
    rows: usize,
    samples: usize,
}

/// The blobs of one chunk, one after the other, filling the samples of each
/// pixel in order.
fn decode_bands<T: Sample>(mut blobs: &[u8], shape: Shape) -> Result<Vec<f32>> {
    let n = shape.width * shape.rows;
    let mut out = vec![0f32; n * shape.samples];
    let mut band = 0;
    while band < shape.samples {
        if blobs.is_empty() {
            return Err(LercError::Shape(format!(
                "blobs hold {band} of the tile's {} samples per pixel",
                shape.samples
            )));
        }
        let hd = Header::parse(blobs)?;
        if hd.cols != shape.width || hd.rows != shape.rows {
            return Err(LercError::Shape(format!(
                "{}×{} pixels in a {}×{} tile",
                hd.cols, hd.rows, shape.width, shape.rows
            )));
        }
        if hd.dt != T::DT {
            return Err(LercError::Shape(format!(
                "{:?} values in a tile of {:?}",
                hd.dt,
                T::DT
            )));
        }
        if band + hd.depth > shape.samples {
            return Err(LercError::Shape(format!(
                "{} values per pixel after {band} of {}",
                hd.depth, shape.samples
            )));
        }
        let (blob, rest) = blobs.split_at(hd.blob_size);
        let (values, mask) = decode_blob::<T>(blob, &hd)?;
        let depth = hd.depth;
        for k in 0..n {
            let valid = mask.valid(k);
            let px = &mut out[k * shape.samples + band..][..depth];
            for (d, o) in px.iter_mut().enumerate() {
                *o = if valid {
                    values[k * depth + d].to_f32()
                } else {
                    T::MASKED
                };
            }
        }
        let first = band == 0;
        band += depth;
        blobs = rest;
        if first && blobs.is_empty() && band + 1 == shape.samples && T::DT == DataType::U8 {
            // GDAL's RGBA: one blob of every band but alpha, which is its mask
            for k in 0..n {
                out[k * shape.samples + band] = if mask.valid(k) { 255.0 } else { 0.0 };
            }
            band += 1;
        }
    }
    if !blobs.is_empty() {
        return Err(LercError::Shape(format!(
            "{} bytes after the blobs of all {} samples per pixel",
            blobs.len(),
            shape.samples
        )));
    }
    Ok(out)
}

/// Lerc2 data types, in the format's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DataType {
    I8 = 0,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl DataType {
    fn from_code(c: i32) -> Option<DataType> {
        Some(match c {
            0 => DataType::I8,
            1 => DataType::U8,
            2 => DataType::I16,
            3 => DataType::U16,
            4 => DataType::I32,
            5 => DataType::U32,
            6 => DataType::F32,
            7 => DataType::F64,
            _ => return None,
        })
    }

    fn of(t: SampleType) -> Result<DataType> {
        Ok(match t {
            SampleType::I8 => DataType::I8,
            SampleType::U8 => DataType::U8,
            SampleType::I16 => DataType::I16,
            SampleType::U16 => DataType::U16,
            SampleType::I32 => DataType::I32,
            SampleType::U32 => DataType::U32,
            SampleType::F32 => DataType::F32,
            SampleType::F64 => DataType::F64,
            other => {
                return Err(LercError::Unsupported(format!(
                    "LERC with {other:?} samples"
                )));
            }
        })
    }

    fn size(self) -> usize {
        match self {
            DataType::I8 | DataType::U8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::F64 => 8,
        }
    }

    /// The type a micro-block's offset is stored in: the block's type
    /// narrowed by the code in the flag byte's top two bits.
    fn narrowed(self, code: u8) -> Option<DataType> {
        let (c, code) = (self as i32, i32::from(code));
        match self {
            DataType::I16 | DataType::I32 => DataType::from_code(c - code),
            DataType::U16 | DataType::U32 => DataType::from_code(c - 2 * code),
            DataType::F32 => Some(match code {
                0 => self,
                1 => DataType::I16,
                _ => DataType::U8,
            }),
            DataType::F64 if code == 0 => Some(self),
            DataType::F64 => DataType::from_code(c - 2 * code + 1),
            DataType::I8 | DataType::U8 => Some(self),
        }
    }

    /// A value of this type from its little-endian bytes (`b` holds
    /// [`DataType::size`] bytes).
    fn read(self, b: &[u8]) -> f64 {
        let mut a = [0u8; 8];
        a[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
        match self {
            DataType::I8 => f64::from(a[0] as i8),
            DataType::U8 => f64::from(a[0]),
            DataType::I16 => f64::from(i16::from_le_bytes([a[0], a[1]])),
            DataType::U16 => f64::from(u16::from_le_bytes([a[0], a[1]])),
            DataType::I32 => f64::from(i32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            DataType::U32 => f64::from(u32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            DataType::F32 => f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            DataType::F64 => f64::from_le_bytes(a),
        }
    }
}

/// A sample type a blob decodes to.
trait Sample: Copy + Default {
    const DT: DataType;
    /// What a masked pixel reads as (GDAL: NaN for floats, else 0).
    const MASKED: f32;
    /// From little-endian bytes (exactly the type's size).
    fn read(b: &[u8]) -> Self;
    /// The format's conversion of a dequantized value: truncation toward
    /// zero for integers, rounding for f32.
    fn from_f64(z: f64) -> Self;
    fn to_f64(self) -> f64;
    fn to_f32(self) -> f32;
    /// 8-bit types' two's-complement byte (Huffman-coded data only).
    fn from_byte(b: u8) -> Self;
    fn to_byte(self) -> u8;
}

macro_rules! sample {
    ($t:ty, $dt:expr, $masked:expr) => {
        impl Sample for $t {
            const DT: DataType = $dt;
            const MASKED: f32 = $masked;
            fn read(b: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[..std::mem::size_of::<$t>()]);
                <$t>::from_le_bytes(a)
            }
            fn from_f64(z: f64) -> Self {
                z as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn from_byte(b: u8) -> Self {
                b as $t
            }
            fn to_byte(self) -> u8 {
                self as u8
            }
        }
    };
}

sample!(u8, DataType::U8, 0.0);
sample!(u16, DataType::U16, 0.0);
sample!(u32, DataType::U32, 0.0);
sample!(i16, DataType::I16, 0.0);
sample!(i32, DataType::I32, 0.0);
sample!(f32, DataType::F32, f32::NAN);
sample!(f64, DataType::F64, f32::NAN);

impl Sample for i8 {
    const DT: DataType = DataType::I8;
    const MASKED: f32 = 0.0;
    fn read(b: &[u8]) -> Self {
        b[0] as i8
    }
    fn from_f64(z: f64) -> Self {
        z as i8
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn to_f32(self) -> f32 {
        f32::from(self)
    }
    fn from_byte(b: u8) -> Self {
        b as i8
    }
    fn to_byte(self) -> u8 {
        self as u8
    }
}

/// A cursor over a blob's bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let have = self.buf.len() - self.pos;
        if n > have {
            return Err(LercError::Truncated {
                what,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn i32(&mut self, what: &'static str) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self, what: &'static str) -> Result<f64> {
        Ok(DataType::F64.read(self.take(8, what)?))
    }

    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
}

const KEY: &[u8] = b"Lerc2 ";

/// A blob's header.
#[derive(Debug, Clone)]
struct Header {
    version: i32,
    checksum: u32,
    rows: usize,
    cols: usize,
    depth: usize,
    valid: usize,
    micro: usize,
    blob_size: usize,
    dt: DataType,
    max_z_error: f64,
    z_min: f64,
    z_max: f64,
    /// Bytes of the header.
    len: usize,
}

impl Header {
    fn parse(blob: &[u8]) -> Result<Header> {
        if !blob.starts_with(KEY) {
            return Err(LercError::NotLerc2(blob[..blob.len().min(10)].to_vec()));
        }
        let mut r = Reader {
            buf: blob,
            pos: KEY.len(),
        };
        let version = r.i32("version")?;
        if !(2..=6).contains(&version) {
            return Err(LercError::Unsupported(format!("Lerc2 version {version}")));
        }
        let checksum = if version >= 3 {
            r.i32("checksum")? as u32
        } else {
            0
        };
        let mut ints = [0i32; 8];
        let n_ints = 6 + usize::from(version >= 4) + usize::from(version >= 6);
        for v in ints.iter_mut().take(n_ints) {
            *v = r.i32("header")?;
        }
        let mut flags = [0u8; 4];
        if version >= 6 {
            flags.copy_from_slice(r.take(4, "header")?);
        }
        let (max_z_error, z_min, z_max) = (r.f64("header")?, r.f64("header")?, r.f64("header")?);
        if version >= 6 {
            r.take(16, "header")?;
        }
        let mut it = ints.iter().copied();
        let mut next = || it.next().unwrap_or(0);
        let (rows, cols) = (next(), next());
        let depth = if version >= 4 { next() } else { 1 };
        let (valid, micro, blob_size, dt) = (next(), next(), next(), next());
        let blobs_more = if version >= 6 { next() } else { 0 };
        let pos = |v: i32, what: &str| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| corrupt(format!("{what} {v}")))
        };
        let (rows, cols, depth) = (
            pos(rows, "rows")?,
            pos(cols, "columns")?,
            pos(depth, "depth")?,
        );
        let micro = pos(micro, "micro-block size")?;
        let blob_size = pos(blob_size, "blob size")?;
        let dt = DataType::from_code(dt).ok_or_else(|| corrupt(format!("data type {dt}")))?;
        let valid = usize::try_from(valid)
            .ok()
            .filter(|&v| v <= rows.saturating_mul(cols))
            .ok_or_else(|| corrupt(format!("{valid} valid pixels of {rows}×{cols}")))?;
        if micro > 32 {
            return Err(corrupt(format!("micro-block size {micro}")));
        }
        if blob_size > blob.len() {
            return Err(LercError::Truncated {
                what: "blob",
                need: blob_size,
                have: blob.len(),
            });
        }
        if blob_size < r.pos {
            return Err(corrupt(format!("blob size {blob_size} within its header")));
        }
        if version >= 6 && (flags[0] != 0 || blobs_more != 0) {
            return Err(LercError::Unsupported(
                "Lerc2 v6 nodata values or multi-blob sets".into(),
            ));
        }
        Ok(Header {
            version,
            checksum,
            rows,
            cols,
            depth,
            valid,
            micro,
            blob_size,
            dt,
            max_z_error,
            z_min,
            z_max,
            len: r.pos,
        })
    }

    fn pixels(&self) -> usize {
        self.rows * self.cols
    }
}

/// Fletcher-32 as Lerc2 computes it: over the bytes taken two at a time,
/// the first as the high byte, sums reduced every 359 pairs; an odd last
/// byte counts as a pair with a zero low byte.
fn fletcher32(bytes: &[u8]) -> u32 {
    let (mut s1, mut s2) = (0xffffu32, 0xffffu32);
    let pairs = bytes.chunks_exact(2);
    let odd = pairs.remainder().first().copied();
    let pairs: Vec<&[u8]> = pairs.collect();
    for block in pairs.chunks(359) {
        for p in block {
            s1 = s1.wrapping_add((u32::from(p[0]) << 8) | u32::from(p[1]));
            s2 = s2.wrapping_add(s1);
        }
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    if let Some(b) = odd {
        s1 = s1.wrapping_add(u32::from(b) << 8);
        s2 = s2.wrapping_add(s1);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    (s2 << 16) | s1
}

/// Which pixels hold values.
#[derive(Debug)]
enum Mask {
    All,
    None,
    /// One bit per pixel, row-major, most significant bit first.
    Bits(Vec<u8>),
}

impl Mask {
    fn valid(&self, k: usize) -> bool {
        match self {
            Mask::All => true,
            Mask::None => false,
            Mask::Bits(b) => b.get(k >> 3).is_some_and(|&x| x & (0x80 >> (k & 7)) != 0),
        }
    }
}

fn read_mask(r: &mut Reader, hd: &Header) -> Result<Mask> {
    let n = r.i32("mask size")?;
    let n = usize::try_from(n).map_err(|_| corrupt(format!("mask of {n} bytes")))?;
    let total = hd.pixels();
    if (hd.valid == 0 || hd.valid == total) && n != 0 {
        return Err(corrupt(
            "a mask stored for an all-valid or all-invalid blob",
        ));
    }
    if hd.valid == 0 {
        return Ok(Mask::None);
    }
    if hd.valid == total {
        return Ok(Mask::All);
    }
    if n == 0 {
        // Lerc2 would reuse the previous band's mask: a TIFF tile has none
        return Err(corrupt("partial mask not stored"));
    }
    let rle = r.take(n, "mask")?;
    let mut bits = vec![0u8; total.div_ceil(8)];
    unrle(rle, &mut bits)?;
    Ok(Mask::Bits(bits))
}

/// Lerc's run-length code: an `i16` count, then that many literal bytes
/// (count > 0) or one byte repeated `-count` times (count ≤ 0); -32768 ends.
fn unrle(src: &[u8], out: &mut [u8]) -> Result<()> {
    let mut r = Reader { buf: src, pos: 0 };
    let mut at = 0;
    loop {
        let c = r.take(2, "mask run")?;
        let cnt = i16::from_le_bytes([c[0], c[1]]);
        if cnt == i16::MIN {
            return Ok(());
        }
        let n = usize::from(cnt.unsigned_abs());
        let dst = out
            .get_mut(at..at + n)
            .ok_or_else(|| corrupt("mask runs longer than the mask"))?;
        if cnt > 0 {
            dst.copy_from_slice(r.take(n, "mask run")?);
        } else {
            dst.fill(r.u8("mask run")?);
        }
        at += n;
    }
}

/// Decodes one blob (its whole bytes, `hd` its parsed header) to
/// `rows × cols × depth` values, pixel-interleaved, and its mask.
fn decode_blob<T: Sample>(blob: &[u8], hd: &Header) -> Result<(Vec<T>, Mask)> {
    if hd.version >= 3 {
        let start = KEY.len() + 8;
        let computed = fletcher32(&blob[start..]);
        if computed != hd.checksum {
            return Err(LercError::Checksum {
                stored: hd.checksum,
                computed,
            });
        }
    }
    let mut r = Reader {
        buf: blob,
        pos: hd.len,
    };
    let mask = read_mask(&mut r, hd)?;
    let depth = hd.depth;
    let mut data = vec![T::default(); hd.pixels() * depth];
    if hd.valid == 0 {
        return Ok((data, mask));
    }
    if hd.z_min == hd.z_max {
        fill_valid(&mut data, &mask, &vec![T::from_f64(hd.z_min); depth]);
        return Ok((data, mask));
    }
    let mut z_max = vec![hd.z_max; depth];
    if hd.version >= 4 {
        let mins = r.take(depth * T::DT.size(), "ranges")?;
        let maxs = r.take(depth * T::DT.size(), "ranges")?;
        if mins == maxs {
            let z: Vec<T> = mins.chunks_exact(T::DT.size()).map(T::read).collect();
            fill_valid(&mut data, &mask, &z);
            return Ok((data, mask));
        }
        if depth > 1 {
            z_max = maxs
                .chunks_exact(T::DT.size())
                .map(|b| T::read(b).to_f64())
                .collect();
        }
    }
    if r.u8("data flag")? != 0 {
        // every valid pixel's values, raw
        for k in 0..hd.pixels() {
            if mask.valid(k) {
                let b = r.take(depth * T::DT.size(), "raw values")?;
                for (d, v) in b.chunks_exact(T::DT.size()).enumerate() {
                    data[k * depth + d] = T::read(v);
                }
            }
        }
        return Ok((data, mask));
    }
    let huffman_int = matches!(hd.dt, DataType::I8 | DataType::U8) && hd.max_z_error == 0.5;
    let huffman_flt =
        hd.version >= 6 && matches!(hd.dt, DataType::F32 | DataType::F64) && hd.max_z_error == 0.0;
    if huffman_int || huffman_flt {
        let mode = r.u8("encode mode")?;
        if mode > 3 || (mode > 2 && hd.version < 6) || (mode > 1 && hd.version < 4) {
            return Err(corrupt(format!(
                "encode mode {mode} in version {}",
                hd.version
            )));
        }
        match mode {
            0 => {}
            1 | 2 if huffman_int => {
                decode_huffman(&mut r, hd, &mask, &mut data, mode == 1)?;
                return Ok((data, mask));
            }
            3 if huffman_flt => {
                return Err(LercError::Unsupported(
                    "Lerc2 v6 lossless float Huffman coding".into(),
                ));
            }
            m => return Err(corrupt(format!("encode mode {m} for {:?}", hd.dt))),
        }
    }
    read_tiles(&mut r, hd, &mask, &mut data, &z_max)?;
    Ok((data, mask))
}

/// Every valid pixel's values set to `z` (one per depth).
fn fill_valid<T: Sample>(data: &mut [T], mask: &Mask, z: &[T]) {
    for (k, px) in data.chunks_exact_mut(z.len()).enumerate() {
        if mask.valid(k) {
            px.copy_from_slice(z);
        }
    }
}

fn read_tiles<T: Sample>(
    r: &mut Reader,
    hd: &Header,
    mask: &Mask,
    data: &mut [T],
    z_max: &[f64],
) -> Result<()> {
    let mb = hd.micro;
    let mut buf = Vec::new();
    for i0 in (0..hd.rows).step_by(mb) {
        let i1 = (i0 + mb).min(hd.rows);
        for j0 in (0..hd.cols).step_by(mb) {
            let j1 = (j0 + mb).min(hd.cols);
            // z_max holds one value per depth
            for (d, &top) in z_max.iter().enumerate() {
                let block = Block { i0, i1, j0, j1, d };
                read_block(r, hd, mask, data, block, top, &mut buf)?;
            }
        }
    }
    Ok(())
}

/// One micro-block of one depth: rows `i0..i1`, columns `j0..j1`.
#[derive(Debug, Clone, Copy)]
struct Block {
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
    d: usize,
}

impl Block {
    /// The block's (pixel index, value index) pairs, row-major.
    fn cells(self, cols: usize, depth: usize) -> impl Iterator<Item = (usize, usize)> {
        (self.i0..self.i1).flat_map(move |i| {
            (self.j0..self.j1).map(move |j| {
                let k = i * cols + j;
                (k, k * depth + self.d)
            })
        })
    }
}

fn read_block<T: Sample>(
    r: &mut Reader,
    hd: &Header,
    mask: &Mask,
    data: &mut [T],
    b: Block,
    z_max: f64,
    buf: &mut Vec<u32>,
) -> Result<()> {
    let flag = r.u8("block flag")?;
    // version 5 on: bit 2 says "relative to the previous depth's value"
    let diff = hd.version >= 5 && flag & 4 != 0;
    let pattern: usize = if hd.version >= 5 { 14 } else { 15 };
    if usize::from(flag >> 2) & pattern != (b.j0 >> 3) & pattern {
        return Err(corrupt(format!("block check bits at column {}", b.j0)));
    }
    if diff && b.d == 0 {
        return Err(corrupt("depth 0 coded relative to the previous depth"));
    }
    let clamp = |z: f64| if z_max < z { z_max } else { z };
    let cells = b.cells(hd.cols, hd.depth);
    match flag & 3 {
        // constant 0 (or the previous depth's value)
        2 => {
            for (k, m) in cells {
                if mask.valid(k) {
                    data[m] = if diff { data[m - 1] } else { T::default() };
                }
            }
        }
        // raw values
        0 => {
            if diff {
                return Err(corrupt("raw block coded relative to the previous depth"));
            }
            for (k, m) in cells {
                if mask.valid(k) {
                    data[m] = T::read(r.take(T::DT.size(), "raw block")?);
                }
            }
        }
        code => {
            let base = if diff && hd.dt < DataType::F32 {
                DataType::I32
            } else {
                hd.dt
            };
            let dt = base
                .narrowed(flag >> 6)
                .ok_or_else(|| corrupt(format!("offset type code {}", flag >> 6)))?;
            let offset = dt.read(r.take(dt.size(), "block offset")?);
            if code == 3 {
                // constant offset
                for (k, m) in cells {
                    if mask.valid(k) {
                        data[m] = if diff {
                            T::from_f64(clamp(offset + data[m - 1].to_f64()))
                        } else {
                            T::from_f64(offset)
                        };
                    }
                }
                return Ok(());
            }
            let count = (b.i1 - b.i0) * (b.j1 - b.j0);
            unstuff(r, buf, count, hd.version)?;
            let scale = 2.0 * hd.max_z_error;
            // A full buffer covers every pixel of the block, valid or not.
            let all = buf.len() == count;
            let mut q = buf.iter();
            for (k, m) in cells {
                if all || mask.valid(k) {
                    let v = *q
                        .next()
                        .ok_or_else(|| corrupt("fewer block values than valid pixels"))?;
                    let prev = if diff { data[m - 1].to_f64() } else { 0.0 };
                    data[m] = T::from_f64(clamp(offset + f64::from(v) * scale + prev));
                }
            }
        }
    }
    Ok(())
}

/// BitStuffer2: a byte of (count width, lookup-table flag, bits per value),
/// the count, then the values bit-packed (directly, or as indices into a
/// table of distinct values that follows first).
fn unstuff(r: &mut Reader, out: &mut Vec<u32>, max: usize, version: i32) -> Result<()> {
    let head = r.u8("bit-stuffed header")?;
    let count_bytes = match head >> 6 {
        0 => 4,
        1 => 2,
        2 => 1,
        _ => return Err(corrupt("bit-stuffed count width")),
    };
    let lut = head & 0x20 != 0;
    let bits = u32::from(head & 0x1f);
    let c = r.take(count_bytes, "bit-stuffed count")?;
    let mut a = [0u8; 4];
    a[..count_bytes].copy_from_slice(c);
    let n = u32::from_le_bytes(a) as usize;
    if n > max {
        return Err(corrupt(format!("{n} bit-stuffed values, at most {max}")));
    }
    if !lut {
        if bits == 0 {
            out.clear();
            out.resize(n, 0);
            return Ok(());
        }
        return unpack(r, out, n, bits, version);
    }
    if bits == 0 {
        return Err(corrupt("lookup table of 0-bit values"));
    }
    let n_lut = usize::from(r.u8("lookup table size")?)
        .checked_sub(1)
        .ok_or_else(|| corrupt("empty lookup table"))?;
    let mut table = Vec::with_capacity(n_lut + 1);
    unpack(r, &mut table, n_lut, bits, version)?;
    table.insert(0, 0);
    let index_bits = usize::BITS - n_lut.leading_zeros();
    unpack(r, out, n, index_bits, version)?;
    for v in out.iter_mut() {
        *v = *table
            .get(*v as usize)
            .ok_or_else(|| corrupt("lookup index past the table"))?;
    }
    Ok(())
}

/// `n` values of `bits` bits (1 to 31): from version 3 on a little-endian
/// bit stream (value `i` at bits `i·bits..`); before, most significant bit
/// first within little-endian 32-bit words, the last word's bytes stored
/// from its top. Either way `⌈n·bits/8⌉` bytes.
fn unpack(r: &mut Reader, out: &mut Vec<u32>, n: usize, bits: u32, version: i32) -> Result<()> {
    if n == 0 || bits == 0 || bits >= 32 {
        return Err(corrupt(format!("{n} bit-stuffed values of {bits} bits")));
    }
    let total = n as u64 * u64::from(bits);
    let src = r.take(total.div_ceil(8) as usize, "bit-stuffed values")?;
    out.clear();
    out.reserve(n);
    let m = (1u64 << bits) - 1;
    if version >= 3 {
        let (mut acc, mut have, mut bytes) = (0u64, 0u32, src.iter());
        for _ in 0..n {
            while have < bits {
                acc |= u64::from(*bytes.next().unwrap_or(&0)) << have;
                have += 8;
            }
            out.push((acc & m) as u32);
            acc >>= bits;
            have -= bits;
        }
    } else {
        let words = src.chunks(4).map(|c| {
            let mut a = [0u8; 4];
            a[..c.len()].copy_from_slice(c);
            // a short last word holds its top bytes
            u32::from_le_bytes(a) << (8 * (4 - c.len()))
        });
        let (mut acc, mut have) = (0u64, 0u32);
        let mut words = words.fuse();
        for _ in 0..n {
            if have < bits {
                acc = (acc << 32) | u64::from(words.next().unwrap_or(0));
                have += 32;
            }
            out.push(((acc >> (have - bits)) & m) as u32);
            have -= bits;
        }
    }
    Ok(())
}

/// Reads bits most significant first from little-endian 32-bit words.
struct WordBits<'a> {
    words: &'a [u8],
    /// Bits consumed.
    pos: usize,
}

impl WordBits<'_> {
    fn word(&self, w: usize) -> u64 {
        self.words.get(w * 4..w * 4 + 4).map_or(0, |b| {
            u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        })
    }

    /// The next 32 bits (zeros past the end).
    fn peek(&self) -> u32 {
        let (w, off) = (self.pos / 32, self.pos % 32);
        let both = (self.word(w) << 32) | self.word(w + 1);
        (both >> (32 - off)) as u32
    }
}

/// 8-bit data Huffman-coded: a code table (version, table size, symbol range
/// `i0..i1` wrapping around the table, bit-stuffed code lengths, then the
/// codes most significant bit first in 32-bit words), then the codes of every
/// valid value; `delta` codes each value as the difference from its left
/// neighbour (or the one above where the left one is masked), per depth.
fn decode_huffman<T: Sample>(
    r: &mut Reader,
    hd: &Header,
    mask: &Mask,
    data: &mut [T],
    delta: bool,
) -> Result<()> {
    let (version, size, i0, i1) = (
        r.i32("Huffman table")?,
        r.i32("Huffman table")?,
        r.i32("Huffman table")?,
        r.i32("Huffman table")?,
    );
    if version < 2 {
        return Err(corrupt(format!("Huffman table version {version}")));
    }
    if i0 >= i1 || i0 < 0 || !(0..=1 << 15).contains(&size) {
        return Err(corrupt(format!(
            "Huffman table {size} with range {i0}..{i1}"
        )));
    }
    let (size, i0, i1) = (size as usize, i0 as usize, i1 as usize);
    let wrap = |i: usize| if i < size { i } else { i - size };
    if wrap(i0) >= size || wrap(i1 - 1) >= size {
        return Err(corrupt(format!("Huffman range {i0}..{i1} past {size}")));
    }
    let mut lens = Vec::new();
    unstuff(r, &mut lens, i1 - i0, hd.version)?;
    if lens.len() != i1 - i0 {
        return Err(corrupt("Huffman code lengths"));
    }
    // (symbol, length, code) of every coded symbol
    let mut codes = Vec::new();
    let mut bits = WordBits {
        words: r.rest(),
        pos: 0,
    };
    let full_words = bits.words.len() / 4;
    for (i, &len) in (i0..i1).zip(&lens) {
        if len == 0 {
            continue;
        }
        if len > 32 || bits.pos / 32 >= full_words {
            return Err(corrupt("Huffman codes"));
        }
        let code = if len == 32 {
            bits.peek()
        } else {
            bits.peek() >> (32 - len)
        };
        bits.pos += len as usize;
        codes.push((wrap(i) as u32, len, code));
    }
    if bits.pos.div_ceil(32) > full_words {
        return Err(corrupt("Huffman codes truncated"));
    }
    r.take(bits.pos.div_ceil(32) * 4, "Huffman codes")?;
    let decoder = HuffmanDecoder::new(&codes)?;
    let mut s = WordBits {
        words: r.rest(),
        pos: 0,
    };
    let full_words = s.words.len() / 4;
    let offset: i32 = if hd.dt == DataType::I8 { 128 } else { 0 };
    let (w, depth) = (hd.cols, hd.depth);
    let next = |s: &mut WordBits| -> Result<u8> {
        if s.pos / 32 >= full_words {
            return Err(LercError::Truncated {
                what: "Huffman data",
                need: (s.pos / 32 + 1) * 4,
                have: full_words * 4,
            });
        }
        let sym = decoder.decode(s)?;
        Ok((sym as i32 - offset) as u8)
    };
    if delta {
        for d in 0..depth {
            let mut prev = 0u8;
            for k in 0..hd.pixels() {
                if !mask.valid(k) {
                    continue;
                }
                let (i, j) = (k / w, k % w);
                let mut v = next(&mut s)?;
                if j > 0 && mask.valid(k - 1) {
                    v = v.wrapping_add(prev);
                } else if i > 0 && mask.valid(k - w) {
                    v = v.wrapping_add(data[(k - w) * depth + d].to_byte());
                } else {
                    v = v.wrapping_add(prev);
                }
                data[k * depth + d] = T::from_byte(v);
                prev = v;
            }
        }
    } else {
        for k in 0..hd.pixels() {
            if mask.valid(k) {
                for d in 0..depth {
                    data[k * depth + d] = T::from_byte(next(&mut s)?);
                }
            }
        }
    }
    // the encoder pads one word past the last code
    let used = s.pos / 32 + usize::from(!s.pos.is_multiple_of(32)) + 1;
    if used > full_words {
        return Err(LercError::Truncated {
            what: "Huffman data",
            need: used * 4,
            have: full_words * 4,
        });
    }
    Ok(())
}

/// Canonical-or-not prefix codes decoded through a 12-bit table, longer
/// codes by search.
struct HuffmanDecoder {
    lut_bits: u32,
    /// (length, symbol) by the next `lut_bits` bits; length 0: not a short code.
    lut: Vec<(u8, u16)>,
    /// (length, code, symbol) of the codes longer than `lut_bits`.
    long: Vec<(u32, u32, u16)>,
}

impl HuffmanDecoder {
    fn new(codes: &[(u32, u32, u32)]) -> Result<Self> {
        let max_len = codes
            .iter()
            .map(|c| c.1)
            .max()
            .ok_or_else(|| corrupt("Huffman table without codes"))?;
        let lut_bits = max_len.min(12);
        let mut lut = vec![(0u8, 0u16); 1 << lut_bits];
        let mut long = Vec::new();
        for &(sym, len, code) in codes {
            // symbols index a table of at most 2^15 entries
            let sym = sym as u16;
            if len <= lut_bits {
                let first = (code << (lut_bits - len)) as usize;
                let n = 1usize << (lut_bits - len);
                if let Some(span) = lut.get_mut(first..first + n) {
                    span.fill((len as u8, sym));
                }
            } else {
                long.push((len, code, sym));
            }
        }
        Ok(HuffmanDecoder {
            lut_bits,
            lut,
            long,
        })
    }

    fn decode(&self, s: &mut WordBits) -> Result<u16> {
        let peek = s.peek();
        let (len, sym) = self.lut[(peek >> (32 - self.lut_bits)) as usize];
        if len > 0 {
            s.pos += usize::from(len);
            return Ok(sym);
        }
        for &(len, code, sym) in &self.long {
            let head = if len == 32 { peek } else { peek >> (32 - len) };
            if head == code {
                s.pos += len as usize;
                return Ok(sym);
            }
        }
        Err(corrupt("bits that are no Huffman code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- a minimal Lerc2 writer, for blobs whose every value is known ----

    /// Bits packed as version 3 stores them: a little-endian bit stream.
    fn pack_v3(values: &[u32], bits: u32) -> Vec<u8> {
        let mut out = vec![0u8; (values.len() * bits as usize).div_ceil(8)];
        for (i, &v) in values.iter().enumerate() {
            for b in 0..bits {
                if (v >> b) & 1 == 1 {
                    let at = i * bits as usize + b as usize;
                    out[at / 8] |= 1 << (at % 8);
                }
            }
        }
        out
    }

    /// Bits packed as version 2 stores them: most significant bit first in
    /// little-endian words, the last word cut to its top bytes.
    fn pack_v2(values: &[u32], bits: u32) -> Vec<u8> {
        let total = values.len() * bits as usize;
        let mut words = vec![0u32; total.div_ceil(32)];
        for (i, &v) in values.iter().enumerate() {
            for b in 0..bits {
                if (v >> (bits - 1 - b)) & 1 == 1 {
                    let at = i * bits as usize + b as usize;
                    words[at / 32] |= 0x8000_0000 >> (at % 32);
                }
            }
        }
        let mut out = Vec::new();
        for (n, w) in words.iter().enumerate() {
            if n + 1 < words.len() || total.is_multiple_of(32) {
                out.extend_from_slice(&w.to_le_bytes());
            } else {
                let keep = (total % 32).div_ceil(8);
                out.extend_from_slice(&w.to_le_bytes()[4 - keep..]);
            }
        }
        out
    }

    /// A BitStuffer2 record of `values` (no lookup table), 1-byte count.
    fn stuffed(values: &[u32], version: i32) -> Vec<u8> {
        let max = values.iter().copied().max().unwrap_or(0);
        let bits = 32 - max.leading_zeros();
        let mut out = vec![0x80 | bits as u8, values.len() as u8];
        if bits > 0 {
            out.extend(if version >= 3 {
                pack_v3(values, bits)
            } else {
                pack_v2(values, bits)
            });
        }
        out
    }

    struct Blob {
        version: i32,
        rows: i32,
        cols: i32,
        depth: i32,
        valid: i32,
        micro: i32,
        dt: i32,
        max_z_error: f64,
        z_min: f64,
        z_max: f64,
    }

    impl Blob {
        fn new(version: i32, rows: i32, cols: i32, dt: DataType) -> Blob {
            Blob {
                version,
                rows,
                cols,
                depth: 1,
                valid: rows * cols,
                micro: 8,
                dt: dt as i32,
                max_z_error: 0.5,
                z_min: 0.0,
                z_max: 1000.0,
            }
        }

        /// The header, `mask` (RLE bytes, empty: none) and `body`, with
        /// blob size and checksum filled in.
        fn build(&self, mask: &[u8], body: &[u8]) -> Vec<u8> {
            let mut b = KEY.to_vec();
            b.extend(self.version.to_le_bytes());
            if self.version >= 3 {
                b.extend([0; 4]);
            }
            let mut ints = vec![self.rows, self.cols];
            if self.version >= 4 {
                ints.push(self.depth);
            }
            ints.extend([self.valid, self.micro, 0, self.dt]);
            let size_at = b.len() + 4 * (ints.len() - 2);
            for i in ints {
                b.extend(i.to_le_bytes());
            }
            for d in [self.max_z_error, self.z_min, self.z_max] {
                b.extend(d.to_le_bytes());
            }
            b.extend((mask.len() as i32).to_le_bytes());
            b.extend(mask);
            b.extend(body);
            let size = b.len() as i32;
            b[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
            if self.version >= 3 {
                let sum = fletcher32(&b[14..]);
                b[10..14].copy_from_slice(&sum.to_le_bytes());
            }
            b
        }
    }

    fn decode(bytes: &[u8], w: usize, h: usize, samples: usize, t: SampleType) -> Result<Vec<f32>> {
        decode_chunk(bytes, None, w, h, samples, t)
    }

    #[test]
    fn fletcher32_matches_known_values() {
        // the reference Fletcher-32 of "abcde" / "abcdef" over big-endian
        // byte pairs, started from 0xffff as Lerc2 does: computed by hand
        // below from the definition
        let reference = |b: &[u8]| {
            let (mut s1, mut s2) = (0xffffu64, 0xffffu64);
            for p in b.chunks(2) {
                let w = (u64::from(p[0]) << 8) | p.get(1).map_or(0, |&x| u64::from(x));
                s1 = (s1 + w) % 0xffff;
                s2 = (s2 + s1) % 0xffff;
            }
            ((s2 << 16) | s1) as u32
        };
        for data in [
            &b"abcde"[..],
            b"abcdef",
            &[0xffu8; 2000][..],
            &[7u8; 719][..],
        ] {
            let got = fletcher32(data);
            // ones'-complement sums: 0 and 0xffff are the same residue
            let norm = |x: u32| {
                let f = |v: u32| if v == 0xffff { 0 } else { v };
                (f(x >> 16), f(x & 0xffff))
            };
            assert_eq!(norm(got), norm(reference(data)), "{data:?}");
        }
    }

    #[test]
    fn bit_stuffing_both_layouts_round_trip() {
        let values: Vec<u32> = (0..37).map(|i| (i * 7919) % 1000).collect();
        for version in [2, 3] {
            let rec = stuffed(&values, version);
            let mut r = Reader { buf: &rec, pos: 0 };
            let mut out = Vec::new();
            unstuff(&mut r, &mut out, 64, version).unwrap();
            assert_eq!(out, values, "version {version}");
            assert_eq!(r.pos, rec.len(), "version {version}: whole record consumed");
        }
        // more values than the block holds
        let rec = stuffed(&values, 3);
        let e = unstuff(&mut Reader { buf: &rec, pos: 0 }, &mut Vec::new(), 36, 3).unwrap_err();
        assert!(
            matches!(&e, LercError::Corrupt(m) if m.contains("37 bit-stuffed values, at most 36")),
            "{e:?}"
        );
        // cut short
        assert!(matches!(
            unstuff(
                &mut Reader {
                    buf: &rec[..rec.len() - 1],
                    pos: 0
                },
                &mut Vec::new(),
                64,
                3
            ),
            Err(LercError::Truncated { .. })
        ));
    }

    #[test]
    fn bit_stuffing_through_a_lookup_table() {
        // values 0, 500, 900 stored as 2-bit indices into [0, 500, 900]
        let want = [500u32, 0, 900, 900, 500, 0, 0, 900];
        let idx: Vec<u32> = want
            .iter()
            .map(|v| [0, 500, 900].iter().position(|x| x == v).unwrap() as u32)
            .collect();
        let mut rec = vec![0x80 | 0x20 | 10, want.len() as u8, 3];
        rec.extend(pack_v3(&[500, 900], 10));
        rec.extend(pack_v3(&idx, 2));
        let mut out = Vec::new();
        unstuff(&mut Reader { buf: &rec, pos: 0 }, &mut out, 64, 3).unwrap();
        assert_eq!(out, want);
        // an index past the table: 2-bit indices into a table of 3
        let mut bad = vec![0x80 | 0x20 | 10, 1, 3];
        bad.extend(pack_v3(&[500, 900], 10));
        bad.extend(pack_v3(&[3], 2));
        assert!(matches!(
            unstuff(&mut Reader { buf: &bad, pos: 0 }, &mut out, 64, 3),
            Err(LercError::Corrupt(_))
        ));
    }

    #[test]
    fn tiled_blocks_of_each_encoding_decode_exactly() {
        // 8 × 16 u16, micro-blocks of 8: block 0 bit-stuffed, block 1 raw,
        // then (second blob) constant 0 and constant offset
        let (w, h) = (16usize, 8usize);
        let left: Vec<u32> = (0..64).map(|i| i * 3).collect();
        let right: Vec<u16> = (0..64).map(|i| 60_000 - i * 11).collect();
        for version in [2, 3, 4] {
            let mut body = Vec::new();
            if version >= 4 {
                body.extend(0u16.to_le_bytes()); // min
                body.extend(60_000u16.to_le_bytes()); // max
            }
            body.push(0); // tiled
            // block (0, 0): offset 100 as u16, bit-stuffed
            body.push(1);
            body.extend(100u16.to_le_bytes());
            body.extend(stuffed(&left, version));
            // block (0, 8): raw; check bits (8 >> 3) & 15 = 1
            body.push(1 << 2);
            for v in &right {
                body.extend(v.to_le_bytes());
            }
            let mut b = Blob::new(version, h as i32, w as i32, DataType::U16);
            b.z_max = 60_000.0;
            let blob = b.build(&[], &body);
            let got = decode(&blob, w, h, 1, SampleType::U16).unwrap();
            for i in 0..h {
                for j in 0..w {
                    let want = if j < 8 {
                        100.0 + left[i * 8 + j] as f32
                    } else {
                        f32::from(right[i * 8 + j - 8])
                    };
                    assert_eq!(got[i * w + j], want, "v{version} ({i}, {j})");
                }
            }
        }
        // constant 0 and constant offset blocks, f32, offset narrowed to i16
        let mut body = Vec::new();
        body.extend((-5.0f32).to_le_bytes());
        body.extend(7.0f32.to_le_bytes());
        body.push(0);
        body.push(2); // block (0, 0): constant 0
        body.push((1 << 2) | 3 | (1 << 6)); // block (0, 8): constant, offset as i16
        body.extend((-5i16).to_le_bytes());
        let mut b = Blob::new(4, 8, 16, DataType::F32);
        b.z_min = -5.0;
        b.z_max = 7.0;
        b.max_z_error = 0.0;
        let got = decode(&b.build(&[], &body), 16, 8, 1, SampleType::F32).unwrap();
        assert!(
            got.iter()
                .enumerate()
                .all(|(k, &v)| v == if k % 16 < 8 { 0.0 } else { -5.0 })
        );
    }

    #[test]
    fn lossy_blocks_dequantize_and_clamp_to_z_max() {
        // maxZError 2: values offset + q · 4, clamped to zMax 110
        let q = [0u32, 1, 2, 3];
        let mut body = Vec::new();
        body.extend(100u16.to_le_bytes());
        body.extend(110u16.to_le_bytes());
        body.push(0);
        body.push(1);
        body.extend(100u16.to_le_bytes());
        body.extend(stuffed(&q, 4));
        let mut b = Blob::new(4, 2, 2, DataType::U16);
        b.max_z_error = 2.0;
        b.z_min = 100.0;
        b.z_max = 110.0;
        let got = decode(&b.build(&[], &body), 2, 2, 1, SampleType::U16).unwrap();
        assert_eq!(got, [100.0, 104.0, 108.0, 110.0]);
    }

    #[test]
    fn masked_pixels_read_as_gdal_reads_them() {
        // 4 × 4, pixels 1 and 6 invalid; raw ("one sweep") values
        let mut bits = [0xffu8, 0xff];
        bits[0] &= !(0x80 >> 1);
        bits[0] &= !(0x80 >> 6);
        let mut rle = Vec::new();
        rle.extend(2i16.to_le_bytes());
        rle.extend(bits);
        rle.extend(i16::MIN.to_le_bytes());
        for (dt, st) in [
            (DataType::F32, SampleType::F32),
            (DataType::I16, SampleType::I16),
        ] {
            let mut body = Vec::new();
            let vals: Vec<f64> = (0..14).map(|i| f64::from(i) - 3.0).collect();
            let put = |body: &mut Vec<u8>, v: f64| match dt {
                DataType::F32 => body.extend((v as f32).to_le_bytes()),
                _ => body.extend((v as i16).to_le_bytes()),
            };
            put(&mut body, -3.0);
            put(&mut body, 10.0);
            body.push(1); // one sweep
            for &v in &vals {
                put(&mut body, v);
            }
            let mut b = Blob::new(4, 4, 4, dt);
            b.valid = 14;
            b.z_min = -3.0;
            b.z_max = 10.0;
            let got = decode(&b.build(&rle, &body), 4, 4, 1, st).unwrap();
            let mut it = vals.iter();
            for (k, g) in got.iter().enumerate() {
                if k == 1 || k == 6 {
                    if dt == DataType::F32 {
                        assert!(g.is_nan(), "{k}: {g}");
                    } else {
                        assert_eq!(*g, 0.0);
                    }
                } else {
                    assert_eq!(*g as f64, *it.next().unwrap(), "{k}");
                }
            }
        }
    }

    #[test]
    fn several_values_per_pixel_and_per_depth_constants() {
        // 2 × 2 pixels of 3 u8 values: depth 0 constant 9 (min = max),
        // depth 1 raw, depth 2 bit-stuffed (offset 50)
        let mut body = Vec::new();
        body.extend([9u8, 0, 50]); // mins
        body.extend([9u8, 200, 53]); // maxs
        body.push(0); // not one sweep
        body.push(0); // encode mode (u8, maxZError 0.5): tiling
        body.push(3); // depth 0: constant
        body.push(9);
        body.push(0); // depth 1: raw
        body.extend([0u8, 100, 150, 200]);
        body.push(1); // depth 2: stuffed
        body.push(50);
        body.extend(stuffed(&[0, 1, 2, 3], 4));
        let mut b = Blob::new(4, 2, 2, DataType::U8);
        b.depth = 3;
        b.z_min = 0.0;
        b.z_max = 200.0;
        let got = decode(&b.build(&[], &body), 2, 2, 3, SampleType::U8).unwrap();
        assert_eq!(
            got,
            [9., 0., 50., 9., 100., 51., 9., 150., 52., 9., 200., 53.]
        );
        // the same tile as three blobs of one value each
        let one = |dt_min: u8, dt_max: u8, rest: &[u8]| {
            let mut body = vec![dt_min, dt_max, 0, 0];
            body.extend(rest);
            let mut b = Blob::new(4, 2, 2, DataType::U8);
            b.z_min = f64::from(dt_min);
            b.z_max = f64::from(dt_max);
            b.build(&[], &body)
        };
        let mut tile = Blob {
            z_min: 9.0,
            z_max: 9.0,
            ..Blob::new(4, 2, 2, DataType::U8)
        }
        .build(&[], &[]);
        tile.extend(one(0, 200, &[0, 0, 100, 150, 200]));
        let mut s = vec![1, 50];
        s.extend(stuffed(&[0, 1, 2, 3], 4));
        tile.extend(one(50, 53, &s));
        assert_eq!(decode(&tile, 2, 2, 3, SampleType::U8).unwrap(), got);
        // a band short, or one too many
        assert!(matches!(
            decode(&tile, 2, 2, 4, SampleType::U8),
            Err(LercError::Shape(_))
        ));
        assert!(matches!(
            decode(&tile, 2, 2, 2, SampleType::U8),
            Err(LercError::Shape(_))
        ));
        assert!(matches!(
            decode(&tile, 2, 2, 1, SampleType::U8),
            Err(LercError::Shape(_))
        ));
    }

    #[test]
    fn rgba_alpha_comes_from_the_mask() {
        // 2 × 1 RGB blob, pixel 1 masked: alpha 255, 0
        let mut rle = Vec::new();
        rle.extend(1i16.to_le_bytes());
        rle.push(0x80);
        rle.extend(i16::MIN.to_le_bytes());
        let mut body = vec![1, 2, 3, 1, 2, 3, 1]; // mins, maxs, one sweep
        body.extend([1, 2, 3]);
        let mut b = Blob::new(4, 1, 2, DataType::U8);
        b.depth = 3;
        b.valid = 1;
        b.z_min = 1.0;
        b.z_max = 3.0;
        let got = decode(&b.build(&rle, &body), 2, 1, 4, SampleType::U8).unwrap();
        assert_eq!(got, [1., 2., 3., 255., 0., 0., 0., 0.]);
    }

    /// A Huffman-coded 8-bit blob over symbols 0..4 with codes 0, 10, 110, 111.
    fn huffman_blob(values: &[u8], delta: bool, dt: DataType) -> Vec<u8> {
        let table: [(u32, u32); 4] = [(1, 0b0), (2, 0b10), (3, 0b110), (3, 0b111)];
        let offset: i32 = if dt == DataType::I8 { 128 } else { 0 };
        // symbols 0..4 sit at table index (v + offset) mod 256; size 256
        let (i0, i1) = (offset, offset + 4);
        let mut body = Vec::new();
        body.extend(0u8.to_le_bytes()); // min
        body.extend(3u8.to_le_bytes()); // max
        body.push(0); // not one sweep
        body.push(if delta { 1 } else { 2 });
        for v in [2, 256, i0, i1] {
            body.extend(v.to_le_bytes());
        }
        body.extend(stuffed(&table.map(|t| t.0), 4));
        // codes, then data, each as MSB-first words
        let words = |seq: &[(u32, u32)], pad: bool| {
            let mut bits = Vec::new();
            for &(len, code) in seq {
                for b in (0..len).rev() {
                    bits.push((code >> b) & 1);
                }
            }
            let mut n = bits.len().div_ceil(32);
            if pad {
                n += 1;
            }
            let mut out = Vec::new();
            for w in 0..n {
                let mut x = 0u32;
                for b in 0..32 {
                    if bits.get(w * 32 + b) == Some(&1) {
                        x |= 0x8000_0000 >> b;
                    }
                }
                out.extend(x.to_le_bytes());
            }
            out
        };
        body.extend(words(&table, false));
        let syms: Vec<(u32, u32)> = values.iter().map(|&v| table[v as usize]).collect();
        body.extend(words(&syms, true));
        let mut b = Blob::new(4, 2, (values.len() / 2) as i32, dt);
        b.z_max = 3.0;
        b.build(&[], &body)
    }

    #[test]
    fn huffman_coded_bytes_decode_plain_and_delta() {
        let plain = [0u8, 1, 2, 3, 3, 2, 1, 0, 0, 0];
        let got = decode(
            &huffman_blob(&plain, false, DataType::U8),
            5,
            2,
            1,
            SampleType::U8,
        )
        .unwrap();
        assert_eq!(got, plain.map(f32::from));
        // delta: each value is the sum of the codes along its row
        let got = decode(
            &huffman_blob(&plain, true, DataType::U8),
            5,
            2,
            1,
            SampleType::U8,
        )
        .unwrap();
        // (row 1 starts from the value above it)
        assert_eq!(got, [0., 1., 3., 6., 9., 2., 3., 3., 3., 3.]);
        // i8: symbols shifted by 128, values as signed
        let got = decode(
            &huffman_blob(&plain, false, DataType::I8),
            5,
            2,
            1,
            SampleType::I8,
        )
        .unwrap();
        assert_eq!(got, plain.map(f32::from));
        // the padding word missing: truncated, an error
        let blob = huffman_blob(&plain, false, DataType::U8);
        let mut cut = blob[..blob.len() - 4].to_vec();
        let size = cut.len() as i32;
        cut[34..38].copy_from_slice(&size.to_le_bytes());
        let sum = fletcher32(&cut[14..]);
        cut[10..14].copy_from_slice(&sum.to_le_bytes());
        let e = decode(&cut, 5, 2, 1, SampleType::U8).unwrap_err();
        assert!(
            matches!(
                e,
                LercError::Truncated {
                    what: "Huffman data",
                    need: 8,
                    have: 4
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn deflate_and_zstd_around_the_blob() {
        let mut b = Blob::new(3, 4, 4, DataType::U8);
        b.z_min = 42.0;
        b.z_max = 42.0;
        let blob = b.build(&[], &[]);
        let mut z = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
        let mut deflated = vec![0u8; z.zlib_compress_bound(blob.len())];
        let n = z.zlib_compress(&blob, &mut deflated).unwrap();
        deflated.truncate(n);
        let zst = zstd::bulk::compress(&blob, 3).unwrap();
        for (bytes, extra) in [(&blob, 0u32), (&deflated, 1), (&zst, 2)] {
            let got = decode_chunk(bytes, Some(&[4, extra]), 4, 4, 1, SampleType::U8).unwrap();
            assert_eq!(got, [42.0; 16], "additional compression {extra}");
        }
        let e = decode_chunk(&blob, Some(&[4, 3]), 4, 4, 1, SampleType::U8).unwrap_err();
        assert!(
            matches!(&e, LercError::Unsupported(m) if m == "LERC additional compression 3"),
            "{e:?}"
        );
        let e = decode_chunk(&blob, Some(&[4, 1]), 4, 4, 1, SampleType::U8).unwrap_err();
        assert!(
            matches!(&e, LercError::Corrupt(m) if m.starts_with("DEFLATE around the LERC blob")),
            "{e:?}"
        );
    }

    #[test]
    fn hostile_blobs_are_errors() {
        let mut b = Blob::new(3, 4, 4, DataType::U16);
        b.z_max = 9.0;
        // version 3: no ranges; tiled, one bit-stuffed block, offset 0
        let mut body = vec![0, 1];
        body.extend(0u16.to_le_bytes());
        body.extend(stuffed(&(0..16).map(|i| i % 10).collect::<Vec<_>>(), 3));
        let good = b.build(&[], &body);
        assert_eq!(
            decode(&good, 4, 4, 1, SampleType::U16).unwrap()[..4],
            [0., 1., 2., 3.]
        );
        // every truncation: an error, never a panic
        for n in 0..good.len() {
            assert!(
                decode(&good[..n], 4, 4, 1, SampleType::U16).is_err(),
                "cut at {n}"
            );
        }
        // every single-byte corruption: caught by the checksum or parsing
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x5a;
            assert!(decode(&bad, 4, 4, 1, SampleType::U16).is_err(), "byte {at}");
        }
        // a bad checksum names itself
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            decode(&bad, 4, 4, 1, SampleType::U16),
            Err(LercError::Checksum { .. })
        ));
        // wrong tile size, type, band count
        assert!(matches!(
            decode(&good, 8, 4, 1, SampleType::U16),
            Err(LercError::Shape(_))
        ));
        assert!(matches!(
            decode(&good, 4, 4, 1, SampleType::I16),
            Err(LercError::Shape(_))
        ));
        let e = decode(&good, 4, 4, 2, SampleType::U16).unwrap_err();
        assert!(
            matches!(&e, LercError::Shape(m) if m == "blobs hold 1 of the tile's 2 samples per pixel"),
            "{e:?}"
        );
        assert!(matches!(
            decode(&good, 4, 4, 1, SampleType::F16),
            Err(LercError::Unsupported(_))
        ));
        // absurd declared sizes: rows, blob size
        let mut huge = Blob::new(2, 4, 4, DataType::U16);
        (huge.rows, huge.cols, huge.z_max) = (i32::MAX, i32::MAX, 9.0);
        let e = decode(&huge.build(&[], &body), 4, 4, 1, SampleType::U16).unwrap_err();
        assert!(
            matches!(&e, LercError::Shape(m) if m.contains("2147483647×2147483647 pixels in a 4×4 tile")),
            "{e:?}"
        );
        let mut big = good.clone();
        big[30..34].copy_from_slice(&i32::MAX.to_le_bytes()); // v3: blob size
        assert!(matches!(
            decode(&big, 4, 4, 1, SampleType::U16),
            Err(LercError::Truncated { .. })
        ));
        // not LERC at all, and Lerc1
        assert!(matches!(
            decode(b"CntZImage ", 4, 4, 1, SampleType::U16),
            Err(LercError::NotLerc2(_))
        ));
        let e = decode(&[], 4, 4, 1, SampleType::U16).unwrap_err();
        assert!(
            matches!(&e, LercError::Shape(m) if m.contains("blobs hold 0 of")),
            "{e:?}"
        );
        // a mask whose runs overflow it
        let mut rle = Vec::new();
        rle.extend(100i16.to_le_bytes());
        rle.extend([0xff; 100]);
        rle.extend(i16::MIN.to_le_bytes());
        let mut m = Blob::new(3, 4, 4, DataType::U16);
        m.valid = 3;
        assert!(matches!(
            decode(&m.build(&rle, &body), 4, 4, 1, SampleType::U16),
            Err(LercError::Corrupt(_))
        ));
    }

    #[test]
    fn mutated_blobs_with_valid_checksums_never_panic() {
        // The checksum stops random corruption before the parser; a hostile
        // file can carry a correct one. So: mutate valid blobs (each block
        // encoding, Huffman, masks, several depths, versions 2 to 4), fix
        // the checksum, decode. Errors are fine, panics are not; the output
        // is always the tile's size.
        let mut seeds: Vec<(Vec<u8>, usize, usize, usize, SampleType)> = Vec::new();
        let plain = [0u8, 1, 2, 3, 3, 2, 1, 0, 0, 0];
        seeds.push((
            huffman_blob(&plain, true, DataType::U8),
            5,
            2,
            1,
            SampleType::U8,
        ));
        seeds.push((
            huffman_blob(&plain, false, DataType::I8),
            5,
            2,
            1,
            SampleType::I8,
        ));
        let left: Vec<u32> = (0..64).map(|i| i * 3).collect();
        for version in [2, 3, 4] {
            let mut body = Vec::new();
            if version >= 4 {
                body.extend(0u16.to_le_bytes());
                body.extend(900u16.to_le_bytes());
            }
            body.push(0);
            body.push(1);
            body.extend(100u16.to_le_bytes());
            body.extend(stuffed(&left, version));
            body.push((1 << 2) | 3);
            body.extend(7u16.to_le_bytes());
            let mut b = Blob::new(version, 8, 16, DataType::U16);
            b.z_max = 900.0;
            seeds.push((b.build(&[], &body), 16, 8, 1, SampleType::U16));
        }
        let mut rle = Vec::new();
        rle.extend(2i16.to_le_bytes());
        rle.extend([0b1011_1101u8, 0xff]);
        rle.extend(i16::MIN.to_le_bytes());
        let mut body = Vec::new();
        body.extend([1u8, 2, 3, 9, 9, 9, 0, 0]);
        for _ in 0..3 {
            body.push(1);
            body.push(1);
            body.extend(stuffed(&[0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5], 4));
        }
        let mut b = Blob::new(4, 4, 4, DataType::U8);
        (b.depth, b.valid, b.micro, b.z_min, b.z_max) = (3, 14, 4, 1.0, 9.0);
        seeds.push((b.build(&rle, &body), 4, 4, 3, SampleType::U8));
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut decoded = 0;
        for round in 0..20_000 {
            let (seed, w, h, samples, t) = &seeds[round % seeds.len()];
            let mut m = seed.clone();
            for _ in 0..1 + rand(4) {
                if m.is_empty() {
                    m.push(0);
                }
                let at = rand(m.len());
                match rand(6) {
                    0 => m[at] = rand(256) as u8,
                    1 => m[at] ^= 1 << rand(8),
                    2 => m.truncate(at.max(1)),
                    3 => m.insert(at, rand(256) as u8),
                    4 => {
                        m.remove(at);
                    }
                    // a header integer set to an extreme
                    _ => {
                        let i = 14 + 4 * rand(7);
                        let v = [0i32, -1, 1, 33, i32::MAX, i32::MIN][rand(6)];
                        if i + 4 <= m.len() {
                            m[i..i + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
            // mostly keep the blob size in step with the bytes, then the
            // checksum right over them
            let version = m
                .get(6..10)
                .map(|v| i32::from_le_bytes([v[0], v[1], v[2], v[3]]));
            let size_at = if version >= Some(4) { 34 } else { 30 };
            if m.len() >= size_at + 4 && rand(4) > 0 {
                let n = m.len() as i32;
                m[size_at..size_at + 4].copy_from_slice(&n.to_le_bytes());
            }
            if let (Some(3..), Some(v)) = (version, m.get(size_at..size_at + 4)) {
                let size = i32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                if let Some(body) = usize::try_from(size).ok().and_then(|n| m.get(14..n)) {
                    let sum = fletcher32(body);
                    m[10..14].copy_from_slice(&sum.to_le_bytes());
                }
            }
            if let Ok(v) = decode(&m, *w, *h, *samples, *t) {
                assert_eq!(v.len(), w * h * samples);
                decoded += 1;
            }
        }
        // some mutations leave a valid blob (a changed value): the decoder
        // was reached past the header, not only refused at the door
        assert!(decoded > 100, "{decoded} of 20000 decoded");
    }
}
