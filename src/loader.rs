//! A synchronous, indexable loader of tile stacks with async prefetch: the
//! framework-neutral core of a training dataset (`train.rs` adapts it to
//! burn's `Dataset`).
//!
//! A [`StackLoader`] holds one [`StackPlan`] per sample (searched once, when
//! the loader is built), one shared [`CogReader`] (one byte-bounded tile
//! cache for every sample and thread), and its own tokio runtime.
//! [`StackLoader::get`] is synchronous, for the plain threads of a data
//! loader: it returns the stack at a position of the current epoch's order,
//! and before it waits it schedules the next positions to load in the
//! background, so that the next `get` usually finds its stack ready.
//!
//! What the caller must do:
//! * **Shuffle with the loader, not with the framework** ([`LoaderOptions::shuffle`]
//!   and [`StackLoader::set_epoch`]): the prefetcher runs ahead of positions
//!   `i + 1, i + 2, …`, which is the order in which each worker of burn's
//!   loader walks its contiguous chunk. A framework-side shuffle makes every
//!   prefetch a miss (it stays correct, only slower).
//! * Call `get` from plain threads; inside an async runtime use
//!   [`StackLoader::load`] (`get` there is an error, not a deadlock).
//!
//! Prefetch is bounded twice: at most [`LoaderOptions::prefetch`] positions
//! ahead of each position asked, and at most [`LoaderOptions::prefetch_bytes`]
//! of stacks loading or waiting to be taken. The tile cache has its own
//! budget ([`crate::cog::TileCache::new`]).

use crate::cog::CogReader;
use crate::rasterize::Mask;
use crate::stack::TileStack;
use crate::{Catalog, StackPlan, StackRequest, plan_stack};
use crate::{Error, Result};
use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::task::JoinHandle;

/// How a [`StackLoader`] orders, splits and prefetches its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderOptions {
    /// Positions loaded ahead of each position asked (default 4; 0 = no prefetch).
    pub prefetch: usize,
    /// Bytes of stacks loading ahead or waiting to be taken (default 1 GiB;
    /// each counted as its output array, `T × C × H × W × 4`).
    pub prefetch_bytes: u64,
    /// Prefetch loads running at once (default 1; at least 1). They start in
    /// the order they were scheduled, so the nearest positions finish first;
    /// a stack `get` has to load itself does not wait for this.
    pub loads_at_once: usize,
    /// Samples searched and planned at once when the loader is built (default 8).
    pub plan_concurrency: usize,
    /// Worker threads of the loader's runtime (default: the available cores).
    pub threads: Option<usize>,
    /// Shuffle the samples with this seed, a new permutation per epoch
    /// (default `None`: the samples' own order, every epoch).
    pub shuffle: Option<u64>,
    /// This process's rank and the number of ranks (default `(0, 1)`). Each
    /// rank gets every `world`-th position of the epoch's order from `rank`
    /// on, cut to the same count for every rank (`n / world`), so that all
    /// ranks run the same number of batches.
    pub rank: (usize, usize),
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            prefetch: 4,
            prefetch_bytes: 1 << 30,
            loads_at_once: 1,
            plan_concurrency: 8,
            threads: None,
            shuffle: None,
            rank: (0, 1),
        }
    }
}

/// What the loader's `get` calls found, since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoaderStats {
    /// Stacks that were loaded before `get` asked for them.
    pub ready: u64,
    /// Stacks that were still loading when `get` asked (it waited for the rest).
    pub in_flight: u64,
    /// Stacks not prefetched: loaded by `get` itself.
    pub on_demand: u64,
    /// Seconds `get` spent waiting, summed over calls (the data wait of a
    /// training loop that calls it).
    pub wait_s: f64,
    /// Most bytes of prefetched stacks held at once.
    pub peak_prefetch_bytes: u64,
}

/// A prefetched position: its load task and the bytes it holds.
struct Slot {
    task: JoinHandle<Result<TileStack>>,
    bytes: u64,
}

#[derive(Default)]
struct State {
    /// Position → sample index of the current epoch (this rank's share).
    order: Vec<usize>,
    /// Positions asked for this epoch: never prefetched again (another
    /// worker's prefetch window may reach a position this one already took).
    asked: Vec<bool>,
    slots: HashMap<usize, Slot>,
    /// Most bytes the slots held at once.
    peak: u64,
}

impl State {
    /// Bytes the prefetched slots hold now.
    fn bytes(&self) -> u64 {
        self.slots.values().map(|s| s.bytes).sum()
    }
}

struct Shared {
    reader: CogReader,
    plans: Vec<StackPlan>,
    mask: Option<Mask>,
    /// Prefetch loads at once (FIFO: in scheduling order).
    permits: tokio::sync::Semaphore,
}

/// Tile stacks by position, loaded ahead in the background (see the module
/// docs).
///
/// ```no_run
/// use tilestack::{BandName, CogReader, TileCache, HttpRangeClient, RetryConfig};
/// use tilestack::{LoaderOptions, StackLoader};
/// use tilestack::{Catalog, StackRequest};
/// let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// let bands = BandName::parse_list("B04,B03,B02")?;
/// let requests = [[-122.33, 37.81], [-122.30, 37.80]]
///     .into_iter()
///     .map(|c| StackRequest::new(c, bands.clone(), day(1), day(30)))
///     .collect::<tilestack::Result<Vec<_>>>()?;
/// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30));
/// let catalog = Catalog::stac("http://127.0.0.1:8090/", "sentinel-2-l2a")?;
/// let opts = LoaderOptions { shuffle: Some(7), ..LoaderOptions::default() };
/// let loader = StackLoader::plan(&catalog, requests, reader, None, opts)?;
/// for epoch in 0..2 {
///     loader.set_epoch(epoch);
///     for i in 0..loader.len() {
///         let stack = loader.get(i)?; // the next ones load meanwhile
///         println!("{} {:?}", loader.sample_at(i).unwrap(), stack.data.shape());
///     }
/// }
/// println!("{:?}", loader.stats());
/// # Ok::<(), tilestack::Error>(())
/// ```
pub struct StackLoader {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    opts: LoaderOptions,
    state: Mutex<State>,
    ready: AtomicU64,
    in_flight: AtomicU64,
    on_demand: AtomicU64,
    wait_ns: AtomicU64,
}

impl std::fmt::Debug for StackLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackLoader")
            .field("samples", &self.shared.plans.len())
            .field("opts", &self.opts)
            .field("stats", &self.stats())
            .finish()
    }
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.thread_name("tilestack-loader")
        .enable_all()
        .build()
        .map_err(|e| Error::invalid("loader runtime", e.to_string()))
}

impl StackLoader {
    /// Searches and plans every request (`opts.plan_concurrency` at once) on
    /// the loader's own runtime, then returns the loader at epoch 0.
    ///
    /// # Errors
    /// The first request whose search or plan fails, as
    /// [`Error::Invalid`] naming the sample's index and centroid and the
    /// cause (which names its URL or item); the errors of
    /// [`StackLoader::from_plans`]; and a call from inside an async runtime
    /// (there: [`plan_stack`] each request, then `from_plans`).
    pub fn plan(
        catalog: &Catalog,
        requests: Vec<StackRequest>,
        reader: CogReader,
        mask: Option<Mask>,
        opts: LoaderOptions,
    ) -> Result<StackLoader> {
        outside_runtime(
            "StackLoader::plan",
            "plan_stack, then StackLoader::from_plans",
        )?;
        check_rank(&opts)?;
        let rt = runtime(opts.threads)?;
        let plans = rt.block_on(async {
            futures::stream::iter(requests.iter().enumerate().map(|(i, req)| async move {
                plan_stack(catalog, req)
                    .await
                    .map(|(p, _)| p)
                    .map_err(|e| Error::Sample {
                        index: i,
                        lon: req.centroid[0],
                        lat: req.centroid[1],
                        source: Box::new(e),
                    })
            }))
            .buffered(opts.plan_concurrency.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()
        });
        match plans.and_then(|p| check_shapes(&p).map(|()| p)) {
            Ok(plans) => Ok(Self::with_runtime(rt, plans, reader, mask, opts)),
            Err(e) => {
                rt.shutdown_background();
                Err(e)
            }
        }
    }

    /// A loader over plans made earlier (e.g. with [`plan_stack`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the runtime cannot start, `opts.rank` is not
    /// `rank < world`, or the plans' output shapes differ (naming the sample).
    pub fn from_plans(
        plans: Vec<StackPlan>,
        reader: CogReader,
        mask: Option<Mask>,
        opts: LoaderOptions,
    ) -> Result<StackLoader> {
        check_rank(&opts)?;
        check_shapes(&plans)?;
        let rt = runtime(opts.threads)?;
        Ok(Self::with_runtime(rt, plans, reader, mask, opts))
    }

    fn with_runtime(
        rt: tokio::runtime::Runtime,
        plans: Vec<StackPlan>,
        reader: CogReader,
        mask: Option<Mask>,
        opts: LoaderOptions,
    ) -> StackLoader {
        let loader = StackLoader {
            rt: Some(rt),
            shared: Arc::new(Shared {
                reader,
                plans,
                mask,
                permits: tokio::sync::Semaphore::new(opts.loads_at_once.max(1)),
            }),
            opts,
            state: Mutex::new(State::default()),
            ready: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            on_demand: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        };
        loader.set_epoch(0);
        loader
    }

    /// Positions in an epoch (this rank's share of the samples).
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// True when there is no position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All samples' plans, by sample index.
    pub fn plans(&self) -> &[StackPlan] {
        &self.shared.plans
    }

    /// The sample index at `position` of the current epoch.
    pub fn sample_at(&self, position: usize) -> Option<usize> {
        self.lock().order.get(position).copied()
    }

    /// The reader (and its tile cache) the loader reads through.
    pub fn reader(&self) -> &CogReader {
        &self.shared.reader
    }

    /// Starts `epoch`: the order of the samples (a new seeded permutation
    /// when shuffling), this rank's share of it; prefetched stacks of the
    /// previous order are dropped.
    pub fn set_epoch(&self, epoch: u64) {
        let n = self.shared.plans.len();
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(seed) = self.opts.shuffle {
            // Xoshiro256++ is a named, portable generator: the same seed and epoch give
            // the same order on every platform.
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(
                seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            order.shuffle(&mut rng);
        }
        let (rank, world) = self.opts.rank;
        let per_rank = n / world.max(1);
        let order: Vec<usize> = order
            .into_iter()
            .skip(rank)
            .step_by(world.max(1))
            .take(per_rank)
            .collect();
        let mut st = self.lock();
        for (_, slot) in st.slots.drain() {
            slot.task.abort();
        }
        st.asked = vec![false; order.len()];
        st.order = order;
    }

    /// What `get` found so far.
    pub fn stats(&self) -> LoaderStats {
        LoaderStats {
            ready: self.ready.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            on_demand: self.on_demand.load(Ordering::Relaxed),
            wait_s: self.wait_ns.load(Ordering::Relaxed) as f64 * 1e-9,
            peak_prefetch_bytes: self.lock().peak,
        }
    }

    /// The stack at `position` of the current epoch, from the prefetcher
    /// when it is there, and schedules the positions after it (once this
    /// one is loaded, when it was not prefetched). For plain threads (a data
    /// loader's workers).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a position past [`StackLoader::len`] or a call
    /// from inside an async runtime; otherwise the stack's own load error
    /// (naming its URL, item or file).
    pub fn get(&self, position: usize) -> Result<TileStack> {
        outside_runtime("StackLoader::get", "`load(position).await`")?;
        let t = Instant::now();
        let (slot, sample) = {
            let mut st = self.lock();
            let sample = *st.order.get(position).ok_or_else(|| {
                Error::invalid(
                    "position",
                    format!(
                        "{position} is past the epoch's {} positions",
                        st.order.len()
                    ),
                )
            })?;
            if let Some(a) = st.asked.get_mut(position) {
                *a = true;
            }
            let slot = st.slots.remove(&position);
            if slot.is_some() {
                // Already on its way: the next ones can start now.
                self.schedule(&mut st, position);
            }
            (slot, sample)
        };
        let out = match slot {
            Some(slot) => {
                let counter = if slot.task.is_finished() {
                    &self.ready
                } else {
                    &self.in_flight
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.runtime()?
                    .block_on(slot.task)
                    .unwrap_or_else(|e| Err(Error::task("prefetch", e)))
            }
            None => {
                // Loaded first, alone: prefetches started now would compete
                // with the one stack the caller is waiting for.
                self.on_demand.fetch_add(1, Ordering::Relaxed);
                let out = self.runtime()?.block_on(load(self.shared.clone(), sample));
                self.schedule(&mut self.lock(), position);
                out
            }
        };
        self.wait_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }

    /// The stack at `position`, loaded now (no prefetch): for async callers.
    ///
    /// # Errors
    /// As [`StackLoader::get`].
    pub async fn load(&self, position: usize) -> Result<TileStack> {
        let sample = self.sample_at(position).ok_or_else(|| {
            Error::invalid(
                "position",
                format!("{position} is past the epoch's positions"),
            )
        })?;
        load(self.shared.clone(), sample).await
    }

    /// Schedules positions after `position` that are not loading yet, while
    /// the byte budget allows.
    fn schedule(&self, st: &mut State, position: usize) {
        let end = (position + 1 + self.opts.prefetch).min(st.order.len());
        for p in position + 1..end {
            if st.slots.contains_key(&p) || st.asked.get(p).copied().unwrap_or(true) {
                continue;
            }
            let sample = st.order[p];
            let bytes = output_bytes(&self.shared.plans[sample], self.shared.mask.is_some());
            let held = st.bytes();
            if held + bytes > self.opts.prefetch_bytes {
                break;
            }
            let Some(rt) = &self.rt else { return };
            let shared = self.shared.clone();
            let task = rt.spawn(async move {
                let _permit = shared
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| Error::invalid("prefetch", e.to_string()))?;
                load(shared.clone(), sample).await
            });
            st.slots.insert(p, Slot { task, bytes });
            st.peak = st.peak.max(held + bytes);
        }
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.rt
            .as_ref()
            .ok_or_else(|| Error::invalid("loader", "shut down".to_string()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state (plain
        // inserts and removes): keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for StackLoader {
    fn drop(&mut self) {
        for (_, slot) in self.lock().slots.drain() {
            slot.task.abort();
        }
        // Without waiting: a loader may be dropped inside async code, where
        // a blocking runtime shutdown would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// An error, not a panic, when a blocking call is made inside async code.
fn outside_runtime(what: &'static str, instead: &str) -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::invalid(
            what,
            format!("called inside an async runtime; use {instead}"),
        ));
    }
    Ok(())
}

fn check_rank(opts: &LoaderOptions) -> Result<()> {
    let (rank, world) = opts.rank;
    if world == 0 || rank >= world {
        return Err(Error::invalid(
            "rank",
            format!("rank {rank} of {world}: need rank < world"),
        ));
    }
    Ok(())
}

/// One shape for every sample: batches need it.
fn check_shapes(plans: &[StackPlan]) -> Result<()> {
    match crate::plan::other_shape(plans) {
        Some((i, shape, first)) => Err(Error::invalid(
            "sample",
            format!(
                "sample {i} has shape [T, C, H, W] {shape:?}, sample 0 {first:?}: \
                 a loader's samples share one shape"
            ),
        )),
        None => Ok(()),
    }
}

async fn load(shared: Arc<Shared>, sample: usize) -> Result<TileStack> {
    let plan = shared
        .plans
        .get(sample)
        .ok_or_else(|| Error::invalid("sample", format!("no sample {sample}")))?;
    plan.load(&shared.reader, shared.mask.as_ref()).await
}

/// The bytes of a plan's output array.
fn output_bytes(plan: &StackPlan, mask: bool) -> u64 {
    let bands = plan.request.bands.len() as u64 + u64::from(mask);
    plan.bins.len() as u64 * bands * (plan.grid.width * plan.grid.height) as u64 * 4
}
