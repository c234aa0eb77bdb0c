//! The `tilestack` binary: bad input exits non-zero with a one-line error naming the culprit.

use std::process::Command;

fn tilestack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tilestack"))
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn serve_rejects_a_folder_that_is_not_a_world() {
    let d = tempfile::tempdir().unwrap();
    let out = tilestack().arg("serve").arg(d.path()).output().unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains(&d.path().display().to_string()) && err.contains("not a tilestack world"),
        "{err}"
    );
}

#[test]
fn world_rejects_a_malformed_recipe() {
    let d = tempfile::tempdir().unwrap();
    let recipe = d.path().join("bad.toml");
    std::fs::write(&recipe, "name = \"x\"\nseed = \"not a number\"\n").unwrap();
    let out = tilestack()
        .args(["world", "--out"])
        .arg(d.path().join("w"))
        .arg("--recipe")
        .arg(&recipe)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("bad.toml") && err.contains("seed"), "{err}");
}

#[test]
fn search_rejects_a_bad_time_range() {
    let out = tilestack()
        .args([
            "search",
            "--stac",
            "http://127.0.0.1:9/",
            "--collection",
            "c",
        ])
        .args([
            "--centroid",
            "-122.33,37.81",
            "--time",
            "2019-08-30/2019-08-01",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("time range") && err.contains("2019-08-30/2019-08-01"),
        "{err}"
    );
}

#[test]
fn serve_then_search_and_save_a_snapshot() {
    use std::io::BufRead;
    let world = crate::util::small_world();
    let mut serve = tilestack()
        .arg("serve")
        .arg(world.dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(serve.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.strip_prefix("STAC API: ").unwrap().trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("items.json");
    let out = tilestack()
        .args(["search", "--stac", &url, "--collection", "sentinel-2-l2a"])
        .args([
            "--centroid",
            "-122.33,37.81",
            "--time",
            "2019-08-01/2019-08-30",
        ])
        .args(["--limit", "4", "--save"])
        .arg(&snap)
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("total: 16 items in 4 pages"), "{stdout}");
    assert!(stdout.contains("S2A_MSIL2A_20190813T185921_R013_T11SKB_20190813T000000"));
    assert!(stdout.contains("EPSG:32611"));
    let items = tilestack::stac::load_snapshot(&snap).unwrap();
    assert_eq!(items.len(), 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_reports_warm_stacks_without_requests_and_the_limit() {
    let world = crate::util::small_world();
    let server = tilestack::demo::WorldServer::start(world).await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let cents = d.path().join("centroids.txt");
    // the benchmarked centroid twice: both random stacks come from the cache
    std::fs::write(&cents, "-122.33,37.81\n# a comment\n-122.33,37.81\n").unwrap();
    let mut cmd = tilestack();
    cmd.args([
        "bench",
        "--stac",
        &server.url(),
        "--centroid",
        "-122.33,37.81",
    ])
    .args(["--bands", "B04,B08", "--time", "2019-08-01/2019-08-10"])
    .args(["--warm", "2", "--limit", "--centroids-file"])
    .arg(&cents);
    // blocking: the server keeps running on the other runtime threads
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["first"]["requests"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["warm_s"].as_array().unwrap().len(), 2, "{j}");
    assert_eq!(j["warm_requests"], 0, "{j}");
    assert_eq!(j["random"]["n"], 2, "{j}");
    assert_eq!(j["random"]["requests"], 0, "{j}");
    assert!(j["cache"]["hits"].as_u64().unwrap() > 0, "{j}");
    let lim = &j["limit"];
    let (bytes, fetched) = (
        lim["bytes"].as_u64().unwrap(),
        lim["fetched_bytes"].as_u64().unwrap(),
    );
    // the limit fetches what the client fetches: the tiles' bytes plus the
    // gaps under the coalescing gap that merged ranges span
    let ranges = lim["ranges"].as_u64().unwrap();
    assert!(
        bytes > 0
            && bytes <= fetched
            && fetched - bytes < ranges * tilestack::fetch::DEFAULT_COALESCE_GAP,
        "{lim}"
    );
    assert!(ranges <= lim["ranges_strict"].as_u64().unwrap(), "{lim}");
    assert!(
        lim["ranges"].as_u64().unwrap() <= lim["tiles"].as_u64().unwrap(),
        "{lim}"
    );
    // the stack's own tile bytes are the minimal ones (its requests add headers)
    assert!(j["first"]["bytes"].as_u64().unwrap() >= bytes, "{j}");
    assert!(lim["inflated_bytes"].as_u64().unwrap() > bytes, "{lim}");
    // the training-loop figure went with StackLoader (cargo bench --bench loader)
    assert!(j.get("loader").is_none(), "{j}");
}

#[test]
fn a_negative_resolution_is_named_with_its_value() {
    let out = tilestack()
        .args([
            "stack",
            "--stac",
            "http://127.0.0.1:9",
            "--centroid",
            "-122.33,37.81",
        ])
        .args([
            "--bands",
            "B04",
            "--time",
            "2019-08-01/2019-08-02",
            "--resolution",
            "-10",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--resolution") && err.contains("-10") && err.contains("> 0"),
        "{err}"
    );
}

#[test]
fn plot_of_a_stack_without_days_names_the_file_and_the_cause() {
    let d = tempfile::tempdir().unwrap();
    let grid = tilestack::geo::GridSpec::tile_around(
        tilestack::Epsg::utm_for(-122.33, 37.81),
        560_000.0,
        4_185_000.0,
        4,
        tilestack::Resolution::TEN_METRES,
    )
    .unwrap();
    let empty = tilestack::TileStack {
        data: ndarray::Array4::zeros((0, 3, 4, 4)),
        bands: vec!["B04".into(), "B03".into(), "B02".into()],
        days: vec![],
        eo_cloud_cover: vec![],
        pct_nans: vec![],
        tile_cloud_fraction: vec![],
        items: vec![],
        grid,
        read_errors: vec![],
    };
    let path = d.path().join("empty.safetensors");
    empty.write_safetensors(&path).unwrap();
    let out = tilestack()
        .arg("plot")
        .arg(&path)
        .arg("--out")
        .arg(d.path().join("days.png"))
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("empty.safetensors") && err.contains("no time step"),
        "{err}"
    );
}

#[test]
fn catalog_flags_are_checked_and_name_the_flag() {
    let d = tempfile::tempdir().unwrap();
    let snap = d.path().join("empty.json");
    std::fs::write(&snap, r#"{"type": "FeatureCollection", "features": []}"#).unwrap();
    let base = |extra: &[&str]| {
        let mut c = tilestack();
        c.args(["stack", "--dry-run", "--snapshot"])
            .arg(&snap)
            .args([
                "--centroid",
                "-122.33,37.81",
                "--time",
                "2019-08-01/2019-08-02",
            ])
            .args(extra);
        c.output().unwrap()
    };
    // dB of a band not in the stack
    let err = one_line_error(&base(&["--bands", "vv", "--decibels", "vh"]));
    assert!(err.contains("decibels") && err.contains("vh"), "{err}");
    // bits past 31
    let out = base(&[
        "--bands",
        "red",
        "--cloud-band",
        "qa_pixel",
        "--cloud-mask-bits",
        "3,40",
    ]);
    let err = one_line_error(&out);
    assert!(
        err.contains("cloud_mask_bits") && err.contains("40"),
        "{err}"
    );
    // the flags that are fine parse, and a dry run of no items says so
    let out = base(&[
        "--bands",
        "red,qa_pixel",
        "--cloud-band",
        "qa_pixel",
        "--cloud-bits",
        "1,3",
        "--cloud-mask-bits",
        "3",
        "--no-harmonize",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tilestack dataset` opens a config and reports it without reading a
/// pixel: the counts (the same as the library's report), the searches, the
/// scenes, the time and memory; `--json` says the same as one object.
#[test]
fn dataset_reports_a_config_without_reading_pixels() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(tilestack::demo::WorldServer::start(
            crate::util::small_world(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ds.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"grid\"\n[catalog]\nstac = {:?}\ncollection = \"sentinel-2-l2a\"\n\
             [stack]\nbands = [\"B04\"]\ntile_size = 16\n\
             [time]\nrange = \"2019-08-01/2019-08-30\"\nwindow_days = 10\n\
             [sampler]\nkind = \"grid\"\nbbox = [-122.40, 37.78, -122.20, 37.84]\nstride_m = 3000\n\
             [filters]\nmin_days_with_data = 3\n",
            server.stac_url()
        ),
    )
    .unwrap();
    let want = tilestack::TileDataset::open(&tilestack::DatasetConfig::from_file(&path).unwrap())
        .unwrap()
        .report()
        .clone();
    let reads_before = server.stats().data_requests();
    let out = tilestack()
        .args(["dataset", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with(&format!("dataset grid: {want}\n")),
        "{text}"
    );
    assert!(
        text.contains("shape [T, C, H, W] [10, 1, 16, 16]"),
        "{text}"
    );
    assert!(
        text.contains(&format!("3 searches, {} scenes held", want.scenes)),
        "{text}"
    );
    assert!(text.contains("MB resident"), "{text}");
    let out = tilestack()
        .args(["dataset", "--json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["candidates"], want.candidates);
    assert_eq!(v["kept"], want.kept);
    assert_eq!(v["searches"], 3);
    assert!(v["open_s"].as_f64().unwrap() > 0.0);
    // no COG was read
    assert_eq!(server.stats().data_requests(), reads_before);
    rt.block_on(server.shutdown());
}
