//! What stack to build: [`StackRequest`] (a serde type: one TOML/JSON
//! document is one request, with the defaults it documents), its fusion and
//! cadence choices, and the derived bands it can ask for.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::geo::crs::Transformer;
use crate::geo::grid::GridSpec;
use crate::geo::warp::Resampling;
use crate::units::{BandName, Epsg, Resolution};

/// How the scenes of one time step are fused, per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fusion {
    /// NaN-skipping mean over the step's scenes (sat-tile-stack's default).
    #[default]
    Mean,
    /// First valid value in time order.
    First,
    /// First valid value, least cloudy scene first.
    LeastCloudy,
    /// NaN-skipping median.
    Median,
}

impl std::str::FromStr for Fusion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Fusion::Mean),
            "first" => Ok(Fusion::First),
            "least-cloudy" => Ok(Fusion::LeastCloudy),
            "median" => Ok(Fusion::Median),
            _ => Err(Error::invalid(
                "fuse",
                format!("{s:?} (use mean, first, least-cloudy or median)"),
            )),
        }
    }
}

/// Time binning, anchored at the range start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cadence {
    /// One step per UTC day.
    #[default]
    Daily,
    /// One step per N days.
    Days(u32),
    /// One step per month (from the start day to the same day next month).
    Month,
}

impl std::str::FromStr for Cadence {
    type Err = Error;
    /// `day`, `month`, or `Nd` (e.g. `5d`).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "day" | "daily" | "1d" => Ok(Cadence::Daily),
            "month" | "monthly" => Ok(Cadence::Month),
            _ => s
                .strip_suffix('d')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&n| n > 0)
                .map(Cadence::Days)
                .ok_or_else(|| Error::invalid("cadence", format!("{s:?} (use day, month or Nd)"))),
        }
    }
}

/// What stack to build. One TOML/JSON document = one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackRequest {
    /// `[lon, lat]` of the tile centre, degrees.
    pub centroid: [f64; 2],
    /// Bands, in output order and labelled as written here: each is an asset
    /// key, a band name or a common name (`B04` and `red` both work on Planetary
    /// Computer and Earth Search; see [`Scene::from_item`](crate::stac::scene::Scene::from_item)).
    pub bands: Vec<BandName>,
    /// First day (UTC), inclusive.
    pub start: NaiveDate,
    /// Last day (UTC), inclusive.
    pub end: NaiveDate,
    /// Pixel size, CRS units. Default 10 m.
    #[serde(default = "default_resolution")]
    pub resolution: Resolution,
    /// Tile side, pixels. Default 256.
    #[serde(default = "default_tile_size")]
    pub tile_size: usize,
    /// Target CRS; default the UTM zone of the centroid (deterministic, never "the first item's").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsg: Option<Epsg>,
    /// Fusion of same-step scenes. Default mean.
    #[serde(default)]
    pub fuse: Fusion,
    /// Resampling. Default nearest.
    #[serde(default)]
    pub resampling: Resampling,
    /// Time binning. Default daily.
    #[serde(default)]
    pub cadence: Cadence,
    /// Categorical bands: never averaged (first valid, least cloudy first), never normalized. Default `["SCL"]`.
    #[serde(default = "default_categorical")]
    pub categorical: Vec<BandName>,
    /// Band read for the tile's own cloud fraction (Sentinel-2's SCL,
    /// Landsat's `qa_pixel`), if any. It is fused as a categorical band
    /// (never averaged). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_band: Option<BandName>,
    /// The `cloud_band` classes that count as cloud in
    /// [`TileStack::tile_cloud_fraction`](crate::stack::TileStack::tile_cloud_fraction).
    /// Default `[3, 8, 9, 10]`: SCL's shadow, medium and high probability
    /// cloud, thin cirrus.
    #[serde(default = "default_cloud_classes")]
    pub cloud_classes: Vec<u16>,
    /// Read `cloud_band` as bit flags instead of classes: a pixel is cloud
    /// when any of these bits (0 = least significant) is set, and no data
    /// when bit 0 (fill) is. For Landsat Collection 2's `QA_PIXEL`, `[1, 2,
    /// 3, 4]` is dilated cloud, cirrus, cloud and cloud shadow, the default
    /// whenever `cloud_band` is named `qa_pixel` (any case) and this is empty.
    /// Default none: classes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloud_bits: Vec<u8>,
    /// Cloud masking: pixels whose `cloud_band` value is one of these
    /// classes become no data in every other band of that scene *before*
    /// same-day fusion, so a day's value is the clear scenes' composite and
    /// `valid` is 0 under opaque cloud. For Sentinel-2's SCL, `[8, 9]`
    /// drops medium- and high-probability cloud and keeps thin cirrus (10)
    /// and shadow (3); `[3, 8, 9, 10]` drops all four. Needs `cloud_band`.
    /// Default none: nothing masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloud_mask: Vec<u16>,
    /// Cloud masking by bits of a bit-flag `cloud_band` (Landsat's
    /// `QA_PIXEL`): a pixel with any of these bits set becomes no data in
    /// every other band of its scene before fusion, as `cloud_mask` does for
    /// classes. `[1, 2, 3, 4]` masks dilated cloud, cirrus, cloud and
    /// shadow. Needs `cloud_band`. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloud_mask_bits: Vec<u8>,
    /// Harmonize Sentinel-2 L2A reflectances to one scale across processing
    /// baseline 04.00 (see [`Harmonize`](crate::stac::scene::Harmonize)): a stack spanning
    /// 25 January 2022 is continuous. Other collections are untouched.
    /// Default true.
    #[serde(default = "yes")]
    pub harmonize: bool,
    /// sat-tile-stack's rule: a pixel where every band read is exactly 0
    /// is no data (NaN), whatever nodata the file declares. Right for
    /// Sentinel-2 (0 is its fill), wrong where 0 is a value: a DEM's sea
    /// level, a class coded 0. Default true; left out of the request's
    /// serialized form (and so of a dataset's hash) when true.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub zero_is_nodata: bool,
    /// Bands converted from linear power to decibels, `10·log10(v)`, after
    /// same-day fusion (the mean is taken in linear power): Sentinel-1 RTC's
    /// `vv`, `vh`. A value ≤ 0 becomes NaN. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decibels: Vec<BandName>,
    /// Min–max normalize each (step, band) to 0–1 over the tile (non-categorical bands). Default false.
    #[serde(default)]
    pub normalize: bool,
    /// Read a COG overview instead of the full resolution when the target grid
    /// is at least twice as coarse (the coarsest overview not coarser than the
    /// target), as GDAL's warper does. Default true.
    #[serde(default = "yes")]
    pub use_overviews: bool,
    /// Most bytes a stack may take in memory while it is built (its output,
    /// its fused bands and the scenes being read: see
    /// [`StackPlan::memory_bytes`](crate::stack::plan::StackPlan::memory_bytes)), checked
    /// when it is planned, before anything is allocated. Default 8 GiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// A window that still fails after retries becomes NaN and is listed in
    /// [`TileStack::read_errors`](crate::stack::TileStack::read_errors) instead of failing the stack. Default false.
    #[serde(default)]
    pub errors_as_nodata: bool,
}

impl StackRequest {
    /// A request with the defaults (10 m, 256 px, daily mean, nearest).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `end < start` or no band is given.
    pub fn new(
        centroid: [f64; 2],
        bands: Vec<BandName>,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Self> {
        let r = StackRequest {
            centroid,
            bands,
            start,
            end,
            resolution: default_resolution(),
            tile_size: default_tile_size(),
            epsg: None,
            fuse: Fusion::Mean,
            resampling: Resampling::Nearest,
            cadence: Cadence::Daily,
            categorical: default_categorical(),
            cloud_band: None,
            cloud_classes: default_cloud_classes(),
            cloud_bits: Vec::new(),
            cloud_mask: Vec::new(),
            cloud_mask_bits: Vec::new(),
            harmonize: true,
            zero_is_nodata: true,
            decibels: Vec::new(),
            normalize: false,
            errors_as_nodata: false,
            use_overviews: true,
            max_bytes: default_max_bytes(),
        };
        r.validate()?;
        Ok(r)
    }

    /// Checks the request.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.end < self.start {
            return Err(Error::invalid(
                "time range",
                format!("{}/{}: end is before start", self.start, self.end),
            ));
        }
        if self.bands.is_empty() {
            return Err(Error::invalid("bands", "no band requested"));
        }
        if self.tile_size == 0 || self.tile_size > 16384 {
            return Err(Error::invalid(
                "tile size",
                format!("{} (1..=16384)", self.tile_size),
            ));
        }
        let [lon, lat] = self.centroid;
        if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
            return Err(Error::invalid(
                "centroid",
                format!("({lon}, {lat}) is not a lon/lat"),
            ));
        }
        if !self.cloud_mask.is_empty() && self.cloud_band.is_none() {
            return Err(Error::invalid(
                "cloud_mask",
                format!(
                    "classes {:?} need a cloud_band to read them from (e.g. \"SCL\")",
                    self.cloud_mask
                ),
            ));
        }
        if !self.cloud_mask_bits.is_empty() && self.cloud_band.is_none() {
            return Err(Error::invalid(
                "cloud_mask_bits",
                format!(
                    "bits {:?} need a cloud_band to read them from (e.g. \"qa_pixel\")",
                    self.cloud_mask_bits
                ),
            ));
        }
        for (field, bits) in [
            ("cloud_bits", &self.cloud_bits),
            ("cloud_mask_bits", &self.cloud_mask_bits),
        ] {
            if let Some(b) = bits.iter().find(|&&b| b > 31) {
                return Err(Error::invalid(
                    field,
                    format!("bit {b} (a flag band's bits are 0..=31)"),
                ));
            }
        }
        if let Some(b) = self.decibels.iter().find(|b| !self.bands.contains(b)) {
            return Err(Error::invalid(
                "decibels",
                format!("{b} is not one of the requested bands {:?}", self.bands),
            ));
        }
        if let Some(b) = self
            .decibels
            .iter()
            .find(|b| self.is_categorical(b) || derived_inputs(b).is_some())
        {
            return Err(Error::invalid(
                "decibels",
                format!("{b} is categorical or derived: only power bands convert to dB"),
            ));
        }
        Ok(())
    }

    /// The target grid: `tile_size`² at `resolution` around the centroid.
    ///
    /// # Errors
    /// [`Error::Crs`] when the CRS is unsupported.
    pub fn grid(&self) -> Result<GridSpec> {
        let [lon, lat] = self.centroid;
        let epsg = self.epsg.unwrap_or_else(|| Epsg::utm_for(lon, lat));
        let (x, y) = Transformer::new(Epsg::WGS84, epsg)?.transform(lon, lat)?;
        GridSpec::tile_around(epsg, x, y, self.tile_size, self.resolution)
    }

    /// Time bins `[start, end)` anchored at `start`, the last clipped to `end + 1 day`.
    pub fn bins(&self) -> Vec<(NaiveDate, NaiveDate)> {
        let stop = self.end + chrono::Days::new(1);
        let mut out = Vec::new();
        let mut a = self.start;
        while a < stop {
            let b = match self.cadence {
                Cadence::Daily => a + chrono::Days::new(1),
                Cadence::Days(n) => a + chrono::Days::new(n.max(1) as u64),
                Cadence::Month => add_month(a),
            };
            out.push((a, b.min(stop)));
            a = b;
        }
        out
    }

    pub(crate) fn is_categorical(&self, b: &BandName) -> bool {
        self.categorical.contains(b) || self.cloud_band.as_ref() == Some(b)
    }

    /// How the cloud band's values are read: the bits of a flag band
    /// (`cloud_bits`, or `[1, 2, 3, 4]` for a band named `qa_pixel`), else
    /// `cloud_classes`.
    pub(crate) fn cloud_rule(&self) -> CloudRule {
        if !self.cloud_bits.is_empty() {
            return CloudRule::Bits(bit_mask(&self.cloud_bits));
        }
        match &self.cloud_band {
            Some(b) if b.as_str().eq_ignore_ascii_case("qa_pixel") => {
                CloudRule::Bits(bit_mask(&LANDSAT_CLOUD_BITS))
            }
            _ => CloudRule::Classes(self.cloud_classes.clone()),
        }
    }
}

/// Landsat Collection 2 `QA_PIXEL` bits that count as cloud: dilated
/// cloud (1), cirrus (2), cloud (3), cloud shadow (4).
pub(crate) const LANDSAT_CLOUD_BITS: [u8; 4] = [1, 2, 3, 4];

/// Bit numbers → a mask (bits above 31 are refused by `validate`).
pub(crate) fn bit_mask(bits: &[u8]) -> u32 {
    bits.iter()
        .filter(|&&b| b < 32)
        .fold(0u32, |m, &b| m | (1u32 << b))
}

/// How a cloud band's value says "cloud".
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CloudRule {
    /// One of these classes (SCL).
    Classes(Vec<u16>),
    /// Any of these bits set (QA_PIXEL); bit 0 set is fill (no data).
    Bits(u32),
}

impl CloudRule {
    /// `Some(cloud?)` for a valid pixel value, `None` for no data.
    pub(crate) fn classify(&self, v: f32) -> Option<bool> {
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        match self {
            CloudRule::Classes(c) => Some(v <= f32::from(u16::MAX) && c.contains(&(v as u16))),
            CloudRule::Bits(mask) => {
                let x = v as u32;
                (x & 1 == 0).then_some(x & mask != 0)
            }
        }
    }
}

impl StackRequest {
    /// The assets to read: requested bands (the inputs of derived ones in
    /// their place), then the cloud band if it is extra. No repeats.
    pub fn read_bands(&self) -> Vec<BandName> {
        let mut out: Vec<BandName> = Vec::new();
        let mut push = |b: BandName| {
            if !out.contains(&b) {
                out.push(b);
            }
        };
        for b in &self.bands {
            match derived_inputs(b) {
                Some((x, y)) => {
                    push(BandName::known(x));
                    push(BandName::known(y));
                }
                None => push(b.clone()),
            }
        }
        if let Some(cb) = &self.cloud_band {
            push(cb.clone());
        }
        out
    }
}

/// Derived bands, computed from fused inputs as a normalized difference
/// `(a − b) / (a + b)`: `ndvi` = (B08, B04), `ndwi` = (B03, B08) (Sentinel-2 keys).
pub fn derived_inputs(band: &BandName) -> Option<(&'static str, &'static str)> {
    match band.as_str().to_ascii_lowercase().as_str() {
        "ndvi" => Some(("B08", "B04")),
        "ndwi" => Some(("B03", "B08")),
        _ => None,
    }
}

fn default_cloud_classes() -> Vec<u16> {
    vec![3, 8, 9, 10]
}

fn is_yes(v: &bool) -> bool {
    *v
}

fn yes() -> bool {
    true
}

fn default_resolution() -> Resolution {
    Resolution::TEN_METRES
}

fn default_max_bytes() -> u64 {
    8 << 30
}

fn default_tile_size() -> usize {
    256
}

fn default_categorical() -> Vec<BandName> {
    vec![BandName::known("SCL")]
}

fn add_month(d: NaiveDate) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(1))
        .unwrap_or(d + chrono::Days::new(31))
}

/// The keys of a [`StackRequest`] that each sample of a dataset supplies
/// (from its sampler and time window), so a [`StackTemplate`] refuses them.
const PER_SAMPLE: [&str; 3] = ["centroid", "start", "end"];

/// A [`StackRequest`] without its place and days: a dataset config's
/// `[stack]` table, parsed once with its defaults applied and unknown or
/// malformed keys refused naming the key. [`StackTemplate::at`] makes each
/// sample's request cheaply (a clone and three fields). Two templates are
/// equal when their parsed values are; [`StackTemplate::canonical`] (the
/// parsed values, defaults included) is what a dataset's
/// [`config_hash`](crate::shard::config_hash) covers, so two configs that
/// differ only in formatting, comments or spelled-out defaults hash the
/// same. It serializes as the table it was parsed from (what a shard index
/// records as the config it was written from).
///
/// # Examples
/// ```
/// use tilestack::stack::StackTemplate;
/// let t: toml::Table = toml::from_str("bands = [\"B04\"]\ntile_size = 64").unwrap();
/// let template = StackTemplate::from_table(t).unwrap();
/// let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// let req = template.at([-122.33, 37.81], day(1), day(30)).unwrap();
/// assert_eq!((req.tile_size, req.resolution.metres()), (64, 10.0));
///
/// let t: toml::Table = toml::from_str("bands = [\"B04\"]\ntile_sise = 64").unwrap();
/// // the TOML error is the source: `chain` prints it after the message
/// assert!(StackTemplate::from_table(t).unwrap_err().chain().contains("tile_sise"));
/// ```
#[derive(Debug, Clone)]
pub struct StackTemplate {
    /// The parsed request, at a placeholder place and days (never handed out).
    request: StackRequest,
    /// The table as written.
    table: toml::Table,
}

impl PartialEq for StackTemplate {
    fn eq(&self, other: &StackTemplate) -> bool {
        self.request == other.request
    }
}

impl StackTemplate {
    /// Parses a `[stack]` table.
    ///
    /// # Errors
    /// [`Error::Invalid`] (`what` = `"stack"`) naming the key that is
    /// unknown, malformed, or one of `centroid`, `start`, `end` (they come
    /// from each sample), or the request check that fails.
    pub fn from_table(table: toml::Table) -> Result<StackTemplate> {
        let written = table.clone();
        let mut table = table;
        if let Some(key) = PER_SAMPLE.iter().find(|k| table.contains_key(**k)) {
            return Err(Error::invalid(
                "stack",
                format!("stack.{key}: comes from [sampler] and [time], not [stack]"),
            ));
        }
        let day = NaiveDate::default();
        table.insert(
            "centroid".into(),
            toml::Value::Array(vec![toml::Value::Float(0.0), toml::Value::Float(0.0)]),
        );
        table.insert("start".into(), toml::Value::String(day.to_string()));
        table.insert("end".into(), toml::Value::String(day.to_string()));
        let request: StackRequest =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    Error::invalid_because("stack", "not a [stack] table", e)
                })?;
        request.validate()?;
        Ok(StackTemplate {
            request,
            table: written,
        })
    }

    /// The request for one sample: this template at `centroid`, from
    /// `start` to `end` (inclusive).
    ///
    /// # Errors
    /// [`Error::Invalid`] from [`StackRequest::validate`] (a centroid that
    /// is no lon/lat, `end` before `start`).
    pub fn at(&self, centroid: [f64; 2], start: NaiveDate, end: NaiveDate) -> Result<StackRequest> {
        let req = StackRequest {
            centroid,
            start,
            end,
            ..self.request.clone()
        };
        req.validate()?;
        Ok(req)
    }

    /// The template's fields as a request at a placeholder place (0°, 0°)
    /// and day (1970-01-01): for reading `bands`, `tile_size` and the rest.
    pub fn fields(&self) -> &StackRequest {
        &self.request
    }

    /// The parsed values, defaults included, without `centroid`, `start`
    /// and `end`: equal for templates that are equal, whatever their TOML
    /// looked like.
    pub fn canonical(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.request).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            for k in PER_SAMPLE {
                map.remove(k);
            }
        }
        value
    }
}

impl TryFrom<toml::Table> for StackTemplate {
    type Error = Error;

    fn try_from(table: toml::Table) -> Result<StackTemplate> {
        StackTemplate::from_table(table)
    }
}

/// A `[stack]` table through [`StackTemplate::from_table`]. serde keeps only
/// an error's text, so it gets the whole chain: the TOML parser's message
/// (the unknown key) is the cause, not part of the [`Error`]'s own message.
impl<'de> Deserialize<'de> for StackTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        StackTemplate::from_table(table).map_err(|e| serde::de::Error::custom(e.chain()))
    }
}

/// The table as written.
impl Serialize for StackTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.table.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 8, day).unwrap()
    }

    #[test]
    fn bins_are_inclusive_and_anchored() {
        let b = BandName::parse_list("B04").unwrap();
        let mut r = StackRequest::new([-122.33, 37.81], b, d(1), d(30)).unwrap();
        assert_eq!(r.bins().len(), 30);
        r.cadence = Cadence::Days(7);
        let bins = r.bins();
        assert_eq!(bins.len(), 5);
        assert_eq!(bins[4], (d(29), d(31)));
        r.cadence = Cadence::Month;
        r.start = NaiveDate::from_ymd_opt(2019, 5, 1).unwrap();
        r.end = NaiveDate::from_ymd_opt(2019, 9, 30).unwrap();
        assert_eq!(r.bins().len(), 5);
        let e = StackRequest::new([0.0, 0.0], BandName::parse_list("B04").unwrap(), d(2), d(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("end is before start"), "{e}");
        assert_eq!("5d".parse::<Cadence>().unwrap(), Cadence::Days(5));
        assert_eq!(
            "0d".parse::<Cadence>().unwrap_err().to_string(),
            "invalid cadence: \"0d\" (use day, month or Nd)"
        );
    }

    #[test]
    fn grids_south_and_at_zone_edges() {
        let b = BandName::parse_list("B04").unwrap();
        // southern hemisphere: 327xx with the 10 000 km false northing
        let r = StackRequest::new([151.21, -33.87], b.clone(), d(1), d(2)).unwrap();
        let g = r.grid().unwrap();
        assert_eq!(g.epsg.code(), 32756);
        assert!(g.transform.y0 > 6_000_000.0 && g.transform.y0 < 10_000_000.0);
        assert_eq!(g.transform.x0 % 10.0, 0.0);
        // either side of the 120° W zone edge: 10N vs 11N, deterministic
        let west = StackRequest::new([-120.0001, 37.0], b.clone(), d(1), d(2)).unwrap();
        let east = StackRequest::new([-119.9999, 37.0], b.clone(), d(1), d(2)).unwrap();
        assert_eq!(west.grid().unwrap().epsg.code(), 32610);
        assert_eq!(east.grid().unwrap().epsg.code(), 32611);
        // a configured EPSG wins
        let mut forced = west.clone();
        forced.epsg = Some(Epsg::new(32611).unwrap());
        assert_eq!(forced.grid().unwrap().epsg.code(), 32611);
    }

    #[test]
    fn derived_bands_read_their_inputs_once() {
        let mut r = StackRequest::new(
            [0.0, 0.0],
            BandName::parse_list("B04,ndvi").unwrap(),
            d(1),
            d(1),
        )
        .unwrap();
        r.cloud_band = Some(BandName::new("SCL").unwrap());
        let names: Vec<String> = r.read_bands().iter().map(|b| b.to_string()).collect();
        assert_eq!(names, ["B04", "B08", "SCL"]);
    }

    #[test]
    fn toml_applies_the_documented_defaults_and_round_trips() {
        let text = r#"
            centroid = [-122.33, 37.81]
            bands = ["B04", "B03"]
            start = "2019-08-01"
            end = "2019-08-30"
        "#;
        let parsed: StackRequest = toml::from_str(text).unwrap();
        let want = StackRequest::new(
            [-122.33, 37.81],
            BandName::parse_list("B04,B03").unwrap(),
            d(1),
            d(30),
        )
        .unwrap();
        assert_eq!(parsed, want);
        assert_eq!(parsed.resolution.metres(), 10.0);
        assert_eq!(parsed.tile_size, 256);
        assert_eq!(parsed.categorical, vec![BandName::new("SCL").unwrap()]);
        assert!(parsed.use_overviews && !parsed.errors_as_nodata && !parsed.normalize);
        assert!(parsed.zero_is_nodata);
        // the default is not written: a dataset's hash of its template is
        // what it was before the field existed
        assert!(!toml::to_string(&parsed).unwrap().contains("zero_is_nodata"));
        // every field set: written and read back unchanged
        let mut full = want.clone();
        full.epsg = Some(Epsg::new(32611).unwrap());
        full.cloud_band = Some(BandName::new("SCL").unwrap());
        full.fuse = Fusion::Median;
        full.cadence = Cadence::Days(5);
        full.resampling = Resampling::Bilinear;
        full.normalize = true;
        full.errors_as_nodata = true;
        full.use_overviews = false;
        full.zero_is_nodata = false;
        full.tile_size = 64;
        for r in [want, full] {
            let back: StackRequest = toml::from_str(&toml::to_string(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
        // a missing required field names itself
        let e = toml::from_str::<StackRequest>("bands = [\"B04\"]").unwrap_err();
        assert!(e.to_string().contains("centroid"), "{e}");
    }
}
