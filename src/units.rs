//! Validated units and identifiers: an EPSG code is not an index, metres are not degrees.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An EPSG code of a coordinate reference system, e.g. `Epsg::new(32610)`.
///
/// # Examples
/// ```
/// use tilestack::Epsg;
/// let e = Epsg::new(32610).unwrap();
/// assert_eq!(e.to_string(), "EPSG:32610");
/// assert_eq!("EPSG:32610".parse::<Epsg>().unwrap(), e);
/// assert_eq!(Epsg::utm_for(-122.33, 37.81), e);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Epsg(u32);

impl Epsg {
    /// WGS 84 longitude/latitude.
    pub const WGS84: Epsg = Epsg(4326);

    /// Validates a code (1..=999_999).
    ///
    /// # Errors
    /// [`Error::Invalid`] for 0 or codes above 999 999.
    pub fn new(code: u32) -> Result<Self> {
        if code == 0 || code > 999_999 {
            return Err(Error::invalid(
                "EPSG code",
                format!("{code} is out of range"),
            ));
        }
        Ok(Epsg(code))
    }

    /// The numeric code.
    pub fn code(self) -> u32 {
        self.0
    }

    /// The UTM zone (1..=60) of a longitude, clamped so that 180° gives zone 60.
    pub fn utm_zone(lon: f64) -> u32 {
        let z = ((lon + 180.0) / 6.0).floor() as i64 + 1;
        z.clamp(1, 60) as u32
    }

    /// The UTM CRS of a point: `326zz` north of the equator, `327zz` south.
    pub fn utm_for(lon: f64, lat: f64) -> Epsg {
        let zone = Self::utm_zone(lon);
        Epsg(if lat >= 0.0 { 32600 } else { 32700 } + zone)
    }

    /// `Some((zone, north))` when this is a WGS 84 UTM code.
    pub fn as_utm(self) -> Option<(u32, bool)> {
        match self.0 {
            32601..=32660 => Some((self.0 - 32600, true)),
            32701..=32760 => Some((self.0 - 32700, false)),
            _ => None,
        }
    }
}

impl TryFrom<u32> for Epsg {
    type Error = Error;
    fn try_from(v: u32) -> Result<Self> {
        Epsg::new(v)
    }
}

impl From<Epsg> for u32 {
    fn from(e: Epsg) -> u32 {
        e.0
    }
}

impl fmt::Display for Epsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EPSG:{}", self.0)
    }
}

impl std::str::FromStr for Epsg {
    type Err = Error;
    /// Accepts `32610`, `EPSG:32610` and `epsg:32610`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        let digits = t
            .strip_prefix("EPSG:")
            .or_else(|| t.strip_prefix("epsg:"))
            .unwrap_or(t);
        let code: u32 = digits
            .parse()
            .map_err(|_| Error::invalid("EPSG code", format!("{s:?} is not EPSG:<number>")))?;
        Epsg::new(code)
    }
}

/// Ground sampling distance in CRS units (metres for UTM). Finite and > 0.
///
/// # Examples
/// ```
/// use tilestack::Resolution;
/// assert_eq!(Resolution::new(10.0).unwrap().metres(), 10.0);
/// assert!(Resolution::new(0.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Resolution(f64);

impl Resolution {
    /// Validates a resolution.
    ///
    /// # Errors
    /// [`Error::Invalid`] when not finite or not positive.
    pub fn new(v: f64) -> Result<Self> {
        if !v.is_finite() || v <= 0.0 {
            return Err(Error::invalid(
                "resolution",
                format!("{v} must be finite and > 0"),
            ));
        }
        Ok(Resolution(v))
    }

    /// The value in CRS units.
    pub fn metres(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Resolution {
    type Error = Error;
    fn try_from(v: f64) -> Result<Self> {
        Resolution::new(v)
    }
}

impl From<Resolution> for f64 {
    fn from(r: Resolution) -> f64 {
        r.0
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} m", self.0)
    }
}

/// The name of a band, i.e. a STAC asset key such as `B04` or `SCL`.
/// Non-empty, no whitespace or commas.
///
/// # Examples
/// ```
/// use tilestack::BandName;
/// let b: BandName = "B04".parse().unwrap();
/// assert_eq!(b.as_str(), "B04");
/// assert!("".parse::<BandName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BandName(String);

impl BandName {
    /// Validates a band name.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty name or one with whitespace or commas.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == ',') {
            return Err(Error::invalid(
                "band name",
                format!("{name:?} must be non-empty without spaces or commas"),
            ));
        }
        Ok(BandName(name))
    }

    /// A name known valid at compile time (no spaces or commas), for the crate's own tables.
    pub(crate) fn known(name: &'static str) -> BandName {
        BandName(name.to_string())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a comma-separated list such as `B04,B03,B02`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when any entry is invalid or the list is empty.
    pub fn parse_list(s: &str) -> Result<Vec<BandName>> {
        let v = s
            .split(',')
            .map(|p| BandName::new(p.trim()))
            .collect::<Result<Vec<_>>>()?;
        Ok(v)
    }
}

impl TryFrom<String> for BandName {
    type Error = Error;
    fn try_from(v: String) -> Result<Self> {
        BandName::new(v)
    }
}

impl From<BandName> for String {
    fn from(b: BandName) -> String {
        b.0
    }
}

impl std::str::FromStr for BandName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BandName::new(s)
    }
}

impl fmt::Display for BandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utm_zones() {
        assert_eq!(Epsg::utm_for(-122.33, 37.81).code(), 32610);
        assert_eq!(Epsg::utm_for(151.2, -33.9).code(), 32756);
        assert_eq!(Epsg::utm_for(180.0, 10.0).code(), 32660);
        assert_eq!(Epsg::utm_for(-180.0, 10.0).code(), 32601);
        assert_eq!(Epsg::utm_for(-120.0, 37.0).code(), 32611);
        assert_eq!(Epsg::new(32733).unwrap().as_utm(), Some((33, false)));
        assert_eq!(Epsg::WGS84.as_utm(), None);
    }

    #[test]
    fn parse_and_reject() {
        assert_eq!("epsg:4326".parse::<Epsg>().unwrap(), Epsg::WGS84);
        assert!("EPSG:abc".parse::<Epsg>().is_err());
        assert!(Epsg::new(0).is_err());
        assert!(Resolution::new(f64::NAN).is_err());
        assert!(Resolution::new(-1.0).is_err());
        assert!(BandName::new("B 4").is_err());
        let l = BandName::parse_list("B04, B03,B02").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].as_str(), "B03");
        assert!(BandName::parse_list("B04,,B02").is_err());
        let r: Resolution = serde_json::from_str("20.0").unwrap();
        assert_eq!(r.metres(), 20.0);
        assert!(serde_json::from_str::<Resolution>("0").is_err());
    }
}
