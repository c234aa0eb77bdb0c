//! The shard figures (issue 16), each next to its baseline measured in the
//! same run; prints a table and writes `target/bench/shards.json`.
//!
//! # Input
//!
//! The loader bench's dataset (`benches/common`): the full-size Oakland
//! demo world served on 127.0.0.1, 20 random places in granule A, 256 px
//! tiles, bands B04 B03 B02 B08 B11, August 1–30 daily — a sample is
//! `[30, 5, 256, 256]` f32 (39 MB); batches of 4.
//!
//! # Figures
//!
//! - `online_cold_samples_per_s`: an epoch of the online loader with its
//!   tile cache cold (the dataset opened, search and planning done, before
//!   the clock starts), and `materialize_samples_per_s`: `materialize` of
//!   the same config (its own cold cache; open time excluded), written to a
//!   local folder.
//! - `shard_bytes_per_sample` against `memory_bytes_per_sample`.
//! - `shard_epoch_samples_per_s`: an epoch of the shard loader, page cache
//!   warm (after one epoch that also verified every checksum), next to
//!   `online_warm_samples_per_s` (the online loader with its tile cache
//!   warm) and to two memcpy baselines over the same bytes per sample:
//!   `memcpy_fresh` copies each sample into a newly allocated buffer (what
//!   any loader that hands out a new batch must at least do: its pages are
//!   new), `memcpy_reuse` into one reused buffer (pure copy bandwidth). The
//!   issue's target: shard epoch ≥ 0.5 × memcpy.
//! - `shard_epoch_verify_always_samples_per_s`: the same with every read
//!   checksummed (`Verify::Always`).
//!
//! The shard epochs and the memcpy baselines run in child processes (a
//! fresh allocator each), twice: as is, and with
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (suffix `_thp`: glibc backs big
//! buffers with transparent huge pages, so a new buffer costs a few page
//! faults instead of one per 4 KiB).
//!
//! ```sh
//! cargo bench --features demo,burn --bench shards
//! ```
//! Under `cargo test --all-targets` (no `--bench`) it runs a quick smoke
//! pass on 4 places and 4 days.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use common::{Setup, config};
use tilestack::demo::{Recipe, World, WorldServer};
use tilestack::shard::{MaterializeOptions, ShardOptions, Verify};
use tilestack::{BatchLoader, ShardSet, TileDataset, materialize};

/// Samples per second of `epochs` epochs of a new loader, wall clock from
/// its creation: no batch prefetched before the clock starts (a loader
/// starts its next epoch while the last one is consumed).
fn epochs_rate(make: impl FnOnce() -> BatchLoader, epochs: usize) -> f64 {
    let t = Instant::now();
    let loader = make();
    let mut n = 0;
    for _ in 0..epochs {
        n += loader
            .iter()
            .expect("epoch")
            .map(|b| b.expect("batch").samples.len())
            .sum::<usize>();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Samples per second copying `bytes` per sample, `n` samples, best of 3.
fn memcpy_rate(bytes: usize, n: usize, fresh: bool) -> f64 {
    let src: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut reuse = vec![0u8; bytes];
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            if fresh {
                let v = src.clone();
                std::hint::black_box(&v);
            } else {
                reuse.copy_from_slice(&src);
                std::hint::black_box(&reuse);
            }
        }
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
    }
    best
}

fn shard_set(dir: &str, verify: Verify) -> Arc<ShardSet> {
    let opts = ShardOptions {
        verify,
        ..ShardOptions::default()
    };
    Arc::new(ShardSet::open_with(dir, opts).expect("the shards"))
}

/// Runs this bench as a child with `args` (and `GLIBC_TUNABLES`), and
/// reads the `name value` lines it prints.
fn child(args: &[&str], tunables: Option<&str>) -> BTreeMap<String, f64> {
    let mut c = std::process::Command::new(std::env::current_exe().expect("the bench binary"));
    c.args(args);
    if let Some(t) = tunables {
        c.env("GLIBC_TUNABLES", t);
    }
    let out = c.output().expect("the child bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The child runs: `--child-shards DIR` (shard epochs) or
/// `--child-memcpy BYTES N` (the baselines). `None` when neither.
fn child_main() -> Option<()> {
    let args: Vec<String> = std::env::args().collect();
    let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| &args[i + 1..]);
    if let Some(rest) = at("--child-shards") {
        let dir = rest.first()?;
        // The first epoch reads the files (page cache) and verifies every
        // checksum; then three epochs of a new loader on the same set.
        let set = shard_set(dir, Verify::First);
        let opts = set.config().loader.clone();
        let loader = || BatchLoader::from_shards(set.clone(), opts.clone()).expect("loader");
        println!("shard_first_epoch_samples_per_s {}", epochs_rate(loader, 1));
        println!("shard_epoch_samples_per_s {}", epochs_rate(loader, 3));
        let set = shard_set(dir, Verify::Always);
        let loader = || BatchLoader::from_shards(set.clone(), opts.clone()).expect("loader");
        println!(
            "shard_epoch_verify_always_samples_per_s {}",
            epochs_rate(loader, 3)
        );
        return Some(());
    }
    if let Some(rest) = at("--child-memcpy") {
        let bytes: usize = rest.first()?.parse().ok()?;
        let n: usize = rest.get(1)?.parse().ok()?;
        println!("memcpy_fresh_samples_per_s {}", memcpy_rate(bytes, n, true));
        println!(
            "memcpy_reuse_samples_per_s {}",
            memcpy_rate(bytes, n, false)
        );
        return Some(());
    }
    None
}

fn main() {
    if child_main().is_some() {
        return;
    }
    let s = Setup::from_args(20, 30);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = World::cached(&Recipe::oakland()).expect("the Oakland world");
    let server = rt.block_on(WorldServer::start(&world)).expect("server");
    let mut out = serde_json::Map::new();
    let mut row = |k: &str, v: serde_json::Value| {
        println!("{k:<42} {v}");
        out.insert(k.into(), v);
    };
    let cfg = config(dir.path(), &server.stac_url(), &s, None);

    // Online: cold, then a new loader on the same dataset (tile cache
    // warm, no stack kept from the first loader).
    let ds = Arc::new(TileDataset::open(&cfg).expect("dataset"));
    let online = || BatchLoader::new(ds.clone(), cfg.loader.clone()).expect("loader");
    let cold = epochs_rate(online, 1);
    row("online_cold_samples_per_s", cold.into());
    let warm = epochs_rate(online, 1);
    row("online_warm_samples_per_s", warm.into());

    // Materialize the same config (a fresh dataset: its cache is cold).
    // Kept after the run (for a profile: `perf record -g BENCH --child-shards
    // target/bench/shards-data`); replaced by the next run.
    let out_dir = std::path::Path::new("target/bench/shards-data");
    let _ = std::fs::remove_dir_all(out_dir);
    let out_s = out_dir.to_string_lossy().into_owned();
    let report = materialize(&cfg, &MaterializeOptions::new(out_s.clone()), &mut |_| {})
        .expect("materialize");
    println!("  {report}");
    let mat = report.written as f64 / (report.seconds - report.open_seconds);
    row("materialize_samples_per_s", mat.into());
    row("materialize_vs_online_cold", (mat / cold).into());
    row("shard_bytes_per_sample", report.bytes_per_sample.into());
    row(
        "memory_bytes_per_sample",
        report.memory_bytes_per_sample.into(),
    );
    row(
        "shard_vs_memory_bytes",
        (report.bytes_per_sample as f64 / report.memory_bytes_per_sample as f64).into(),
    );

    // Shard epochs and the memcpy baselines, each in a child process (a
    // fresh allocator: how many of a process's earlier big buffers it kept
    // decides whether new ones are fresh pages, which costs more than the
    // copy), once as is and once with glibc's transparent huge pages.
    let bytes = report.bytes_per_sample;
    let n = report.samples.max(8);
    let mut rate = f64::NAN;
    for (tag, tunables) in [("", None), ("_thp", Some("glibc.malloc.hugetlb=1"))] {
        let got = child(&["--child-shards", &out_s], tunables);
        let mc = child(
            &["--child-memcpy", &bytes.to_string(), &n.to_string()],
            tunables,
        );
        let r = got["shard_epoch_samples_per_s"];
        if tag.is_empty() {
            rate = r;
        }
        for (k, v) in got.iter().chain(mc.iter()) {
            row(&format!("{k}{tag}"), (*v).into());
        }
        row(
            &format!("shard_epoch_mb_per_s{tag}"),
            (r * bytes as f64 / 1e6).into(),
        );
        row(
            &format!("shard_vs_memcpy_fresh{tag}"),
            (r / mc["memcpy_fresh_samples_per_s"]).into(),
        );
        row(
            &format!("shard_vs_memcpy_reuse{tag}"),
            (r / mc["memcpy_reuse_samples_per_s"]).into(),
        );
    }
    row("shard_vs_online_warm", (rate / warm).into());
    row("samples", report.samples.into());
    row("full", s.full.into());
    let _ = std::fs::create_dir_all("target/bench");
    let _ = std::fs::write(
        "target/bench/shards.json",
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    );
    rt.block_on(server.shutdown());
}
