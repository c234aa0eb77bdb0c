//! A check of each IFD's entries before async-tiff parses them: async-tiff
//! 0.4 allocates what an entry declares (`Vec::with_capacity(count)`, a
//! `HashMap` sized by the entry count) and asserts on unknown tag types, so
//! a hostile file could abort the process on a failed multi-GB allocation.
//! Here every declared count is bounded by the format, a limit and the
//! file's size before anything is allocated.

use async_tiff::metadata::MetadataFetch;

use crate::error::Problem;

/// Most entries one IFD may declare (GDAL writes a few dozen).
pub const MAX_IFD_ENTRIES: u64 = 4096;

/// Most values one tag may declare: tile offsets and byte counts of an
/// image at [`MAX_IMAGE_PIXELS`](super::MAX_IMAGE_PIXELS) in 256-px tiles
/// need 2¹⁸; this leaves room and bounds async-tiff's per-value allocation.
pub const MAX_TAG_VALUES: u64 = 1 << 22;

/// Bytes of one value of TIFF type `t`, or `None` for a type TIFF 6 and
/// BigTIFF do not define.
fn type_size(t: u64) -> Option<u64> {
    Some(match t {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => return None,
    })
}

/// The unsigned integer of `n` bytes at `at`, in the file's byte order.
fn uint_at(b: &[u8], at: usize, n: usize, le: bool) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(n)?)?;
    let fold = |acc: u64, &x: &u8| (acc << 8) | u64::from(x);
    Some(if le {
        bytes.iter().rev().fold(0, fold)
    } else {
        bytes.iter().fold(0, fold)
    })
}

/// Checks the IFD at `offset`: its entry count, and each entry's type,
/// value count and (when the file's `size` is known) where its values lie.
/// `Err` says what is wrong, in words, for an error naming the file; a
/// failed read keeps its error as the cause.
pub(super) async fn check_ifd<F: MetadataFetch>(
    fetch: &F,
    offset: u64,
    little_endian: bool,
    bigtiff: bool,
    size: Option<u64>,
) -> std::result::Result<(), Problem> {
    let le = little_endian;
    let (count_bytes, entry_bytes, inline) = if bigtiff { (8, 20, 8) } else { (2, 12, 4) };
    let past_end = |end: u64| size.is_some_and(|s| end > s);
    if past_end(offset.saturating_add(count_bytes)) {
        return Err(format!("IFD at byte {offset} lies past the end of the file").into());
    }
    let head = fetch
        .fetch(offset..offset + count_bytes)
        .await
        .map_err(|e| Problem::because(format!("reading the IFD at byte {offset}"), e))?;
    let n = if bigtiff {
        uint_at(&head, 0, 8, le)
    } else {
        uint_at(&head, 0, 2, le)
    }
    .ok_or_else(|| format!("IFD at byte {offset}: truncated entry count"))?;
    if n > MAX_IFD_ENTRIES {
        return Err(format!(
            "IFD at byte {offset} declares {n} entries (at most {MAX_IFD_ENTRIES})"
        )
        .into());
    }
    let start = offset + count_bytes;
    let end = start + n * entry_bytes;
    if past_end(end) {
        return Err(
            format!("IFD at byte {offset}: its {n} entries run past the end of the file").into(),
        );
    }
    let entries = fetch
        .fetch(start..end)
        .await
        .map_err(|e| Problem::because(format!("reading the IFD at byte {offset}"), e))?;
    let eb = entry_bytes as usize;
    for i in 0..n as usize {
        let at = i * eb;
        let bad = || format!("IFD at byte {offset}: entry {i} is truncated");
        let tag = uint_at(&entries, at, 2, le).ok_or_else(bad)?;
        let ty = uint_at(&entries, at + 2, 2, le).ok_or_else(bad)?;
        // Count, then value or offset: 8 bytes each in BigTIFF, else 4.
        let w = if bigtiff { 8 } else { 4 };
        let count = uint_at(&entries, at + 4, w, le).ok_or_else(bad)?;
        let value_at = uint_at(&entries, at + 4 + w, w, le).ok_or_else(bad)?;
        let Some(each) = type_size(ty) else {
            return Err(format!(
                "tag {tag} has type {ty}, which TIFF does not define (async-tiff cannot skip it)"
            )
            .into());
        };
        if count > MAX_TAG_VALUES {
            return Err(
                format!("tag {tag} declares {count} values (at most {MAX_TAG_VALUES})").into(),
            );
        }
        let bytes = count * each;
        if bytes > inline && past_end(value_at.saturating_add(bytes)) {
            return Err(format!(
                "tag {tag}: its {bytes} bytes at byte {value_at} run past the end of the file"
            )
            .into());
        }
    }
    Ok(())
}
