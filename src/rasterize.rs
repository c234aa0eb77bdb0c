//! Rasterizing GeoJSON polygons onto a tile grid with the pixel-centre rule
//! (GDAL/rasterio `all_touched=False`): a pixel is burned when its centre is
//! inside the polygon (even-odd rule, holes respected). Sync and pure.

use crate::{Epsg, Error, GridSpec, Result, Transformer};
use chrono::NaiveDate;
use ndarray::Array2;
use serde_json::Value;

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
/// use tilestack::rasterize::Mask;
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
    /// [`Error::Config`] naming `source` and the malformed part.
    pub fn from_geojson_str(text: &str, source: &str) -> Result<Mask> {
        let bad = |m: String| Error::Config {
            path: source.into(),
            message: m,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        Mask::from_geojson(&v).map_err(bad)
    }

    /// Parses a GeoJSON value.
    ///
    /// # Errors
    /// A message naming the malformed feature.
    pub fn from_geojson(v: &Value) -> std::result::Result<Mask, String> {
        let mut features = Vec::new();
        match v.get("type").and_then(Value::as_str) {
            Some("FeatureCollection") => {
                let fs = v
                    .get("features")
                    .and_then(Value::as_array)
                    .ok_or("FeatureCollection without a features array")?;
                for (i, f) in fs.iter().enumerate() {
                    features.push(feature(f).map_err(|m| format!("feature {i}: {m}"))?);
                }
            }
            Some("Feature") => features.push(feature(v)?),
            Some(_) => features.push(MaskFeature {
                polygons: geometry(v)?,
                day: None,
            }),
            None => return Err("no GeoJSON \"type\"".into()),
        }
        Ok(Mask { features })
    }

    /// Burns the features that apply to `day` (all undated ones, plus those
    /// dated that day) onto `grid`: 1 inside, 0 outside.
    ///
    /// # Errors
    /// [`Error::Crs`] when the grid CRS is unsupported.
    pub fn rasterize(&self, grid: &GridSpec, day: Option<NaiveDate>) -> Result<Array2<f32>> {
        let t = Transformer::new(Epsg::WGS84, grid.epsg)?;
        let mut out = Array2::zeros((grid.height, grid.width));
        for f in &self.features {
            if f.day.is_some() && f.day != day {
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

fn feature(f: &Value) -> std::result::Result<MaskFeature, String> {
    let g = f.get("geometry").ok_or("no geometry")?;
    let day = match f.get("properties").and_then(|p| p.get("datetime")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&chrono::Utc).date_naive())
                .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
                .map_err(|e| format!("datetime {s:?}: {e}"))?,
        ),
        Some(other) => return Err(format!("datetime {other} is not a string")),
    };
    Ok(MaskFeature {
        polygons: geometry(g)?,
        day,
    })
}

fn ring(v: &Value) -> std::result::Result<Vec<(f64, f64)>, String> {
    let pts = v.as_array().ok_or("ring is not an array")?;
    let r = pts
        .iter()
        .map(|p| match p.as_array().map(|a| a.as_slice()) {
            Some([x, y, ..]) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok((x, y)),
                _ => Err(format!("position {p} is not numeric")),
            },
            _ => Err(format!("position {p} is not [x, y]")),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if r.len() < 4 {
        return Err("ring has fewer than 4 positions".into());
    }
    Ok(r)
}

fn polygon(v: &Value) -> std::result::Result<Rings, String> {
    v.as_array()
        .ok_or("polygon is not an array of rings")?
        .iter()
        .map(ring)
        .collect()
}

fn geometry(g: &Value) -> std::result::Result<Vec<Rings>, String> {
    let c = g.get("coordinates");
    match (g.get("type").and_then(Value::as_str), c) {
        (Some("Polygon"), Some(c)) => Ok(vec![polygon(c)?]),
        (Some("MultiPolygon"), Some(c)) => c
            .as_array()
            .ok_or("MultiPolygon coordinates are not an array")?
            .iter()
            .map(polygon)
            .collect(),
        (Some("GeometryCollection"), _) => {
            let mut out = Vec::new();
            for sub in g
                .get("geometries")
                .and_then(Value::as_array)
                .ok_or("no geometries")?
            {
                out.extend(geometry(sub)?);
            }
            Ok(out)
        }
        (Some(t), _) => Err(format!("{t} is not a polygonal geometry")),
        (None, _) => Err("geometry without type".into()),
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
            crate::Resolution::new(10.0).unwrap(),
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
