//! Point reprojection between EPSG codes, in pure Rust (proj4rs).
//!
//! A code's PROJ string comes from the EPSG table of the `crs-definitions`
//! crate (some 6 000 codes: WGS 84 4326, UTM north/south 326xx/327xx, polar
//! stereographic 3413/3031, web mercator 3857, national grids such as Swiss
//! 2056 or British 27700, ...). A code that table lacks, or whose definition
//! proj4rs cannot build (e.g. one that needs a datum grid file), is an
//! [`Error::Crs`] naming the code, never a silent guess.

use std::collections::HashMap;

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
        let mk = |e: Epsg| -> Result<Proj> {
            // Parsing a definition costs more than a few transforms: the
            // process keeps the ones it has built (a handful of zones).
            static BUILT: std::sync::OnceLock<std::sync::Mutex<HashMap<u32, Proj>>> =
                std::sync::OnceLock::new();
            let built = BUILT.get_or_init(Default::default);
            let cached = built
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&e.code())
                .cloned();
            if let Some(p) = cached {
                return Ok(p);
            }
            let p = Proj::from_proj_string(proj_string(e)?).map_err(|err| {
                Error::crs_because(e.code(), "proj4rs cannot build its definition", err)
            })?;
            built
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(e.code(), p.clone());
            Ok(p)
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

    // Reference coordinates from PROJ (the library `cs2cs` is the command
    // line of), made by `python3 tests/py/crs_reference.py` (PROJ 9.5.1,
    // pyproj 3.7.2) and pasted as printed; the script says which points and
    // why. Tolerances: 1e-6 m for metres, 1e-9° (0.1 mm) for degrees, with
    // two exceptions, both datum shifts:
    // - the inverse of 2056 and 27700: PROJ's own inverse (an iterated
    //   geocentric conversion) is off its forward by up to 1.4e-8°, so the
    //   tolerance there is 1e-7° (1 cm);
    // - 27700 forward: proj4rs expands `+datum=OSGB36` with its own table's
    //   rotations and scale (0.1502″, 0.2470″, 0.8421″, −20.4894 ppm), PROJ 9
    //   with EPSG:1314's (0.15″, 0.247″, 0.842″, −20.489 ppm): 3.0 mm apart
    //   at Caister, against a Helmert good to metres. 5 mm against PROJ's
    //   meaning here, and 1e-6 m against PROJ given proj4rs's parameters
    //   (`OSGB36_AS_PROJ4RS`): that difference is the whole difference.
    const TOL_M: f64 = 1e-6;
    const TOL_DEG: f64 = 1e-9;
    const TOL_DEG_DATUM: f64 = 1e-7;
    const TOL_M_OSGB36: f64 = 5e-3;

    /// WGS 84 → `epsg`: `(epsg, lon, lat, x, y, lon', lat')`, where
    /// `(lon', lat')` is PROJ's inverse of `(x, y)`.
    #[rustfmt::skip]
    const FORWARD: &[(u32, f64, f64, f64, f64, f64, f64)] = &[
        (32610, -122.33, 37.81, 558975.9913338715, 4184945.86439381, -122.33, 37.81),
        (32610, -123.0, 0.0, 500000.0, 0.0, -123.00000000000001, 0.0),
        (32610, -125.5, 10.0, 225928.94661300455, 1106451.2782543444, -125.5, 10.0),
        (32610, -120.0, 60.0, 667294.8211244522, 6655205.483634564, -119.99999999999999, 59.99999999999999),
        (32610, -121.0, 83.5, 525272.0266635641, 9272714.161412228, -121.0, 83.49999999999999),
        (32611, -122.33, 37.81, 30666.274595042923, 4198139.234138285, -122.33, 37.81),
        (32611, -117.0, 45.0, 500000.0, 4982950.400226552, -117.0, 45.0),
        (32633, 15.0, 1e-06, 500000.00000000175, 0.11053004611126571, 14.999999999999998, 9.999999999999997e-07),
        (32633, 12.5, 52.5, 330306.230340728, 5819589.929162902, 12.5, 52.50000000000001),
        (32633, 18.0, 70.0, 614473.7147457985, 7768690.108775233, 18.0, 70.0),
        (32601, -180.0, 5.0, 167286.20126155898, 553423.9868833314, -180.0, 5.0),
        (32601, -174.0, 40.0, 756099.6479702791, 4432069.056898517, -174.0, 40.0),
        (32660, 179.999, 5.0, 832602.7936156782, 553423.479927391, 179.999, 4.999999999999998),
        (32660, 177.0, 66.0, 500000.00000000116, 7319910.044451311, 177.0, 66.0),
        (32756, 153.0, -1e-06, 500000.0, 9999999.889469953, 153.0, -1.0000000057438595e-06),
        (32756, 151.2, -33.9, 333568.9410115521, 6247473.33684402, 151.2, -33.9),
        (32756, 150.0, -79.5, 438993.4555653581, 1172650.181101203, 150.0, -79.5),
        (32733, 15.0, -10.0, 500000.00000000175, 8894587.508698922, 14.999999999999998, -10.0),
        (32733, 18.4, -33.9, 814420.3309513011, 6243724.840074809, 18.400000000000002, -33.89999999999999),
        (32701, -177.0, -45.0, 500000.0, 5017049.599773448, -177.0, -45.0),
        (32760, 176.0, -40.0, 414639.5381572299, 5571763.935366911, 176.0, -39.999999999999986),
        (3413, -45.0, 75.0, 0.0, -1633879.4974707854, -45.0, 74.99999999999999),
        (3413, 30.0, 85.0, 523499.63311123673, -140271.30393014505, 29.999999999999993, 84.99999999999999),
        (3413, -150.0, 65.0, -2656535.2532370463, 711816.4757696748, -150.0, 64.9999999999997),
        (3031, 0.0, -75.0, 0.0, 1638783.2384072365, 0.0, -74.99999999999999),
        (3031, 120.0, -85.0, 470765.60548799724, -271796.6490537122, 119.99999999999999, -84.99999999999999),
        (3031, -60.0, -65.0, -2388932.766882399, 1379250.976035471, -59.99999999999999, -64.9999999999997),
        (3857, -122.33, 37.81, -13617713.308741156, 4552619.846112671, -122.33, 37.809999999999995),
        (3857, 151.2, -33.9, 16831507.007942963, -4015382.36007316, 151.2, -33.9),
        (3857, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        (3857, 179.0, 84.0, 19926188.85199597, 18807214.096747704, 179.0, 84.0),
        (2056, 8.730497222222223, 46.044130555555554, 2700000.01830365, 1100000.0360814238, 8.730497231174622, 46.04413056511255),
        (2056, 7.4386, 46.9511, 2599997.532515652, 1200001.9164401442, 7.4386000073846805, 46.95110001030519),
        (27700, 1.7160739722222222, 52.65800783333333, 651411.222202788, 313180.59658757754, 1.7160739861246386, 52.65800782959935),
        (27700, -0.1276, 51.5072, 530043.1949814068, 180358.20862000342, -0.12759998749567045, 51.50719999539548),
    ];

    /// WGS 84 → 27700 by PROJ with proj4rs's OSGB36 parameters spelled
    /// out: `(lon, lat, x, y)`.
    #[rustfmt::skip]
    const OSGB36_AS_PROJ4RS: &[(f64, f64, f64, f64)] = &[
        (1.7160739722222222, 52.65800783333333, 651411.225222073, 313180.5965499977),
        (-0.1276, 51.5072, 530043.1978688776, 180358.20869920042),
    ];

    /// Projected → projected through WGS 84: `(src, dst, x, y, x', y')`.
    #[rustfmt::skip]
    const PROJECTED: &[(u32, u32, f64, f64, f64, f64)] = &[
        (32610, 32611, 558976.0, 4184946.0, 30666.292003433744, 4198139.3692674935),
        (32610, 32611, 800000.0, 5000000.0, 327848.039923321, 4995254.459385508),
        (32611, 32610, 223000.0, 4190000.0, 751162.5955942739, 4189169.778371558),
        (32756, 32655, 500000.0, 9000000.0, 1160555.612608449, -1005453.241165227),
    ];

    /// [`bbox_around`]: `(lon, lat, side_m, [west, south, east, north])`.
    #[rustfmt::skip]
    const BBOX_AROUND: &[(f64, f64, f64, [f64; 4])] = &[
        (-122.33, 37.81, 2816.0, [-122.34610658746809, 37.79721826433135, -122.31388793871479, 37.8227796191449]),
        (151.2, -33.9, 5120.0, [151.17183229289745, -33.923479074823945, 151.2281528102017, -33.876515319328796]),
        (-122.999, 0.001, 1000.0, [-123.00349337378415, -0.0035236568411984993, -122.99450662621311, 0.00552365683763748]),
    ];

    fn epsg(code: u32) -> Epsg {
        Epsg::new(code).unwrap()
    }

    /// `got` within `tol` of `want`, both coordinates.
    fn assert_near(got: (f64, f64), want: (f64, f64), tol: f64, what: &str) {
        assert!(
            approx::abs_diff_eq!(got.0, want.0, epsilon = tol)
                && approx::abs_diff_eq!(got.1, want.1, epsilon = tol),
            "{what}: got ({:?}, {:?}), PROJ ({:?}, {:?}), off by ({:e}, {:e}), tolerance {tol:e}",
            got.0,
            got.1,
            want.0,
            want.1,
            got.0 - want.0,
            got.1 - want.1,
        );
    }

    #[test]
    fn forward_and_inverse_match_proj() {
        // every UTM zone family the crate names (north, south, both edges),
        // polar stereographic north and south, web mercator, two national grids
        let codes: std::collections::BTreeSet<u32> = FORWARD.iter().map(|p| p.0).collect();
        assert_eq!(codes.len(), 14, "{codes:?}");
        for &(code, lon, lat, x, y, lon_back, lat_back) in FORWARD {
            let t = Transformer::new(Epsg::WGS84, epsg(code)).unwrap();
            let what = format!("({lon}, {lat}) -> EPSG:{code}");
            let tol = if code == 27700 { TOL_M_OSGB36 } else { TOL_M };
            assert_near(t.transform(lon, lat).unwrap(), (x, y), tol, &what);
            let tol = if [2056, 27700].contains(&code) {
                TOL_DEG_DATUM
            } else {
                TOL_DEG
            };
            let what = format!("({x}, {y}) EPSG:{code} -> 4326");
            let back = t.inverse().transform(x, y).unwrap();
            assert_near(back, (lon_back, lat_back), tol, &what);
        }
    }

    #[test]
    fn osgb36_matches_proj_given_the_same_parameters() {
        let t = Transformer::new(Epsg::WGS84, epsg(27700)).unwrap();
        for &(lon, lat, x, y) in OSGB36_AS_PROJ4RS {
            let what = format!("({lon}, {lat}) -> EPSG:27700 (proj4rs's OSGB36)");
            assert_near(t.transform(lon, lat).unwrap(), (x, y), TOL_M, &what);
        }
    }

    #[test]
    fn projected_to_projected_matches_proj() {
        for &(src, dst, x, y, xo, yo) in PROJECTED {
            let t = Transformer::new(epsg(src), epsg(dst)).unwrap();
            let what = format!("({x}, {y}) EPSG:{src} -> EPSG:{dst}");
            assert_near(t.transform(x, y).unwrap(), (xo, yo), TOL_M, &what);
            // and back: the input again (both directions are exact UTM)
            let what = format!("({xo}, {yo}) EPSG:{dst} -> EPSG:{src}");
            assert_near(t.inverse().transform(xo, yo).unwrap(), (x, y), TOL_M, &what);
        }
    }

    #[test]
    fn bbox_around_matches_proj() {
        for &(lon, lat, side, want) in BBOX_AROUND {
            let got = bbox_around(lon, lat, side).unwrap();
            let what = format!("bbox_around({lon}, {lat}, {side})");
            assert_near((got[0], got[1]), (want[0], want[1]), TOL_DEG, &what);
            assert_near((got[2], got[3]), (want[2], want[3]), TOL_DEG, &what);
        }
    }

    #[test]
    fn the_same_crs_is_the_identity_bit_for_bit() {
        for code in [4326, 32610, 3857] {
            let t = Transformer::new(epsg(code), epsg(code)).unwrap();
            let (x, y) = t.transform(-122.33, 37.81).unwrap();
            assert_eq!(
                (x.to_bits(), y.to_bits()),
                ((-122.33f64).to_bits(), 37.81f64.to_bits())
            );
        }
    }

    #[test]
    fn the_script_used_the_crate_strings_of_the_datum_grids() {
        // tests/py/crs_reference.py gives PROJ these strings for 2056 and
        // 27700 (not the EPSG codes, whose best transformation PROJ would
        // choose itself): the crate must still define them so
        assert_eq!(
            proj_string(epsg(2056)).unwrap(),
            "+proj=somerc +lat_0=46.95240555555556 +lon_0=7.439583333333333 +k_0=1 \
             +x_0=2600000 +y_0=1200000 +ellps=bessel +towgs84=674.374,15.056,405.346,0,0,0,0 \
             +units=m +no_defs"
        );
        assert_eq!(
            proj_string(epsg(27700)).unwrap(),
            "+proj=tmerc +lat_0=49 +lon_0=-2 +k=0.9996012717 +x_0=400000 +y_0=-100000 \
             +datum=OSGB36 +units=m +no_defs"
        );
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
