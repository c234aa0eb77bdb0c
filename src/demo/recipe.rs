//! The TOML recipe a demo world is generated from.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, Result};
use crate::units::Epsg;

/// The embedded Oakland port recipe (`datasets/oakland-port/recipe.toml`).
pub const OAKLAND_RECIPE: &str = include_str!("../../datasets/oakland-port/recipe.toml");

/// A demo-world recipe. One TOML file = one world; see
/// `datasets/oakland-port/recipe.toml` for a commented example.
///
/// # Examples
/// ```
/// use tilestack::demo::Recipe;
/// let r = Recipe::oakland();
/// assert_eq!(r.name, "oakland-port");
/// assert_eq!(r.scenes().len(), 18);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// World name, used in cache paths.
    pub name: String,
    /// Seed of every random choice (clouds, ships, noise).
    pub seed: u64,
    /// STAC collection id of the items.
    pub collection: String,
    /// `[lon, lat]` of the demo stack's centre, degrees.
    pub centroid: [f64; 2],
    /// CRS in which every world feature is defined.
    pub epsg: Epsg,
    /// Scene side in 10 m pixels (20 m bands have half as many).
    pub scene_size: usize,
    /// Internal COG tile size in pixels (multiple of 16).
    pub cog_tile_size: usize,
    /// Year of the acquisitions.
    pub year: i32,
    /// Month (1–12) of the acquisitions.
    pub month: u32,
    /// UTC time `HH:MM:SS` of a day's first acquisition.
    pub time: String,
    /// Port terminals.
    pub terminals: Vec<Terminal>,
    /// Granules by name.
    pub granules: BTreeMap<String, Granule>,
    /// Acquisition days.
    pub acquisitions: Vec<Acquisition>,
    /// Also write each scene as an EOPF-like Zarr v2 store and a sharded
    /// GeoZarr v3 store, with a STAC collection of each (see
    /// [`World::zarr_catalog`](crate::demo::World::zarr_catalog)). Off by
    /// default; when off it is left out of the recipe's text, so the cache
    /// key of a COG-only world is what it was.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zarr: bool,
    /// Sentinel-1 passes (the `<collection>-s1` collection); none, no such collection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub s1_passes: Vec<S1Pass>,
}

/// One Sentinel-1 pass over the world: an RTC item with VV and VH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S1Pass {
    /// Day of month.
    pub day: u32,
    /// `"ascending"` (about 02:01 UTC over California: local evening) or
    /// `"descending"` (about 14:06 UTC: local morning), as `sat:orbit_state`.
    pub orbit: String,
    /// `platform`, e.g. `"sentinel-1a"`.
    pub platform: String,
}

/// A Sentinel-1 pass of the world, resolved from the recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct S1Def {
    /// STAC item id, named as Planetary Computer names `sentinel-1-rtc` items.
    pub id: String,
    /// Day of month.
    pub day: u32,
    /// Acquisition (mid-scene) time, UTC.
    pub datetime: chrono::DateTime<chrono::Utc>,
    /// `"ascending"` or `"descending"`.
    pub orbit: String,
    /// `platform`.
    pub platform: String,
    /// `sat:absolute_orbit` (synthetic, increasing with time).
    pub absolute_orbit: u32,
    /// `sat:relative_orbit`.
    pub relative_orbit: u32,
    /// Seed of this pass's speckle (a stream of its own: the optical scenes' bytes do not depend on it).
    pub seed: u64,
}

/// A port terminal: a rotated rectangle whose water side holds berths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terminal {
    /// Display name.
    pub name: String,
    /// Centre, metres east/north of the centroid in the world CRS.
    pub offset: [f64; 2],
    /// Half length along the quay, metres.
    pub half_length: f64,
    /// Half width across the quay, metres.
    pub half_width: f64,
    /// Rotation of the quay axis from north, degrees clockwise.
    pub rotation_deg: f64,
}

/// A granule of the tiling grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Granule {
    /// The granule's CRS.
    pub epsg: Epsg,
    /// MGRS tile id used in item ids, e.g. `10SEG`.
    pub mgrs: String,
    /// Upper-left corner relative to the centroid, in scene extents.
    pub ul_extent: [f64; 2],
    /// Extra shift of the upper-left corner, metres.
    #[serde(default)]
    pub ul_metres: [f64; 2],
}

/// One acquisition day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acquisition {
    /// Day of month.
    pub day: u32,
    /// Scenes acquired that day (several overlapping granules allowed).
    pub scenes: Vec<SceneSpec>,
}

/// One scene of an acquisition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneSpec {
    /// Granule name (a key of `[granules]`).
    pub granule: String,
    /// Radiometric gain (1 = none).
    #[serde(default = "one")]
    pub gain: f64,
    /// Number of random cloud blobs over the scene.
    #[serde(default)]
    pub n_clouds: u32,
    /// Cloud blobs placed relative to the centroid: `[dx, dy, sigma_m, amplitude]`.
    #[serde(default)]
    pub clouds_at_tile: Vec<[f64; 4]>,
    /// Swath edge `[dx, dy, nx, ny]`: valid where `(p − c − d)·n > 0`.
    #[serde(default)]
    pub edge: Option<[f64; 4]>,
    /// Haze / thin-cloud blobs relative to the centroid, `[dx, dy, sigma_m,
    /// amplitude]`; amplitude is the fraction mixed toward haze (≤ 0.5 in
    /// total). Above 0.25 the SCL says thin cirrus (10), never opaque cloud.
    #[serde(default)]
    pub haze: Vec<[f64; 4]>,
    /// Sun-glint blobs on water relative to the centroid, `[dx, dy,
    /// sigma_m, amplitude]`: speckled, as bright as ships at amplitude ~1.
    #[serde(default)]
    pub glint: Vec<[f64; 4]>,
}

fn one() -> f64 {
    1.0
}

/// A scene of the world, resolved from the recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneDef {
    /// STAC item id.
    pub id: String,
    /// Day of month.
    pub day: u32,
    /// Acquisition time, UTC.
    pub datetime: chrono::DateTime<chrono::Utc>,
    /// Granule name.
    pub granule: String,
    /// Scene options.
    pub spec: SceneSpec,
    /// Seed of this scene's clouds and noise.
    pub seed: u64,
    /// Index within its day.
    pub index_in_day: usize,
}

impl Recipe {
    /// The embedded Oakland port recipe.
    pub fn oakland() -> Recipe {
        // The embedded recipe is checked by a unit test, so this cannot fail in a release.
        match Recipe::from_toml_str(
            OAKLAND_RECIPE,
            Path::new("datasets/oakland-port/recipe.toml"),
        ) {
            Ok(r) => r,
            Err(e) => panic!("embedded recipe is invalid: {e}"),
        }
    }

    /// Reads and validates a recipe file.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Config`] naming the file and the problem.
    pub fn from_file(path: &Path) -> Result<Recipe> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Recipe::from_toml_str(&s, path)
    }

    /// Parses and validates recipe text; `path` is only used in messages.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` and the problem, with the TOML (or
    /// time) parser's error as its source.
    pub fn from_toml_str(s: &str, path: &Path) -> Result<Recipe> {
        let r: Recipe =
            toml::from_str(s).map_err(|e| Error::config_because(path, "not a recipe", e))?;
        r.validate().map_err(|p| p.config(path))?;
        Ok(r)
    }

    fn validate(&self) -> std::result::Result<(), Problem> {
        // Both end up in file names (the cache folder, item and data
        // folders): nothing that could leave the folder they are written in.
        if !is_file_safe(&self.name) {
            return Err(format!(
                "name {:?} must be 1–64 letters, digits, '-', '_' or '.', not starting with '.'",
                self.name
            )
            .into());
        }
        for (name, g) in &self.granules {
            if g.mgrs.is_empty()
                || g.mgrs.len() > 10
                || !g.mgrs.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "granule {name}: mgrs {:?} must be 1–10 letters and digits (item ids and file names are made from it)",
                    g.mgrs
                ).into());
            }
        }
        let [lon, lat] = self.centroid;
        if !(-180.0..=180.0).contains(&lon) || !(-80.0..=84.0).contains(&lat) {
            return Err(format!("centroid {:?} is outside UTM coverage", self.centroid).into());
        }
        if self.epsg.as_utm().is_none() {
            return Err(format!("epsg {} must be a UTM zone", self.epsg).into());
        }
        if !(64..=16384).contains(&self.scene_size) || !self.scene_size.is_multiple_of(2) {
            return Err(format!("scene_size {} must be even, 64..=16384", self.scene_size).into());
        }
        if self.cog_tile_size == 0 || !self.cog_tile_size.is_multiple_of(16) {
            return Err(format!(
                "cog_tile_size {} must be a positive multiple of 16",
                self.cog_tile_size
            )
            .into());
        }
        if !(1..=12).contains(&self.month) {
            return Err(format!("month {} must be 1..=12", self.month).into());
        }
        chrono::NaiveTime::parse_from_str(&self.time, "%H:%M:%S")
            .map_err(|e| Problem::because(format!("time {:?}", self.time), e))?;
        for (name, g) in &self.granules {
            if g.epsg.as_utm().is_none() {
                return Err(format!("granule {name}: epsg {} must be a UTM zone", g.epsg).into());
            }
        }
        if self.acquisitions.is_empty() {
            return Err("no [[acquisitions]]".into());
        }
        for a in &self.acquisitions {
            if chrono::NaiveDate::from_ymd_opt(self.year, self.month, a.day).is_none() {
                return Err(format!(
                    "acquisition day {} is not in {}-{:02}",
                    a.day, self.year, self.month
                )
                .into());
            }
            for s in &a.scenes {
                if !self.granules.contains_key(&s.granule) {
                    return Err(format!(
                        "day {}: granule {:?} is not defined (have: {})",
                        a.day,
                        s.granule,
                        self.granules.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                    .into());
                }
                if !(s.gain > 0.0 && s.gain.is_finite()) {
                    return Err(format!("day {}: gain {} must be > 0", a.day, s.gain).into());
                }
                if let Some(e) = s.edge
                    && e[2] == 0.0
                    && e[3] == 0.0
                {
                    return Err(format!("day {}: edge normal is zero", a.day).into());
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.s1_passes {
            if !seen.insert((p.day, p.orbit.as_str())) {
                return Err(format!("s1_passes: two {} passes on day {}", p.orbit, p.day).into());
            }
            if chrono::NaiveDate::from_ymd_opt(self.year, self.month, p.day).is_none() {
                return Err(format!(
                    "s1_passes: day {} is not in {}-{:02}",
                    p.day, self.year, self.month
                )
                .into());
            }
            if !matches!(p.orbit.as_str(), "ascending" | "descending") {
                return Err(format!(
                    "s1_passes day {}: orbit {:?} must be \"ascending\" or \"descending\"",
                    p.day, p.orbit
                )
                .into());
            }
            let unit = p.platform.strip_prefix("sentinel-1").unwrap_or("");
            if unit.len() != 1 || !unit.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(format!(
                    "s1_passes day {}: platform {:?} must be sentinel-1a, sentinel-1b, ...",
                    p.day, p.platform
                )
                .into());
            }
        }
        for t in &self.terminals {
            if !(t.half_length > 0.0 && t.half_width > 0.0) {
                return Err(format!("terminal {:?}: sizes must be > 0", t.name).into());
            }
        }
        Ok(())
    }

    /// Every scene of the world in time order, with ids as Planetary Computer
    /// names Sentinel-2 L2A items.
    pub fn scenes(&self) -> Vec<SceneDef> {
        let mut out = Vec::new();
        let base_time =
            chrono::NaiveTime::parse_from_str(&self.time, "%H:%M:%S").unwrap_or_default();
        let mut acqs = self.acquisitions.clone();
        acqs.sort_by_key(|a| a.day);
        for a in &acqs {
            let Some(date) = chrono::NaiveDate::from_ymd_opt(self.year, self.month, a.day) else {
                continue; // rejected by validate()
            };
            for (k, s) in a.scenes.iter().enumerate() {
                let mgrs = self
                    .granules
                    .get(&s.granule)
                    .map(|g| g.mgrs.as_str())
                    .unwrap_or("");
                let dt =
                    date.and_time(base_time).and_utc() + chrono::Duration::seconds(3 * k as i64);
                let sat = if a.day % 2 == 1 { "S2A" } else { "S2B" };
                let id = format!(
                    "{sat}_MSIL2A_{}_R013_T{mgrs}_{}T000000",
                    dt.format("%Y%m%dT%H%M%S"),
                    dt.format("%Y%m%d")
                );
                out.push(SceneDef {
                    id,
                    day: a.day,
                    datetime: dt,
                    granule: s.granule.clone(),
                    spec: s.clone(),
                    seed: self
                        .seed
                        .wrapping_mul(1_000_003)
                        .wrapping_add(a.day as u64 * 10 + k as u64),
                    index_in_day: k,
                });
            }
        }
        out
    }
}

impl Recipe {
    /// The Sentinel-1 passes in time order, with ids as Planetary Computer
    /// names `sentinel-1-rtc` items (`S1A_IW_GRDH_1SDV_<start>_<end>_<orbit>_<datatake>_rtc`).
    ///
    /// # Examples
    /// ```
    /// use tilestack::demo::Recipe;
    /// let passes = Recipe::oakland().s1_passes();
    /// assert!(passes.iter().any(|p| p.orbit == "ascending"));
    /// assert!(passes[0].id.starts_with("S1A_IW_GRDH_1SDV_201908"));
    /// ```
    pub fn s1_passes(&self) -> Vec<S1Def> {
        let mut passes = self.s1_passes.clone();
        passes.sort_by_key(|p| (p.day, p.orbit != "ascending"));
        let mut out = Vec::new();
        for (k, p) in passes.iter().enumerate() {
            let Some(date) = chrono::NaiveDate::from_ymd_opt(self.year, self.month, p.day) else {
                continue; // rejected by validate()
            };
            let ascending = p.orbit == "ascending";
            let (h, m, s) = if ascending { (2, 1, 20) } else { (14, 6, 40) };
            let Some(t) = chrono::NaiveTime::from_hms_opt(h, m, s) else {
                continue;
            };
            let dt = date.and_time(t).and_utc();
            let unit = p
                .platform
                .chars()
                .last()
                .unwrap_or('a')
                .to_ascii_uppercase();
            // A 12-day repeat cycle of 175 orbits, as Sentinel-1's.
            let days =
                (date - chrono::NaiveDate::from_ymd_opt(2014, 4, 3).unwrap_or(date)).num_days();
            let absolute_orbit = (days.max(0) as f64 * 175.0 / 12.0) as u32 + u32::from(!ascending);
            let relative_orbit = if ascending { 35 } else { 42 };
            let start = dt - chrono::Duration::seconds(12);
            let end = dt + chrono::Duration::seconds(13);
            let datatake =
                (self.seed as u32 ^ absolute_orbit.wrapping_mul(2_654_435_761)) & 0xF_FFFF;
            let id = format!(
                "S1{unit}_IW_GRDH_1SDV_{}_{}_{absolute_orbit:06}_{datatake:06X}_rtc",
                start.format("%Y%m%dT%H%M%S"),
                end.format("%Y%m%dT%H%M%S"),
            );
            out.push(S1Def {
                id,
                day: p.day,
                datetime: dt,
                orbit: p.orbit.clone(),
                platform: p.platform.clone(),
                absolute_orbit,
                relative_orbit,
                seed: self
                    .seed
                    .wrapping_mul(7_000_003)
                    .wrapping_add(0x51_0000 + p.day as u64 * 10 + k as u64),
            });
        }
        out
    }
}

/// A single path component: 1–64 of `[A-Za-z0-9._-]`, not starting with `.`.
fn is_file_safe(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_recipe_is_valid() {
        let r = Recipe::oakland();
        let scenes = r.scenes();
        assert_eq!(scenes.len(), 18);
        assert_eq!(
            scenes[0].id,
            "S2A_MSIL2A_20190801T185921_R013_T10SEG_20190801T000000"
        );
        assert!(
            scenes
                .iter()
                .any(|s| r.granules[&s.granule].epsg.code() == 32611)
        );
        let ids: std::collections::HashSet<_> = scenes.iter().map(|s| &s.id).collect();
        assert_eq!(ids.len(), scenes.len(), "ids are unique");
    }

    #[test]
    fn the_second_committed_recipe_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/second-port/recipe.toml");
        let r = Recipe::from_file(&path).unwrap();
        let oakland = Recipe::oakland();
        assert_eq!(r.name, "second-port");
        assert_ne!(r.seed, oakland.seed);
        assert_ne!((r.year, r.month), (oakland.year, oakland.month));
        assert_eq!(r.terminals.len(), 3);
        assert_ne!(r.terminals, oakland.terminals);
        let days: std::collections::BTreeSet<_> = r.scenes().iter().map(|s| s.day).collect();
        assert_eq!(days.len(), 13, "{days:?}");
        let specs: Vec<_> = r.scenes().into_iter().map(|s| s.spec).collect();
        assert!(specs.iter().any(|s| s.n_clouds >= 10), "a cloudy day");
        assert!(specs.iter().filter(|s| !s.haze.is_empty()).count() >= 3);
        assert!(specs.iter().filter(|s| !s.glint.is_empty()).count() >= 3);
        assert!(specs.iter().filter(|s| s.edge.is_some()).count() >= 2);
        assert!(
            r.scenes()
                .iter()
                .any(|s| r.granules[&s.granule].epsg.code() == 32611)
        );
        assert_eq!(r.s1_passes().len(), 10);
    }

    #[test]
    fn malformed_recipes_name_the_problem() {
        let p = Path::new("bad.toml");
        let e = Recipe::from_toml_str("name = ", p).unwrap_err();
        // the TOML parser's error is the source (the CLI prints it on one line)
        let cause = std::error::Error::source(&e).expect("the TOML error");
        assert!(cause.to_string().contains("line 1"), "{cause}");
        let e = e.to_string();
        assert!(e.starts_with("bad.toml: "), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let bad_granule =
            OAKLAND_RECIPE.replace("granule = \"Z\", n_clouds = 2", "granule = \"Q\"");
        let e = Recipe::from_toml_str(&bad_granule, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("granule \"Q\" is not defined"), "{e}");
        let bad_orbit = OAKLAND_RECIPE.replace("orbit = \"ascending\"", "orbit = \"up\"");
        let e = Recipe::from_toml_str(&bad_orbit, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("orbit \"up\""), "{e}");
        let bad_day = OAKLAND_RECIPE.replace("day = 31", "day = 32");
        let e = Recipe::from_toml_str(&bad_day, p).unwrap_err().to_string();
        assert!(e.contains("day 32"), "{e}");
        // Names that would leave the folder they are written in.
        for (from, to) in [
            ("name = \"oakland-port\"", "name = \"../../etc\""),
            ("name = \"oakland-port\"", "name = \"/tmp/x\""),
            ("name = \"oakland-port\"", "name = \"a\\u0000b\""),
            ("mgrs = \"10SEG\"", "mgrs = \"../../../x\""),
            ("mgrs = \"10SEG\"", "mgrs = \"10/SEG\""),
        ] {
            let bad = OAKLAND_RECIPE.replace(from, to);
            assert_ne!(bad, OAKLAND_RECIPE, "{to}");
            let e = Recipe::from_toml_str(&bad, p).unwrap_err().to_string();
            let key = if to.starts_with("name") {
                "name"
            } else {
                "mgrs"
            };
            assert!(e.contains(key) && e.contains("must be"), "{to}: {e}");
        }
        let unknown = format!("{OAKLAND_RECIPE}\ncolour = 3\n");
        let e = Recipe::from_toml_str(&unknown, p).unwrap_err().chain();
        assert!(e.contains("colour"), "{e}");
    }
}
