//! Point reprojection between EPSG codes, in pure Rust (proj4rs).
//!
//! A code's PROJ string comes from the EPSG table of the `crs-definitions`
//! crate (some 6 000 codes: WGS 84 4326, UTM north/south 326xx/327xx, polar
//! stereographic 3413/3031, web mercator 3857, national grids such as Swiss
//! 2056 or British 27700, ...). A code that table lacks, or whose definition
//! proj4rs cannot build (e.g. one that needs a datum grid file), is an
//! [`Error::Crs`] naming the code, never a silent guess.

use proj4rs::proj::Proj;

use crate::error::{Error, Result};
use crate::units::Epsg;

/// The PROJ string of an EPSG code, from `crs-definitions`.
fn proj_string(epsg: Epsg) -> Result<&'static str> {
    u16::try_from(epsg.code())
        .ok()
        .and_then(crs_definitions::from_code)
        .map(|def| def.proj4)
        .ok_or_else(|| {
            Error::crs(
                epsg.code(),
                "unknown code (not in the crs-definitions EPSG table)",
            )
        })
}

/// A point transformer from one CRS to another. Angles are degrees in and out
/// (proj4rs works in radians; that conversion happens here and only here).
///
/// # Examples
/// ```
/// use tilestack::geo::Transformer;
/// use tilestack::Epsg;
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
            Proj::from_proj_string(proj_string(e)?).map_err(|err| {
                Error::crs_because(e.code(), "proj4rs cannot build its definition", err)
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
            Error::crs_because(
                self.dst.code(),
                format!("projecting ({x}, {y}) from {}", self.src),
                e,
            )
        })?;
        let (mut ox, mut oy) = (p.0, p.1);
        if self.dst_proj.is_latlong() {
            ox = ox.to_degrees();
            oy = oy.to_degrees();
        }
        if !ox.is_finite() || !oy.is_finite() {
            return Err(Error::crs(
                self.dst.code(),
                format!("({x}, {y}) from {} has no finite image", self.src),
            ));
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
/// let b = tilestack::geo::bbox_around(-122.33, 37.81, 2816.0).unwrap();
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
    fn unknown_code_is_named() {
        // 1 is in u16 range but not an EPSG CRS; 102100 (ESRI's web mercator)
        // does not fit the table's u16 codes at all
        for code in [1, 102_100, 999_999] {
            let e = Transformer::new(Epsg::WGS84, Epsg::new(code).unwrap()).unwrap_err();
            assert!(matches!(e, Error::Crs { epsg, .. } if epsg == code), "{e}");
            assert!(e.to_string().contains(&format!("EPSG:{code}")), "{e}");
        }
    }

    /// The hand-written table this module used before `crs-definitions`: the
    /// reference the crate's strings must agree with.
    fn old_proj_string(epsg: Epsg) -> Option<String> {
        if let Some((zone, north)) = epsg.as_utm() {
            let south = if north { "" } else { " +south" };
            return Some(format!(
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
            _ => return None,
        };
        Some(s.to_string())
    }

    /// A WGS 84 → `dst` transformer built from the old table's strings.
    fn old_transformer(dst: Epsg) -> Transformer {
        let mk = |e: Epsg| Proj::from_proj_string(&old_proj_string(e).unwrap()).unwrap();
        Transformer {
            src: Epsg::WGS84,
            dst,
            src_proj: mk(Epsg::WGS84),
            dst_proj: mk(dst),
        }
    }

    /// Both directions agree to 1e-9 between the old strings and the crate's.
    fn assert_same(dst: Epsg, lonlats: &[(f64, f64)]) {
        let old = old_transformer(dst);
        let new = Transformer::new(Epsg::WGS84, dst).unwrap();
        for &(lon, lat) in lonlats {
            let (ox, oy) = old.transform(lon, lat).unwrap();
            let (nx, ny) = new.transform(lon, lat).unwrap();
            assert!(
                (ox - nx).abs() < 1e-9 && (oy - ny).abs() < 1e-9,
                "{dst} ({lon}, {lat}): old ({ox}, {oy}) new ({nx}, {ny})"
            );
            let (ol, ob) = old.inverse().transform(ox, oy).unwrap();
            let (nl, nb) = new.inverse().transform(ox, oy).unwrap();
            assert!(
                (ol - nl).abs() < 1e-9 && (ob - nb).abs() < 1e-9,
                "{dst} inverse ({ox}, {oy}): old ({ol}, {ob}) new ({nl}, {nb})"
            );
        }
    }

    #[test]
    fn crate_strings_match_the_old_table() {
        for zone in 1..=60u32 {
            let lon0 = -183.0 + 6.0 * f64::from(zone);
            let north = Epsg::new(32600 + zone).unwrap();
            assert_same(
                north,
                &[(lon0 - 2.5, 10.0), (lon0 + 1.0, 60.0), (lon0, 0.0)],
            );
            let south = Epsg::new(32700 + zone).unwrap();
            assert_same(south, &[(lon0 + 2.0, -35.0), (lon0 - 1.0, -70.0)]);
        }
        assert_same(
            Epsg::new(3413).unwrap(),
            &[(-45.0, 75.0), (30.0, 85.0), (-150.0, 65.0)],
        );
        assert_same(
            Epsg::new(3031).unwrap(),
            &[(0.0, -75.0), (120.0, -85.0), (-60.0, -65.0)],
        );
        assert_same(
            Epsg::new(3857).unwrap(),
            &[(-122.33, 37.81), (151.2, -33.9), (0.0, 0.0), (179.0, 84.0)],
        );
        // 4326 itself: the old and new geographic definitions, seen through
        // a projection that uses them as its source
        let old = Proj::from_proj_string(&old_proj_string(Epsg::WGS84).unwrap()).unwrap();
        let new = Proj::from_proj_string(proj_string(Epsg::WGS84).unwrap()).unwrap();
        assert!(old.is_latlong() && new.is_latlong());
        let utm = Proj::from_proj_string(proj_string(Epsg::new(32610).unwrap()).unwrap()).unwrap();
        for (lon, lat) in [(-122.33f64, 37.81f64), (-125.0, 50.0)] {
            let (mut a, mut b) = (
                (lon.to_radians(), lat.to_radians(), 0.0),
                (lon.to_radians(), lat.to_radians(), 0.0),
            );
            proj4rs::transform::transform(&old, &utm, &mut a).unwrap();
            proj4rs::transform::transform(&new, &utm, &mut b).unwrap();
            assert!((a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9);
        }
    }

    #[test]
    fn codes_beyond_the_old_table_transform() {
        // Swiss LV95 (EPSG:2056), swisstopo's worked example of its approximate
        // formulas: 46°2'38.87" N 8°43'49.79" E -> E 2 699 999.76, N 1 099 999.97
        let ch = Transformer::new(Epsg::WGS84, Epsg::new(2056).unwrap()).unwrap();
        let lat = 46.0 + 2.0 / 60.0 + 38.87 / 3600.0;
        let lon = 8.0 + 43.0 / 60.0 + 49.79 / 3600.0;
        let (e, n) = ch.transform(lon, lat).unwrap();
        assert!(
            (e - 2_699_999.76).abs() < 1.0 && (n - 1_099_999.97).abs() < 1.0,
            "({e}, {n})"
        );
        let (l, b) = ch.inverse().transform(e, n).unwrap();
        assert!(
            (l - lon).abs() < 1e-6 && (b - lat).abs() < 1e-6,
            "({l}, {b})"
        );
        // British National Grid (EPSG:27700), Ordnance Survey's worked example,
        // Caister water tower: ETRS89 52°39'28.8282" N 1°42'57.8663" E ->
        // E 651 409.9, N 313 177.3 (OSTN15); the 7-parameter Helmert shift of
        // the definition is good to a few metres
        let gb = Transformer::new(Epsg::WGS84, Epsg::new(27700).unwrap()).unwrap();
        let lat = 52.0 + 39.0 / 60.0 + 28.8282 / 3600.0;
        let lon = 1.0 + 42.0 / 60.0 + 57.8663 / 3600.0;
        let (e, n) = gb.transform(lon, lat).unwrap();
        assert!(
            (e - 651_409.9).abs() < 5.0 && (n - 313_177.3).abs() < 5.0,
            "({e}, {n})"
        );
        let (l, b) = gb.inverse().transform(e, n).unwrap();
        assert!(
            (l - lon).abs() < 1e-6 && (b - lat).abs() < 1e-6,
            "({l}, {b})"
        );
    }
}
