//! The one byte-bounded LRU cache of decoded tiles, shared by every reader,
//! with single-flight fetches (concurrent readers of a tile await one fetch).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::cog::tile::{TileData, TileKey};
use crate::error::Error;
use crate::fetch::metrics::FetchMetrics;

/// A tile fetch that several readers may await.
pub(crate) type SharedTile = Shared<BoxFuture<'static, std::result::Result<TileData, Arc<Error>>>>;

#[derive(Debug)]
struct CacheState {
    lru: lru::LruCache<TileKey, TileData>,
    used: u64,
    in_flight: HashMap<TileKey, SharedTile>,
}

/// The one cache of **decoded** tiles ([`Tile`](crate::cog::tile::Tile): inflated, predictor undone,
/// in native samples — 2 bytes a pixel for uint16 — so a hit costs no
/// inflate), bounded in bytes, shared by every thread and every reader.
/// Clones share the same cache.
///
/// Concurrent requests for a tile that is being fetched wait for that fetch
/// instead of starting their own. The lock is a `std::sync::Mutex` that is
/// never held across an `.await`.
///
/// # Examples
/// ```
/// use tilestack::cog::TileCache;
/// let cache = TileCache::new(256 * 1024 * 1024);
/// assert_eq!(cache.budget(), 256 * 1024 * 1024);
/// assert_eq!(cache.bytes_used(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct TileCache {
    state: Arc<Mutex<CacheState>>,
    budget: u64,
    metrics: Arc<FetchMetrics>,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// Cached.
    Hit(TileData),
    /// Someone is fetching it: await this.
    Wait(SharedTile),
    /// Nobody has it: the caller must fetch it and [`Claim::complete`] it;
    /// others wait on the shared future.
    Lead(SharedTile, Claim),
}

/// The obligation to fill one in-flight tile. Dropping it unfilled wakes the
/// waiters with an error and frees the slot for a later retry.
pub(crate) struct Claim {
    cache: TileCache,
    key: TileKey,
    tx: Option<futures::channel::oneshot::Sender<std::result::Result<TileData, Arc<Error>>>>,
}

impl Claim {
    /// Stores the result (on success) and wakes everyone waiting for it.
    pub(crate) fn complete(mut self, result: std::result::Result<TileData, Arc<Error>>) {
        self.cache.finish(&self.key, result.as_ref().ok());
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(result);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.cache.finish(&self.key, None);
        }
    }
}

impl TileCache {
    /// An empty cache holding at most `budget_bytes` of decoded tiles.
    pub fn new(budget_bytes: u64) -> Self {
        TileCache {
            state: Arc::new(Mutex::new(CacheState {
                lru: lru::LruCache::unbounded(),
                used: 0,
                in_flight: HashMap::new(),
            })),
            budget: budget_bytes,
            metrics: Arc::new(FetchMetrics::default()),
        }
    }

    /// Count hits, misses and evictions into `metrics` (e.g. a client's).
    pub fn with_metrics(mut self, metrics: Arc<FetchMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of decoded tiles held now (always `<= budget()`).
    pub fn bytes_used(&self) -> u64 {
        self.state.lock().map(|s| s.used).unwrap_or(0)
    }

    /// Tiles held now.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.lru.len()).unwrap_or(0)
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters this cache adds to.
    pub fn metrics(&self) -> &Arc<FetchMetrics> {
        &self.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding the lock leaves consistent state (every
        // mutation below is completed before anything can panic), so recover.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds `key`, or registers the caller as the one fetching it.
    pub(crate) fn lookup(&self, key: &TileKey) -> Lookup {
        let mut s = self.lock();
        if let Some(t) = s.lru.get(key) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(t.clone());
        }
        if let Some(f) = s.in_flight.get(key) {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Wait(f.clone());
        }
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = futures::channel::oneshot::channel();
        let href = key.href.clone();
        let fut: BoxFuture<'static, _> = rx
            .map(move |r| {
                r.unwrap_or_else(|_| Err(Arc::new(Error::http(href, "tile fetch was abandoned"))))
            })
            .boxed();
        let shared = fut.shared();
        s.in_flight.insert(key.clone(), shared.clone());
        Lookup::Lead(
            shared,
            Claim {
                cache: self.clone(),
                key: key.clone(),
                tx: Some(tx),
            },
        )
    }

    fn finish(&self, key: &TileKey, value: Option<&TileData>) {
        let mut s = self.lock();
        s.in_flight.remove(key);
        let Some(v) = value else { return };
        self.store(&mut s, key, v);
    }

    /// Replaces a partly decoded tile with one decoded further down.
    pub(crate) fn upgrade(&self, key: &TileKey, value: &TileData) {
        let mut s = self.lock();
        if s.lru.peek(key).is_none_or(|old| old.rows < value.rows) {
            self.store(&mut s, key, value);
        }
    }

    fn store(&self, s: &mut CacheState, key: &TileKey, v: &TileData) {
        if let Some(old) = s.lru.put(key.clone(), v.clone()) {
            s.used -= old.cached_bytes();
        }
        s.used += v.cached_bytes();
        while s.used > self.budget {
            let Some((_, old)) = s.lru.pop_lru() else {
                break;
            };
            s.used -= old.cached_bytes();
            self.metrics.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cog::tile::Tile;

    #[test]
    fn cache_stays_within_budget() {
        let cache = TileCache::new(100);
        for i in 0..10 {
            let key = TileKey {
                href: "a".into(),
                ifd: 0,
                x: i,
                y: 0,
                band: 0,
            };
            match cache.lookup(&key) {
                Lookup::Lead(_, claim) => {
                    claim.complete(Ok(Arc::new(Tile::full(5, 2, vec![0.0; 10]))))
                }
                _ => panic!("expected a miss"),
            }
            assert!(cache.bytes_used() <= 100);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.metrics().evictions(), 8);
    }
}
