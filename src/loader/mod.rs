//! [`BatchLoader`]: tilestack's own batching — the epoch order, whole
//! batches loaded ahead under one byte budget, error policies, seeded
//! augmentation, resume, device slices — over a [`TileDataset`]. It hands
//! out framework-neutral [`HostBatch`]es; the burn loader
//! ([`StackDataLoader`](crate::burn::StackDataLoader), feature `burn`) turns them
//! into tensors, and `materialize` writes them to shards.
//!
//! How an epoch runs:
//! * **Order**: one seeded permutation of the samples per epoch (the same
//!   for a seed and epoch on every run and platform), cut into this rank's
//!   share (every `world`-th position from `rank`, `n / world` of them),
//!   then into the loader's slice, then into batches in that order.
//! * **Prefetch**: when a batch is asked for, the next
//!   [`LoaderConfig::prefetch_batches`] batches start loading — across the
//!   epoch's end into the next epoch's first batches, so that a new epoch
//!   does not start cold. A batch loads its samples concurrently; at most
//!   [`LoaderConfig::loads_at_once`] stack loads run at once, the nearest
//!   batch's first.
//! * **Budget**: every batch the loader holds — loading, ready, or being
//!   handed over — is counted at its output bytes plus its samples' stacks,
//!   and nothing starts that would take the total past
//!   [`LoaderConfig::budget_bytes`]. Batches handed out are the caller's.
//!
//! May import: every stage up to [`crate::shard`] (a loader runs over a
//! dataset or its shards).

pub(crate) mod augment;
pub(crate) mod batch;
pub(crate) mod metrics;
pub(crate) mod source;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use batch::{HostBatch, SampleStatus, SourceBatch};
use futures::StreamExt;
pub use metrics::LoaderMetrics;
use rand::SeedableRng;
use tokio::task::JoinHandle;

use crate::dataset::TileDataset;
use crate::dataset::config::{ErrorPolicy, LastBatch, LoaderConfig};
use crate::dataset::inputs::InputStack;
use crate::error::{Cause, Error, Result};
use crate::loader::augment::{PixelMap, mix};
use crate::loader::source::{Counters, Source};
use crate::shard::read::ShardSet;
use crate::stack::{Layers, TileStack};

/// A contiguous range of positions of this rank's epoch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct View {
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    view: View,
    epoch: u64,
    batch: usize,
}

struct Slot {
    task: JoinHandle<Result<HostBatch>>,
    bytes: u64,
}

#[derive(Default)]
struct State {
    slots: HashMap<Key, Slot>,
    /// Bytes of the slots plus the batch being handed over.
    held: u64,
    peak: u64,
    /// Epoch → this rank's order (the last few).
    orders: HashMap<u64, Arc<Vec<usize>>>,
    /// Per view: the next epoch `iter()` starts, and the batch it starts at.
    cursors: HashMap<View, (u64, usize)>,
    /// Views made by `slice`: their batch counts are equalized.
    slices: Vec<View>,
    /// Stack arrays kept for the next loads (counted in `held`).
    pool: Vec<ndarray::Array4<f32>>,
}

struct Inner {
    ds: Source,
    opts: LoaderConfig,
    seed: u64,
    rank: (usize, usize),
    per_rank: usize,
    handle: tokio::runtime::Handle,
    permits: Arc<tokio::sync::Semaphore>,
    /// Recycled stack arrays kept at most.
    pool_cap: usize,
    state: Mutex<State>,
    /// Output `[T, C, H, W]` (after crop) and source `(H, W)`.
    out: [usize; 4],
    src_hw: (usize, usize),
    /// Reserved per row: output plus the row's stack while it loads.
    row_bytes: u64,
    /// One sample's stack array.
    stack_bytes: u64,
    /// Per epoch: stack loads finished and failed for its batches.
    loads: Mutex<HashMap<u64, (u64, u64)>>,
    last: Mutex<Option<LoaderMetrics>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nobody can take these batches any more: stop loading them.
        for (_, slot) in self.lock().slots.drain() {
            slot.task.abort();
        }
    }
}

impl Inner {
    /// A recycled stack array, if one is kept (its bytes pass to the slot
    /// that reserved a stack for this row).
    fn take_buffer(&self) -> Option<ndarray::Array4<f32>> {
        let mut st = self.lock();
        let b = st.pool.pop()?;
        st.held -= self.stack_bytes;
        Some(b)
    }

    /// Keeps a stack array for the next load while the budget has room (at
    /// most one per load that can run at once, or a batch's worth);
    /// otherwise it is freed. A recycled array saves the load its first-touch
    /// page faults, which cost more than the copy into it (an array is tens
    /// of MB: on a 2-core VM, a memcpy into fresh pages runs at ~1.9 GB/s,
    /// into touched ones at ~17 GB/s; `benches/shards.rs`).
    fn recycle(&self, data: ndarray::Array4<f32>) {
        let mut st = self.lock();
        if st.pool.len() < self.pool_cap && st.held + self.stack_bytes <= self.opts.budget_bytes {
            st.pool.push(data);
            st.held += self.stack_bytes;
            st.peak = st.peak.max(st.held);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state (plain
        // inserts and removes): keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Batches of a [`TileDataset`] in a seeded order per epoch, loaded ahead
/// under one byte budget (see the module docs). Cheap to clone: clones,
/// slices and device copies share the prefetcher and the budget.
///
/// ```no_run
/// use std::sync::Arc;
/// use tilestack::{BatchLoader, DatasetConfig, TileDataset};
/// let cfg = DatasetConfig::from_file("datasets/oakland-ships.toml".as_ref())?;
/// let loader = BatchLoader::new(Arc::new(TileDataset::open(&cfg)?), cfg.loader.clone())?;
/// for _epoch in 0..2 {
///     let mut batches = loader.iter()?; // one call per epoch: a new order
///     for batch in &mut batches {
///         let batch = batch?;
///         println!("{:?} {:?}", batch.shape, batch.ids);
///     }
///     println!("{}", batches.metrics());
/// }
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Clone)]
pub struct BatchLoader {
    inner: Arc<Inner>,
    view: View,
}

impl std::fmt::Debug for BatchLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchLoader")
            .field("samples", &self.num_items())
            .field("batches", &self.num_batches())
            .field("view", &self.view)
            .field("opts", &self.inner.opts)
            .finish()
    }
}

impl BatchLoader {
    /// A loader over `ds` at epoch 0, rank 0 of 1.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the option: a batch size of 0, or a budget
    /// smaller than one batch (with both sizes).
    pub fn new(ds: Arc<TileDataset>, opts: LoaderConfig) -> Result<BatchLoader> {
        BatchLoader::with_rank(ds, opts, 0, 1)
    }

    /// A loader over materialized shards (see [`ShardSet`]): the same
    /// batches as [`BatchLoader::new`] over the dataset the shards were
    /// written from, bit for bit, for the same options and epoch.
    ///
    /// # Errors
    /// As [`BatchLoader::new`].
    pub fn from_shards(shards: Arc<ShardSet>, opts: LoaderConfig) -> Result<BatchLoader> {
        BatchLoader::over(Source::Shards(shards), opts, 0, 1)
    }

    /// As [`BatchLoader::from_shards`], for process `rank` of `world`.
    ///
    /// # Errors
    /// As [`BatchLoader::with_rank`].
    pub fn from_shards_with_rank(
        shards: Arc<ShardSet>,
        opts: LoaderConfig,
        rank: usize,
        world: usize,
    ) -> Result<BatchLoader> {
        BatchLoader::over(Source::Shards(shards), opts, rank, world)
    }

    /// A loader for process `rank` of `world` (multi-process training):
    /// each rank gets `n / world` samples of every epoch's order, disjoint.
    ///
    /// # Errors
    /// As [`BatchLoader::new`]; and `rank >= world`.
    pub fn with_rank(
        ds: Arc<TileDataset>,
        opts: LoaderConfig,
        rank: usize,
        world: usize,
    ) -> Result<BatchLoader> {
        BatchLoader::over(Source::Online(ds), opts, rank, world)
    }

    fn over(ds: Source, opts: LoaderConfig, rank: usize, world: usize) -> Result<BatchLoader> {
        if world == 0 || rank >= world {
            return Err(Error::invalid(
                "rank",
                format!("rank {rank} of {world}: need rank < world"),
            ));
        }
        if opts.batch_size == 0 {
            return Err(Error::invalid("loader.batch_size", "0 (at least 1)"));
        }
        let layout = ds.layout();
        let [t, c, h, w] = layout.shape;
        let cfg = ds.config();
        let crop = cfg.augment.crop.unwrap_or(h.min(w));
        let out = if cfg.augment.crop.is_some() {
            [t, c, crop.min(h), crop.min(w)]
        } else {
            [t, c, h, w]
        };
        let (labels, masks) = (layout.labels.len(), layout.masks.len());
        // the other inputs: their rows and their stacks while loading
        let sources: u64 = ds
            .input_layouts()
            .iter()
            .map(|l| {
                let [lt, lc, lh, lw] = l.shape;
                l.memory_bytes(1, out[2], out[3]) + (lt * lc * lh * lw * 4) as u64
            })
            .sum();
        let row_bytes =
            HostBatch::bytes(1, out, labels, masks) + (t * c * h * w * 4) as u64 + sources;
        let batch_bytes = row_bytes * opts.batch_size as u64;
        if batch_bytes > opts.budget_bytes {
            return Err(Error::invalid(
                "loader.budget_bytes",
                format!(
                    "{} bytes hold less than one batch ({batch_bytes} bytes: {} samples of \
                     [T, C, H, W] = {:?}, with their stacks while loading)",
                    opts.budget_bytes, opts.batch_size, out
                ),
            ));
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let permits = opts.loads_at_once.unwrap_or(2 * cores).max(1);
        let pool_cap = permits.max(opts.batch_size);
        let per_rank = ds.len() / world;
        let inner = Inner {
            handle: ds.handle()?,
            seed: cfg.seed,
            ds,
            opts,
            rank: (rank, world),
            per_rank,
            permits: Arc::new(tokio::sync::Semaphore::new(permits)),
            pool_cap,
            state: Mutex::new(State::default()),
            out,
            src_hw: (h, w),
            row_bytes,
            stack_bytes: (t * c * h * w * 4) as u64,
            loads: Mutex::new(HashMap::new()),
            last: Mutex::new(None),
        };
        Ok(BatchLoader {
            inner: Arc::new(inner),
            view: View {
                start: 0,
                end: per_rank,
            },
        })
    }

    /// The dataset, when the loader builds stacks online (not over shards).
    pub fn dataset(&self) -> Option<&Arc<TileDataset>> {
        match &self.inner.ds {
            Source::Online(d) => Some(d),
            Source::Shards(_) => None,
        }
    }

    /// The shards, when the loader reads materialized ones.
    pub fn shards(&self) -> Option<&Arc<ShardSet>> {
        match &self.inner.ds {
            Source::Shards(s) => Some(s),
            Source::Online(_) => None,
        }
    }

    /// The config whose seed, normalization, augmentation and error policy apply.
    pub fn config(&self) -> &crate::dataset::config::DatasetConfig {
        self.inner.ds.config()
    }

    /// The options.
    pub fn options(&self) -> &LoaderConfig {
        &self.inner.opts
    }

    /// Samples of an epoch in this loader (its rank's share, its slice).
    pub fn num_items(&self) -> usize {
        self.view.end - self.view.start
    }

    /// Batches of an epoch (equal across the slices made by [`BatchLoader::slice`]).
    pub fn num_batches(&self) -> usize {
        let st = self.inner.lock();
        self.batches_locked(&st)
    }

    /// `[B, T, C, H, W]` of a full batch.
    pub fn batch_shape(&self) -> [usize; 5] {
        let [t, c, h, w] = self.inner.out;
        [self.inner.opts.batch_size, t, c, h, w]
    }

    /// The part `[start, end)` of this loader's positions, as its own loader
    /// (burn's multi-device split). Slices share the prefetcher and budget,
    /// and every slice made from one loader runs the same number of batches:
    /// [`LastBatch::Drop`] cuts to the smallest slice's whole batches, the
    /// others pad to the largest's.
    pub fn slice(&self, start: usize, end: usize) -> BatchLoader {
        let len = self.num_items();
        let (start, end) = (start.min(len), end.min(len).max(start.min(len)));
        let view = View {
            start: self.view.start + start,
            end: self.view.start + end,
        };
        let mut st = self.inner.lock();
        if !st.slices.contains(&view) {
            st.slices.push(view);
        }
        let cursor = st.cursors.get(&self.view).copied();
        if let Some(c) = cursor {
            st.cursors.entry(view).or_insert(c);
        }
        BatchLoader {
            inner: self.inner.clone(),
            view,
        }
    }

    /// Makes the next [`BatchLoader::iter`] run `epoch` from batch `batch`:
    /// exactly the batches an uninterrupted run would have handed out from
    /// there, bit-identical. Later `iter()` calls go on with `epoch + 1`.
    pub fn resume(&self, epoch: u64, batch: usize) {
        self.inner.lock().cursors.insert(self.view, (epoch, batch));
    }

    /// The epoch the next [`BatchLoader::iter`] runs.
    pub fn next_epoch(&self) -> u64 {
        self.inner.lock().cursors.get(&self.view).map_or(0, |c| c.0)
    }

    /// The metrics of the last epoch that ended (all its batches handed out).
    pub fn last_metrics(&self) -> Option<LoaderMetrics> {
        *self.inner.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Most bytes held at once so far.
    pub fn peak_bytes(&self) -> u64 {
        self.inner.lock().peak
    }

    /// `(epoch, batch)` of this loader's batches loading or ready now, in order.
    pub fn pending(&self) -> Vec<(u64, usize)> {
        let st = self.inner.lock();
        let mut v: Vec<(u64, usize)> = st
            .slots
            .keys()
            .filter(|k| k.view == self.view)
            .map(|k| (k.epoch, k.batch))
            .collect();
        v.sort_unstable();
        v
    }

    /// The sample indices of `epoch`'s order in this loader (rank share, slice).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let order = self.order(epoch);
        order[self.view.start..self.view.end].to_vec()
    }

    /// Starts the next epoch (each call is one epoch; see
    /// [`BatchLoader::resume`]): its batches in order, the first ones
    /// already loading.
    ///
    /// # Errors
    /// [`Error::Invalid`] when called inside an async runtime (the iterator
    /// blocks its thread).
    pub fn iter(&self) -> Result<EpochBatches> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::invalid(
                "BatchLoader::iter",
                "called inside an async runtime; iterate from a plain thread \
                 (e.g. tokio::task::spawn_blocking)",
            ));
        }
        let (epoch, start, total) = {
            let mut st = self.inner.lock();
            let (epoch, start) = st.cursors.get(&self.view).copied().unwrap_or((0, 0));
            st.cursors.insert(self.view, (epoch + 1, 0));
            // Slots of this view for other epochs are no longer wanted.
            let stale: Vec<Key> = st
                .slots
                .keys()
                .filter(|k| k.view == self.view && k.epoch != epoch && k.epoch != epoch + 1)
                .copied()
                .collect();
            for k in stale {
                if let Some(s) = st.slots.remove(&k) {
                    s.task.abort();
                    st.held -= s.bytes;
                }
            }
            (epoch, start, self.batches_locked(&st))
        };
        let snapshot = self.inner.ds.counters();
        let it = EpochBatches {
            loader: self.clone(),
            epoch,
            next: start,
            total,
            t0: Instant::now(),
            metrics: LoaderMetrics {
                epoch,
                budget_bytes: self.inner.opts.budget_bytes,
                ..LoaderMetrics::default()
            },
            snapshot,
            done: false,
        };
        // The first batches start now.
        if start < total {
            self.schedule(Key {
                view: self.view,
                epoch,
                batch: start,
            });
        }
        Ok(it)
    }

    /// Natural batch count of a view of `len` positions.
    fn natural(&self, len: usize) -> usize {
        let b = self.inner.opts.batch_size;
        match self.inner.opts.last_batch {
            LastBatch::Drop => len / b,
            LastBatch::Keep | LastBatch::Pad => len.div_ceil(b),
        }
    }

    fn batches_locked(&self, st: &State) -> usize {
        let own = self.natural(self.num_items());
        if !st.slices.contains(&self.view) {
            return own;
        }
        let counts = st.slices.iter().map(|v| self.natural(v.end - v.start));
        match self.inner.opts.last_batch {
            LastBatch::Drop => counts.min().unwrap_or(own),
            LastBatch::Keep | LastBatch::Pad => counts.max().unwrap_or(own),
        }
    }

    /// This rank's order of `epoch` (all positions, before the slice).
    fn order(&self, epoch: u64) -> Arc<Vec<usize>> {
        let mut st = self.inner.lock();
        if let Some(o) = st.orders.get(&epoch) {
            return o.clone();
        }
        let n = self.inner.ds.len();
        let mut order: Vec<usize> = (0..n).collect();
        if self.inner.opts.shuffle {
            use rand::seq::SliceRandom;
            // Xoshiro256++ is a named, portable generator: the same seed and
            // epoch give the same order on every platform.
            let mut rng =
                rand::rngs::Xoshiro256PlusPlus::seed_from_u64(mix(&[self.inner.seed, epoch]));
            order.shuffle(&mut rng);
        }
        let (rank, world) = self.inner.rank;
        let order: Arc<Vec<usize>> = Arc::new(
            order
                .into_iter()
                .skip(rank)
                .step_by(world)
                .take(self.inner.per_rank)
                .collect(),
        );
        if st.orders.len() >= 4
            && let Some(&old) = st.orders.keys().min()
        {
            st.orders.remove(&old);
        }
        st.orders.insert(epoch, order.clone());
        order
    }

    /// The rows of batch `key`: (dataset sample, padded?) in order.
    fn rows(&self, key: Key) -> Vec<(usize, bool)> {
        let order = self.order(key.epoch);
        let pos = &order[key.view.start..key.view.end];
        let len = pos.len();
        let b = self.inner.opts.batch_size;
        let first = key.batch * b;
        let pad = self.inner.opts.last_batch == LastBatch::Pad || first >= len;
        (first..first + b)
            .map_while(|k| match (k < len, pad && len > 0) {
                (true, _) => Some((pos[k], false)),
                (false, true) => Some((pos[k % len], true)),
                (false, false) => None,
            })
            .collect()
    }

    /// The `k`-th batch after `key`, into the next epoch past the end.
    fn successor(&self, key: Key, k: usize, total: usize) -> Option<Key> {
        let j = key.batch + k;
        if j < total {
            Some(Key { batch: j, ..key })
        } else if j - total < total {
            Some(Key {
                epoch: key.epoch + 1,
                batch: j - total,
                ..key
            })
        } else {
            None
        }
    }

    /// Starts `key` and the batches after it that fit the budget.
    fn schedule(&self, key: Key) {
        let total = self.num_batches();
        let ahead = self.inner.opts.prefetch_batches;
        for k in 0..=ahead {
            let Some(next) = self.successor(key, k, total) else {
                break;
            };
            let rows = self.rows(next);
            let bytes = self.inner.row_bytes * rows.len() as u64;
            let mut st = self.inner.lock();
            if st.slots.contains_key(&next) {
                continue;
            }
            if st.held + bytes > self.inner.opts.budget_bytes {
                if k > 0 {
                    break;
                }
                // The asked-for batch always starts (the budget holds one
                // batch): batches loading further ahead make room.
                evict_after(&mut st, next, self.inner.opts.budget_bytes - bytes);
            }
            let task = self
                .inner
                .handle
                .spawn(load_batch(self.inner.clone(), next, rows));
            st.held += bytes;
            st.peak = st.peak.max(st.held);
            st.slots.insert(next, Slot { task, bytes });
        }
    }
}

/// Aborts the slots of `key`'s view after `key`, farthest first, until at
/// most `room` bytes are held.
fn evict_after(st: &mut State, key: Key, room: u64) {
    let mut later: Vec<Key> = st
        .slots
        .keys()
        .filter(|k| k.view == key.view && (k.epoch, k.batch) > (key.epoch, key.batch))
        .copied()
        .collect();
    later.sort_by_key(|k| std::cmp::Reverse((k.epoch, k.batch)));
    for k in later {
        if st.held <= room {
            break;
        }
        if let Some(s) = st.slots.remove(&k) {
            s.task.abort();
            st.held -= s.bytes;
        }
    }
}

/// One epoch of a [`BatchLoader`]: its batches in order. Each `next()`
/// blocks until its batch is loaded (usually it already is) and starts the
/// batches after it.
pub struct EpochBatches {
    loader: BatchLoader,
    epoch: u64,
    next: usize,
    total: usize,
    t0: Instant,
    metrics: LoaderMetrics,
    snapshot: Counters,
    done: bool,
}

impl std::fmt::Debug for EpochBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochBatches")
            .field("epoch", &self.epoch)
            .field("next", &self.next)
            .field("total", &self.total)
            .finish()
    }
}

impl EpochBatches {
    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Batches handed out so far, counting from the epoch's first (a resumed
    /// epoch starts past 0).
    pub fn position(&self) -> usize {
        self.next
    }

    /// Batches in the epoch.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The epoch's metrics so far.
    pub fn metrics(&self) -> LoaderMetrics {
        let mut m = self.metrics;
        let inner = &self.loader.inner;
        let now = inner.ds.counters();
        let s = &self.snapshot;
        (m.loads, m.load_errors) = inner
            .loads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.epoch)
            .copied()
            .unwrap_or_default();
        let hits = now.hits - s.hits;
        let misses = now.misses - s.misses;
        m.cache_hit_rate = if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            f64::NAN
        };
        m.bytes_fetched = now.bytes - s.bytes;
        m.requests = now.requests - s.requests;
        m.peak_bytes = inner.lock().peak;
        m
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let m = self.metrics();
        tracing::info!(target: "tilestack::loader", "{m}");
        *self
            .loader
            .inner
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(m);
    }
}

impl Iterator for EpochBatches {
    type Item = Result<HostBatch>;

    fn next(&mut self) -> Option<Result<HostBatch>> {
        if self.next >= self.total {
            self.finish();
            return None;
        }
        let t = Instant::now();
        let key = Key {
            view: self.loader.view,
            epoch: self.epoch,
            batch: self.next,
        };
        self.next += 1;
        self.loader.schedule(key);
        let slot = self.loader.inner.lock().slots.remove(&key);
        let out = match slot {
            Some(slot) => {
                let out = self
                    .loader
                    .inner
                    .handle
                    .block_on(slot.task)
                    .unwrap_or_else(|e| Err(Error::task("batch load", e)));
                self.loader.inner.lock().held -= slot.bytes;
                out
            }
            None => Err(Error::internal(
                "loader",
                format!(
                    "batch {} of epoch {} was not scheduled",
                    key.batch, key.epoch
                ),
            )),
        };
        let waited = t.elapsed().as_secs_f64();
        let m = &mut self.metrics;
        m.wait_s += waited;
        if m.batches == 0 {
            m.first_batch_s = self.t0.elapsed().as_secs_f64();
        }
        m.batches += 1;
        if let Ok(b) = &out {
            m.samples += b.len();
            for s in &b.status {
                match s {
                    SampleStatus::Ok => {}
                    SampleStatus::Replaced { .. } => m.replaced += 1,
                    SampleStatus::Failed { .. } => m.failed += 1,
                    SampleStatus::Padded => m.padded += 1,
                }
            }
        }
        m.epoch_s = self.t0.elapsed().as_secs_f64();
        if self.next >= self.total {
            self.finish();
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.total.saturating_sub(self.next);
        (n, Some(n))
    }
}

/// Loads one sample's stack (one permit) and its layers.
async fn load_one(inner: Arc<Inner>, epoch: u64, sample: usize) -> Result<Loaded> {
    let _permit = inner
        .permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| Error::internal_because("loader", "its load permits are closed", e))?;
    let buffer = inner.take_buffer();
    let out = inner.ds.load(sample, buffer).await;
    {
        let mut loads = inner.loads.lock().unwrap_or_else(|e| e.into_inner());
        let n = loads.entry(epoch).or_default();
        n.0 += 1;
        n.1 += u64::from(out.is_err());
        if loads.len() > 8
            && let Some(&old) = loads.keys().min()
        {
            loads.remove(&old);
        }
    }
    out
}

/// Loads the rows of batch `key` concurrently and assembles the batch.
async fn load_batch(inner: Arc<Inner>, key: Key, rows: Vec<(usize, bool)>) -> Result<HostBatch> {
    let ds = &inner.ds;
    let layout = ds.layout();
    let mut batch = HostBatch::new(
        key.epoch,
        key.batch,
        rows.len(),
        inner.out,
        layout.labels,
        layout.masks,
    )
    .with_sources(&ds.input_layouts());
    let cfg = ds.config();
    let fill = cfg.normalize.fill;
    let mut loads = futures::stream::iter(rows.clone().into_iter().enumerate().map(
        |(row, (sample, _))| {
            let inner = inner.clone();
            async move { (row, sample, load_one(inner, key.epoch, sample).await) }
        },
    ))
    .buffer_unordered(rows.len().max(1));
    let mut failures: Vec<(usize, usize, Error)> = Vec::new();
    while let Some((row, sample, out)) = loads.next().await {
        match out {
            Ok((stack, layers, inputs)) => {
                let status = if rows[row].1 {
                    SampleStatus::Padded
                } else {
                    SampleStatus::Ok
                };
                let parts = (&stack, &layers, inputs.as_slice());
                write(&inner, &mut batch, row, sample, parts, status);
                inner.recycle(stack.data);
            }
            Err(e) => failures.push((row, sample, e)),
        }
    }
    drop(loads);
    failures.sort_by_key(|f| f.0);
    for (row, sample, e) in failures {
        match cfg.loader.errors {
            ErrorPolicy::Fail => return Err(e),
            ErrorPolicy::Nan => {
                tracing::warn!(sample, error = %e.chain(), "sample handed out as no data");
                batch.ids[row] = ds.id(sample);
                batch.write_failed(row, sample, fill, e.chain());
            }
            ErrorPolicy::Replace => {
                let (by, (stack, layers, inputs)) = replacement(&inner, key, sample, &e).await?;
                tracing::warn!(sample, replacement = by, error = %e.chain(), "sample replaced");
                let status = SampleStatus::Replaced {
                    failed: sample,
                    error: e.chain(),
                };
                let parts = (&stack, &layers, inputs.as_slice());
                write(&inner, &mut batch, row, by, parts, status);
                inner.recycle(stack.data);
            }
        }
    }
    Ok(batch)
}

/// A loaded sample: its stack, layers and other inputs.
type Loaded = (TileStack, Layers, Vec<InputStack>);

fn write(
    inner: &Inner,
    batch: &mut HostBatch,
    row: usize,
    sample: usize,
    (stack, layers, inputs): (&TileStack, &Layers, &[InputStack]),
    status: SampleStatus,
) {
    let ds = &inner.ds;
    let cfg = ds.config();
    let map = PixelMap::augmented(&cfg.augment, inner.seed, batch.epoch, sample, inner.src_hw);
    batch.write_row(row, sample, stack, &map, &cfg.normalize, layers, status);
    batch.write_sources(row, inputs, &cfg.inputs, &map, cfg.normalize.fill);
    batch.ids[row] = ds.id(sample);
}

/// The first sample after `failed` in the epoch's order (wrapping) that
/// loads: deterministic for a given set of failing samples. Up to 16 tries.
async fn replacement(
    inner: &Arc<Inner>,
    key: Key,
    failed: usize,
    error: &Error,
) -> Result<(usize, Loaded)> {
    let order = {
        let st = inner.lock();
        st.orders.get(&key.epoch).cloned()
    };
    let Some(order) = order else {
        return Err(Error::internal("loader", "epoch order evicted"));
    };
    let pos = &order[key.view.start..key.view.end];
    let at = pos.iter().position(|&s| s == failed).unwrap_or(0);
    let tries = pos.len().min(17);
    for k in 1..tries {
        let candidate = pos[(at + k) % pos.len()];
        if let Ok(loaded) = load_one(inner.clone(), key.epoch, candidate).await {
            return Ok((candidate, loaded));
        }
    }
    Err(Error::Invalid {
        what: "loader.errors = replace",
        message: format!(
            "sample {failed} failed and none of the {} samples after it loaded either",
            tries.saturating_sub(1)
        ),
        source: Some(Cause::new(error.duplicate())),
    })
}
