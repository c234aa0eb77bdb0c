//! Rasterizing GeoJSON polygons onto a tile grid with the pixel-centre rule
//! (GDAL/rasterio `all_touched=False`): a pixel is burned when its centre is
//! inside the polygon (even-odd rule, holes respected). Sync and pure.

use chrono::NaiveDate;
use geojson::{Feature, GeoJson, Geometry, GeometryValue, Position};
use ndarray::Array2;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Problem, Result};
use crate::geo::crs::Transformer;
use crate::geo::grid::GridSpec;
use crate::units::Epsg;

/// Rings of one polygon (outer first, then holes), `[lon, lat]` positions.
pub type Rings = Vec<Vec<(f64, f64)>>;

/// One polygon feature of a mask, in WGS 84, with an optional day.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskFeature {
    /// Rings (outer first, then holes) of each polygon part, `[lon, lat]`.
    pub polygons: Vec<Rings>,
    /// When set (from a `datetime` property), the feature is burned only into that UTC day.
    pub day: Option<NaiveDate>,
}

/// A parsed mask: polygons to burn as the last band, named `mask`.
///
/// # Examples
/// ```
/// use tilestack::geo::Mask;
/// let m = Mask::from_geojson_str(r#"{"type": "Polygon",
///     "coordinates": [[[-122.33,37.81],[-122.32,37.81],[-122.32,37.82],[-122.33,37.81]]]}"#, "inline").unwrap();
/// assert_eq!(m.features.len(), 1);
/// assert!(Mask::from_geojson_str("{", "bad.geojson").unwrap_err().to_string().contains("bad.geojson"));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mask {
    /// The features.
    pub features: Vec<MaskFeature>,
}

impl Mask {
    /// Reads a GeoJSON file (FeatureCollection, Feature or bare geometry).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Config`] naming the file and the problem.
    pub fn from_file(path: &std::path::Path) -> Result<Mask> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Mask::from_geojson_str(&text, &path.display().to_string())
    }

    /// Parses GeoJSON text; `source` names it in errors.
    ///
    /// # Errors
    /// [`Error::Config`] naming `source` and the malformed part, with the
    /// JSON, GeoJSON or date parser's error as its source where one is behind it.
    pub fn from_geojson_str(text: &str, source: &str) -> Result<Mask> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| Error::config_because(source, "not JSON", e))?;
        parse(&v).map_err(|p| p.config(source))
    }

    /// Parses a GeoJSON value.
    ///
    /// # Errors
    /// [`Error::Invalid`] (`what` = `"GeoJSON mask"`) naming the malformed
    /// feature, with the GeoJSON or date parser's error as its source where
    /// one is behind it.
    pub fn from_geojson(v: &Value) -> Result<Mask> {
        parse(v).map_err(|p| p.invalid("GeoJSON mask"))
    }

    /// Burns the features that apply to `day` (all undated ones, plus those
    /// dated that day) onto `grid`: 1 inside, 0 outside.
    ///
    /// # Errors
    /// [`Error::Crs`] when the grid CRS is unsupported.
    pub fn rasterize(&self, grid: &GridSpec, day: Option<NaiveDate>) -> Result<Array2<f32>> {
        self.rasterize_days(grid, day.map(|d| (d, d + chrono::Days::new(1))))
    }

    /// Burns the undated features plus those dated in `[start, end)` (a
    /// time step of several days) onto `grid`: 1 inside, 0 outside.
    ///
    /// # Errors
    /// [`Error::Crs`] when the grid CRS is unsupported.
    pub fn rasterize_days(
        &self,
        grid: &GridSpec,
        days: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<Array2<f32>> {
        let t = Transformer::new(Epsg::WGS84, grid.epsg)?;
        let mut out = Array2::zeros((grid.height, grid.width));
        for f in &self.features {
            let applies = match (f.day, days) {
                (None, _) => true,
                (Some(d), Some((a, b))) => a <= d && d < b,
                (Some(_), None) => false,
            };
            if !applies {
                continue;
            }
            for poly in &f.polygons {
                let mut rings = Vec::with_capacity(poly.len());
                for ring in poly {
                    let mut pts = ring.clone();
                    t.transform_all(&mut pts)?;
                    // to fractional pixel coordinates of the grid
                    rings.push(
                        pts.iter()
                            .map(|&(x, y)| grid.transform.to_pixel(x, y))
                            .collect::<Vec<_>>(),
                    );
                }
                burn_polygon(&mut out, &rings);
            }
        }
        Ok(out)
    }

    /// Only the features without a day.
    pub fn is_time_varying(&self) -> bool {
        self.features.iter().any(|f| f.day.is_some())
    }
}

/// GeoJSON's type names.
const GEOJSON_TYPES: [&str; 9] = [
    "FeatureCollection",
    "Feature",
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
];

/// The mask of a GeoJSON value, or what is wrong with it.
fn parse(v: &Value) -> std::result::Result<Mask, Problem> {
    let features = match GeoJson::deserialize(v).map_err(|e| explain(v, e))? {
        GeoJson::FeatureCollection(fc) => fc
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| feature(f).map_err(|p| p.context(format!("feature {i}"))))
            .collect::<std::result::Result<_, _>>()?,
        GeoJson::Feature(f) => vec![feature(&f)?],
        GeoJson::Geometry(g) => vec![MaskFeature {
            polygons: geometry(&g)?,
            day: None,
        }],
    };
    Ok(Mask { features })
}

/// Says where and why `v`, which `geojson` rejected with `e`, is malformed:
/// the first feature (by index) or sub-geometry that fails on its own,
/// explained in turn, or a type that is no geometry at all. Where only
/// `geojson`'s error says more, it is the cause, behind the type's name.
fn explain(v: &Value, e: serde_json::Error) -> Problem {
    let members = |key: &str| v.get(key).and_then(Value::as_array);
    let bad_geometry = |g: &Value| Geometry::deserialize(g).err().map(|ge| explain(g, ge));
    match v.get("type").and_then(Value::as_str) {
        None => "no GeoJSON \"type\"".into(),
        Some(t @ "FeatureCollection") => match members("features") {
            None => "FeatureCollection without a features array".into(),
            Some(fs) => fs
                .iter()
                .enumerate()
                .find_map(|(i, f)| {
                    let fe = Feature::deserialize(f).err()?;
                    Some(explain(f, fe).context(format!("feature {i}")))
                })
                .unwrap_or_else(|| Problem::because(t, e)),
        },
        Some(t @ "Feature") => v
            .get("geometry")
            .filter(|g| !g.is_null())
            .and_then(bad_geometry)
            .unwrap_or_else(|| Problem::because(t, e)),
        Some(t @ "GeometryCollection") => match members("geometries") {
            None => "GeometryCollection without a geometries array".into(),
            Some(gs) => gs
                .iter()
                .find_map(bad_geometry)
                .unwrap_or_else(|| Problem::because(t, e)),
        },
        Some(t) if GEOJSON_TYPES.contains(&t) => Problem::because(t, e),
        Some(t) => format!("{t} is not a polygonal geometry").into(),
    }
}

fn feature(f: &Feature) -> std::result::Result<MaskFeature, Problem> {
    let g = f.geometry.as_ref().ok_or("no geometry")?;
    let day = match f.property("datetime") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&chrono::Utc).date_naive())
                .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
                .map_err(|e| Problem::because(format!("datetime {s:?}"), e))?,
        ),
        Some(other) => return Err(format!("datetime {other} is not a string").into()),
    };
    Ok(MaskFeature {
        polygons: geometry(g)?,
        day,
    })
}

fn ring(positions: &[Position]) -> std::result::Result<Vec<(f64, f64)>, String> {
    let r = positions
        .iter()
        .map(|p| match p.as_slice() {
            &[x, y, ..] if x.is_finite() && y.is_finite() => Ok((x, y)),
            [_, _, ..] => Err(format!("position {:?} is not numeric", p.as_slice())),
            _ => Err(format!("position {:?} is not [x, y]", p.as_slice())),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if r.len() < 4 {
        return Err("ring has fewer than 4 positions".into());
    }
    Ok(r)
}

fn polygon(rings: &[Vec<Position>]) -> std::result::Result<Rings, String> {
    rings.iter().map(|r| ring(r)).collect()
}

fn geometry(g: &Geometry) -> std::result::Result<Vec<Rings>, String> {
    match &g.value {
        GeometryValue::Polygon { coordinates } => Ok(vec![polygon(coordinates)?]),
        GeometryValue::MultiPolygon { coordinates } => {
            coordinates.iter().map(|p| polygon(p)).collect()
        }
        GeometryValue::GeometryCollection { geometries } => {
            let mut out = Vec::new();
            for sub in geometries {
                out.extend(geometry(sub)?);
            }
            Ok(out)
        }
        other => Err(format!("{} is not a polygonal geometry", other.type_name())),
    }
}

/// Even-odd scanline fill at pixel centres; rings in pixel coordinates.
fn burn_polygon(out: &mut Array2<f32>, rings: &[Vec<(f64, f64)>]) {
    let (h, w) = out.dim();
    let mut xs = Vec::new();
    for row in 0..h {
        let y = row as f64 + 0.5;
        xs.clear();
        for r in rings {
            for k in 0..r.len() {
                let (a, b) = (r[k], r[(k + 1) % r.len()]);
                // half-open rule on y so shared vertices count once
                if (a.1 <= y) != (b.1 <= y) {
                    xs.push(a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1));
                }
            }
        }
        xs.sort_by(|a, b| a.total_cmp(b));
        for pair in xs.chunks_exact(2) {
            // pixels whose centre c + 0.5 lies in the span, ties resolved as
            // GDAL's scanline filler does: columns floor(x0 + 0.5) .. floor(x1 + 0.5)
            let c0 = (pair[0] + 0.5).floor().clamp(0.0, w as f64) as usize;
            let c1 = (pair[1] + 0.5).floor().clamp(0.0, w as f64) as usize;
            for c in c0..c1.min(w) {
                out[[row, c]] = 1.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_centre_rule_and_holes() {
        let mut a = Array2::zeros((10, 10));
        let outer = vec![(1.0, 1.0), (9.0, 1.0), (9.0, 9.0), (1.0, 9.0), (1.0, 1.0)];
        let hole = vec![(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0)];
        burn_polygon(&mut a, &[outer, hole]);
        assert_eq!(a.sum(), 64.0 - 4.0);
        assert_eq!(a[[0, 0]], 0.0);
        assert_eq!(a[[1, 1]], 1.0);
        assert_eq!(a[[4, 4]], 0.0);
        // a polygon covering only part of a pixel, not its centre, burns nothing
        let mut b = Array2::zeros((3, 3));
        burn_polygon(
            &mut b,
            &[vec![(0.0, 0.0), (0.4, 0.0), (0.4, 3.0), (0.0, 3.0)]],
        );
        assert_eq!(b.sum(), 0.0);
    }

    /// The mask, or the message of what is wrong (its cause, if any, apart).
    fn parse(v: serde_json::Value) -> std::result::Result<Mask, String> {
        super::parse(&v).map_err(|p| p.message)
    }

    /// What is wrong with `v`, message and cause.
    fn problem(v: serde_json::Value) -> Problem {
        super::parse(&v).expect_err("malformed")
    }

    #[test]
    fn geometry_collection_and_multipolygon_rings() {
        use serde_json::json;
        let sq = json!([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]);
        let tri = json!([[2.5, 2], [3, 2, 100], [3, 3], [2.5, 2]]);
        let m = parse(json!({"type": "GeometryCollection", "geometries": [
            {"type": "Polygon", "coordinates": [sq, tri]},
            {"type": "GeometryCollection", "geometries": [
                {"type": "MultiPolygon", "coordinates": [[tri], [sq]]}]}
        ]}))
        .unwrap();
        let sq: Vec<(f64, f64)> = vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.0, 0.0)];
        let tri: Vec<(f64, f64)> = vec![(2.5, 2.0), (3.0, 2.0), (3.0, 3.0), (2.5, 2.0)];
        assert_eq!(
            m,
            Mask {
                features: vec![MaskFeature {
                    polygons: vec![vec![sq.clone(), tri.clone()], vec![tri], vec![sq]],
                    day: None,
                }]
            }
        );
        assert!(!m.is_time_varying());
        // a GeometryCollection holding a non-polygon is rejected, naming the type
        let e = parse(json!({"type": "GeometryCollection", "geometries": [
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
            {"type": "Point", "coordinates": [0, 0]}]}))
        .unwrap_err();
        assert_eq!(e, "Point is not a polygonal geometry");
    }

    #[test]
    fn dated_features_parse_both_date_forms() {
        use serde_json::json;
        let poly = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]});
        let m = parse(json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"datetime": "2019-08-03T23:30:00-02:00"}, "geometry": poly},
            {"type": "Feature", "properties": {"datetime": "2019-08-05"}, "geometry": poly},
            {"type": "Feature", "properties": {"datetime": null, "name": "x"}, "geometry": poly},
            {"type": "Feature", "geometry": poly}
        ]}))
        .unwrap();
        let days: Vec<_> = m.features.iter().map(|f| f.day).collect();
        assert_eq!(
            days,
            [
                NaiveDate::from_ymd_opt(2019, 8, 4), // the UTC day
                NaiveDate::from_ymd_opt(2019, 8, 5),
                None,
                None
            ]
        );
        assert!(m.is_time_varying());
        // a bare Feature too
        let m = parse(
            json!({"type": "Feature", "properties": {"datetime": "2020-01-02"}, "geometry": poly}),
        )
        .unwrap();
        assert_eq!(m.features[0].day, NaiveDate::from_ymd_opt(2020, 1, 2));
        // the date parser's error is the cause, behind the feature and the value
        let e = problem(json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": poly},
            {"type": "Feature", "properties": {"datetime": "yesterday"}, "geometry": poly}]}));
        assert_eq!(e.message, "feature 1: datetime \"yesterday\"");
        let cause = e.source.as_ref().expect("the date parser's error");
        assert!(cause.get().is::<chrono::ParseError>(), "{cause:?}");
        assert!(
            e.to_string()
                .starts_with("feature 1: datetime \"yesterday\": "),
            "{e}"
        );
        // and through the public entry point it is the Error's source
        let e = Mask::from_geojson(&json!({"type": "Feature",
            "properties": {"datetime": "yesterday"}, "geometry": poly}))
        .unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Invalid {
                    what: "GeoJSON mask",
                    ..
                }
            ),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
        let e = parse(json!({"type": "Feature", "properties": {"datetime": 5}, "geometry": poly}))
            .unwrap_err();
        assert_eq!(e, "datetime 5 is not a string");
    }

    #[test]
    fn malformed_masks_are_explained() {
        use serde_json::json;
        let poly = json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]});
        let fc = |second: serde_json::Value| {
            parse(json!({"type": "FeatureCollection", "features": [
                {"type": "Feature", "properties": {}, "geometry": poly}, second]}))
            .unwrap_err()
        };
        assert_eq!(
            fc(json!({"type": "Feature", "properties": {},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}})),
            "feature 1: ring has fewer than 4 positions"
        );
        assert_eq!(
            fc(json!({"type": "Feature", "properties": {},
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}})),
            "feature 1: LineString is not a polygonal geometry"
        );
        assert_eq!(
            fc(json!({"type": "Feature", "properties": {},
                "geometry": {"type": "Circle", "coordinates": [0, 0]}})),
            "feature 1: Circle is not a polygonal geometry"
        );
        assert_eq!(
            fc(json!({"type": "Feature", "properties": {}, "geometry": null})),
            "feature 1: no geometry"
        );
        // where only geojson's error says more, it is the cause, behind the type
        let e = problem(json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": poly},
            {"type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, "a"], [1, 1], [0, 0]]]}}]}));
        assert_eq!(e.message, "feature 1: Polygon");
        let cause = e.source.as_ref().expect("geojson's error");
        assert!(cause.get().is::<serde_json::Error>(), "{cause:?}");
        assert!(e.to_string().starts_with("feature 1: Polygon: "), "{e}");
        assert_eq!(
            parse(json!({"type": "Polygon", "coordinates": [[[0, 0], [1], [1, 1], [0, 0]]]}))
                .unwrap_err(),
            "position [1.0] is not [x, y]"
        );
        assert_eq!(
            parse(json!({"type": "FeatureCollection"})).unwrap_err(),
            "FeatureCollection without a features array"
        );
        assert_eq!(
            parse(json!({"features": []})).unwrap_err(),
            "no GeoJSON \"type\""
        );
        assert_eq!(
            parse(json!({"type": "Blob"})).unwrap_err(),
            "Blob is not a polygonal geometry"
        );
        // through the text entry point, the source is named
        let e = Mask::from_geojson_str(
            r#"{"type":"MultiPoint","coordinates":[[0,0]]}"#,
            "m.geojson",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.geojson") && e.contains("MultiPoint is not a polygonal"),
            "{e}"
        );
        // text that is not JSON: the JSON parser's error is the Config's source
        let e = Mask::from_geojson_str("{", "bad.geojson").unwrap_err();
        assert!(
            matches!(&e, Error::Config { message, .. } if message == "not JSON"),
            "{e}"
        );
        let cause = std::error::Error::source(&e).expect("the JSON error");
        assert!(e.chain().ends_with(&cause.to_string()), "{}", e.chain());
    }

    #[test]
    fn dated_features_only_burn_their_day() {
        let m = Mask::from_geojson_str(
            r#"{"type":"FeatureCollection","features":[
              {"type":"Feature","properties":{"datetime":"2019-08-03T18:59:21Z"},
               "geometry":{"type":"Polygon","coordinates":[[[-122.335,37.805],[-122.325,37.805],[-122.325,37.815],[-122.335,37.815],[-122.335,37.805]]]}}]}"#,
            "t",
        )
        .unwrap();
        let g = GridSpec::tile_around(
            Epsg::new(32610).unwrap(),
            558_976.0,
            4_184_946.0,
            64,
            crate::units::Resolution::new(10.0).unwrap(),
        )
        .unwrap();
        let d3 = NaiveDate::from_ymd_opt(2019, 8, 3);
        assert!(m.rasterize(&g, d3).unwrap().sum() > 100.0);
        assert_eq!(
            m.rasterize(&g, NaiveDate::from_ymd_opt(2019, 8, 4))
                .unwrap()
                .sum(),
            0.0
        );
        let e = Mask::from_geojson_str(
            r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[0,0]}}"#,
            "p.geojson",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p.geojson") && e.contains("Point"), "{e}");
    }
}
