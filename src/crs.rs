//! Point reprojection between EPSG codes, in pure Rust (proj4rs).
//!
//! Supported: WGS 84 (4326, degrees), UTM north/south (326xx/327xx), polar
//! stereographic (3413 north, 3031 south) and web mercator (3857). Everything
//! else is an [`Error::Crs`] naming the code, never a silent guess.

use crate::{Epsg, Error, Result};
use proj4rs::proj::Proj;

/// The PROJ string of a supported EPSG code.
fn proj_string(epsg: Epsg) -> Result<String> {
    if let Some((zone, north)) = epsg.as_utm() {
        let south = if north { "" } else { " +south" };
        return Ok(format!(
            "+proj=utm +zone={zone}{south} +datum=WGS84 +units=m +no_defs"
        ));
    }
    let s = match epsg.code() {
        4326 => "+proj=longlat +datum=WGS84 +no_defs",
        3413 => {
            "+proj=stere +lat_0=90 +lat_ts=70 +lon_0=-45 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
        }
        3031 => {
            "+proj=stere +lat_0=-90 +lat_ts=-71 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
        }
        3857 => {
            "+proj=merc +a=6378137 +b=6378137 +lat_ts=0 +lon_0=0 +x_0=0 +y_0=0 +k=1 +units=m +nadgrids=@null +no_defs"
        }
        _ => {
            return Err(Error::Crs {
                epsg: epsg.code(),
                message: "not supported (UTM 326xx/327xx, 4326, 3413, 3031, 3857 are)".into(),
            });
        }
    };
    Ok(s.to_string())
}

/// A point transformer from one CRS to another. Angles are degrees in and out
/// (proj4rs works in radians; that conversion happens here and only here).
///
/// # Examples
/// ```
/// use tilestack::{Epsg, Transformer};
/// let t = Transformer::new(Epsg::WGS84, Epsg::new(32610).unwrap()).unwrap();
/// let (x, y) = t.transform(-122.33, 37.81).unwrap();
/// assert!((x - 558_976.0).abs() < 1.0 && (y - 4_184_946.0).abs() < 1.0);
/// let (lon, lat) = t.inverse().transform(x, y).unwrap();
/// assert!((lon + 122.33).abs() < 1e-9 && (lat - 37.81).abs() < 1e-9);
/// ```
#[derive(Debug)]
pub struct Transformer {
    src: Epsg,
    dst: Epsg,
    src_proj: Proj,
    dst_proj: Proj,
}

impl Transformer {
    /// Builds a transformer from `src` to `dst`.
    ///
    /// # Errors
    /// [`Error::Crs`] when either code is unsupported.
    pub fn new(src: Epsg, dst: Epsg) -> Result<Self> {
        let mk = |e: Epsg| {
            Proj::from_proj_string(&proj_string(e)?).map_err(|err| Error::Crs {
                epsg: e.code(),
                message: err.to_string(),
            })
        };
        Ok(Transformer {
            src,
            dst,
            src_proj: mk(src)?,
            dst_proj: mk(dst)?,
        })
    }

    /// The reverse direction.
    pub fn inverse(&self) -> Transformer {
        Transformer {
            src: self.dst,
            dst: self.src,
            src_proj: self.dst_proj.clone(),
            dst_proj: self.src_proj.clone(),
        }
    }

    /// Source CRS.
    pub fn src(&self) -> Epsg {
        self.src
    }

    /// Destination CRS.
    pub fn dst(&self) -> Epsg {
        self.dst
    }

    /// Transforms one point (degrees for 4326, CRS units otherwise).
    ///
    /// # Errors
    /// [`Error::Crs`] when the point cannot be projected (e.g. out of domain).
    pub fn transform(&self, x: f64, y: f64) -> Result<(f64, f64)> {
        if self.src == self.dst {
            return Ok((x, y));
        }
        let (mut px, mut py) = (x, y);
        if self.src_proj.is_latlong() {
            px = px.to_radians();
            py = py.to_radians();
        }
        let mut p = (px, py, 0.0);
        proj4rs::transform::transform(&self.src_proj, &self.dst_proj, &mut p).map_err(|e| {
            Error::Crs {
                epsg: self.dst.code(),
                message: format!("projecting ({x}, {y}) from {}: {e}", self.src),
            }
        })?;
        let (mut ox, mut oy) = (p.0, p.1);
        if self.dst_proj.is_latlong() {
            ox = ox.to_degrees();
            oy = oy.to_degrees();
        }
        if !ox.is_finite() || !oy.is_finite() {
            return Err(Error::Crs {
                epsg: self.dst.code(),
                message: format!("({x}, {y}) from {} has no finite image", self.src),
            });
        }
        Ok((ox, oy))
    }

    /// Transforms many points in place.
    ///
    /// # Errors
    /// The first point that fails.
    pub fn transform_all(&self, pts: &mut [(f64, f64)]) -> Result<()> {
        for p in pts.iter_mut() {
            *p = self.transform(p.0, p.1)?;
        }
        Ok(())
    }
}

impl Clone for Transformer {
    fn clone(&self) -> Self {
        Transformer {
            src: self.src,
            dst: self.dst,
            src_proj: self.src_proj.clone(),
            dst_proj: self.dst_proj.clone(),
        }
    }
}

/// The WGS 84 bounding box `[west, south, east, north]` of a square of side
/// `side_m` metres centred on `(lon, lat)`, built in the point's UTM zone and
/// taken back to degrees through its corners (as sat-tile-stack's search box).
///
/// # Errors
/// [`Error::Crs`] when the point cannot be projected.
///
/// # Examples
/// ```
/// let b = tilestack::bbox_around(-122.33, 37.81, 2816.0).unwrap();
/// assert!(b[0] < -122.33 && b[2] > -122.33 && b[1] < 37.81 && b[3] > 37.81);
/// assert!((b[3] - b[1] - 0.0254).abs() < 0.001); // 2816 m of latitude
/// ```
pub fn bbox_around(lon: f64, lat: f64, side_m: f64) -> Result<[f64; 4]> {
    if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
        return Err(Error::invalid(
            "centroid",
            format!("({lon}, {lat}) is not a lon/lat"),
        ));
    }
    let utm = Epsg::utm_for(lon, lat);
    let fwd = Transformer::new(Epsg::WGS84, utm)?;
    let (x, y) = fwd.transform(lon, lat)?;
    let h = side_m / 2.0;
    let mut pts = [
        (x - h, y - h),
        (x + h, y - h),
        (x + h, y + h),
        (x - h, y + h),
    ];
    fwd.inverse().transform_all(&mut pts)?;
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for (px, py) in pts {
        b = [b[0].min(px), b[1].min(py), b[2].max(px), b[3].max(py)];
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_known_points() {
        // Reference values from PROJ 9 (`echo "-122.33 37.81" | cs2cs EPSG:4326 EPSG:32610`).
        let t = Transformer::new(Epsg::WGS84, Epsg::new(32610).unwrap()).unwrap();
        let (x, y) = t.transform(-123.0, 0.0).unwrap();
        assert!((x - 500_000.0).abs() < 1e-6 && y.abs() < 1e-6);
        // southern hemisphere: false northing 10 000 km
        let s = Transformer::new(Epsg::WGS84, Epsg::new(32756).unwrap()).unwrap();
        let (x, y) = s.transform(153.0, -0.000001).unwrap();
        assert!((x - 500_000.0).abs() < 1e-3 && (y - 10_000_000.0).abs() < 1.0);
        // zone 10 -> zone 11 round trip
        let z = Transformer::new(Epsg::new(32610).unwrap(), Epsg::new(32611).unwrap()).unwrap();
        let (a, b) = z.transform(558_976.0, 4_184_946.0).unwrap();
        let (c, d) = z.inverse().transform(a, b).unwrap();
        assert!((c - 558_976.0).abs() < 1e-6 && (d - 4_184_946.0).abs() < 1e-6);
    }

    #[test]
    fn unsupported_code_is_named() {
        let e = Transformer::new(Epsg::WGS84, Epsg::new(2154).unwrap()).unwrap_err();
        assert!(e.to_string().contains("EPSG:2154"), "{e}");
    }
}
