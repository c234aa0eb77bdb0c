//! Daily tile stacks end to end over HTTP, checked against GDAL (rasterio).

use tilestack::cog::TileCache;
use tilestack::demo::WorldServer;
use tilestack::fetch::RetryConfig;
use tilestack::geo::{Mask, Resampling};
use tilestack::stack::Fusion;
use tilestack::{
    BandName, Catalog, CogReader, Epsg, HttpRangeClient, StackRequest, TileStack, build,
};

use crate::util::{cog_reader, day, python_script, small_world};

fn oakland(bands: &str) -> StackRequest {
    StackRequest::new(
        [-122.33, 37.81],
        BandName::parse_list(bands).unwrap(),
        day(1),
        day(30),
    )
    .unwrap()
}

async fn stack(req: &StackRequest, mask: Option<&Mask>) -> (tilestack::stack::Built, WorldServer) {
    let server = WorldServer::start(small_world()).await.unwrap();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let built = build(&cat, req, &cog_reader(), mask).await.unwrap();
    (built, server)
}

struct Reference {
    data: Vec<f32>,
    shape: Vec<usize>,
    meta: serde_json::Value,
}

/// Runs tests/py/reference_stack.py on the small world.
fn reference(req: &StackRequest, mask: Option<&std::path::Path>) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ref");
    let bands: Vec<String> = req.bands.iter().map(|b| b.to_string()).collect();
    let mut args: Vec<std::ffi::OsString> = vec![
        small_world().dir().into(),
        req.centroid[0].to_string().into(),
        req.centroid[1].to_string().into(),
        req.start.to_string().into(),
        req.end.to_string().into(),
        bands.join(",").into(),
        prefix.clone().into(),
        "--tile".into(),
        req.tile_size.to_string().into(),
    ];
    if let Some(e) = req.epsg {
        args.extend(["--epsg".into(), e.code().to_string().into()]);
    }
    if let Some(m) = mask {
        args.extend(["--mask".into(), m.into()]);
    }
    python_script("reference_stack.py", args);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prefix.with_extension("json")).unwrap())
            .unwrap();
    let bytes = std::fs::read(prefix.with_extension("f32")).unwrap();
    let data = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let shape = meta["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    Reference { data, shape, meta }
}

/// Compares a stack with the GDAL reference: NaN pattern identical; values
/// equal on same-zone days (≥ 99.9 %), within 1 DN on re-projected days (≥ 99 %).
fn compare(s: &TileStack, r: &Reference, target: Epsg) {
    assert_eq!(s.data.shape(), &r.shape[..]);
    let (t, c, h, w) = s.data.dim();
    let n = c * h * w;
    for ti in 0..t {
        let epsgs: Vec<u64> = r.meta["epsgs"][ti]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let reprojected = epsgs.iter().any(|&e| e != target.code() as u64);
        let (mut equal, mut within1, mut total) = (0usize, 0usize, 0usize);
        for (k, (&a, &b)) in s.data.as_slice().unwrap()[ti * n..(ti + 1) * n]
            .iter()
            .zip(&r.data[ti * n..(ti + 1) * n])
            .enumerate()
        {
            assert_eq!(a.is_nan(), b.is_nan(), "day {ti} px {k}: {a} vs GDAL {b}");
            if !a.is_nan() {
                total += 1;
                equal += usize::from(a == b);
                within1 += usize::from((a - b).abs() <= 1.0);
            }
        }
        if total == 0 {
            continue;
        }
        eprintln!(
            "day {ti}: {equal}/{total} equal, {within1} within 1 DN (reprojected: {reprojected})"
        );
        if reprojected {
            assert!(
                within1 as f64 >= 0.99 * total as f64,
                "day {ti}: {within1}/{total} within 1 DN"
            );
        } else {
            assert!(
                equal as f64 >= 0.999 * total as f64,
                "day {ti}: {equal}/{total} equal"
            );
        }
    }
}

#[tokio::test]
async fn oakland_stack_matches_gdal_with_mask() {
    let w = small_world();
    let mask_path = w.terminals_path();
    let mask = Mask::from_file(&mask_path).unwrap();
    let req = oakland("B04,B03,B02,B08,B11");
    let (built, server) = stack(&req, Some(&mask)).await;
    let s = &built.stack;
    assert_eq!(s.data.shape(), &[30, 6, 256, 256]);
    assert_eq!(s.bands, ["B04", "B03", "B02", "B08", "B11", "mask"]);
    assert_eq!(s.grid.epsg.code(), 32610);
    assert_eq!(
        (s.grid.transform.x0, s.grid.transform.y0),
        (557_700.0, 4_186_220.0)
    );
    // days without a scene: all NaN, kept, no cloud cover; 08-31 excluded
    assert_eq!(s.days[1], day(2));
    assert_eq!(s.pct_nans[1], 100.0);
    assert!(s.eo_cloud_cover[1].is_nan());
    assert!(s.items[1].is_empty());
    assert_eq!(s.items[2].len(), 2, "two granules on 08-03");
    assert!(s.items.iter().flatten().all(|id| !id.contains("20190831")));
    // eo_cloud_cover = max of the day's scenes, aligned by date
    for (i, ids) in s.items.iter().enumerate() {
        let max = w
            .manifest()
            .scenes
            .iter()
            .filter(|sc| ids.contains(&sc.id))
            .map(|sc| sc.cloud_cover)
            .fold(f64::NAN, f64::max);
        if !ids.is_empty() {
            assert!((s.eo_cloud_cover[i] as f64 - max).abs() < 1e-4, "day {i}");
        }
    }
    // the mask is burned on every day, identical
    let m0 = s.data.slice(ndarray::s![0, 5, .., ..]).to_owned();
    assert!(m0.sum() > 1000.0);
    assert_eq!(m0, s.data.slice(ndarray::s![29, 5, .., ..]));
    server.shutdown().await;
    let r = reference(&req, Some(&mask_path));
    compare(s, &r, Epsg::new(32610).unwrap());
    // mask pixel-exact against rasterio.features.rasterize
    let n = 256 * 256;
    let ref_mask = &r.data[5 * n..6 * n];
    assert_eq!(
        m0.as_slice().unwrap(),
        ref_mask,
        "mask differs from rasterio"
    );
}

#[tokio::test]
async fn a_tile_in_the_neighbouring_zone_reprojects_every_scene() {
    let mut req = oakland("B04,B11");
    req.epsg = Some(Epsg::new(32611).unwrap());
    req.tile_size = 128;
    let (built, server) = stack(&req, None).await;
    server.shutdown().await;
    assert_eq!(built.stack.grid.epsg.code(), 32611);
    let r = reference(&req, None);
    compare(&built.stack, &r, Epsg::new(32611).unwrap());
}

#[tokio::test]
async fn fusion_rules_and_provenance_on_a_two_granule_day() {
    let mut req = oakland("B04,SCL");
    req.start = day(3);
    req.end = day(3);
    req.cloud_band = Some(BandName::new("SCL").unwrap());
    let (mean, server) = stack(&req, None).await;
    server.shutdown().await;
    req.fuse = Fusion::First;
    let (first, server) = stack(&req, None).await;
    server.shutdown().await;
    // The server is gone now: reading its hrefs again is an error naming the URL, not zeros.
    let one: Vec<_> = mean
        .items
        .iter()
        .filter(|i| i.id == mean.stack.items[0][0])
        .cloned()
        .collect();
    let e = build(&Catalog::Items(one), &req, &cog_reader(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("http://127.0.0.1:") && e.contains(".tif"), "{e}");
    let (m, f) = (&mean.stack.data, &first.stack.data);
    assert_eq!(mean.stack.items[0].len(), 2);
    // SCL is categorical: never averaged, so identical under both rules
    assert_eq!(
        m.slice(ndarray::s![0, 1, .., ..]),
        f.slice(ndarray::s![0, 1, .., ..])
    );
    let scl_ok = m
        .slice(ndarray::s![0, 1, .., ..])
        .iter()
        .all(|v| v.is_nan() || v.fract() == 0.0);
    assert!(scl_ok, "SCL values stay class codes");
    // B04: the mean differs from the first where both granules overlap (gain differs)
    let differ = m
        .slice(ndarray::s![0, 0, .., ..])
        .iter()
        .zip(f.slice(ndarray::s![0, 0, .., ..]).iter())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        differ > 1000,
        "{differ} pixels differ between mean and first"
    );
    assert!(mean.stack.tile_cloud_fraction[0].is_finite());
}

/// Categorical bands (here the cloud band, SCL) are never blended: under
/// bilinear they are read with nearest, under average with mode, while the
/// continuous band (B04) does take the blend. In the neighbouring UTM zone,
/// so every read is warped.
#[tokio::test]
async fn categorical_bands_keep_their_classes_under_every_resampling() {
    let mut req = oakland("B04,SCL");
    req.start = day(3);
    req.end = day(3);
    req.cloud_band = Some(BandName::new("SCL").unwrap());
    req.epsg = Some(Epsg::new(32611).unwrap());
    req.tile_size = 64;
    let mut built = Vec::new();
    for (resolution, r) in [
        (10.0, Resampling::Nearest),
        (10.0, Resampling::Bilinear),
        (30.0, Resampling::Mode),
        (30.0, Resampling::Average),
    ] {
        req.resolution = tilestack::Resolution::new(resolution).unwrap();
        req.resampling = r;
        let (b, server) = stack(&req, None).await;
        server.shutdown().await;
        built.push(b.stack.data);
    }
    let band = |k: usize, b: usize| built[k].slice(ndarray::s![0, b, .., ..]).to_owned();
    let bits = |a: ndarray::Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(band(0, 1)),
        bits(band(1, 1)),
        "SCL: bilinear reads nearest"
    );
    assert_eq!(
        bits(band(2, 1)),
        bits(band(3, 1)),
        "SCL: average reads mode"
    );
    for k in 0..4 {
        let scl = band(k, 1);
        assert!(scl.iter().any(|v| !v.is_nan()), "{k}: SCL has data");
        assert!(
            scl.iter().all(|v| v.is_nan() || v.fract() == 0.0),
            "{k}: SCL values stay class codes"
        );
    }
    let blended = |a: usize, b: usize| {
        band(a, 0)
            .iter()
            .zip(band(b, 0).iter())
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count()
    };
    assert!(blended(0, 1) > 100, "B04 is interpolated under bilinear");
    assert!(blended(2, 3) > 100, "B04 is averaged under average");
}

/// A grid at least twice as coarse as the COG reads an overview, as
/// gdalwarp does by default: the average stack at 30 m and at 40 m from the
/// 10 m B04 (overviews 2× and 4×) equals GDAL's average warp of the overview
/// gdalwarp picks (tests/py/overview_reference.py: the 2× one for 30 m, the
/// 4× one for 40 m), and differs from the warp of the full resolution.
#[tokio::test]
async fn a_coarse_average_stack_reads_the_overview_gdalwarp_reads() {
    let mut req = oakland("B04");
    req.resampling = Resampling::Average;
    req.tile_size = 48;
    for (res, factor) in [(30.0, 2.0), (40.0, 4.0)] {
        req.resolution = tilestack::Resolution::new(res).unwrap();
        let (b, server) = stack(&req, None).await;
        server.shutdown().await;
        let s = &b.stack;
        // a day of one scene (no fusion between granules)
        let t = (0..s.days.len())
            .find(|&t| s.items[t].len() == 1)
            .expect("a day with one scene");
        let cog = small_world()
            .dir()
            .join("data")
            .join(&s.items[t][0])
            .join("B04.tif");
        let g = &s.grid.transform;
        let stdout = python_script(
            "overview_reference.py",
            [
                cog.display().to_string(),
                s.grid.epsg.code().to_string(),
                format!("{},{},0,{},0,{}", g.x0, g.dx, g.y0, g.dy),
                s.grid.width.to_string(),
                s.grid.height.to_string(),
            ],
        );
        let r: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
        assert_eq!(r["factor"].as_f64(), Some(factor), "{res} m: {}", r["gdal"]);
        let want = |key: &str| -> Vec<f32> {
            r[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().map_or(f32::NAN, |x| x as f32))
                .collect()
        };
        let got: Vec<f32> = s
            .data
            .slice(ndarray::s![t, 0, .., ..])
            .iter()
            .copied()
            .collect();
        let (ovr, full) = (want("values"), want("full_resolution"));
        assert_eq!(got.len(), ovr.len());
        let mut valid = 0;
        for (i, (&a, &b)) in got.iter().zip(&ovr).enumerate() {
            assert_eq!(
                a.is_nan(),
                b.is_nan(),
                "{res} m, pixel {i}: {a} vs GDAL {b}"
            );
            if !a.is_nan() {
                valid += 1;
                assert!(
                    ((a - b) / b).abs() <= 1e-6,
                    "{res} m, pixel {i}: {a} vs GDAL's {b} from the overview"
                );
            }
        }
        assert!(valid > got.len() / 2, "{res} m: {valid} valid pixels");
        let apart = got
            .iter()
            .zip(&full)
            .filter(|(a, b)| !a.is_nan() && !b.is_nan() && ((*a - *b) / *b).abs() > 1e-4)
            .count();
        assert!(apart > 0, "{res} m: the overview made no difference");
    }
}

#[tokio::test]
async fn a_centroid_outside_every_scene_is_an_all_nan_stack_with_a_warning() {
    let mut req = oakland("B04");
    req.centroid = [-100.0, 40.0];
    req.tile_size = 32;
    let (built, server) = stack(&req, None).await;
    server.shutdown().await;
    assert!(built.stack.data.iter().all(|v| v.is_nan()));
    assert!(built.stack.pct_nans.iter().all(|&p| p == 100.0));
    assert_eq!(built.plan.warnings.len(), 1, "{:?}", built.plan.warnings);
    assert!(
        matches!(built.plan.warnings[0], tilestack::Warning::NoScenes { .. }),
        "{:?}",
        built.plan.warnings
    );
}

#[tokio::test]
async fn snapshot_builds_the_same_stack_without_a_stac_api() {
    let req = {
        let mut r = oakland("B04,B11");
        r.tile_size = 64;
        r
    };
    let (online, server) = stack(&req, None).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("items.json");
    tilestack::stac::save_snapshot(&online.items, &snap).unwrap();
    // The STAC API is not used: build from the snapshot while only the file server answers.
    let offline = build(
        &Catalog::Items(tilestack::stac::load_snapshot(&snap).unwrap()),
        &req,
        &cog_reader(),
        None,
    )
    .await
    .unwrap();
    let search_requests = server
        .stats()
        .log()
        .iter()
        .filter(|l| l.path.starts_with("/search"))
        .count();
    assert_eq!(search_requests, 1, "only the online build searched");
    server.shutdown().await;
    let (a, b) = (&online.stack.data, &offline.stack.data);
    assert_eq!(a.shape(), b.shape());
    assert!(
        a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
    assert_eq!(online.stack.items, offline.stack.items);
}

#[tokio::test]
async fn unknown_band_and_bad_mask_are_named() {
    let req = oakland("B04,B99");
    let server = WorldServer::start(small_world()).await.unwrap();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let e = build(&cat, &req, &cog_reader(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("B99") && e.contains("B04, B08"), "{e}");
    server.shutdown().await;
    let e =
        Mask::from_geojson_str("{\"type\": \"FeatureCollection\"}", "ports.geojson").unwrap_err();
    assert!(e.to_string().contains("ports.geojson"), "{e}");
}

#[tokio::test]
async fn ndvi_is_derived_from_the_fused_bands() {
    let mut req = oakland("B04,ndvi,B08");
    req.tile_size = 64;
    req.start = day(1);
    req.end = day(3);
    let (built, server) = stack(&req, None).await;
    server.shutdown().await;
    let s = &built.stack;
    assert_eq!(s.bands, ["B04", "ndvi", "B08"]);
    let mut checked = 0;
    for t in 0..s.len() {
        for ((&red, &nd), &nir) in s
            .data
            .slice(ndarray::s![t, 0, .., ..])
            .iter()
            .zip(s.data.slice(ndarray::s![t, 1, .., ..]).iter())
            .zip(s.data.slice(ndarray::s![t, 2, .., ..]).iter())
        {
            if red.is_nan() {
                assert!(nd.is_nan());
                continue;
            }
            assert!((nd - (nir - red) / (nir + red)).abs() < 1e-6);
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        2 * 64 * 64,
        "08-01 and 08-03 have data, 08-02 none"
    );
}

#[tokio::test]
async fn empty_masks_and_masks_outside_the_tile_burn_nothing() {
    let mut req = oakland("B04");
    req.tile_size = 32;
    req.end = day(1);
    let empty =
        Mask::from_geojson_str(r#"{"type":"FeatureCollection","features":[]}"#, "empty").unwrap();
    let far = Mask::from_geojson_str(
        r#"{"type":"Polygon","coordinates":[[[-121.0,37.0],[-120.9,37.0],[-120.9,37.1],[-121.0,37.0]]]}"#,
        "far",
    )
    .unwrap();
    for m in [&empty, &far] {
        let (built, server) = stack(&req, Some(m)).await;
        server.shutdown().await;
        let s = &built.stack;
        assert_eq!(s.bands.last().unwrap(), "mask");
        assert!(
            s.data
                .slice(ndarray::s![.., 1, .., ..])
                .iter()
                .all(|&v| v == 0.0)
        );
        assert_eq!(s.pct_nans[0], 0.0, "the mask does not count as NaN");
    }
}

#[tokio::test]
async fn failed_reads_fail_the_stack_or_become_flagged_nan_when_asked() {
    use tilestack::demo::ServerOptions;
    // Every data request (header reads included) gets a 503.
    let opts = ServerOptions {
        fault_after: 0,
        fail_first: u32::MAX,
        ..Default::default()
    };
    let server = WorldServer::start_with(small_world(), opts).await.unwrap();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let quick = || {
        CogReader::new(
            HttpRangeClient::new(RetryConfig {
                max_retries: 1,
                initial_backoff: std::time::Duration::from_millis(1),
                max_backoff: std::time::Duration::from_millis(2),
                ..RetryConfig::default()
            })
            .unwrap(),
            TileCache::new(1 << 30),
        )
    };
    let mut req = oakland("B04");
    req.tile_size = 32;
    req.end = day(3);
    let e = build(&cat, &req, &quick(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("503") && e.contains("/data/"), "{e}");
    req.errors_as_nodata = true;
    let built = build(&cat, &req, &quick(), None).await.unwrap();
    server.shutdown().await;
    let s = &built.stack;
    assert!(s.data.iter().all(|v| v.is_nan()), "no silent zeros");
    assert_eq!(s.read_errors.len(), built.plan.reads.len());
    assert!(
        s.read_errors
            .iter()
            .all(|e| e.contains("B04") && e.contains("503"))
    );
    assert!(
        s.read_errors
            .iter()
            .any(|e| e.starts_with("S2A_MSIL2A_20190801"))
    );
    // the flag survives the file round trip
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.safetensors");
    s.write_safetensors(&p).unwrap();
    assert_eq!(
        TileStack::read_safetensors(&p).unwrap().read_errors,
        s.read_errors
    );
}

#[tokio::test]
async fn coarse_targets_read_overviews() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let mut req = oakland("B04");
    req.resolution = tilestack::Resolution::new(40.0).unwrap();
    req.tile_size = 64;
    req.end = day(1);
    let run = |use_overviews: bool| {
        let mut r = req.clone();
        r.use_overviews = use_overviews;
        let cat = cat.clone();
        async move {
            let reader = cog_reader();
            let b = build(&cat, &r, &reader, None).await.unwrap();
            (b.stack, reader.client().metrics().bytes())
        }
    };
    let (ovr, ovr_bytes) = run(true).await;
    let (full, full_bytes) = run(false).await;
    server.shutdown().await;
    assert!(
        ovr_bytes * 4 < full_bytes,
        "overview read {ovr_bytes} B vs full {full_bytes} B"
    );
    let mean = |s: &TileStack| {
        let v: Vec<f32> = s.data.iter().copied().filter(|v| !v.is_nan()).collect();
        (
            v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64,
            v.len(),
        )
    };
    let ((mo, no), (mf, nf)) = (mean(&ovr), mean(&full));
    assert_eq!(no, nf, "same valid pixels");
    assert!(
        (mo - mf).abs() / mf < 0.02,
        "overview mean {mo} vs nearest {mf}"
    );
}

#[tokio::test]
async fn median_least_cloudy_and_normalize_on_a_two_granule_day() {
    let mut req = oakland("B04,B08");
    req.start = day(3);
    req.end = day(3);
    req.tile_size = 96;
    let (mean, server) = stack(&req, None).await;
    server.shutdown().await;
    assert_eq!(mean.stack.items[0].len(), 2, "two scenes on 08-03");
    // the two scenes alone, in the plan's (time, id) order
    let mut alone = Vec::new();
    for id in &mean.stack.items[0] {
        let one: Vec<_> = mean.items.iter().filter(|i| &i.id == id).cloned().collect();
        let server = WorldServer::start(small_world()).await.unwrap();
        let items: Vec<_> = one
            .into_iter()
            .map(|mut i| {
                for a in i.assets.values_mut() {
                    let path = a.href.split("/data/").nth(1).unwrap().to_string();
                    a.href = format!("{}/data/{path}", server.url());
                }
                i
            })
            .collect();
        let s = build(&Catalog::Items(items), &req, &cog_reader(), None)
            .await
            .unwrap()
            .stack;
        server.shutdown().await;
        alone.push(s);
    }
    let clouds: Vec<f64> = mean
        .plan
        .scenes
        .iter()
        .map(|s| s.cloud_cover.unwrap())
        .collect();
    let least = if clouds[0] <= clouds[1] { 0 } else { 1 };

    req.fuse = Fusion::Median;
    let (median, server) = stack(&req, None).await;
    server.shutdown().await;
    req.fuse = Fusion::LeastCloudy;
    let (lc, server) = stack(&req, None).await;
    server.shutdown().await;
    req.fuse = Fusion::Mean;
    req.normalize = true;
    let (norm, server) = stack(&req, None).await;
    server.shutdown().await;

    let (mut both, mut one_only, mut differ) = (0, 0, 0);
    let px = |s: &tilestack::TileStack, b: usize| {
        s.data
            .slice(ndarray::s![0, b, .., ..])
            .iter()
            .copied()
            .collect::<Vec<f32>>()
    };
    for b in 0..2 {
        let (m, md, l) = (px(&mean.stack, b), px(&median.stack, b), px(&lc.stack, b));
        let (a0, a1) = (px(&alone[0], b), px(&alone[1], b));
        let first = if least == 0 { &a0 } else { &a1 };
        let other = if least == 0 { &a1 } else { &a0 };
        for p in 0..m.len() {
            // median of one or two values is their mean
            assert_eq!(m[p].to_bits(), md[p].to_bits(), "band {b} px {p}");
            // least cloudy: that scene where it has data, else the other
            let want = if first[p].is_nan() {
                other[p]
            } else {
                first[p]
            };
            assert_eq!(l[p].to_bits(), want.to_bits(), "band {b} px {p}");
            match (a0[p].is_nan(), a1[p].is_nan()) {
                (false, false) => {
                    both += 1;
                    differ += usize::from(a0[p] != a1[p]);
                }
                (false, true) | (true, false) => one_only += 1,
                _ => {}
            }
        }
        // normalized: each band of the day spans [0, 1] over its valid pixels
        let n = px(&norm.stack, b);
        let valid: Vec<f32> = n.iter().copied().filter(|v| v.is_finite()).collect();
        assert!(valid.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(valid.contains(&0.0) && valid.contains(&1.0));
    }
    // the rules were exercised where both scenes have data (and the two differ there)
    assert!(
        both > 0 && differ > 0,
        "both {both}, differ {differ}, one only {one_only}"
    );
}

#[tokio::test]
async fn cloud_mask_makes_cloud_classes_no_data_and_leaves_the_rest() {
    let mut req = oakland("B04,SCL");
    req.tile_size = 128;
    req.cloud_band = Some(BandName::new("SCL").unwrap());
    let (plain, server) = stack(&req, None).await;
    req.cloud_mask = vec![8, 9];
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let masked = build(&cat, &req, &cog_reader(), None).await.unwrap();
    server.shutdown().await;
    let (p, m) = (&plain.stack.data, &masked.stack.data);
    let (mut cloudy, mut kept) = (0, 0);
    for t in 0..p.shape()[0] {
        if plain.stack.items[t].len() != 1 {
            continue; // one scene: the fused SCL is that scene's
        }
        for ((b04, scl), out) in p
            .slice(ndarray::s![t, 0, .., ..])
            .iter()
            .zip(p.slice(ndarray::s![t, 1, .., ..]).iter())
            .zip(m.slice(ndarray::s![t, 0, .., ..]).iter())
        {
            if *scl == 8.0 || *scl == 9.0 {
                assert!(out.is_nan(), "day {t}: cloud class {scl} kept {out}");
                cloudy += 1;
            } else if b04.is_finite() {
                assert_eq!(out, b04, "day {t}: a clear pixel changed");
                kept += 1;
            }
        }
    }
    assert!(
        cloudy > 1000 && kept > 100_000,
        "{cloudy} cloudy, {kept} kept"
    );
    // SCL itself is never masked; the metadata counts the new no data.
    let same = p
        .slice(ndarray::s![.., 1, .., ..])
        .iter()
        .zip(m.slice(ndarray::s![.., 1, .., ..]).iter())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "SCL changed");
    assert!(masked.stack.pct_nans.iter().sum::<f32>() > plain.stack.pct_nans.iter().sum::<f32>());
    // A mask without a band to read it from is refused, naming the key.
    req.cloud_band = None;
    let e = req.validate().unwrap_err().to_string();
    assert!(e.contains("cloud_mask") && e.contains("cloud_band"), "{e}");
}
