//! stac-geoparquet snapshots: real catalog items survive the round trip as
//! the scenes tilestack makes of them, a stack built from a geoparquet
//! snapshot is bit-identical to the one from the JSON snapshot, a file
//! written elsewhere (Python's stac-geoparquet) loads, and a corrupt file is
//! an error naming it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tilestack::demo::WorldServer;
use tilestack::stac::{Scene, load_snapshot, save_snapshot, scenes_from_items};
use tilestack::{BandName, Catalog, StackRequest, build};

use crate::util::{cog_reader, day, small_world};

/// tests/fixtures/stac: 68 real items (see its PROVENANCE.md), with per
/// file its items, their band names (asset keys, band names and common
/// names) and the names that make a scene (all but those that find a
/// metadata or thumbnail asset, and Sentinel-2's `rededge`, the common
/// name of several bands), as `python3 tests/py/catalog_counts.py` counts
/// them from the JSON.
const FIXTURES: &[(&str, usize, usize, usize)] = &[
    ("pc-sentinel-2-l2a.json", 37, 1184, 851),
    ("es-sentinel-2-l2a.json", 7, 342, 308),
    ("es-sentinel-2-c1-l2a.json", 6, 216, 186),
    ("pc-landsat-c2-l2.json", 14, 382, 382),
    ("pc-sentinel-1-rtc.json", 4, 16, 16),
];

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// Items through a geoparquet file and back.
fn round_trip(items: &[stac::Item], dir: &Path, name: &str) -> Vec<stac::Item> {
    let p = dir.join(name);
    save_snapshot(items, &p).unwrap_or_else(|e| panic!("{name}: {}", e.chain()));
    load_snapshot(&p).unwrap_or_else(|e| panic!("{name}: {}", e.chain()))
}

/// Every name a band can be asked for on `item`: asset keys, then the band
/// `name`s and `common_name`s of `eo:bands` and `bands`.
fn band_names(item: &stac::Item) -> Vec<BandName> {
    let mut names: Vec<String> = item.assets.keys().cloned().collect();
    for a in item.assets.values() {
        for list in ["eo:bands", "bands"] {
            let Some(Value::Array(bands)) = a.additional_fields.get(list) else {
                continue;
            };
            for b in bands {
                for k in ["name", "common_name"] {
                    if let Some(n) = b.get(k).and_then(Value::as_str) {
                        names.push(n.to_string());
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
        .iter()
        .filter_map(|n| BandName::new(n.as_str()).ok())
        .collect()
}

/// The scene `item` gives for each band alone, or the error's text.
fn scenes_by_band(item: &stac::Item) -> Vec<(BandName, Result<Scene, String>)> {
    band_names(item)
        .into_iter()
        .map(|b| {
            let s = Scene::from_item(item, std::slice::from_ref(&b)).map_err(|e| e.to_string());
            (b, s)
        })
        .collect()
}

/// An item's JSON with what a geoparquet round trip changes by design
/// normalized away (each case says why; the test asserts nothing else moves):
fn normalized(item: &stac::Item) -> Value {
    let mut v = serde_json::to_value(item).expect("an item serializes");
    // 1. rustac writes the STAC version it implements (1.1.0), not the item's.
    v["stac_version"] = json!("normalized");
    // 2. datetimes come back as RFC 3339 of the same instant, in another
    //    spelling (`…16.530560+00:00` for `…16.530560Z`).
    if let Some(p) = v.get_mut("properties").and_then(Value::as_object_mut) {
        for (k, x) in p.iter_mut() {
            if let Some(d) = x
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                && (k.contains("datetime") || ["created", "updated"].contains(&k.as_str()))
            {
                *x = json!(d.timestamp_micros());
            }
        }
    }
    numbers_and_nulls(&mut v);
    v
}

/// 3. Numbers: a column holding integers in one item and floats in another
///    is float for all (`0` becomes `0.0`): compared as f64.
/// 4. Nulls: a key another item has and this one lacks comes back null, and
///    a null comes back missing (parquet has one kind of missing value):
///    null-valued keys are dropped on both sides.
fn numbers_and_nulls(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                *v = json!(f);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(numbers_and_nulls),
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(numbers_and_nulls);
        }
        _ => {}
    }
}

#[test]
fn every_fixture_item_survives_geoparquet_as_the_same_scenes() {
    let dir = tempfile::tempdir().unwrap();
    for &(file, n_items, n_names, n_scenes) in FIXTURES {
        let items = load_snapshot(&fixture(&format!("stac/{file}"))).unwrap();
        assert_eq!(items.len(), n_items, "{file}");
        let back = round_trip(&items, dir.path(), &file.replace(".json", ".parquet"));
        assert_eq!(back.len(), items.len(), "{file}");
        let (mut names, mut scenes) = (0, 0);
        for (a, b) in items.iter().zip(&back) {
            assert_eq!(a.id, b.id, "{file}: the order of the items is kept");
            // to the microsecond: Landsat and Sentinel-1 datetimes carry them
            assert_eq!(a.properties.datetime, b.properties.datetime, "{}", a.id);
            let (sa, sb) = (scenes_by_band(a), scenes_by_band(b));
            assert_eq!(sa, sb, "{file}: {}", a.id);
            names += sa.len();
            scenes += sa.iter().filter(|(_, s)| s.is_ok()).count();
            // the JSON is the same but for the documented normalizations
            assert_eq!(normalized(a), normalized(b), "{file}: {}", a.id);
        }
        assert_eq!(
            (names, scenes),
            (n_names, n_scenes),
            "{file}: band names, and those that make a scene"
        );
    }
}

#[test]
fn items_as_catalogs_publish_them_survive_geoparquet() {
    let poly = json!({"type": "Polygon", "coordinates": [[
        [-122.5, 37.5], [-122.0, 37.5], [-122.0, 38.0], [-122.5, 38.0], [-122.5, 37.5]]]});
    // raster:bands scale/offset/nodata (Earth Search), eo:bands names
    let asset = |href: Option<&str>, crs: Option<&str>| {
        let mut a = json!({
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "proj:transform": [10.0, 0.0, 499980.0, 0.0, -10.0, 4200000.0],
            "proj:shape": [1098, 1098],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}],
            "eo:bands": [{"name": "B04", "common_name": "red"}]
        });
        if let Some(h) = href {
            a["href"] = json!(h);
        }
        if let Some(c) = crs {
            a["proj:code"] = json!(c);
        }
        a
    };
    let features = vec![
        // null geometry with a bbox; proj:epsg on the item
        json!({"type": "Feature", "stac_version": "1.0.0", "id": "null-geometry", "links": [],
            "geometry": null, "bbox": [-122.5, 37.5, -122.0, 38.0],
            "properties": {"datetime": "2019-08-01T18:59:21.123456Z", "proj:epsg": 32610},
            "assets": {"red": asset(Some("https://example.com/a/red.tif"), None)}}),
        // the same across the antimeridian: two rectangles
        json!({"type": "Feature", "stac_version": "1.0.0", "id": "antimeridian", "links": [],
            "geometry": null, "bbox": [179.5, -17.0, -179.5, -16.0],
            "properties": {"datetime": "2019-08-02T22:00:00Z", "proj:code": "EPSG:32760"},
            "assets": {"red": asset(Some("https://example.com/b/red.tif"), None)}}),
        // start/end without datetime; proj:code per asset; an asset without href
        json!({"type": "Feature", "stac_version": "1.1.0", "id": "interval", "links": [],
        "geometry": poly, "bbox": [-122.5, 37.5, -122.0, 38.0],
        "properties": {"datetime": null, "start_datetime": "2019-08-03T18:00:00.000001Z",
            "end_datetime": "2019-08-03T18:00:10Z", "eo:cloud_cover": 12.5},
        "assets": {
            "red": asset(Some("https://example.com/c/red.tif"), Some("EPSG:32610")),
            "qa": asset(None, Some("EPSG:32610"))
        }}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("quirks.json");
    std::fs::write(
        &json_path,
        json!({"type": "FeatureCollection", "features": features}).to_string(),
    )
    .unwrap();
    let items = load_snapshot(&json_path).unwrap();
    let back = round_trip(&items, dir.path(), "quirks.parquet");
    let red = BandName::new("red").unwrap();
    let qa = BandName::new("qa").unwrap();
    for (a, b) in items.iter().zip(&back) {
        assert_eq!(scenes_by_band(a), scenes_by_band(b), "{}", a.id);
        let s = Scene::from_item(b, std::slice::from_ref(&red)).unwrap();
        assert_eq!(
            s.assets[&red].scale_offset,
            Some((0.0001, -0.1)),
            "{}",
            a.id
        );
    }
    // a null geometry is written as the bbox's rectangle(s): the footprint
    // the scene took from the bbox
    // (a geometry column holds one type: the antimeridian's MultiPolygon
    // makes every row's geometry a MultiPolygon)
    let geometry = |i: usize| {
        let g = serde_json::to_value(back[i].geometry.as_ref().expect("a geometry")).unwrap();
        (g["type"].clone(), g["coordinates"].clone())
    };
    assert!(items[0].geometry.is_none() && items[1].geometry.is_none());
    let rect = json!([[
        [-122.5, 37.5],
        [-122.0, 37.5],
        [-122.0, 38.0],
        [-122.5, 38.0],
        [-122.5, 37.5]
    ]]);
    assert_eq!(geometry(0), (json!("MultiPolygon"), json!([rect])));
    // across the antimeridian: west of it, then east, each closed
    assert_eq!(
        geometry(1),
        (
            json!("MultiPolygon"),
            json!([
                [[
                    [179.5, -17.0],
                    [180.0, -17.0],
                    [180.0, -16.0],
                    [179.5, -16.0],
                    [179.5, -17.0]
                ]],
                [[
                    [-180.0, -17.0],
                    [-179.5, -17.0],
                    [-179.5, -16.0],
                    [-180.0, -16.0],
                    [-180.0, -17.0]
                ]]
            ])
        )
    );
    // the item's own polygon, the same rectangle
    assert_eq!(geometry(2), (json!("MultiPolygon"), json!([rect])));
    let s = Scene::from_item(&back[1], std::slice::from_ref(&red)).unwrap();
    assert_eq!(s.footprint.0.len(), 2, "split at the antimeridian");
    // start_datetime to the microsecond, datetime still null
    assert!(back[2].properties.datetime.is_none());
    assert_eq!(
        back[2].properties.start_datetime.unwrap().to_rfc3339(),
        "2019-08-03T18:00:00.000001+00:00"
    );
    // the asset without href stays harmless until asked for, then is named
    let e = Scene::from_item(&back[2], &[qa]).unwrap_err().to_string();
    assert!(
        e.contains("interval") && e.contains("qa") && e.contains("href"),
        "{e}"
    );
}

#[tokio::test]
async fn a_stack_from_a_geoparquet_snapshot_equals_the_one_from_the_json_snapshot() {
    let server = WorldServer::start(small_world()).await.unwrap();
    let live = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    let mut req = StackRequest::new(
        [-122.33, 37.81],
        BandName::parse_list("B04,B08,SCL").unwrap(),
        day(1),
        day(10),
    )
    .unwrap();
    req.cloud_band = Some(BandName::new("SCL").unwrap());
    let items = tilestack::stack::search_items(&live, &req).await.unwrap();
    // the recipe's acquisitions of 1–10 August: one on the 1st, 6th and 8th,
    // two on the 3rd (granules A and B), all over the tile
    let mut ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "S2A_MSIL2A_20190801T185921_R013_T10SEG_20190801T000000",
            "S2A_MSIL2A_20190803T185921_R013_T10SEG_20190803T000000",
            "S2A_MSIL2A_20190803T185924_R013_T10SFG_20190803T000000",
            "S2B_MSIL2A_20190806T185921_R013_T10SEG_20190806T000000",
            "S2B_MSIL2A_20190808T185921_R013_T10SEG_20190808T000000",
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let (json, parquet) = (
        dir.path().join("snap.json"),
        dir.path().join("snap.parquet"),
    );
    save_snapshot(&items, &json).unwrap();
    save_snapshot(&items, &parquet).unwrap();
    let mut stacks = Vec::new();
    for p in [&json, &parquet] {
        let from = Catalog::Items(load_snapshot(p).unwrap());
        let built = build(&from, &req, &cog_reader(), None).await.unwrap();
        stacks.push(built.stack);
    }
    let (a, b) = (&stacks[0], &stacks[1]);
    // values on the days with scenes (1, 3, 6, 8), none on the others
    assert_eq!(a.data.shape(), [10, 3, 256, 256]);
    let with_values: Vec<bool> = a
        .data
        .outer_iter()
        .map(|day| day.iter().any(|v| v.is_finite()))
        .collect();
    let with_items: Vec<bool> = a.items.iter().map(|i| !i.is_empty()).collect();
    assert_eq!(with_values, with_items);
    assert_eq!(
        with_items,
        [
            true, false, true, false, false, true, false, true, false, false
        ]
    );
    assert_eq!(a.days, b.days);
    assert_eq!(a.items, b.items);
    let bits = |s: &tilestack::TileStack| s.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a), bits(b), "pixel for pixel");
    for (x, y) in [
        (&a.eo_cloud_cover, &b.eo_cloud_cover),
        (&a.pct_nans, &b.pct_nans),
        (&a.tile_cloud_fraction, &b.tile_cloud_fraction),
    ] {
        let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(x), bits(y));
    }
    // and the scenes the plan made of them are the same
    let bands = req.read_bands();
    let sa = scenes_from_items(&load_snapshot(&json).unwrap(), &bands).unwrap();
    let sb = scenes_from_items(&load_snapshot(&parquet).unwrap(), &bands).unwrap();
    assert_eq!(sa, sb);
}

#[test]
fn a_corrupt_or_foreign_geoparquet_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let items = load_snapshot(&fixture("stac/pc-landsat-c2-l2.json")).unwrap();
    let good = dir.path().join("good.parquet");
    save_snapshot(&items, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.parquet", Vec::new()),
        (
            "text.parquet",
            b"PAR1 not really a parquet file PAR1".to_vec(),
        ),
        ("truncated.parquet", bytes[..bytes.len() / 2].to_vec()),
        ("headless.geoparquet", bytes[bytes.len() / 3..].to_vec()),
        ("flipped.parquet", {
            let mut b = bytes.clone();
            let n = b.len();
            for x in &mut b[n / 4..n / 4 + 64] {
                *x = !*x;
            }
            b
        }),
    ];
    for (name, b) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        match load_snapshot(&p) {
            Err(e) => assert!(e.to_string().contains(name), "{name}: {e}"),
            // a flip inside compressed data may decode to other values; it
            // must still be items, never a panic
            Ok(v) => assert_eq!(v.len(), items.len(), "{name}"),
        }
    }
    // a parquet file that is not GeoParquet
    let missing = dir.path().join("nope.parquet");
    let e = load_snapshot(&missing).unwrap_err().to_string();
    assert!(e.contains("nope.parquet"), "{e}");
    // no items: nothing to take a schema from
    let e = save_snapshot(&[], &dir.path().join("none.parquet"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.parquet"), "{e}");
}
