//! Catalog snapshots: a search's items saved to a file (STAC ItemCollection
//! JSON or stac-geoparquet) and read back, so that later stacks need no STAC API.

use serde_json::Value;

use crate::error::{Error, Result};
#[cfg(feature = "geoparquet")]
use crate::stac::geoparquet as stac_geoparquet;

/// Saves items as a catalog snapshot that later stacks can be built from
/// with no STAC API. The file's extension picks the format:
///
/// - `.parquet` or `.geoparquet` (any case): [stac-geoparquet], the bulk
///   format Planetary Computer publishes its catalogs in; needs the
///   `geoparquet` feature (on with `cli`). zstd-compressed, one row per item,
///   datetimes kept to the microsecond. A null geometry is written as the
///   `bbox`'s rectangle (the format needs a geometry; it is the footprint a
///   [`Scene`](crate::stac::scene::Scene) would take from the bbox anyway).
/// - anything else: a STAC ItemCollection (GeoJSON FeatureCollection),
///   pretty-printed JSON.
///
/// [stac-geoparquet]: https://github.com/stac-utils/stac-geoparquet/blob/main/spec/stac-geoparquet-spec.md
///
/// # Errors
/// [`Error::Io`] naming the file; for stac-geoparquet, [`Error::Config`]
/// naming the file when the crate is built without the `geoparquet` feature,
/// for an empty `items` (the schema comes from the items) or when the
/// encoder refuses the items (the encoder's error as its source), and
/// [`Error::Item`] for an item with neither geometry nor bbox.
///
/// # Examples
/// ```
/// use tilestack::stac::{load_snapshot, save_snapshot};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("items.json");
/// let item = stac::Item::new("a");
/// save_snapshot(&[item], &path).unwrap();
/// assert_eq!(load_snapshot(&path).unwrap()[0].id, "a");
/// ```
///
/// The same as stac-geoparquet (with the `geoparquet` feature):
/// ```
/// # #[cfg(feature = "geoparquet")] {
/// use tilestack::stac::{load_snapshot, save_snapshot};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("items.parquet");
/// let mut item = stac::Item::new("a");
/// item.bbox = Some(stac::Bbox::new(-122.4, 37.7, -122.3, 37.8));
/// save_snapshot(&[item], &path).unwrap();
/// let back = load_snapshot(&path).unwrap();
/// assert_eq!(back[0].id, "a");
/// assert!(back[0].geometry.is_some(), "the bbox's rectangle");
/// # }
/// ```
pub fn save_snapshot(items: &[stac::Item], path: &std::path::Path) -> Result<()> {
    if is_geoparquet(path) {
        #[cfg(feature = "geoparquet")]
        return stac_geoparquet::write(items, path);
        #[cfg(not(feature = "geoparquet"))]
        return Err(no_geoparquet(path));
    }
    let doc = serde_json::json!({"type": "FeatureCollection", "features": items});
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// Loads a snapshot written by [`save_snapshot`]: a stac-geoparquet file
/// (`.parquet`, `.geoparquet`; from any writer, e.g. Planetary Computer's bulk
/// files, rustac, Python's stac-geoparquet) or a STAC ItemCollection JSON file
/// (anything else). Assets without `href` are tolerated in both (see
/// [`Scene`](crate::stac::scene::Scene)).
///
/// # Errors
/// [`Error::Io`] for an unreadable file; [`Error::Config`] naming the file
/// when it is not a FeatureCollection, not a readable stac-geoparquet file
/// (the parser's error as its source; a corrupt file is an error, never a
/// panic), or
/// when a `.parquet` path meets a crate built without the `geoparquet`
/// feature; [`Error::Item`] naming the first item that does not parse.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("broken.parquet");
/// std::fs::write(&path, b"PAR1 not really").unwrap();
/// let e = tilestack::stac::load_snapshot(&path).unwrap_err();
/// assert!(matches!(e, tilestack::Error::Config { .. }));
/// assert!(e.to_string().contains("broken.parquet"));
/// ```
pub fn load_snapshot(path: &std::path::Path) -> Result<Vec<stac::Item>> {
    if is_geoparquet(path) {
        #[cfg(feature = "geoparquet")]
        return stac_geoparquet::read(path);
        #[cfg(not(feature = "geoparquet"))]
        return Err(no_geoparquet(path));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| Error::config_because(path, "not JSON", e))?;
    let feats = v
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::config(path, "not an ItemCollection (no \"features\" array)"))?;
    feats
        .iter()
        .map(|f| {
            let id = f.get("id").and_then(Value::as_str).unwrap_or("<no id>");
            item_from_json(f)
                .map_err(|e| Error::item_because(id, format!("in {}", path.display()), e))
        })
        .collect()
}

/// Whether `path` names a stac-geoparquet snapshot: extension `.parquet` or
/// `.geoparquet`, any case.
fn is_geoparquet(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("geoparquet"))
}

#[cfg(not(feature = "geoparquet"))]
fn no_geoparquet(path: &std::path::Path) -> Error {
    Error::config(
        path,
        "a stac-geoparquet snapshot (.parquet/.geoparquet) needs tilestack built with \
         `--features geoparquet` (the CLI has it); or use a .json snapshot",
    )
}

/// An item as catalogs publish it: an asset without `href` (Planetary
/// Computer's Landsat items have some) gets an empty one instead of failing
/// the whole item; it is ignored unless a band asks for it, and then the
/// error names the item and the asset.
pub(crate) fn item_from_json(f: &Value) -> std::result::Result<stac::Item, serde_json::Error> {
    let lacks_href = f
        .get("assets")
        .and_then(Value::as_object)
        .is_some_and(|a| a.values().any(|x| x.get("href").is_none()));
    if !lacks_href {
        return serde_json::from_value(f.clone());
    }
    let mut f = f.clone();
    if let Some(assets) = f.get_mut("assets").and_then(Value::as_object_mut) {
        for a in assets.values_mut() {
            if let Some(a) = a.as_object_mut() {
                a.entry("href")
                    .or_insert_with(|| Value::String(String::new()));
            }
        }
    }
    serde_json::from_value(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_without_href_do_not_fail_the_item_until_asked_for() {
        let item = serde_json::json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "LC09_x", "links": [],
            "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1],[0,0]]]},
            "bbox": [0, 0, 1, 1],
            "properties": {"datetime": "2022-08-01T18:00:00Z", "proj:epsg": 32631},
            "assets": {
                "red": {"href": "http://127.0.0.1/red.tif",
                    "proj:transform": [30, 0, 500000, 0, -30, 100000], "proj:shape": [100, 100]},
                "qa_aerosol": {"title": "no href, as some catalogs publish it",
                    "proj:transform": [30, 0, 500000, 0, -30, 100000], "proj:shape": [100, 100]}
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("items.json");
        std::fs::write(
            &p,
            serde_json::json!({"type": "FeatureCollection", "features": [item]}).to_string(),
        )
        .expect("write");
        let items = load_snapshot(&p).expect("the item parses");
        let red = crate::units::BandName::new("red").expect("band");
        let scene = crate::stac::scene::Scene::from_item(&items[0], std::slice::from_ref(&red))
            .expect("red has an href");
        assert_eq!(scene.id, "LC09_x");
        assert_eq!(scene.assets.keys().collect::<Vec<_>>(), [&red]);
        let a = &scene.assets[&red];
        assert_eq!(
            (a.key.as_str(), a.href.as_str(), a.epsg.code(), a.shape),
            ("red", "http://127.0.0.1/red.tif", 32631, (100, 100))
        );
        assert_eq!(
            a.transform,
            crate::geo::grid::GeoTransform::north_up(500_000.0, 100_000.0, 30.0)
        );
        let qa = crate::units::BandName::new("qa_aerosol").expect("band");
        let e = crate::stac::scene::Scene::from_item(&items[0], &[qa])
            .expect_err("no href")
            .to_string();
        assert!(
            e.contains("LC09_x") && e.contains("qa_aerosol") && e.contains("href"),
            "{e}"
        );
    }
}
