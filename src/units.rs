//! Validated units and identifiers: an EPSG code is not an index, metres are not degrees.
//!
//! May import: [`crate::error`] only (stage 0).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
        let code: u32 = digits.parse().map_err(|e| {
            Error::invalid_because("EPSG code", format!("{s:?} is not EPSG:<number>"), e)
        })?;
        Epsg::new(code)
    }
}

/// Ground sampling distance in CRS units (metres for UTM). Finite and > 0.
///
/// # Examples
/// ```
/// use tilestack::Resolution;
/// assert_eq!(Resolution::new(10.0).unwrap().metres(), 10.0);
/// assert_eq!(Resolution::new(0.0).unwrap_err().to_string(), "invalid resolution: 0 must be finite and > 0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Resolution(f64);

impl Resolution {
    /// 10 m: Sentinel-2's finest bands, and a [`StackRequest`](crate::stack::request::StackRequest)'s default.
    pub const TEN_METRES: Resolution = Resolution(10.0);

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
/// assert!("".parse::<BandName>().unwrap_err().to_string().contains("must be non-empty"));
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

/// A time range `START/END` as users write it: dates (`YYYY-MM-DD`, whole
/// UTC days: a start date is its first second, an end date its last) or
/// RFC 3339 instants, `..` or nothing for an open end, or a single date.
/// The one parser of time ranges: STAC searches, stack requests and the CLI
/// all read ranges through it.
///
/// # Examples
/// ```
/// use tilestack::units::TimeRange;
/// let r: TimeRange = "2019-08-01/2019-08-30".parse()?;
/// assert_eq!(r.to_stac(), "2019-08-01T00:00:00Z/2019-08-30T23:59:59Z");
/// let open: TimeRange = "2019-08-01/..".parse()?;
/// assert_eq!(open.to_stac(), "2019-08-01T00:00:00Z/..");
/// assert!("2019-08-30/2019-08-01".parse::<TimeRange>().unwrap_err().to_string().contains("end is before start"));
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First instant, inclusive; `None` = open.
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Last instant, inclusive; `None` = open.
    pub end: Option<chrono::DateTime<chrono::Utc>>,
}

impl TimeRange {
    /// The range as a STAC `datetime` parameter (`…Z/…Z`, `..` for open ends).
    pub fn to_stac(&self) -> String {
        let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "..".into())
        };
        format!("{}/{}", fmt(self.start), fmt(self.end))
    }
}

impl std::str::FromStr for TimeRange {
    type Err = Error;

    fn from_str(range: &str) -> Result<Self> {
        let bad = |m: &str| Error::invalid("time range", format!("{range:?}: {m}"));
        let one = |s: &str, end: bool| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
            let s = s.trim();
            if s.is_empty() || s == ".." {
                return Ok(None);
            }
            if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                let t = if end {
                    d.and_hms_opt(23, 59, 59)
                } else {
                    d.and_hms_opt(0, 0, 0)
                };
                return Ok(t.map(|t| t.and_utc()));
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.with_timezone(&chrono::Utc)))
                .map_err(|e| {
                    Error::invalid_because(
                        "time range",
                        format!("{range:?}: {s:?} is neither YYYY-MM-DD nor RFC 3339"),
                        e,
                    )
                })
        };
        let parts: Vec<&str> = range.split('/').collect();
        match parts.as_slice() {
            [single] => {
                let (start, end) = (one(single, false)?, one(single, true)?);
                if start.is_none() {
                    return Err(bad("empty"));
                }
                Ok(TimeRange { start, end })
            }
            [s, e] => {
                let (start, end) = (one(s, false)?, one(e, true)?);
                if let (Some(a), Some(b)) = (start, end)
                    && b < a
                {
                    return Err(bad("end is before start"));
                }
                if start.is_none() && end.is_none() {
                    return Err(bad("both ends open"));
                }
                Ok(TimeRange { start, end })
            }
            _ => Err(bad("expected START/END")),
        }
    }
}

/// Inclusive UTC days `START/END` (both given), as a stack request takes
/// them: `"2019-08-01/2019-08-30"` is 30 days. Parsed by [`TimeRange`].
///
/// # Errors
/// [`Error::Invalid`] (`what` = `"time range"`) naming the input: an open
/// or malformed end, or an end before the start.
///
/// # Examples
/// ```
/// let (a, b) = tilestack::units::parse_day_range("2019-08-01/2019-08-30")?;
/// assert_eq!((b - a).num_days(), 29);
/// let e = tilestack::units::parse_day_range("2019-08-01/..").unwrap_err();
/// assert!(e.to_string().contains("expected START/END days"), "{e}");
/// # Ok::<(), tilestack::Error>(())
/// ```
pub fn parse_day_range(s: &str) -> Result<(chrono::NaiveDate, chrono::NaiveDate)> {
    let r: TimeRange = s.parse()?;
    match (r.start, r.end, s.contains('/')) {
        (Some(a), Some(b), true) => Ok((a.date_naive(), b.date_naive())),
        _ => Err(Error::invalid(
            "time range",
            format!("{s:?}: expected START/END days, e.g. 2019-08-01/2019-08-30"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges() {
        let s = |r: &str| r.parse::<TimeRange>().map(|t| t.to_stac());
        assert_eq!(
            s("2019-08-01/2019-08-30").unwrap(),
            "2019-08-01T00:00:00Z/2019-08-30T23:59:59Z"
        );
        assert_eq!(s("2019-08-01/..").unwrap(), "2019-08-01T00:00:00Z/..");
        assert_eq!(
            s("2019-08-05").unwrap(),
            "2019-08-05T00:00:00Z/2019-08-05T23:59:59Z"
        );
        assert_eq!(
            s("2019-08-01T10:00:00+02:00/2019-08-02").unwrap(),
            "2019-08-01T08:00:00Z/2019-08-02T23:59:59Z"
        );
        for bad in ["2019-08-30/2019-08-01", "yesterday", "../..", "a/b/c", ""] {
            let e = s(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Invalid {
                        what: "time range",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            parse_day_range("2019-08-01/2019-08-30").unwrap(),
            (d("2019-08-01"), d("2019-08-30"))
        );
        for bad in ["2019-08-01", "2019-08-01/..", "2019-08-30/2019-08-01"] {
            let e = parse_day_range(bad).unwrap_err().to_string();
            assert!(e.contains("time range") && e.contains(bad), "{e}");
        }
    }

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
        let says = |e: Error, m: &str| {
            let e = e.to_string();
            assert!(e.contains(m), "{e:?} does not say {m:?}");
        };
        says(
            "EPSG:abc".parse::<Epsg>().unwrap_err(),
            "invalid EPSG code: \"EPSG:abc\" is not EPSG:<number>",
        );
        says(Epsg::new(0).unwrap_err(), "0 is out of range");
        says(Epsg::new(1_000_000).unwrap_err(), "1000000 is out of range");
        assert_eq!(Epsg::new(999_999).unwrap().code(), 999_999);
        says(
            Resolution::new(f64::NAN).unwrap_err(),
            "invalid resolution: NaN must be finite and > 0",
        );
        says(
            Resolution::new(-1.0).unwrap_err(),
            "-1 must be finite and > 0",
        );
        says(
            BandName::new("B 4").unwrap_err(),
            "invalid band name: \"B 4\" must be non-empty without spaces or commas",
        );
        let l = BandName::parse_list("B04, B03,B02").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].as_str(), "B03");
        says(
            BandName::parse_list("B04,,B02").unwrap_err(),
            "\"\" must be non-empty",
        );
        let r: Resolution = serde_json::from_str("20.0").unwrap();
        assert_eq!(r.metres(), 20.0);
        let e = serde_json::from_str::<Resolution>("0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 must be finite and > 0"), "{e}");
    }
}
