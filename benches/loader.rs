//! The training loader's figures (issue 13), each next to its baseline
//! measured in the same run; prints a table and writes
//! `target/bench/loader.json`.
//!
//! # Input
//!
//! The full-size Oakland demo world (`Recipe::oakland()`: 2048 px scenes,
//! 512 px COG tiles, the world `tilestack demo` uses), served on 127.0.0.1.
//! 20 random places in granule A, 2 km inside its edges (the peer's rule,
//! drawn with tilestack's seeded random sampler), 256 px tiles at 10 m,
//! bands B04 B03 B02 B08 B11, August 1–30 daily: a sample is
//! `[30, 5, 256, 256]` f32 (39 MB); batches of 4.
//!
//! # Figures
//!
//! - `write_limit`: allocating and writing arrays of one batch's shape
//!   (inputs, validity, metadata) once — the output-write limit; the warm
//!   epoch is compared with it (target ≥ 0.5×).
//! - `warm_epoch`: an epoch through `StackDataLoader` with the tile cache
//!   warm (after one cold epoch), no model: samples/s; with the loader's
//!   runtime on 1 and on 2 threads (scaling).
//! - `first_batch` next to `cold_stack`: time to the first batch of a cold
//!   loader against building one stack cold.
//! - `starved`: three epochs of a real burn step (a small conv net on the
//!   CPU backend, forward + backward + Adam) slower than one warm load, the
//!   world served with 50 ms added per request: the share of each epoch the
//!   loop waited for data after its first batch (target < 1 % in epochs 1
//!   and 2).
//!
//! ```sh
//! cargo bench --features demo,burn --bench loader
//! ```
//! Under `cargo test --all-targets` (no `--bench`) it runs a quick smoke
//! pass on 4 places and 4 days.

mod common;

use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use common::{Setup, config};
use tilestack::cog::TileCache;
use tilestack::demo::{Recipe, ServerOptions, World, WorldServer};
use tilestack::fetch::RetryConfig;
use tilestack::{
    BatchLoader, Catalog, CogReader, HttpRangeClient, StackDataLoader, TileDataset, build,
};

#[derive(Module, Debug)]
struct Net {
    mix: Conv2d,
    head: Conv2d,
}

impl Net {
    fn new(channels: usize, device: &Device) -> Net {
        Net {
            mix: Conv2dConfig::new([channels, 8], [1, 1]).init(device),
            head: Conv2dConfig::new([8, 1], [3, 3])
                .with_padding(burn::nn::PaddingConfig2d::Same)
                .init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.head
            .forward(burn::tensor::activation::relu(self.mix.forward(x)))
    }
}

fn main() {
    let s = Setup::from_args(20, 30);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = World::cached(&Recipe::oakland()).expect("the Oakland world");
    let server = rt.block_on(WorldServer::start(&world)).expect("server");
    let slow = rt
        .block_on(WorldServer::start_with(
            &world,
            ServerOptions {
                latency_ms: 50,
                ..ServerOptions::default()
            },
        ))
        .expect("slow server");
    let mut out = serde_json::Map::new();
    let mut row = |k: &str, v: serde_json::Value| {
        println!("{k:<28} {v}");
        out.insert(k.into(), v);
    };

    // Time to first batch next to one cold stack.
    let cfg = config(dir.path(), &server.stac_url(), &s, None);
    let ds = Arc::new(TileDataset::open(&cfg).expect("dataset"));
    let shape = ds.shape();
    let req = ds.request(0).expect("request");
    let reader = CogReader::new(
        HttpRangeClient::new(RetryConfig::default()).expect("client"),
        TileCache::new(1 << 30),
    );
    let t = Instant::now();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").expect("catalog");
    rt.block_on(build(&cat, &req, &reader, None))
        .expect("cold stack");
    row("cold_stack_s", t.elapsed().as_secs_f64().into());
    let loader = BatchLoader::new(ds.clone(), cfg.loader.clone()).expect("loader");
    let cold = loader.iter().expect("epoch").count();
    let m0 = loader.last_metrics().expect("metrics");
    row("first_batch_s", m0.first_batch_s.into());
    row(
        "cold_epoch_samples_per_s",
        (m0.samples as f64 / m0.epoch_s).into(),
    );
    assert!(cold > 0);

    // The output-write limit: allocate and write one batch's arrays.
    let [b, t_, c, h, w] = loader.batch_shape();
    let n_in = b * t_ * c * h * w;
    let n_valid = b * t_ * h * w;
    let reps = 10;
    let t = Instant::now();
    for r in 0..reps {
        let mut inputs = vec![0.0f32; n_in];
        let mut valid = vec![0.0f32; n_valid];
        for (i, v) in inputs.iter_mut().enumerate() {
            *v = (i + r) as f32;
        }
        valid.fill(1.0);
        std::hint::black_box((&inputs, &valid));
    }
    let limit = (reps * b) as f64 / t.elapsed().as_secs_f64();
    row("write_limit_samples_per_s", limit.into());

    // Warm epochs, 1 and 2 threads.
    let mut warm_load_s = f64::NAN;
    for threads in [1usize, 2] {
        let cfg = config(dir.path(), &server.stac_url(), &s, Some(threads));
        let ds = Arc::new(TileDataset::open(&cfg).expect("dataset"));
        let warm_up = BatchLoader::new(ds.clone(), cfg.loader.clone()).expect("loader");
        let _ = warm_up.iter().expect("warm-up").count();
        drop(warm_up);
        // The same warm loads without batching: the pipeline alone, as many at once.
        let at_once = 2 * threads;
        let t = Instant::now();
        let handle = ds.handle().expect("runtime");
        let n = handle.block_on(async {
            use futures::StreamExt;
            futures::stream::iter((0..ds.len()).map(|i| ds.load(i)))
                .buffer_unordered(at_once)
                .filter(|r| std::future::ready(r.is_ok()))
                .count()
                .await
        });
        row(
            &format!("warm_stack_loads_per_s_{threads}t"),
            (n as f64 / t.elapsed().as_secs_f64()).into(),
        );
        // A new loader on the same dataset: the tile cache warm, nothing prefetched.
        let loader = BatchLoader::new(ds, cfg.loader.clone()).expect("loader");
        let _ = loader.iter().expect("epoch").count();
        let m = loader.last_metrics().expect("metrics");
        let rate = m.samples as f64 / m.epoch_s;
        row(&format!("warm_samples_per_s_{threads}t"), rate.into());
        warm_load_s = 1.0 / rate;
        row(
            &format!("warm_vs_write_limit_{threads}t"),
            (rate / limit).into(),
        );
        row(
            &format!("warm_cache_hit_rate_{threads}t"),
            m.cache_hit_rate.into(),
        );
    }

    // Never starved: a burn step slower than a warm load, 50 ms per request.
    let cfg = config(dir.path(), &slow.stac_url(), &s, None);
    let ds = Arc::new(TileDataset::open(&cfg).expect("dataset"));
    let device = Device::default().autodiff();
    let data = StackDataLoader::new(ds, cfg.loader.clone(), &device).expect("loader");
    let mut model = Net::new(shape[0] * shape[1], &device);
    let mut optim = AdamConfig::new().init();
    let mut step_s = Vec::new();
    for epoch in 0..3 {
        use burn::data::dataloader::DataLoader;
        for batch in data.iter() {
            let batch = batch.expect("batch");
            let t = Instant::now();
            let [bb, tt, cc, hh, ww] = batch.inputs.dims();
            let x = batch.inputs.reshape([bb, tt * cc, hh, ww]);
            let y = model.forward(x);
            let loss = y.powf_scalar(2.0).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
            step_s.push(t.elapsed().as_secs_f64());
        }
        let m = data.last_metrics().expect("metrics");
        println!("  {m}");
        row(
            &format!("starved_wait_after_first_pct_epoch{epoch}"),
            (100.0 * m.wait_fraction_after_first()).into(),
        );
        row(
            &format!("starved_first_batch_s_epoch{epoch}"),
            m.first_batch_s.into(),
        );
    }
    step_s.sort_by(f64::total_cmp);
    row("model_step_median_s", step_s[step_s.len() / 2].into());
    row("warm_load_s", warm_load_s.into());
    row("places", s.places.into());
    row("full", s.full.into());
    let _ = std::fs::create_dir_all("target/bench");
    let _ = std::fs::write(
        "target/bench/loader.json",
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    );
    rt.block_on(server.shutdown());
    rt.block_on(slow.shutdown());
}
