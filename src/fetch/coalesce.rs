//! Merging nearby byte ranges into fewer requests: one rule, used by the
//! HTTP client and by the benchmark's physical limit alike.

use std::ops::Range;

/// Ranges closer than this many bytes are fetched in one request. The
/// default, 1 KiB, merges tiles that touch (this crate's COGs) or are
/// separated only by GDAL's 4-byte size leader and trailer, so a row of tiles
/// is one request and at most a few bytes per merge are fetched needlessly.
/// Raise it (object_store uses 1 MiB) to trade wasted bytes for fewer round
/// trips on high-latency stores.
pub const DEFAULT_COALESCE_GAP: u64 = 1024;

/// Sorted, merged ranges covering `ranges`; ranges whose gap is `< gap`
/// merge (so `gap = 0` merges only overlapping ranges), empty ranges drop.
///
/// # Examples
/// ```
/// assert_eq!(tilestack::fetch::coalesce(&[10..20, 0..8], 3), vec![0..20]);
/// assert_eq!(tilestack::fetch::coalesce(&[10..20, 0..8], 2), vec![0..8, 10..20]);
/// ```
pub fn coalesce(ranges: &[Range<u64>], gap: u64) -> Vec<Range<u64>> {
    let mut sorted: Vec<Range<u64>> = ranges.iter().filter(|r| r.end > r.start).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start < last.end || r.start - last.end < gap => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_small_gaps_only() {
        let r = vec![10..20, 0..5, 5..8, 100..110];
        assert_eq!(coalesce(&r, 0), vec![0..5, 5..8, 10..20, 100..110]);
        assert_eq!(coalesce(&r, 2), vec![0..8, 10..20, 100..110]);
        assert_eq!(coalesce(&r, 3), vec![0..20, 100..110]);
        assert_eq!(coalesce(&r, 1000), vec![0..110]);
        assert_eq!(coalesce(&[0..10, 2..4], 0), vec![0..10]);
        assert_eq!(coalesce(&[0..0, 3..3], 10), Vec::<Range<u64>>::new());
    }
}
