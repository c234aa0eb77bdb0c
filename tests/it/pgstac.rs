//! End to end against stac-fastapi-pgstac 7.2 + pgstac 0.10 on PostgreSQL/PostGIS:
//! the STAC server stack Planetary Computer runs, on 127.0.0.1.
//!
//! `.ci/pgstac.sh start DIR` installs and starts one and writes `DIR/env`
//! (`.ci/run` does this around `./tests/run.sh --include-ignored`). The
//! tests are `#[ignore]`d, so a plain `./tests/run.sh` lists them as ignored
//! rather than passing them unrun; run with `--include-ignored` they need
//! `TILESTACK_PGSTAC_URL` and `TILESTACK_PGSTAC_DSN` and fail, saying so,
//! without them. They load the small demo world into that (throw-away)
//! database once per test binary with `pypgstac load`, then search it with
//! tilestack's own client.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use tilestack::BandName;
use tilestack::demo::WorldServer;
use tilestack::stac::{SearchRequest, SearchResults, StacClient, load_snapshot, save_snapshot};

use crate::util::small_world;

const COLLECTION: &str = "sentinel-2-l2a";
const AUGUST: &str = "2019-08-01/2019-08-30";

/// Why these tests are ignored by default.
const NEEDS: &str = "needs a pgstac server: bash .ci/pgstac.sh start DIR && source DIR/env";

/// The pgstac API root once the world is loaded; panics, saying what to
/// start, when no pgstac server is configured.
fn pgstac() -> &'static str {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(dsn)) = (var("TILESTACK_PGSTAC_URL"), var("TILESTACK_PGSTAC_DSN")) else {
        panic!("TILESTACK_PGSTAC_URL / TILESTACK_PGSTAC_DSN not set: this test {NEEDS}");
    };
    static LOADED: OnceLock<String> = OnceLock::new();
    LOADED.get_or_init(|| {
        load_world(&dsn);
        url
    })
}

/// `pypgstac load` of the small world's collection and items (upserts, so
/// reruns against the same database are fine).
fn load_world(dsn: &str) {
    let w = small_world();
    let pypgstac = std::env::var("TILESTACK_PGSTAC_PYPGSTAC").unwrap_or_else(|_| "pypgstac".into());
    let tmp = tempfile::tempdir().unwrap();
    let ndjson = tmp.path().join("items.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&ndjson).unwrap());
    let mut files: Vec<_> = std::fs::read_dir(w.dir().join("items"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        // the S2 collection's items (items/ also holds the S1, DEM and land-cover ones)
        .filter(|p| {
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            w.manifest().scenes.iter().any(|s| s.id == stem)
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), w.manifest().scenes.len(), "items/*.json");
    for f in &files {
        // The item exactly as on disk, one compact line each.
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        writeln!(out, "{v}").unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    let collection = w.dir().join("collection.json");
    run_pypgstac(&pypgstac, "collections", &collection, dsn);
    run_pypgstac(&pypgstac, "items", &ndjson, dsn);
}

fn run_pypgstac(pypgstac: &str, table: &str, file: &Path, dsn: &str) {
    let out = Command::new(pypgstac)
        .args(["load", table])
        .arg(file)
        .args(["--dsn", dsn, "--method", "upsert"])
        .output()
        .unwrap_or_else(|e| panic!("running {pypgstac} (set TILESTACK_PGSTAC_PYPGSTAC?): {e}"));
    assert!(
        out.status.success(),
        "{pypgstac} load {table} {} failed ({}):\n{}\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn oakland_august() -> SearchRequest {
    let bbox = tilestack::geo::bbox_around(-122.33, 37.81, 2816.0).unwrap();
    SearchRequest::new(COLLECTION)
        .bbox(bbox)
        .datetime(AUGUST)
        .unwrap()
}

async fn search(url: &str, req: &SearchRequest) -> SearchResults {
    let res = StacClient::new(url).unwrap().search(req).await.unwrap();
    assert!(res.warnings.is_empty(), "{url}: {:?}", res.warnings);
    res
}

fn ids(res: &SearchResults) -> Vec<String> {
    res.items.iter().map(|i| i.id.clone()).collect()
}

fn sorted_ids(res: &SearchResults) -> Vec<String> {
    let mut v = ids(res);
    v.sort();
    v
}

fn cloud_cover(item: &stac::Item) -> f64 {
    item.properties.additional_fields["eo:cloud_cover"]
        .as_f64()
        .unwrap_or_else(|| panic!("{} has no numeric eo:cloud_cover", item.id))
}

#[tokio::test]
#[ignore = "needs a pgstac server (.ci/pgstac.sh; .ci/run runs it)"]
async fn pgstac_holds_exactly_the_world_as_written() {
    let url = pgstac();
    let w = small_world();
    let res = search(url, &SearchRequest::new(COLLECTION)).await;
    let on_disk: BTreeMap<String, stac::Item> = w
        .items()
        .unwrap()
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    assert_eq!(
        sorted_ids(&res),
        on_disk.keys().cloned().collect::<Vec<_>>(),
        "the pgstac database must hold exactly the small world (use a fresh .ci/pgstac.sh RUN_DIR)"
    );
    // pgstac stores geometry in PostGIS and dehydrates items against the
    // collection; what comes back must still be the item as written.
    for it in &res.items {
        let disk = &on_disk[&it.id];
        assert_eq!(it.geometry, disk.geometry, "{} footprint", it.id);
        assert_eq!(it.bbox, disk.bbox, "{} bbox", it.id);
        assert_eq!(
            it.properties.datetime, disk.properties.datetime,
            "{}",
            it.id
        );
        assert_eq!(cloud_cover(it), cloud_cover(disk), "{}", it.id);
        assert_eq!(it.assets, disk.assets, "{} assets", it.id);
    }
}

#[tokio::test]
#[ignore = "needs a pgstac server (.ci/pgstac.sh; .ci/run runs it)"]
async fn pgstac_pages_like_the_in_process_server() {
    let url = pgstac();
    let mut req = oakland_august();
    req.limit = Some(5);
    let pg = search(url, &req).await;
    assert!(
        pg.pages >= 4,
        "16 items at 5 a page came in {} pages",
        pg.pages
    );
    let unique: HashSet<_> = ids(&pg).into_iter().collect();
    assert_eq!(unique.len(), pg.items.len(), "duplicate ids");

    let server = WorldServer::start(small_world()).await.unwrap();
    let local = search(&server.stac_url(), &req).await;
    server.shutdown().await;
    assert_eq!(local.items.len(), 16);
    assert_eq!(sorted_ids(&pg), sorted_ids(&local));

    // One page when the limit allows it.
    req.limit = Some(100);
    let one = search(url, &req).await;
    assert_eq!(one.pages, 1);
    assert_eq!(sorted_ids(&one), sorted_ids(&local));
}

#[tokio::test]
#[ignore = "needs a pgstac server (.ci/pgstac.sh; .ci/run runs it)"]
async fn pgstac_evaluates_the_query_extension() {
    let url = pgstac();
    let scenes = &small_world().manifest().scenes;
    let mut counts = Vec::new();
    for lt in [0.0, 1.0, 20.0, 50.0, 100.0] {
        let req = SearchRequest::new(COLLECTION).query(json!({"eo:cloud_cover": {"lt": lt}}));
        let res = search(url, &req).await;
        let mut want: Vec<String> = scenes
            .iter()
            .filter(|s| s.cloud_cover < lt)
            .map(|s| s.id.clone())
            .collect();
        want.sort();
        assert_eq!(sorted_ids(&res), want, "eo:cloud_cover < {lt}");
        assert!(res.items.iter().all(|i| cloud_cover(i) < lt));
        counts.push(want.len());
    }
    // The world has clear and cloudy scenes: a looser threshold finds more.
    assert_eq!(counts[0], 0, "nothing is below 0 % cloud");
    assert!(
        counts[1] > 0 && counts[1] < counts[2] && counts[2] < counts[3],
        "{counts:?}"
    );
    assert_eq!(counts[4], scenes.len());

    // Together with bbox + datetime, and across pages.
    let mut req = oakland_august().query(json!({"eo:cloud_cover": {"gte": 1}}));
    req.limit = Some(2);
    // 8 cloudy scenes at 2 a page: pgstac sends no `next` link on the 4th,
    // full page (it knows nothing follows; it reports no numberMatched), so
    // the client's truncation warning is a false positive there. Accept it
    // (and only it) as long as every item arrived.
    let cloudy = StacClient::new(url).unwrap().search(&req).await.unwrap();
    assert!(
        cloudy
            .warnings
            .iter()
            .all(|w| matches!(w, tilestack::Warning::MaybeTruncated { .. })
                && w.to_string().contains("no next link")),
        "{:?}",
        cloudy.warnings
    );
    let server = WorldServer::start(small_world()).await.unwrap();
    let mut all = oakland_august();
    all.limit = Some(100);
    let local = search(&server.stac_url(), &all).await;
    server.shutdown().await;
    let mut want: Vec<String> = local
        .items
        .iter()
        .filter(|i| cloud_cover(i) >= 1.0)
        .map(|i| i.id.clone())
        .collect();
    want.sort();
    assert!(want.len() > 2, "several pages of cloudy scenes");
    assert_eq!(sorted_ids(&cloudy), want);
    assert!(cloudy.pages >= want.len().div_ceil(2));
}

#[tokio::test]
#[ignore = "needs a pgstac server (.ci/pgstac.sh; .ci/run runs it)"]
async fn pgstac_sorts_newest_first_unless_asked() {
    let url = pgstac();
    let times = |res: &SearchResults| -> Vec<_> {
        res.items
            .iter()
            .map(|i| i.properties.datetime.expect("datetime"))
            .collect()
    };
    let mut req = oakland_august();
    req.limit = Some(5);
    let default = search(url, &req).await;
    let t = times(&default);
    assert_eq!(t.len(), 16);
    assert!(t.windows(2).all(|p| p[0] >= p[1]), "newest first: {t:?}");
    assert!(t[0] > t[15]);

    req.sortby = Some(json!([{"field": "properties.datetime", "direction": "asc"}]));
    let asc = search(url, &req).await;
    assert!(
        asc.pages >= 4,
        "sorted results page too ({} pages)",
        asc.pages
    );
    let t = times(&asc);
    assert!(t.windows(2).all(|p| p[0] <= p[1]), "ascending: {t:?}");
    assert_eq!(sorted_ids(&asc), sorted_ids(&default));
}

#[tokio::test]
#[ignore = "needs a pgstac server (.ci/pgstac.sh; .ci/run runs it)"]
async fn pgstac_results_survive_a_snapshot_without_a_server() {
    let url = pgstac();
    let mut req = oakland_august();
    req.limit = Some(7);
    let found = search(url, &req).await.items;
    assert_eq!(found.len(), 16);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("items.json");
    save_snapshot(&found, &path).unwrap();
    let loaded = load_snapshot(&path).unwrap();
    assert_eq!(loaded.len(), found.len());
    for (a, b) in found.iter().zip(&loaded) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.properties.datetime, b.properties.datetime, "{}", a.id);
        assert_eq!(a.geometry, b.geometry, "{}", a.id);
        assert_eq!(cloud_cover(a), cloud_cover(b), "{}", a.id);
    }

    let bands = BandName::parse_list("B04,B11").unwrap();
    let scenes = tilestack::stac::scenes_from_items(&loaded, &bands).unwrap();
    assert_eq!(scenes.len(), 16);
    assert!(scenes.windows(2).all(|p| p[0].datetime <= p[1].datetime));
    for s in &scenes {
        assert_eq!(s.assets.len(), 2, "{}", s.id);
        let b04 = &s.assets[&bands[0]];
        let b11 = &s.assets[&bands[1]];
        assert_eq!(b04.shape.0, 2 * b11.shape.0, "{}: 10 m vs 20 m", s.id);
        assert!(b04.href.ends_with("/B04.tif"), "{}", b04.href);
        let item = loaded.iter().find(|i| i.id == s.id).unwrap();
        assert_eq!(s.cloud_cover, Some(cloud_cover(item)));
    }
}
