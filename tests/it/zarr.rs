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

use crate::util::{cog_reader, day, small_zarr_world, write_points};

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

// ---- real EOPF metadata (tests/fixtures/zarr/real, see its PROVENANCE.md) ----

use tilestack::zarr::{Consolidated, DataType, GeoSource};

const L2A: &str = "S2A_MSIL2A_20251008T100041_N0511_R122_T32TQM_20251008T122613.zarr";
const L1C: &str = "S2B_MSIL1C_20250113T103309_N0511_R108_T32TLQ_20250113T122458.zarr";
const GEOZARR: &str = "geozarr-S2A_MSIL2A_20251008T100041_N0511_R122_T32TQM_20251008T122613.zarr";
const EOPF_ITEM: &str =
    "eopf-item-S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515.json";
const EXPLORER_ITEM: &str =
    "explorer-item-S2A_MSIL2A_20250831T103701_N0511_R008_T31TFL_20250831T145420.json";

fn real(name: &str) -> PathBuf {
    fixtures().join("real").join(name)
}

/// The real products' consolidated metadata parses into the arrays the
/// documents declare: shapes, chunk grids (5490/5490/1830 in the L2A
/// product, 1830/915/305 in the L1C one), uint16 counts with fill 0 and CF
/// scale 0.0001 / offset −0.1, Blosc, `y`/`x` dimensions and int64
/// coordinate arrays; SCL uint8; the GeoZarr conversion's float32 bands,
/// sharded in 244² / 183² inner chunks.
#[test]
fn real_eopf_metadata_parses() {
    let store = "http://h/p.zarr";
    for (file, chunks) in [(L2A, [5490, 5490, 1830]), (L1C, [1830, 915, 305])] {
        let c = Consolidated::from_v2(
            store,
            &std::fs::read(real(file).join(".zmetadata")).unwrap(),
        )
        .unwrap();
        for ((res, side), chunk) in [("r10m", 10980), ("r20m", 5490), ("r60m", 1830)]
            .into_iter()
            .zip(chunks)
        {
            // L1C keeps each band at its own resolution only
            let band = match res {
                "r10m" => "b04",
                "r20m" => "b05",
                _ => "b01",
            };
            let path = format!("measurements/reflectance/{res}/{band}");
            let m = c
                .array(store, &path)
                .unwrap_or_else(|e| panic!("{file} {path}: {e}"))
                .unwrap_or_else(|| panic!("{file} {path}: missing"));
            assert_eq!(m.shape, [side, side], "{file} {path}");
            assert_eq!(m.chunk_shape, [chunk, chunk], "{file} {path}");
            assert_eq!(m.dtype, DataType::U16, "{file} {path}");
            assert_eq!(m.fill_value, 0.0);
            assert_eq!(m.pipeline.codecs, [tilestack::zarr::BytesCodec::Blosc]);
            assert_eq!(
                m.dimension_names,
                [Some("y".to_string()), Some("x".to_string())]
            );
            assert_eq!(m.chunk_key(&[1, 0]), "1.0");
            let cf = m.cf();
            assert_eq!(cf.scale_factor, Some(0.0001), "{file} {path}");
            assert_eq!(cf.add_offset, Some(-0.1), "{file} {path}");
            assert_eq!(cf.nodata, Some(0.0), "{file} {path}");
            for axis in ["x", "y"] {
                let a = c
                    .array(store, &format!("measurements/reflectance/{res}/{axis}"))
                    .unwrap()
                    .unwrap();
                assert_eq!((a.shape.as_slice(), a.dtype), (&[side][..], DataType::I64));
            }
        }
    }
    let c = Consolidated::from_v2(store, &std::fs::read(real(L2A).join(".zmetadata")).unwrap())
        .unwrap();
    let scl = c
        .array(store, "conditions/mask/l2a_classification/r20m/scl")
        .unwrap()
        .unwrap();
    assert_eq!(
        (scl.dtype, scl.shape.as_slice()),
        (DataType::U8, &[5490, 5490][..])
    );
    assert_eq!(
        scl.cf().nodata,
        Some(0.0),
        "fill_value null: 0 for integers"
    );
    // the GeoZarr (v3) conversion
    let root: Value =
        serde_json::from_slice(&std::fs::read(real(GEOZARR).join("zarr.json")).unwrap()).unwrap();
    let c = Consolidated::from_v3_root(&root);
    for (res, side, inner) in [
        ("r10m", 10980, 244),
        ("r20m", 5490, 183),
        ("r60m", 1830, 183),
    ] {
        let m = c
            .array(store, &format!("measurements/reflectance/{res}/b04"))
            .unwrap()
            .unwrap();
        assert_eq!(m.dtype, DataType::F32, "{res}");
        assert_eq!(m.shape, [side, side]);
        assert_eq!(m.chunk_shape, [side, side], "{res}: one shard");
        assert_eq!(m.read_chunk_shape(), [inner, inner], "{res}");
        assert!(m.fill_value.is_nan());
        assert_eq!(m.chunk_key(&[0, 0]), "c/0/0");
        let cf = m.cf();
        assert_eq!(
            (cf.scale_factor, cf.add_offset),
            (None, None),
            "{res}: CF decoded"
        );
    }
}

/// Over HTTP on 127.0.0.1, the stores' metadata alone (no chunk fetched)
/// georeferences each band where the documents put it: EPSG:32632 and the
/// `proj:transform` attribute, pixel corners at (699960, 4700040) for the
/// L2A tile and (300000, 5000040) for the L1C one, 10 / 20 / 60 m, and the
/// array shapes 10980² / 5490² / 1830² (the bounds are the `proj:bbox`
/// the documents declare). The GeoZarr overviews' stale 60 m transform is
/// not taken for a 915² or 152² array: an error naming it (their
/// coordinate arrays hold no data here).
#[tokio::test]
async fn real_eopf_stores_georeference_from_their_metadata() {
    let (url, log) = serve().await;
    let r = reader();
    for (file, x0, y0) in [(L2A, 699960.0, 4700040.0), (L1C, 300000.0, 5000040.0)] {
        for (res, px, side) in [
            ("r10m", 10.0, 10980u64),
            ("r20m", 20.0, 5490),
            ("r60m", 60.0, 1830),
        ] {
            let band = match res {
                "r10m" => "b04",
                "r20m" => "b05",
                _ => "b01",
            };
            let href = format!("{url}/real/{file}/measurements/reflectance/{res}/{band}");
            let g = r
                .georef(&href)
                .await
                .unwrap_or_else(|e| panic!("{href}: {}", e.chain()));
            assert_eq!(g.epsg.map(|e| e.code()), Some(32632), "{href}");
            assert_eq!(g.source, GeoSource::TransformAttribute, "{href}");
            assert_eq!(
                g.transform,
                tilestack::geo::GeoTransform::north_up(x0, y0, px),
                "{href}"
            );
            let m = r.array(&href).await.unwrap();
            assert_eq!(m.shape, [side, side], "{href}");
            // the proj:bbox of the documents: 109.8 km square
            assert_eq!(x0 + side as f64 * px, x0 + 109800.0);
            assert_eq!(y0 - side as f64 * px, y0 - 109800.0);
        }
    }
    let scl = format!("{url}/real/{L2A}/conditions/mask/l2a_classification/r20m/scl");
    let g = r.georef(&scl).await.unwrap();
    assert_eq!(
        g.transform,
        tilestack::geo::GeoTransform::north_up(699960.0, 4700040.0, 20.0)
    );
    assert!(
        data_requests(&log).is_empty(),
        "metadata only: {:?}",
        data_requests(&log)
    );
    // GeoZarr: the full-resolution levels from their attributes ...
    let b04 = |res: &str| format!("{url}/real/{GEOZARR}/measurements/reflectance/{res}/b04");
    let g = r.georef(&b04("r10m")).await.unwrap();
    assert_eq!(g.epsg.map(|e| e.code()), Some(32632));
    assert_eq!(
        g.transform,
        tilestack::geo::GeoTransform::north_up(699960.0, 4700040.0, 10.0)
    );
    // ... the overviews' copied 60 m transform is not theirs
    for (res, side) in [("r120m", 915), ("r720m", 152)] {
        let e = r.georef(&b04(res)).await.unwrap_err().to_string();
        assert!(
            e.contains("stale")
                && e.contains("[1830, 1830]")
                && e.contains(&format!("[{side}, {side}]")),
            "{res}: {e}"
        );
    }
}

/// `tilestack stack --dry-run --no-headers` on the real items: the EOPF
/// Explorer item plans its SCL and AOT assets from the grids it declares
/// (EPSG:32631, nothing fetched); the EOPF Sample Service item declares no
/// grid (its proj:bbox is in degrees), which is an error naming the item and
/// the asset and saying where the grid is, not a grid made of degrees.
#[test]
fn real_eopf_items_plan_with_no_headers() {
    let run = |file: &str, centroid: &str, bands: &str, time: &str| {
        let v: Value = serde_json::from_slice(&std::fs::read(real(file)).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("items.json");
        let fc = serde_json::json!({"type": "FeatureCollection", "features": [v]});
        std::fs::write(&snap, fc.to_string()).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_tilestack"))
            .args(["stack", "--snapshot"])
            .arg(&snap)
            .args(["--centroid", centroid, "--bands", bands, "--time", time])
            .arg("--out")
            .arg(dir.path().join("s"))
            .args(["--dry-run", "--no-headers"])
            .output()
            .unwrap();
        (
            o.status.success(),
            o.stdout,
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // the T31TFL grid: x 600000…709800, y 4990200…5100000 (EPSG:32631);
    // 4.98417 E 45.54146 N is the item's proj:centroid
    let (ok, out, err) = run(
        EXPLORER_ITEM,
        "4.98417,45.54146",
        "SCL_20m,AOT_10m",
        "2025-08-31/2025-08-31",
    );
    assert!(ok, "{err}");
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["fetched"]["headers"], 0);
    assert_eq!(v["grid"]["epsg"], 32631);
    let reads = v["reads"].as_array().unwrap();
    assert_eq!(reads.len(), 2, "{v}");
    for r in reads {
        let (side, res) = if r["asset"] == "SCL_20m" {
            (5490, 20.0)
        } else {
            (10980, 10.0)
        };
        let w = &r["window"];
        let (c0, r0) = (
            w["col_off"].as_u64().unwrap(),
            w["row_off"].as_u64().unwrap(),
        );
        let (cw, rh) = (w["width"].as_u64().unwrap(), w["height"].as_u64().unwrap());
        assert!(c0 + cw <= side && r0 + rh <= side, "{r}");
        // the output grid's corner, seen on the asset's grid
        let gx = v["grid"]["bounds"][0].as_f64().unwrap();
        let gy = v["grid"]["bounds"][3].as_f64().unwrap();
        let col = (gx - 600000.0) / res;
        let row = (5100000.0 - gy) / res;
        assert!(
            (c0 as f64 - col).abs() <= 2.0 && (r0 as f64 - row).abs() <= 2.0,
            "{r} vs ({col}, {row})"
        );
    }
    // the Sample Service item: no grid in it
    let (ok, _, err) = run(EOPF_ITEM, "9.6922,44.6568", "B04", "2025-11-13/2025-11-13");
    assert!(!ok);
    assert!(
        err.contains("S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515")
            && err.contains("B04_10m")
            && err.contains("degrees")
            && err.contains("store's metadata"),
        "{err}"
    );
}

/// `items` as EOPF's Sample Service publishes its items: no
/// `proj:transform`/`proj:shape` (item or asset), `proj:bbox` in degrees
/// (the item's bbox), `proj:code` kept.
fn without_grids(items: &[stac::Item]) -> Vec<stac::Item> {
    items
        .iter()
        .map(|it| {
            let mut v = serde_json::to_value(it).unwrap();
            let bbox = v["bbox"].clone();
            let props = v["properties"].as_object_mut().unwrap();
            for k in ["proj:transform", "proj:shape"] {
                props.remove(k);
            }
            props.insert("proj:bbox".into(), bbox);
            for a in v["assets"].as_object_mut().unwrap().values_mut() {
                let a = a.as_object_mut().unwrap();
                for k in ["proj:transform", "proj:shape", "proj:bbox"] {
                    a.remove(k);
                }
            }
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

/// EOPF's Sample Service items declare no grid (proj:code only, proj:bbox
/// in degrees). The demo world's Zarr items stripped the same way stack
/// from their stores' grids (v2: the x/y coordinate arrays of pixel
/// centres; v3: the spatial_ref GeoTransform) bit for bit as its COG items
/// do; planned with nothing but the items fetched, they are an error naming
/// an item and where its grid is.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zarr_items_without_a_grid_take_their_stores_grid() {
    let server = WorldServer::start(small_zarr_world()).await.unwrap();
    let cat = |c: &str| Catalog::stac(&server.stac_url(), c).unwrap();
    let req = zarr_request("B04,B08,B11,SCL");
    let cog = build(&cat("sentinel-2-l2a"), &req, &cog_reader(), None)
        .await
        .unwrap();
    for layout in ["zarr-v2", "zarr-v3"] {
        let items = tilestack::stack::search_items(&cat(&format!("sentinel-2-l2a-{layout}")), &req)
            .await
            .unwrap();
        assert!(!items.is_empty());
        let stripped = without_grids(&items);
        let e = tilestack::plan_stack(&Catalog::Items(stripped.clone()), &req)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            stripped.iter().any(|i| e.contains(&i.id)) && e.contains("store's metadata"),
            "{layout}: {e}"
        );
        let mut filled = stripped.clone();
        let zarr = ZarrReader::new(
            HttpRangeClient::new(RetryConfig::default()).unwrap(),
            TileCache::new(1 << 20),
        );
        let bands = req.read_bands();
        let n = tilestack::stack::fill_zarr_grids(&mut filled, &bands, &zarr)
            .await
            .unwrap();
        assert_eq!(n, stripped.len() * 4, "{layout}: four bands an item");
        for (f, orig) in filled.iter().zip(&items) {
            for k in ["b04", "b08", "b11", "scl"] {
                let (a, o) = (
                    &f.assets[k].additional_fields,
                    &orig.assets[k].additional_fields,
                );
                let t = |m: &serde_json::Map<String, Value>| -> Vec<f64> {
                    m.get("proj:transform")
                        .or_else(|| orig.properties.additional_fields.get("proj:transform"))
                        .and_then(Value::as_array)
                        .map(|l| l.iter().take(6).filter_map(Value::as_f64).collect())
                        .unwrap_or_default()
                };
                assert_eq!(t(a), t(o), "{layout} {} {k}", f.id);
            }
        }
        let z = build(&Catalog::Items(stripped), &req, &cog_reader(), None)
            .await
            .unwrap_or_else(|e| panic!("{layout}: {}", e.chain()));
        assert_same_stack(
            &cog.stack,
            &z.stack,
            &format!("{layout}, grids from the stores"),
            0.0,
        );
    }
}

/// A `BatchLoader` epoch over the demo world's Zarr collections (EOPF-like
/// v2, sharded GeoZarr v3) equals the epoch over its COG collection bit for
/// bit, same seed: the same samples in the same order, inputs, validity,
/// labels, days, cloud figures and statuses.
#[test]
fn a_batch_loader_epoch_over_zarr_items_equals_the_cog_epoch() {
    use tilestack::loader::HostBatch;
    use tilestack::{BatchLoader, DatasetConfig, TileDataset};
    let world = small_zarr_world();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(WorldServer::start(world)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // places west of the centroid (granule A) and one east (granule B)
    let points = [
        [-122.365, 37.805],
        [-122.355, 37.800],
        [-122.346, 37.808],
        [-122.330, 37.810],
        [-122.262, 37.810],
    ];
    write_points(&dir.path().join("points.csv"), &points);
    let config = |collection: &str| {
        let text = format!(
            r#"seed = 7
[catalog]
stac = {stac:?}
collection = {collection:?}
[stack]
bands = ["B04", "B08", "B11", "SCL"]
tile_size = 48
[time]
range = "2019-08-01/2019-08-08"
[sampler]
kind = "points"
file = "points.csv"
[[labels]]
name = "ships"
file = {ships:?}
[loader]
batch_size = 2
prefetch_batches = 2
"#,
            stac = server.stac_url(),
            ships = world.ships_path(),
        );
        let p = dir.path().join(format!("{collection}.toml"));
        std::fs::write(&p, text).unwrap();
        DatasetConfig::from_file(&p).unwrap()
    };
    let epochs = |collection: &str| -> Vec<Vec<HostBatch>> {
        let cfg = config(collection);
        let ds = std::sync::Arc::new(TileDataset::open(&cfg).unwrap());
        let loader = BatchLoader::new(ds, cfg.loader.clone()).unwrap();
        (0..2)
            .map(|_| {
                loader
                    .iter()
                    .unwrap()
                    .collect::<tilestack::Result<Vec<_>>>()
                    .unwrap_or_else(|e| panic!("{collection}: {}", e.chain()))
            })
            .collect()
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let cog = epochs("sentinel-2-l2a");
    let batches: usize = cog.iter().map(Vec::len).sum();
    assert_eq!(batches, 6, "5 samples, batches of 2, two epochs");
    assert!(
        cog[0].iter().any(|b| b.inputs.iter().any(|v| !v.is_nan())),
        "the COG epoch has data"
    );
    for layout in ["zarr-v2", "zarr-v3"] {
        let z = epochs(&format!("sentinel-2-l2a-{layout}"));
        assert_eq!(z.len(), cog.len());
        for (e, (ce, ze)) in cog.iter().zip(&z).enumerate() {
            assert_eq!(ce.len(), ze.len(), "{layout} epoch {e}");
            for (c, z) in ce.iter().zip(ze) {
                let what = format!("{layout} epoch {e} batch {}", c.index);
                assert_eq!(
                    (c.epoch, c.index, c.shape),
                    (z.epoch, z.index, z.shape),
                    "{what}"
                );
                assert_eq!(c.samples, z.samples, "{what}: order");
                assert_eq!(c.ids, z.ids, "{what}");
                assert_eq!(c.days, z.days, "{what}");
                assert_eq!(bits(&c.inputs), bits(&z.inputs), "{what}: inputs");
                assert_eq!(bits(&c.valid), bits(&z.valid), "{what}: valid");
                assert_eq!(c.label_names, z.label_names, "{what}");
                for (a, b) in c.labels.iter().zip(&z.labels) {
                    assert_eq!(bits(a), bits(b), "{what}: labels");
                }
                assert_eq!(c.masks.len(), z.masks.len(), "{what}");
                for (a, b) in c.masks.iter().zip(&z.masks) {
                    assert_eq!(bits(a), bits(b), "{what}: masks");
                }
                assert_eq!(bits(&c.eo_cloud_cover), bits(&z.eo_cloud_cover), "{what}");
                assert_eq!(bits(&c.pct_nans), bits(&z.pct_nans), "{what}: pct_nans");
                assert_eq!(
                    bits(&c.tile_cloud_fraction),
                    bits(&z.tile_cloud_fraction),
                    "{what}: cloud fraction"
                );
                assert_eq!(
                    format!("{:?}", c.status),
                    format!("{:?}", z.status),
                    "{what}"
                );
                assert!(
                    z.read_errors.iter().all(Vec::is_empty),
                    "{what}: {:?}",
                    z.read_errors
                );
            }
        }
    }
}

/// A dataset of Zarr items that declare no grid (EOPF's Sample Service
/// items: the demo world's Zarr items stripped, in a snapshot, as first
/// input and as a second input) opens, its scenes taking the grids their
/// stores declare, each store's metadata fetched once however many
/// samples use it; every sample then loads bit for bit as from the COG
/// items. A store that gives no grid is an error naming the item, the
/// asset and the store.
#[test]
fn a_dataset_of_zarr_items_without_a_grid_takes_their_stores_grids() {
    use tilestack::{DatasetConfig, TileDataset};
    let world = small_zarr_world();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(WorldServer::start(world)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let points = [
        [-122.365, 37.805],
        [-122.346, 37.808],
        [-122.330, 37.810],
        [-122.262, 37.810],
    ];
    write_points(&dir.path().join("points.csv"), &points);
    let config = |name: &str, catalog: &str, second: Option<&str>| {
        let mut text = format!(
            r#"seed = 3
[catalog]
{catalog}
[stack]
bands = ["B04", "B08", "SCL"]
tile_size = 32
[time]
range = "2019-08-01/2019-08-12"
[sampler]
kind = "points"
file = "points.csv"
"#
        );
        if let Some(c) = second {
            text.push_str(&format!(
                "[[inputs]]\nname = \"again\"\ncatalog = {{ {c} }}\n\
                 stack = {{ bands = [\"B11\"] }}\ntime = {{ nearest = 1 }}\n"
            ));
        }
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        DatasetConfig::from_file(&p).unwrap()
    };
    let stac = |c: &str| format!("stac = {:?}\ncollection = {c:?}", server.stac_url());
    let bits = |v: &ndarray::Array4<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let load_all = |ds: &TileDataset| {
        (0..ds.len())
            .map(|i| {
                let s = rt
                    .block_on(ds.load(i))
                    .unwrap_or_else(|e| panic!("sample {i}: {}", e.chain()));
                let inputs = rt.block_on(ds.load_inputs(i)).unwrap();
                (s, inputs)
            })
            .collect::<Vec<_>>()
    };
    let cog = TileDataset::open(&config(
        "cog",
        &stac("sentinel-2-l2a"),
        Some(&stac("sentinel-2-l2a").replace('\n', ", ")),
    ))
    .unwrap();
    let cog_loads = load_all(&cog);
    assert!(cog.len() >= 3);
    for layout in ["zarr-v2", "zarr-v3"] {
        let collection = format!("sentinel-2-l2a-{layout}");
        let req = StackRequest::new(
            [-122.33, 37.81],
            BandName::parse_list("B04,B08,B11,SCL").unwrap(),
            day(1),
            day(12),
        )
        .unwrap();
        let mut items = Vec::new();
        for centre in [[-122.33, 37.81], [-122.262, 37.81]] {
            let mut r = req.clone();
            r.centroid = centre;
            items.extend(
                rt.block_on(tilestack::stack::search_items(
                    &Catalog::stac(&server.stac_url(), &collection).unwrap(),
                    &r,
                ))
                .unwrap(),
            );
        }
        items.sort_by(|a, b| a.id.cmp(&b.id));
        items.dedup_by(|a, b| a.id == b.id);
        let stripped = without_grids(&items);
        let snap = dir.path().join(format!("{layout}.json"));
        tilestack::stac::save_snapshot(&stripped, &snap).unwrap();
        let snapshot = format!("snapshot = {snap:?}");
        server.stats().reset();
        let ds = TileDataset::open(&config(layout, &snapshot, Some(&snapshot)))
            .unwrap_or_else(|e| panic!("{layout}: {}", e.chain()));
        // each store's metadata once: no document fetched twice
        let log = server.stats().log();
        let mut docs: Vec<String> = log
            .iter()
            .map(|r| format!("{} {:?}", r.path, r.range))
            .collect();
        assert!(!docs.is_empty(), "{layout}: the stores' metadata was read");
        let n = docs.len();
        docs.sort();
        docs.dedup();
        assert_eq!(docs.len(), n, "{layout}: a request made twice: {log:?}");
        let stores: std::collections::HashSet<&str> = log
            .iter()
            .filter_map(|r| r.path.split(".zarr").next())
            .collect();
        assert!(stores.len() <= stripped.len(), "{layout}: {stores:?}");
        assert_eq!(ds.len(), cog.len(), "{layout}");
        for (i, ((c, ci), (z, zi))) in cog_loads.iter().zip(load_all(&ds)).enumerate() {
            let what = format!("{layout} sample {i}");
            assert_eq!(c.days, z.days, "{what}");
            assert_eq!(c.items, z.items, "{what}");
            assert_eq!(bits(&c.data), bits(&z.data), "{what}: stack");
            assert_eq!(ci.len(), zi.len(), "{what}");
            for (a, b) in ci.iter().zip(&zi) {
                assert_eq!(
                    bits(&a.stack.data),
                    bits(&b.stack.data),
                    "{what}: input {}",
                    a.name
                );
            }
        }
    }
    // A store without a grid: the error names the item, the asset and the store.
    let (_, items) = world
        .zarr_catalog(tilestack::demo::ZarrLayout::EopfV2)
        .unwrap()
        .unwrap();
    let mut broken = without_grids(&items);
    for it in &mut broken {
        for a in it.assets.values_mut() {
            if let Some(rel) = a.href.strip_prefix("../") {
                a.href = format!("{}/{rel}", server.url()).replace("eopf-v2.zarr", "missing.zarr");
            }
        }
    }
    let snap = dir.path().join("broken.json");
    tilestack::stac::save_snapshot(&broken, &snap).unwrap();
    let e = TileDataset::open(&config("broken", &format!("snapshot = {snap:?}"), None))
        .expect_err("no grid to be had")
        .chain();
    assert!(
        broken.iter().any(|i| e.contains(&i.id))
            && e.contains("missing.zarr")
            && e.contains("grid"),
        "{e}"
    );
}
