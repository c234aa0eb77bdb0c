//! Search by region (`dataset::region`): a dataset opened with one search
//! per time window and cell gives every sample the plan that a search for
//! that sample alone gives, keeps and drops the same samples, and holds
//! each scene once.

use std::path::Path;

use tilestack::demo::{Recipe, World, WorldServer};
use tilestack::stac::scenes_from_items;
use tilestack::stack::{StackPlan, search_items};
use tilestack::{Catalog, DatasetConfig, TileDataset};

use crate::util::small_world;

/// What a search per sample gives: for every candidate (sampler order),
/// its id, its plan (Debug text) and whether the filters keep it.
fn per_place(
    rt: &tokio::runtime::Runtime,
    cfg: &DatasetConfig,
    cat: &Catalog,
) -> Vec<(String, String, bool)> {
    let points = cfg.sampler.points(&cfg.path, cfg.seed).unwrap();
    let windows = cfg.time.windows().unwrap();
    let mut out = Vec::new();
    for p in &points {
        for &(a, b) in &windows {
            let req = cfg.request([p.lon, p.lat], a, b).unwrap();
            let items = rt.block_on(search_items(cat, &req)).unwrap();
            let scenes: Vec<_> = scenes_from_items(&items, &req.read_bands())
                .unwrap()
                .into_iter()
                .filter(|s| {
                    cfg.filters
                        .max_cloud_cover
                        .is_none_or(|m| s.cloud_cover.is_none_or(|c| c <= m))
                })
                .collect();
            let plan = StackPlan::new(&scenes, &req).unwrap();
            // min_footprint_cover is 0 in these configs: a step with a scene counts
            assert_eq!(cfg.filters.min_footprint_cover, 0.0);
            let days = plan.bins.iter().filter(|(_, s)| !s.is_empty()).count();
            let id = if windows.len() > 1 {
                format!("{}@{a}", p.id)
            } else {
                p.id.clone()
            };
            out.push((
                id,
                format!("{plan:?}"),
                days >= cfg.filters.min_days_with_data,
            ));
        }
    }
    out
}

/// The dataset's samples are the kept ones of `per_place`, in order, each
/// with the same plan; every scene is held once.
fn assert_same_as_per_place(ds: &TileDataset, want: &[(String, String, bool)]) {
    let kept: Vec<&(String, String, bool)> = want.iter().filter(|w| w.2).collect();
    let r = ds.report();
    assert_eq!(r.candidates, want.len(), "{r}");
    assert_eq!(ds.len(), kept.len(), "{r}");
    assert!(!ds.is_empty());
    for (i, (id, plan, _)) in kept.iter().enumerate() {
        assert_eq!(&ds.samples()[i].id, id);
        let mine = format!("{:?}", ds.plan(i).unwrap());
        assert_eq!(&mine, plan, "sample {id}: the region's plan differs");
    }
    let mut ids: Vec<&str> = ds.scenes().iter().map(|s| s.id.as_str()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a scene held twice");
    assert_eq!(r.scenes, n);
}

#[test]
fn the_oakland_ships_dataset_plans_as_a_search_per_place_does() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = World::cached(&Recipe::oakland()).unwrap();
    let server = rt.block_on(WorldServer::start(&world)).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/oakland-ships.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "demo = \"oakland\"",
        &format!(
            "stac = {:?}\ncollection = {:?}",
            server.stac_url(),
            world.manifest().collection
        ),
    );
    // the ships label names the demo world's layer, which needs catalog.demo;
    // labels play no part in plans
    let (head, tail) = text.split_once("[[labels]]").unwrap();
    let text = format!("{head}{}", &tail[tail.find("[[masks]]").unwrap()..]);
    let cfg = DatasetConfig::from_toml_str(&text, &path).unwrap();
    let cat = Catalog::stac(&server.stac_url(), &world.manifest().collection).unwrap();
    let want = per_place(&rt, &cfg, &cat);
    let ds = TileDataset::open(&cfg).unwrap();
    assert_same_as_per_place(&ds, &want);
    // 32 places over the port, one window: one cell, one search
    assert_eq!(ds.report().searches, 1, "{:?}", ds.report());
    // some places were dropped (fewer than 5 days), as before
    assert_eq!(ds.report().kept, want.iter().filter(|w| w.2).count());
    rt.block_on(server.shutdown());
}

#[test]
fn several_windows_a_cloud_filter_and_a_snapshot_plan_as_per_place() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(WorldServer::start(small_world())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stac = format!(
        "stac = {:?}\ncollection = \"sentinel-2-l2a\"",
        server.stac_url()
    );
    let cat = Catalog::stac(&server.stac_url(), "sentinel-2-l2a").unwrap();
    // the world's items, saved as a snapshot
    let items = rt
        .block_on(search_items(
            &cat,
            &tilestack::StackRequest::new(
                [-122.33, 37.81],
                tilestack::BandName::parse_list("B04").unwrap(),
                crate::util::day(1),
                crate::util::day(31),
            )
            .unwrap(),
        ))
        .unwrap();
    assert!(items.len() > 4);
    let snap = dir.path().join("items.json");
    tilestack::stac::save_snapshot(&items, &snap).unwrap();
    let snapshot = format!("snapshot = {:?}", snap.display().to_string());
    for (catalog, cloud) in [
        (&stac, ""),
        (&stac, "max_cloud_cover = 40"),
        (&snapshot, ""),
    ] {
        // a grid over the world and past its east edge (places with few
        // or no scenes), four windows of 6 days
        let text = format!(
            r#"seed = 5
[catalog]
{catalog}
[stack]
bands = ["B04", "B08"]
tile_size = 24
[time]
range = "2019-08-01/2019-08-24"
window_days = 6
stride_days = 6
[sampler]
kind = "grid"
bbox = [-122.40, 37.78, -122.20, 37.84]
stride_m = 2500
[filters]
min_days_with_data = 2
{cloud}
"#
        );
        let path = dir.path().join("ds.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = DatasetConfig::from_file(&path).unwrap();
        let cat = match cfg.catalog_source().unwrap() {
            tilestack::dataset::CatalogSource::Snapshot(p) => {
                Catalog::Items(tilestack::stac::load_snapshot(&p).unwrap())
            }
            _ => cat.clone(),
        };
        let want = per_place(&rt, &cfg, &cat);
        let ds = TileDataset::open(&cfg).unwrap();
        assert_same_as_per_place(&ds, &want);
        let r = ds.report();
        assert!(
            want.len() > 40 && r.kept < want.len(),
            "{r} of {}",
            want.len()
        );
        let searches = if catalog == &snapshot { 0 } else { 4 };
        assert_eq!(r.searches, searches, "one per window (one cell)");
        // the places past the world's edge: no scene, said once each
        assert!(
            r.warnings.iter().any(|w| w.contains("no scene")),
            "{:?}",
            r.warnings
        );
    }
    rt.block_on(server.shutdown());
}
