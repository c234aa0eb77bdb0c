//! A Blosc (format 1, as c-blosc 1.x and numcodecs write it) decoder in
//! Rust: the 16-byte header, the block starts, each block's splits
//! decompressed with LZ4 (`lz4_flex`), Zstandard (`zstd`) or zlib
//! (`libdeflater`), then byte- or bit-unshuffled. No C library of Blosc's
//! own and no bindgen: a fresh machine with only gcc builds it.
//!
//! Every size comes from the (untrusted) header and is checked against the
//! buffer and a caller's limit before anything is allocated.

/// Why a Blosc buffer did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Blosc: {0}")]
pub struct BloscError(pub String);

const HEADER: usize = 16;
const DOSHUFFLE: u8 = 0x1;
const MEMCPYED: u8 = 0x2;
const DOBITSHUFFLE: u8 = 0x4;
const DONT_SPLIT: u8 = 0x10;
/// c-blosc's `MAX_SPLITS` and `MIN_BUFFERSIZE`, the rule for splits written
/// before the split flag existed.
const MAX_SPLITS: usize = 16;
const MIN_BUFFERSIZE: usize = 128;

/// The name of Blosc's compressor format `code` (header flags bits 5–7).
fn format_name(code: u8) -> &'static str {
    match code {
        0 => "blosclz",
        1 => "lz4",
        2 => "snappy",
        3 => "zlib",
        4 => "zstd",
        _ => "unknown",
    }
}

fn le32(b: &[u8], at: usize) -> Result<u32, BloscError> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| BloscError(format!("buffer of {} bytes cut at byte {at}", b.len())))
}

/// The decoded size a Blosc buffer declares (header bytes 4..8).
///
/// # Errors
/// A buffer shorter than the 16-byte header.
pub fn decoded_len(src: &[u8]) -> Result<usize, BloscError> {
    if src.len() < HEADER {
        return Err(BloscError(format!(
            "{} bytes: shorter than the 16-byte header",
            src.len()
        )));
    }
    Ok(le32(src, 4)? as usize)
}

/// Decodes the Blosc buffer `src`, which must decode to at most `max_len`
/// bytes.
///
/// # Errors
/// A [`BloscError`] for a header or block table that does not fit the
/// buffer, a declared size over `max_len`, a compressor other than LZ4,
/// Zstandard or zlib (BloscLZ and Snappy are not decoded), or a split that
/// does not decode to its size.
pub fn decompress(src: &[u8], max_len: usize) -> Result<Vec<u8>, BloscError> {
    let nbytes = decoded_len(src)?;
    let (version, flags, typesize) = (src[0], src[2], usize::from(src[3]).max(1));
    let blocksize = le32(src, 8)? as usize;
    let cbytes = le32(src, 12)? as usize;
    if version == 0 || version > 4 {
        return Err(BloscError(format!(
            "format version {version} (Blosc 1 buffers are versions 1–4)"
        )));
    }
    if nbytes > max_len {
        return Err(BloscError(format!(
            "declares {nbytes} decoded bytes, over the {max_len} expected"
        )));
    }
    if cbytes > src.len() {
        return Err(BloscError(format!(
            "declares {cbytes} compressed bytes but has {}",
            src.len()
        )));
    }
    let src = &src[..cbytes];
    if flags & MEMCPYED != 0 {
        return src
            .get(HEADER..HEADER + nbytes)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                BloscError(format!(
                    "stored buffer of {nbytes} bytes cut at {}",
                    src.len()
                ))
            });
    }
    if nbytes == 0 {
        return Ok(Vec::new());
    }
    if blocksize == 0 {
        return Err(BloscError("block size 0".into()));
    }
    let nblocks = nbytes.div_ceil(blocksize);
    let leftover = nbytes % blocksize;
    // the block starts must fit the buffer before anything is allocated
    if HEADER + 4 * nblocks > src.len() {
        return Err(BloscError(format!(
            "{nblocks} block starts do not fit {} bytes",
            src.len()
        )));
    }
    let code = (flags & 0xe0) >> 5;
    let mut out = vec![0u8; nbytes];
    let mut tmp = vec![0u8; blocksize.min(nbytes)];
    for j in 0..nblocks {
        let start = le32(src, HEADER + 4 * j)? as usize;
        let last = j == nblocks - 1 && leftover > 0;
        let bsize = if last { leftover } else { blocksize };
        let dest = &mut out[j * blocksize..j * blocksize + bsize];
        let block = src
            .get(start..)
            .ok_or_else(|| BloscError(format!("block {j} starts at {start}, past the buffer")))?;
        decode_block(
            block,
            flags,
            code,
            typesize,
            bsize,
            last,
            &mut tmp[..bsize],
            dest,
        )
        .map_err(|e| BloscError(format!("block {j}: {}", e.0)))?;
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn decode_block(
    mut src: &[u8],
    flags: u8,
    code: u8,
    typesize: usize,
    bsize: usize,
    leftover: bool,
    tmp: &mut [u8],
    dest: &mut [u8],
) -> Result<(), BloscError> {
    let shuffled = (flags & DOSHUFFLE != 0 && typesize > 1) || flags & DOBITSHUFFLE != 0;
    let nsplits = if flags & DONT_SPLIT == 0
        && typesize <= MAX_SPLITS
        && bsize / typesize >= MIN_BUFFERSIZE
        && !leftover
    {
        typesize
    } else {
        1
    };
    let neblock = bsize / nsplits;
    let target: &mut [u8] = if shuffled { tmp } else { dest };
    for k in 0..nsplits {
        let csize = le32(src, 0)? as i32;
        src = &src[4..];
        let csize = usize::try_from(csize)
            .map_err(|_| BloscError(format!("split {k} has a negative size {csize}")))?;
        let part = src.get(..csize).ok_or_else(|| {
            BloscError(format!(
                "split {k} declares {csize} bytes but {} remain",
                src.len()
            ))
        })?;
        let out = &mut target[k * neblock..(k + 1) * neblock];
        if csize == neblock {
            out.copy_from_slice(part);
        } else {
            let n = match code {
                1 => lz4_flex::block::decompress_into(part, out)
                    .map_err(|e| BloscError(format!("lz4: {e}")))?,
                4 => zstd::bulk::Decompressor::new()
                    .and_then(|mut d| d.decompress_to_buffer(part, out))
                    .map_err(|e| BloscError(format!("zstd: {e}")))?,
                3 => libdeflater::Decompressor::new()
                    .zlib_decompress(part, out)
                    .map_err(|e| BloscError(format!("zlib: {e}")))?,
                c => {
                    return Err(BloscError(format!(
                        "compressor {} (code {c}) is not supported (lz4, zstd and zlib are)",
                        format_name(c)
                    )));
                }
            };
            if n != neblock {
                return Err(BloscError(format!(
                    "split {k} decoded to {n} bytes, expected {neblock}"
                )));
            }
        }
        src = &src[csize..];
    }
    if flags & DOSHUFFLE != 0 && typesize > 1 {
        unshuffle(typesize, tmp, dest);
    } else if flags & DOBITSHUFFLE != 0 {
        bitunshuffle(typesize, tmp, dest);
    }
    Ok(())
}

/// Byte unshuffle of one block: byte `j` of element `i` was stored at
/// `j * n + i`; trailing bytes past the last whole element are kept.
fn unshuffle(typesize: usize, src: &[u8], dest: &mut [u8]) {
    let n = src.len() / typesize;
    for j in 0..typesize {
        let plane = &src[j * n..(j + 1) * n];
        for (i, &b) in plane.iter().enumerate() {
            dest[i * typesize + j] = b;
        }
    }
    let done = n * typesize;
    dest[done..].copy_from_slice(&src[done..]);
}

/// Bit unshuffle of one block (the bitshuffle library's layout, as c-blosc
/// 1.x uses it): bit `b` of byte `j` of element `i` was stored as bit
/// `(8j + b) * n + i` (LSB first); bytes after the last whole element are
/// kept. A block whose element count is not a multiple of 8 was stored
/// unshuffled (c-blosc copies it).
fn bitunshuffle(typesize: usize, src: &[u8], dest: &mut [u8]) {
    let n = src.len() / typesize;
    if !n.is_multiple_of(8) {
        dest.copy_from_slice(src);
        return;
    }
    let done = n * typesize;
    dest[..done].fill(0);
    let row_bytes = n / 8;
    for j in 0..typesize {
        for b in 0..8 {
            let row = &src[(8 * j + b) * row_bytes..(8 * j + b + 1) * row_bytes];
            for (ib, &byte) in row.iter().enumerate() {
                if byte == 0 {
                    continue;
                }
                for k in 0..8 {
                    let bit = (byte >> k) & 1;
                    dest[(8 * ib + k) * typesize + j] |= bit << b;
                }
            }
        }
    }
    dest[done..].copy_from_slice(&src[done..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zarr/blosc")
    }

    /// Every buffer numcodecs wrote (lz4, lz4hc, zstd, zlib × no/byte/bit
    /// shuffle × 1, 2 and 4-byte samples, several blocks and a leftover
    /// block, and a stored one) decodes to the bytes it was made from.
    #[test]
    fn decodes_what_numcodecs_wrote() {
        let cases: Vec<String> =
            serde_json::from_slice(&std::fs::read(dir().join("cases.json")).unwrap()).unwrap();
        assert!(cases.len() >= 37);
        for name in cases {
            let enc = std::fs::read(dir().join(format!("{name}.blosc"))).unwrap();
            let raw = std::fs::read(dir().join(format!("{name}.raw"))).unwrap();
            let got = decompress(&enc, raw.len()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(got == raw, "{name}: decoded bytes differ");
        }
    }

    #[test]
    fn hostile_buffers_are_errors() {
        let enc = std::fs::read(dir().join("zstd_shuffle_u2.blosc")).unwrap();
        let raw_len = decoded_len(&enc).unwrap();
        // over the caller's limit
        assert!(
            decompress(&enc, raw_len - 1)
                .unwrap_err()
                .0
                .contains("over")
        );
        // cut anywhere
        for cut in [0, 5, 15, 16, 20, enc.len() / 2, enc.len() - 1] {
            assert!(decompress(&enc[..cut], raw_len).is_err(), "cut at {cut}");
        }
        // a block start past the end
        let mut bad = enc.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = format!("{:?}", (decompress(&bad, raw_len)).unwrap_err());
        assert!(
            e.contains("BloscError(\"block 0 starts at 4294967295, past the buffer\")"),
            "{e}"
        );
        // blosclz is named
        let mut bad = enc.clone();
        bad[2] &= 0x1f;
        let e = decompress(&bad, raw_len).unwrap_err();
        assert!(e.0.contains("blosclz"), "{e}");
    }
}
