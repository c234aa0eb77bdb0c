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
use tilestack::stack::{Fusion, search_items};
use tilestack::{BandName, Catalog, StackRequest, plan_stack};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_items_for_one_tile_take_memory_of_the_output_not_of_the_scenes() {
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
