//! STAC items → the crate's own small [`Scene`] type, at one boundary.
//!
//! Everything downstream (reads, warps, stacks) sees only `Scene`s, whose
//! fields have been checked here: a missing field is an [`Error::Item`]
//! naming the item and the field, and a band an item does not have is an
//! error listing the asset keys, band names and common names it does have
//! (stackstac drops such bands silently, which breaks the `pct_nans`
//! denominator downstream).
//!
//! How a requested band finds its asset, and which catalog quirks are
//! accepted: see [`Scene`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use geojson::GeometryValue;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Problem, Result};
use crate::geo::grid::GeoTransform;
use crate::units::{BandName, Epsg};

/// An asset's declared `(nodata, scale/offset)`.
type Radiometry = (Option<f64>, Option<(f64, f64)>);

/// One asset (band) of a scene, with what a reader needs to place its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneAsset {
    /// Key of the item's asset that answered the requested band (e.g.
    /// `red` on Earth Search for a request of `B04`).
    pub key: String,
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
    /// Sentinel-2 L2A radiometry across processing baseline 04.00, when
    /// this asset needs harmonizing (see [`Harmonize`]); `None` otherwise.
    pub harmonize: Option<Harmonize>,
    /// Which reader reads it: a COG, or an array of a Zarr store (media
    /// type `application/vnd+zarr` / `application/x-zarr`, or a `.zarr`
    /// component in the href).
    pub format: AssetFormat,
}

/// Which reader reads an asset's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssetFormat {
    /// A (Cloud-Optimized) GeoTIFF, read by [`CogReader`](crate::cog::CogReader).
    #[default]
    Cog,
    /// An array of a Zarr store (v2 or v3), read by
    /// [`ZarrReader`](crate::zarr::ZarrReader); what its CF attributes do.
    Zarr(CfUse),
}

/// What a Zarr array's CF `scale_factor`/`add_offset` attributes do to a
/// stack's values, decided per asset so that the same ground reflectance
/// gives the same stack value from a COG and from a Zarr copy of it.
///
/// A stack's values are on the scale the *catalog* declares: a COG's
/// `raster:bands` scale/offset is applied, a COG without one is read as
/// stored (and Sentinel-2 L2A counts are harmonized to the pre-04.00 DN
/// scale, see [`Harmonize`]). A Zarr array declares its own scale in CF
/// attributes, so:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfUse {
    /// The item declares the asset's scale/offset: that is applied, as for
    /// a COG (with the same harmonization); the CF attributes are not used.
    Declared,
    /// A Sentinel-2 L2A reflectance band (B01…B12, B8A) whose item declares
    /// no scale/offset: the stack holds counts on the pre-04.00 scale, as
    /// from Planetary Computer's COGs. With harmonization on, a CF
    /// `add_offset` (EOPF's −0.1 with `scale_factor` 0.0001) is the
    /// `BOA_ADD_OFFSET` the counts carry: `−add_offset / scale_factor` DN
    /// (1000) are subtracted, clipping at 0 ([`Harmonize::SubtractDn`]); an
    /// array with CF `scale_factor` and no `add_offset` (or 0) carries none;
    /// an array with neither attribute falls back to the item's processing
    /// baseline, unless its samples are floats: then they are reflectance
    /// already (EOPF Explorer's GeoZarr stores decode CF to float32), put
    /// on the counts scale (×10000). Harmonization off: the values as stored.
    Sentinel2Counts,
    /// Any other array whose item declares no scale/offset: CF applied,
    /// `raw × scale_factor + add_offset`, as xarray decodes it.
    Apply,
}

/// What harmonizing a Sentinel-2 L2A band to one scale across processing
/// baseline 04.00 (25 January 2022) does to an asset.
///
/// From baseline 04.00 on, L2A reflectances carry `BOA_ADD_OFFSET`:
/// `reflectance = (DN − 1000) / 10000` instead of `DN / 10000`, so a time
/// series read as stored jumps by 1000 DN at the cutover. Catalogs say so
/// in different ways, and a reader must apply the offset once, never twice:
///
/// - Planetary Computer declares no offset: items with
///   `s2:processing_baseline` ≥ `04.00` get [`Harmonize::SubtractDn`]
///   (`max(DN, 1000) − 1000`, Planetary Computer's own recipe), so every
///   item is on the old DN scale.
/// - Earth Search's `sentinel-2-c1-l2a` declares `raster:bands` scale
///   0.0001 and offset −0.1 on new items: that declared offset is the
///   harmonization, and nothing is added (`harmonize` is `None`).
/// - Earth Search's `sentinel-2-l2a` (v1) items with
///   `earthsearch:boa_offset_applied: true` had the offset removed from the
///   data already, yet still declare offset −0.1: [`Harmonize::DropDeclaredOffset`]
///   keeps the scale and ignores that offset (Element84/earth-search#66, #71).
///
/// Without `s2:processing_baseline`, the acquisition date decides.
/// Spectral bands only (B01…B12, B8A and Earth Search's names for them);
/// SCL, AOT, WVP and `visual` are never touched. [`StackRequest::harmonize`](crate::stack::request::StackRequest::harmonize)
/// turns it off (values as stored, declared scale/offset applied as declared).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Harmonize {
    /// The data carries this many DN of offset and the catalog declares no
    /// offset: subtract it, clipping at 0.
    SubtractDn(f64),
    /// The data is already on the old scale but the catalog still declares
    /// an offset: apply the declared scale without that offset.
    DropDeclaredOffset,
}

impl SceneAsset {
    /// The radiometric steps a read applies, `(DN offset to subtract,
    /// scale/offset)`, with Sentinel-2 harmonization on or off.
    ///
    /// # Examples
    /// ```
    /// use tilestack::stac::{Harmonize, SceneAsset};
    /// # let mut a = SceneAsset { key: "B04".into(), href: String::new(),
    /// #     epsg: tilestack::Epsg::new(32610).unwrap(),
    /// #     transform: tilestack::geo::GeoTransform::from_stac(&[10., 0., 0., 0., -10., 0.]).unwrap(),
    /// #     shape: (1, 1), nodata: Some(0.0), scale_offset: None, harmonize: None,
    /// #     format: tilestack::stac::AssetFormat::Cog };
    /// a.harmonize = Some(Harmonize::SubtractDn(1000.0));
    /// assert_eq!(a.radiometry(true), (Some(1000.0), None));
    /// assert_eq!(a.radiometry(false), (None, None));
    /// ```
    pub fn radiometry(&self, harmonize: bool) -> (Option<f64>, Option<(f64, f64)>) {
        match (harmonize, self.harmonize) {
            (true, Some(Harmonize::SubtractDn(k))) => (Some(k), self.scale_offset),
            (true, Some(Harmonize::DropDeclaredOffset)) => {
                (None, self.scale_offset.map(|(s, _)| (s, 0.0)))
            }
            _ => (None, self.scale_offset),
        }
    }
}

/// A scene: one STAC item reduced to what stacks need.
///
/// # Band names either way
///
/// Catalogs name the same band differently: Planetary Computer keys
/// Sentinel-2's red band `B04` (common name `red`), Earth Search keys it
/// `red` (band name `B04`). A requested band finds its asset by, in order:
///
/// 1. the asset key;
/// 2. a band `name` in the asset's `eo:bands` (STAC 1.0) or `bands` (STAC 1.1);
/// 3. a band `common_name` (`eo:common_name` in STAC 1.1) there;
/// 4. the same three again, ignoring ASCII case (`SCL` finds Earth Search's `scl`);
/// 5. on Sentinel-2 items only (`platform`/`constellation`), steps 1–4 for
///    the band's other name in Earth Search's scheme (`B04` ↔ `red`, `B05` ↔
///    `rededge1`, `B8A` ↔ `nir08`, ...): Earth Search's older items name their
///    bands `red` in `eo:bands` too, so nothing in them says `B04`.
///
/// The first step that matches decides. Steps 2–4 look only at single-band
/// assets, so a request for `red` never lands on a three-band `visual` image;
/// ask for a multi-band asset by its key. When several assets match in one
/// step, GeoTIFFs (media type containing `tiff`) beat other formats (Earth
/// Search's `red` beats `red-jp2`), then assets with an `href` beat those
/// without (a GeoTIFF without one is an error, not a swap for the JPEG 2000
/// copy), and the finest pixel (`proj:transform`) beats coarser copies
/// (CDSE's `B02_10m` beats `B02_20m`); assets still tied are an error naming
/// them (`rededge` is B05, B06, B07 and B8A on Planetary Computer): ask by
/// asset key or band name instead. The scene keeps the band under the name
/// it was asked for, and [`SceneAsset::key`] says which asset answered.
///
/// # Items as catalogs publish them
///
/// - An asset without `href` is ignored unless requested (then an error
///   naming the item, the band and the asset); see [`load_snapshot`](crate::stac::snapshot::load_snapshot).
/// - A null geometry falls back to the `bbox` as footprint (split in two
///   where it crosses the antimeridian).
/// - `datetime` null with `start_datetime`/`end_datetime`: the start is used.
/// - `proj:*` fields on the asset override the item's; the CRS is
///   `proj:code` (`"EPSG:32610"`) or `proj:epsg`, asset level first. The
///   grid is `proj:transform` + `proj:shape`; without a transform, a
///   north-up one from `proj:bbox` and `proj:shape`. A `proj:bbox` in
///   degrees beside a UTM code (EOPF's items copy the WGS 84 `bbox` there)
///   is no grid. EOPF's Sample Service items declare no grid at all: their
///   Zarr assets get it from the store (see `stack::plan_stack_with`).
/// - `nodata`, scale and offset are read per asset: the asset's own
///   `nodata`/`raster:scale`/`raster:offset` (STAC 1.1), else its first
///   `raster:bands` or `bands` entry (`nodata`, `scale`/`raster:scale`,
///   `offset`/`raster:offset`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Item id.
    pub id: String,
    /// Acquisition time (`datetime`, else `start_datetime`), UTC.
    pub datetime: DateTime<Utc>,
    /// Footprint in WGS 84 (the geometry, else the bbox).
    pub footprint: MultiPolygon<f64>,
    /// Scene-level `eo:cloud_cover`, percent.
    pub cloud_cover: Option<f64>,
    /// The requested bands, under the names they were requested by.
    pub assets: BTreeMap<BandName, SceneAsset>,
}

impl Scene {
    /// Converts an item, keeping the `bands` asked for. Each band resolves
    /// to an asset by key, band name or common name (see [`Scene`] for the
    /// order and the tie rules).
    ///
    /// # Errors
    /// [`Error::Item`] naming the item id and the missing/malformed field; a
    /// band no asset answers, with the asset keys, band names and common
    /// names the item has; a band several assets answer equally, naming
    /// them; a requested asset without `href`.
    ///
    /// # Examples
    /// ```
    /// use tilestack::stac::Scene;
    /// use tilestack::BandName;
    /// let item: stac::Item = serde_json::from_value(serde_json::json!({
    ///     "type": "Feature", "stac_version": "1.0.0", "id": "s1", "links": [],
    ///     "geometry": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1],[0,0]]]},
    ///     "bbox": [0,0,1,1],
    ///     "properties": {"datetime": "2019-08-01T18:59:21Z", "eo:cloud_cover": 3.5, "proj:code": "EPSG:32631"},
    ///     "assets": {"B04": {"href": "http://127.0.0.1/B04.tif",
    ///         "proj:transform": [10, 0, 500000, 0, -10, 100000], "proj:shape": [100, 100],
    ///         "eo:bands": [{"name": "B04", "common_name": "red"}],
    ///         "raster:bands": [{"nodata": 0}]}}
    /// })).unwrap();
    /// let s = Scene::from_item(&item, &[BandName::new("B04").unwrap()]).unwrap();
    /// assert_eq!(s.assets.values().next().unwrap().epsg.code(), 32631);
    /// // the same asset by its common name, kept under the name asked for
    /// let red = BandName::new("red").unwrap();
    /// let s = Scene::from_item(&item, &[red.clone()]).unwrap();
    /// assert_eq!(s.assets[&red].key, "B04");
    /// let err = Scene::from_item(&item, &[BandName::new("B08").unwrap()]).unwrap_err();
    /// assert!(err.to_string().contains("B08") && err.to_string().contains("B04"));
    /// ```
    pub fn from_item(item: &stac::Item, bands: &[BandName]) -> Result<Scene> {
        let id = item.id.clone();
        let err = |m: String| Error::item(&id, m);
        let props = serde_json::to_value(&item.properties).unwrap_or(Value::Null);
        let props = props.as_object().cloned().unwrap_or_default();
        let datetime = item
            .properties
            .datetime
            .or(item.properties.start_datetime)
            .ok_or_else(|| err("no datetime (nor start_datetime)".into()))?;
        let footprint = match (&item.geometry, &item.bbox) {
            (Some(g), _) => {
                let g = serde_json::to_value(g).unwrap_or(Value::Null);
                parse_footprint(&g).map_err(|p| p.context("geometry").item(&id))?
            }
            (None, Some(b)) => bbox_footprint(b).map_err(|m| err(format!("bbox: {m}")))?,
            (None, None) => return Err(err("no geometry (nor bbox)".into())),
        };
        let cloud_cover = match props.get("eo:cloud_cover") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|c| (0.0..=100.0).contains(c))
                    .ok_or_else(|| err(format!("eo:cloud_cover {v} is not a percentage")))?,
            ),
        };
        let views: Vec<AssetView<'_>> = item
            .assets
            .iter()
            .map(|(k, a)| AssetView::new(k, a, &props))
            .collect();
        let sentinel2 = is_sentinel2(&props);
        let s2_l2a = (sentinel2 && is_l2a(item, &props)).then(|| s2_offset_state(&props, datetime));
        let mut assets = BTreeMap::new();
        for band in bands {
            let a = resolve(&views, band, sentinel2).map_err(err)?;
            let field = |k: &str| present(a.json.get(k)).or_else(|| present(props.get(k)));
            let what = if a.key == band.as_str() {
                format!("asset {}", a.key)
            } else {
                format!("asset {} (band {band})", a.key)
            };
            let epsg = crs_of(&a.json)
                .or_else(|| crs_of(&props))
                .unwrap_or_else(|| Err("no CRS (neither proj:code nor proj:epsg)".into()))
                .map_err(|p| p.context(&what).item(&id))?;
            let shape = field("proj:shape")
                .and_then(Value::as_array)
                .and_then(|v| match v.as_slice() {
                    [r, c] => Some((r.as_u64()? as usize, c.as_u64()? as usize)),
                    _ => None,
                })
                .filter(|&(r, c)| r > 0 && c > 0)
                .ok_or_else(|| err(format!("{what}: no valid proj:shape [rows, cols]")));
            // proj:transform, else proj:bbox with the shape (a north-up
            // grid; EOPF's items declare proj:bbox and proj:shape): the
            // asset's first, then the item's
            let numbers = |obj: &Map<String, Value>, k: &str| -> Option<Result<Vec<f64>>> {
                let v = present(obj.get(k))?;
                Some(
                    v.as_array()
                        .and_then(|l| l.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
                        .ok_or_else(|| err(format!("{what}: {k} is not numbers"))),
                )
            };
            let from_bbox = |b: Vec<f64>| -> Result<Option<Vec<f64>>> {
                let Ok(&(rows, cols)) = shape.as_ref() else {
                    return Ok(None);
                };
                match b.as_slice() {
                    &[x0, y0, x1, y1] => Ok(Some(vec![
                        (x1 - x0) / cols as f64,
                        0.0,
                        x0,
                        0.0,
                        -(y1 - y0) / rows as f64,
                        y1,
                    ])),
                    other => Err(err(format!(
                        "{what}: proj:bbox has {} numbers, not [xmin, ymin, xmax, ymax]",
                        other.len()
                    ))),
                }
            };
            let mut transform = None;
            let mut lonlat_bbox = false;
            for obj in [&a.json, &props] {
                if let Some(t) = numbers(obj, "proj:transform") {
                    transform = Some(t?);
                } else if let Some(b) = numbers(obj, "proj:bbox") {
                    let b = b?;
                    // EOPF's items write the WGS 84 bbox (degrees) as
                    // proj:bbox beside a UTM proj:code: not a grid
                    if degrees_in_utm(epsg, &b) {
                        lonlat_bbox = true;
                    } else {
                        transform = from_bbox(b)?;
                    }
                }
                if transform.is_some() {
                    break;
                }
            }
            let transform = transform.ok_or_else(|| {
                let mut m = format!("{what}: no proj:transform (nor proj:bbox with proj:shape)");
                if lonlat_bbox {
                    m.push_str(&format!(
                        "; its proj:bbox is in degrees, not in {epsg}, so it is no grid"
                    ));
                }
                if a.is_zarr() {
                    m.push_str(
                        "; a Zarr asset's grid is in its store's metadata: plan with the \
                         metadata fetched (not --no-headers)",
                    );
                }
                err(m)
            })?;
            let transform = GeoTransform::from_stac(&transform)
                .map_err(|e| Error::item_because(&id, &what, e))?;
            let shape = shape?;
            let (nodata, scale_offset) = a.raster().map_err(|m| err(format!("{what}: {m}")))?;
            let spectral_l2a = s2_l2a.is_some() && is_spectral_s2(a, band);
            let harmonize = s2_l2a
                .filter(|_| spectral_l2a)
                .and_then(|new| harmonize_rule(new, scale_offset));
            let format = if a.is_zarr() {
                AssetFormat::Zarr(match scale_offset {
                    Some(_) => CfUse::Declared,
                    None if spectral_l2a => CfUse::Sentinel2Counts,
                    None => CfUse::Apply,
                })
            } else {
                AssetFormat::Cog
            };
            assets.insert(
                band.clone(),
                SceneAsset {
                    key: a.key.to_string(),
                    href: a.asset.href.clone(),
                    epsg,
                    transform,
                    shape,
                    nodata,
                    scale_offset,
                    harmonize,
                    format,
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

/// Whether a `proj:bbox` declared beside a UTM `proj:code` is in fact in
/// degrees (every value within ±180 / ±90): EOPF's items copy the WGS 84
/// `bbox` there. A UTM granule's bounds are hundreds of kilometres of
/// easting, never numbers that small.
fn degrees_in_utm(epsg: Epsg, b: &[f64]) -> bool {
    epsg.as_utm().is_some()
        && b.len() == 4
        && b.iter().step_by(2).all(|x| x.abs() <= 180.0)
        && b.iter().skip(1).step_by(2).all(|y| y.abs() <= 90.0)
}

/// A nodata value as STAC writes it: a number, or `"nan"`, `"inf"`, `"-inf"`.
fn nodata_value(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "inf" | "+inf" | "infinity" => Some(f64::INFINITY),
            "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// Sentinel-2 processing baseline 04.00's first day.
const BASELINE_04_CUTOVER: (i32, u32, u32) = (2022, 1, 25);

/// The offset state of a Sentinel-2 L2A item: `Some(true)` when its data
/// carries `BOA_ADD_OFFSET` (baseline ≥ 04.00, or, without
/// `s2:processing_baseline`, acquired from 25 January 2022), `Some(false)`
/// when the data was shifted back already (`earthsearch:boa_offset_applied`
/// or `sentinel:boa_offset_applied`), `None` for older baselines.
fn s2_offset_state(props: &Map<String, Value>, datetime: DateTime<Utc>) -> Option<bool> {
    let applied = [
        "earthsearch:boa_offset_applied",
        "sentinel:boa_offset_applied",
    ]
    .iter()
    .any(|k| props.get(*k).and_then(Value::as_bool) == Some(true));
    let baseline = ["s2:processing_baseline", "sentinel:processing_baseline"]
        .iter()
        .find_map(|k| props.get(*k))
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()));
    let new = match baseline {
        Some(b) => b >= 4.0,
        None => {
            let (y, m, d) = BASELINE_04_CUTOVER;
            chrono::NaiveDate::from_ymd_opt(y, m, d).is_some_and(|cut| datetime.date_naive() >= cut)
        }
    };
    new.then_some(!applied)
}

/// A Level-2A Sentinel-2 item: `s2:product_type` S2MSI2A, or L2A in its
/// collection or id.
fn is_l2a(item: &stac::Item, props: &Map<String, Value>) -> bool {
    let has = |s: &str| s.to_ascii_lowercase().contains("l2a");
    props
        .get("s2:product_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("S2MSI2A"))
        || item.collection.as_deref().is_some_and(has)
        || has(&item.id)
}

/// A Sentinel-2 reflectance band (B01…B12, B8A, by asset key, band name or
/// Earth Search's name), not SCL, AOT, WVP or a multi-band image.
fn is_spectral_s2(a: &AssetView<'_>, band: &BandName) -> bool {
    let spectral = |n: &str| {
        SENTINEL2_ALIASES
            .iter()
            .any(|(b, es)| n.eq_ignore_ascii_case(b) || n.eq_ignore_ascii_case(es))
            || n.eq_ignore_ascii_case("B10")
    };
    a.bands.len() <= 1
        && (spectral(a.key)
            || spectral(band.as_str())
            || a.single_band()
                .and_then(|(n, _)| n.as_deref())
                .is_some_and(spectral))
}

/// The harmonization an asset needs (see [`Harmonize`]), given its item's
/// offset state and its declared scale/offset.
fn harmonize_rule(new: Option<bool>, scale_offset: Option<(f64, f64)>) -> Option<Harmonize> {
    let declares_offset = scale_offset.is_some_and(|(_, o)| o != 0.0);
    match new? {
        // The data carries the offset: the declared one covers it, else subtract.
        true if declares_offset => None,
        true => Some(Harmonize::SubtractDn(1000.0)),
        // Already shifted back: a declared offset would count it twice.
        false if declares_offset => Some(Harmonize::DropDeclaredOffset),
        false => None,
    }
}

/// A JSON value that is there and not `null`.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

/// One asset of an item as the band resolver sees it.
struct AssetView<'a> {
    key: &'a str,
    asset: &'a stac::Asset,
    /// The asset as JSON (extension fields such as `eo:bands` live here).
    json: Map<String, Value>,
    /// `(name, common name)` of each band in `bands` (STAC 1.1), else `eo:bands`.
    bands: Vec<(Option<String>, Option<String>)>,
    /// `|proj:transform[0]|`, asset level first: the pixel size for ties.
    pixel: Option<f64>,
}

impl<'a> AssetView<'a> {
    fn new(key: &'a str, asset: &'a stac::Asset, props: &Map<String, Value>) -> Self {
        let json = match serde_json::to_value(asset) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let list = ["bands", "eo:bands"].iter().find_map(|k| {
            json.get(*k)
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
        });
        let text = |b: &Value, keys: &[&str]| {
            keys.iter()
                .find_map(|k| b.get(*k).and_then(Value::as_str))
                .map(str::to_string)
        };
        let bands = list
            .map(|l| {
                l.iter()
                    .map(|b| {
                        (
                            text(b, &["name"]),
                            text(b, &["common_name", "eo:common_name"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let pixel = present(json.get("proj:transform"))
            .or_else(|| present(props.get("proj:transform")))
            .and_then(|t| t.get(0))
            .and_then(Value::as_f64)
            .map(f64::abs);
        AssetView {
            key,
            asset,
            json,
            bands,
            pixel,
        }
    }

    fn has_href(&self) -> bool {
        !self.asset.href.trim().is_empty()
    }

    /// A Zarr array: media type `application/vnd+zarr`, `application/x-zarr`
    /// (any `zarr` media type), or an href with a `.zarr` path component.
    fn is_zarr(&self) -> bool {
        self.asset
            .r#type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("zarr"))
            || crate::zarr::is_zarr_href(&self.asset.href)
    }

    fn is_tiff(&self) -> bool {
        self.asset
            .r#type
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("tiff"))
    }

    /// The single band of a single-band asset.
    fn single_band(&self) -> Option<&(Option<String>, Option<String>)> {
        match self.bands.as_slice() {
            [b] => Some(b),
            _ => None,
        }
    }

    /// `(nodata, scale/offset)`: the asset's own fields (STAC 1.1), else its
    /// first `raster:bands` / `bands` entry. `nodata` may be a number or one
    /// of the strings STAC allows (`"nan"`, `"inf"`, `"-inf"`); anything else
    /// is an error naming the value.
    fn raster(&self) -> std::result::Result<Radiometry, String> {
        let band = ["raster:bands", "bands"]
            .iter()
            .find_map(|k| {
                self.json
                    .get(*k)
                    .and_then(Value::as_array)
                    .and_then(|v| v.first())
            })
            .and_then(Value::as_object);
        let num = |keys: &[&str]| {
            keys.iter().find_map(|k| {
                self.json
                    .get(*k)
                    .and_then(Value::as_f64)
                    .or_else(|| band.and_then(|b| b.get(*k)).and_then(Value::as_f64))
            })
        };
        let nodata = match present(self.json.get("nodata"))
            .or_else(|| band.and_then(|b| present(b.get("nodata"))))
        {
            None => None,
            Some(v) => Some(nodata_value(v).ok_or_else(|| {
                format!("nodata {v} is neither a number nor \"nan\", \"inf\" or \"-inf\"")
            })?),
        };
        let scale = num(&["raster:scale", "scale"]);
        let offset = num(&["raster:offset", "offset"]);
        let scale_offset = match (scale, offset) {
            (None, None) => None,
            (s, o) => Some((s.unwrap_or(1.0), o.unwrap_or(0.0))),
        };
        Ok((nodata, scale_offset))
    }
}

/// How an asset answered a band request, for messages.
#[derive(Clone, Copy, PartialEq)]
enum By {
    Key,
    Name,
    CommonName,
}

impl By {
    fn text(self) -> &'static str {
        match self {
            By::Key => "asset key",
            By::Name => "band name",
            By::CommonName => "common name",
        }
    }
}

/// Sentinel-2 MSI band ids and the names Earth Search gives the same bands
/// (asset keys, and band names on its older items, which say `red` where
/// newer ones say `B04`). Used, both ways, only for Sentinel-2 items and
/// only when nothing in the item itself answers.
const SENTINEL2_ALIASES: [(&str, &str); 12] = [
    ("B01", "coastal"),
    ("B02", "blue"),
    ("B03", "green"),
    ("B04", "red"),
    ("B05", "rededge1"),
    ("B06", "rededge2"),
    ("B07", "rededge3"),
    ("B08", "nir"),
    ("B8A", "nir08"),
    ("B09", "nir09"),
    ("B11", "swir16"),
    ("B12", "swir22"),
];

/// Whether `platform` or `constellation` says Sentinel-2 (`sentinel-2b`,
/// `Sentinel 2`, ...).
fn is_sentinel2(props: &Map<String, Value>) -> bool {
    ["platform", "constellation"].iter().any(|k| {
        props.get(*k).and_then(Value::as_str).is_some_and(|v| {
            let v: String = v
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            v.starts_with("sentinel2")
        })
    })
}

/// The asset that answers `band` (see [`Scene`]), or a message that
/// names the band and, for a band nothing answers, what the item has.
fn resolve<'v, 'a>(
    views: &'v [AssetView<'a>],
    band: &BandName,
    sentinel2: bool,
) -> Result<&'v AssetView<'a>, String> {
    if let Some(found) = resolve_as(views, band, band.as_str()) {
        return found;
    }
    let alias = SENTINEL2_ALIASES.iter().find_map(|&(id, name)| {
        if band.as_str().eq_ignore_ascii_case(id) {
            Some(name)
        } else if band.as_str().eq_ignore_ascii_case(name) {
            Some(id)
        } else {
            None
        }
    });
    if let Some(alias) = alias.filter(|_| sentinel2)
        && let Some(found) = resolve_as(views, band, alias)
    {
        return found;
    }
    Err(missing_band(views, band))
}

/// Steps 1–4 of [`Scene`]'s rules for the name `want`; `None` when no step matches.
fn resolve_as<'v, 'a>(
    views: &'v [AssetView<'a>],
    band: &BandName,
    want: &str,
) -> Option<Result<&'v AssetView<'a>, String>> {
    for ignore_case in [false, true] {
        let same = |s: &str| {
            if ignore_case {
                s.eq_ignore_ascii_case(want)
            } else {
                s == want
            }
        };
        for by in [By::Key, By::Name, By::CommonName] {
            let hits: Vec<&AssetView<'a>> = views
                .iter()
                .filter(|v| match by {
                    By::Key => same(v.key),
                    By::Name => v
                        .single_band()
                        .and_then(|b| b.0.as_deref())
                        .is_some_and(same),
                    By::CommonName => v
                        .single_band()
                        .and_then(|b| b.1.as_deref())
                        .is_some_and(same),
                })
                .collect();
            if !hits.is_empty() {
                return Some(pick(hits, band, by));
            }
        }
    }
    None
}

/// One asset among those one step matched: GeoTIFFs first, then those with
/// an `href`, then the finest pixel; a tie is an error naming the assets.
fn pick<'v, 'a>(
    mut hits: Vec<&'v AssetView<'a>>,
    band: &BandName,
    by: By,
) -> Result<&'v AssetView<'a>, String> {
    // GeoTIFFs first: the reader reads COGs, and a GeoTIFF without href is
    // better reported than silently swapped for its JPEG 2000 copy.
    if hits.iter().any(|v| v.is_tiff()) {
        hits.retain(|v| v.is_tiff());
    }
    if hits.iter().any(|v| v.has_href()) {
        hits.retain(|v| v.has_href());
    } else {
        let keys: Vec<&str> = hits.iter().map(|v| v.key).collect();
        return Err(if by == By::Key {
            format!("asset {} has no href", keys.join(", "))
        } else {
            format!(
                "asset {} (band \"{band}\" by {}) has no href",
                keys.join(", "),
                by.text()
            )
        });
    }
    if let Some(finest) = hits
        .iter()
        .filter_map(|v| v.pixel)
        .min_by(|a, b| a.total_cmp(b))
    {
        hits.retain(|v| v.pixel.is_none_or(|p| p <= finest));
    }
    match hits.as_slice() {
        [one] => Ok(one),
        _ => {
            let keys: Vec<&str> = hits.iter().map(|v| v.key).collect();
            Err(format!(
                "band \"{band}\" is ambiguous: assets {} all match by {}; ask for one by asset key \
                 or band name",
                keys.join(", "),
                by.text()
            ))
        }
    }
}

/// The message for a band no asset answers: what the item has instead.
fn missing_band(views: &[AssetView<'_>], band: &BandName) -> String {
    let keys: Vec<&str> = views.iter().map(|v| v.key).collect();
    let names: BTreeSet<&str> = views
        .iter()
        .flat_map(|v| v.bands.iter().filter_map(|b| b.0.as_deref()))
        .collect();
    let commons: BTreeSet<&str> = views
        .iter()
        .flat_map(|v| v.bands.iter().filter_map(|b| b.1.as_deref()))
        .collect();
    let list = |v: Vec<&str>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "has no band \"{band}\": no asset key, band name or common name matches (asset keys: {}; \
         band names: {}; common names: {})",
        list(keys),
        list(names.into_iter().collect()),
        list(commons.into_iter().collect()),
    )
}

/// A footprint from a bbox `[west, south, east, north]`; one crossing the
/// antimeridian (`west > east`) becomes two rectangles.
fn bbox_footprint(b: &stac::Bbox) -> std::result::Result<MultiPolygon<f64>, String> {
    let (w, s, e, n) = (b.xmin(), b.ymin(), b.xmax(), b.ymax());
    let lon = -180.0..=180.0;
    let lat = -90.0..=90.0;
    if ![w, e].iter().all(|x| lon.contains(x)) || ![s, n].iter().all(|y| lat.contains(y)) || s >= n
    {
        return Err(format!(
            "[{w}, {s}, {e}, {n}] is not [west, south, east, north] in lon/lat"
        ));
    }
    let rect = |w: f64, e: f64| {
        Polygon::new(
            LineString::from(vec![(w, s), (e, s), (e, n), (w, n), (w, s)]),
            vec![],
        )
    };
    Ok(if w <= e {
        MultiPolygon::new(vec![rect(w, e)])
    } else {
        MultiPolygon::new(vec![rect(w, 180.0), rect(-180.0, e)])
    })
}

/// CRS from `proj:code` (`"EPSG:32633"`, projection v2) or `proj:epsg` (v1)
/// of one object (asset or item properties); `None` when it has neither.
fn crs_of(obj: &Map<String, Value>) -> Option<std::result::Result<Epsg, Problem>> {
    if let Some(c) = present(obj.get("proj:code")) {
        return Some(
            c.as_str()
                .ok_or_else(|| Problem::from(format!("proj:code {c} is not a string")))
                .and_then(|c| {
                    c.parse::<Epsg>()
                        .map_err(|e| Problem::because("proj:code", e))
                }),
        );
    }
    present(obj.get("proj:epsg")).map(|v| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .and_then(|n| Epsg::new(n).ok())
            .ok_or_else(|| Problem::from(format!("proj:epsg {v} is not an EPSG code")))
    })
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

/// A GeoJSON Polygon/MultiPolygon, validated; a malformed one keeps the
/// GeoJSON parser's error as its cause.
pub(crate) fn parse_footprint(g: &Value) -> std::result::Result<MultiPolygon<f64>, Problem> {
    let not_polygonal =
        |t: &str| Problem::from(format!("type {t} is not a Polygon or MultiPolygon"));
    let geometry = geojson::Geometry::deserialize(g).map_err(|e| {
        match g.get("type").and_then(Value::as_str) {
            None => Problem::from("no type"),
            Some(t @ ("Polygon" | "MultiPolygon")) => match g.get("coordinates") {
                None => Problem::from("no coordinates"),
                Some(_) => Problem::because(format!("malformed {t}"), e),
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

/// The Zarr assets of `item` that `bands` resolve to (as [`Scene::from_item`]
/// resolves them; bands that resolve to nothing are skipped) and that
/// declare no grid: neither `proj:transform` (asset or item) nor a
/// `proj:bbox` in the asset's CRS with a `proj:shape`. EOPF's Sample
/// Service items are such: their grid is in the store's metadata.
pub(crate) fn zarr_assets_without_grid(item: &stac::Item, bands: &[BandName]) -> Vec<String> {
    let props = serde_json::to_value(&item.properties).unwrap_or(Value::Null);
    let props = props.as_object().cloned().unwrap_or_default();
    let views: Vec<AssetView<'_>> = item
        .assets
        .iter()
        .map(|(k, a)| AssetView::new(k, a, &props))
        .collect();
    let sentinel2 = is_sentinel2(&props);
    let mut keys: Vec<String> = Vec::new();
    for band in bands {
        let Ok(a) = resolve(&views, band, sentinel2) else {
            continue;
        };
        if !a.is_zarr() || keys.iter().any(|k| k == a.key) {
            continue;
        }
        let field = |k: &str| present(a.json.get(k)).or_else(|| present(props.get(k)));
        let epsg = crs_of(&a.json)
            .or_else(|| crs_of(&props))
            .and_then(std::result::Result::ok);
        let grid_bbox = |obj: &Map<String, Value>| {
            present(obj.get("proj:bbox"))
                .and_then(Value::as_array)
                .and_then(|l| l.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
                .is_some_and(|b| !epsg.is_some_and(|e| degrees_in_utm(e, &b)))
        };
        let declared = field("proj:transform").is_some()
            || (field("proj:shape").is_some() && (grid_bbox(&a.json) || grid_bbox(&props)));
        if !declared {
            keys.push(a.key.to_string());
        }
    }
    keys
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
    use serde_json::json;

    use super::*;

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

    /// EOPF's Zarr items: assets keyed `b04` with media type
    /// `application/vnd+zarr`, `proj:bbox` + `proj:shape` and no
    /// `proj:transform`; `red` finds `b04` on a Sentinel-2 item, and what
    /// the CF attributes do follows the declared radiometry.
    #[test]
    fn zarr_assets_by_media_type_or_href_with_a_grid_from_their_bounds() {
        let mut v = base();
        v["properties"]["platform"] = json!("sentinel-2a");
        v["properties"]["s2:product_type"] = json!("S2MSI2A");
        v["assets"] = json!({
            "b04": {"href": "https://h/S2A.zarr/measurements/reflectance/r10m/b04",
                    "proj:bbox": [399960.0, 4090200.0, 509760.0, 4200000.0], "proj:shape": [10980, 10980]},
            "scl": {"href": "https://h/store/scl", "type": "application/vnd+zarr",
                    "proj:transform": [20, 0, 399960, 0, -20, 4200000], "proj:shape": [5490, 5490]},
            "b08": {"href": "https://h/S2A.zarr/measurements/reflectance/r10m/b08",
                    "proj:bbox": [399960.0, 4090200.0, 509760.0, 4200000.0], "proj:shape": [10980, 10980],
                    "raster:scale": 0.0001, "raster:offset": -0.1},
        });
        let s = Scene::from_item(&item(v.clone()), &[b("red"), b("SCL"), b("nir")]).unwrap();
        let red = &s.assets[&b("red")];
        assert_eq!(red.key, "b04");
        assert_eq!(red.format, AssetFormat::Zarr(CfUse::Sentinel2Counts));
        assert_eq!(
            red.transform,
            GeoTransform::north_up(399960.0, 4200000.0, 10.0)
        );
        assert_eq!(red.shape, (10980, 10980));
        assert_eq!(s.assets[&b("SCL")].format, AssetFormat::Zarr(CfUse::Apply));
        assert_eq!(
            s.assets[&b("nir")].format,
            AssetFormat::Zarr(CfUse::Declared)
        );
        // a GeoTIFF stays a COG
        let s = Scene::from_item(&item(base()), &[b("B04")]).unwrap();
        assert_eq!(s.assets[&b("B04")].format, AssetFormat::Cog);
        // bounds that are not four numbers are named
        v["assets"]["b04"]["proj:bbox"] = json!([1.0, 2.0]);
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("asset b04") && e.contains("proj:bbox has 2 numbers"),
            "{e}"
        );
    }

    /// A real EOPF Sample Service item (tests/fixtures/zarr/real): no
    /// proj:transform, no proj:shape, and an item-level proj:bbox in degrees
    /// beside proj:code EPSG:32632. No grid is made of those degrees, even
    /// with a proj:shape; the error names the item and the asset and says
    /// where the grid is; the Zarr assets without a grid are the ones the
    /// store must give one.
    #[test]
    fn eopf_zarr_items_degree_bbox_is_no_grid() {
        let v: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/zarr/real/eopf-item-S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515.json"
        ))
        .unwrap();
        let id = "S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515";
        // as the document says: degrees, not EPSG:32632 metres
        assert_eq!(v["properties"]["proj:code"], "EPSG:32632");
        assert_eq!(v["properties"]["proj:bbox"][0], json!(8.999745560361898));
        assert!(v["assets"]["B04_10m"].get("proj:shape").is_none());
        let e = Scene::from_item(&item(v.clone()), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(id)
                && e.contains("B04_10m")
                && e.contains("degrees")
                && e.contains("store's metadata"),
            "{e}"
        );
        let mut with_shape = v.clone();
        with_shape["assets"]["B04_10m"]["proj:shape"] = json!([10980, 10980]);
        let e = Scene::from_item(&item(with_shape), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no proj:transform") && e.contains("degrees"),
            "{e}"
        );
        assert_eq!(
            zarr_assets_without_grid(&item(v), &[b("B04"), b("red"), b("SCL_20m"), b("B8A")]),
            ["B04_10m", "SCL_20m", "B8A_20m"]
        );
        // a bbox in metres with a shape is a grid, as before
        assert!(!degrees_in_utm(
            Epsg::new(32632).unwrap(),
            &[699960.0, 4590240.0, 809760.0, 4700040.0]
        ));
        assert!(!degrees_in_utm(Epsg::WGS84, &[8.9, 44.1, 10.4, 45.2]));
    }

    /// A real EOPF Explorer item (GeoZarr): SCL_20m and AOT_10m declare
    /// proj:code, proj:transform and proj:shape, and are read as declared.
    #[test]
    fn eopf_explorer_zarr_item_declares_its_grids() {
        let v: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/zarr/real/explorer-item-S2A_MSIL2A_20250831T103701_N0511_R008_T31TFL_20250831T145420.json"
        ))
        .unwrap();
        let it = item(v);
        let s = Scene::from_item(&it, &[b("SCL_20m"), b("AOT_10m")]).unwrap();
        let scl = &s.assets[&b("SCL_20m")];
        assert_eq!(scl.epsg.code(), 32631);
        assert_eq!(
            scl.transform,
            GeoTransform::north_up(600000.0, 5100000.0, 20.0)
        );
        assert_eq!(scl.shape, (5490, 5490));
        assert_eq!(scl.format, AssetFormat::Zarr(CfUse::Apply));
        let aot = &s.assets[&b("AOT_10m")];
        assert_eq!(
            aot.transform,
            GeoTransform::north_up(600000.0, 5100000.0, 10.0)
        );
        assert_eq!(aot.shape, (10980, 10980));
        assert!(zarr_assets_without_grid(&it, &[b("SCL_20m"), b("AOT_10m")]).is_empty());
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
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("eo:cloud_cover 140 is not a percentage"), "{e}");
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
        let err = |g: Value| parse_footprint(&g).unwrap_err().message;
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
        // the GeoJSON parser's own error is the cause, not part of the message
        let e = parse_footprint(
            &json!({"type": "Polygon", "coordinates": [[[0, "a"], [1, 0], [1, 1], [0, 0]]]}),
        )
        .unwrap_err();
        assert_eq!(e.message, "malformed Polygon");
        let cause = e.source.as_ref().expect("the parser's error");
        assert!(cause.get().is::<serde_json::Error>(), "{cause:?}");
        assert!(!cause.to_string().is_empty());
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

    /// An item with Earth Search's naming (key `red`, band name `B04`),
    /// its JPEG 2000 copy and a three-band `visual`, all with hrefs.
    fn earth_search_like() -> Value {
        let a = |name: &str, common: &str, ty: &str| {
            json!({"href": format!("http://h/{name}"), "type": ty,
                   "eo:bands": [{"name": name, "common_name": common}]})
        };
        let mut v = base();
        v["properties"]["proj:transform"] = json!([10, 0, 0, 0, -10, 0]);
        v["properties"]["proj:shape"] = json!([5, 5]);
        let tif = "image/tiff; application=geotiff; profile=cloud-optimized";
        v["assets"] = json!({
            "red": a("B04", "red", tif),
            "red-jp2": a("B04", "red", "image/jp2"),
            "rededge1": a("B05", "rededge", tif),
            "rededge2": a("B06", "rededge", tif),
            "scl": {"href": "http://h/scl", "type": tif},
            "visual": {"href": "http://h/visual", "type": tif, "eo:bands": [
                {"name": "B04", "common_name": "red"}, {"name": "B03", "common_name": "green"},
                {"name": "B02", "common_name": "blue"}]},
            "green": {"href": "http://h/green", "type": tif,
                      "eo:bands": [{"name": "B03", "common_name": "green"}]},
            "thumbnail": {"href": "http://h/t.jpg", "type": "image/jpeg"}
        });
        v
    }

    fn key_of(v: &Value, band: &str) -> std::result::Result<String, String> {
        Scene::from_item(&item(v.clone()), &[b(band)])
            .map(|s| s.assets[&b(band)].key.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_band_resolves_by_key_name_common_name_then_case() {
        let v = earth_search_like();
        assert_eq!(key_of(&v, "red").as_deref(), Ok("red"));
        // by band name: the GeoTIFF beats its JPEG 2000 copy, the 3-band visual is not a candidate
        assert_eq!(key_of(&v, "B04").as_deref(), Ok("red"));
        assert_eq!(key_of(&v, "B03").as_deref(), Ok("green"));
        // by key, a multi-band asset is still reachable
        assert_eq!(key_of(&v, "visual").as_deref(), Ok("visual"));
        // ignoring case, last
        assert_eq!(key_of(&v, "SCL").as_deref(), Ok("scl"));
        assert_eq!(key_of(&v, "b04").as_deref(), Ok("red"));
        // the label stays the one asked for
        let s = Scene::from_item(&item(v), &[b("B04"), b("green")]).unwrap();
        let labels: Vec<&str> = s.assets.keys().map(BandName::as_str).collect();
        assert_eq!(labels, ["B04", "green"]);
        assert_eq!(s.assets[&b("B04")].href, "http://h/B04");
    }

    #[test]
    fn ties_and_misses_say_what_the_item_has() {
        let v = earth_search_like();
        let e = key_of(&v, "rededge").unwrap_err();
        assert!(
            e.contains("item x")
                && e.contains("\"rededge\" is ambiguous")
                && e.contains("rededge1, rededge2")
                && e.contains("common name"),
            "{e}"
        );
        let e = key_of(&v, "B08").unwrap_err();
        assert!(
            e.contains("item x: has no band \"B08\"")
                && e.contains(
                    "asset keys: red, red-jp2, rededge1, rededge2, scl, visual, green, thumbnail"
                )
                && e.contains("band names: B02, B03, B04, B05, B06")
                && e.contains("common names: blue, green, red, rededge"),
            "{e}"
        );
    }

    #[test]
    fn the_finest_copy_wins_and_a_requested_asset_needs_an_href() {
        // CDSE-like: the same band at 10 m and 20 m, STAC 1.1 `bands` with eo:common_name
        let mut v = base();
        let a = |px: i32| {
            json!({"href": format!("http://h/B02_{px}m"), "proj:transform": [px, 0, 0, 0, -px, 0],
                   "proj:shape": [5, 5], "raster:scale": 0.0001, "raster:offset": -0.1, "nodata": 0,
                   "bands": [{"name": "B02", "eo:common_name": "blue"}]})
        };
        v["assets"] = json!({"B02_20m": a(20), "B02_10m": a(10), "qa": {"href": ""}});
        let s = Scene::from_item(&item(v.clone()), &[b("blue")]).unwrap();
        let blue = &s.assets[&b("blue")];
        assert_eq!(blue.key, "B02_10m");
        assert_eq!(blue.scale_offset, Some((0.0001, -0.1)));
        assert_eq!(blue.nodata, Some(0.0));
        // (load_snapshot and the STAC client give an asset without href an empty one)
        let e = key_of(&v, "qa").unwrap_err();
        assert!(e.contains("item x: asset qa has no href"), "{e}");
    }

    #[test]
    fn asset_proj_overrides_item_proj_and_bbox_stands_in_for_geometry() {
        let mut v = base();
        v["properties"]["proj:code"] = json!("EPSG:32611");
        v["assets"]["B04"]["proj:epsg"] = json!(32612);
        v["assets"]["B04"]["proj:code"] = Value::Null;
        v["geometry"] = Value::Null;
        v["bbox"] = json!([179.5, 10, -179.5, 11]);
        v["properties"]["datetime"] = Value::Null;
        v["properties"]["start_datetime"] = json!("2019-08-02T10:00:00Z");
        v["properties"]["end_datetime"] = json!("2019-08-02T10:00:10Z");
        let s = Scene::from_item(&item(v.clone()), &[b("B04")]).unwrap();
        assert_eq!(s.assets[&b("B04")].epsg.code(), 32612);
        assert_eq!(s.datetime.to_rfc3339(), "2019-08-02T10:00:00+00:00");
        let r = |w: f64, e: f64| {
            Polygon::new(
                ls(&[(w, 10.0), (e, 10.0), (e, 11.0), (w, 11.0), (w, 10.0)]),
                vec![],
            )
        };
        assert_eq!(
            s.footprint,
            MultiPolygon::new(vec![r(179.5, 180.0), r(-180.0, -179.5)])
        );
        v["bbox"] = Value::Null;
        let e = Scene::from_item(&item(v), &[b("B04")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("item x: no geometry (nor bbox)"), "{e}");
    }

    #[test]
    fn sentinel2_ids_and_earth_search_names_are_aliases_on_sentinel2_items_only() {
        // Earth Search's older items: key `red`, band name `red`, nothing says B04
        let mut v = base();
        v["assets"] = json!({"red": {"href": "http://h/B04.tif", "proj:transform": [10,0,0,0,-10,0],
            "proj:shape": [5,5], "eo:bands": [{"name": "red", "common_name": "red"}]},
            "B8A": {"href": "http://h/B8A.tif", "proj:transform": [20,0,0,0,-20,0],
            "proj:shape": [5,5], "eo:bands": [{"name": "B8A", "common_name": "rededge"}]}});
        let e = key_of(&v, "B04").unwrap_err();
        assert!(e.contains("has no band \"B04\""), "{e}");
        v["properties"]["platform"] = json!("Sentinel-2A");
        assert_eq!(key_of(&v, "B04").as_deref(), Ok("red"));
        assert_eq!(key_of(&v, "nir08").as_deref(), Ok("B8A"));
        let e = key_of(&v, "B08").unwrap_err();
        assert!(e.contains("has no band \"B08\""), "{e}");
    }
}
