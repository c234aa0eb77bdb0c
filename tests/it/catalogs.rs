//! Real catalogs as users have them: 68 STAC items from Planetary Computer
//! and Earth Search (tests/fixtures/stac, see its PROVENANCE.md) become
//! scenes and plans with nothing fetched, and one band request works on
//! both catalogs' naming.

use std::path::PathBuf;

use geo::InteriorPoint;
use tilestack::stac::{Scene, load_snapshot};
use tilestack::{BandName, Catalog, StackRequest, plan_stack};

/// The fixture files: (file, bands every item of it must resolve).
const FILES: &[(&str, &[&str])] = &[
    (
        "pc-sentinel-2-l2a.json",
        &[
            // keys, then common names, then a multi-band asset by key
            "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
            "SCL", "AOT", "WVP", "coastal", "blue", "green", "red", "nir", "swir16", "swir22",
            "visual", "scl",
            // Earth Search's names for bands Planetary Computer names otherwise
            "nir08", "rededge1", "nir09",
        ],
    ),
    (
        "es-sentinel-2-l2a.json",
        &[
            // band names, then keys, then SCL by key ignoring case
            "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
            "coastal", "blue", "green", "red", "nir", "nir08", "swir16", "swir22", "rededge1",
            "SCL", "aot", "wvp", "visual",
        ],
    ),
    (
        "es-sentinel-2-c1-l2a.json",
        &[
            "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
            "coastal", "blue", "green", "red", "nir", "nir08", "swir16", "swir22", "SCL", "cloud",
        ],
    ),
    (
        "pc-landsat-c2-l2.json",
        &[
            "coastal",
            "blue",
            "green",
            "red",
            "nir08",
            "swir16",
            "swir22",
            "OLI_B4",
            "OLI_B5",
            "qa_pixel",
            "qa_aerosol",
        ],
    ),
    ("pc-sentinel-1-rtc.json", &["vv", "vh", "VV"]),
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stac")
        .join(name)
}

fn items(name: &str) -> Vec<stac::Item> {
    load_snapshot(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn bands(names: &[&str]) -> Vec<BandName> {
    names
        .iter()
        .map(|b| BandName::new(*b).expect("a band name"))
        .collect()
}

/// The `eo:bands` centre wavelength (µm) of an item's single-band asset:
/// what the band physically is, whatever either catalog calls it.
fn wavelength_of(item: &stac::Item, key: &str) -> Option<f64> {
    let bands = item.assets.get(key)?.additional_fields.get("eo:bands")?;
    match bands.as_array()?.as_slice() {
        [b] => b.get("center_wavelength")?.as_f64(),
        _ => None,
    }
}

#[test]
fn every_fixture_item_becomes_a_scene_with_its_bands() {
    let mut total = 0;
    for (file, names) in FILES {
        for item in items(file) {
            total += 1;
            let want = bands(names);
            let s = Scene::from_item(&item, &want).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            assert_eq!(s.id, item.id);
            // labels are the ones asked for, each with a real asset
            assert_eq!(s.assets.len(), want.len(), "{}", item.id);
            for b in &want {
                let a = &s.assets[b];
                assert!(item.assets.contains_key(&a.key), "{} {b}", item.id);
                assert!(
                    a.href.starts_with("https://"),
                    "{} {b}: {}",
                    item.id,
                    a.href
                );
                assert!(
                    (32601..=32660).contains(&a.epsg.code())
                        || (32701..=32760).contains(&a.epsg.code()),
                    "{} {b}: EPSG:{} is not UTM",
                    item.id,
                    a.epsg.code()
                );
                assert!(a.shape.0 > 100 && a.shape.1 > 100, "{} {b}", item.id);
            }
            assert!(!s.footprint.0.is_empty(), "{}", item.id);
        }
    }
    assert_eq!(total, 68, "the fixtures hold 68 items");
}

#[test]
fn lwir_and_the_jpeg2000_copies_resolve_where_items_have_them() {
    // Landsat: only L2SP items carry the thermal band; by key and by band name
    for item in items("pc-landsat-c2-l2.json") {
        let r = Scene::from_item(&item, &bands(&["lwir11", "TIRS_B10"]));
        if item.id.contains("_L2SP_") {
            let s = r.unwrap_or_else(|e| panic!("{e:#}"));
            let b = &bands(&["TIRS_B10"])[0];
            assert_eq!(s.assets[b].key, "lwir11");
            assert_eq!(s.assets[b].scale_offset, Some((0.00341802, 149.0)));
        } else {
            let e = r.expect_err("an L2SR item has no thermal band").to_string();
            assert!(e.contains(&item.id) && e.contains("\"lwir11\""), "{e}");
        }
    }
    // Earth Search: the GeoTIFF `red` wins over `red-jp2` for B04; the copy stays reachable by key
    for item in items("es-sentinel-2-l2a.json") {
        let s = Scene::from_item(&item, &bands(&["B04", "red-jp2"])).expect("a scene");
        assert_eq!(s.assets[&bands(&["B04"])[0]].key, "red");
        assert!(s.assets[&bands(&["red-jp2"])[0]].href.ends_with(".jp2"));
    }
}

#[test]
fn key_band_name_and_common_name_give_the_same_assets() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        // Planetary Computer: keys vs common names
        (
            "pc-sentinel-2-l2a.json",
            &["B04", "B03", "B02", "B08", "B11", "B12", "B01"],
            &["red", "green", "blue", "nir", "swir16", "swir22", "coastal"],
        ),
        // Earth Search: band names vs keys
        (
            "es-sentinel-2-l2a.json",
            &["B04", "B03", "B02", "B08", "B11", "B12", "B8A"],
            &["red", "green", "blue", "nir", "swir16", "swir22", "nir08"],
        ),
        (
            "es-sentinel-2-c1-l2a.json",
            &["B04", "B03", "B02", "B08", "B11", "B12", "B8A"],
            &["red", "green", "blue", "nir", "swir16", "swir22", "nir08"],
        ),
        // Landsat: band names vs keys
        (
            "pc-landsat-c2-l2.json",
            &["OLI_B4", "OLI_B3", "OLI_B2", "OLI_B5", "OLI_B6", "OLI_B7"],
            &["red", "green", "blue", "nir08", "swir16", "swir22"],
        ),
    ];
    for (file, a, b) in cases {
        for item in items(file) {
            let (ba, bb) = (bands(a), bands(b));
            let sa = Scene::from_item(&item, &ba).expect("by the first naming");
            let sb = Scene::from_item(&item, &bb).expect("by the second naming");
            for (x, y) in ba.iter().zip(&bb) {
                let (ax, ay) = (&sa.assets[x], &sb.assets[y]);
                assert_eq!(ax.key, ay.key, "{} {x} vs {y}", item.id);
                assert_eq!(ax, ay, "{} {x} vs {y}", item.id);
            }
        }
    }
}

#[test]
fn earth_search_and_planetary_computer_read_the_same_bands_in_the_same_order() {
    let es = items("es-sentinel-2-l2a.json");
    let c1 = items("es-sentinel-2-c1-l2a.json");
    let pc = items("pc-sentinel-2-l2a.json");
    for request in [
        ["red", "green", "blue", "nir"],
        ["B04", "B03", "B02", "B08"],
    ] {
        let want = bands(&request);
        for item in es.iter().chain(&c1).chain(&pc) {
            let s = Scene::from_item(item, &want).expect("a scene");
            // in request order, the band each label reads: B04, B03, B02, B08 by wavelength
            let read: Vec<f64> = want
                .iter()
                .map(|b| wavelength_of(item, &s.assets[b].key).unwrap_or_default())
                .collect();
            assert_eq!(read, [0.665, 0.56, 0.49, 0.842], "{} {request:?}", item.id);
            let keys: Vec<&str> = want.iter().map(|b| s.assets[b].key.as_str()).collect();
            let expect = if pc.contains(item) {
                ["B04", "B03", "B02", "B08"]
            } else {
                ["red", "green", "blue", "nir"]
            };
            assert_eq!(keys, expect, "{}", item.id);
        }
    }
}

/// A one-day request over the middle of an item's footprint.
fn request_on(item: &stac::Item, names: &[&str]) -> StackRequest {
    let s = Scene::from_item(item, &[]).expect("a footprint and a time");
    let p = s.footprint.interior_point().expect("a non-empty footprint");
    let day = s.datetime.date_naive();
    StackRequest::new([p.x(), p.y()], bands(names), day, day).expect("a request")
}

#[tokio::test]
async fn every_fixture_item_plans_from_a_snapshot_without_fetching() {
    let mut planned = 0;
    for (file, names) in FILES {
        // the readable single-band assets (no `visual`, no JPEG 2000)
        let names: Vec<&str> = names
            .iter()
            .copied()
            .filter(|b| *b != "visual")
            .take(4)
            .collect();
        for item in items(file) {
            let req = request_on(&item, &names);
            let catalog = Catalog::Items(vec![item.clone()]);
            let (plan, got) = plan_stack(&catalog, &req)
                .await
                .unwrap_or_else(|e| panic!("{}: {e:#}", item.id));
            assert_eq!(got.len(), 1);
            assert!(plan.warnings.is_empty(), "{}: {:?}", item.id, plan.warnings);
            assert_eq!(plan.scenes.len(), 1, "{}", item.id);
            assert_eq!(plan.read_bands, bands(&names));
            assert_eq!(plan.shape(), [1, names.len(), 256, 256]);
            // one window per band, in request order, each from the asset that band resolved to
            let bands_read: Vec<usize> = plan.reads.iter().map(|r| r.band).collect();
            assert_eq!(
                bands_read,
                (0..names.len()).collect::<Vec<_>>(),
                "{}",
                item.id
            );
            for r in &plan.reads {
                let a = &plan.scenes[0].assets[&plan.read_bands[r.band]];
                assert_eq!(r.href, a.href);
                assert!(r.window.pixels() > 0, "{}", item.id);
            }
            planned += 1;
        }
    }
    assert_eq!(planned, 68);
}

/// A fixture item as JSON, to break on purpose.
fn item_json(file: &str, i: usize) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(file)).expect("a fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    v["features"][i].clone()
}

/// Items through the snapshot loader, as a user's file would come.
fn via_snapshot(features: Vec<serde_json::Value>) -> Vec<stac::Item> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let p = dir.path().join("items.json");
    let doc = serde_json::json!({"type": "FeatureCollection", "features": features});
    std::fs::write(&p, doc.to_string()).expect("write");
    load_snapshot(&p).expect("items without some hrefs still load")
}

#[test]
fn a_requested_asset_without_href_names_the_item_the_band_and_the_asset() {
    // Earth Search: `nir` loses its href; asked for by band name and by key
    let mut es = item_json("es-sentinel-2-l2a.json", 0);
    es["assets"]["nir"]
        .as_object_mut()
        .expect("an asset")
        .remove("href");
    let id = es["id"].as_str().expect("an id").to_string();
    let item = &via_snapshot(vec![es])[0];
    // other bands are unaffected
    Scene::from_item(item, &bands(&["red", "B03"])).expect("bands with hrefs");
    let e = Scene::from_item(item, &bands(&["red", "B08"]))
        .expect_err("B08 is nir, which has no href")
        .to_string();
    assert!(
        e.contains(&format!("item {id}"))
            && e.contains("asset nir")
            && e.contains("\"B08\"")
            && e.contains("no href"),
        "{e}"
    );
    let e = Scene::from_item(item, &bands(&["nir"]))
        .expect_err("nir has no href")
        .to_string();
    assert!(
        e.contains(&id) && e.contains("asset nir has no href"),
        "{e}"
    );
    // Planetary Computer: the same by key
    let mut pc = item_json("pc-sentinel-2-l2a.json", 0);
    pc["assets"]["B08"]
        .as_object_mut()
        .expect("an asset")
        .remove("href");
    let id = pc["id"].as_str().expect("an id").to_string();
    let item = &via_snapshot(vec![pc])[0];
    let e = Scene::from_item(item, &bands(&["nir"]))
        .expect_err("nir is B08, which has no href")
        .to_string();
    assert!(
        e.contains(&id) && e.contains("asset B08") && e.contains("\"nir\""),
        "{e}"
    );
}

#[test]
fn a_band_nobody_has_lists_what_the_item_has_and_a_tie_names_the_assets() {
    let item = &items("pc-sentinel-2-l2a.json")[0];
    let e = Scene::from_item(item, &bands(&["red", "lwir11"]))
        .expect_err("Sentinel-2 has no thermal band")
        .to_string();
    assert!(
        e.contains(&format!("item {}", item.id))
            && e.contains("has no band \"lwir11\"")
            && e.contains("asset keys: AOT, B01, B02")
            && e.contains("band names: B01, B02")
            && e.contains("common names: blue, coastal, green, nir, red, rededge, swir16, swir22"),
        "{e}"
    );
    let e = Scene::from_item(item, &bands(&["rededge"]))
        .expect_err("four assets share the common name")
        .to_string();
    assert!(
        e.contains(&item.id) && e.contains("assets B05, B06, B07, B8A all match by common name"),
        "{e}"
    );
    // the Sentinel-2 aliases apply to Sentinel-2 items only
    let landsat = &items("pc-landsat-c2-l2.json")[0];
    let e = Scene::from_item(landsat, &bands(&["B04"]))
        .expect_err("B04 is no Landsat band")
        .to_string();
    assert!(e.contains(&landsat.id) && e.contains("\"B04\""), "{e}");
}

#[test]
fn catalog_quirks_null_geometry_start_datetime_and_asset_level_proj() {
    let mut v = item_json("pc-sentinel-1-rtc.json", 0);
    let id = v["id"].as_str().expect("an id").to_string();
    let bbox: Vec<f64> = serde_json::from_value(v["bbox"].clone()).expect("a bbox");
    v["geometry"] = serde_json::Value::Null;
    v["properties"]["datetime"] = serde_json::Value::Null;
    // the asset's own CRS wins over the item's
    v["assets"]["vv"]["proj:code"] = serde_json::json!("EPSG:32634");
    let start = v["properties"]["start_datetime"].clone();
    let item = &via_snapshot(vec![v])[0];
    let s = Scene::from_item(item, &bands(&["vv", "vh"])).expect("a scene");
    assert_eq!(s.id, id);
    let start = chrono::DateTime::parse_from_rfc3339(start.as_str().expect("a start"))
        .expect("an RFC 3339 start");
    assert_eq!(s.datetime, start);
    let ext = geo::BoundingRect::bounding_rect(&s.footprint).expect("a footprint");
    assert_eq!(
        [ext.min().x, ext.min().y, ext.max().x, ext.max().y],
        bbox.as_slice()
    );
    assert_eq!(s.assets[&bands(&["vv"])[0]].epsg.code(), 32634);
    assert_eq!(s.assets[&bands(&["vh"])[0]].epsg.code(), 32633);
    assert_eq!(s.assets[&bands(&["vv"])[0]].nodata, Some(-32768.0));
}
