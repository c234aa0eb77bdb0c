//! The training layer (feature `burn`): dataset configs, `TileDataset`,
//! `BatchLoader` and burn's `StackDataLoader` over the small demo world
//! served on 127.0.0.1 — order, resume, slices, budget, error policies,
//! augmentation, labels — in a hand-written loop and through burn's
//! `split_dataloader`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::tensor::Device;
use tilestack::dataset::ErrorPolicy;
use tilestack::demo::WorldServer;
use tilestack::loader::{HostBatch, SampleStatus};
use tilestack::{BatchLoader, Catalog, DatasetConfig, StackDataLoader, TileDataset, build};

use crate::util::{cog_reader, small_world, write_points};

/// Five places west of the centroid (covered by granule A only) and, with
/// `far`, one far east (granule B only).
pub(crate) const WEST: [[f64; 2]; 5] = [
    [-122.365, 37.805],
    [-122.360, 37.812],
    [-122.355, 37.800],
    [-122.350, 37.815],
    [-122.346, 37.808],
];
pub(crate) const EAST: [f64; 2] = [-122.262, 37.81];

/// The small world served on 127.0.0.1 and a folder for configs.
pub(crate) struct Fixture {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) server: WorldServer,
    pub(crate) dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(WorldServer::start(small_world())).unwrap();
        Fixture {
            rt,
            server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A config over `points` with `extra` TOML appended; `catalog` is the
    /// `[catalog]` body (default: the live STAC API).
    pub(crate) fn config(
        &self,
        points: &[[f64; 2]],
        catalog: Option<&str>,
        extra: &str,
    ) -> DatasetConfig {
        write_points(&self.dir.path().join("points.csv"), points);
        let catalog = catalog.map(str::to_string).unwrap_or_else(|| {
            format!(
                "stac = {:?}\ncollection = \"sentinel-2-l2a\"",
                self.server.stac_url()
            )
        });
        let text = format!(
            r#"seed = 3
[catalog]
{catalog}
[stack]
bands = ["B04", "B08"]
tile_size = 32
[time]
range = "2019-08-01/2019-08-06"
[sampler]
kind = "points"
file = "points.csv"
[[labels]]
name = "ships"
file = {ships:?}
{extra}
{loader}
"#,
            loader = if extra.contains("[loader]") {
                ""
            } else {
                "[loader]\nbatch_size = 2\nprefetch_batches = 2"
            },
            ships = small_world().ships_path(),
        );
        let path = self.dir.path().join("data.toml");
        std::fs::write(&path, &text).unwrap();
        DatasetConfig::from_file(&path).unwrap()
    }

    pub(crate) fn dataset(&self, cfg: &DatasetConfig) -> Arc<TileDataset> {
        Arc::new(TileDataset::open(cfg).unwrap())
    }

    /// A snapshot of the world's items in which every granule-B item's hrefs
    /// 404: the far-east sample fails, the western ones load.
    pub(crate) fn broken_snapshot(&self) -> PathBuf {
        let client = tilestack::stac::StacClient::new(&self.server.stac_url()).unwrap();
        let req = tilestack::stac::SearchRequest::new("sentinel-2-l2a");
        let mut items = self.rt.block_on(client.search(&req)).unwrap().items;
        let mut broken = 0;
        for it in &mut items {
            let granule = it.properties.additional_fields.get("tilestack:granule");
            if granule == Some(&serde_json::json!("B")) {
                for a in it.assets.values_mut() {
                    a.href = format!("{}.missing", a.href);
                }
                broken += 1;
            }
        }
        assert!(broken > 0);
        let p = self.dir.path().join("broken.json");
        tilestack::stac::save_snapshot(&items, &p).unwrap();
        p
    }
}

pub(crate) fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

pub(crate) fn epoch(loader: &BatchLoader) -> Vec<HostBatch> {
    loader
        .iter()
        .unwrap()
        .collect::<tilestack::Result<Vec<_>>>()
        .unwrap()
}

fn ids(batches: &[HostBatch]) -> Vec<usize> {
    batches.iter().flat_map(|b| b.samples.clone()).collect()
}

#[test]
fn every_sample_once_per_epoch_in_a_new_seeded_order_bit_identical_across_runs() {
    let f = Fixture::new();
    let pts: Vec<[f64; 2]> = WEST.iter().chain(WEST.iter()).copied().collect::<Vec<_>>()[..7]
        .iter()
        .enumerate()
        .map(|(i, p)| [p[0] + 0.0005 * i as f64, p[1]])
        .collect();
    let cfg = f.config(&pts, None, "");
    let a = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
    let b = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
    assert_eq!(a.num_batches(), 4, "7 samples, batches of 2, last kept");
    let (a0, a1) = (epoch(&a), epoch(&a));
    let (b0, b1) = (epoch(&b), epoch(&b));
    for e in [&a0, &a1] {
        let mut s = ids(e);
        s.sort_unstable();
        assert_eq!(s, (0..7).collect::<Vec<_>>(), "every sample exactly once");
        assert_eq!(e.last().unwrap().len(), 1, "the last batch is the rest");
    }
    assert_ne!(ids(&a0), ids(&a1), "the order changes between epochs");
    assert_eq!(ids(&a0), a.epoch_order(0));
    for (x, y) in a0.iter().chain(&a1).zip(b0.iter().chain(&b1)) {
        assert_eq!(x.samples, y.samples, "same seed, same order");
        assert_eq!(bits(&x.inputs), bits(&y.inputs), "bit-identical batches");
        assert_eq!(bits(&x.labels[0]), bits(&y.labels[0]));
    }
    // Two ranks of one process group: disjoint halves of each epoch's order.
    let ds = f.dataset(&cfg);
    let r0 = BatchLoader::with_rank(ds.clone(), cfg.loader.clone(), 0, 2).unwrap();
    let r1 = BatchLoader::with_rank(ds, cfg.loader.clone(), 1, 2).unwrap();
    for e in 0..2 {
        let (o0, o1) = (r0.epoch_order(e), r1.epoch_order(e));
        assert_eq!(
            (o0.len(), o1.len()),
            (3, 3),
            "7 samples over 2 ranks: 3 each"
        );
        assert!(o0.iter().all(|s| !o1.contains(s)), "disjoint");
    }
    assert_eq!(ids(&epoch(&r1)), r1.epoch_order(0));
    // The next epoch's first batches were loading while this one ended.
    let m = a.last_metrics().unwrap();
    assert_eq!((m.epoch, m.batches, m.samples), (1, 4, 7), "{m}");
    assert!(
        a.pending().iter().any(|&(e, _)| e == 2),
        "{:?}",
        a.pending()
    );
    assert!(m.to_string().contains("epoch 1: 4 batches"), "{m}");
}

#[test]
fn batches_hold_the_built_stacks_with_validity_labels_and_metadata() {
    let f = Fixture::new();
    let cfg = f.config(
        &WEST[..3],
        None,
        "[loader]\nshuffle = false\nbatch_size = 3",
    );
    let ds = f.dataset(&cfg);
    let loader = StackDataLoader::new(ds.clone(), cfg.loader.clone(), &Device::default()).unwrap();
    let mut n = 0;
    // A hand-written loop over burn's DataLoader trait.
    for batch in loader.iter() {
        let batch = batch.unwrap();
        n += 1;
        assert_eq!(
            batch.inputs.dims(),
            [3, 6, 2, 32, 32],
            "[B, T, C, H, W], no mask band"
        );
        assert_eq!(batch.valid.dims(), [3, 6, 32, 32]);
        assert_eq!(batch.label("ships").unwrap().dims(), [3, 6, 32, 32]);
        assert_eq!(batch.tile_cloud_fraction.dims(), [3, 6]);
        let inputs = batch.inputs.clone().into_data();
        let inputs = inputs.as_slice::<f32>().unwrap();
        let valid = batch.valid.clone().into_data();
        let valid = valid.as_slice::<f32>().unwrap();
        for (row, &sample) in batch.samples.iter().enumerate() {
            let req = &ds.request(sample).unwrap();
            let want =
                f.rt.block_on(build(
                    &Catalog::stac(&f.server.stac_url(), "sentinel-2-l2a").unwrap(),
                    req,
                    &cog_reader(),
                    None,
                ))
                .unwrap()
                .stack;
            let got = &inputs[row * 6 * 2 * 1024..][..6 * 2 * 1024];
            let filled: Vec<f32> = want
                .data
                .iter()
                .map(|v| if v.is_nan() { 0.0 } else { *v })
                .collect();
            assert_eq!(
                bits(got),
                bits(&filled),
                "sample {sample}: the built stack, NaN → 0"
            );
            for t in 0..6 {
                for px in 0..1024 {
                    let ok = (0..2).all(|c| {
                        want.data.as_slice().unwrap()[(t * 2 + c) * 1024 + px].is_finite()
                    });
                    assert_eq!(valid[(row * 6 + t) * 1024 + px], f32::from(u8::from(ok)));
                }
            }
            assert_eq!(batch.days[row], want.days);
            assert_eq!(batch.ids[row], format!("p{sample}"));
        }
        // Labels are the ship footprints of each day (some day has a ship
        // in some tile of a port scene; none is outside 0/1).
        let ships = batch.label("ships").unwrap().clone().into_data();
        let ships = ships.as_slice::<f32>().unwrap().to_vec();
        assert!(ships.iter().all(|v| *v == 0.0 || *v == 1.0));
    }
    assert_eq!(n, 1);
    let m = loader.last_metrics().unwrap();
    assert_eq!(m.loads, 3, "{m}");
    assert!(m.bytes_fetched > 0, "{m}");
}

#[test]
fn resume_mid_epoch_gives_the_remaining_batches_bit_identical() {
    let f = Fixture::new();
    let cfg = f.config(&WEST, None, "");
    let full = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
    let _ = epoch(&full);
    let e1 = epoch(&full);
    let resumed = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
    resumed.resume(1, 1);
    let rest = epoch(&resumed);
    assert_eq!(rest.len(), e1.len() - 1);
    for (x, y) in e1[1..].iter().zip(&rest) {
        assert_eq!(
            (x.epoch, x.index, &x.samples),
            (y.epoch, y.index, &y.samples)
        );
        assert_eq!(bits(&x.inputs), bits(&y.inputs));
    }
    assert_eq!(resumed.next_epoch(), 2, "then epoch 2 from its start");
}

#[test]
fn slices_are_disjoint_with_equal_batch_counts_pad_or_drop() {
    let f = Fixture::new();
    let pts: Vec<[f64; 2]> = (0..7)
        .map(|i| [WEST[i % 5][0] + 0.0007 * i as f64, WEST[i % 5][1]])
        .collect();
    for (policy, want) in [("keep", 2), ("drop", 1)] {
        let cfg = f.config(
            &pts,
            None,
            &format!("[loader]\nbatch_size = 2\nlast_batch = {policy:?}"),
        );
        let loader =
            StackDataLoader::new(f.dataset(&cfg), cfg.loader.clone(), &Device::default()).unwrap();
        // burn's own split: 7 items over 3 devices = 2, 2, 3.
        let dev = Device::default();
        let parts = burn::data::dataloader::split::split_dataloader(
            Arc::new(loader) as Arc<dyn DataLoader<tilestack::TileBatch>>,
            &[dev.clone(), dev.clone(), dev],
        );
        let mut seen = BTreeSet::new();
        let mut real = 0;
        for part in &parts {
            let batches: Vec<_> = part.iter().map(Result::unwrap).collect();
            assert_eq!(
                batches.len(),
                want,
                "{policy}: every device the same number of batches"
            );
            for b in &batches {
                for (s, st) in b.samples.iter().zip(&b.status) {
                    if *st != SampleStatus::Padded {
                        assert!(seen.insert(*s), "{policy}: sample {s} in two slices");
                        real += 1;
                    }
                }
            }
        }
        match policy {
            "keep" => assert_eq!(real, 7, "padding repeats, never drops"),
            _ => assert_eq!(real, 6, "three slices of one whole batch"),
        }
    }
}

#[test]
fn the_byte_budget_holds_everything_the_loader_holds() {
    let f = Fixture::new();
    let pts: Vec<[f64; 2]> = (0..8)
        .map(|i| [WEST[i % 5][0] + 0.0006 * i as f64, WEST[i % 5][1]])
        .collect();
    // One batch: 2 rows × (inputs 6·2 + validity 6 + labels 6) planes of
    // 32² f32 + metadata, plus the two stacks while loading.
    let row = 4 * (6 * 2 * 1024 + 6 * 1024 * 2 + 3 * 6) + 6 * 2 * 1024 * 4;
    let budget = 2 * 2 * row as u64 + 100;
    let cfg = f.config(
        &pts,
        None,
        &format!("[loader]\nbatch_size = 2\nprefetch_batches = 8\nbudget_bytes = {budget}"),
    );
    let loader = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
    for _ in 0..2 {
        assert_eq!(epoch(&loader).len(), 4);
    }
    let peak = loader.peak_bytes();
    assert!(peak <= budget, "peak {peak} > budget {budget}");
    assert!(peak > budget / 2, "prefetch used the budget: peak {peak}");
    let small = f.config(&pts, None, "[loader]\nbatch_size = 2\nbudget_bytes = 1000");
    let err = BatchLoader::new(f.dataset(&small), small.loader.clone()).unwrap_err();
    assert!(err.to_string().contains("loader.budget_bytes"), "{err}");
}

fn policy_config(f: &Fixture, errors: ErrorPolicy) -> DatasetConfig {
    let snap = f.broken_snapshot();
    let mut pts = WEST.to_vec();
    pts.push(EAST);
    let name = serde_json::to_value(errors).unwrap();
    f.config(
        &pts,
        Some(&format!("snapshot = {snap:?}")),
        &format!("[loader]\nbatch_size = 2\nshuffle = false\nerrors = {name}"),
    )
}

#[test]
fn error_policies_fail_replace_or_nan_and_the_epoch_goes_on() {
    let f = Fixture::new();
    // fail: the batch holding the broken sample is an error naming it and the URL.
    let cfg = policy_config(&f, ErrorPolicy::Fail);
    let ds = f.dataset(&cfg);
    let east = ds.samples().iter().position(|s| s.id == "p5").unwrap();
    let loader = BatchLoader::new(ds, cfg.loader.clone()).unwrap();
    let out: Vec<_> = loader.iter().unwrap().collect();
    assert_eq!(out.len(), 3, "the epoch goes on past the error");
    let errs: Vec<String> = out
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.chain()))
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains(&format!("sample {east}")), "{}", errs[0]);
    assert!(errs[0].contains(".missing"), "names the URL: {}", errs[0]);
    let m = loader.last_metrics().unwrap();
    assert!(m.load_errors >= 1, "{m}");

    // replace: the broken sample's row holds the next sample in the order.
    let cfg = policy_config(&f, ErrorPolicy::Replace);
    let loader = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
    let batches = epoch(&loader);
    let replaced: Vec<_> = batches
        .iter()
        .flat_map(|b| b.status.iter().zip(&b.samples))
        .filter(|(s, _)| matches!(s, SampleStatus::Replaced { .. }))
        .collect();
    assert_eq!(replaced.len(), 1);
    let (SampleStatus::Replaced { failed, error }, by) = replaced[0] else {
        unreachable!()
    };
    assert_eq!(*failed, east);
    assert_ne!(*by, east);
    assert!(error.contains(".missing"), "{error}");
    assert_eq!(loader.last_metrics().unwrap().replaced, 1);
    let again = epoch(&loader);
    assert_eq!(ids(&again).len(), 6, "deterministic, every epoch");

    // nan: the row stays, invalid everywhere, flagged.
    let cfg = policy_config(&f, ErrorPolicy::Nan);
    let loader = BatchLoader::new(f.dataset(&cfg), cfg.loader.clone()).unwrap();
    let batches = epoch(&loader);
    let (b, row) = batches
        .iter()
        .find_map(|b| b.samples.iter().position(|&s| s == east).map(|r| (b, r)))
        .unwrap();
    assert!(matches!(b.status[row], SampleStatus::Failed { .. }));
    let px = 6 * 32 * 32;
    assert!(b.valid[row * px..][..px].iter().all(|v| *v == 0.0));
    assert_eq!(loader.last_metrics().unwrap().failed, 1);
}

/// The eight symmetries of a square, as index maps on an `n × n` plane.
fn dihedral(n: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for k in 0..4 {
        for flip in [false, true] {
            let mut m = Vec::with_capacity(n * n);
            for y in 0..n {
                for x in 0..n {
                    let (mut sy, mut sx) = (y, x);
                    for _ in 0..k {
                        (sy, sx) = (sx, n - 1 - sy);
                    }
                    if flip {
                        sx = n - 1 - sx;
                    }
                    m.push(sy * n + sx);
                }
            }
            out.push(m);
        }
    }
    out
}

#[test]
fn an_augmented_label_moves_with_its_image() {
    let f = Fixture::new();
    // Places over the berths, where ships are.
    let pts = [[-122.334, 37.812], [-122.333, 37.803], [-122.336, 37.808]];
    let plain = f.config(&pts, None, "[loader]\nshuffle = false\nbatch_size = 3");
    let aug = f.config(
        &pts,
        None,
        "[augment]\nflips = true\nrot90 = true\n[loader]\nshuffle = false\nbatch_size = 3",
    );
    let a = epoch(&BatchLoader::new(f.dataset(&plain), plain.loader.clone()).unwrap());
    let b = epoch(&BatchLoader::new(f.dataset(&aug), aug.loader.clone()).unwrap());
    let (a, b) = (&a[0], &b[0]);
    let plane = 32 * 32;
    let maps = dihedral(32);
    let mut moved = 0;
    let mut labelled = 0;
    for row in 0..3 {
        let at = |v: &[f32], t: usize, c: usize, chans: usize| -> Vec<f32> {
            v[((row * 6 + t) * chans + c) * plane..][..plane].to_vec()
        };
        // The map that turns the plain image into the augmented one, found on day 0's first band…
        let src = at(&a.inputs, 0, 0, 2);
        let dst = at(&b.inputs, 0, 0, 2);
        let m = maps
            .iter()
            .position(|m| {
                m.iter()
                    .enumerate()
                    .all(|(i, &j)| dst[i].to_bits() == src[j].to_bits())
            })
            .expect("the augmented image is a symmetry of the plain one");
        if m != 0 {
            moved += 1;
        }
        // …maps every band, the validity and the labels of every day alike.
        for t in 0..6 {
            for (pa, pb) in [
                (at(&a.inputs, t, 1, 2), at(&b.inputs, t, 1, 2)),
                (at(&a.valid, t, 0, 1), at(&b.valid, t, 0, 1)),
                (at(&a.labels[0], t, 0, 1), at(&b.labels[0], t, 0, 1)),
            ] {
                let mapped: Vec<f32> = maps[m].iter().map(|&j| pa[j]).collect();
                assert_eq!(bits(&mapped), bits(&pb), "row {row} day {t}");
            }
            labelled += at(&a.labels[0], t, 0, 1)
                .iter()
                .filter(|v| **v > 0.0)
                .count();
        }
    }
    assert!(moved > 0, "some sample was transformed");
    assert!(labelled > 0, "some ship pixels were labelled");
}

#[test]
fn config_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let base = r#"[catalog]
stac = "http://127.0.0.1:9"
collection = "c"
[stack]
bands = ["B04"]
[time]
range = "2019-08-01/2019-08-10"
"#;
    let err = |p: &Path| DatasetConfig::from_file(p).unwrap_err().chain();
    let p = write(
        "typo.toml",
        &format!(
            "{base}[sampler]\nkind = \"grid\"\nbbox = [0.0, 0.0, 0.1, 0.1]\nstride_m = 500.0\nstrid = 3\n"
        ),
    );
    let e = err(&p);
    assert!(e.contains("typo.toml") && e.contains("strid"), "{e}");
    let p = write(
        "stack.toml",
        &base.replace("bands = [\"B04\"]", "bands = [\"B04\"]\ntile_sise = 64"),
    );
    let p2 = write(
        "stack2.toml",
        &format!(
            "{}[sampler]\nkind = \"grid\"\nbbox = [0.0, 0.0, 0.1, 0.1]\nstride_m = 500.0\n",
            std::fs::read_to_string(&p).unwrap()
        ),
    );
    let e = err(&p2);
    assert!(
        e.contains("stack2.toml") && e.contains("stack") && e.contains("tile_sise"),
        "{e}"
    );
    // A sampler area that yields no sample.
    let p = write(
        "empty.toml",
        &format!(
            "{base}[sampler]\nkind = \"grid\"\nbbox = [0.0, 0.0, 0.001, 0.001]\nstride_m = 50000.0\n"
        ),
    );
    let cfg = DatasetConfig::from_file(&p).unwrap();
    let e = TileDataset::open(&cfg).unwrap_err().chain();
    assert!(e.contains("empty.toml") && e.contains("sampler"), "{e}");
    // A label file that does not parse.
    let bad = write(
        "bad.geojson",
        "{\"type\": \"FeatureCollection\", \"features\": [",
    );
    let p = write(
        "labels.toml",
        &format!(
            "{base}[sampler]\nkind = \"grid\"\nbbox = [0.0, 0.0, 0.1, 0.1]\nstride_m = 5000.0\n[[labels]]\nname = \"ships\"\nfile = {:?}\n",
            bad
        ),
    );
    let cfg = DatasetConfig::from_file(&p).unwrap();
    let e = cfg.label_layers(None).unwrap_err().chain();
    assert!(
        e.contains("labels.toml") && e.contains("labels \"ships\"") && e.contains("bad.geojson"),
        "{e}"
    );
    // The committed demo dataset parses.
    let cfg = DatasetConfig::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/oakland-ships.toml"),
    )
    .unwrap();
    assert_eq!(cfg.labels[0].name, "ships");
    assert_eq!(cfg.loader.errors, ErrorPolicy::Replace);
}

#[test]
fn filters_drop_samples_before_any_pixel_is_read_and_count_why() {
    let f = Fixture::new();
    let mut pts = WEST[..2].to_vec();
    pts.push([-121.0, 37.0]); // outside every scene
    let cfg = f.config(
        &pts,
        None,
        "[filters]\nmin_days_with_data = 1\nmax_cloud_cover = 50.0",
    );
    let before = f.server.stats().data_requests();
    let ds = f.dataset(&cfg);
    assert_eq!(f.server.stats().data_requests(), before, "no COG byte read");
    let r = ds.report();
    assert_eq!((r.candidates, r.kept), (3, 2), "{r}");
    assert_eq!(r.dropped.values().sum::<usize>(), 1, "{r}");
    assert!(
        r.to_string().contains("fewer than 1 steps with a scene"),
        "{r}"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("query extension")),
        "the demo API declares no query extension: filtered on the client: {:?}",
        r.warnings
    );
    // A tile half off granule A's west edge: its days lack full footprint cover.
    let edge = f.config(
        &[WEST[0], [-122.3785, 37.805]],
        None,
        "[filters]\nmin_days_with_data = 1\nmin_footprint_cover = 0.9",
    );
    let edge = f.dataset(&edge);
    let r = edge.report();
    assert_eq!((r.candidates, r.kept), (2, 1), "{r}");
    assert!(r.to_string().contains("covering 90 % of the tile"), "{r}");
    assert_eq!(edge.samples()[0].id, "p0");
    // Every kept sample's scenes obey the cloud filter.
    for s in ds.samples() {
        assert!(
            s.scenes
                .iter()
                .map(|&k| &ds.scenes()[k as usize])
                .all(|sc| sc.cloud_cover.is_none_or(|c| c <= 50.0))
        );
    }
}

#[test]
fn the_committed_oakland_ships_dataset_serves_itself_and_labels_ships() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/oakland-ships.toml");
    let loader = StackDataLoader::from_config(&path, &Device::default()).unwrap();
    let ds = loader.batches().dataset().unwrap().clone();
    assert_eq!(ds.report().candidates, 32, "{}", ds.report());
    assert!(ds.report().kept >= 24, "{}", ds.report());
    let mut it = loader.iter();
    let batch = it.next().unwrap().unwrap();
    assert_eq!(batch.inputs.dims(), [8, 30, 4, 128, 128]);
    assert_eq!(batch.mask_names, ["terminals"]);
    assert_eq!(batch.masks[0].dims(), [8, 128, 128]);
    let ships: f32 = batch.label("ships").unwrap().clone().sum().into_scalar();
    assert!(ships > 0.0, "ship pixels among 8 port tiles over 30 days");
    let valid: f32 = batch.valid.clone().mean().into_scalar();
    assert!(
        valid > 0.1 && valid < 1.0,
        "some days without data: {valid}"
    );
    let cloud = batch.tile_cloud_fraction.clone().into_data();
    assert!(
        cloud
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .any(|v| v.is_finite()),
        "SCL read for the tile cloud fraction"
    );
}

/// 10 % of data requests faulted (503s, resets mid-body, short 206s, 206s
/// for another range, in turn): a whole epoch through the loader is
/// bit-identical to the fault-free server's, and no sample is lost.
#[test]
fn an_epoch_at_ten_percent_faults_is_bit_identical_to_a_fault_free_one() {
    let f = Fixture::new();
    let faulty =
        f.rt.block_on(WorldServer::start_with(
            small_world(),
            tilestack::demo::ServerOptions {
                fault_every: 10,
                ..tilestack::demo::ServerOptions::default()
            },
        ))
        .unwrap();
    // No tile cache: every load fetches its tiles, three epochs over five
    // places give the faults enough requests to hit.
    let pts = &WEST[..];
    let loader = "[loader]\nbatch_size = 2\nprefetch_batches = 2\ncache_bytes = 0";
    let healthy = f.config(pts, None, loader);
    let catalog = format!(
        "stac = {:?}\ncollection = \"sentinel-2-l2a\"",
        faulty.stac_url()
    );
    let faulted = f.config(pts, Some(&catalog), loader);
    let run = |cfg: &DatasetConfig| {
        let ds = f.dataset(cfg);
        let l = BatchLoader::new(ds, cfg.loader.clone()).unwrap();
        (0..3).flat_map(|_| epoch(&l)).collect::<Vec<_>>()
    };
    let (want, got) = (run(&healthy), run(&faulted));
    let stats = faulty.stats();
    let data = stats
        .log()
        .iter()
        .filter(|l| l.path.starts_with("/data/"))
        .count() as u64;
    assert!(
        // Every tenth request position; a reset or truncation that meets a
        // non-206 answer passes it through uncounted, so allow some slack.
        stats.faults_injected() >= 3 && stats.faults_injected() * 20 >= data,
        "{} faults in {data} data requests",
        stats.faults_injected()
    );
    assert_eq!(want.len(), got.len());
    for (a, b) in want.iter().zip(&got) {
        assert_eq!(a.samples, b.samples);
        assert!(
            b.status.iter().all(|s| *s == SampleStatus::Ok),
            "{:?}",
            b.status
        );
        assert_eq!(bits(&a.inputs), bits(&b.inputs));
        assert_eq!(bits(&a.valid), bits(&b.valid));
        assert_eq!(a.labels.len(), b.labels.len());
        for (x, y) in a.labels.iter().zip(&b.labels) {
            assert_eq!(bits(x), bits(y));
        }
    }
    f.rt.block_on(faulty.shutdown());
}

/// One asset down for good (every request for it answered 503, retries
/// spent): through burn's `DataLoader` trait, each error policy does what
/// its documentation says, the epoch goes on, and nothing else is lost.
#[test]
fn an_asset_down_for_good_under_each_error_policy_through_burns_dataloader() {
    let f = Fixture::new();
    let client = tilestack::stac::StacClient::new(&f.server.stac_url()).unwrap();
    let items =
        f.rt.block_on(client.search(&tilestack::stac::SearchRequest::new("sentinel-2-l2a")))
            .unwrap()
            .items;
    // B08 of every granule-B scene: the far-east sample's only scenes.
    let down: Vec<String> = items
        .iter()
        .filter(|it| {
            it.properties.additional_fields.get("tilestack:granule")
                == Some(&serde_json::json!("B"))
        })
        .map(|it| format!("/data/{}/B08.tif", it.id))
        .collect();
    assert!(!down.is_empty());
    let server =
        f.rt.block_on(WorldServer::start_with(
            small_world(),
            tilestack::demo::ServerOptions {
                down: down.clone(),
                ..tilestack::demo::ServerOptions::default()
            },
        ))
        .unwrap();
    let catalog = format!(
        "stac = {:?}\ncollection = \"sentinel-2-l2a\"",
        server.stac_url()
    );
    let mut pts = WEST.to_vec();
    pts.push(EAST);
    let run = |policy: ErrorPolicy| {
        let name = serde_json::to_value(policy).unwrap();
        let cfg = f.config(
            &pts,
            Some(&catalog),
            &format!("[loader]\nbatch_size = 2\nshuffle = false\nerrors = {name}"),
        );
        let ds = f.dataset(&cfg);
        let east = ds.samples().iter().position(|s| s.id == "p5").unwrap();
        let loader = StackDataLoader::new(ds, cfg.loader.clone(), &Device::default()).unwrap();
        let out: Vec<_> = loader.iter().collect();
        (east, out, loader.last_metrics().unwrap())
    };

    // fail: the batch holding the sample is an error naming it, the URL and
    // the status; the other batches come, whole.
    let (east, out, m) = run(ErrorPolicy::Fail);
    assert_eq!(out.len(), 3, "the epoch goes on past the error");
    let errs: Vec<String> = out
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains(&format!("sample {east}")), "{}", errs[0]);
    assert!(errs[0].contains("B08.tif"), "names the URL: {}", errs[0]);
    assert!(errs[0].contains("503"), "names the status: {}", errs[0]);
    let ok: usize = out.iter().flatten().map(|b| b.samples.len()).sum();
    assert_eq!(ok, 4, "the other batches are whole");
    assert_eq!(m.load_errors, 1, "{m}");

    // replace: the sample's row holds the next sample that loads, flagged.
    let (east, out, m) = run(ErrorPolicy::Replace);
    let batches: Vec<_> = out.into_iter().map(|b| b.unwrap()).collect();
    let rows: Vec<usize> = batches.iter().flat_map(|b| b.samples.clone()).collect();
    assert_eq!(rows.len(), 6, "every row filled");
    assert!(!rows.contains(&east));
    let flagged: Vec<_> = batches
        .iter()
        .flat_map(|b| b.status.iter())
        .filter_map(|s| match s {
            SampleStatus::Replaced { failed, error } => Some((*failed, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].0, east);
    assert!(flagged[0].1.contains("503"), "{}", flagged[0].1);
    assert_eq!(m.replaced, 1, "{m}");

    // nan: the row stays, invalid everywhere, flagged with the error.
    let (east, out, m) = run(ErrorPolicy::Nan);
    let batches: Vec<_> = out.into_iter().map(|b| b.unwrap()).collect();
    let (b, row) = batches
        .iter()
        .find_map(|b| b.samples.iter().position(|&s| s == east).map(|r| (b, r)))
        .unwrap();
    assert!(matches!(&b.status[row], SampleStatus::Failed { .. }));
    let valid = b.valid.clone().into_data();
    let valid = valid.as_slice::<f32>().unwrap();
    let px = 6 * 32 * 32;
    assert!(valid[row * px..][..px].iter().all(|v| *v == 0.0));
    assert!(valid.contains(&1.0), "the other rows have valid pixels");
    assert_eq!(m.failed, 1, "{m}");
    // only the asset that is down was refused
    let refused: Vec<_> = server
        .stats()
        .log()
        .into_iter()
        .filter(|l| l.status == 503)
        .map(|l| l.path)
        .collect();
    assert!(!refused.is_empty());
    assert!(refused.iter().all(|p| down.contains(p)), "{refused:?}");
}
