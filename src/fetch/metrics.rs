//! Request and cache counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request and cache counters, shared by every clone of a client or cache.
///
/// # Examples
/// ```
/// use tilestack::fetch::FetchMetrics;
/// let m = FetchMetrics::default();
/// assert_eq!((m.requests(), m.bytes(), m.cache_hits()), (0, 0, 0));
/// ```
#[derive(Debug, Default)]
pub struct FetchMetrics {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) evictions: AtomicU64,
}

impl FetchMetrics {
    /// HTTP requests sent, retries included (for `s3://`, `gs://` and `az://`
    /// hrefs, one per `object_store` call: its internal retries are not seen).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Body bytes received in successful responses.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Requests that were retried (by this client; not `object_store`'s own).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Tile lookups answered from the cache (or from a fetch already in flight).
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }
    /// Tile lookups that started a fetch.
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Ordering::Relaxed)
    }
    /// Tiles dropped from the cache to stay within its byte budget.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}
