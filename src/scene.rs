//! STAC items → the crate's own small [`Scene`] type, at one boundary.
//!
//! Everything downstream (reads, warps, stacks) sees only `Scene`s, whose
//! fields have been checked here: a missing field is an [`Error::Item`]
//! naming the item and the field, and a band an item does not have is an
//! error listing the keys it does have (stackstac drops such bands silently,
//! which breaks the `pct_nans` denominator downstream).

use crate::{BandName, Epsg, Error, GeoTransform, Result};
use chrono::{DateTime, Utc};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use geojson::GeometryValue;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One asset (band) of a scene, with what a reader needs to place its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneAsset {
    /// Asset URL (unsigned; signing happens at read time).
    pub href: String,
    /// CRS, from `proj:code` (preferred) or `proj:epsg`, asset-level first.
    pub epsg: Epsg,
    /// Pixel → CRS transform, from `proj:transform`.
    pub transform: GeoTransform,
    /// `(rows, cols)`, from `proj:shape`.
    pub shape: (usize, usize),
    /// Nodata value declared by `raster:bands` / `nodata`, if any.
    pub nodata: Option<f64>,
    /// `raster:bands` scale and offset, when declared (`physical = DN·scale + offset`).
    pub scale_offset: Option<(f64, f64)>,
}

/// A scene: one STAC item reduced to what stacks need.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Item id.
    pub id: String,
    /// Acquisition time (`datetime`, else `start_datetime`), UTC.
    pub datetime: DateTime<Utc>,
    /// Footprint in WGS 84.
    pub footprint: MultiPolygon<f64>,
    /// Scene-level `eo:cloud_cover`, percent.
    pub cloud_cover: Option<f64>,
    /// The requested bands, by name.
    pub assets: BTreeMap<BandName, SceneAsset>,
}

impl Scene {
    /// Converts an item, keeping the `bands` asked for.
    ///
    /// # Errors
    /// [`Error::Item`] naming the item id and the missing/malformed field, or
    /// the missing band together with the asset keys the item has.
    ///
    /// # Examples
    /// ```
    /// use tilestack::{BandName, Scene};
    /// let item: stac::Item = serde_json::from_value(serde_json::json!({
    ///     "type": "Feature", "stac_version": "1.0.0", "id": "s1", "links": [],
    ///     "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1],[0,0]]]},
    ///     "bbox": [0,0,1,1],
    ///     "properties": {"datetime": "2019-08-01T18:59:21Z", "eo:cloud_cover": 3.5, "proj:code": "EPSG:32631"},
    ///     "assets": {"B04": {"href": "http://127.0.0.1/B04.tif",
    ///         "proj:transform": [10, 0, 500000, 0, -10, 100000], "proj:shape": [100, 100],
    ///         "raster:bands": [{"nodata": 0}]}}
    /// })).unwrap();
    /// let s = Scene::from_item(&item, &[BandName::new("B04").unwrap()]).unwrap();
    /// assert_eq!(s.assets.values().next().unwrap().epsg.code(), 32631);
    /// let err = Scene::from_item(&item, &[BandName::new("B08").unwrap()]).unwrap_err();
    /// assert!(err.to_string().contains("B08") && err.to_string().contains("B04"));
    /// ```
    pub fn from_item(item: &stac::Item, bands: &[BandName]) -> Result<Scene> {
        let id = item.id.clone();
        let err = |m: String| Error::Item {
            item: id.clone(),
            message: m,
        };
        let props = serde_json::to_value(&item.properties).unwrap_or(Value::Null);
        let props = props.as_object().cloned().unwrap_or_default();
        let datetime = item
            .properties
            .datetime
            .or_else(|| {
                props
                    .get("start_datetime")
                    .and_then(Value::as_str)
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|d| d.with_timezone(&Utc))
            })
            .ok_or_else(|| err("no datetime (nor start_datetime)".into()))?;
        let geometry = item
            .geometry
            .as_ref()
            .ok_or_else(|| err("no geometry".into()))?;
        let geometry = serde_json::to_value(geometry).unwrap_or(Value::Null);
        let footprint = parse_footprint(&geometry).map_err(|m| err(format!("geometry: {m}")))?;
        let cloud_cover = match props.get("eo:cloud_cover") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|c| (0.0..=100.0).contains(c))
                    .ok_or_else(|| err(format!("eo:cloud_cover {v} is not a percentage")))?,
            ),
        };
        let mut assets = BTreeMap::new();
        for band in bands {
            let Some(asset) = item.assets.get(band.as_str()) else {
                let have: Vec<&str> = item.assets.keys().map(String::as_str).collect();
                return Err(err(format!(
                    "has no asset {band:?} (it has: {})",
                    have.join(", ")
                )));
            };
            let a = serde_json::to_value(asset).unwrap_or(Value::Null);
            let a = a.as_object().cloned().unwrap_or_default();
            let field = |k: &str| a.get(k).or_else(|| props.get(k));
            let epsg = crs_of(field("proj:code"), field("proj:epsg"))
                .map_err(|m| err(format!("asset {band}: {m}")))?;
            let transform = field("proj:transform")
                .and_then(Value::as_array)
                .ok_or_else(|| err(format!("asset {band}: no proj:transform")))?
                .iter()
                .map(|v| v.as_f64())
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| err(format!("asset {band}: proj:transform is not numbers")))?;
            let transform = GeoTransform::from_stac(&transform)
                .map_err(|e| err(format!("asset {band}: {e}")))?;
            let shape = field("proj:shape")
                .and_then(Value::as_array)
                .and_then(|v| match v.as_slice() {
                    [r, c] => Some((r.as_u64()? as usize, c.as_u64()? as usize)),
                    _ => None,
                })
                .filter(|&(r, c)| r > 0 && c > 0)
                .ok_or_else(|| err(format!("asset {band}: no valid proj:shape [rows, cols]")))?;
            let rb = first_band(&a);
            let nodata = a
                .get("nodata")
                .and_then(Value::as_f64)
                .or_else(|| rb.and_then(|b| b.get("nodata")).and_then(Value::as_f64));
            let scale = rb.and_then(|b| b.get("scale")).and_then(Value::as_f64);
            let offset = rb.and_then(|b| b.get("offset")).and_then(Value::as_f64);
            let scale_offset = match (scale, offset) {
                (None, None) => None,
                (s, o) => Some((s.unwrap_or(1.0), o.unwrap_or(0.0))),
            };
            if href_is_blank(&asset.href) {
                return Err(err(format!("asset {band}: empty href")));
            }
            assets.insert(
                band.clone(),
                SceneAsset {
                    href: asset.href.clone(),
                    epsg,
                    transform,
                    shape,
                    nodata,
                    scale_offset,
                },
            );
        }
        Ok(Scene {
            id: item.id.clone(),
            datetime,
            footprint,
            cloud_cover,
            assets,
        })
    }
}

fn href_is_blank(h: &str) -> bool {
    h.trim().is_empty()
}

/// `raster:bands[0]` (STAC 1.0) or `bands[0]` (STAC 1.1) of an asset.
fn first_band(a: &Map<String, Value>) -> Option<&Map<String, Value>> {
    ["raster:bands", "bands"]
        .iter()
        .find_map(|k| a.get(*k).and_then(Value::as_array).and_then(|v| v.first()))
        .and_then(Value::as_object)
}

/// CRS from `proj:code` (`"EPSG:32633"`, projection v2) or `proj:epsg` (v1).
fn crs_of(code: Option<&Value>, epsg: Option<&Value>) -> std::result::Result<Epsg, String> {
    if let Some(c) = code.and_then(Value::as_str) {
        return c.parse::<Epsg>().map_err(|e| format!("proj:code: {e}"));
    }
    match epsg {
        Some(v) => v
            .as_u64()
            .and_then(|n| Epsg::new(n as u32).ok())
            .ok_or_else(|| format!("proj:epsg {v} is not an EPSG code")),
        None => Err("no CRS (neither proj:code nor proj:epsg)".into()),
    }
}

/// One ring: `[lon, lat]` positions within range, closed, at least 4 of them.
fn ring(positions: &[geojson::Position]) -> std::result::Result<LineString<f64>, String> {
    let mut out = Vec::with_capacity(positions.len());
    for p in positions {
        let &[x, y, ..] = p.as_slice() else {
            return Err(format!("position {:?} is not [lon, lat]", p.as_slice()));
        };
        if !(-180.0..=180.0).contains(&x) || !(-90.0..=90.0).contains(&y) {
            return Err(format!("position [{x}, {y}] is outside lon/lat range"));
        }
        out.push(Coord { x, y });
    }
    if out.len() < 4 || out.first() != out.last() {
        return Err("ring is not closed or has fewer than 4 positions".into());
    }
    Ok(LineString::new(out))
}

/// One polygon: the outer ring, then the holes.
fn polygon(rings: &[Vec<geojson::Position>]) -> std::result::Result<Polygon<f64>, String> {
    let (outer, holes) = rings.split_first().ok_or("polygon has no rings")?;
    let outer = ring(outer)?;
    let holes = holes
        .iter()
        .map(|h| ring(h))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Polygon::new(outer, holes))
}

/// A GeoJSON Polygon/MultiPolygon, validated.
pub(crate) fn parse_footprint(g: &Value) -> std::result::Result<MultiPolygon<f64>, String> {
    let not_polygonal = |t: &str| format!("type {t} is not a Polygon or MultiPolygon");
    let geometry = geojson::Geometry::deserialize(g).map_err(|e| {
        match g.get("type").and_then(Value::as_str) {
            None => "no type".to_string(),
            Some(t @ ("Polygon" | "MultiPolygon")) => match g.get("coordinates") {
                None => "no coordinates".to_string(),
                Some(_) => format!("malformed {t}: {e}"),
            },
            // not a geometry type at all (geojson names the ones it knows)
            Some(t) => not_polygonal(t),
        }
    })?;
    match &geometry.value {
        GeometryValue::Polygon { coordinates } => {
            Ok(MultiPolygon::new(vec![polygon(coordinates)?]))
        }
        GeometryValue::MultiPolygon { coordinates } => Ok(MultiPolygon::new(
            coordinates
                .iter()
                .map(|p| polygon(p))
                .collect::<std::result::Result<_, _>>()?,
        )),
        other => Err(not_polygonal(other.type_name())),
    }
}

/// Converts items to scenes sorted by time (oldest first, whatever order the
/// server used), dropping repeated ids.
///
/// # Errors
/// The first item that fails [`Scene::from_item`].
pub fn scenes_from_items(items: &[stac::Item], bands: &[BandName]) -> Result<Vec<Scene>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for it in items {
        if seen.insert(it.id.clone()) {
            out.push(Scene::from_item(it, bands)?);
        }
    }
    out.sort_by(|a, b| a.datetime.cmp(&b.datetime).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> stac::Item {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({
            "type": "Feature", "stac_version": "1.0.0", "id": "x", "links": [],
            "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1],[0,0]]]},
            "bbox": [0,0,1,1],
            "properties": {"datetime": "2019-08-01T18:59:21Z", "proj:epsg": 32610},
            "assets": {"B04": {"href": "h", "proj:transform": [10,0,0,0,-10,0], "proj:shape": [5,5],
                                "raster:bands": [{"nodata": 0, "scale": 0.0001}]}}
        })
    }

    fn b(s: &str) -> BandName {
        BandName::new(s).unwrap()
    }

    #[test]
    fn proj_epsg_and_scale() {
        let s = Scene::from_item(&item(base()), &[b("B04")]).unwrap();
        let a = &s.assets[&b("B04")];
        assert_eq!(a.epsg.code(), 32610);
        assert_eq!(a.nodata, Some(0.0));
        assert_eq!(a.scale_offset, Some((0.0001, 0.0)));
        assert_eq!(a.shape, (5, 5));
        assert_eq!(s.cloud_cover, None);
    }

    #[test]
    fn missing_fields_are_named() {
        let mut v = base();
        v["assets"]["B04"]
            .as_object_mut()
            .unwrap()
            .remove("proj:transform");
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("item x") && e.contains("proj:transform"), "{e}");
        let mut v = base();
        v["properties"].as_object_mut().unwrap().remove("proj:epsg");
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("proj:code"), "{e}");
        let mut v = base();
        v["geometry"]["coordinates"] = json!([[[0, 0], [1, 0], [1, 1]]]);
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("geometry") && e.contains("closed"), "{e}");
        let mut v = base();
        v["geometry"]["coordinates"] = json!([[[0, 0], [1, 0], [1, 95], [0, 0]]]);
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside lon/lat"), "{e}");
        let mut v = base();
        v["properties"]["eo:cloud_cover"] = json!(140);
        assert!(Scene::from_item(&item(v), &[b("B04")]).is_err());
    }

    fn ls(pts: &[(f64, f64)]) -> LineString<f64> {
        LineString::new(pts.iter().map(|&(x, y)| Coord { x, y }).collect())
    }

    #[test]
    fn footprint_polygon_and_multipolygon() {
        let outer = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0), (0.0, 0.0)];
        let hole = [(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 0.5)];
        let g = json!({"type": "Polygon", "coordinates": [
            [[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]],
            [[0.5, 0.5], [1, 0.5, 7.0], [1, 1], [0.5, 0.5]]
        ]});
        let mp = parse_footprint(&g).unwrap();
        // integers become floats, a third (z) element is dropped, holes stay in order
        assert_eq!(
            mp,
            MultiPolygon::new(vec![Polygon::new(ls(&outer), vec![ls(&hole)])])
        );
        let far = [(-10.5, -5.0), (-10.0, -5.0), (-10.0, -4.5), (-10.5, -5.0)];
        let g = json!({"type": "MultiPolygon", "bbox": [-10.5, -5, 2, 2], "coordinates": [
            [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]],
            [[[-10.5, -5], [-10, -5], [-10, -4.5], [-10.5, -5]]]
        ]});
        let mp = parse_footprint(&g).unwrap();
        assert_eq!(
            mp,
            MultiPolygon::new(vec![
                Polygon::new(ls(&outer), vec![]),
                Polygon::new(ls(&far), vec![]),
            ])
        );
        let empty = json!({"type": "MultiPolygon", "coordinates": []});
        assert_eq!(parse_footprint(&empty).unwrap(), MultiPolygon::new(vec![]));
    }

    #[test]
    fn footprint_errors_say_what_is_wrong() {
        let err = |g: Value| parse_footprint(&g).unwrap_err();
        assert_eq!(
            err(json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]})),
            "ring is not closed or has fewer than 4 positions"
        );
        assert_eq!(
            err(json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]})),
            "ring is not closed or has fewer than 4 positions"
        );
        // a bad hole is found too, the outer ring first
        assert_eq!(
            err(json!({"type": "Polygon", "coordinates": [
                [[0, 0], [1, 0], [1, 1], [0, 0]], [[0, 0], [1, 0], [1, 1]]]})),
            "ring is not closed or has fewer than 4 positions"
        );
        assert_eq!(
            err(json!({"type": "MultiPolygon", "coordinates": [
                [[[0, 0], [1, 0], [1, 1], [0, 0]]],
                [[[0, 0], [200, 0], [1, 1], [0, 0]]]]})),
            "position [200, 0] is outside lon/lat range"
        );
        assert_eq!(
            err(json!({"type": "Polygon", "coordinates": [[[0, 0], [1, -91], [1, 1], [0, 0]]]})),
            "position [1, -91] is outside lon/lat range"
        );
        assert_eq!(
            err(json!({"type": "Polygon", "coordinates": [[[0, 0], [1], [1, 1], [0, 0]]]})),
            "position [1.0] is not [lon, lat]"
        );
        assert_eq!(
            err(json!({"type": "Polygon", "coordinates": []})),
            "polygon has no rings"
        );
        assert_eq!(
            err(json!({"type": "Point", "coordinates": [0, 0]})),
            "type Point is not a Polygon or MultiPolygon"
        );
        assert_eq!(
            err(json!({"type": "GeometryCollection", "geometries": []})),
            "type GeometryCollection is not a Polygon or MultiPolygon"
        );
        assert_eq!(
            err(json!({"type": "Circle", "coordinates": [0, 0]})),
            "type Circle is not a Polygon or MultiPolygon"
        );
        assert_eq!(err(json!({"coordinates": [[[0, 0]]]})), "no type");
        assert_eq!(err(json!({"type": "Polygon"})), "no coordinates");
        let e =
            err(json!({"type": "Polygon", "coordinates": [[[0, "a"], [1, 0], [1, 1], [0, 0]]]}));
        assert!(e.starts_with("malformed Polygon: "), "{e}");
        // and through an item, the message names the item and the geometry
        let mut v = base();
        v["geometry"] = json!({"type": "LineString", "coordinates": [[0, 0], [1, 1]]});
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("item x") && e.contains("geometry: type LineString is not a Polygon"),
            "{e}"
        );
    }

    #[test]
    fn proj_code_wins_and_order_is_by_time() {
        let mut v1 = base();
        v1["properties"]["proj:code"] = json!("EPSG:32611");
        v1["id"] = json!("late");
        v1["properties"]["datetime"] = json!("2019-08-03T00:00:00Z");
        let v2 = base();
        let scenes =
            scenes_from_items(&[item(v1.clone()), item(v2), item(v1)], &[b("B04")]).unwrap();
        assert_eq!(scenes.len(), 2);
        assert_eq!(scenes[0].id, "x");
        assert_eq!(scenes[1].assets[&b("B04")].epsg.code(), 32611);
    }
}
