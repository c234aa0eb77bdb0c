//! `dry_run` and `tilestack stack --dry-run` on the demo world: the same
//! days, items and shape as the real build, pixel bytes and requests that
//! equal what a cold build then fetches, and nothing but the search and the
//! COG headers fetched while planning.

use std::collections::HashSet;

use tilestack::demo::WorldServer;
use tilestack::stack::{DryRun, dry_run};
use tilestack::{BandName, Catalog, Resolution, StackRequest, build};

use crate::util::{cog_reader, day, small_world};

fn oakland(bands: &str, last: u32) -> StackRequest {
    StackRequest::new(
        [-122.33, 37.81],
        BandName::parse_list(bands).unwrap(),
        day(1),
        day(last),
    )
    .unwrap()
}

/// Dry-runs `req` with headers through a fresh reader, checks that only the
/// headers were fetched (client metrics, tile cache, server log), then builds
/// the stack with another fresh reader and checks that the dry run named its
/// days, items and shape and predicted its fetches exactly.
async fn dry_run_then_build(server: &WorldServer, req: &StackRequest) -> DryRun {
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();

    // The dry run: search + headers, no pixel.
    server.stats().reset();
    let reader = cog_reader();
    let dry = dry_run(&cat, req, Some(&reader)).await.unwrap();
    let m = reader.client().metrics();
    let hrefs: HashSet<&str> = dry.reads.iter().map(|r| r.href.as_str()).collect();
    assert!(!hrefs.is_empty(), "the demo world has scenes in August");
    assert_eq!(dry.fetched.headers, hrefs.len());
    assert!(dry.fetched.header_requests >= hrefs.len() as u64);
    assert_eq!(
        (m.requests(), m.bytes()),
        (dry.fetched.header_requests, dry.fetched.header_bytes),
        "the client fetched exactly the headers the dry run reports"
    );
    assert_eq!(dry.fetched.pixel_bytes, 0);
    assert_eq!(
        (
            reader.cache().len(),
            reader.cache().metrics().cache_misses()
        ),
        (0, 0),
        "no tile was looked up or fetched"
    );
    let data: Vec<_> = server
        .stats()
        .log()
        .into_iter()
        .filter(|l| l.path.starts_with("/data"))
        .collect();
    assert_eq!(data.len() as u64, dry.fetched.header_requests);
    assert_eq!(
        data.iter().map(|l| l.bytes).sum::<u64>(),
        dry.fetched.header_bytes
    );
    // Header reads start at the top of the file: nothing else was asked for.
    let header_hrefs: HashSet<String> = data
        .iter()
        .filter(|l| {
            l.range
                .as_deref()
                .is_some_and(|r| r.starts_with("bytes=0-"))
        })
        .map(|l| l.path.clone())
        .collect();
    assert_eq!(header_hrefs.len(), hrefs.len());
    assert!(dry.fetched.catalog_items.is_some_and(|n| n > 0));

    // The real build, cold.
    let cold = cog_reader();
    let built = build(&cat, req, &cold, None).await.unwrap();
    let st = &built.stack;
    assert_eq!(&dry.shape[..], st.data.shape());
    assert_eq!(dry.steps.len(), st.days.len());
    for (i, step) in dry.steps.iter().enumerate() {
        assert_eq!(step.start, st.days[i]);
        assert_eq!(step.items, st.items[i], "items of {}", step.start);
        assert_eq!(step.count, st.items[i].len());
    }
    let scenes: Vec<&str> = built.plan.scenes.iter().map(|s| s.id.as_str()).collect();
    let dry_scenes: Vec<&str> = dry.scenes.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(dry_scenes, scenes);
    assert_eq!(
        (dry.totals.scenes, dry.totals.windows),
        (built.plan.scenes.len(), built.plan.reads.len())
    );
    assert_eq!(dry.totals.basis, "tile byte counts");
    // Exact, not a bound: the same headers (same readahead), then per window
    // the same tiles from the same byte counts, merged by the same coalesce
    // rule and gap; loopback, so no retries.
    let cm = cold.client().metrics();
    assert_eq!(
        cm.bytes(),
        dry.fetched.header_bytes + dry.totals.estimated_bytes,
        "build bytes = header bytes + the dry run's pixel bytes"
    );
    assert_eq!(
        Some(cm.requests()),
        dry.totals
            .estimated_requests
            .map(|r| r + dry.fetched.header_requests),
        "build requests = header requests + the dry run's pixel requests"
    );
    assert_eq!(
        Some(cold.cache().metrics().cache_misses() as usize),
        dry.totals.tiles,
        "every tile the build looked up first, and only those"
    );
    assert_eq!(
        dry.reads.iter().filter_map(|r| r.tiles).sum::<usize>(),
        dry.totals.tiles.unwrap_or_default(),
        "no two reads share a tile in the demo world"
    );
    assert!(dry.totals.estimated_bytes > 0);
    dry
}

#[tokio::test]
async fn dry_run_predicts_the_build_and_fetches_only_headers() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let mut req = oakland("B04,B11", 12);
    req.cloud_band = Some(BandName::new("SCL").unwrap());
    let dry = dry_run_then_build(&server, &req).await;
    server.shutdown().await;
    assert_eq!(dry.bands, ["B04", "B11"]);
    assert_eq!(dry.read_bands, ["B04", "B11", "SCL"]);
    assert_eq!(dry.grid.epsg.code(), 32610);
    assert_eq!((dry.grid.width, dry.grid.height), (256, 256));
    assert_eq!(dry.grid.resolution, 10.0);
    assert_eq!(
        (dry.grid.transform.x0, dry.grid.transform.y0),
        (557_700.0, 4_186_220.0)
    );
    assert_eq!(dry.steps.len(), 12);
    assert!(
        dry.steps.iter().any(|s| s.count == 0),
        "some days are empty"
    );
    assert!(dry.steps.iter().any(|s| s.count > 0));
    // Every scene × band: the asset it resolved to, its href, full
    // resolution at 10 m, a window inside the 768 px scene.
    for r in &dry.reads {
        assert_eq!(r.asset, r.band, "the demo world keys assets by band");
        assert!(r.href.ends_with(&format!("/{}.tif", r.band)), "{}", r.href);
        assert_eq!(r.ifd, Some(0));
        assert!(r.window.col_end() <= 768 && r.window.row_end() <= 768);
        assert_eq!(r.tile_size, Some([256, 256]));
        assert!(r.tiles.is_some_and(|t| t >= 1) && r.requests.is_some_and(|q| q >= 1));
    }
    // B11 is 20 m: its windows are about half as wide as B04's (each padded
    // by a pixel or so at its own resolution).
    let w = |band: &str| {
        dry.reads
            .iter()
            .find(|r| r.band == band)
            .map(|r| r.window.width)
            .unwrap()
    };
    assert!(
        (2 * w("B11")).abs_diff(w("B04")) <= 4,
        "B04 {} px, B11 {} px",
        w("B04"),
        w("B11")
    );
    for s in &dry.scenes {
        assert_eq!(s.assets.len(), 3);
        assert_eq!(s.assets["SCL"], "SCL");
    }
}

#[tokio::test]
async fn coarse_dry_runs_name_the_overview_they_read() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let mut req = oakland("B04", 3);
    req.resolution = Resolution::new(40.0).unwrap();
    req.tile_size = 64;
    let dry = dry_run_then_build(&server, &req).await;
    assert!(
        dry.reads.iter().all(|r| r.ifd.is_some_and(|i| i > 0)),
        "40 m from 10 m reads overviews: {:?}",
        dry.reads.iter().map(|r| r.ifd).collect::<Vec<_>>()
    );
    // Without headers the overview is unknown and nothing is fetched.
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    server.stats().reset();
    let offline = dry_run(&cat, &req, None).await.unwrap();
    assert_eq!(server.stats().data_requests(), 0);
    server.shutdown().await;
    assert!(
        offline
            .reads
            .iter()
            .all(|r| r.ifd.is_none() && r.tiles.is_none())
    );
    assert_eq!(
        (offline.fetched.headers, offline.totals.basis.as_str()),
        (0, "heuristic")
    );
    assert_eq!(offline.steps, dry.steps);
}

#[tokio::test]
async fn the_cli_prints_the_dry_run_as_json_and_writes_nothing() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let stack_out = out.path().join("stack");
    let run = |extra: Vec<String>| {
        let (url, stack_out) = (server.stac_url(), stack_out.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tilestack"))
                .args(["stack", "--stac", &url, "--centroid", "-122.33,37.81"])
                .args(["--bands", "B04,B03", "--time", "2019-08-01/2019-08-05"])
                .arg("--out")
                .arg(&stack_out)
                .arg("--dry-run")
                .args(extra)
                .output()
                .unwrap()
        })
    };
    server.stats().reset();
    let o = run(Vec::new()).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(stdout.starts_with("{\n  \""), "pretty JSON: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "shape",
        "bands",
        "read_bands",
        "grid",
        "steps",
        "scenes",
        "reads",
        "totals",
        "fetched",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {stdout}");
    }
    assert_eq!(v["shape"], serde_json::json!([5, 2, 256, 256]));
    assert_eq!(v["grid"]["epsg"], 32610);
    assert_eq!(v["steps"][0]["start"], "2019-08-01");
    assert_eq!(v["totals"]["basis"], "tile byte counts");
    let header_bytes = v["fetched"]["header_bytes"].as_u64().unwrap();
    assert!(header_bytes > 0);
    assert_eq!(server.stats().data_bytes(), header_bytes, "only headers");
    assert_eq!(v["fetched"]["pixel_bytes"], 0);
    assert!(
        !stack_out.exists(),
        "--dry-run wrote {}",
        stack_out.display()
    );

    // With a mask: one more band, last, named "mask"; nothing more read.
    let mask = small_world()
        .terminals_path()
        .to_string_lossy()
        .into_owned();
    let o = run(vec!["--no-headers".into(), "--mask".into(), mask])
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["shape"], serde_json::json!([5, 3, 256, 256]));
    assert_eq!(m["bands"], serde_json::json!(["B04", "B03", "mask"]));

    server.stats().reset();
    let o = run(vec!["--no-headers".into()]).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["fetched"]["headers"], 0);
    assert_eq!(v["totals"]["basis"], "heuristic");
    assert_eq!(server.stats().data_requests(), 0, "not even headers");
    assert!(!stack_out.exists());
    server.shutdown().await;
}
