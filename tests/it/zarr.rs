//! Zarr window reads over HTTP Range on 127.0.0.1: equal to what Python's
//! zarr and xarray read from the same stores (tests/py/make_zarr_fixtures.py
//! wrote them and tests/fixtures/zarr/expected.json), only the chunks a
//! window needs fetched, cached and shared; hostile stores end in errors
//! naming store and array.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tilestack::HttpRangeClient;
use tilestack::cog::TileCache;
use tilestack::fetch::RetryConfig;
use tilestack::geo::PixelWindow;
use tilestack::zarr::ZarrReader;

type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zarr")
}

/// The fixture folder over HTTP on 127.0.0.1 (tower-http answers Range
/// requests), logging each request's path and Range header.
async fn serve() -> (String, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let app = axum::Router::new()
        .fallback_service(tower_http::services::ServeDir::new(fixtures()))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let l = l.clone();
                async move {
                    let range = req
                        .headers()
                        .get("range")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    l.lock()
                        .unwrap()
                        .push((req.uri().path().to_string(), range));
                    next.run(req).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

fn reader() -> ZarrReader {
    ZarrReader::new(
        HttpRangeClient::new(RetryConfig::default()).unwrap(),
        TileCache::new(64 << 20),
    )
}

fn expected() -> Vec<Value> {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

fn window(c: &Value) -> PixelWindow {
    let w: Vec<usize> = c["window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    PixelWindow::new(w[0], w[1], w[2], w[3])
}

/// Requests for chunk or shard data (not metadata documents).
fn data_requests(log: &Log) -> Vec<(String, Option<String>)> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| {
            let leaf = p.rsplit('/').next().unwrap_or("");
            !matches!(
                leaf,
                "zarr.json" | ".zarray" | ".zattrs" | ".zmetadata" | ".zgroup"
            )
        })
        .cloned()
        .collect()
}

/// Every window Python read: raw values equal (NaN where the array has no
/// data or the window leaves it); where xarray CF-decoded them, raw ×
/// scale_factor + add_offset equals its values and its NaNs.
#[tokio::test]
async fn windows_equal_python_zarr_and_xarray_over_http() {
    let (url, _) = serve().await;
    let r = reader();
    let cases = expected();
    assert!(cases.len() >= 15);
    let mut decoded = 0;
    for c in &cases {
        let href = format!(
            "{url}/{}/{}",
            c["store"].as_str().unwrap(),
            c["array"].as_str().unwrap()
        );
        let slice = c["slice"].as_u64().unwrap_or(0) as usize;
        let px = r
            .read_window(&href, slice, window(c))
            .await
            .unwrap_or_else(|e| panic!("{href}: {}", e.chain()));
        let raw = c["raw"].as_array().unwrap();
        assert_eq!(px.len(), raw.len(), "{href}");
        for (k, (got, want)) in px.iter().zip(raw).enumerate() {
            match want.as_f64() {
                Some(v) => assert_eq!(*got, v as f32, "{href} pixel {k}"),
                None => assert!(got.is_nan(), "{href} pixel {k}: {got}, want NaN"),
            }
        }
        if let Some(dec) = c.get("cf_decoded").and_then(Value::as_array) {
            decoded += 1;
            let cf = r.array(&href).await.unwrap().cf();
            assert!(
                cf.scale_factor.is_some() && cf.add_offset.is_some(),
                "{href}"
            );
            for (k, (got, want)) in px.iter().zip(dec).enumerate() {
                match want.as_f64() {
                    Some(v) => {
                        let mine = cf.apply(f64::from(*got));
                        assert!(
                            (mine - v).abs() < 1e-6,
                            "{href} pixel {k}: {mine} vs xarray {v}"
                        );
                    }
                    None => assert!(got.is_nan(), "{href} pixel {k}: xarray says NaN, got {got}"),
                }
            }
        }
    }
    assert!(decoded >= 9, "{decoded} CF-decoded windows");
}

#[tokio::test]
async fn a_window_fetches_only_its_chunks_once() {
    let (url, log) = serve().await;
    let r = reader();
    // v2: a window inside chunk (0, 0) of a 64² grid
    let b04 = format!("{url}/eopf_v2.zarr/measurements/reflectance/r10m/b04");
    r.array(&b04).await.unwrap();
    log.lock().unwrap().clear();
    r.read_window(&b04, 0, PixelWindow::new(10, 3, 20, 12))
        .await
        .unwrap();
    let reqs = data_requests(&log);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].0.ends_with("/r10m/b04/0.0"), "{reqs:?}");
    // a window across a chunk corner: the three chunks not cached yet
    log.lock().unwrap().clear();
    r.read_window(&b04, 0, PixelWindow::new(50, 50, 30, 28))
        .await
        .unwrap();
    let mut paths: Vec<String> = data_requests(&log).into_iter().map(|(p, _)| p).collect();
    paths.sort();
    let tail: Vec<&str> = paths
        .iter()
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(tail, ["0.1", "1.0", "1.1"]);
    log.lock().unwrap().clear();
    r.read_window(&b04, 0, PixelWindow::new(10, 3, 20, 12))
        .await
        .unwrap();
    assert!(
        data_requests(&log).is_empty(),
        "a cached chunk is not fetched again"
    );

    // v3: the shard index (a 1-byte read for the shard's size, then the
    // index at its end) and the one inner chunk, as Range requests
    let v3 = format!("{url}/geozarr_v3.zarr/measurements/reflectance/r10m/b04");
    r.array(&v3).await.unwrap();
    log.lock().unwrap().clear();
    r.read_window(&v3, 0, PixelWindow::new(10, 3, 20, 12))
        .await
        .unwrap();
    let reqs = data_requests(&log);
    assert!(
        reqs.iter()
            .all(|(p, r)| p.ends_with("/b04/c/0/0") && r.is_some()),
        "{reqs:?}"
    );
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    // shard 0/0 is 128² of 32² inner chunks: an inner chunk holds 2 KiB of samples
    let last = reqs[2].1.as_deref().unwrap();
    let (a, b) = last.trim_start_matches("bytes=").split_once('-').unwrap();
    let n: u64 = b.parse::<u64>().unwrap() + 1 - a.parse::<u64>().unwrap();
    assert!(n < 2048 + 64, "one inner chunk, {n} bytes ({last})");
    // another inner chunk of the same shard: its index is not read again
    log.lock().unwrap().clear();
    r.read_window(&v3, 0, PixelWindow::new(40, 40, 10, 10))
        .await
        .unwrap();
    assert_eq!(data_requests(&log).len(), 1);
    // a shard never written: one probe, nothing else, values are NaN (fill 0 = nodata)
    log.lock().unwrap().clear();
    let px = r
        .read_window(&v3, 0, PixelWindow::new(140, 140, 30, 30))
        .await
        .unwrap();
    assert!(px.iter().all(|v| v.is_nan()));
    assert_eq!(data_requests(&log).len(), 1);
}

#[tokio::test]
async fn concurrent_reads_of_a_chunk_share_one_fetch() {
    let (url, log) = serve().await;
    let r = reader();
    let b08 = format!("{url}/eopf_v2.zarr/measurements/reflectance/r10m/b08");
    r.array(&b08).await.unwrap();
    log.lock().unwrap().clear();
    let reads = (0..8).map(|i| {
        let r = r.clone();
        let b08 = b08.clone();
        tokio::spawn(async move { r.read_window(&b08, 0, PixelWindow::new(i, i, 16, 16)).await })
    });
    let out = futures::future::join_all(reads).await;
    for o in out {
        o.unwrap().unwrap();
    }
    assert_eq!(data_requests(&log).len(), 1);
    assert!(r.cache().bytes_used() >= 64 * 64 * 2);
}

#[tokio::test]
async fn georeference_over_http() {
    let (url, _) = serve().await;
    let r = reader();
    let g = r
        .georef(&format!(
            "{url}/eopf_v2.zarr/measurements/reflectance/r20m/b05"
        ))
        .await
        .unwrap();
    // x[0] = 399970 is the centre of a 20 m pixel: the corner is 399960
    assert_eq!(
        g.transform,
        tilestack::geo::GeoTransform::north_up(399960.0, 4200000.0, 20.0)
    );
    assert_eq!(g.epsg, Some(tilestack::Epsg::new(32610).unwrap()));
    let g = r
        .georef(&format!(
            "{url}/geozarr_v3.zarr/measurements/reflectance/r60m/b01"
        ))
        .await
        .unwrap();
    assert_eq!(
        g.transform,
        tilestack::geo::GeoTransform::north_up(399960.0, 4200000.0, 30.0)
    );
}

/// Each hostile store (tests/py/make_zarr_fixtures.py `make_hostile`) is an
/// error naming the store, the array and what is wrong: never a panic.
#[tokio::test]
async fn hostile_stores_are_errors_naming_store_and_array() {
    let (url, _) = serve().await;
    for (store, needle) in [
        ("truncated_chunk.zarr", "chunk 0.1"),
        ("broken_json.zarr", "not valid JSON"),
        ("grid_mismatch.zarr", "chunk grid"),
        ("huge.zarr", "limit"),
        ("unknown_codec_v2.zarr", "lzma_fancy"),
        ("unknown_codec_v3.zarr", "lzma_fancy"),
        ("unknown_dtype.zarr", "<c16"),
        ("bad_shard_index.zarr", "past the shard"),
        ("bad_shard_crc.zarr", "checksum"),
        ("shard_grid_mismatch.zarr", "do not tile"),
    ] {
        let r = reader();
        let href = format!("{url}/hostile/{store}/band");
        let e = r
            .read_window(&href, 0, PixelWindow::new(0, 0, 40, 40))
            .await
            .expect_err(store);
        let text = e.chain();
        assert!(
            matches!(e, tilestack::Error::Invalid { .. }),
            "{store}: {text}"
        );
        assert!(
            text.contains(store) && text.contains("array band") && text.contains(needle),
            "{store}: {text}"
        );
    }
}

/// `tilestack info` and `tilestack read` take a Zarr array href as they
/// take a GeoTIFF.
#[tokio::test(flavor = "multi_thread")]
async fn cli_info_and_read_a_zarr_array() {
    let (url, _) = serve().await;
    let case = expected()
        .into_iter()
        .find(|c| c["store"] == "eopf_v2.zarr" && c["array"] == "measurements/extra/cube")
        .unwrap();
    let href = format!("{url}/eopf_v2.zarr/measurements/extra/cube");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.safetensors");
    let w = window(&case);
    let (info, read) = tokio::task::spawn_blocking({
        let (href, out) = (href.clone(), out.clone());
        move || {
            let bin = env!("CARGO_BIN_EXE_tilestack");
            let info = std::process::Command::new(bin)
                .args(["info", "--json", &href.replace("/cube", "/aot_f32")])
                .output()
                .unwrap();
            let read = std::process::Command::new(bin)
                .args(["read", &href, "--window"])
                .arg(format!(
                    "{},{},{},{}",
                    w.col_off, w.row_off, w.width, w.height
                ))
                .args(["--bands", "3", "--out"])
                .arg(&out)
                .output()
                .unwrap();
            (info, read)
        }
    })
    .await
    .unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let v: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["shape"], serde_json::json!([190, 250]));
    assert_eq!(v["format"], "v2");
    assert_eq!(v["codecs"], serde_json::json!(["gzip"]));
    assert_eq!(v["crs"], "EPSG:32610");
    assert_eq!(
        v["transform"],
        serde_json::json!([399960.0, 10.0, 0.0, 4200000.0, 0.0, -10.0])
    );
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("data").unwrap();
    assert_eq!(t.shape(), &[1, w.height, w.width]);
    let got: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    for (g, want) in got.iter().zip(case["raw"].as_array().unwrap()) {
        match want.as_f64() {
            Some(v) => assert_eq!(*g, v as f32),
            None => assert!(g.is_nan()),
        }
    }
}

// ---- the demo world's Zarr stores through the stack pipeline ----

use tilestack::demo::WorldServer;
use tilestack::stac::{AssetFormat, CfUse};
use tilestack::stack::Fusion;
use tilestack::{BandName, Catalog, StackRequest, TileStack, build};

use crate::util::{cog_reader, day, small_zarr_world};

fn zarr_request(bands: &str) -> StackRequest {
    StackRequest::new(
        [-122.33, 37.81],
        BandName::parse_list(bands).unwrap(),
        day(1),
        day(31),
    )
    .unwrap()
}

/// Bit for bit, NaN for NaN (`rel` 0), or within `rel` of each other.
fn assert_same_stack(a: &TileStack, b: &TileStack, what: &str, rel: f32) {
    assert_eq!(a.data.shape(), b.data.shape(), "{what}: shape");
    assert_eq!(a.days, b.days, "{what}: days");
    assert_eq!(a.items, b.items, "{what}: items");
    let mut differ = 0usize;
    let mut first = None;
    for (k, (x, y)) in a.data.iter().zip(b.data.iter()).enumerate() {
        let close = rel > 0.0 && (x - y).abs() <= rel * x.abs().max(1.0);
        if x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()) && !close {
            differ += 1;
            first.get_or_insert((k, *x, *y));
        }
    }
    assert_eq!(differ, 0, "{what}: {differ} values differ, first {first:?}");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    assert_eq!(bits(&a.pct_nans), bits(&b.pct_nans), "{what}: pct_nans");
    assert_eq!(
        bits(&a.tile_cloud_fraction),
        bits(&b.tile_cloud_fraction),
        "{what}: cloud fraction"
    );
}

/// The stacks from the demo world's Zarr items (EOPF-like v2 with its CF
/// add_offset, sharded GeoZarr v3) equal the stacks from its COG items, bit
/// for bit: nearest (tiles sampled directly, two UTM zones warped),
/// bilinear (windows warped; v2 within 1e-6 there: its counts + 1000 blend
/// and round differently in an f32's last bit before the 1000 is taken
/// off), median fusion, harmonization off; bands asked by common name on
/// the Zarr items.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stacks_from_the_demo_worlds_zarr_items_equal_its_cog_stacks() {
    let world = small_zarr_world();
    assert!(world.has_zarr());
    let server = WorldServer::start(world).await.unwrap();
    let cat = |c: &str| Catalog::stac(&server.stac_url(), c).unwrap();
    let mut cases = Vec::new();
    let base = zarr_request("B04,B08,B11,SCL");
    cases.push(("nearest", base.clone()));
    let mut r = base.clone();
    r.resampling = tilestack::geo::Resampling::Bilinear;
    r.fuse = Fusion::Median;
    cases.push(("bilinear, median", r));
    let mut r = base.clone();
    r.epsg = Some(tilestack::Epsg::new(32611).unwrap());
    r.tile_size = 128;
    r.resolution = tilestack::Resolution::new(20.0).unwrap();
    // full resolution on both sides: the COGs' overviews have no Zarr copy
    r.use_overviews = false;
    cases.push(("another UTM zone at 20 m", r));
    for (what, req) in cases {
        let cog = build(&cat("sentinel-2-l2a"), &req, &cog_reader(), None)
            .await
            .unwrap_or_else(|e| panic!("{what}, COG: {}", e.chain()));
        assert!(cog.stack.data.iter().any(|v| !v.is_nan()), "{what}");
        for layout in ["zarr-v2", "zarr-v3"] {
            let reader = cog_reader();
            let z = build(
                &cat(&format!("sentinel-2-l2a-{layout}")),
                &req,
                &reader,
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{what}, {layout}: {}", e.chain()));
            assert!(
                z.plan
                    .reads
                    .iter()
                    .all(|r| matches!(r.format, AssetFormat::Zarr(_)) && r.href.contains(".zarr/")),
                "{what}, {layout}: every read is a Zarr read"
            );
            // v2 stores count + 1000: a bilinear blend of those, less
            // 1000, may round differently in the last bit of an f32
            let rel = if layout == "zarr-v2" && what.starts_with("bilinear") {
                1e-6
            } else {
                0.0
            };
            assert_same_stack(&cog.stack, &z.stack, &format!("{what}, {layout}"), rel);
            // the Zarr reads went through the COG reader's cache
            assert!(!reader.cache().is_empty(), "{what}, {layout}");
        }
    }
    // by common name (Sentinel-2 aliases) on the Zarr items; harmonization off
    let mut by_name = zarr_request("red,nir,swir16,SCL");
    by_name.harmonize = false;
    let mut by_id = zarr_request("B04,B08,B11,SCL");
    by_id.harmonize = false;
    let cog = build(&cat("sentinel-2-l2a"), &by_id, &cog_reader(), None)
        .await
        .unwrap();
    let v3 = build(
        &cat("sentinel-2-l2a-zarr-v3"),
        &by_name,
        &cog_reader(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        v3.plan.scenes[0].assets[&BandName::new("red").unwrap()].key,
        "b04"
    );
    assert_same_stack(
        &cog.stack,
        &v3.stack,
        "harmonization off, v3 by common name",
        0.0,
    );
    // v2 stores the counts + 1000 (CF add_offset -0.1): as stored without harmonization
    let v2 = build(
        &cat("sentinel-2-l2a-zarr-v2"),
        &by_name,
        &cog_reader(),
        None,
    )
    .await
    .unwrap();
    let red = &v2.plan.scenes[0].assets[&BandName::new("red").unwrap()];
    assert_eq!(red.format, AssetFormat::Zarr(CfUse::Sentinel2Counts));
    let (mut shifted, mut valid) = (0usize, 0usize);
    for (a, b) in cog
        .stack
        .data
        .iter()
        .zip(v2.stack.data.iter())
        .take(v2.stack.data.len())
    {
        if a.is_nan() {
            continue;
        }
        valid += 1;
        if (b - a - 1000.0).abs() < 1e-2 {
            shifted += 1;
        }
    }
    assert!(valid > 0 && shifted > 0, "{shifted} of {valid}");
}

/// A dry run of Zarr items reads the arrays' metadata (not a pixel): the
/// inner chunk size, the chunks under each window and the radiometry the
/// CF attributes give.
#[tokio::test]
async fn a_dry_run_of_zarr_items_reads_their_metadata() {
    let server = WorldServer::start(small_zarr_world()).await.unwrap();
    let req = zarr_request("B04,SCL");
    for (layout, chunk, dn) in [("zarr-v2", 128, Some(1000.0)), ("zarr-v3", 256, None)] {
        let cat = Catalog::stac(&server.stac_url(), &format!("sentinel-2-l2a-{layout}")).unwrap();
        let reader = cog_reader();
        let dry = tilestack::stack::dry_run(&cat, &req, Some(&reader))
            .await
            .unwrap_or_else(|e| panic!("{layout}: {}", e.chain()));
        assert!(!dry.reads.is_empty());
        assert_eq!(reader.cache().len(), 0, "{layout}: no pixel read");
        assert!(dry.fetched.headers > 0);
        for r in &dry.reads {
            assert!(r.tiles.unwrap_or(0) > 0, "{layout} {}", r.href);
            if r.band == "B04" {
                assert_eq!(r.tile_size, Some([chunk, chunk]), "{layout}");
                assert_eq!(r.dn_offset, dn, "{layout}");
                assert_eq!(r.scale_offset, None, "{layout}");
            }
        }
    }
}

/// Python's zarr and xarray read the demo world's stores
/// (tests/py/check_zarr_world.py checks every band of every scene against
/// its COG through rasterio, and the CF decoding and coordinates through
/// xarray); the windows it wrote read the same here over HTTP.
#[tokio::test]
async fn python_reads_the_demo_worlds_zarr_stores_as_tilestack_does() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import zarr, xarray, rasterio"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with zarr, xarray and rasterio is required: pip install -r tests/py/requirements.txt"
    );
    let world = small_zarr_world();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.json");
    let st = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_zarr_world.py"))
        .arg(world.dir())
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "check_zarr_world.py failed");
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        doc["checked"].as_u64(),
        Some(world.manifest().scenes.len() as u64 * 6)
    );
    let server = WorldServer::start(world).await.unwrap();
    let r = reader();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for c in cases {
        let href = format!(
            "{}/{}/{}",
            server.url(),
            c["store"].as_str().unwrap(),
            c["array"].as_str().unwrap()
        );
        let px = r
            .read_window(&href, 0, window(c))
            .await
            .unwrap_or_else(|e| panic!("{href}: {}", e.chain()));
        let want = c["raw"].as_array().unwrap();
        assert_eq!(px.len(), want.len(), "{href}");
        for (k, (got, want)) in px.iter().zip(want).enumerate() {
            match want.as_f64() {
                Some(v) => assert_eq!(*got, v as f32, "{href} pixel {k}"),
                None => assert!(got.is_nan(), "{href} pixel {k}: {got}, want NaN"),
            }
        }
    }
}
