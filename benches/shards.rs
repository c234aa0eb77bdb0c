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
//!
//! # The index alone (issue 28): `-- --index [N ...]`
//!
//! `ShardSet::open` of a synthetic set of N samples (default 10 000,
//! 100 000 and 1 000 000), no world: the index written by
//! [`write_index`] from made-up entries (12 daily steps of one band,
//! 8 × 8 px; per step a cloud cover, NaN and cloud fraction and one or two
//! Sentinel-2 scene ids: ~1.6 KB of JSON a sample), 256 samples to a shard,
//! the shard files sparse (of their recorded size, never read: opening
//! reads no shard). Each open runs in a child process, which reports the
//! seconds `open` takes and its peak and final RSS (`VmHWM`, `VmRSS`)
//! over the RSS before. The same entries written as the earlier JSON index
//! ([`write_index_v1`], `tilestack-shards/1`) are opened the same way up
//! to 100 000 samples (at 1 000 000 it is over the 1 GiB an index may be).
//! Writes `target/bench/index.json`.
//!
//! ```sh
//! cargo bench --features demo --bench shards -- --index
//! ```

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use common::{Setup, config};
use tilestack::demo::{Recipe, World, WorldServer};
use tilestack::shard::{
    MaterializeOptions, SampleEntry, ShardIndex, ShardInfo, ShardOptions, Verify, write_index,
    write_index_v1,
};
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

/// `VmRSS` and `VmHWM` of this process, MB.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kb("VmRSS:") / 1e3, kb("VmHWM:") / 1e3)
}

/// Steps of a synthetic sample, and samples to a shard.
const STEPS: usize = 12;
const PER_SHARD: usize = 256;

/// Synthetic sample `i` (see the module docs): what `materialize` records.
fn synthetic(i: usize, stride: u64, region: u64) -> SampleEntry {
    let day =
        |d: usize| chrono::NaiveDate::from_ymd_opt(2019, 8, 1 + d as u32).expect("a day of August");
    let scene = |d: usize, k: usize| {
        format!(
            "S2{}_MSIL2A_201908{:02}T18{:04}_R113_T10SEG_2020100{k}T013016",
            ["A", "B"][k % 2],
            1 + d,
            i % 10_000
        )
    };
    let f = |d: usize, m: usize| ((i * 7 + d * m) % 1000) as f32 / 10.0;
    SampleEntry {
        index: i,
        id: format!("p{i}"),
        shard: i / PER_SHARD,
        offset: 64 + (i % PER_SHARD) as u64 * stride,
        length: region,
        crc32: (i as u32).wrapping_mul(2_654_435_761),
        centroid: [
            -122.4 + 1e-5 * (i % 1000) as f64,
            37.7 + 1e-5 * (i / 1000) as f64,
        ],
        start: day(0),
        end: day(STEPS - 1),
        days: (0..STEPS).map(day).collect(),
        epsg: 32610,
        transform: [
            550_000.0 + (i % 1000) as f64 * 80.0,
            10.0,
            0.0,
            4_180_000.0,
            0.0,
            -10.0,
        ],
        eo_cloud_cover: (0..STEPS).map(|d| Some(f(d, 3))).collect(),
        pct_nans: (0..STEPS).map(|d| (d % 3 != 0).then(|| f(d, 5))).collect(),
        tile_cloud_fraction: (0..STEPS).map(|d| Some(f(d, 11) / 100.0)).collect(),
        items: (0..STEPS)
            .map(|d| (0..1 + (i + d) % 2).map(|k| scene(d, k)).collect())
            .collect(),
        read_errors: Vec::new(),
        error: None,
        inputs: Vec::new(),
    }
}

/// Writes a synthetic set of `n` samples into `dir` (the table index, or
/// the JSON one with `v1`), sparse shards included.
fn synthetic_set(dir: &std::path::Path, n: usize, v1: bool) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("a folder");
    let cfg = tilestack::DatasetConfig::from_toml_str(
        "[catalog]\ndemo = \"oakland\"\n[stack]\nbands = [\"B04\"]\ntile_size = 8\n\
         [time]\nrange = \"2019-08-01/2019-08-12\"\n[sampler]\nkind = \"random\"\n\
         bbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 4\n",
        "synthetic.toml".as_ref(),
    )
    .expect("the config");
    let mut h = ShardIndex::empty(&cfg, [STEPS, 1, 8, 8], PER_SHARD);
    let region = h.layout().region_bytes().expect("a small shape");
    let stride = region.div_ceil(64) * 64;
    h.samples = n;
    h.shard_count = n.div_ceil(PER_SHARD);
    for k in 0..h.shard_count {
        let file = format!("shard-{k:05}.safetensors");
        let count = PER_SHARD.min(n - k * PER_SHARD) as u64;
        let bytes = 64 + count * stride;
        std::fs::File::create(dir.join(&file))
            .and_then(|f| f.set_len(bytes))
            .expect("a sparse shard");
        h.shards.push(ShardInfo {
            shard: k,
            file,
            bytes,
        });
    }
    let entries = (0..n).map(|i| synthetic(i, stride, region));
    if v1 {
        write_index_v1(&dir.to_string_lossy(), &h, entries.collect()).expect("the JSON index");
    } else {
        write_index(&dir.to_string_lossy(), None, h, entries).expect("the index");
    }
}

/// Bytes of the index files in `dir` (everything but the shards).
fn index_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `--index [N ...]`: the index figures (module docs). `None` without the flag.
fn index_main() -> Option<()> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--index")?;
    let mut sizes: Vec<usize> = args[at + 1..]
        .iter()
        .map_while(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000, 1_000_000];
    }
    let root = std::path::Path::new("target/bench/index-sets");
    let mut out = serde_json::Map::new();
    println!(
        "{:>9} {:>6} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "samples", "index", "MB on disk", "open s", "peak RSS", "RSS after", "B/sample"
    );
    for &n in &sizes {
        for v1 in [false, true] {
            let tag = if v1 { "json" } else { "table" };
            let dir = root.join(format!("{tag}-{n}"));
            let key = format!("{tag}_{n}");
            let t = Instant::now();
            if v1 && n > 100_000 {
                println!("{n:>9} {tag:>6} (over the 1 GiB an index.json may be: not written)");
                continue;
            }
            synthetic_set(&dir, n, v1);
            let write_s = t.elapsed().as_secs_f64();
            let got = child(&["--child-index", &dir.to_string_lossy()], None);
            let (open_s, peak, after, base) = (
                got["open_s"],
                got["peak_rss_mb"] - got["base_rss_mb"],
                got["rss_mb"] - got["base_rss_mb"],
                got["base_rss_mb"],
            );
            let disk = index_bytes(&dir) as f64 / 1e6;
            println!(
                "{n:>9} {tag:>6} {disk:>10.1} {open_s:>8.3} {peak:>7.1} MB {after:>7.1} MB {:>8.0}",
                after * 1e6 / n as f64
            );
            out.insert(
                key,
                serde_json::json!({
                    "samples": n, "index_mb": disk, "write_s": write_s, "open_s": open_s,
                    "peak_rss_mb": peak, "rss_after_mb": after, "base_rss_mb": base,
                    "rss_bytes_per_sample": after * 1e6 / n as f64,
                }),
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::write(
        "target/bench/index.json",
        serde_json::to_string_pretty(&out).unwrap_or_default(),
    );
    Some(())
}

/// The child runs: `--child-shards DIR` (shard epochs),
/// `--child-memcpy BYTES N` (the baselines) or `--child-index DIR` (an
/// index's open). `None` when none.
fn child_main() -> Option<()> {
    let args: Vec<String> = std::env::args().collect();
    let at = |flag: &str| args.iter().position(|a| a == flag).map(|i| &args[i + 1..]);
    if let Some(rest) = at("--child-index") {
        let dir = rest.first()?;
        let (base, _) = rss_mb();
        let t = Instant::now();
        let set = ShardSet::open(dir).expect("the synthetic set");
        let open_s = t.elapsed().as_secs_f64();
        let (rss, peak) = rss_mb();
        // One sample's entry, read on demand, to show the set is usable.
        let e = set.entry(set.len() / 2).expect("an entry");
        assert_eq!(e.index, set.len() / 2);
        println!("open_s {open_s}");
        println!("base_rss_mb {base}");
        println!("rss_mb {rss}");
        println!("peak_rss_mb {peak}");
        return Some(());
    }
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
    if child_main().is_some() || index_main().is_some() {
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
