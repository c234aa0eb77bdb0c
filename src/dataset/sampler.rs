//! Where and when a dataset samples: the `[sampler]` table (explicit points,
//! a regular grid or random positions over an area) and the `[time]` table
//! (one fixed window or sliding windows of days). Framework-neutral, sync,
//! and pure except for reading the files the tables name.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{Days, NaiveDate};
use geo::{Intersects, LineString, MultiPolygon, Point, Polygon};
use geojson::feature::Id;
use geojson::{Feature, Geometry, GeometryValue};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Problem, Result};
use crate::geo::crs::Transformer;
use crate::geo::rasterize::Mask;
use crate::units::{Epsg, parse_day_range};

/// Most centres a grid sampler may consider before clipping to its area: a
/// guard against a stride given in the wrong unit (1 m over a country).
const MAX_GRID_CENTRES: f64 = 1_000_000.0;

/// Draws a random sampler may make per requested point before giving up.
const RANDOM_ATTEMPTS_PER_POINT: usize = 1000;

/// Points per bbox edge projected to find the bbox's UTM envelope (edges of
/// a lon/lat box are curves in UTM, so its corners alone are not enough).
const EDGE_STEPS: usize = 32;

/// One place to sample: an id unique within its sampler, and a WGS 84
/// position in degrees.
///
/// # Examples
/// ```
/// let p = tilestack::dataset::SamplePoint { id: "oakland".into(), lon: -122.27, lat: 37.80 };
/// assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"id":"oakland","lon":-122.27,"lat":37.8}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplePoint {
    /// The point's id: from its file, or `g{row}_{col}`, `r{index}`, `p{index}`.
    pub id: String,
    /// Longitude, degrees.
    pub lon: f64,
    /// Latitude, degrees.
    pub lat: f64,
}

/// The `[sampler]` table of a dataset config: where samples are taken,
/// selected by its `kind` key. Unknown keys are rejected.
///
/// Areas (`grid`, `random`) are given by exactly one of `bbox`
/// (`[west, south, east, north]`, WGS 84 degrees) or `polygon` (a GeoJSON
/// file of Polygons/MultiPolygons, as a geometry, Feature or
/// FeatureCollection; the area is the union of them all). Relative file
/// paths are resolved against the config file's folder.
///
/// # Examples
/// ```
/// use tilestack::dataset::SamplerConfig;
/// #[derive(serde::Deserialize)]
/// struct Config { sampler: SamplerConfig }
/// let c: Config = toml::from_str(r#"
///     [sampler]
///     kind = "grid"
///     bbox = [-122.30, 37.78, -122.26, 37.82]
///     stride_m = 1280.0
/// "#).unwrap();
/// let pts = c.sampler.points(std::path::Path::new("dataset.toml"), 7)?;
/// assert_eq!(pts[0].id, "g0_0");
/// assert!(pts.iter().all(|p| (-122.30..=-122.26).contains(&p.lon)));
/// assert_eq!(c.sampler.to_string(), "sampler grid over bbox [-122.3, 37.78, -122.26, 37.82] with stride_m 1280");
/// // a key the kind does not take is an error
/// let e = toml::from_str::<Config>("[sampler]\nkind = \"grid\"\nbbox = [0, 0, 1, 1]\nstride_m = 10.0\ncount = 3").err().unwrap();
/// assert!(e.to_string().contains("count"), "{e}");
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SamplerConfig {
    /// Explicit points from a file: CSV (`lon,lat` or `lon,lat,id` per line;
    /// an optional header line whose first field is not a number, which may
    /// name the columns `lon`/`lat`/`id` in any order; `#` comments and
    /// blank lines skipped) or, for `.geojson`/`.json` files, GeoJSON (a
    /// FeatureCollection of Point features, a Point Feature, or a bare
    /// Point/MultiPoint; the id is the feature's `id`, else its
    /// `properties.id` or `properties.name`, else `p{index}`).
    Points {
        /// The points file.
        file: PathBuf,
    },
    /// A regular grid of centres `stride_m` metres apart in the UTM zone of
    /// the area's centre, row-major from north-west, kept when inside the
    /// area; ids `g{row}_{col}` (grid indices, so clipped cells leave gaps).
    Grid {
        /// The area as `[west, south, east, north]`, degrees.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bbox: Option<[f64; 4]>,
        /// The area as a GeoJSON polygon file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        polygon: Option<PathBuf>,
        /// Distance between neighbouring centres, metres.
        stride_m: f64,
    },
    /// `count` positions uniform in the area's lon/lat bounding box (not
    /// uniform in ground area far from the equator), rejection-sampled
    /// against the polygon when there is one; deterministic for a seed.
    /// ids `r{index}`.
    Random {
        /// The area as `[west, south, east, north]`, degrees.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bbox: Option<[f64; 4]>,
        /// The area as a GeoJSON polygon file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        polygon: Option<PathBuf>,
        /// How many points.
        count: usize,
        /// The random seed; the dataset's seed when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
    },
}

/// An area to sample, validated, with its lon/lat bounding box.
enum Area {
    BBox([f64; 4]),
    Polygon {
        file: PathBuf,
        shape: MultiPolygon<f64>,
        bbox: [f64; 4],
    },
}

impl Area {
    fn bbox(&self) -> [f64; 4] {
        match self {
            Area::BBox(b) | Area::Polygon { bbox: b, .. } => *b,
        }
    }

    /// Whether `(lon, lat)` is in the area, boundary included.
    fn contains(&self, lon: f64, lat: f64) -> bool {
        match self {
            Area::BBox([w, s, e, n]) => (*w..=*e).contains(&lon) && (*s..=*n).contains(&lat),
            Area::Polygon { shape, .. } => shape.intersects(&Point::new(lon, lat)),
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Area::BBox(b) => write!(f, "bbox {b:?}"),
            Area::Polygon { file, .. } => write!(f, "polygon {}", file.display()),
        }
    }
}

/// How a config's area keys read in messages, before validation.
fn area_text(bbox: &Option<[f64; 4]>, polygon: &Option<PathBuf>) -> String {
    match (bbox, polygon) {
        (Some(b), _) => format!("bbox {b:?}"),
        (None, Some(p)) => format!("polygon {}", p.display()),
        (None, None) => "no area".into(),
    }
}

impl fmt::Display for SamplerConfig {
    /// A one-line description for messages, e.g.
    /// `sampler grid over bbox [0.0, 0.0, 1.0, 1.0] with stride_m 2560`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerConfig::Points { file } => write!(f, "sampler points from {}", file.display()),
            SamplerConfig::Grid {
                bbox,
                polygon,
                stride_m,
            } => write!(
                f,
                "sampler grid over {} with stride_m {stride_m}",
                area_text(bbox, polygon)
            ),
            SamplerConfig::Random {
                bbox,
                polygon,
                count,
                ..
            } => write!(
                f,
                "sampler random over {} with count {count}",
                area_text(bbox, polygon)
            ),
        }
    }
}

impl SamplerConfig {
    /// The sample points. `config_path` is the config file the table came
    /// from: relative file paths are resolved against its folder and errors
    /// about keys name it. `dataset_seed` seeds a `random` sampler that has
    /// no `seed` of its own.
    ///
    /// # Errors
    /// - [`Error::Io`] naming a points or polygon file that cannot be read;
    /// - [`Error::Config`] naming such a file when it does not parse (with
    ///   the line or feature), or a point id repeated in it;
    /// - [`Error::Config`] naming `config_path` and the key for a bad value:
    ///   `sampler.bbox`/`sampler.polygon` (not exactly one given, or a bbox
    ///   that is empty or not lon/lat), `sampler.stride_m` (not > 0, or so
    ///   small the grid is absurd), `sampler.count` (0, or not reachable
    ///   inside the polygon);
    /// - [`Error::Config`] when the sampler yields no sample at all, naming
    ///   the sampler and its area;
    /// - [`Error::Crs`] when the area cannot be projected to UTM.
    pub fn points(&self, config_path: &Path, dataset_seed: u64) -> Result<Vec<SamplePoint>> {
        let base = config_path.parent().unwrap_or(Path::new(""));
        let cfg = |message: String| Error::config(config_path, message);
        let pts = match self {
            SamplerConfig::Points { file } => read_points(&base.join(file))?,
            SamplerConfig::Grid {
                bbox,
                polygon,
                stride_m,
            } => {
                if !stride_m.is_finite() || *stride_m <= 0.0 {
                    return Err(cfg(format!(
                        "sampler.stride_m {stride_m} must be finite and > 0"
                    )));
                }
                let area = area(bbox, polygon, base, &cfg)?;
                grid(&area, *stride_m, &cfg)?
            }
            SamplerConfig::Random {
                bbox,
                polygon,
                count,
                seed,
            } => {
                if *count == 0 {
                    return Err(cfg("sampler.count must be > 0".into()));
                }
                let area = area(bbox, polygon, base, &cfg)?;
                random(&area, *count, seed.unwrap_or(dataset_seed), &cfg)?
            }
        };
        if pts.is_empty() {
            return Err(cfg(format!("{self} yields no sample")));
        }
        Ok(pts)
    }
}

/// The validated area of a `grid` or `random` sampler.
fn area(
    bbox: &Option<[f64; 4]>,
    polygon: &Option<PathBuf>,
    base: &Path,
    cfg: &dyn Fn(String) -> Error,
) -> Result<Area> {
    match (bbox, polygon) {
        (Some(b), None) => {
            check_bbox(b).map_err(|m| cfg(format!("sampler.bbox {b:?}: {m}")))?;
            Ok(Area::BBox(*b))
        }
        (None, Some(p)) => read_polygon(&base.join(p)),
        (Some(_), Some(_)) => Err(cfg(
            "give one of sampler.bbox and sampler.polygon, not both".into(),
        )),
        (None, None) => Err(cfg(
            "the area is missing: give sampler.bbox = [west, south, east, north] or sampler.polygon = \"area.geojson\"".into(),
        )),
    }
}

/// Whether a bbox is a non-empty lon/lat box.
fn check_bbox(&[w, s, e, n]: &[f64; 4]) -> std::result::Result<(), String> {
    if ![w, s, e, n].iter().all(|v| v.is_finite()) {
        return Err("values must be finite".into());
    }
    if !(-180.0..=180.0).contains(&w) || !(-180.0..=180.0).contains(&e) {
        return Err("west and east must be longitudes in [-180, 180]".into());
    }
    if !(-90.0..=90.0).contains(&s) || !(-90.0..=90.0).contains(&n) {
        return Err("south and north must be latitudes in [-90, 90]".into());
    }
    if w >= e {
        return Err(format!("west {w} must be < east {e}"));
    }
    if s >= n {
        return Err(format!("south {s} must be < north {n}"));
    }
    Ok(())
}

/// Reads a polygon area: the union of the file's polygons.
fn read_polygon(path: &Path) -> Result<Area> {
    let bad = |message: String| Error::config(path, message);
    let mask = Mask::from_file(path)?;
    let mut polys = Vec::new();
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for (i, f) in mask.features.iter().enumerate() {
        for rings in &f.polygons {
            for &(lon, lat) in rings.iter().flatten() {
                if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                    return Err(bad(format!(
                        "feature {i}: position ({lon}, {lat}) is not a WGS 84 lon/lat"
                    )));
                }
            }
            let Some((outer, holes)) = rings.split_first() else {
                continue;
            };
            for &(lon, lat) in outer {
                b = [b[0].min(lon), b[1].min(lat), b[2].max(lon), b[3].max(lat)];
            }
            polys.push(Polygon::new(
                LineString::from(outer.clone()),
                holes.iter().map(|h| LineString::from(h.clone())).collect(),
            ));
        }
    }
    if polys.is_empty() {
        return Err(bad("no polygon to sample in".into()));
    }
    Ok(Area::Polygon {
        file: path.to_path_buf(),
        shape: MultiPolygon::new(polys),
        bbox: b,
    })
}

/// Grid centres over `area`, walked in the UTM zone of its centre.
fn grid(area: &Area, stride: f64, cfg: &dyn Fn(String) -> Error) -> Result<Vec<SamplePoint>> {
    let [w, s, e, n] = area.bbox();
    let utm = Epsg::utm_for((w + e) / 2.0, (s + n) / 2.0);
    let fwd = Transformer::new(Epsg::WGS84, utm)?;
    let inv = fwd.inverse();
    let (mut minx, mut miny, mut maxx, mut maxy) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for k in 0..=EDGE_STEPS {
        let t = k as f64 / EDGE_STEPS as f64;
        let (lon, lat) = (w + t * (e - w), s + t * (n - s));
        for (x, y) in [(lon, s), (lon, n), (w, lat), (e, lat)] {
            let (px, py) = fwd.transform(x, y)?;
            (minx, miny, maxx, maxy) = (minx.min(px), miny.min(py), maxx.max(px), maxy.max(py));
        }
    }
    // centres at min + stride/2 + k*stride while still inside the envelope
    let steps = |span: f64| {
        if span < stride / 2.0 {
            0.0
        } else {
            ((span - stride / 2.0) / stride).floor() + 1.0
        }
    };
    let (cols, rows) = (steps(maxx - minx), steps(maxy - miny));
    if cols * rows > MAX_GRID_CENTRES {
        return Err(cfg(format!(
            "sampler.stride_m {stride} makes {rows} x {cols} grid centres over {area} (more than {MAX_GRID_CENTRES}): is it in metres?"
        )));
    }
    let (cols, rows) = (cols as usize, rows as usize);
    let mut out = Vec::new();
    for row in 0..rows {
        let y = maxy - stride / 2.0 - row as f64 * stride;
        for col in 0..cols {
            let x = minx + stride / 2.0 + col as f64 * stride;
            let (lon, lat) = inv.transform(x, y)?;
            if area.contains(lon, lat) {
                out.push(SamplePoint {
                    id: format!("g{row}_{col}"),
                    lon,
                    lat,
                });
            }
        }
    }
    Ok(out)
}

/// `count` seeded random positions in `area`.
fn random(
    area: &Area,
    count: usize,
    seed: u64,
    cfg: &dyn Fn(String) -> Error,
) -> Result<Vec<SamplePoint>> {
    let [w, s, e, n] = area.bbox();
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let max_attempts = count.saturating_mul(RANDOM_ATTEMPTS_PER_POINT);
    let mut out = Vec::with_capacity(count);
    let mut attempts = 0usize;
    while out.len() < count {
        if attempts >= max_attempts {
            return Err(cfg(format!(
                "sampler random over {area}: only {} of sampler.count {count} points fell inside after {attempts} draws (is the polygon degenerate or tiny?)",
                out.len()
            )));
        }
        attempts += 1;
        let lon = if w < e { rng.random_range(w..=e) } else { w };
        let lat = if s < n { rng.random_range(s..=n) } else { s };
        if area.contains(lon, lat) {
            out.push(SamplePoint {
                id: format!("r{}", out.len()),
                lon,
                lat,
            });
        }
    }
    Ok(out)
}

/// Reads a points file: GeoJSON (`.geojson`/`.json`: Point features or a
/// MultiPoint) or CSV (`lon,lat[,id]`, optional header, `#` comments).
///
/// # Errors
/// [`Error::Io`] when unreadable; [`Error::Config`] naming the file and the
/// line or feature that does not parse, or a repeated id.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// let p = dir.path().join("places.csv");
/// std::fs::write(&p, "# port\n-122.33,37.81\n-122.30,37.80,berth\n")?;
/// let pts = tilestack::dataset::read_points(&p)?;
/// assert_eq!((pts.len(), pts[1].id.as_str()), (2, "berth"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_points(path: &Path) -> Result<Vec<SamplePoint>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let is_json = path
        .extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("geojson") || x.eq_ignore_ascii_case("json"));
    let bad = |message: String| Error::config(path, message);
    let pts = if is_json {
        geojson_points(&text).map_err(|p| p.config(path))?
    } else {
        csv_points(&text).map_err(bad)?
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in pts.iter().enumerate() {
        if let Some(first) = seen.insert(&p.id, i) {
            return Err(bad(format!(
                "point id {:?} is repeated (points {first} and {i})",
                p.id
            )));
        }
    }
    Ok(pts)
}

/// A checked lon/lat.
fn lon_lat(lon: f64, lat: f64) -> std::result::Result<(f64, f64), String> {
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(format!("({lon}, {lat}) is not a WGS 84 lon/lat"));
    }
    Ok((lon, lat))
}

/// Parses CSV points; errors name the 1-based line.
fn csv_points(text: &str) -> std::result::Result<Vec<SamplePoint>, String> {
    // column indices of lon, lat and (optionally) id
    let mut cols: (usize, usize, Option<usize>) = (0, 1, Some(2));
    // lon,lat,id without a header; as many as the header names with one
    let mut max_fields = 3;
    let mut seen_data = false;
    let mut out = Vec::new();
    for (k, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"').trim())
            .collect();
        let at = |m: String| format!("line {}: {m}", k + 1);
        if !seen_data && fields[0].parse::<f64>().is_err() {
            seen_data = true;
            cols = header(&fields).map_err(at)?;
            max_fields = fields.len().max(3);
            continue;
        }
        seen_data = true;
        let num = |i: usize, name: &str| -> std::result::Result<f64, String> {
            let f = fields
                .get(i)
                .ok_or_else(|| at(format!("{line:?} has no {name} (column {})", i + 1)))?;
            f.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| at(format!("{name} {f:?} is not a number")))
        };
        let (lon, lat) = lon_lat(num(cols.0, "lon")?, num(cols.1, "lat")?).map_err(at)?;
        let id = cols
            .2
            .and_then(|i| fields.get(i))
            .filter(|f| !f.is_empty())
            .map_or_else(|| format!("p{}", out.len()), |f| f.to_string());
        if fields.len() > max_fields {
            return Err(at(format!(
                "{line:?} has {} fields, expected at most {max_fields}",
                fields.len()
            )));
        }
        out.push(SamplePoint { id, lon, lat });
    }
    Ok(out)
}

/// Column indices `(lon, lat, id)` from a CSV header line: named columns
/// (`lon`/`lng`/`longitude`/`x`, `lat`/`latitude`/`y`, `id`/`name`), or
/// positional `lon,lat,id` when the header names neither lon nor lat.
fn header(fields: &[&str]) -> std::result::Result<(usize, usize, Option<usize>), String> {
    let find = |names: &[&str]| {
        fields
            .iter()
            .position(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
    };
    let lon = find(&["lon", "lng", "long", "longitude", "x"]);
    let lat = find(&["lat", "latitude", "y"]);
    let id = find(&["id", "name"]);
    match (lon, lat) {
        (Some(lon), Some(lat)) => Ok((lon, lat, id)),
        (None, None) => Ok((0, 1, Some(2))),
        _ => Err(format!(
            "header {:?} names only one of lon and lat",
            fields.join(",")
        )),
    }
}

/// Parses GeoJSON points; errors name the feature and keep the JSON or
/// GeoJSON parser's error as their cause.
fn geojson_points(text: &str) -> std::result::Result<Vec<SamplePoint>, Problem> {
    let v: Value = serde_json::from_str(text).map_err(|e| Problem::because("not JSON", e))?;
    let kind = v.get("type").and_then(Value::as_str);
    let mut out = Vec::new();
    match kind {
        Some("FeatureCollection") => {
            let fs = v
                .get("features")
                .and_then(Value::as_array)
                .ok_or("FeatureCollection without a features array")?;
            for (i, fv) in fs.iter().enumerate() {
                let p = feature_point(fv, i).map_err(|p| p.context(format!("feature {i}")))?;
                out.push(p);
            }
        }
        Some("Feature") => out.push(feature_point(&v, 0)?),
        Some(t @ ("Point" | "MultiPoint")) => {
            let g = Geometry::deserialize(&v).map_err(|e| Problem::because(t, e))?;
            for (i, pos) in geometry_positions(&g)?.into_iter().enumerate() {
                out.push(SamplePoint {
                    id: format!("p{i}"),
                    lon: pos.0,
                    lat: pos.1,
                });
            }
        }
        Some(t) => {
            return Err(format!(
                "{t} is not a FeatureCollection of Points, a Point or a MultiPoint"
            )
            .into());
        }
        None => return Err("no GeoJSON \"type\"".into()),
    }
    Ok(out)
}

/// The positions of a Point or MultiPoint.
fn geometry_positions(g: &Geometry) -> std::result::Result<Vec<(f64, f64)>, String> {
    let one = |p: &geojson::Position| match p.as_slice() {
        &[x, y, ..] => lon_lat(x, y),
        other => Err(format!("position {other:?} is not [lon, lat]")),
    };
    match &g.value {
        GeometryValue::Point { coordinates } => Ok(vec![one(coordinates)?]),
        GeometryValue::MultiPoint { coordinates } => coordinates.iter().map(one).collect(),
        other => Err(format!("{} is not a Point", other.type_name())),
    }
}

/// One Point feature as a sample point (`index` makes the fallback id).
fn feature_point(v: &Value, index: usize) -> std::result::Result<SamplePoint, Problem> {
    let f = Feature::deserialize(v).map_err(|e| Problem::because("not a GeoJSON Feature", e))?;
    let g = f.geometry.as_ref().ok_or("no geometry")?;
    let pos = geometry_positions(g)?;
    let [(lon, lat)] = pos.as_slice() else {
        return Err(format!("{} positions where one Point was expected", pos.len()).into());
    };
    let prop = |k: &str| match f.property(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let id = match &f.id {
        Some(Id::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Id::Number(n)) => Some(n.to_string()),
        _ => None,
    }
    .or_else(|| prop("id"))
    .or_else(|| prop("name"))
    .unwrap_or_else(|| format!("p{index}"));
    Ok(SamplePoint {
        id,
        lon: *lon,
        lat: *lat,
    })
}

/// The `[time]` table of a dataset config: the days sampled, as one fixed
/// window or sliding windows. Unknown keys are rejected.
///
/// # Examples
/// ```
/// use tilestack::dataset::TimeWindows;
/// let t: TimeWindows = toml::from_str(r#"
///     range = "2019-08-01/2019-08-30"
///     window_days = 10
///     stride_days = 5
/// "#).unwrap();
/// let w = t.windows()?;
/// assert_eq!(w.len(), 5); // starting Aug 1, 6, 11, 16, 21
/// assert_eq!(w[4].1.to_string(), "2019-08-30");
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindows {
    /// Inclusive days `START/END`, e.g. `"2019-08-01/2019-08-30"`.
    pub range: String,
    /// Days per window; absent = one window, the whole range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
    /// Days between window starts; absent = `window_days` (no overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride_days: Option<u32>,
}

impl TimeWindows {
    /// The windows as inclusive `(first, last)` days, in order: the range
    /// itself without `window_days`, else windows of `window_days` days
    /// starting at the range's first day and every `stride_days` after,
    /// each wholly inside the range (a window that would run past the
    /// range's end is not emitted).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the key: `time.range` (malformed or open),
    /// `time.window_days` (0, or longer than the range), `time.stride_days`
    /// (0, or given without `time.window_days`).
    pub fn windows(&self) -> Result<Vec<(NaiveDate, NaiveDate)>> {
        let (first, last) = parse_day_range(&self.range).map_err(|e| match e {
            Error::Invalid {
                message, source, ..
            } => Error::Invalid {
                what: "time.range",
                message,
                source,
            },
            other => other,
        })?;
        let Some(window) = self.window_days else {
            if let Some(s) = self.stride_days {
                return Err(Error::invalid(
                    "time.stride_days",
                    format!("{s} given without time.window_days"),
                ));
            }
            return Ok(vec![(first, last)]);
        };
        let days = (last - first).num_days() + 1;
        if window == 0 {
            return Err(Error::invalid("time.window_days", "0 must be > 0"));
        }
        if i64::from(window) > days {
            return Err(Error::invalid(
                "time.window_days",
                format!(
                    "{window} is longer than time.range {} ({days} days)",
                    self.range
                ),
            ));
        }
        let stride = self.stride_days.unwrap_or(window);
        if stride == 0 {
            return Err(Error::invalid("time.stride_days", "0 must be > 0"));
        }
        let mut out = Vec::new();
        let mut start = Some(first);
        while let Some(a) = start {
            // window <= days, so a + window - 1 is a real date while a <= last
            match a.checked_add_days(Days::new(u64::from(window) - 1)) {
                Some(b) if b <= last => out.push((a, b)),
                _ => break,
            }
            start = a.checked_add_days(Days::new(u64::from(stride)));
        }
        Ok(out)
    }
}

/// Every point in every window, point-major: all windows of the first point
/// (in window order), then all of the second, and so on; `points.len() *
/// windows.len()` entries.
///
/// # Examples
/// ```
/// use tilestack::dataset::{SamplePoint, cross};
/// let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
/// let p = |id: &str| SamplePoint { id: id.into(), lon: 0.0, lat: 0.0 };
/// let w = [(d("2019-08-01"), d("2019-08-10")), (d("2019-08-11"), d("2019-08-20"))];
/// let c = cross(&[p("a"), p("b")], &w);
/// let order: Vec<_> = c.iter().map(|(p, a, _)| format!("{}@{a}", p.id)).collect();
/// assert_eq!(order, ["a@2019-08-01", "a@2019-08-11", "b@2019-08-01", "b@2019-08-11"]);
/// ```
pub fn cross(
    points: &[SamplePoint],
    windows: &[(NaiveDate, NaiveDate)],
) -> Vec<(SamplePoint, NaiveDate, NaiveDate)> {
    points
        .iter()
        .flat_map(|p| windows.iter().map(move |&(a, b)| (p.clone(), a, b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A temp folder holding `dataset.toml` (never written: only its path
    /// matters) and the given files.
    fn dir_with(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        let cfg = dir.path().join("dataset.toml");
        (dir, cfg)
    }

    fn points_of(file: &str, text: &str) -> Result<Vec<SamplePoint>> {
        let (_dir, cfg) = dir_with(&[(file, text)]);
        SamplerConfig::Points { file: file.into() }.points(&cfg, 0)
    }

    fn ids(pts: &[SamplePoint]) -> Vec<&str> {
        pts.iter().map(|p| p.id.as_str()).collect()
    }

    const BBOX: [f64; 4] = [-122.30, 37.78, -122.26, 37.82];

    /// A right triangle over BBOX: the south-west half.
    fn triangle() -> String {
        let [w, s, e, n] = BBOX;
        serde_json::json!({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [w, n], [w, s]]]}
        }]})
        .to_string()
    }

    fn in_triangle(p: &SamplePoint) -> bool {
        let [w, s, e, n] = BBOX;
        (p.lon - w) / (e - w) + (p.lat - s) / (n - s) <= 1.0 + 1e-9 && p.lon >= w && p.lat >= s
    }

    #[test]
    fn csv_with_header_comments_and_ids() {
        let pts = points_of(
            "pts.csv",
            "# sites\nlon,lat,id\n\n-122.27, 37.80, oakland\n-122.41,37.77\n  # more\n-122.0,37.5,\n",
        )
        .unwrap();
        assert_eq!(ids(&pts), ["oakland", "p1", "p2"]);
        assert_eq!((pts[1].lon, pts[1].lat), (-122.41, 37.77));
        // no header, two columns
        let pts = points_of("pts.txt", "1,2\n3,4\n").unwrap();
        assert_eq!(ids(&pts), ["p0", "p1"]);
        assert_eq!((pts[1].lon, pts[1].lat), (3.0, 4.0));
        // a header naming its columns in another order
        let pts = points_of("pts.csv", "name,lat,lon\nx1,37.8,-122.27\n").unwrap();
        assert_eq!(
            pts,
            [SamplePoint {
                id: "x1".into(),
                lon: -122.27,
                lat: 37.8
            }]
        );
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let msg = |text: &str| points_of("pts.csv", text).unwrap_err().to_string();
        let e = msg("lon,lat\n1,2\n3,abc\n");
        assert!(
            e.contains("pts.csv") && e.contains("line 3") && e.contains("abc"),
            "{e}"
        );
        let e = msg("1,2\n200,2\n");
        assert!(e.contains("line 2") && e.contains("200"), "{e}");
        let e = msg("1,2,a\n3,4,b,extra\n");
        assert!(e.contains("line 2") && e.contains("4 fields"), "{e}");
        let e = msg("1\n");
        assert!(e.contains("line 1") && e.contains("no lat"), "{e}");
        let e = msg("1,2,a\n3,4,b\n5,6,a\n");
        assert!(
            e.contains("pts.csv") && e.contains("\"a\"") && e.contains("repeated"),
            "{e}"
        );
        assert!(matches!(
            points_of("pts.csv", "1,2,a\n5,6,a\n").unwrap_err(),
            Error::Config { .. }
        ));
        // only comments: no sample
        let e = msg("# nothing\nlon,lat\n");
        assert!(
            e.contains("sampler points from pts.csv yields no sample"),
            "{e}"
        );
        assert!(e.contains("dataset.toml"), "{e}");
    }

    #[test]
    fn missing_file_is_io_naming_it() {
        let (_dir, cfg) = dir_with(&[]);
        let e = SamplerConfig::Points {
            file: "nope.csv".into(),
        }
        .points(&cfg, 0)
        .unwrap_err();
        assert!(
            matches!(&e, Error::Io { path, .. } if path.ends_with("nope.csv")),
            "{e}"
        );
        let e = SamplerConfig::Grid {
            bbox: None,
            polygon: Some("nope.geojson".into()),
            stride_m: 100.0,
        }
        .points(&cfg, 0)
        .unwrap_err();
        assert!(
            matches!(&e, Error::Io { path, .. } if path.ends_with("nope.geojson")),
            "{e}"
        );
    }

    #[test]
    fn geojson_points_and_ids() {
        let fc = serde_json::json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "a", "properties": {"id": "ignored"},
             "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}},
            {"type": "Feature", "properties": {"id": 7},
             "geometry": {"type": "Point", "coordinates": [3.0, 4.0, 10.0]}},
            {"type": "Feature", "properties": {"name": "hill"},
             "geometry": {"type": "Point", "coordinates": [5.0, 6.0]}},
            {"type": "Feature", "properties": null,
             "geometry": {"type": "Point", "coordinates": [7.0, 8.0]}},
        ]});
        let pts = points_of("pts.geojson", &fc.to_string()).unwrap();
        assert_eq!(ids(&pts), ["a", "7", "hill", "p3"]);
        assert_eq!((pts[1].lon, pts[1].lat), (3.0, 4.0));
        let mp = r#"{"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}"#;
        let pts = points_of("pts.json", mp).unwrap();
        assert_eq!(ids(&pts), ["p0", "p1"]);
        assert_eq!((pts[1].lon, pts[1].lat), (3.0, 4.0));
    }

    #[test]
    fn geojson_errors_name_file_and_feature() {
        let msg = |text: &str| points_of("pts.geojson", text).unwrap_err().to_string();
        let e = msg("{");
        assert!(e.contains("pts.geojson") && e.contains("not JSON"), "{e}");
        // the JSON parser's error is the source, not part of the message
        let e = points_of("pts.geojson", "{").unwrap_err();
        assert!(
            matches!(&e, Error::Config { message, .. } if message == "not JSON"),
            "{e}"
        );
        let cause = std::error::Error::source(&e).expect("the JSON error");
        assert!(e.chain().ends_with(&cause.to_string()), "{}", e.chain());
        let e = msg(&serde_json::json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {},
             "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}},
            {"type": "Feature", "properties": {},
             "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}},
        ]})
        .to_string());
        assert!(e.contains("feature 1") && e.contains("Polygon"), "{e}");
        let e = msg(
            &serde_json::json!({"type": "FeatureCollection", "features": [
                {"type": "Feature", "id": "x", "properties": {},
                 "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}},
                {"type": "Feature", "properties": {"name": "x"},
                 "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}},
            ]})
            .to_string(),
        );
        assert!(e.contains("\"x\"") && e.contains("repeated"), "{e}");
        let e = msg(r#"{"type": "Point", "coordinates": [1, 95]}"#);
        assert!(e.contains("95"), "{e}");
    }

    /// Metres between two points in a UTM zone.
    fn utm_dist(t: &Transformer, a: &SamplePoint, b: &SamplePoint) -> (f64, f64) {
        let (ax, ay) = t.transform(a.lon, a.lat).unwrap();
        let (bx, by) = t.transform(b.lon, b.lat).unwrap();
        (bx - ax, by - ay)
    }

    #[test]
    fn grid_count_order_and_spacing() {
        let (_dir, cfg) = dir_with(&[]);
        let g = SamplerConfig::Grid {
            bbox: Some(BBOX),
            polygon: None,
            stride_m: 1000.0,
        };
        let pts = g.points(&cfg, 0).unwrap();
        // 0.04° x 0.04° at 37.8° N: ~3.5 km x ~4.4 km
        assert!((9..=25).contains(&pts.len()), "{}", pts.len());
        assert!(pts.iter().all(|p| Area::BBox(BBOX).contains(p.lon, p.lat)));
        let by_id: HashMap<&str, &SamplePoint> = pts.iter().map(|p| (p.id.as_str(), p)).collect();
        let t = Transformer::new(Epsg::WGS84, Epsg::new(32610).unwrap()).unwrap();
        // east neighbour 1000 m east, south neighbour 1000 m south
        let (dx, dy) = utm_dist(&t, by_id["g1_1"], by_id["g1_2"]);
        assert!((dx - 1000.0).abs() < 1e-3 && dy.abs() < 1e-3, "{dx} {dy}");
        let (dx, dy) = utm_dist(&t, by_id["g1_1"], by_id["g2_1"]);
        assert!(dx.abs() < 1e-3 && (dy + 1000.0).abs() < 1e-3, "{dx} {dy}");
        // row-major, north to south, west to east
        let rc = |p: &SamplePoint| {
            let (r, c) = p.id[1..].split_once('_').unwrap();
            (r.parse::<usize>().unwrap(), c.parse::<usize>().unwrap())
        };
        assert!(pts.windows(2).all(|w| rc(&w[0]) < rc(&w[1])));
        assert_eq!(rc(&pts[0]), (0, 0));
        // fewer centres with a larger stride; none when the stride dwarfs the area
        let coarse = SamplerConfig::Grid {
            bbox: Some(BBOX),
            polygon: None,
            stride_m: 2000.0,
        };
        assert!(coarse.points(&cfg, 0).unwrap().len() < pts.len());
        let e = SamplerConfig::Grid {
            bbox: Some(BBOX),
            polygon: None,
            stride_m: 50000.0,
        }
        .points(&cfg, 0)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: sampler grid over bbox [-122.3, 37.78, -122.26, 37.82] with stride_m 50000 yields no sample",
                cfg.display()
            )
        );
    }

    #[test]
    fn polygon_clips_the_grid() {
        let (_dir, cfg) = dir_with(&[("tri.geojson", &triangle())]);
        let over = |bbox, polygon| SamplerConfig::Grid {
            bbox,
            polygon,
            stride_m: 500.0,
        };
        let full = over(Some(BBOX), None).points(&cfg, 0).unwrap();
        let tri = over(None, Some("tri.geojson".into()))
            .points(&cfg, 0)
            .unwrap();
        assert!(
            tri.len() < full.len() * 2 / 3 && tri.len() > full.len() / 3,
            "{} of {}",
            tri.len(),
            full.len()
        );
        assert!(tri.iter().all(in_triangle));
        assert!(full.iter().any(|p| !in_triangle(p)));
        // the same polygon as a bare geometry: the same points
        let bare = r#"{"type": "MultiPolygon", "coordinates": [[[[-122.30, 37.78], [-122.26, 37.78], [-122.30, 37.82], [-122.30, 37.78]]]]}"#;
        let (_d2, cfg2) = dir_with(&[("tri.json", bare)]);
        let again = over(None, Some("tri.json".into()))
            .points(&cfg2, 0)
            .unwrap();
        assert_eq!(again, tri);
    }

    #[test]
    fn polygon_file_errors_name_it() {
        let (_dir, cfg) = dir_with(&[
            ("pt.geojson", r#"{"type": "Point", "coordinates": [1, 2]}"#),
            (
                "utm.geojson",
                r#"{"type": "Polygon", "coordinates": [[[500000, 4000000], [501000, 4000000], [500000, 4001000], [500000, 4000000]]]}"#,
            ),
        ]);
        for (file, needle) in [("pt.geojson", "Point"), ("utm.geojson", "500000")] {
            let e = SamplerConfig::Random {
                bbox: None,
                polygon: Some(file.into()),
                count: 3,
                seed: None,
            }
            .points(&cfg, 0)
            .unwrap_err();
            assert!(
                matches!(&e, Error::Config { path, .. } if path.ends_with(file)),
                "{e}"
            );
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn random_is_seeded_and_inside() {
        let (_dir, cfg) = dir_with(&[("tri.geojson", &triangle())]);
        let r = |seed| SamplerConfig::Random {
            bbox: None,
            polygon: Some("tri.geojson".into()),
            count: 50,
            seed,
        };
        let a = r(None).points(&cfg, 1).unwrap();
        assert_eq!(a.len(), 50);
        assert_eq!(a[0].id, "r0");
        assert_eq!(a[49].id, "r49");
        assert!(a.iter().all(in_triangle));
        assert_eq!(a, r(None).points(&cfg, 1).unwrap());
        assert_ne!(a, r(None).points(&cfg, 2).unwrap());
        // the sampler's own seed wins over the dataset's
        assert_eq!(a, r(Some(1)).points(&cfg, 99).unwrap());
        // bbox: inside it, and spread over it
        let b = SamplerConfig::Random {
            bbox: Some(BBOX),
            polygon: None,
            count: 200,
            seed: Some(3),
        }
        .points(&cfg, 0)
        .unwrap();
        assert!(b.iter().all(|p| Area::BBox(BBOX).contains(p.lon, p.lat)));
        assert!(b.iter().any(|p| !in_triangle(p)));
    }

    #[test]
    fn random_gives_up_on_a_degenerate_polygon() {
        // a zero-area polygon: no draw ever lands inside
        let flat = r#"{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0.5, 0.5], [0, 0]]]}"#;
        let (_dir, cfg) = dir_with(&[("flat.geojson", flat)]);
        let e = SamplerConfig::Random {
            bbox: None,
            polygon: Some("flat.geojson".into()),
            count: 2,
            seed: None,
        }
        .points(&cfg, 0)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sampler.count") && e.contains("2000 draws") && e.contains("flat.geojson"),
            "{e}"
        );
    }

    #[test]
    fn bad_keys_are_named() {
        let (_dir, cfg) = dir_with(&[("tri.geojson", &triangle())]);
        let err = |s: SamplerConfig| {
            let e = s.points(&cfg, 0).unwrap_err();
            assert!(
                matches!(&e, Error::Config { path, .. } if path == &cfg),
                "{e}"
            );
            e.to_string()
        };
        let grid = |bbox, polygon, stride_m| SamplerConfig::Grid {
            bbox,
            polygon,
            stride_m,
        };
        let e = err(grid(Some(BBOX), Some("tri.geojson".into()), 100.0));
        assert!(
            e.contains("sampler.bbox") && e.contains("sampler.polygon"),
            "{e}"
        );
        let e = err(grid(None, None, 100.0));
        assert!(
            e.contains("sampler.bbox") && e.contains("sampler.polygon"),
            "{e}"
        );
        for s in [0.0, -5.0, f64::NAN] {
            let e = err(grid(Some(BBOX), None, s));
            assert!(e.contains("sampler.stride_m"), "{e}");
        }
        let e = err(grid(Some(BBOX), None, 0.001));
        assert!(
            e.contains("sampler.stride_m") && e.contains("metres"),
            "{e}"
        );
        for (b, needle) in [
            ([1.0, 0.0, 1.0, 1.0], "west 1 must be < east 1"),
            ([0.0, 2.0, 1.0, 1.0], "south 2 must be < north 1"),
            ([0.0, 0.0, 1.0, 91.0], "latitudes"),
            ([-181.0, 0.0, 1.0, 1.0], "longitudes"),
        ] {
            let e = err(grid(Some(b), None, 100.0));
            assert!(e.contains("sampler.bbox") && e.contains(needle), "{e}");
        }
        let e = err(SamplerConfig::Random {
            bbox: Some(BBOX),
            polygon: None,
            count: 0,
            seed: None,
        });
        assert!(e.contains("sampler.count"), "{e}");
    }

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        sampler: SamplerConfig,
        time: Option<TimeWindows>,
    }

    #[test]
    fn toml_tables_and_unknown_keys() {
        let c: Cfg = toml::from_str(
            "[sampler]\nkind = \"random\"\npolygon = \"a.geojson\"\ncount = 20\nseed = 5\n\n[time]\nrange = \"2019-08-01/2019-08-30\"\nwindow_days = 10\n",
        )
        .unwrap();
        assert_eq!(
            c.sampler,
            SamplerConfig::Random {
                bbox: None,
                polygon: Some("a.geojson".into()),
                count: 20,
                seed: Some(5)
            }
        );
        assert_eq!(c.time.as_ref().unwrap().window_days, Some(10));
        // round trip
        let back: Cfg = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.sampler, c.sampler);
        assert_eq!(back.time, c.time);
        let p: Cfg = toml::from_str("[sampler]\nkind = \"points\"\nfile = \"p.csv\"").unwrap();
        assert_eq!(
            p.sampler,
            SamplerConfig::Points {
                file: "p.csv".into()
            }
        );
        for (text, needle) in [
            // unknown key inside a variant
            (
                "[sampler]\nkind = \"grid\"\nbbox = [0, 0, 1, 1]\nstride_m = 10.0\ncount = 3",
                "count",
            ),
            (
                "[sampler]\nkind = \"points\"\nfile = \"p.csv\"\nstride = 3",
                "stride",
            ),
            ("[sampler]\nkind = \"hexagons\"", "hexagons"),
            ("[sampler]\nfile = \"p.csv\"", "kind"),
            (
                "[sampler]\nkind = \"grid\"\nbbox = [0, 0, 1, 1]",
                "stride_m",
            ),
            (
                "[sampler]\nkind = \"points\"\nfile = \"p.csv\"\n[time]\nrange = \"2019-08-01/2019-08-30\"\nwindows = 3",
                "windows",
            ),
        ] {
            let e = toml::from_str::<Cfg>(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    fn tw(range: &str, window_days: Option<u32>, stride_days: Option<u32>) -> TimeWindows {
        TimeWindows {
            range: range.into(),
            window_days,
            stride_days,
        }
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn sliding_windows() {
        const AUG: &str = "2019-08-01/2019-08-30";
        assert_eq!(
            tw(AUG, None, None).windows().unwrap(),
            [(d("2019-08-01"), d("2019-08-30"))]
        );
        let w = tw(AUG, Some(10), Some(5)).windows().unwrap();
        let starts: Vec<u32> = w.iter().map(|(a, _)| chrono::Datelike::day(a)).collect();
        assert_eq!(starts, [1, 6, 11, 16, 21]);
        assert!(w.iter().all(|&(a, b)| (b - a).num_days() == 9));
        assert_eq!(w[4].1, d("2019-08-30"));
        // stride defaults to the window: 3 windows of 10, none left over
        let w = tw(AUG, Some(10), None).windows().unwrap();
        assert_eq!(
            w,
            [
                (d("2019-08-01"), d("2019-08-10")),
                (d("2019-08-11"), d("2019-08-20")),
                (d("2019-08-21"), d("2019-08-30"))
            ]
        );
        // a window that would run past the end is dropped
        assert_eq!(tw(AUG, Some(7), None).windows().unwrap().len(), 4);
        assert_eq!(tw(AUG, Some(30), Some(1)).windows().unwrap().len(), 1);
        assert_eq!(tw(AUG, Some(1), Some(1)).windows().unwrap().len(), 30);
        assert_eq!(
            tw(AUG, Some(5), Some(u32::MAX)).windows().unwrap(),
            [(d("2019-08-01"), d("2019-08-05"))]
        );
    }

    #[test]
    fn window_errors_name_the_key() {
        const AUG: &str = "2019-08-01/2019-08-30";
        for (t, key, needle) in [
            (tw(AUG, Some(0), None), "time.window_days", "0"),
            (tw(AUG, Some(31), None), "time.window_days", "30 days"),
            (tw(AUG, Some(5), Some(0)), "time.stride_days", "0"),
            (
                tw(AUG, None, Some(5)),
                "time.stride_days",
                "time.window_days",
            ),
            (
                tw("2019-08-01/..", None, None),
                "time.range",
                "2019-08-01/..",
            ),
            (
                tw("2019-08-30/2019-08-01", None, None),
                "time.range",
                "before",
            ),
        ] {
            let e = t.windows().unwrap_err();
            assert!(
                matches!(&e, Error::Invalid { what, .. } if *what == key),
                "{e}"
            );
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn cross_is_point_major() {
        let p = |id: &str| SamplePoint {
            id: id.into(),
            lon: 0.0,
            lat: 0.0,
        };
        let w = tw("2019-08-01/2019-08-09", Some(3), None)
            .windows()
            .unwrap();
        let c = cross(&[p("a"), p("b")], &w);
        assert_eq!(c.len(), 6);
        assert_eq!(c[0], (p("a"), d("2019-08-01"), d("2019-08-03")));
        assert_eq!(c[2], (p("a"), d("2019-08-07"), d("2019-08-09")));
        assert_eq!(c[3], (p("b"), d("2019-08-01"), d("2019-08-03")));
        assert!(cross(&[], &w).is_empty());
    }
}
