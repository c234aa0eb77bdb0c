//! Several inputs per sample (`[[inputs]]`): each time rule against days
//! computed here by hand from the world's acquisitions, a two-input stack
//! against the single-input stacks side by side (bit for bit), the batch's
//! per-source tensors, and bad inputs named in their errors.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use tilestack::demo::WorldServer;
use tilestack::loader::BatchLoader;
use tilestack::{DatasetConfig, TileDataset, TileStack};

use crate::util::{python, python_script, small_world};

/// A place in the small world's western granule.
const PLACE: [f64; 2] = [-122.36, 37.81];

struct World {
    _rt: tokio::runtime::Runtime,
    server: WorldServer,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(WorldServer::start(small_world())).unwrap();
        World {
            _rt: rt,
            server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn catalog(&self) -> String {
        format!(
            "{{ stac = {:?}, collection = \"sentinel-2-l2a\" }}",
            self.server.stac_url()
        )
    }

    /// A config at `PLACE` over `range`: `body` holds the inputs.
    fn config(&self, name: &str, range: &str, body: &str) -> DatasetConfig {
        let text = format!(
            "seed = 1\n{body}\n[time]\nrange = {range:?}\n\
             [sampler]\nkind = \"points\"\nfile = \"points.csv\"\n\
             [loader]\nbatch_size = 1\nshuffle = false\n"
        );
        std::fs::write(
            self.dir.path().join("points.csv"),
            format!("lon,lat,id\n{},{},p0\n", PLACE[0], PLACE[1]),
        )
        .unwrap();
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        DatasetConfig::from_file(&path).unwrap()
    }

    /// A one-input config: `[catalog]` + `[stack]` of `stack` (TOML keys).
    fn single(&self, name: &str, range: &str, stack: &str) -> TileStack {
        let body = format!(
            "[catalog]\nstac = {:?}\ncollection = \"sentinel-2-l2a\"\n[stack]\ntile_size = 24\n{stack}",
            self.server.stac_url()
        );
        let cfg = self.config(name, range, &body);
        TileDataset::open(&cfg).unwrap().load_blocking(0).unwrap()
    }
}

fn bits(a: &ndarray::Array4<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

fn day(d: u32) -> NaiveDate {
    crate::util::day(d)
}

/// The rule written out again, independently: the acquisition day nearest
/// `step` within ±`n`, ties to the earlier.
fn nearest_by_hand(days: &[NaiveDate], step: NaiveDate, n: i64) -> Option<NaiveDate> {
    let mut best: Option<(i64, NaiveDate)> = None;
    for &d in days {
        let k = (d - step).num_days().abs();
        if k > n {
            continue;
        }
        best = match best {
            Some((bk, bd)) if bk < k || (bk == k && bd < d) => Some((bk, bd)),
            _ => Some((k, d)),
        };
    }
    best.map(|b| b.1)
}

#[test]
fn each_time_rule_puts_its_scenes_on_the_samples_days_as_computed_by_hand() {
    let w = World::new();
    let cat = w.catalog();
    let body = format!(
        r#"
[[inputs]]
name = "s2"
catalog = {cat}
stack = {{ bands = ["B04"], tile_size = 24 }}

[[inputs]]
name = "nir"
catalog = {cat}
stack = {{ bands = ["B08"] }}

[[inputs]]
name = "near1"
catalog = {cat}
stack = {{ bands = ["B04"] }}
time = {{ nearest = 1 }}

[[inputs]]
name = "near0"
catalog = {cat}
stack = {{ bands = ["B04"] }}
time = {{ nearest = 0 }}

[[inputs]]
name = "median"
catalog = {cat}
stack = {{ bands = ["B04"] }}
time = {{ composite = "median" }}

[[inputs]]
name = "still"
catalog = {cat}
stack = {{ bands = ["B04"] }}
time = "static"
"#
    );
    let cfg = w.config("multi", "2019-08-02/2019-08-10", &body);
    assert_eq!(
        cfg.input_names(),
        ["s2", "nir", "near1", "near0", "median", "still"]
    );
    let ds = TileDataset::open(&cfg).unwrap();
    let report = ds.report().to_string();
    assert!(
        report.contains("input \"near1\" (nearest ±1 d)"),
        "{report}"
    );
    let s2 = ds.load_blocking(0).unwrap();
    let inputs = ds.load_inputs_blocking(0).unwrap();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["nir", "near1", "near0", "median", "still"]);
    let steps: Vec<NaiveDate> = (2..=10).map(day).collect();
    assert_eq!(s2.days, steps);

    // daily: a two-input stack is the two single-input stacks side by side
    let alone_b04 = w.single("b04", "2019-08-02/2019-08-10", "bands = [\"B04\"]");
    let alone_b08 = w.single("b08", "2019-08-02/2019-08-10", "bands = [\"B08\"]");
    assert_eq!(bits(&s2.data), bits(&alone_b04.data), "the first input");
    let nir = &inputs[0];
    assert_eq!(
        bits(&nir.stack.data),
        bits(&alone_b08.data),
        "the daily input"
    );
    assert_eq!(nir.stack.items, alone_b08.items);
    assert_eq!(nir.stack.days, steps);
    let with_scene: Vec<bool> = s2.items.iter().map(|i| !i.is_empty()).collect();
    assert_eq!(nir.has_data, with_scene);

    // nearest: the acquisition days from ±1 day around the window, by hand
    let wide = w.single("wide", "2019-08-01/2019-08-11", "bands = [\"B04\"]");
    let acquired: Vec<NaiveDate> = wide
        .days
        .iter()
        .zip(&wide.items)
        .filter(|(_, i)| !i.is_empty())
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(
        acquired,
        [day(1), day(3), day(8), day(11)],
        "the recipe's days over the west"
    );
    let (mut ties, mut gaps) = (0, 0);
    for (input, n) in [(&inputs[1], 1), (&inputs[2], 0)] {
        assert_eq!(input.stack.days, steps);
        for (t, &step) in steps.iter().enumerate() {
            let want = nearest_by_hand(&acquired, step, n);
            let before = step.pred_opt().unwrap();
            let after = step.succ_opt().unwrap();
            if n == 1
                && acquired.contains(&before)
                && acquired.contains(&after)
                && !acquired.contains(&step)
            {
                ties += 1;
                assert_eq!(want, Some(before), "a tie goes to the earlier day");
            }
            match want {
                Some(d) => {
                    let k = wide.days.iter().position(|x| *x == d).unwrap();
                    assert!(input.has_data[t], "{} step {step}", input.name);
                    assert_eq!(
                        input.stack.items[t], wide.items[k],
                        "{} step {step}",
                        input.name
                    );
                    let got = input.stack.data.index_axis(ndarray::Axis(0), t);
                    let exp = wide.data.index_axis(ndarray::Axis(0), k);
                    assert!(
                        got.iter()
                            .zip(exp.iter())
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{} step {step}: the {d} scene's pixels",
                        input.name
                    );
                }
                None => {
                    gaps += 1;
                    assert!(!input.has_data[t], "{} step {step}: flagged", input.name);
                    assert!(input.stack.items[t].is_empty());
                    assert!(
                        input
                            .stack
                            .data
                            .index_axis(ndarray::Axis(0), t)
                            .iter()
                            .all(|v| v.is_nan())
                    );
                    assert_eq!(input.stack.pct_nans[t], 100.0);
                }
            }
        }
    }
    assert!(ties >= 1, "the window holds a tie (08-02: 08-01 or 08-03)");
    assert!(gaps >= 4, "nearest = 0 leaves gaps");

    // composite over the window: the one-step median of every scene
    let median = &inputs[3];
    assert!(median.rule.is_static());
    assert_eq!(median.stack.data.dim().0, 1);
    assert_eq!(median.stack.days, [day(2)]);
    let alone = w.single(
        "median",
        "2019-08-02/2019-08-10",
        "bands = [\"B04\"]\nfuse = \"median\"\ncadence = { days = 9 }",
    );
    assert_eq!(bits(&median.stack.data), bits(&alone.data));
    assert_eq!(median.stack.items, alone.items);
    assert!(median.has_data[0]);

    // static: every scene whatever its date, read once
    let still = &inputs[4];
    assert_eq!(still.stack.data.dim().0, 1);
    assert!(still.has_data[0]);
    assert!(
        still.stack.items[0].len() > median.stack.items[0].len(),
        "all dates"
    );
    let alone = w.single(
        "static",
        "1900-01-01/2199-12-31",
        "bands = [\"B04\"]\ncadence = { days = 109573 }",
    );
    assert_eq!(bits(&still.stack.data), bits(&alone.data));

    // the batch: per-source tensors beside the first input's
    let loader = BatchLoader::new(Arc::new(ds), cfg.loader.clone()).unwrap();
    let batch = loader.iter().unwrap().next().unwrap().unwrap();
    assert_eq!(batch.shape, [1, 9, 1, 24, 24]);
    assert_eq!(batch.sources.len(), 5);
    let near0 = batch.source("near0").unwrap();
    assert_eq!(near0.shape, [1, 9, 1, 24, 24]);
    let flags: Vec<f32> = inputs[2]
        .has_data
        .iter()
        .map(|&b| f32::from(u8::from(b)))
        .collect();
    assert_eq!(near0.has_data, flags);
    let still = batch.source("still").unwrap();
    assert_eq!(still.shape, [1, 1, 24, 24], "static: [B, C, H, W]");
    assert_eq!(batch.source("nir").unwrap().values.len(), 9 * 24 * 24);
    // a daily optical input's metadata: its own scenes' (the first input's here)
    let nir_b = batch.source("nir").unwrap();
    let f32_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        f32_bits(&nir_b.eo_cloud_cover),
        f32_bits(&batch.eo_cloud_cover)
    );
    assert_eq!(f32_bits(&nir_b.pct_nans), f32_bits(&nir.stack.pct_nans));
    assert!(nir_b.eo_cloud_cover.iter().any(|v| !v.is_nan()));
    let nir_values: Vec<f32> = nir
        .stack
        .data
        .iter()
        .map(|v| if v.is_nan() { 0.0 } else { *v })
        .collect();
    assert_eq!(batch.source("nir").unwrap().values, nir_values);
}

#[test]
fn a_single_raster_input_is_read_on_the_samples_grid_and_bad_inputs_are_named() {
    let w = World::new();
    let cat = w.catalog();
    // One scene's B04 COG, as a raster with no catalog: a static input
    // equal to the first input's step of that day (one scene: its mean is itself).
    let first = format!(
        "[[inputs]]\nname = \"s2\"\ncatalog = {cat}\nstack = {{ bands = [\"B04\"], tile_size = 24 }}\n"
    );
    let cfg = w.config("one", "2019-08-08/2019-08-08", &first);
    let ds = TileDataset::open(&cfg).unwrap();
    let s2 = ds.load_blocking(0).unwrap();
    let plan = ds.plan(0).unwrap();
    assert_eq!(plan.scenes.len(), 1);
    let href = plan.scenes[0].assets.values().next().unwrap().href.clone();
    let body = format!(
        "{first}\n[[inputs]]\nname = \"raster\"\nhref = {href:?}\nstack = {{ bands = [\"red\"] }}\ntime = \"static\"\n"
    );
    let cfg = w.config("raster", "2019-08-08/2019-08-08", &body);
    let ds = TileDataset::open(&cfg).unwrap();
    let got = ds.load_inputs_blocking(0).unwrap();
    assert_eq!(got[0].name, "raster");
    // the raster's own nodata may not be declared: s2's no data is NaN or 0 there
    for (a, b) in got[0].stack.data.iter().zip(s2.data.iter()) {
        assert!(
            a.to_bits() == b.to_bits() || (b.is_nan() && (a.is_nan() || *a == 0.0)),
            "{a} vs {b}"
        );
    }
    assert!(s2.data.iter().any(|v| !v.is_nan()));
    assert!(got[0].has_data[0]);

    // A raster without a CRS: its grid cannot be established.
    let tif = w.dir.path().join("nocrs.tif");
    let ok = std::process::Command::new(python())
        .args([
            "-c",
            "import sys, numpy, rasterio\n\
             with rasterio.open(sys.argv[1], 'w', driver='GTiff', width=8, height=8, count=1, dtype='uint8') as d:\n\
             \x20   d.write(numpy.ones((1, 8, 8), 'uint8'))",
            &tif.to_string_lossy(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let body = format!(
        "{first}\n[[inputs]]\nname = \"dem\"\nhref = \"nocrs.tif\"\nstack = {{ bands = [\"elevation\"] }}\ntime = \"static\"\n"
    );
    let cfg = w.config("nocrs", "2019-08-08/2019-08-08", &body);
    let e = TileDataset::open(&cfg).unwrap_err().chain();
    assert!(e.contains("inputs[1] \"dem\""), "{e}");
    assert!(e.contains("cannot be established"), "{e}");

    // An input with no scene: flagged steps (daily), an error (static),
    // each naming the input.
    let empty = w.dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"type": "FeatureCollection", "features": []}"#).unwrap();
    let body = format!(
        "{first}\n[[inputs]]\nname = \"s1\"\ncatalog = {{ snapshot = \"empty.json\" }}\nstack = {{ bands = [\"vv\"] }}\ntime = {{ nearest = 2 }}\n\
         [[inputs]]\nname = \"cover\"\ncatalog = {{ snapshot = \"empty.json\" }}\nstack = {{ bands = [\"map\"] }}\ntime = \"static\"\n"
    );
    let mut cfg = w.config("empty", "2019-08-08/2019-08-09", &body);
    // the loader's error policy (the config's) decides: nan keeps the row, flagged
    cfg.loader.errors = tilestack::dataset::ErrorPolicy::Nan;
    let ds = Arc::new(TileDataset::open(&cfg).unwrap());
    let report = ds.report().to_string();
    assert!(
        report.contains("input \"s1\" (nearest ±2 d): 0 scenes"),
        "{report}"
    );
    let e = ds.load_inputs_blocking(0).unwrap_err().chain();
    assert!(
        e.contains("inputs[2] \"cover\"") && e.contains("no scene"),
        "{e}"
    );
    let loader = BatchLoader::new(ds, cfg.loader.clone()).unwrap();
    let b = loader.iter().unwrap().next().unwrap().unwrap();
    assert!(
        matches!(&b.status[0], tilestack::loader::SampleStatus::Failed { error } if error.contains("cover"))
    );
    assert!(b.source("s1").unwrap().has_data.iter().all(|&v| v == 0.0));
}

/// Shards of three inputs (S2 daily, S1 nearest, the land cover static):
/// every input of every sample reads back from the shards bit for bit as
/// the online dataset loads it, the batches of both loaders are equal
/// (sources included), and Python sees the inputs' tensors in the shard.
#[test]
fn shards_of_several_inputs_replay_each_input_bit_for_bit() {
    let w = World::new();
    let cat = w.catalog();
    let world = small_world();
    let s1 = world.collection_like("sentinel-1-rtc").unwrap();
    let cover = world.collection_like("esa-worldcover").unwrap();
    let other = |c: &str| format!("{{ stac = {:?}, collection = {c:?} }}", w.server.stac_url());
    let body = format!(
        "[[inputs]]\nname = \"s2\"\ncatalog = {cat}\nstack = {{ bands = [\"B04\", \"B08\"], tile_size = 24 }}\n\
         [[inputs]]\nname = \"s1\"\ncatalog = {}\nstack = {{ bands = [\"vv\", \"vh\"], resampling = \"bilinear\" }}\ntime = {{ nearest = 0 }}\n\
         [[inputs]]\nname = \"cover\"\ncatalog = {}\nstack = {{ bands = [\"map\"], categorical = [\"map\"] }}\ntime = \"static\"\n",
        other(s1),
        other(cover)
    );
    w.config("three", "2019-08-12/2019-08-22", &body);
    // three places, one of them twice as far east
    std::fs::write(
        w.dir.path().join("points.csv"),
        format!(
            "lon,lat,id\n{},{},p0\n{},{},p1\n{},{},p2\n",
            PLACE[0],
            PLACE[1],
            PLACE[0] + 0.01,
            PLACE[1] - 0.005,
            PLACE[0] + 0.03,
            PLACE[1]
        ),
    )
    .unwrap();
    let cfg = DatasetConfig::from_file(&w.dir.path().join("three.toml")).unwrap();
    let ds = Arc::new(TileDataset::open(&cfg).unwrap());
    assert_eq!(ds.len(), 3);
    let out = w.dir.path().join("shards");
    let mut opts = tilestack::shard::MaterializeOptions::new(out.to_string_lossy());
    opts.shard_bytes = 40_000; // a few samples a shard: several shards
    let r = tilestack::shard::materialize(&cfg, &opts, &mut |_| {}).unwrap();
    assert_eq!(r.failed.len(), 0, "{r}");
    assert!(r.shards_written >= 2, "{r}");
    let shards = Arc::new(tilestack::ShardSet::open(&out.to_string_lossy()).unwrap());
    assert_eq!(shards.input_layouts(), ds.input_layouts());
    let names: Vec<&str> = shards
        .input_layouts()
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["s1", "cover"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut passes, mut gaps) = (0, 0);
    for i in 0..ds.len() {
        let online = ds.load_inputs_blocking(i).unwrap();
        let (_, _, replayed) = rt.block_on(shards.load_with_layers(i, None)).unwrap();
        assert_eq!(online.len(), 2);
        assert_eq!(replayed.len(), 2);
        for (a, b) in online.iter().zip(&replayed) {
            assert_eq!(a.name, b.name);
            assert_eq!(
                bits(&a.stack.data),
                bits(&b.stack.data),
                "{} of sample {i}",
                a.name
            );
            let f = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(f(&a.stack.eo_cloud_cover), f(&b.stack.eo_cloud_cover));
            assert_eq!(f(&a.stack.pct_nans), f(&b.stack.pct_nans));
            assert_eq!(
                f(&a.stack.tile_cloud_fraction),
                f(&b.stack.tile_cloud_fraction)
            );
            assert_eq!(
                (&a.stack.days, &a.stack.items, &a.stack.bands, &a.stack.grid),
                (&b.stack.days, &b.stack.items, &b.stack.bands, &b.stack.grid)
            );
            assert_eq!(
                (&a.has_data, &a.orbit_state, &a.platform),
                (&b.has_data, &b.orbit_state, &b.platform)
            );
            assert_eq!(a.rule, b.rule);
        }
        let s1 = &replayed[0];
        passes += s1.has_data.iter().filter(|&&h| h).count();
        gaps += s1.has_data.iter().filter(|&&h| !h).count();
        assert!(
            s1.orbit_state
                .iter()
                .zip(&s1.has_data)
                .all(|(o, &h)| h != o.is_empty())
        );
        assert_eq!(replayed[1].stack.data.dim(), (1, 1, 24, 24));
        assert!(
            replayed[1]
                .stack
                .data
                .iter()
                .all(|v| [10.0, 30.0, 50.0, 80.0].contains(v))
        );
    }
    assert!(passes > 0 && gaps > 0, "S1 passes {passes}, gaps {gaps}");

    // both loaders give the same batches, sources included
    let online = BatchLoader::new(ds.clone(), cfg.loader.clone()).unwrap();
    let offline = BatchLoader::from_shards(shards.clone(), cfg.loader.clone()).unwrap();
    let a: Vec<_> = online.iter().unwrap().map(|b| b.unwrap()).collect();
    let b: Vec<_> = offline.iter().unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(a.len(), 3);
    let f32_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.sources.len(), 2);
        for (p, q) in x.sources.iter().zip(&y.sources) {
            assert_eq!((&p.name, &p.shape, &p.bands), (&q.name, &q.shape, &q.bands));
            for (u, v) in [
                (&p.values, &q.values),
                (&p.valid, &q.valid),
                (&p.has_data, &q.has_data),
                (&p.eo_cloud_cover, &q.eo_cloud_cover),
                (&p.pct_nans, &q.pct_nans),
                (&p.tile_cloud_fraction, &q.tile_cloud_fraction),
            ] {
                assert_eq!(f32_bits(u), f32_bits(v), "{}", p.name);
            }
            assert_eq!((&p.orbit_state, &p.platform), (&q.orbit_state, &q.platform));
        }
        // S1 declares no cloud cover; a step without a pass has no data
        let s1 = &x.sources[0];
        assert!(s1.eo_cloud_cover.iter().all(|v| v.is_nan()));
        for (h, p) in s1.has_data.iter().zip(&s1.pct_nans) {
            assert!(*h == 1.0 || *p == 100.0, "{h} {p}");
        }
        let f = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(f(&x.inputs), f(&y.inputs));
    }

    // an input's own normalization (read-time: the same hash): (x − mean) / std, no data as its fill
    let mut normed = cfg.clone();
    let (mean, std) = ([0.05f32, 0.01], [0.1f32, 0.02]);
    normed.inputs[0].normalize = Some(tilestack::dataset::NormalizeConfig {
        mean: mean.to_vec(),
        std: std.to_vec(),
        fill: -9.0,
    });
    assert_eq!(
        tilestack::shard::config_hash(&normed),
        tilestack::shard::config_hash(&cfg)
    );
    let n_loader = BatchLoader::new(
        Arc::new(TileDataset::open(&normed).unwrap()),
        normed.loader.clone(),
    )
    .unwrap();
    let px = 24 * 24;
    for (raw, n) in a.iter().zip(n_loader.iter().unwrap()) {
        let n = n.unwrap();
        let (r, m) = (&raw.sources[0], &n.sources[0]);
        let t = r.has_data.len();
        for ti in 0..t {
            for c in 0..2 {
                for p in 0..px {
                    let (v, ok) = (r.values[(ti * 2 + c) * px + p], r.valid[ti * px + p]);
                    let want = if ok == 1.0 {
                        (v - mean[c]) / std[c]
                    } else {
                        -9.0
                    };
                    assert_eq!(m.values[(ti * 2 + c) * px + p].to_bits(), want.to_bits());
                }
            }
        }
        assert_eq!(m.valid, r.valid);
    }

    // Python: the inputs' tensors in the shards, against the Rust values
    let refs = w.dir.path().join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    for i in 0..shards.len() {
        let (s, _, inputs) = rt.block_on(shards.load_with_layers(i, None)).unwrap();
        s.write_safetensors(&refs.join(format!("{i}.safetensors")))
            .unwrap();
        for input in inputs {
            input
                .stack
                .write_safetensors(&refs.join(format!("{i}.{}.safetensors", input.name)))
                .unwrap();
        }
    }
    let text = crate::util::check_shards_in_python(&out, &refs);
    assert!(text.contains("ok 3 (inputs s1, cover)"), "{text}");
}

#[test]
fn configs_name_their_inputs_and_refuse_bad_ones_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| -> PathBuf {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let tail = "[time]\nrange = \"2019-08-01/2019-08-05\"\n[sampler]\nkind = \"random\"\n\
                bbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 2\n";
    let old = format!(
        "[catalog]\ndemo = \"oakland\"\ncollection = \"sentinel-2-l2a\"\n[stack]\nbands = [\"B04\"]\n{tail}"
    );
    let cfg = DatasetConfig::from_file(&write(&old)).unwrap();
    assert_eq!(cfg.input_names(), ["sentinel-2-l2a"]);
    let bad =
        |text: String| -> String { DatasetConfig::from_file(&write(&text)).unwrap_err().chain() };
    let e = bad(format!(
        "{old}[[inputs]]\nname = \"s1\"\ncatalog = {{ demo = \"oakland\" }}\nstack = {{ bands = [\"vv\"] }}\ntime = \"weekly\"\n"
    ));
    assert!(e.contains("weekly"), "{e}");
    // an input's signing is not dropped: a bad value is named, a good one signs
    let e = bad(format!(
        "{old}[[inputs]]\nname = \"s1\"\ncatalog = {{ demo = \"oakland\", sign = \"azure\" }}\nstack = {{ bands = [\"vv\"] }}\n"
    ));
    assert!(
        e.contains("inputs[1] \"s1\".catalog.sign") && e.contains("\"azure\""),
        "{e}"
    );
    let e = bad(format!(
        "{old}[[inputs]]\nname = \"s1\"\ncatalog = {{ demo = \"oakland\" }}\nstack = {{ bands = [\"vv\", \"vh\"] }}\nnormalize = {{ mean = [1.0], std = [1.0, 2.0] }}\n"
    ));
    assert!(
        e.contains("inputs[1] \"s1\".normalize") && e.contains("mean has 1 values and std 2"),
        "{e}"
    );
    let signed = DatasetConfig::from_file(&write(&format!(
        "{old}[[inputs]]\nname = \"s1\"\ncatalog = {{ demo = \"oakland\", sign = \"planetary-computer\" }}\nstack = {{ bands = [\"vv\"] }}\n"
    )))
    .unwrap();
    assert!(signed.signer().unwrap().is_some());
    assert!(cfg.signer().unwrap().is_none());
    // every resampling is accepted with a categorical band (the reader
    // keeps its classes: tests/it/warp.rs); an unknown one is refused
    let land_cover = |resampling: &str| {
        format!(
            "{old}[[inputs]]\nname = \"lc\"\ncatalog = {{ demo = \"oakland\" }}\nstack = {{ bands = [\"map\"], categorical = [\"map\"], resampling = {resampling:?} }}\n"
        )
    };
    for resampling in ["nearest", "mode", "bilinear", "average"] {
        DatasetConfig::from_file(&write(&land_cover(resampling))).unwrap();
    }
    let e = bad(land_cover("cubic"));
    assert!(e.contains("cubic") && e.contains("mode"), "{e}");
    let e = bad(format!(
        "{old}[[inputs]]\nname = \"dem\"\nhref = \"dem.tif\"\nstack = {{ bands = [\"elevation\"] }}\n"
    ));
    assert!(
        e.contains("inputs[1] \"dem\"") && e.contains("static"),
        "{e}"
    );
    let e = bad(format!(
        "{old}[[inputs]]\nname = \"sentinel-2-l2a\"\ncatalog = {{ demo = \"oakland\" }}\nstack = {{ bands = [\"B08\"] }}\n"
    ));
    assert!(e.contains("a name of its own"), "{e}");
    let e = bad(format!(
        "[[inputs]]\nname = \"s2\"\nhref = \"x.tif\"\nstack = {{ bands = [\"B04\"] }}\n{tail}"
    ));
    assert!(
        e.contains("inputs[0] \"s2\"") && e.contains("catalog"),
        "{e}"
    );
}

/// Raster label layers beside a GeoJSON one: the demo world's land cover
/// (WorldCover codes) as four classes, equal to GDAL's nearest warp of the
/// COG mapped by the same codes (tests/py/label_reference.py); the S2 scene
/// classification as a daily label, equal to the SCL band read as a band;
/// both through the loader, and bit for bit through shards.
#[test]
fn raster_labels_are_classes_on_the_samples_grid_as_gdal_warps_them() {
    let w = World::new();
    let world = small_world();
    let cover = world.collection_like("esa-worldcover").unwrap();
    let s2 = w.catalog();
    let stac = w.server.stac_url();
    let ships = world.ships_path();
    let body = format!(
        "[catalog]\nstac = {stac:?}\ncollection = \"sentinel-2-l2a\"\n\
         [stack]\nbands = [\"B04\"]\ntile_size = 24\n\
         [[labels]]\nname = \"ships\"\nfile = {ships:?}\n\
         [[labels]]\nname = \"cover\"\nraster = {{ catalog = {{ stac = {stac:?}, collection = {cover:?} }}, band = \"map\" }}\n\
         classes = [80, 50, 10, 30]\n\
         [[labels]]\nname = \"scl\"\nraster = {{ catalog = {s2}, band = \"SCL\", time = \"daily\" }}\n"
    );
    // at the port: quays, trees and grass in one tile
    let at_port = |name: &str, body: &str| {
        w.config(name, "2019-08-12/2019-08-16", body);
        std::fs::write(
            w.dir.path().join("points.csv"),
            "lon,lat,id\n-122.3225,37.8099,port\n",
        )
        .unwrap();
        DatasetConfig::from_file(&w.dir.path().join(format!("{name}.toml"))).unwrap()
    };
    let cfg = at_port("labels", &body);
    let ds = Arc::new(TileDataset::open(&cfg).unwrap());
    assert_eq!(ds.layout().labels, ["ships", "cover", "scl"]);
    let report = ds.report().to_string();
    assert!(
        report.contains("label \"cover\" (static): 1 scenes")
            && report.contains("label \"scl\" (daily)"),
        "{report}"
    );
    let loader = BatchLoader::new(ds.clone(), cfg.loader.clone()).unwrap();
    let batch = loader.iter().unwrap().next().unwrap().unwrap();
    assert_eq!(batch.label_names, ["ships", "cover", "scl"]);
    let [_, t, _, h, wd] = batch.shape;
    let px = h * wd;
    let stack = ds.load_blocking(0).unwrap();

    // the land cover: GDAL's nearest warp of the COG, codes → classes
    let (_, items) = world.other_collection(cover).unwrap();
    let cog = world.dir().join("items").join(&items[0].assets["map"].href);
    let g = stack.grid.transform.to_gdal();
    let stdout = python_script(
        "label_reference.py",
        [
            cog.display().to_string(),
            stack.grid.epsg.code().to_string(),
            g.map(|v| v.to_string()).join(","),
            wd.to_string(),
            h.to_string(),
            "80,50,10,30".into(),
        ],
    );
    let want: Vec<f32> = serde_json::from_slice::<Vec<u8>>(&stdout)
        .unwrap()
        .into_iter()
        .map(f32::from)
        .collect();
    assert_eq!(want.len(), px);
    let got = &batch.labels[1];
    for ti in 0..t {
        let differ = got[ti * px..][..px]
            .iter()
            .zip(&want)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differ, 0, "step {ti}: the static map on every step");
    }
    let classes: std::collections::BTreeSet<u32> = want.iter().map(|&v| v as u32).collect();
    assert!(
        classes.len() >= 2 && classes.iter().all(|&c| c < 4),
        "{classes:?}"
    );

    // the scene classification, daily: the SCL band as a one-input stack reads it
    let alone = at_port(
        "scl",
        &format!(
            "[catalog]\nstac = {stac:?}\ncollection = \"sentinel-2-l2a\"\n\
             [stack]\nbands = [\"SCL\"]\ntile_size = 24\nzero_is_nodata = false\n"
        ),
    );
    let scl = TileDataset::open(&alone).unwrap().load_blocking(0).unwrap();
    assert_eq!(scl.days.len(), t);
    let want: Vec<f32> = scl
        .data
        .iter()
        .map(|&v| if v.is_nan() { 255.0 } else { v })
        .collect();
    let differ = want
        .iter()
        .zip(&batch.labels[2])
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        (differ, want.len()),
        (0, batch.labels[2].len()),
        "SCL label pixels that differ"
    );
    assert!(
        want.contains(&255.0) && want.iter().any(|&v| v < 12.0),
        "days without a scene and with one"
    );

    // shards: the class layers bit for bit
    let out = w.dir.path().join("label-shards");
    let opts = tilestack::shard::MaterializeOptions::new(out.to_string_lossy());
    let r = tilestack::shard::materialize(&cfg, &opts, &mut |_| {}).unwrap();
    assert_eq!(r.failed.len(), 0, "{r}");
    let shards = Arc::new(tilestack::ShardSet::open(&out.to_string_lossy()).unwrap());
    let offline = BatchLoader::from_shards(shards, cfg.loader.clone()).unwrap();
    let b = offline.iter().unwrap().next().unwrap().unwrap();
    assert!(b.labels == batch.labels, "the shards' labels differ");
}

#[test]
fn raster_label_configs_are_checked_naming_the_layer() {
    let w = World::new();
    let cat = w.catalog();
    let base = format!(
        "[catalog]\nstac = {:?}\ncollection = \"sentinel-2-l2a\"\n[stack]\nbands = [\"B04\"]\ntile_size = 24\n",
        w.server.stac_url()
    );
    let cases = [
        (
            format!("[[masks]]\nname = \"m\"\nraster = {{ catalog = {cat}, band = \"SCL\" }}\n"),
            "masks \"m\"",
            "a raster goes in [[inputs]]",
        ),
        (
            format!("[[labels]]\nname = \"l\"\nfile = \"x.geojson\"\nraster = {{ catalog = {cat}, band = \"SCL\" }}\n"),
            "labels \"l\"",
            "exactly one of file (GeoJSON) and raster",
        ),
        (
            "[[labels]]\nname = \"l\"\nfile = \"x.geojson\"\nclasses = [1, 2]\n".to_string(),
            "labels \"l\"",
            "for raster layers",
        ),
        (
            format!("[[labels]]\nname = \"l\"\nraster = {{ catalog = {cat}, band = \"SCL\" }}\nclasses = [1]\nremap = {{ 1 = 0 }}\n"),
            "labels \"l\"",
            "classes or remap, not both",
        ),
        (
            format!("[[labels]]\nname = \"l\"\nraster = {{ catalog = {cat}, band = \"SCL\" }}\nremap = {{ water = 0 }}\n"),
            "labels \"l\"",
            "\"water\" is not a code",
        ),
        (
            format!("[[labels]]\nname = \"l\"\nraster = {{ catalog = {cat}, band = \"SCL\" }}\nclasses = [4, 5, 4]\n"),
            "labels \"l\"",
            "4 is listed twice",
        ),
        (
            "[[labels]]\nname = \"l\"\nraster = { href = \"x.tif\", band = \"map\", time = \"daily\" }\n".to_string(),
            "labels \"l\"",
            "a single raster (href) has no dates",
        ),
        (
            format!("[[labels]]\nname = \"l\"\nraster = {{ catalog = {cat}, band = \"SCL\", time = {{ composite = \"median\" }} }}\n"),
            "labels \"l\"",
            "a label map is static, daily or nearest",
        ),
    ];
    for (i, (layers, at, why)) in cases.iter().enumerate() {
        let path = w.dir.path().join(format!("bad{i}.toml"));
        std::fs::write(
            &path,
            format!(
                "{base}{layers}[time]\nrange = \"2019-08-12/2019-08-13\"\n\
                 [sampler]\nkind = \"points\"\nfile = \"points.csv\"\n"
            ),
        )
        .unwrap();
        let e = DatasetConfig::from_file(&path).unwrap_err().chain();
        assert!(e.contains(at) && e.contains(why), "case {i}: {e}");
    }
}
