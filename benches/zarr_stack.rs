//! The Oakland stack from the demo world's COG items, its EOPF-like Zarr v2
//! items and its sharded GeoZarr v3 items, cold and warm, in one run: the
//! Zarr source against the COG source on the same pixels (the stacks are
//! bit-identical, tests/it/zarr.rs).
//!
//! # Input
//! The embedded Oakland recipe (2048 px scenes, 512 px COG tiles) with
//! `zarr = true` (`name = "oakland-bench-zarr"`), generated once into
//! `target/bench-worlds` and served by a [`WorldServer`] on 127.0.0.1. The
//! request is BENCHMARKS.md's workload without the mask: B04, B03, B02, B08,
//! B11, 2019-08-01..30, 256×256 at 10 m in EPSG:32610, daily NaN-mean.
//!
//! # Figures
//! Per source, over `TILESTACK_BENCH_ROUNDS` rounds (default 5; the three
//! sources in a rotating order each round): the median cold stack (search,
//! plan and load with a fresh reader: empty tile cache, no metadata), the
//! median warm load (the same plan again on that reader), the bytes and
//! requests the cold stack fetched (STAC search excluded: the client's
//! metrics), and the read amplification: bytes fetched ÷ the bytes of the
//! windows read (source pixels × 2 bytes).
//!
//! ```sh
//! cargo bench --features demo --bench zarr_stack
//! ```

use std::time::{Duration, Instant};

use tilestack::cog::TileCache;
use tilestack::demo::{Recipe, World, WorldServer};
use tilestack::fetch::RetryConfig;
use tilestack::{BandName, Catalog, CogReader, HttpRangeClient, StackRequest, build};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("TILESTACK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let mut recipe = Recipe::oakland();
    recipe.name = "oakland-bench-zarr".into();
    recipe.zarr = true;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-worlds");
    let t = Instant::now();
    let world = World::cached_in(&recipe, &root).expect("generating the bench world");
    eprintln!("world ready in {:.1} s", t.elapsed().as_secs_f64());
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let server = rt
        .block_on(WorldServer::start(&world))
        .expect("the world server");
    let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).expect("a day");
    let req = StackRequest::new(
        [-122.33, 37.81],
        BandName::parse_list("B04,B03,B02,B08,B11").expect("bands"),
        day(1),
        day(30),
    )
    .expect("the request");
    let sources = [
        ("COG", "sentinel-2-l2a".to_string()),
        ("Zarr v2 (EOPF-like)", "sentinel-2-l2a-zarr-v2".to_string()),
        ("Zarr v3 (sharded)", "sentinel-2-l2a-zarr-v3".to_string()),
    ];
    let mut cold: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    let mut warm: Vec<Vec<Duration>> = vec![Vec::new(); 3];
    let mut fetched = [(0u64, 0u64, 0u64); 3];
    for round in 0..rounds {
        for k in 0..3 {
            let i = (round + k) % 3;
            let cat = Catalog::stac(&server.stac_url(), &sources[i].1).expect("catalog");
            let reader = CogReader::new(
                HttpRangeClient::new(RetryConfig::default()).expect("client"),
                TileCache::new(1 << 30),
            );
            let t = Instant::now();
            let built = rt
                .block_on(build(&cat, &req, &reader, None))
                .expect("the stack");
            cold[i].push(t.elapsed());
            let m = reader.client().metrics();
            fetched[i] = (m.bytes(), m.requests(), built.plan.source_pixels() * 2);
            let t = Instant::now();
            rt.block_on(built.plan.load(&reader, None))
                .expect("the warm stack");
            warm[i].push(t.elapsed());
        }
    }
    let base = median(cold[0].clone()).as_secs_f64();
    println!(
        "| source | cold stack (median of {rounds}) | vs COG | warm load | bytes fetched | requests | read amplification |"
    );
    println!("|---|---|---|---|---|---|---|");
    for i in 0..3 {
        let c = median(cold[i].clone()).as_secs_f64();
        let w = median(warm[i].clone()).as_secs_f64();
        let (bytes, requests, window) = fetched[i];
        println!(
            "| {} | {:.3} s | {:.2}× | {:.3} s | {:.1} MB | {} | {:.2} |",
            sources[i].0,
            c,
            c / base,
            w,
            bytes as f64 / 1e6,
            requests,
            bytes as f64 / window.max(1) as f64
        );
    }
}
