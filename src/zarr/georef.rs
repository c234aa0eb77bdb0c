//! Where a Zarr array lies: its EPSG code and corner transform, from GeoZarr
//! attributes, a grid-mapping variable, or 1-D coordinate arrays of pixel
//! centres (the EOPF samples' only transform).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::geo::grid::GeoTransform;
use crate::units::Epsg;
use crate::zarr::meta::{ArrayMeta, number};
use crate::zarr::{ZarrReader, codec, join};

/// Most elements a coordinate array may have (2^24).
const MAX_COORDS: u64 = 1 << 24;

/// Where an array's transform came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeoSource {
    /// The array's `spatial:transform` or `proj:transform` attribute
    /// (rasterio's affine order `[dx, 0, x0, 0, dy, y0]`).
    TransformAttribute,
    /// The GDAL `GeoTransform` of the grid-mapping variable named.
    GridMapping(String),
    /// The 1-D coordinate arrays of pixel centres named (`x`, `y`).
    Coordinates {
        /// The x (column) coordinate array's path in the store.
        x: String,
        /// The y (row) coordinate array's path in the store.
        y: String,
    },
}

/// An array's georeference: the corner transform of pixel (0, 0), north-up,
/// and the EPSG code when the store names one.
#[derive(Debug, Clone, PartialEq)]
pub struct ZarrGeo {
    /// The CRS, from `proj:code`/`proj:epsg` on the array, its grid mapping,
    /// its groups, or the root's `stac_discovery.properties`; `None` when
    /// the store names none (then the STAC item's `proj:code` decides).
    pub epsg: Option<Epsg>,
    /// Top-left corner of pixel (0, 0) and the pixel size, CRS units.
    pub transform: GeoTransform,
    /// Where the transform came from.
    pub source: GeoSource,
}

/// `[dx, 0, x0, 0, dy, y0]` (the first six of a 3×3 affine) as a north-up
/// transform; rotation terms must be 0.
fn affine(v: &Value) -> Option<std::result::Result<GeoTransform, String>> {
    let a: Vec<f64> = v.as_array()?.iter().filter_map(number).collect();
    if a.len() < 6 {
        return Some(Err(format!("transform {v} has fewer than 6 numbers")));
    }
    if a[1] != 0.0 || a[3] != 0.0 {
        return Some(Err(format!("transform {v} is rotated (not north-up)")));
    }
    Some(Ok(GeoTransform {
        x0: a[2],
        dx: a[0],
        y0: a[5],
        dy: a[4],
    }))
}

/// A GDAL `GeoTransform` (`"x0 dx 0 y0 0 dy"`, or a list).
fn gdal(v: &Value) -> Option<std::result::Result<GeoTransform, String>> {
    let a: Vec<f64> = match v {
        Value::String(s) => s
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect(),
        Value::Array(a) => a.iter().filter_map(number).collect(),
        _ => return None,
    };
    if a.len() != 6 {
        return Some(Err(format!("GeoTransform {v} is not 6 numbers")));
    }
    if a[2] != 0.0 || a[4] != 0.0 {
        return Some(Err(format!("GeoTransform {v} is rotated (not north-up)")));
    }
    Some(Ok(GeoTransform::from_gdal([
        a[0], a[1], a[2], a[3], a[4], a[5],
    ])))
}

/// An EPSG code from `proj:code` (`"EPSG:32610"`) or `proj:epsg` (32610).
fn epsg_of(attrs: &Map<String, Value>) -> Option<Epsg> {
    let code = attrs
        .get("proj:code")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix("EPSG:"))
        .and_then(|s| s.parse::<u32>().ok())
        .or_else(|| {
            attrs
                .get("proj:epsg")
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok())
        })
        .or_else(|| {
            let p = attrs
                .get("stac_discovery")?
                .get("properties")?
                .as_object()?;
            epsg_of(p).map(Epsg::code)
        })?;
    Epsg::new(code).ok()
}

/// Pixel centres → (corner of the first pixel, step), checked regular.
fn regular(v: &[f64], what: &str) -> std::result::Result<(f64, f64), String> {
    let n = v.len();
    if n < 2 {
        return Err(format!("{what} has {n} values: a step needs 2"));
    }
    let step = (v[n - 1] - v[0]) / (n - 1) as f64;
    if step == 0.0 || !step.is_finite() {
        return Err(format!(
            "{what} does not advance ({} to {})",
            v[0],
            v[n - 1]
        ));
    }
    let tol = step.abs() * 1e-6;
    if let Some(i) = (1..n).find(|&i| ((v[i] - v[i - 1]) - step).abs() > tol) {
        return Err(format!(
            "{what} is not regular: step {} at index {i}, {step} on average",
            v[i] - v[i - 1]
        ));
    }
    Ok((v[0] - step / 2.0, step))
}

/// A coordinate array, as a georeference needs it: its length and, when
/// its values are regular, the first and the step (or why not).
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    len: usize,
    regular: std::result::Result<(f64, f64), String>,
}

impl ZarrReader {
    /// The georeference of the array at `href`, in this order: its
    /// `spatial:transform`/`proj:transform` attribute; the `GeoTransform`
    /// of the variable its `grid_mapping` attribute names; the 1-D
    /// coordinate arrays its last two dimensions name (default `y`, `x`)
    /// beside it, pixel centres turned into the corner transform and checked
    /// regular (`x` ascending, `y` descending).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming store and array when
    /// none of these establishes a north-up transform (none there, rotated,
    /// irregular coordinates, coordinates whose length is not the array's).
    pub async fn georef(&self, href: &str) -> Result<ZarrGeo> {
        let cell = {
            let mut m = self.georefs.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(href.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| self.load_georef(href))
            .await
            .cloned()
    }

    async fn load_georef(&self, href: &str) -> Result<ZarrGeo> {
        let meta = self.array(href).await?;
        let nd = meta.shape.len();
        if nd < 2 {
            return Err(meta.error("a 1-D array has no 2-D georeference"));
        }
        let (group, _) = meta.path.rsplit_once('/').unwrap_or(("", &meta.path));
        let in_group = |name: &str| {
            if group.is_empty() {
                name.to_string()
            } else {
                format!("{group}/{name}")
            }
        };
        let attrs = &meta.attributes;
        let gm_name = attrs.get("grid_mapping").and_then(Value::as_str);
        let gm_attrs = match gm_name {
            Some(n) => self.node_attributes(&meta.store, &in_group(n)).await?,
            None => None,
        };
        let mut epsg = epsg_of(attrs).or_else(|| gm_attrs.as_ref().and_then(epsg_of));
        // the array's groups, innermost first, then the root
        let mut p = group.to_string();
        while epsg.is_none() {
            if let Some(a) = self.node_attributes(&meta.store, &p).await? {
                epsg = epsg_of(&a);
            }
            if p.is_empty() {
                break;
            }
            p = p
                .rsplit_once('/')
                .map_or(String::new(), |(g, _)| g.to_string());
        }
        let found = |t: std::result::Result<GeoTransform, String>, source| match t {
            Ok(transform) => Ok(ZarrGeo {
                epsg,
                transform,
                source,
            }),
            Err(m) => Err(meta.error(m)),
        };
        // A transform attribute beside a proj:shape/spatial:shape that is
        // not the array's was copied from another array (EOPF Explorer's
        // GeoZarr overviews r120m…r720m carry r60m's 60 m transform and
        // shape): it is not this array's grid.
        let declared_shape = ["proj:shape", "spatial:shape"].iter().find_map(|k| {
            let v: Vec<u64> = attrs
                .get(*k)?
                .as_array()?
                .iter()
                .map(Value::as_u64)
                .collect::<Option<_>>()?;
            Some((*k, v))
        });
        let stale = declared_shape.filter(|(_, v)| v.as_slice() != &meta.shape[nd - 2..]);
        let attribute = attrs
            .get("spatial:transform")
            .or_else(|| attrs.get("proj:transform"));
        let mut note = None;
        match (attribute.and_then(affine), &stale) {
            (Some(t), None) => return found(t, GeoSource::TransformAttribute),
            (Some(_), Some((k, v))) => {
                note = Some(format!(
                    "its transform attribute is for {k} {v:?}, not the array's shape {:?} \
                     (a stale attribute, not used)",
                    &meta.shape[nd - 2..]
                ));
            }
            (None, _) => {}
        }
        let with_note = |e: Error| match &note {
            Some(n) => meta.error(format!("{n}; {e}")),
            None => e,
        };
        self.georef_fallback(&meta, gm_name, gm_attrs.as_ref(), epsg, &in_group)
            .await
            .map_err(with_note)
    }

    /// [`ZarrReader::georef`] after the transform attribute: the grid
    /// mapping's `GeoTransform`, then the coordinate arrays.
    async fn georef_fallback(
        &self,
        meta: &ArrayMeta,
        gm_name: Option<&str>,
        gm_attrs: Option<&Map<String, Value>>,
        epsg: Option<Epsg>,
        in_group: &(dyn Fn(&str) -> String + Sync),
    ) -> Result<ZarrGeo> {
        let nd = meta.shape.len();
        let found = |t: std::result::Result<GeoTransform, String>, source| match t {
            Ok(transform) => Ok(ZarrGeo {
                epsg,
                transform,
                source,
            }),
            Err(m) => Err(meta.error(m)),
        };
        if let (Some(name), Some(t)) = (
            gm_name,
            gm_attrs.and_then(|a| a.get("GeoTransform")).and_then(gdal),
        ) {
            return found(t, GeoSource::GridMapping(in_group(name)));
        }
        let dim = |k: usize, default: &str| {
            meta.dimension_names
                .get(k)
                .cloned()
                .flatten()
                .unwrap_or_else(|| default.to_string())
        };
        let (yname, xname) = (in_group(&dim(nd - 2, "y")), in_group(&dim(nd - 1, "x")));
        let xs = self.axis(meta, &xname).await?;
        let ys = self.axis(meta, &yname).await?;
        let (Some(xs), Some(ys)) = (xs, ys) else {
            return Err(meta.error(format!(
                "no georeference: no spatial:transform/proj:transform attribute, no grid_mapping \
                 GeoTransform, and no coordinate arrays {xname} and {yname}"
            )));
        };
        for (v, n, name) in [
            (&xs, meta.shape[nd - 1], &xname),
            (&ys, meta.shape[nd - 2], &yname),
        ] {
            if v.len as u64 != n {
                return Err(meta.error(format!(
                    "coordinate array {name} has {} values for {n} pixels",
                    v.len
                )));
            }
        }
        let (x0, dx) = xs.regular.map_err(|m| meta.error(m))?;
        let (y0, dy) = ys.regular.map_err(|m| meta.error(m))?;
        if dx < 0.0 || dy > 0.0 {
            return Err(meta.error(format!(
                "coordinates {xname} step {dx}, {yname} step {dy}: not north-up (x must ascend, y descend)"
            )));
        }
        found(
            Ok(GeoTransform { x0, dx, y0, dy }),
            GeoSource::Coordinates { x: xname, y: yname },
        )
    }

    /// The values of the 1-D array at `path` of the array's store as f64
    /// (no nodata masking: coordinates are values), `None` when there is
    /// no such array.
    /// The coordinate array `path` of `of`'s store as an axis (`None`:
    /// there is none), read once per reader: the arrays of a group share
    /// their `x`/`y`.
    async fn axis(&self, of: &ArrayMeta, path: &str) -> Result<Option<Axis>> {
        let cell = {
            let mut m = self.axes.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(join(&of.store, path)).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            Ok(self.coordinates(of, path).await?.map(|v| Axis {
                len: v.len(),
                regular: regular(&v, path),
            }))
        })
        .await
        .cloned()
    }

    async fn coordinates(&self, of: &ArrayMeta, path: &str) -> Result<Option<Vec<f64>>> {
        let href = join(&of.store, path);
        let Some(meta) = self.load_array(&href).await? else {
            return Ok(None);
        };
        if meta.shape.len() != 1 || meta.shape[0] > MAX_COORDS {
            return Err(meta.error(format!(
                "a coordinate array must be 1-D with at most {MAX_COORDS} values, it has shape {:?}",
                meta.shape
            )));
        }
        if meta.pipeline.sharding.is_some() {
            return Err(meta.error("sharded coordinate arrays are not read"));
        }
        let (n, c) = (meta.shape[0], meta.chunk_shape[0]);
        let size = meta.dtype.size();
        let expected = c as usize * size;
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n.div_ceil(c) {
            let key = meta.chunk_key(&[i]);
            let url = join(&meta.href(), &key);
            let limit = 2 * expected as u64 + (1 << 20);
            let stored: Option<Bytes> = self
                .get_object(&url, limit, &meta.store, &meta.path)
                .await?;
            let le = match stored {
                Some(b) => {
                    let pipeline = meta.pipeline.clone();
                    let dtype = meta.dtype;
                    tokio::task::spawn_blocking(move || {
                        codec::decode_chunk(&pipeline, dtype, &b, expected)
                    })
                    .await
                    .map_err(|e| Error::task("Zarr chunk decode", e))?
                    .map_err(|m| meta.error(format!("chunk {key}: {m}")))?
                }
                None => codec::filled(meta.dtype, meta.fill_value, c as usize),
            };
            let take = (n - i * c).min(c) as usize;
            out.extend(
                le.chunks_exact(size)
                    .take(take)
                    .map(|s| codec::sample_f64(meta.dtype, s)),
            );
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transforms_from_attributes() {
        let t = affine(&json!([10.0, 0.0, 399960.0, 0.0, -10.0, 4200000.0]))
            .unwrap()
            .unwrap();
        assert_eq!(t, GeoTransform::north_up(399960.0, 4200000.0, 10.0));
        assert!(
            affine(&json!([10.0, 1.0, 0.0, 0.0, -10.0, 0.0]))
                .unwrap()
                .is_err()
        );
        let g = gdal(&json!("399960.0 10.0 0.0 4200000.0 0.0 -10.0"))
            .unwrap()
            .unwrap();
        assert_eq!(g, t);
        let e = format!("{:?}", (gdal(&json!("1 2 3")).unwrap()).unwrap_err());
        assert!(e.contains("is not 6 numbers"), "{e}");
    }

    #[test]
    fn centres_to_corners_checked_regular() {
        assert_eq!(
            regular(&[399965.0, 399975.0, 399985.0], "x"),
            Ok((399960.0, 10.0))
        );
        assert_eq!(
            regular(&[4199995.0, 4199985.0], "y"),
            Ok((4200000.0, -10.0))
        );
        assert!(
            regular(&[0.0, 10.0, 25.0], "x")
                .unwrap_err()
                .contains("not regular")
        );
        let e = format!("{:?}", (regular(&[5.0], "x")).unwrap_err());
        assert!(e.contains("x has 1 values: a step needs 2"), "{e}");
        let e = format!("{:?}", (regular(&[5.0, 5.0], "x")).unwrap_err());
        assert!(e.contains("x does not advance (5 to 5)"), "{e}");
    }

    #[test]
    fn epsg_from_proj_or_stac_discovery() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            epsg_of(&m(json!({"proj:code": "EPSG:32610"}))).map(Epsg::code),
            Some(32610)
        );
        assert_eq!(
            epsg_of(&m(json!({"proj:epsg": 32633}))).map(Epsg::code),
            Some(32633)
        );
        let root = m(json!({"stac_discovery": {"properties": {"proj:epsg": 32610}}}));
        assert_eq!(epsg_of(&root).map(Epsg::code), Some(32610));
        assert_eq!(epsg_of(&m(json!({"title": "x"}))), None);
    }
}
