//! `dry_run` and `tilestack stack --dry-run` on the demo world: the same
//! days, items and shape as the real build, pixel bytes and requests that
//! equal what a cold build then fetches, and nothing but the search and the
//! COG headers fetched while planning.

use std::collections::HashSet;

use tilestack::demo::WorldServer;
use tilestack::stack::{DryRun, dry_run};
use tilestack::{BandName, Catalog, Resolution, StackRequest, build};

use crate::util::{cog_reader, day, small_world};

/// A dry run's numbers as `tests/py/dry_run_reference.py` derives them from
/// the small world's files with GDAL and PROJ, not with tilestack (its doc
/// says how): `python3 tests/py/dry_run_reference.py
/// target/test-worlds/oakland-small-*`, pasted as printed. They are the
/// world's: rerun the script when the recipe or the generator's bytes
/// change (`GENERATOR_VERSION`).
struct Reference {
    /// Items per day: the recipe's acquisitions of those days whose
    /// footprint meets the grid (day 11's granule B is cut by its swath
    /// edge to a sliver east of the grid).
    items_per_day: &'static [usize],
    /// Every read: item (`MMDD granule`), band, IFD, window `[col_off,
    /// row_off, width, height]`, tiles, bytes, requests; by item and band.
    reads: &'static [Read],
    /// Tiles, pixel bytes, pixel requests, header requests, header bytes.
    totals: (usize, u64, u64, u64, u64),
}

type Read = (
    &'static str,
    &'static str,
    usize,
    [usize; 4],
    usize,
    u64,
    u64,
);

/// A [`Read`] as a dry run's JSON gives it.
type ReadRow = (String, String, u64, [u64; 4], u64, u64, u64);

/// Oakland, B04 and B11 with SCL as cloud band, 1–12 August, 256 px at 10 m
/// from (557700, 4186220). B04's windows are the grid's 256 px plus a pixel
/// each side; the 20 m bands' 128 + 2; granule B's start at its west edge.
/// Header bytes: 8192 per B04 and B11 file, the whole of each SCL file
/// (shorter than 8 KiB).
const DAYS_1_TO_12: Reference = Reference {
    items_per_day: &[1, 0, 2, 0, 0, 1, 0, 1, 0, 0, 1, 0],
    #[rustfmt::skip]
    reads: &[
        ("0801 T10SEG", "B04", 0, [293, 219, 258, 258], 4, 369825, 2),
        ("0801 T10SEG", "B11", 0, [146, 109, 130, 130], 2, 136715, 1),
        ("0801 T10SEG", "SCL", 0, [146, 109, 130, 130], 2, 1735, 1),
        ("0803 T10SEG", "B04", 0, [293, 219, 258, 258], 4, 383269, 2),
        ("0803 T10SEG", "B11", 0, [146, 109, 130, 130], 2, 140075, 1),
        ("0803 T10SEG", "SCL", 0, [146, 109, 130, 130], 2, 1742, 1),
        ("0803 T10SFG", "B04", 0, [0, 333, 191, 258], 2, 189094, 2),
        ("0803 T10SFG", "B11", 0, [0, 166, 96, 130], 2, 153130, 2),
        ("0803 T10SFG", "SCL", 0, [0, 166, 96, 130], 2, 2666, 1),
        ("0806 T10SEG", "B04", 0, [293, 219, 258, 258], 4, 278241, 1),
        ("0806 T10SEG", "B11", 0, [146, 109, 130, 130], 2, 76673, 1),
        ("0806 T10SEG", "SCL", 0, [146, 109, 130, 130], 2, 1657, 1),
        ("0808 T10SEG", "B04", 0, [293, 219, 258, 258], 4, 274114, 2),
        ("0808 T10SEG", "B11", 0, [146, 109, 130, 130], 2, 111813, 1),
        ("0808 T10SEG", "SCL", 0, [146, 109, 130, 130], 2, 4058, 1),
        ("0811 T10SEG", "B04", 0, [293, 219, 258, 258], 4, 380506, 2),
        ("0811 T10SEG", "B11", 0, [146, 109, 130, 130], 2, 139034, 1),
        ("0811 T10SEG", "SCL", 0, [146, 109, 130, 130], 2, 1740, 1),
    ],
    totals: (46, 2_646_087, 24, 18, 127_631),
};

/// B04 for 1–3 August at 40 m, 64 px from (557720, 4186200): IFD 2 (the
/// 4× overview, 192 px, one tile), 64 px of grid plus a pixel each side.
const COARSE_DAYS_1_TO_3: Reference = Reference {
    items_per_day: &[1, 0, 2],
    #[rustfmt::skip]
    reads: &[
        ("0801 T10SEG", "B04", 2, [73, 54, 66, 67], 1, 42909, 1),
        ("0803 T10SEG", "B04", 2, [73, 54, 66, 67], 1, 46740, 1),
        ("0803 T10SFG", "B04", 2, [0, 83, 49, 66], 1, 52256, 1),
    ],
    totals: (3, 141_905, 3, 3, 24_576),
};

/// The CLI's B04,B03 for 1–5 August, 256 px at 10 m (six 8 KiB headers).
const CLI_DAYS_1_TO_5: Reference = Reference {
    items_per_day: &[1, 0, 2, 0, 0],
    #[rustfmt::skip]
    reads: &[
        ("0801 T10SEG", "B03", 0, [293, 219, 258, 258], 4, 371978, 2),
        ("0801 T10SEG", "B04", 0, [293, 219, 258, 258], 4, 369825, 2),
        ("0803 T10SEG", "B03", 0, [293, 219, 258, 258], 4, 383786, 2),
        ("0803 T10SEG", "B04", 0, [293, 219, 258, 258], 4, 383269, 2),
        ("0803 T10SFG", "B03", 0, [0, 333, 191, 258], 2, 189550, 2),
        ("0803 T10SFG", "B04", 0, [0, 333, 191, 258], 2, 189094, 2),
    ],
    totals: (20, 1_887_502, 12, 6, 49_152),
};

/// A dry run's JSON (the library's, serialized, or the CLI's) against the
/// reference: items per day, every read, the totals and the headers.
fn assert_reference(v: &serde_json::Value, want: &Reference) {
    let counts: Vec<u64> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_u64().unwrap())
        .collect();
    let want_counts: Vec<u64> = want.items_per_day.iter().map(|&n| n as u64).collect();
    assert_eq!(counts, want_counts, "items per day");
    let n = |x: &serde_json::Value| x.as_u64().unwrap_or_else(|| panic!("{x} is not a count"));
    let mut got: Vec<ReadRow> = v["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            // S2A_MSIL2A_20190803T185924_R013_T10SFG_20190803T000000 -> 0803 T10SFG
            let id: Vec<&str> = r["item"].as_str().unwrap().split('_').collect();
            let w = &r["window"];
            (
                format!("{} {}", &id[2][4..8], id[4]),
                r["band"].as_str().unwrap().to_string(),
                n(&r["ifd"]),
                [
                    n(&w["col_off"]),
                    n(&w["row_off"]),
                    n(&w["width"]),
                    n(&w["height"]),
                ],
                n(&r["tiles"]),
                n(&r["bytes"]),
                n(&r["requests"]),
            )
        })
        .collect();
    got.sort();
    let expected: Vec<ReadRow> = want
        .reads
        .iter()
        .map(|&(item, band, ifd, w, tiles, bytes, requests)| {
            (
                item.to_string(),
                band.to_string(),
                ifd as u64,
                w.map(|x| x as u64),
                tiles as u64,
                bytes,
                requests,
            )
        })
        .collect();
    assert_eq!(got, expected);
    let (t, f) = (&v["totals"], &v["fetched"]);
    assert_eq!(
        (
            n(&t["tiles"]),
            n(&t["estimated_bytes"]),
            n(&t["estimated_requests"]),
            n(&f["header_requests"]),
            n(&f["header_bytes"]),
        ),
        (
            want.totals.0 as u64,
            want.totals.1,
            want.totals.2,
            want.totals.3,
            want.totals.4
        ),
        "tiles, pixel bytes, pixel requests, header requests, header bytes"
    );
    // one file per read here, each header fetched once
    assert_eq!(n(&f["headers"]), want.reads.len() as u64);
    let items: usize = want.items_per_day.iter().sum();
    assert_eq!(
        (n(&t["scenes"]), n(&f["catalog_items"])),
        (items as u64, items as u64)
    );
}

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
    assert_eq!(dry.fetched.headers, hrefs.len());
    // one request per header: the first 8 KiB hold every IFD of the demo
    // COGs (tests/py/dry_run_reference.py checks it from GDAL's offsets)
    assert_eq!(dry.fetched.header_requests, hrefs.len() as u64);
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
    // every item the search returned is a scene of the plan
    assert_eq!(dry.fetched.catalog_items, Some(dry.scenes.len()));

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
    // Every scene × band: the asset it resolved to, its href, its IFD,
    // window, tiles, bytes and requests, as GDAL sees the files.
    assert_reference(&serde_json::to_value(&dry).unwrap(), &DAYS_1_TO_12);
    for r in &dry.reads {
        assert_eq!(r.asset, r.band, "the demo world keys assets by band");
        assert!(
            r.href
                .ends_with(&format!("/data/{}/{}.tif", r.item, r.band)),
            "{}",
            r.href
        );
        assert_eq!(r.tile_size, Some([256, 256]));
    }
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
    // 40 m from 10 m reads the 4× overview, IFD 2
    assert_reference(&serde_json::to_value(&dry).unwrap(), &COARSE_DAYS_1_TO_3);
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
    let keys: std::collections::BTreeSet<&str> =
        v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
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
        ]
        .into(),
        "the fields of DryRun, no more, no fewer: {stdout}"
    );
    assert_eq!(v["shape"], serde_json::json!([5, 2, 256, 256]));
    assert_eq!(v["grid"]["epsg"], 32610);
    assert_eq!(v["steps"][0]["start"], "2019-08-01");
    assert_eq!(v["totals"]["basis"], "tile byte counts");
    assert_reference(&v, &CLI_DAYS_1_TO_5);
    assert_eq!(
        server.stats().data_bytes(),
        CLI_DAYS_1_TO_5.totals.4,
        "only headers"
    );
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
