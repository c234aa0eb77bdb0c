//! tilestack's own Zarr reader against `zarrs` + `zarrs_object_store`
//! (object_store's HTTP store), in one run, on the demo world's Zarr stores
//! served with Range on 127.0.0.1 (issue 29: "pick by a same-run measure").
//!
//! # What it does
//! Generates (or reuses) the demo world of benches/zarr_stack.rs (the
//! Oakland recipe, 2048² scenes, `zarr = true`, in `target/bench-worlds` of
//! the tilestack checkout), serves it with a [`WorldServer`], and reads band
//! B04 of every Sentinel-2 scene, one scene after the other, from the
//! EOPF-like **v2** stores (342² chunks, Blosc-Zstandard, consolidated) and
//! the sharded **v3** stores (1024² shards of 256² inner chunks):
//!
//! - `window`: 256×256 pixels around the array's centre (a corner of four
//!   v2 chunks; one inner chunk in each of four v3 shards);
//! - `whole`: the whole 2048² array.
//!
//! Each read is **cold** on both sides: tilestack with a fresh
//! [`HttpRangeClient`] and an empty [`TileCache`] (a new [`ZarrReader`]: no
//! metadata, no shard index, no chunk cached); zarrs with a fresh
//! object_store `HttpStore` and `Array::async_open` (its metadata read
//! again). The two readers alternate (tilestack first in even rounds, zarrs
//! first in odd ones) after one warm-up round that is not counted (the
//! server's page cache). Per case and reader: the median time of the
//! rounds, and the requests and response bytes the server saw for the
//! store (its request log: GETs, HEADs, body bytes). Every round checks the
//! pixels are equal: tilestack's raw value, or NaN where zarrs reads the
//! fill value 0 (nodata).
//!
//! # Run
//! ```sh
//! cd bench/zarrs-compare
//! ZARRS_COMPARE_ROUNDS=7 cargo run --release
//! ```
//! (`ZARRS_COMPARE_ROUNDS`, default 7.) It prints a Markdown table
//! (BENCHMARKS.md, "Stacks from Zarr"). The crate is detached (its own
//! `[workspace]` and lockfile) so that zarrs stays out of tilestack's
//! dependency tree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tilestack::HttpRangeClient;
use tilestack::cog::TileCache;
use tilestack::demo::{Recipe, ServerStats, World, WorldServer, ZarrLayout};
use tilestack::fetch::RetryConfig;
use tilestack::geo::PixelWindow;
use tilestack::zarr::{ZarrReader, split_href};
use zarrs::array::{Array, ArraySubset};
use zarrs::storage::AsyncReadableStorage;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the server saw during one read.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    gets: u64,
    heads: u64,
    bytes: u64,
}

fn traffic(stats: &ServerStats) -> Traffic {
    let mut t = Traffic::default();
    for r in stats.log() {
        if !r.path.starts_with("/data/") {
            continue;
        }
        match r.method.as_str() {
            "HEAD" => t.heads += 1,
            _ => {
                t.gets += 1;
                if r.status < 300 {
                    t.bytes += r.bytes;
                }
            }
        }
    }
    t
}

/// tilestack: a fresh reader (client, cache, metadata), each array read
/// once, raw values with NaN for nodata.
async fn read_tilestack(hrefs: &[String], window: PixelWindow) -> Result<Vec<Vec<f32>>, BoxError> {
    let reader = ZarrReader::new(
        HttpRangeClient::new(RetryConfig::default())?,
        TileCache::new(1 << 30),
    );
    let mut out = Vec::with_capacity(hrefs.len());
    for href in hrefs {
        let px = reader
            .read_window(href, 0, window)
            .await
            .map_err(|e| format!("tilestack, {href}: {}", e.chain()))?;
        out.push(px.iter().copied().collect());
    }
    Ok(out)
}

/// zarrs: a fresh object_store HTTP store per store root and
/// `Array::async_open` per array, then the subset as u16.
async fn read_zarrs(hrefs: &[String], window: PixelWindow) -> Result<Vec<Vec<u16>>, BoxError> {
    let mut out = Vec::with_capacity(hrefs.len());
    for href in hrefs {
        let (root, path) = split_href(href);
        let store = object_store::http::HttpBuilder::new()
            .with_url(root.as_str())
            .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
            .build()?;
        let storage: AsyncReadableStorage =
            Arc::new(zarrs_object_store::AsyncObjectStore::new(store));
        let array = Array::async_open(storage, &format!("/{path}"))
            .await
            .map_err(|e| format!("zarrs, {href}: {e}"))?;
        let (r0, c0) = (window.row_off as u64, window.col_off as u64);
        let subset = ArraySubset::new_with_ranges(&[
            r0..r0 + window.height as u64,
            c0..c0 + window.width as u64,
        ]);
        let px: Vec<u16> = array
            .async_retrieve_array_subset(&subset)
            .await
            .map_err(|e| format!("zarrs, {href}: {e}"))?;
        out.push(px);
    }
    Ok(out)
}

/// Equal pixels: tilestack's raw value, NaN where zarrs has the fill value.
fn check(hrefs: &[String], ours: &[Vec<f32>], theirs: &[Vec<u16>]) -> Result<u64, BoxError> {
    let mut valid = 0;
    for ((href, a), b) in hrefs.iter().zip(ours).zip(theirs) {
        if a.len() != b.len() {
            return Err(format!("{href}: {} pixels against zarrs' {}", a.len(), b.len()).into());
        }
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            let same = if *y == 0 {
                x.is_nan()
            } else {
                *x == f32::from(*y)
            };
            if !same {
                return Err(format!("{href} pixel {k}: tilestack {x}, zarrs {y}").into());
            }
            valid += u64::from(*y != 0);
        }
    }
    Ok(valid)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), BoxError> {
    let rounds: usize = std::env::var("ZARRS_COMPARE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1);
    let mut recipe = Recipe::oakland();
    recipe.name = "oakland-bench-zarr".into();
    recipe.zarr = true;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-worlds");
    let t = Instant::now();
    let world = World::cached_in(&recipe, &root)?;
    eprintln!(
        "world ready in {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        world.dir().display()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let server = rt.block_on(WorldServer::start(&world))?;
    let url = server.url();

    println!(
        "| store | read | reader | median of {rounds} | vs tilestack | GET | HEAD | bytes | pixels equal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for layout in ZarrLayout::ALL {
        let (_, items) = world
            .zarr_catalog(layout)?
            .ok_or("the world has no Zarr stores")?;
        let hrefs: Vec<String> = items
            .iter()
            .filter_map(|i| i.assets.get("b04"))
            .map(|a| match a.href.strip_prefix("../") {
                Some(rel) => format!("{url}/{rel}"),
                None => a.href.clone(),
            })
            .collect();
        if hrefs.is_empty() {
            return Err(format!("no b04 asset in the {} items", layout.suffix()).into());
        }
        let shape = rt
            .block_on(
                ZarrReader::new(
                    HttpRangeClient::new(RetryConfig::default())?,
                    TileCache::new(1 << 20),
                )
                .array(&hrefs[0]),
            )?
            .shape
            .clone();
        let (rows, cols) = (shape[0] as usize, shape[1] as usize);
        let cases = [
            (
                "window 256²",
                PixelWindow::new(cols / 2 - 128, rows / 2 - 128, 256, 256),
            ),
            ("whole array", PixelWindow::new(0, 0, cols, rows)),
        ];
        for (name, window) in cases {
            let mut times = [Vec::new(), Vec::new()];
            let mut seen = [Traffic::default(); 2];
            let mut valid = 0;
            for round in 0..=rounds {
                let mut ours = Vec::new();
                let mut theirs = Vec::new();
                for k in 0..2 {
                    let who = (round + k) % 2;
                    server.stats().reset();
                    let t = Instant::now();
                    if who == 0 {
                        ours = rt.block_on(read_tilestack(&hrefs, window))?;
                    } else {
                        theirs = rt.block_on(read_zarrs(&hrefs, window))?;
                    }
                    let dt = t.elapsed();
                    seen[who] = traffic(server.stats());
                    // Round 0 warms the server's page cache: not counted.
                    if round > 0 {
                        times[who].push(dt);
                    }
                }
                valid = check(&hrefs, &ours, &theirs)?;
            }
            let base = median(times[0].clone()).as_secs_f64();
            for (who, label) in ["tilestack (own client)", "zarrs + object_store HTTP"]
                .iter()
                .enumerate()
            {
                let m = median(times[who].clone()).as_secs_f64();
                let t = seen[who];
                println!(
                    "| {} | {name} ×{} scenes | {label} | {:.1} ms | {:.2}× | {} | {} | {:.2} MB | yes ({valid} valid) |",
                    match layout {
                        ZarrLayout::EopfV2 => "v2 (342² chunks)",
                        ZarrLayout::GeoZarrV3 => "v3 (1024² shards, 256² inner)",
                    },
                    hrefs.len(),
                    m * 1e3,
                    m / base,
                    t.gets,
                    t.heads,
                    t.bytes as f64 / 1e6,
                );
            }
        }
    }
    rt.block_on(server.shutdown());
    Ok(())
}
