//! The demo world: valid COGs (checked by GDAL/rio-cogeo), determinism, labels.

use tilestack::demo::{Recipe, World};

use crate::util::{python_script, small_world};

#[test]
fn cogs_are_valid_and_match_item_metadata() {
    let w = small_world();
    let stdout = python_script("check_world.py", [w.dir()]);
    let stdout = String::from_utf8_lossy(&stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // 18 S2 scenes of 6 bands, 10 S1 passes of 2, the DEM and the land cover
    assert_eq!(report["checked"], 18 * 6 + 10 * 2 + 2, "{report}");
    assert_eq!(report["on_the_s2_grid"], 10 * 2 + 2, "{report}");
}

#[test]
fn world_has_what_the_recipe_promises() {
    let w = small_world();
    let m = w.manifest();
    assert_eq!(m.scenes.len(), 18);
    // several days with two granules, one scene in the neighbouring zone, partial footprints
    let mut per_day = std::collections::BTreeMap::new();
    for s in &m.scenes {
        *per_day.entry(&s.datetime[..10]).or_insert(0) += 1;
    }
    assert_eq!(per_day.values().filter(|&&n| n == 2).count(), 4);
    assert!(m.scenes.iter().any(|s| s.epsg.code() == 32611));
    assert!(m.scenes.iter().filter(|s| s.nodata_pct > 1.0).count() >= 2);
    assert!(m.scenes.iter().any(|s| s.cloud_cover > 10.0));
    assert!(m.scenes.iter().any(|s| s.cloud_cover == 0.0));
    // items: proj:code and proj:epsg, cloud cover in percent, PC-like asset keys
    for it in w.items().unwrap() {
        let p = &it.properties.additional_fields;
        let code = p["proj:code"].as_str().unwrap();
        assert_eq!(code, format!("EPSG:{}", p["proj:epsg"]));
        let cc = p["eo:cloud_cover"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cc));
        let keys: Vec<_> = it.assets.keys().cloned().collect();
        assert_eq!(keys, ["B02", "B03", "B04", "B08", "B11", "SCL"]);
        assert_eq!(it.assets["B11"].additional_fields["gsd"], 20.0);
    }
    // ship labels: features with a datetime on every acquisition day
    let ships: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.ships_path()).unwrap()).unwrap();
    let feats = ships["features"].as_array().unwrap();
    let days: std::collections::BTreeSet<_> = feats
        .iter()
        .map(|f| f["properties"]["datetime"].as_str().unwrap()[..10].to_string())
        .collect();
    // S2 days and the Sentinel-1-only days (tests/it/sensors.rs checks which)
    assert!(days.len() > per_day.len());
    assert!(per_day.keys().all(|d| days.contains(*d)));
    assert!(feats.len() >= 3 * days.len());
}

#[test]
fn generation_is_deterministic() {
    let mut r = Recipe::oakland();
    r.scene_size = 128;
    r.cog_tile_size = 64;
    r.acquisitions.truncate(2);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let wa = World::generate(&r, a.path()).unwrap();
    World::generate(&r, b.path()).unwrap();
    let mut files = 0;
    for s in &wa.manifest().scenes {
        for band in ["B04", "SCL"] {
            let rel = format!("data/{}/{band}.tif", s.id);
            let x = std::fs::read(a.path().join(&rel)).unwrap();
            let y = std::fs::read(b.path().join(&rel)).unwrap();
            assert_eq!(x, y, "{rel} differs between two runs");
            files += 1;
        }
    }
    assert_eq!(files, 6);
    assert_eq!(
        std::fs::read(
            a.path()
                .join("items")
                .join(format!("{}.json", wa.manifest().scenes[0].id))
        )
        .unwrap(),
        std::fs::read(
            b.path()
                .join("items")
                .join(format!("{}.json", wa.manifest().scenes[0].id))
        )
        .unwrap()
    );
}

#[test]
fn cache_reuses_a_complete_world_and_rejects_others() {
    let mut r = Recipe::oakland();
    r.name = "tiny".into();
    r.scene_size = 128;
    r.cog_tile_size = 64;
    r.acquisitions.truncate(1);
    let root = tempfile::tempdir().unwrap();
    let w1 = World::cached_in(&r, root.path()).unwrap();
    let stamp = std::fs::metadata(w1.dir().join("world.json"))
        .unwrap()
        .modified()
        .unwrap();
    let w2 = World::cached_in(&r, root.path()).unwrap();
    assert_eq!(w1.dir(), w2.dir());
    assert_eq!(
        stamp,
        std::fs::metadata(w2.dir().join("world.json"))
            .unwrap()
            .modified()
            .unwrap(),
        "second call reuses the cache"
    );
    let not = tempfile::tempdir().unwrap();
    let e = World::open(not.path()).unwrap_err().to_string();
    assert!(
        e.contains("is not a tilestack world") && e.contains("world.json"),
        "{e}"
    );
}

/// The second committed world (`datasets/second-port`), at 128 px scenes:
/// its ship truth holds ships that dwell (one `ship_id`, one footprint on
/// consecutive acquisition days), arrive and leave, at each of its three
/// terminals, and the ship under way; and its dataset config parses.
#[test]
fn the_second_world_has_dwelling_ships_at_three_terminals() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    let mut r = Recipe::from_file(&root.join("second-port/recipe.toml")).unwrap();
    r.scene_size = 128;
    r.cog_tile_size = 64;
    let dir = tempfile::tempdir().unwrap();
    let w = World::generate(&r, dir.path()).unwrap();
    let ships: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.ships_path()).unwrap()).unwrap();
    // ship_id -> (day of month, ring) per day seen
    let mut seen: std::collections::BTreeMap<String, Vec<(u32, serde_json::Value)>> =
        std::collections::BTreeMap::new();
    let mut terminals = std::collections::BTreeSet::new();
    for f in ships["features"].as_array().unwrap() {
        let p = &f["properties"];
        assert!(p["datetime"].as_str().unwrap().starts_with("2020-06-"));
        let day: u32 = p["datetime"].as_str().unwrap()[8..10].parse().unwrap();
        let id = p["ship_id"].as_str().unwrap().to_string();
        if id == "under-way" {
            assert!(p["arrival_day"].is_null() && p["departure_day"].is_null());
        } else {
            let (a, d) = (
                p["arrival_day"].as_u64().unwrap() as u32,
                p["departure_day"].as_u64().unwrap() as u32,
            );
            assert!((a..d).contains(&day) && (2..=7).contains(&(d - a)), "{p}");
            terminals.insert(p["terminal"].as_str().unwrap().to_string());
        }
        seen.entry(id)
            .or_default()
            .push((day, f["geometry"].clone()));
    }
    assert_eq!(terminals.len(), 3, "{terminals:?}");
    let dwelling = seen
        .iter()
        .filter(|(id, v)| *id != "under-way" && v.len() >= 2)
        .inspect(|(id, v)| assert!(v.iter().all(|(_, g)| *g == v[0].1), "{id} moved"))
        .count();
    assert!(dwelling >= 5, "{dwelling} ships seen on several days");
    assert!(
        seen["under-way"].len() >= 20,
        "the ship under way every day"
    );
    // the committed dataset over it parses
    let cfg = tilestack::DatasetConfig::from_file(&root.join("second-port-ships.toml")).unwrap();
    assert_eq!(cfg.labels[0].name, "ships");
    assert_eq!(
        cfg.catalog_source().unwrap(),
        tilestack::dataset::CatalogSource::Demo(Some(root.join("second-port/recipe.toml")))
    );
}
