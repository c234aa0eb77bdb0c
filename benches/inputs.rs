//! A sample of several sensors against its inputs loaded alone, same run:
//! Sentinel-2 (daily) + Sentinel-1 (nearest ±1 day) + a DEM (static) + a
//! land-cover raster label, from the Oakland demo world.
//!
//! # Input
//! The loader bench's dataset (`common::config`: random places inside
//! granule A, B04 B03 B02 B08 B11, 256 px, August 1 to 30) with
//! `[[inputs]]` s1 (VV, VH, bilinear, `nearest = 1`), dem (bilinear,
//! static, zeros kept) and `[[labels]]` cover (the land cover's `map` as
//! WorldCover classes), served on 127.0.0.1 by a [`WorldServer`].
//!
//! # Figures
//! Per round (`TILESTACK_BENCH_ROUNDS`, default 3; the two ways in turn,
//! the order swapped every round), every sample from cold (a freshly
//! opened dataset, an empty tile cache):
//! * `together`: one `BatchLoader` epoch, batches of one, one sample at a
//!   time (`loads_at_once = 1`): each sample's inputs and label load at
//!   once, as training loads them, batch assembly included.
//! * `alone`: the same samples' four plans (S2, S1, DEM, the label's), each
//!   loaded by itself on its own fresh reader, one after another; the sum.
//!
//! The ratio `together ÷ alone` (medians) is what issue 31 bounds (≤ 1.2);
//! under 1 the inputs' reads overlap.
//!
//! ```sh
//! cargo bench --features demo --bench inputs
//! ```

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Setup, config_with};
use tilestack::cog::TileCache;
use tilestack::demo::{Recipe, World, WorldServer};
use tilestack::fetch::RetryConfig;
use tilestack::{BatchLoader, CogReader, HttpRangeClient, TileDataset};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fresh_reader() -> CogReader {
    CogReader::new(
        HttpRangeClient::new(RetryConfig::default()).expect("client"),
        TileCache::new(1 << 30),
    )
}

fn main() {
    let s = Setup::from_args(8, 30);
    let rounds: usize = if s.full {
        std::env::var("TILESTACK_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1)
    } else {
        1
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = World::cached(&Recipe::oakland()).expect("the Oakland world");
    let server = rt.block_on(WorldServer::start(&world)).expect("server");
    let url = server.stac_url();
    let of = |like: &str| {
        let c = world
            .collection_like(like)
            .expect("the world's other sensors");
        format!("{{ stac = {url:?}, collection = {c:?} }}")
    };
    let extra = format!(
        "[[inputs]]\nname = \"s1\"\ncatalog = {}\nstack = {{ bands = [\"vv\", \"vh\"], resampling = \"bilinear\" }}\ntime = {{ nearest = 1 }}\n\
         [[inputs]]\nname = \"dem\"\ncatalog = {}\nstack = {{ bands = [\"data\"], resampling = \"bilinear\", zero_is_nodata = false }}\ntime = \"static\"\n\
         [[labels]]\nname = \"cover\"\nraster = {{ catalog = {}, band = \"map\" }}\nclasses = [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100]\n",
        of("sentinel-1-rtc"),
        of("cop-dem-glo-30"),
        of("esa-worldcover"),
    );
    let mut cfg = config_with(dir.path(), &url, &s, None, &extra);
    cfg.loader.batch_size = 1;
    cfg.loader.loads_at_once = Some(1);
    cfg.loader.shuffle = false;

    let (mut together, mut alone) = (Vec::new(), Vec::new());
    let mut samples = 0;
    for round in 0..rounds {
        for way in [round % 2, 1 - round % 2] {
            let ds = Arc::new(TileDataset::open(&cfg).expect("the dataset"));
            samples = ds.len();
            if way == 0 {
                let loader = BatchLoader::new(ds.clone(), cfg.loader.clone()).expect("loader");
                let t = Instant::now();
                for b in loader.iter().expect("an epoch") {
                    let b = b.expect("a batch");
                    assert_eq!(b.sources.len(), 2);
                }
                together.push(t.elapsed());
            } else {
                let handle = ds.handle().expect("its runtime");
                let mut sum = Duration::ZERO;
                for i in 0..ds.len() {
                    let plans = [
                        ds.plan(i).expect("S2's plan"),
                        ds.input_plan(i, 0).expect("S1's plan").plan,
                        ds.input_plan(i, 1).expect("the DEM's plan").plan,
                        ds.label_plan(i, "cover").expect("the label's plan").plan,
                    ];
                    for plan in plans {
                        let reader = fresh_reader();
                        let t = Instant::now();
                        handle
                            .block_on(plan.load(&reader, None))
                            .expect("a load alone");
                        sum += t.elapsed();
                    }
                }
                alone.push(sum);
            }
        }
    }
    let (t, a) = (median(together), median(alone));
    println!("samples                      {samples}");
    println!("together_s (one epoch)       {:.3}", t.as_secs_f64());
    println!("alone_s (sum of the inputs)  {:.3}", a.as_secs_f64());
    println!(
        "together_over_alone          {:.3}",
        t.as_secs_f64() / a.as_secs_f64()
    );
}
