//! Shards (`materialize`, `ShardSet`, the shard loaders) against the
//! online loader over demo worlds served on 127.0.0.1: bit-identical
//! batches, parts, SIGKILL and rerun, Python's one-line read, `s3://`
//! through moto, and bad shards and folders.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::data::dataloader::DataLoader;
use burn::tensor::Device;
use tilestack::dataset::ErrorPolicy;
use tilestack::loader::{HostBatch, SampleStatus};
use tilestack::shard::{DEFAULT_SHARD_BYTES, MaterializeOptions, MaterializeReport, ShardOptions};
use tilestack::{
    BatchLoader, DatasetConfig, ShardDataLoader, ShardSet, StackDataLoader, TileDataset,
    materialize,
};

use crate::dataloader::{EAST, Fixture, WEST, bits, epoch};

/// Every field of two batches equal, floats bit for bit (NaN included).
fn assert_same(a: &HostBatch, b: &HostBatch) {
    let at = format!("epoch {} batch {}", a.epoch, a.index);
    assert_eq!(
        (a.epoch, a.index, a.shape),
        (b.epoch, b.index, b.shape),
        "{at}"
    );
    assert_eq!(a.samples, b.samples, "{at}");
    assert_eq!(a.ids, b.ids, "{at}");
    assert_eq!(a.days, b.days, "{at}");
    assert_eq!(a.status, b.status, "{at}");
    assert_eq!(a.read_errors, b.read_errors, "{at}");
    assert_eq!(
        (&a.label_names, &a.mask_names),
        (&b.label_names, &b.mask_names),
        "{at}"
    );
    assert!(bits(&a.inputs) == bits(&b.inputs), "{at}: inputs differ");
    assert!(bits(&a.valid) == bits(&b.valid), "{at}: valid differs");
    for (x, y) in a.labels.iter().zip(&b.labels) {
        assert!(bits(x) == bits(y), "{at}: labels differ");
    }
    for (x, y) in a.masks.iter().zip(&b.masks) {
        assert!(bits(x) == bits(y), "{at}: masks differ");
    }
    assert_eq!(bits(&a.eo_cloud_cover), bits(&b.eo_cloud_cover), "{at}");
    assert_eq!(bits(&a.pct_nans), bits(&b.pct_nans), "{at}");
    assert_eq!(
        bits(&a.tile_cloud_fraction),
        bits(&b.tile_cloud_fraction),
        "{at}"
    );
}

/// Every file of a folder (name → bytes), hidden ones included.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn run(
    cfg: &DatasetConfig,
    out: &Path,
    part: Option<(usize, usize)>,
    shard_bytes: u64,
) -> MaterializeReport {
    let opts = MaterializeOptions {
        part,
        shard_bytes,
        ..MaterializeOptions::new(out.to_string_lossy())
    };
    materialize(cfg, &opts, &mut |_| {}).unwrap()
}

/// Seven places around the small world's western granule.
fn seven() -> Vec<[f64; 2]> {
    (0..7)
        .map(|i| {
            let p = WEST[i % WEST.len()];
            [p[0] + 0.0007 * i as f64, p[1]]
        })
        .collect()
}

#[test]
fn oakland_ships_online_and_shard_batches_are_bit_identical_for_every_sample() {
    let cfg = DatasetConfig::from_file(Path::new("datasets/oakland-ships.toml")).unwrap();
    let out = tempfile::tempdir().unwrap();
    // ~40 MB shards: several shards of several samples.
    let report = run(&cfg, out.path(), None, 40 << 20);
    let online = Arc::new(TileDataset::open(&cfg).unwrap());
    assert_eq!(report.samples, online.len());
    assert!(report.failed.is_empty(), "{report}");
    assert!(report.shards_written > 2, "{report}");
    assert!(report.complete);
    let shards = Arc::new(ShardSet::open(&out.path().to_string_lossy()).unwrap());
    assert_eq!(shards.len(), online.len());
    assert_eq!(shards.shape(), online.shape());
    let a = BatchLoader::new(online.clone(), cfg.loader.clone()).unwrap();
    let b = BatchLoader::from_shards(shards, cfg.loader.clone()).unwrap();
    for e in 0..2 {
        let (x, y) = (epoch(&a), epoch(&b));
        assert_eq!(x.len(), y.len());
        let mut seen: Vec<usize> = y.iter().flat_map(|b| b.samples.clone()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), online.len(), "epoch {e}: every sample");
        for (p, q) in x.iter().zip(&y) {
            assert_same(p, q);
        }
        // Augmentation is on: the epochs differ, and equally on both sides.
        assert!(x[0].inputs.iter().any(|v| *v != 0.0));
    }
    let m = b.last_metrics().unwrap();
    assert_eq!((m.epoch, m.samples), (1, online.len()), "{m}");
    // Rank 1 of 2, a slice of it, and a resume mid-epoch: the same on both sides.
    let a = BatchLoader::with_rank(online.clone(), cfg.loader.clone(), 1, 2).unwrap();
    let b =
        BatchLoader::from_shards_with_rank(b.shards().unwrap().clone(), cfg.loader.clone(), 1, 2)
            .unwrap();
    let (a, b) = (a.slice(2, 14), b.slice(2, 14));
    for loader in [&a, &b] {
        loader.resume(3, 1);
    }
    let (x, y) = (epoch(&a), epoch(&b));
    assert!(!x.is_empty() && x.len() == y.len());
    assert!(x.iter().all(|b| b.epoch == 3), "resumed in epoch 3");
    for (p, q) in x.iter().zip(&y) {
        assert_same(p, q);
    }
}

#[test]
fn parts_are_disjoint_cover_every_sample_and_merge_to_the_single_runs_index() {
    let f = Fixture::new();
    let cfg = f.config(&seven(), None, "");
    let single = f.dir.path().join("single");
    let parted = f.dir.path().join("parted");
    // Two samples per shard: four shards for seven samples.
    let sample = {
        let one = run(&cfg, &single, None, 1);
        one.bytes_per_sample
    };
    let _ = std::fs::remove_dir_all(&single);
    let whole = run(&cfg, &single, None, 2 * sample + 10);
    assert_eq!((whole.samples, whole.shards_written), (7, 4), "{whole}");
    let mut covered = Vec::new();
    let mut files = Vec::new();
    for i in 0..3 {
        let r = run(&cfg, &parted, Some((i, 3)), 2 * sample + 10);
        assert_eq!(r.complete, i == 2, "the last part merges: {r}");
        let index: tilestack::shard::ShardIndex = serde_json::from_slice(
            &std::fs::read(parted.join(format!("index-{i}-of-3.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(index.part, Some([i, 3]));
        // The part's table: its rows are its samples, in order.
        let rows = std::fs::read(parted.join(&index.table.rows)).unwrap();
        assert_eq!(rows.len(), index.table.count * tilestack::shard::ROW_BYTES);
        for (r, row) in rows.chunks(tilestack::shard::ROW_BYTES).enumerate() {
            let sample = u64::from_le_bytes(row[..8].try_into().unwrap()) as usize;
            assert_eq!(sample, index.table.first + r, "index-{i}-of-3 row {r}");
            covered.push(sample);
        }
        files.extend(index.shards.iter().map(|s| s.file.clone()));
    }
    covered.sort_unstable();
    assert_eq!(covered, (0..7).collect::<Vec<_>>(), "disjoint and covering");
    let n = files.len();
    files.sort();
    files.dedup();
    assert_eq!((files.len(), n), (4, 4), "each shard written by one part");
    // The merged index and every shard: byte-identical to the single run.
    let (a, mut b) = (tree(&single), tree(&parted));
    for i in 0..3 {
        let name = format!("index-{i}-of-3.json");
        let part = b.remove(&name).unwrap_or_else(|| panic!("no {name}"));
        let part: tilestack::shard::ShardIndex = serde_json::from_slice(&part).unwrap();
        assert_eq!(part.part, Some([i, 3]), "{name}");
        assert!(b.remove(&part.table.rows).is_some(), "{name}'s rows");
        assert!(b.remove(&part.table.meta).is_some(), "{name}'s records");
    }
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        let (x, y) = (String::from_utf8_lossy(v), String::from_utf8_lossy(&b[k]));
        let first = x.lines().zip(y.lines()).find(|(p, q)| p != q);
        assert!(*v == b[k], "{k} differs: {first:?}");
    }
    // A part index is what the reader takes without index.json, and a
    // missing part is named.
    std::fs::remove_file(parted.join("index.json")).unwrap();
    let s = ShardSet::open(&parted.to_string_lossy()).unwrap();
    assert_eq!(s.len(), 7);
    std::fs::remove_file(parted.join("index-1-of-3.json")).unwrap();
    let e = ShardSet::open(&parted.to_string_lossy())
        .unwrap_err()
        .to_string();
    assert!(e.contains("index.json") && e.contains("--merge"), "{e}");
    let e = tilestack::shard::merge_parts(&parted.to_string_lossy(), 3, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("index-1-of-3.json"), "{e}");
}

#[test]
fn sigkill_at_random_points_then_rerun_gives_byte_identical_shards_and_index() {
    let f = Fixture::new();
    let pts: Vec<[f64; 2]> = (0..16)
        .map(|i| {
            let p = WEST[i % WEST.len()];
            [p[0] + 0.0006 * i as f64, p[1] - 0.0004 * i as f64]
        })
        .collect();
    // 128 px, four bands: ~1.6 MB samples, one per 2 MiB shard.
    let mut cfg = f.config(&pts, None, "");
    let text = std::fs::read_to_string(&cfg.path)
        .unwrap()
        .replace(
            "bands = [\"B04\", \"B08\"]",
            "bands = [\"B04\", \"B03\", \"B02\", \"B08\"]",
        )
        .replace("tile_size = 32", "tile_size = 128");
    let path = f.dir.path().join("kill.toml");
    std::fs::write(&path, text).unwrap();
    cfg = DatasetConfig::from_file(&path).unwrap();
    assert_eq!(cfg.stack.fields().tile_size, 128);
    let bin = env!("CARGO_BIN_EXE_tilestack");
    let materialize = |out: &Path| {
        let mut c = Command::new(bin);
        c.args(["materialize", "--shard-mb", "2", "--config"])
            .arg(&path)
            .arg("--out")
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let clean = f.dir.path().join("clean");
    let o = materialize(&clean)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = tree(&clean);
    let shards = want.keys().filter(|k| k.starts_with("shard-")).count();
    assert_eq!(shards, 16, "{:?}", want.keys().collect::<Vec<_>>());
    // Kill points drawn from a seeded generator: once k shards exist, plus
    // a random 0–10 ms, SIGKILL. Four rounds; at least three must land
    // while the child still runs (a fast machine may finish the last one).
    let killed = f.dir.path().join("killed");
    let mut seed: u64 = 0x5EED_1234;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut interrupted = 0;
    let count = |dir: &Path| {
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("shard-"))
            })
            .count()
        })
    };
    for round in 0..4 {
        // 1–2 more shards than the folder holds, never the last two: room
        // for four kills in sixteen shards.
        let k = (count(&killed) + 1 + next(2) as usize).min(shards - 2);
        let extra = Duration::from_millis(next(10));
        let mut child = materialize(&killed).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if count(&killed) >= k
                || child.try_wait().unwrap().is_some()
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(extra);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap_or_default(); // SIGKILL
        child.wait().unwrap();
        if !finished && !killed.join("index.json").exists() {
            interrupted += 1;
        }
        eprintln!(
            "round {round}: killed after {k} shards + {extra:?} (finished before: {finished})"
        );
    }
    assert!(interrupted >= 3, "every kill landed mid-run: {interrupted}");
    let st = materialize(&killed).status().unwrap();
    assert!(st.success());
    let got = tree(&killed);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "no temporary file left, no shard missing"
    );
    for (k, v) in &want {
        assert!(*v == got[k], "{k} differs after kills and a rerun");
    }
}

#[test]
fn failed_samples_are_recorded_and_replay_each_error_policy_identically() {
    let f = Fixture::new();
    let snap = f.broken_snapshot();
    let catalog = format!("snapshot = {snap:?}\ncollection = \"sentinel-2-l2a\"");
    let mut pts = WEST[..4].to_vec();
    pts.push(EAST);
    for policy in ["nan", "replace"] {
        let cfg = f.config(
            &pts,
            Some(&catalog),
            &format!("[loader]\nbatch_size = 2\nerrors = \"{policy}\""),
        );
        let out = f.dir.path().join(format!("broken-{policy}"));
        let r = run(&cfg, &out, None, 1 << 20);
        assert_eq!(r.failed.len(), 1, "{r}");
        assert_eq!(r.failed[0].0, 4, "{r}");
        assert!(r.to_string().contains(".missing"), "{r}");
        let a = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
        let shards = Arc::new(ShardSet::open(&out.to_string_lossy()).unwrap());
        assert!(
            shards
                .entry(4)
                .unwrap()
                .error
                .as_deref()
                .unwrap_or("")
                .contains(".missing")
        );
        assert!(shards.region(4).unwrap().failed);
        let b = BatchLoader::from_shards(shards, cfg.loader.clone()).unwrap();
        let (x, y) = (epoch(&a), epoch(&b));
        let statuses: Vec<&SampleStatus> = y.iter().flat_map(|b| &b.status).collect();
        match cfg.loader.errors {
            ErrorPolicy::Nan => assert!(
                statuses
                    .iter()
                    .any(|s| matches!(s, SampleStatus::Failed { .. }))
            ),
            _ => assert!(
                statuses
                    .iter()
                    .any(|s| matches!(s, SampleStatus::Replaced { failed: 4, .. }))
            ),
        }
        for (p, q) in x.iter().zip(&y) {
            assert_same(p, q);
        }
    }
}

#[test]
fn python_opens_a_shard_in_one_line_and_sees_the_rust_values() {
    let f = Fixture::new();
    // An input mask over the western half of the places: a U8 layer too.
    let mask = serde_json::json!({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[
            [-122.37, 37.79], [-122.352, 37.79], [-122.352, 37.82], [-122.37, 37.82], [-122.37, 37.79]
        ]]}
    }]});
    std::fs::write(f.dir.path().join("mask.geojson"), mask.to_string()).unwrap();
    let cfg = f.config(
        &seven(),
        None,
        "[[masks]]\nname = \"west\"\nfile = \"mask.geojson\"",
    );
    let out = f.dir.path().join("py");
    let r = run(&cfg, &out, None, 200_000);
    assert!(r.shards_written >= 2, "{r}");
    let shards = ShardSet::open(&out.to_string_lossy()).unwrap();
    let refs = f.dir.path().join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    for i in 0..shards.len() {
        let s = shards.load(i).unwrap();
        s.write_safetensors(&refs.join(format!("{i}.safetensors")))
            .unwrap();
    }
    let text = crate::util::check_shards_in_python(&out, &refs);
    assert!(text.contains(&format!("ok {}", shards.len())), "{text}");
}

#[test]
fn shards_round_trip_through_s3_on_moto() {
    let f = Fixture::new();
    let cfg = f.config(&seven()[..3], None, "");
    let local = f.dir.path().join("local");
    run(&cfg, &local, None, 1 << 20);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let moto = rt.block_on(crate::store::Moto::start());
    let client = rt.block_on(crate::store::client_with_bucket(&moto, &[]));
    let url = "s3://tiles/datasets/small";
    let opts = MaterializeOptions {
        client: Some(client.clone()),
        shard_bytes: 1 << 20,
        ..MaterializeOptions::new(url)
    };
    let r = materialize(&cfg, &opts, &mut |_| {}).unwrap();
    assert!(r.complete && r.written == 3, "{r}");
    // A rerun finds every shard there and writes nothing.
    let again = materialize(&cfg, &opts, &mut |_| {}).unwrap();
    assert_eq!((again.written, again.kept), (0, 3), "{again}");
    let remote = ShardSet::open_with(
        url,
        ShardOptions {
            client: Some(client.clone()),
            ..ShardOptions::default()
        },
    )
    .unwrap();
    let local = ShardSet::open(&local.to_string_lossy()).unwrap();
    assert_eq!(remote.index(), local.index());
    let (a, b): (Vec<_>, Vec<_>) = (
        local.entries().map(Result::unwrap).collect(),
        remote.entries().map(Result::unwrap).collect(),
    );
    assert_eq!((a.len(), &a), (3, &b), "every entry, from the table on s3");
    for i in 0..3 {
        let (a, b) = (local.load(i).unwrap(), remote.load(i).unwrap());
        assert_eq!(
            bits(a.data.as_slice().unwrap()),
            bits(b.data.as_slice().unwrap())
        );
    }
    let a = BatchLoader::from_shards(Arc::new(local), cfg.loader.clone()).unwrap();
    let b = BatchLoader::from_shards(Arc::new(remote), cfg.loader.clone()).unwrap();
    for (p, q) in epoch(&a).iter().zip(&epoch(&b)) {
        assert_same(p, q);
    }
    // An index larger than one upload part (8 MiB of records): uploaded
    // in parts, streaming, and read back.
    let mut h = tilestack::shard::ShardIndex::empty(&cfg, [1, 1, 2, 2], 200);
    h.samples = 120;
    h.shard_count = 1;
    h.shards.push(tilestack::shard::ShardInfo {
        shard: 0,
        file: "shard-00000.safetensors".into(),
        bytes: 0,
    });
    let big = |i: usize| tilestack::shard::SampleEntry {
        index: i,
        id: format!("big{i}"),
        error: Some(format!("{i}:{}", "x".repeat(100_000))),
        ..Default::default()
    };
    let url = "s3://tiles/datasets/big";
    let index =
        tilestack::shard::write_index(url, Some(client.clone()), h, (0..120).map(big)).unwrap();
    assert!(
        index.table.meta_bytes > 10 << 20,
        "{}",
        index.table.meta_bytes
    );
    let set = ShardSet::open_with(
        url,
        ShardOptions {
            client: Some(client),
            ..ShardOptions::default()
        },
    )
    .unwrap();
    assert_eq!(set.len(), 120);
    for i in [0, 61, 119] {
        assert_eq!(set.entry(i).unwrap(), big(i));
    }
    drop(moto);
}

#[test]
fn the_burn_shard_loader_hands_out_the_online_loaders_tensors() {
    let f = Fixture::new();
    let cfg = f.config(&seven()[..4], None, "");
    let out = f.dir.path().join("burn");
    run(&cfg, &out, None, 1 << 20);
    let dev = Device::default();
    let online = StackDataLoader::from_config(&cfg.path, &dev).unwrap();
    let shards: ShardDataLoader =
        ShardDataLoader::from_shards(&out.to_string_lossy(), Some(&cfg.path), &dev).unwrap();
    assert_eq!(online.num_items(), shards.num_items());
    for (a, b) in online.iter().zip(shards.iter()) {
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.inputs.dims(), b.inputs.dims());
        let (x, y) = (a.inputs.into_data(), b.inputs.into_data());
        assert_eq!(x.as_bytes(), y.as_bytes());
    }
}

#[test]
fn corrupt_missing_and_foreign_shards_are_errors_naming_the_file() {
    let f = Fixture::new();
    let cfg = f.config(&seven()[..4], None, "");
    let out = f.dir.path().join("bad");
    let r = run(&cfg, &out, None, 1);
    assert_eq!(r.shards_written, 4);
    let dir = out.to_string_lossy().to_string();
    // A flipped byte in a sample's data: the read names the shard.
    let shard1 = out.join("shard-00001.safetensors");
    let good = std::fs::read(&shard1).unwrap();
    let mut bad = good.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0x40;
    std::fs::write(&shard1, &bad).unwrap();
    let s = ShardSet::open(&dir).unwrap();
    s.load(0).unwrap();
    let e = s.load(1).unwrap_err().to_string();
    assert!(
        e.contains("shard-00001.safetensors") && e.contains("corrupt"),
        "{e}"
    );
    std::fs::write(&shard1, &good).unwrap();
    // A shard the index names is gone, or truncated.
    std::fs::remove_file(out.join("shard-00002.safetensors")).unwrap();
    let e = ShardSet::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("shard-00002.safetensors") && e.contains("does not exist"),
        "{e}"
    );
    std::fs::write(out.join("shard-00002.safetensors"), b"short").unwrap();
    let e = ShardSet::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("shard-00002.safetensors") && e.contains("truncated"),
        "{e}"
    );
    // A rerun rewrites the bad shard (it does not match the layout).
    let again = run(&cfg, &out, None, 1);
    assert_eq!((again.shards_written, again.shards_kept), (1, 3), "{again}");
    ShardSet::open(&dir).unwrap().load(2).unwrap();
    // A config of another dataset: the error names the config and the index.
    let other_path = f.dir.path().join("other.toml");
    let text = std::fs::read_to_string(&cfg.path)
        .unwrap()
        .replace("tile_size = 32", "tile_size = 16");
    std::fs::write(&other_path, text).unwrap();
    let other = DatasetConfig::from_file(&other_path).unwrap();
    let e = ShardSet::open_with(
        &dir,
        ShardOptions {
            config: Some(other.clone()),
            ..ShardOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("other.toml") && e.contains("index.json") && e.contains("another dataset"),
        "{e}"
    );
    // The same config with other read-time options is fine.
    let mut same = cfg.clone();
    same.loader.batch_size = 3;
    ShardSet::open_with(
        &dir,
        ShardOptions {
            config: Some(same),
            ..ShardOptions::default()
        },
    )
    .unwrap();
    // Writing another dataset into the folder, or into a folder of other files.
    let e = materialize(&other, &MaterializeOptions::new(dir.clone()), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dataset.json") && e.contains("holds dataset"),
        "{e}"
    );
    let foreign = f.dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let e = materialize(
        &cfg,
        &MaterializeOptions::new(foreign.to_string_lossy()),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("notes.txt") && e.contains("empty folder"), "{e}");
    // An index that is not JSON names itself.
    std::fs::write(out.join("index.json"), b"{").unwrap();
    let e = ShardSet::open(&dir).unwrap_err().to_string();
    assert!(
        e.contains("index.json") && e.contains("not a tilestack shard index"),
        "{e}"
    );
}

#[test]
fn array_jobs_take_their_part_from_the_environment_as_the_docs_run_them() {
    let f = Fixture::new();
    let cfg = f.config(&seven(), None, "");
    let single = f.dir.path().join("single");
    let _ = run(&cfg, &single, None, DEFAULT_SHARD_BYTES);
    let bin = env!("CARGO_BIN_EXE_tilestack");
    let cli = |out: &Path, env: &[(&str, &str)], extra: &[&str]| {
        let mut c = Command::new(bin);
        c.arg("materialize")
            .arg("--config")
            .arg(&cfg.path)
            .arg("--out")
            .arg(out)
            .args(extra)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_MIN")
            .env_remove("SLURM_ARRAY_TASK_COUNT");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // docs/materialize-slurm.sh: an array 10-12, the count from Slurm.
    let slurm = f.dir.path().join("slurm");
    for id in ["10", "11", "12"] {
        let env = [
            ("SLURM_ARRAY_TASK_ID", id),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let o = cli(&slurm, &env, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // docs/materialize-job.yaml: JOB_COMPLETION_INDEX, N from --parts.
    let k8s = f.dir.path().join("k8s");
    for i in ["2", "0", "1"] {
        let o = cli(&k8s, &[("JOB_COMPLETION_INDEX", i)], &["--parts", "3"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let want = tree(&single);
    for dir in [&slurm, &k8s] {
        let mut got = tree(dir);
        for i in 0..3 {
            let part = got
                .remove(&format!("index-{i}-of-3.json"))
                .unwrap_or_else(|| {
                    panic!(
                        "part {i} of 3 in {dir:?}: {:?}",
                        got.keys().collect::<Vec<_>>()
                    )
                });
            let part: tilestack::shard::ShardIndex = serde_json::from_slice(&part).unwrap();
            assert_eq!(part.part, Some([i, 3]), "index-{i}-of-3.json in {dir:?}");
            for f in [&part.table.rows, &part.table.meta] {
                assert!(got.remove(f).is_some(), "{f} in {dir:?}");
            }
        }
        assert!(got == want, "{dir:?} differs from the single run");
    }
    // A Job index without a count is refused, naming the variable.
    let o = cli(
        &f.dir.path().join("none"),
        &[("JOB_COMPLETION_INDEX", "1")],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("JOB_COMPLETION_INDEX") && err.contains("--parts"),
        "{err}"
    );
    let o = cli(
        &f.dir.path().join("bad"),
        &[("SLURM_ARRAY_TASK_ID", "x")],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("SLURM_ARRAY_TASK_ID"),
        "{err}"
    );
}

/// A write that fails mid-shard (here the file-size limit, as a full disk
/// would) names the shard's path and leaves no half shard; a rerun
/// completes the folder.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_names_the_path_and_leaves_no_half_shard() {
    let f = Fixture::new();
    let cfg = f.config(&seven(), None, "");
    let out = f.dir.path().join("limited");
    // SIGXFSZ ignored (it survives exec), files capped at 16 KiB: the index
    // files fit, a shard does not; write() then fails with EFBIG.
    let script = format!(
        "trap '' XFSZ; ulimit -f 16; exec {:?} materialize --config {:?} --out {:?}",
        env!("CARGO_BIN_EXE_tilestack"),
        cfg.path,
        out
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("shard-00000.safetensors") && err.to_lowercase().contains("too large"),
        "{err}"
    );
    let names: Vec<String> = tree(&out).into_keys().collect();
    assert!(
        names.iter().all(|n| !n.contains("shard-")),
        "no shard, no temporary: {names:?}"
    );
    let r = run(&cfg, &out, None, DEFAULT_SHARD_BYTES);
    assert_eq!((r.samples, r.shards_kept), (7, 0), "{r}");
    let s = ShardSet::open(&out.to_string_lossy()).unwrap();
    assert_eq!(
        s.entries().map(|e| e.unwrap().index).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    // completed, the folder is the one an uninterrupted run writes, byte
    // for byte
    let clean = f.dir.path().join("clean");
    run(&cfg, &clean, None, DEFAULT_SHARD_BYTES);
    let (got, want) = (tree(&out), tree(&clean));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert!(got[k] == *v, "{k} differs from the uninterrupted run's");
    }
}

#[test]
fn an_index_of_the_json_format_is_read_and_a_rerun_rewrites_it_as_the_table() {
    let f = Fixture::new();
    let cfg = f.config(&seven()[..4], None, "");
    let out = f.dir.path().join("v1");
    run(&cfg, &out, None, 1);
    let dir = out.to_string_lossy().to_string();
    let want = tree(&out);
    let table = Arc::new(ShardSet::open(&dir).unwrap());
    let entries: Vec<tilestack::shard::SampleEntry> = table.entries().map(Result::unwrap).collect();
    assert_eq!(entries.len(), 4);
    // The folder as the JSON-index tilestack left it: index.json with every
    // entry inline, no table, dataset.json of that format.
    tilestack::shard::write_index_v1(&dir, table.index(), entries.clone()).unwrap();
    std::fs::remove_file(out.join("index.samples.bin")).unwrap();
    std::fs::remove_file(out.join("index.meta.jsonl")).unwrap();
    let id = std::fs::read_to_string(out.join("dataset.json")).unwrap();
    assert!(id.contains(tilestack::shard::INDEX_FORMAT));
    std::fs::write(
        out.join("dataset.json"),
        id.replace(
            tilestack::shard::INDEX_FORMAT,
            tilestack::shard::INDEX_FORMAT_V1,
        ),
    )
    .unwrap();
    let json = Arc::new(ShardSet::open(&dir).unwrap());
    assert_eq!(json.index().format, tilestack::shard::INDEX_FORMAT_V1);
    let got: Vec<_> = json.entries().map(Result::unwrap).collect();
    assert_eq!(got, entries, "every field, from either index");
    let a = BatchLoader::from_shards(table, cfg.loader.clone()).unwrap();
    let b = BatchLoader::from_shards(json, cfg.loader.clone()).unwrap();
    let (x, y) = (epoch(&a), epoch(&b));
    assert_eq!(x.len(), y.len());
    for (p, q) in x.iter().zip(&y) {
        assert_same(p, q);
    }
    // A rerun loads no sample and leaves the folder a fresh run writes.
    let r = run(&cfg, &out, None, 1);
    assert_eq!((r.written, r.kept), (0, 4), "{r}");
    let got = tree(&out);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert!(got[k] == *v, "{k} differs from the fresh run's");
    }
}
