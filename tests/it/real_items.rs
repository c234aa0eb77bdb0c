//! End to end on real catalog items (tests/fixtures/stac, see its
//! PROVENANCE.md): each item's band assets are rewritten to COGs served on
//! 127.0.0.1, written on the item's own grid (a window of it, with the
//! asset's `proj:transform` / `proj:shape` moved to that window), and stacks
//! are built from them. Pixel values are a known function of the grid
//! position, so every output pixel has an exact expected value:
//!
//! - Sentinel-2 L2A, Planetary Computer (no offsets declared, harmonized by
//!   processing baseline) and Earth Search v1 and c1 (`raster:bands` scale and
//!   offset): one scale on both sides of baseline 04.00, and a stack spanning
//!   the cutover is continuous; `harmonize = false` keeps the raw numbers.
//! - Landsat Collection 2 Level-2: surface reflectance scale/offset, and the
//!   `QA_PIXEL` tile cloud fraction against GDAL's warp of the QA band plus
//!   numpy bit ops (tests/py/real_items.py); cloud masking by bits.
//! - Sentinel-1 RTC: float32 backscatter (written by GDAL), vv in decibels.

use std::path::{Path, PathBuf};

use geo::InteriorPoint;
use serde_json::{Value, json};
use tilestack::demo::{CogOptions, CogPixels, write_cog};
use tilestack::geo::Transformer;
use tilestack::stac::{Scene, load_snapshot};
use tilestack::{BandName, Catalog, Epsg, Resolution, StackRequest, TileStack, build};

use crate::util::cog_reader;

/// Side of the window of the item's grid written as a COG, in pixels.
const WINDOW: usize = 128;
/// Side of the stacks' tiles, in pixels.
const TILE: usize = 48;

fn fixture_items(file: &str) -> Vec<Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stac")
        .join(file);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["features"].as_array().unwrap().clone()
}

fn to_item(v: &Value) -> stac::Item {
    // through a snapshot, as users load them (tolerates assets without href)
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("one.json");
    let fc = json!({"type": "FeatureCollection", "features": [v]});
    std::fs::write(&p, fc.to_string()).unwrap();
    load_snapshot(&p).unwrap().remove(0)
}

/// Static files of `dir` on 127.0.0.1 (HTTP Range requests answered).
async fn serve_dir(dir: &Path) -> String {
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Where an item's band lives: the window of its grid the COGs cover.
#[derive(Debug, Clone, Copy)]
struct Placement {
    epsg: u32,
    /// The full grid's transform (x0, y0, dx, dy).
    x0: f64,
    y0: f64,
    dx: f64,
    dy: f64,
    /// The window's top-left pixel in the full grid.
    col0: usize,
    row0: usize,
}

impl Placement {
    /// The window around an interior point of the item's footprint, on the
    /// grid of the asset answering `band`.
    fn of(item: &stac::Item, band: &str) -> (Placement, String) {
        let name = BandName::new(band).unwrap();
        let scene = Scene::from_item(item, std::slice::from_ref(&name)).unwrap();
        let a = &scene.assets[&name];
        let p = scene.footprint.interior_point().unwrap();
        let to_grid = Transformer::new(Epsg::new(4326).unwrap(), a.epsg).unwrap();
        let (x, y) = to_grid.transform(p.x(), p.y()).unwrap();
        let t = a.transform;
        let (rows, cols) = a.shape;
        let col = ((x - t.x0) / t.dx).floor() as i64 - (WINDOW / 2) as i64;
        let row = ((y - t.y0) / t.dy).floor() as i64 - (WINDOW / 2) as i64;
        let clamp = |v: i64, n: usize| v.clamp(0, (n - WINDOW) as i64) as usize;
        let placement = Placement {
            epsg: a.epsg.code(),
            x0: t.x0,
            y0: t.y0,
            dx: t.dx,
            dy: t.dy,
            col0: clamp(col, cols),
            row0: clamp(row, rows),
        };
        (placement, a.key.clone())
    }

    fn window_x0(&self) -> f64 {
        self.x0 + self.col0 as f64 * self.dx
    }

    fn window_y0(&self) -> f64 {
        self.y0 + self.row0 as f64 * self.dy
    }

    /// The window's centre in lon/lat: the stacks' centroid.
    fn centroid(&self) -> [f64; 2] {
        let half = WINDOW as f64 / 2.0;
        let (x, y) = (
            self.window_x0() + half * self.dx,
            self.window_y0() + half * self.dy,
        );
        let back = Transformer::new(Epsg::new(self.epsg).unwrap(), Epsg::new(4326).unwrap());
        let (lon, lat) = back.unwrap().transform(x, y).unwrap();
        [lon, lat]
    }

    /// The window's samples of `f(col, row)` (full-grid pixel indices).
    fn samples<T>(&self, f: impl Fn(usize, usize) -> T) -> Vec<T> {
        let mut v = Vec::with_capacity(WINDOW * WINDOW);
        for r in 0..WINDOW {
            for c in 0..WINDOW {
                v.push(f(self.col0 + c, self.row0 + r));
            }
        }
        v
    }

    /// The full-grid pixel under a CRS point.
    fn pixel_at(&self, x: f64, y: f64) -> (usize, usize) {
        (
            ((x - self.x0) / self.dx).floor() as usize,
            ((y - self.y0) / self.dy).floor() as usize,
        )
    }

    /// The item's asset `key` pointed at `url`, on the window's grid.
    fn rewrite(&self, item: &mut Value, key: &str, url: &str) {
        let a = &mut item["assets"][key];
        a["href"] = json!(url);
        a["proj:transform"] = json!([
            self.dx,
            0.0,
            self.window_x0(),
            0.0,
            self.dy,
            self.window_y0()
        ]);
        a["proj:shape"] = json!([WINDOW, WINDOW]);
    }

    fn write_u16(&self, path: &Path, px: &[u16], nodata: f64) {
        let mut o = CogOptions::new(
            WINDOW,
            WINDOW,
            self.epsg as u16,
            self.window_x0(),
            self.window_y0(),
            self.dx,
        );
        o.tile_size = 64;
        o.nodata = Some(nodata);
        write_cog(path, CogPixels::U16(px), &o).unwrap();
    }

    /// A float32 COG written by GDAL (the demo writer has integers only).
    fn write_f32(&self, path: &Path, px: &[f32], nodata: f32) {
        let raw = path.with_extension("f32");
        let bytes: Vec<u8> = px.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&raw, bytes).unwrap();
        let s = |v: f64| v.to_string();
        script([
            "f32-cog".to_string(),
            raw.to_str().unwrap().to_string(),
            path.to_str().unwrap().to_string(),
            WINDOW.to_string(),
            WINDOW.to_string(),
            self.epsg.to_string(),
            s(self.window_x0()),
            s(self.window_y0()),
            s(self.dx),
            s(nodata as f64),
        ]);
    }
}

/// Runs tests/py/real_items.py with `args`; its stdout (it must succeed).
fn script<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    crate::util::python_script("real_items.py", args)
}

/// A reflectance-like digital number, never 0 (the nodata).
fn dn(col: usize, row: usize) -> u16 {
    (100 + (col * 31 + row * 17) % 4000) as u16
}

fn request(p: &Placement, bands: &[&str], start: &str, end: &str, res: f64) -> StackRequest {
    let mut r = StackRequest::new(
        p.centroid(),
        bands.iter().map(|b| BandName::new(*b).unwrap()).collect(),
        start.parse().unwrap(),
        end.parse().unwrap(),
    )
    .unwrap();
    r.epsg = Some(Epsg::new(p.epsg).unwrap());
    r.resolution = Resolution::new(res).unwrap();
    r.tile_size = TILE;
    r
}

async fn stack(items: &[Value], req: &StackRequest) -> TileStack {
    let items = items.iter().map(to_item).collect();
    build(&Catalog::Items(items), req, &cog_reader(), None)
        .await
        .unwrap_or_else(|e| panic!("{}", e.chain()))
        .stack
}

/// Each pixel of day `t`, band `b` of `s` against `expect(col, row)` of the
/// full grid under the pixel's centre.
fn assert_pixels(
    s: &TileStack,
    t: usize,
    b: usize,
    p: &Placement,
    what: &str,
    expect: impl Fn(usize, usize) -> f32,
    tol: f32,
) {
    let g = s.grid.transform;
    let mut checked = 0;
    for i in 0..TILE {
        for j in 0..TILE {
            let (x, y) = (
                g.x0 + (j as f64 + 0.5) * g.dx,
                g.y0 + (i as f64 + 0.5) * g.dy,
            );
            let (c, r) = p.pixel_at(x, y);
            let (want, got) = (expect(c, r), s.data[[t, b, i, j]]);
            let ok = (want.is_nan() && got.is_nan()) || (want - got).abs() <= tol;
            assert!(ok, "{what}: pixel ({i}, {j}): {got}, expected {want}");
            checked += 1;
        }
    }
    assert_eq!(checked, TILE * TILE);
}

/// Writes `px` for `key` of `item` under `dir` and rewrites the item to it.
fn place_u16(
    dir: &Path,
    url: &str,
    item: &mut Value,
    p: &Placement,
    key: &str,
    f: impl Fn(usize, usize) -> u16,
    nodata: f64,
) {
    let name = format!("{}-{key}.tif", item["id"].as_str().unwrap());
    p.write_u16(&dir.join(&name), &p.samples(f), nodata);
    p.rewrite(item, key, &format!("{url}/{name}"));
}

/// A copy of a real item with another id, datetime and processing baseline.
fn derived(item: &Value, suffix: &str, datetime: &str, baseline: &str) -> Value {
    let mut v = item.clone();
    v["id"] = json!(format!("{}-{suffix}", item["id"].as_str().unwrap()));
    v["properties"]["datetime"] = json!(datetime);
    v["properties"]["s2:processing_baseline"] = json!(baseline);
    v
}

#[tokio::test]
async fn sentinel_2_across_baseline_04_is_one_continuous_scale() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve_dir(dir.path()).await;
    // Planetary Computer: a real 2019 item (baseline 02.12), and two copies of
    // it on either side of 25 January 2022: 03.01 stores R, 04.00 stores
    // R + 1000, as ESA's processor does.
    let pc = fixture_items("pc-sentinel-2-l2a.json");
    let real = &pc[0];
    assert_eq!(real["properties"]["s2:processing_baseline"], "02.12");
    let (p, key) = Placement::of(&to_item(real), "red");
    assert_eq!(key, "B04", "Planetary Computer names the red asset B04");
    let mut before = derived(real, "b0301", "2022-01-20T10:00:00Z", "03.01");
    let mut after = derived(real, "b0400", "2022-01-30T10:00:00Z", "04.00");
    place_u16(dir.path(), &url, &mut before, &p, &key, dn, 0.0);
    place_u16(
        dir.path(),
        &url,
        &mut after,
        &p,
        &key,
        |c, r| dn(c, r) + 1000,
        0.0,
    );
    let mut req = request(&p, &["red"], "2022-01-20", "2022-01-30", 10.0);
    let s = stack(&[before.clone(), after.clone()], &req).await;
    assert_eq!(s.days.len(), 11);
    let r = |c, r| f32::from(dn(c, r));
    assert_pixels(&s, 0, 0, &p, "PC before the cutover", r, 0.0);
    assert_pixels(&s, 10, 0, &p, "PC after the cutover, harmonized", r, 0.0);
    for t in 1..10 {
        assert!(
            s.data
                .index_axis(ndarray::Axis(0), t)
                .iter()
                .all(|v| v.is_nan())
        );
    }
    // switched off: the raw numbers, 1000 apart
    req.harmonize = false;
    let raw = stack(&[before, after], &req).await;
    assert_pixels(&raw, 0, 0, &p, "PC before, raw", r, 0.0);
    let plus = |c, r| f32::from(dn(c, r) + 1000);
    assert_pixels(&raw, 10, 0, &p, "PC after, raw", plus, 0.0);

    // A real Planetary Computer item of baseline 05.10 (2024) as published.
    let mut new = pc
        .iter()
        .find(|i| i["properties"]["s2:processing_baseline"] == "05.10")
        .unwrap()
        .clone();
    let (p, key) = Placement::of(&to_item(&new), "B04");
    place_u16(
        dir.path(),
        &url,
        &mut new,
        &p,
        &key,
        |c, r| dn(c, r) + 1000,
        0.0,
    );
    let day = &new["properties"]["datetime"].as_str().unwrap()[..10];
    let s = stack(&[new.clone()], &request(&p, &["B04"], day, day, 10.0)).await;
    assert_pixels(&s, 0, 0, &p, "PC 05.10", r, 0.0);

    // Earth Search c1: declares scale 1e-4 and offset -0.1 (its harmonization)
    // over R + 1000; Earth Search v1 with boa_offset_applied already removed
    // the 1000 but still declares the -0.1. Both give R·1e-4, as PC's R does.
    let reflectance = |c, r| f32::from(dn(c, r)) * 1e-4;
    for (file, stored) in [
        ("es-sentinel-2-c1-l2a.json", 1000u16),
        ("es-sentinel-2-l2a.json", 0),
    ] {
        let mut item = fixture_items(file)
            .into_iter()
            .find(|i| {
                file.contains("c1") || i["properties"]["earthsearch:boa_offset_applied"] == true
            })
            .unwrap();
        // asked for by band name, as on Planetary Computer
        let (p, key) = Placement::of(&to_item(&item), "B04");
        assert_eq!(key, "red", "Earth Search names the red asset red");
        place_u16(
            dir.path(),
            &url,
            &mut item,
            &p,
            &key,
            |c, r| dn(c, r) + stored,
            0.0,
        );
        let day = &item["properties"]["datetime"].as_str().unwrap()[..10];
        let s = stack(&[item.clone()], &request(&p, &["B04"], day, day, 10.0)).await;
        assert_pixels(&s, 0, 0, &p, file, reflectance, 1e-6);
    }
}

/// QA_PIXEL values of Landsat Collection 2: bit 0 fill, 1 dilated cloud,
/// 2 cirrus, 3 cloud, 4 shadow, 6 clear, 7 water.
const QA: [u16; 7] = [
    21824, // clear land (bits 6, 8, 10, 12, 14)
    21952, // clear water (+ bit 7)
    22280, // cloud (bit 3, high confidence bits)
    21826, // dilated cloud only (bit 1)
    54596, // cirrus (bit 2, high cirrus confidence)
    23888, // cloud shadow (bit 4)
    1,     // fill
];

fn qa(col: usize, row: usize, day: usize) -> u16 {
    let (bc, br) = (col / 5, row / 5); // 5 × 5 px blocks
    QA[(bc * 7 + br * 3 + day * 5 + (bc * br) % 4) % QA.len()]
}

#[tokio::test]
async fn landsat_scale_offset_and_qa_pixel_cloud_fraction_against_numpy_bit_ops() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve_dir(dir.path()).await;
    let real = &fixture_items("pc-landsat-c2-l2.json")[0];
    let (p, key) = Placement::of(&to_item(real), "red");
    let (q, qa_key) = Placement::of(&to_item(real), "qa_pixel");
    assert_eq!((p.col0, p.row0), (q.col0, q.row0), "one grid for both");
    let dt = real["properties"]["datetime"].as_str().unwrap();
    let day0 = chrono::DateTime::parse_from_rfc3339(dt)
        .unwrap()
        .date_naive();
    let day1 = day0 + chrono::Days::new(1);
    let mut items = Vec::new();
    let mut qa_files = Vec::new();
    for (k, day) in [day0, day1].into_iter().enumerate() {
        let mut item = real.clone();
        item["id"] = json!(format!("{}-{k}", real["id"].as_str().unwrap()));
        item["properties"]["datetime"] = json!(format!("{day}T23:12:16.530560Z"));
        let red = move |c, r| 7273 + ((c * 13 + r * 7 + k * 101) % 20000) as u16;
        place_u16(dir.path(), &url, &mut item, &p, &key, red, 0.0);
        place_u16(
            dir.path(),
            &url,
            &mut item,
            &q,
            &qa_key,
            move |c, r| qa(c, r, k),
            1.0,
        );
        qa_files.push(
            dir.path()
                .join(format!("{}-{qa_key}.tif", item["id"].as_str().unwrap())),
        );
        items.push(item);
    }
    // 20 m from a 30 m grid whose edges sit at 15 m mod 30: no pixel centre
    // falls on a source edge, so nearest neighbour has no ties to break.
    let (start, end) = (day0.to_string(), day1.to_string());
    let mut req = request(&p, &["red", "qa_pixel"], &start, &end, 20.0);
    req.cloud_band = Some(BandName::new("qa_pixel").unwrap());
    let s = stack(&items, &req).await;
    assert_eq!(s.days.len(), 2);
    for k in 0..2 {
        let red = move |c: usize, r: usize| {
            let dn = 7273 + ((c * 13 + r * 7 + k * 101) % 20000) as u16;
            (f64::from(dn) * 2.75e-05 - 0.2) as f32
        };
        assert_pixels(&s, k, 0, &p, "surface reflectance", red, 1e-6);
    }
    let path = dir.path().join("landsat.safetensors");
    s.write_safetensors(&path).unwrap();
    let mut args: Vec<std::ffi::OsString> = ["qa-cloud-fraction", path.to_str().unwrap()]
        .iter()
        .map(|a| a.into())
        .collect();
    args.extend(["qa_pixel".into(), "1,2,3,4".into()]);
    args.extend(qa_files.iter().map(|f| f.as_os_str().to_owned()));
    let out = script(args);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["qa_equal"], true, "the stack's QA band is GDAL's warp");
    let fractions = v["fractions"].as_array().unwrap();
    for (k, f) in fractions.iter().enumerate() {
        let want = f.as_f64().unwrap() as f32;
        assert!(want > 0.2 && want < 0.9, "a mixed pattern: {want}");
        let got = s.tile_cloud_fraction[k];
        assert!((got - want).abs() < 1e-6, "day {k}: {got} vs numpy {want}");
    }

    // Cloud masking by bits: red is no data exactly where QA says cloud.
    req.cloud_mask_bits = vec![1, 2, 3, 4];
    let masked = stack(&items, &req).await;
    let mut hidden = 0;
    for k in 0..2 {
        for (v, q) in masked
            .data
            .index_axis(ndarray::Axis(0), k)
            .index_axis(ndarray::Axis(0), 0)
            .iter()
            .zip(
                s.data
                    .index_axis(ndarray::Axis(0), k)
                    .index_axis(ndarray::Axis(0), 1),
            )
        {
            let cloudy = q.is_finite() && (*q as u16) & 0b11110 != 0;
            assert_eq!(v.is_nan(), cloudy, "qa {q}, red {v}");
            hidden += usize::from(cloudy);
        }
    }
    assert!(hidden > 1000, "{hidden} cloudy pixels masked");
}

#[tokio::test]
async fn sentinel_1_rtc_float32_backscatter_and_decibels() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve_dir(dir.path()).await;
    let mut item = fixture_items("pc-sentinel-1-rtc.json")[0].clone();
    let (p, vv_key) = Placement::of(&to_item(&item), "vv");
    let (_, vh_key) = Placement::of(&to_item(&item), "vh");
    const NODATA: f32 = -32768.0;
    // linear power; every 41st pixel no data, every 53rd exactly 0
    let power = |c: usize, r: usize, k: usize| -> f32 {
        let i = c * 7 + r * 3 + k;
        if i.is_multiple_of(41) {
            NODATA
        } else if i.is_multiple_of(53) {
            0.0
        } else {
            0.0005 + (i % 997) as f32 / 1500.0
        }
    };
    for (key, k) in [(&vv_key, 0), (&vh_key, 1)] {
        let name = format!("s1-{key}.tif");
        p.write_f32(
            &dir.path().join(&name),
            &p.samples(|c, r| power(c, r, k)),
            NODATA,
        );
        p.rewrite(&mut item, key, &format!("{url}/{name}"));
    }
    let day = &item["properties"]["datetime"].as_str().unwrap()[..10];
    let mut req = request(&p, &["vv", "vh"], day, day, 10.0);
    req.decibels = vec![BandName::new("vv").unwrap()];
    let s = stack(&[item], &req).await;
    let db = |c, r| {
        let v = power(c, r, 0);
        if v == NODATA || v <= 0.0 {
            f32::NAN
        } else {
            (10.0 * f64::from(v).log10()) as f32
        }
    };
    assert_pixels(&s, 0, 0, &p, "vv in dB", db, 1e-4);
    let linear = |c, r| match power(c, r, 1) {
        NODATA => f32::NAN,
        v => v,
    };
    assert_pixels(&s, 0, 1, &p, "vh linear", linear, 0.0);
}
