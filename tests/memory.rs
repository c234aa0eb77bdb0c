//! A stack's memory grows with its output, not with its number of scenes:
//! 10 000 items for one tile (before: every scene's warped window was kept
//! until fusion, 2.9 GB for 10 000 items of a 256 px tile).
//!
//! Its own test binary, not a module of `it`: a counting global allocator
//! measures the heap's peak, which the tests of `it`, running in parallel in
//! one process, would blur. A global allocator is `unsafe` by its trait:
//! the one place this crate allows it, forwarding to `System` unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tilestack::demo::WorldServer;
use tilestack::shard::MaterializeOptions;
use tilestack::stack::{Fusion, search_items};
use tilestack::{
    BandName, BatchLoader, Catalog, DatasetConfig, ShardSet, StackRequest, TileDataset,
    materialize, plan_stack,
};

#[allow(dead_code)]
#[path = "it/util.rs"]
mod util;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `System.alloc`, with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `System.alloc_zeroed`, with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes `f` adds at its peak over what was live when it started.
async fn peak_of<F: std::future::Future>(f: F) -> (F::Output, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f.await;
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// One test at a time: each measures the whole process's heap.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

// Held across awaits on purpose: the tests share one heap counter, and no
// other task of this test's runtime takes the lock.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_items_for_one_tile_take_memory_of_the_output_not_of_the_scenes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let world = util::small_world();
    let server = WorldServer::start(world).await.unwrap();
    let catalog = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let tile = 128;
    let mut req = StackRequest::new(
        [-122.33, 37.81],
        BandName::parse_list("B04,B08").unwrap(),
        util::day(1),
        util::day(31),
    )
    .unwrap();
    req.tile_size = tile;
    // The world's items (hrefs on the loopback server), copied to 10 000
    // scenes of the same files spread over the month.
    let real = search_items(&catalog, &req).await.unwrap();
    assert!(!real.is_empty());
    let n = 10_000;
    let items: Vec<stac::Item> = (0..n)
        .map(|i| {
            let mut it = real[i % real.len()].clone();
            it.id = format!("{}-copy{i}", it.id);
            let dt = format!(
                "2019-08-{:02}T18:{:02}:{:02}Z",
                1 + i % 31,
                (i / 31) % 60,
                i % 60
            );
            it.properties.datetime = Some(dt.parse().unwrap());
            it
        })
        .collect();
    let many = Catalog::Items(items);
    for fuse in [Fusion::Mean, Fusion::First] {
        req.fuse = fuse;
        let (plan, _) = plan_stack(&many, &req).await.unwrap();
        assert_eq!(plan.scenes.len(), n);
        let output = plan.shape().iter().product::<usize>() * 4;
        let windows = n * plan.read_bands.len() * tile * tile * 4;
        // one reader for the plan: a small tile cache (its bytes count too)
        let reader = tilestack::CogReader::new(
            tilestack::HttpRangeClient::new(tilestack::fetch::RetryConfig::default()).unwrap(),
            tilestack::cog::TileCache::new(32 << 20),
        );
        let (stack, peak) = peak_of(plan.load(&reader, None)).await;
        let stack = stack.unwrap();
        assert_eq!(stack.days.len(), 31);
        assert!(stack.data.iter().any(|v| v.is_finite()));
        println!(
            "{fuse:?}: {n} scenes, output {:.1} MB, their windows {:.0} MB, heap peak {:.1} MB, \
             planned {:.1} MB",
            output as f64 / 1e6,
            windows as f64 / 1e6,
            peak as f64 / 1e6,
            plan.memory_bytes() as f64 / 1e6
        );
        // the output, its fused bands, scenes in flight, the tile cache
        // (32 MiB) and the HTTP client's buffers: far below the windows
        assert!(
            peak < 12 * output + (64 << 20),
            "heap peak {peak} B for an output of {output} B"
        );
        assert!(peak * 4 < windows, "peak {peak} B, windows {windows} B");
        assert!(plan.memory_bytes() < 4 * output as u64 + (16 << 20));
    }
}

/// A dataset holds what identifies each sample (place, window, scene
/// indexes), not its plan, and searches by region: 20 000 places over the
/// demo world open within 1 KB of heap per sample held (the plans took
/// ~60 KB each), and the open's own peak stays within a few KB per sample.
#[test]
fn twenty_thousand_places_open_in_under_a_kilobyte_each() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(WorldServer::start(util::small_world()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.toml");
    let n = 20_000;
    std::fs::write(
        &path,
        format!(
            r#"[catalog]
stac = {:?}
collection = "sentinel-2-l2a"
[stack]
bands = ["B04"]
tile_size = 32
[time]
range = "2019-08-01/2019-08-30"
[sampler]
kind = "random"
bbox = [-122.36, 37.79, -122.30, 37.83]
count = {n}
"#,
            server.stac_url()
        ),
    )
    .unwrap();
    let cfg = DatasetConfig::from_file(&path).unwrap();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let ds = TileDataset::open(&cfg).unwrap();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let held = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    let r = ds.report();
    println!(
        "{n} places: {} kept, {} searches, {} scenes; heap held {:.1} MB ({} B per sample), \
         peak while opening {:.1} MB",
        r.kept,
        r.searches,
        r.scenes,
        held as f64 / 1e6,
        held / n,
        peak as f64 / 1e6
    );
    assert_eq!(r.candidates, n, "{r}");
    assert!(r.kept > n / 2, "{r}");
    assert_eq!(r.searches, 1, "one window, one cell");
    // the kept samples hold the world's scenes over their tiles
    let scenes: usize = ds.samples().iter().map(|s| s.scenes.len()).sum();
    assert!(
        scenes > 3 * r.kept,
        "{scenes} scenes over {} samples",
        r.kept
    );
    assert!(held < n * 1024, "{held} B held for {n} samples");
    assert!(
        peak < n * 4096 + (16 << 20),
        "peak {peak} B while opening {n} samples"
    );
    drop(ds);
    rt.block_on(server.shutdown());
}

/// Memory stays flat in a long run: ten epochs of the online loader over a
/// small dataset (stacks planned on demand, recycled buffers, a tile cache
/// that fills in the first epoch) hold the same heap after the tenth epoch
/// as after the first, within 5 %.
#[test]
fn the_online_loader_holds_flat_memory_over_ten_epochs() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(WorldServer::start(util::small_world()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("epochs.toml");
    std::fs::write(
        &path,
        format!(
            r#"seed = 11
[catalog]
stac = {:?}
collection = "sentinel-2-l2a"
[stack]
bands = ["B04", "B08"]
tile_size = 32
[time]
range = "2019-08-01/2019-08-08"
[sampler]
kind = "random"
bbox = [-122.36, 37.79, -122.32, 37.82]
count = 24
[loader]
batch_size = 4
prefetch_batches = 2
"#,
            server.stac_url()
        ),
    )
    .unwrap();
    let cfg = DatasetConfig::from_file(&path).unwrap();
    let ds = std::sync::Arc::new(TileDataset::open(&cfg).unwrap());
    let loader = BatchLoader::new(ds, cfg.loader.clone()).unwrap();
    let mut after = Vec::new();
    for _ in 0..10 {
        let mut rows = 0;
        for b in &mut loader.iter().unwrap() {
            rows += b.unwrap().ids.len();
        }
        assert_eq!(rows, 24);
        // the prefetcher may still be finishing the next epoch's first
        // batches: let it settle before reading the heap
        std::thread::sleep(std::time::Duration::from_millis(300));
        after.push(LIVE.load(Ordering::Relaxed));
    }
    println!(
        "heap after each epoch (MB): {:?}",
        after.iter().map(|b| *b as f64 / 1e6).collect::<Vec<_>>()
    );
    let (first, last) = (after[0] as f64, after[9] as f64);
    assert!(
        (last - first).abs() <= 0.05 * first,
        "heap after epoch 10 {last} B, after epoch 1 {first} B"
    );
    drop(loader);
    rt.block_on(server.shutdown());
}

/// Open files of this process whose path contains `part`.
#[cfg(target_os = "linux")]
fn open_files(part: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|p| p.to_string_lossy().contains(part))
                .count()
        })
        .unwrap_or(0)
}

/// 160 one-sample shards of tiny tiles: `materialize` holds nothing per
/// shard (the index is written from the shards' headers at the end), and
/// a loader over them keeps its heap across ten epochs, with a bounded
/// number of shard files open (they were all kept open before: a set of
/// thousands of shards ran out of file handles).
#[cfg(target_os = "linux")]
#[test]
fn materialize_and_shard_epochs_keep_a_flat_heap_over_many_shards() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(WorldServer::start(util::small_world()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = 160;
    let csv: String = std::iter::once("lon,lat,id\n".to_string())
        .chain((0..n).map(|i| {
            let (x, y) = ((i % 16) as f64, (i / 16) as f64);
            format!("{},{},p{i}\n", -122.365 + 0.0012 * x, 37.800 + 0.0012 * y)
        }))
        .collect();
    std::fs::write(dir.path().join("points.csv"), csv).unwrap();
    let text = format!(
        "seed = 3\n[catalog]\nstac = {:?}\ncollection = \"sentinel-2-l2a\"\n\
         [stack]\nbands = [\"B04\"]\ntile_size = 8\n\
         [time]\nrange = \"2019-08-01/2019-08-03\"\n\
         [sampler]\nkind = \"points\"\nfile = \"points.csv\"\n\
         [loader]\nbatch_size = 4\nprefetch_batches = 2\n",
        server.stac_url()
    );
    let path = dir.path().join("data.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = DatasetConfig::from_file(&path).unwrap();
    let out = dir.path().join("shards");
    // One sample per shard; the heap sampled as shards finish.
    let opts = MaterializeOptions {
        shard_bytes: 1,
        ..MaterializeOptions::new(out.to_string_lossy())
    };
    let mut at: Vec<(usize, usize)> = Vec::new();
    let report = materialize(&cfg, &opts, &mut |p| {
        if at.last().is_none_or(|l| l.0 != p.shards_done) {
            at.push((p.shards_done, LIVE.load(Ordering::Relaxed)));
        }
    })
    .unwrap();
    assert_eq!((report.samples, report.shards_written), (n, n), "{report}");
    let heap = |k: usize| at.iter().find(|a| a.0 >= k).map(|a| a.1).unwrap();
    let (from, to) = (40, n - 10);
    let per_shard = heap(to).saturating_sub(heap(from)) / (to - from);
    println!(
        "materialize: heap {:.2} MB after {from} shards, {:.2} MB after {to}: {per_shard} B per shard",
        heap(from) as f64 / 1e6,
        heap(to) as f64 / 1e6
    );
    // A shard's ShardInfo (~100 B) is all it may keep: an index entry per
    // sample held to the end (as before) is ~1 KB.
    assert!(per_shard < 400, "{per_shard} B per shard");
    assert_eq!(open_files("shard-"), 0, "no shard file left open");
    drop(server);
    drop(rt);

    let set = std::sync::Arc::new(ShardSet::open(&out.to_string_lossy()).unwrap());
    let loader = BatchLoader::from_shards(set.clone(), cfg.loader.clone()).unwrap();
    let mut after = Vec::new();
    for e in 0..10 {
        let samples: usize = loader
            .iter()
            .unwrap()
            .map(|b| b.unwrap().samples.len())
            .sum();
        assert_eq!(samples, n, "epoch {e}");
        after.push(LIVE.load(Ordering::Relaxed));
        let open = open_files("shard-");
        assert!(open <= 64, "epoch {e}: {open} shard files open");
    }
    let (first, last) = (after[0] as f64, after[9] as f64);
    println!(
        "shard epochs: heap {:.2} MB after epoch 1, {:.2} MB after epoch 10",
        first / 1e6,
        last / 1e6
    );
    assert!(
        (last - first).abs() <= 0.05 * first,
        "heap after epoch 10 {last} B, after epoch 1 {first} B"
    );
}
