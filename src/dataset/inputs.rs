//! Several inputs per sample: `[[inputs]]` of a dataset config — Sentinel-1
//! beside Sentinel-2, a DEM, a land-cover map — each planned with the one
//! building block there is, a [`StackPlan`], on **the sample's grid** (the
//! first input's: UTM of the centroid, its resolution and tile size), and
//! put on **the first input's day grid** by its [`TimeRule`].
//!
//! ```toml
//! [[inputs]]                    # the first input: defines the day grid
//! name = "s2"
//! catalog = { demo = "oakland" }
//! stack = { bands = ["B04", "B08"], tile_size = 64 }
//!
//! [[inputs]]
//! name = "s1"
//! catalog = { demo = "oakland", collection = "sentinel-1-rtc" }
//! stack = { bands = ["vv", "vh"] }
//! time = { nearest = 3 }        # the pass nearest each S2 day, within ±3 days
//!
//! [[inputs]]
//! name = "dem"
//! href = "dem.tif"              # one raster, no catalog
//! stack = { bands = ["elevation"], resampling = "bilinear" }
//! time = "static"
//! ```
//!
//! Today's `[catalog]` + `[stack]` is still one input (named after its
//! collection, else `main`); `[[inputs]]` written beside it follow it.
//!
//! # Time rules
//! * `daily` — the input's own acquisitions on the sample's steps: a step
//!   holds the scenes acquired in it, fused (what a single-input stack is).
//! * `nearest = N` — for each step `[a, b)`, the scenes of the acquisition
//!   **day** nearest the step within ±`N` days (distance 0 inside the step,
//!   else days to its nearest end). All scenes of that day are fused (the
//!   frames of one pass). **Ties** (a day before and a day after, equally
//!   near) go to **the earlier day**: nothing is taken from the future when
//!   the past is as near. No day within ±`N`: the step has no data — NaN,
//!   invalid, flagged in [`InputStack::has_data`], never a silent zero. One
//!   scene may serve several steps (read once).
//! * `composite` — `{ composite = "median" | "mean", per = "window" }`: one
//!   composite of every scene of the window (one step: `[C, H, W]`);
//!   `per = "step"`: per step, as `daily` with that fusion.
//! * `static` — read once whatever its date (DEM, land cover): one step,
//!   `[C, H, W]`, scenes mosaicked first valid in time order.
//!
//! # Resampling
//! One `resampling` per input, for all its bands, chosen by what the bands
//! hold. Continuous values: `bilinear` (a DEM or backscatter onto a finer or
//! similar grid) or `average` (onto a coarser grid: the covered-area-weighted
//! mean of the source pixels under each target pixel, GDAL's `average`).
//! Categorical values (`categorical`, the template's field; a land-cover
//! map): `nearest` or `mode` (the most frequent class under each target
//! pixel, GDAL's `mode`), which never invent a class. Categorical bands are
//! never blended, in an input as in any stack: under `bilinear` they are
//! read with `nearest`, under `average` with `mode`
//! ([`Resampling::for_categorical`](crate::geo::Resampling::for_categorical)),
//! so an S2 input with `bilinear` keeps its SCL cloud classes.
//!
//! ```toml
//! [[inputs]]
//! name = "cover"
//! href = "worldcover.tif"       # 10 m classes onto a 30 m sample grid
//! stack = { bands = ["map"], categorical = ["map"], resampling = "mode" }
//! time = "static"
//! ```
//!
//! Every error names the input: `inputs[1] "s1": …`.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::stac::scene::Scene;
use crate::stack::TileStack;
use crate::stack::plan::StackPlan;
use crate::stack::request::{Cadence, Fusion, StackRequest, StackTemplate};

/// How an input's scenes land on the sample's day grid (see the module docs).
///
/// # Examples
/// ```
/// use tilestack::dataset::TimeRule;
/// let r: TimeRule = toml::Value::Table(toml::toml! { nearest = 3 }).try_into().unwrap();
/// assert_eq!(r, TimeRule::Nearest { days: 3 });
/// let s: TimeRule = toml::Value::String("static".into()).try_into().unwrap();
/// assert_eq!(s, TimeRule::Static);
/// assert!(s.is_static());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "toml::Value", into = "toml::Value")]
pub enum TimeRule {
    /// Its own acquisition days on the sample's steps (the default).
    #[default]
    Daily,
    /// The nearest acquisition day within ±`days` of each step; ties to the earlier day.
    Nearest {
        /// The most days between a step and the scene that fills it.
        days: u32,
    },
    /// A median or mean composite, of the whole window or per step.
    Composite {
        /// The composite.
        method: CompositeMethod,
        /// Over the window (one step) or per step.
        per: CompositeSpan,
    },
    /// Read once, whatever the date: one step.
    Static,
}

/// The fusion of a [`TimeRule::Composite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompositeMethod {
    /// NaN-skipping median.
    Median,
    /// NaN-skipping mean.
    Mean,
}

/// What a [`TimeRule::Composite`] composites over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompositeSpan {
    /// The whole time window: one step.
    Window,
    /// Each step of the sample's day grid.
    Step,
}

impl TimeRule {
    /// True when the input has one step, not the sample's `T`
    /// (`static`, `composite` over the window): its tensors are `[C, H, W]`.
    pub fn is_static(&self) -> bool {
        matches!(
            self,
            TimeRule::Static
                | TimeRule::Composite {
                    per: CompositeSpan::Window,
                    ..
                }
        )
    }
}

impl std::fmt::Display for TimeRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeRule::Daily => write!(f, "daily"),
            TimeRule::Nearest { days } => write!(f, "nearest ±{days} d"),
            TimeRule::Composite { method, per } => {
                let m = match method {
                    CompositeMethod::Median => "median",
                    CompositeMethod::Mean => "mean",
                };
                let p = match per {
                    CompositeSpan::Window => "window",
                    CompositeSpan::Step => "step",
                };
                write!(f, "{m} composite per {p}")
            }
            TimeRule::Static => write!(f, "static"),
        }
    }
}

impl TryFrom<toml::Value> for TimeRule {
    type Error = Error;

    fn try_from(v: toml::Value) -> Result<TimeRule> {
        let usage = "use \"daily\", \"static\", { nearest = N } or \
                     { composite = \"median\" | \"mean\", per = \"window\" | \"step\" }";
        match v {
            toml::Value::String(s) if s == "daily" => Ok(TimeRule::Daily),
            toml::Value::String(s) if s == "static" => Ok(TimeRule::Static),
            toml::Value::Table(t) => {
                let keys: Vec<&str> = t.keys().map(String::as_str).collect();
                if let Some(k) = keys
                    .iter()
                    .find(|k| !["nearest", "composite", "per"].contains(k))
                {
                    return Err(Error::invalid(
                        "time",
                        format!("unknown key {k:?}: {usage}"),
                    ));
                }
                match (t.get("nearest"), t.get("composite"), t.get("per")) {
                    (Some(n), None, None) => {
                        let days = n
                            .as_integer()
                            .and_then(|n| u32::try_from(n).ok())
                            .filter(|&n| n <= 3660)
                            .ok_or_else(|| {
                                Error::invalid(
                                    "time.nearest",
                                    format!("{n} (whole days, 0..=3660)"),
                                )
                            })?;
                        Ok(TimeRule::Nearest { days })
                    }
                    (None, Some(m), per) => {
                        let method = match m.as_str() {
                            Some("median") => CompositeMethod::Median,
                            Some("mean") => CompositeMethod::Mean,
                            _ => {
                                return Err(Error::invalid(
                                    "time.composite",
                                    format!("{m} (use \"median\" or \"mean\")"),
                                ));
                            }
                        };
                        let per = match per.map(|p| p.as_str()) {
                            None | Some(Some("window")) => CompositeSpan::Window,
                            Some(Some("step")) => CompositeSpan::Step,
                            Some(p) => {
                                return Err(Error::invalid(
                                    "time.per",
                                    format!("{p:?} (use \"window\" or \"step\")"),
                                ));
                            }
                        };
                        Ok(TimeRule::Composite { method, per })
                    }
                    _ => Err(Error::invalid("time", format!("{t}: {usage}"))),
                }
            }
            other => Err(Error::invalid("time", format!("{other}: {usage}"))),
        }
    }
}

impl From<TimeRule> for toml::Value {
    fn from(r: TimeRule) -> toml::Value {
        let mut t = toml::Table::new();
        match r {
            TimeRule::Daily => return toml::Value::String("daily".into()),
            TimeRule::Static => return toml::Value::String("static".into()),
            TimeRule::Nearest { days } => {
                t.insert("nearest".into(), toml::Value::Integer(i64::from(days)));
            }
            TimeRule::Composite { method, per } => {
                let m = match method {
                    CompositeMethod::Median => "median",
                    CompositeMethod::Mean => "mean",
                };
                let p = match per {
                    CompositeSpan::Window => "window",
                    CompositeSpan::Step => "step",
                };
                t.insert("composite".into(), toml::Value::String(m.into()));
                t.insert("per".into(), toml::Value::String(p.into()));
            }
        }
        toml::Value::Table(t)
    }
}

/// The first day a `static` input's scenes may have.
const STATIC_START: (i32, u32, u32) = (1900, 1, 1);
/// The last day a `static` input's scenes may have.
const STATIC_END: (i32, u32, u32) = (2199, 12, 31);

fn ymd((y, m, d): (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// `inputs[i] "name"`: how errors name an input.
pub(crate) fn label(i: usize, name: &str) -> String {
    format!("inputs[{i}] {name:?}")
}

/// The request an input is planned with for a sample whose first input
/// asks `primary`: the input's template at the sample's place, on its grid,
/// with the days its time rule reads (see [`plan_input`]).
///
/// # Errors
/// [`Error::Invalid`] from the template (a malformed request).
pub(crate) fn source_request(
    stack: &StackTemplate,
    rule: TimeRule,
    primary: &StackRequest,
) -> Result<StackRequest> {
    let mut req = stack.at(primary.centroid, primary.start, primary.end)?;
    req.resolution = primary.resolution;
    req.tile_size = primary.tile_size;
    req.epsg = primary.epsg;
    req.cadence = primary.cadence;
    let days = |a: NaiveDate, b: NaiveDate| (b - a).num_days().max(0) as u32 + 1;
    match rule {
        TimeRule::Daily => {}
        TimeRule::Composite { method, per } => {
            req.fuse = match method {
                CompositeMethod::Median => Fusion::Median,
                CompositeMethod::Mean => Fusion::Mean,
            };
            if per == CompositeSpan::Window {
                let end = primary
                    .bins()
                    .last()
                    .map(|b| b.1 - chrono::Days::new(1))
                    .unwrap_or(primary.end);
                req.end = end;
                req.cadence = Cadence::Days(days(req.start, end));
            }
        }
        TimeRule::Nearest { days: n } => {
            let n = chrono::Days::new(u64::from(n));
            req.start = primary.start.checked_sub_days(n).unwrap_or(primary.start);
            req.end = primary.end.checked_add_days(n).unwrap_or(primary.end);
            req.cadence = Cadence::Daily;
        }
        TimeRule::Static => {
            req.start = ymd(STATIC_START);
            req.end = ymd(STATIC_END);
            req.cadence = Cadence::Days(days(req.start, req.end));
        }
    }
    req.validate()?;
    Ok(req)
}

/// An input's plan for one sample: the [`StackPlan`] that reads its scenes
/// and, for each of the input's output steps, the plan step that fills it.
#[derive(Debug, Clone)]
pub struct InputPlan {
    /// What is read, warped and fused (each scene once).
    pub plan: StackPlan,
    /// Per output step: the plan's step that fills it, `None`: no data.
    pub steps: Vec<Option<usize>>,
    /// The first day of each output step (the sample's days; its first day
    /// for a one-step input).
    pub days: Vec<NaiveDate>,
    /// The rule that made it.
    pub rule: TimeRule,
}

/// Plans an input over `scenes` for a sample whose first input asks
/// `primary`; `req` is [`source_request`]'s.
///
/// # Errors
/// [`StackPlan::new`]'s (an item lacking a band, a stack over `max_bytes`).
pub(crate) fn plan_input(
    scenes: &[Scene],
    req: &StackRequest,
    rule: TimeRule,
    primary: &StackRequest,
) -> Result<InputPlan> {
    let steps_of_primary = primary.bins();
    let first_day = vec![primary.start];
    match rule {
        TimeRule::Daily
        | TimeRule::Composite {
            per: CompositeSpan::Step,
            ..
        } => {
            let plan = StackPlan::new(scenes, req)?;
            let n = plan.bins.len();
            Ok(InputPlan {
                plan,
                steps: (0..n).map(Some).collect(),
                days: steps_of_primary.iter().map(|b| b.0).collect(),
                rule,
            })
        }
        TimeRule::Static
        | TimeRule::Composite {
            per: CompositeSpan::Window,
            ..
        } => Ok(InputPlan {
            plan: StackPlan::new(scenes, req)?,
            steps: vec![Some(0)],
            days: first_day,
            rule,
        }),
        TimeRule::Nearest { days: n } => {
            // Daily steps over the widened window: the candidate days.
            let all = StackPlan::new(scenes, req)?;
            let candidates: Vec<NaiveDate> = all
                .bins
                .iter()
                .filter(|(_, idx)| !idx.is_empty())
                .map(|((a, _), _)| *a)
                .collect();
            let chosen: Vec<Option<NaiveDate>> = steps_of_primary
                .iter()
                .map(|&step| nearest_day(&candidates, step, n))
                .collect();
            let mut used: Vec<NaiveDate> = chosen.iter().flatten().copied().collect();
            used.sort_unstable();
            used.dedup();
            // Only the chosen days' scenes are read: plan them alone, and
            // keep the days that have scenes (each scene in one step).
            let keep: Vec<Scene> = all
                .scenes
                .iter()
                .filter(|s| used.binary_search(&s.datetime.date_naive()).is_ok())
                .cloned()
                .collect();
            let mut plan = StackPlan::new(&keep, req)?;
            plan.bins.retain(|(_, idx)| !idx.is_empty());
            let steps = chosen
                .iter()
                .map(|d| d.and_then(|d| plan.bins.iter().position(|((a, _), _)| *a == d)))
                .collect();
            Ok(InputPlan {
                plan,
                steps,
                days: steps_of_primary.iter().map(|b| b.0).collect(),
                rule,
            })
        }
    }
}

/// The acquisition day of `days` (sorted) nearest the step `[a, b)` within
/// ±`n` days: distance 0 inside the step, else to its nearer end; ties to
/// the earlier day.
///
/// ```text
/// step 2019-08-05, n = 2, days [08-03, 08-07] → 08-03 (a tie: the earlier)
/// step 2019-08-05, n = 1, days [08-03, 08-07] → none (a gap)
/// ```
pub(crate) fn nearest_day(
    days: &[NaiveDate],
    (a, b): (NaiveDate, NaiveDate),
    n: u32,
) -> Option<NaiveDate> {
    let last = b.pred_opt().unwrap_or(a);
    let distance = |d: NaiveDate| -> i64 {
        if d < a {
            (a - d).num_days()
        } else if d > last {
            (d - last).num_days()
        } else {
            0
        }
    };
    days.iter()
        .map(|&d| (distance(d), d))
        .filter(|&(k, _)| k <= i64::from(n))
        // the smallest distance, then the earliest day
        .min()
        .map(|(_, d)| d)
}

/// What every sample's input looks like (beside the first input's
/// [`SampleLayout`](crate::stack::SampleLayout)).
///
/// # Examples
/// ```
/// use tilestack::dataset::{InputLayout, TimeRule};
/// let dem = InputLayout { name: "dem".into(), rule: TimeRule::Static, shape: [1, 1, 64, 64], bands: vec!["elevation".into()] };
/// assert_eq!(dem.batch_shape(8), vec![8, 1, 64, 64]); // static: [B, C, H, W]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLayout {
    /// The input's name.
    pub name: String,
    /// Its time rule.
    pub rule: TimeRule,
    /// `[T, C, H, W]`: the sample's `T`, or 1 for a static input.
    pub shape: [usize; 4],
    /// Band names, in `C` order.
    pub bands: Vec<String>,
}

impl InputLayout {
    /// The shape of its tensor in a batch of `b` rows: `[B, T, C, H, W]`, or
    /// `[B, C, H, W]` for a static input.
    pub fn batch_shape(&self, b: usize) -> Vec<usize> {
        let [t, c, h, w] = self.shape;
        if self.rule.is_static() {
            vec![b, c, h, w]
        } else {
            vec![b, t, c, h, w]
        }
    }

    /// Bytes of `rows` rows of it in a batch on `h × w` pixels: `f32`
    /// values, validity per step and pixel, has-data and three metadata
    /// per step.
    pub fn memory_bytes(&self, rows: usize, h: usize, w: usize) -> u64 {
        let [t, c, _, _] = self.shape;
        4 * (rows * t * (c + 1) * h * w + 4 * rows * t) as u64
    }

    /// Bytes of one sample of it as a shard stores it: `f32` data, three
    /// `f32` of metadata per step and one byte per step (has data); `None`
    /// when a (hostile) shape overflows.
    pub fn region_bytes(&self) -> Option<u64> {
        let [t, c, h, w] = self.shape;
        let data = t
            .checked_mul(c)?
            .checked_mul(h)?
            .checked_mul(w)?
            .checked_mul(4)?;
        u64::try_from(data.checked_add(t.checked_mul(13)?)?).ok()
    }
}

/// Per-scene metadata a batch reports per step: `sat:orbit_state` and
/// `platform`, when the item declares them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SceneMeta {
    /// `sat:orbit_state`: `ascending` or `descending` (Sentinel-1).
    pub orbit_state: Option<String>,
    /// `platform`, e.g. `sentinel-1a`.
    pub platform: Option<String>,
}

impl SceneMeta {
    /// An item's orbit state and platform.
    pub fn of(item: &stac::Item) -> SceneMeta {
        let get = |k: &str| {
            item.properties
                .additional_fields
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        SceneMeta {
            orbit_state: get("sat:orbit_state"),
            platform: get("platform"),
        }
    }
}

/// One input of a loaded sample, on the sample's grid and days.
#[derive(Debug, Clone, PartialEq)]
pub struct InputStack {
    /// The input's name.
    pub name: String,
    /// Its time rule.
    pub rule: TimeRule,
    /// `[T, C, H, W]` (`T` = 1 for a [static](TimeRule::is_static) input),
    /// NaN = no data; `days` are the sample's.
    pub stack: TileStack,
    /// Per step: true when a scene filled it (false: all NaN, invalid).
    pub has_data: Vec<bool>,
    /// Per step, the distinct `sat:orbit_state` values of its scenes (comma-separated; empty when none declare it).
    pub orbit_state: Vec<String>,
    /// Per step, the distinct `platform` values of its scenes (comma-separated).
    pub platform: Vec<String>,
}

/// Puts a loaded input plan's stack on its output steps (a copy only when
/// the steps are not the plan's own), with each step's scene metadata from
/// `meta` (by scene id).
pub(crate) fn assemble_input(
    name: &str,
    plan: &InputPlan,
    loaded: TileStack,
    meta: &HashMap<String, SceneMeta>,
) -> InputStack {
    let identity = plan.steps.len() == loaded.days.len()
        && plan.steps.iter().enumerate().all(|(i, s)| *s == Some(i));
    let mut stack = if identity {
        loaded
    } else {
        let (_, c, h, w) = loaded.data.dim();
        let t = plan.steps.len();
        let mut data = ndarray::Array4::from_elem((t, c, h, w), f32::NAN);
        let mut out = TileStack {
            data: ndarray::Array4::zeros((0, c, h, w)),
            bands: loaded.bands.clone(),
            days: Vec::with_capacity(t),
            eo_cloud_cover: Vec::with_capacity(t),
            pct_nans: Vec::with_capacity(t),
            tile_cloud_fraction: Vec::with_capacity(t),
            items: Vec::with_capacity(t),
            grid: loaded.grid.clone(),
            read_errors: loaded.read_errors.clone(),
        };
        for (ti, s) in plan.steps.iter().enumerate() {
            match s.filter(|&k| k < loaded.days.len()) {
                Some(k) => {
                    data.index_axis_mut(ndarray::Axis(0), ti)
                        .assign(&loaded.data.index_axis(ndarray::Axis(0), k));
                    out.eo_cloud_cover.push(loaded.eo_cloud_cover[k]);
                    out.pct_nans.push(loaded.pct_nans[k]);
                    out.tile_cloud_fraction.push(loaded.tile_cloud_fraction[k]);
                    out.items.push(loaded.items[k].clone());
                }
                None => {
                    out.eo_cloud_cover.push(f32::NAN);
                    out.pct_nans.push(100.0);
                    out.tile_cloud_fraction.push(f32::NAN);
                    out.items.push(Vec::new());
                }
            }
        }
        out.data = data;
        out
    };
    stack.days = plan.days.clone();
    let has_data = stack.items.iter().map(|ids| !ids.is_empty()).collect();
    let join = |ids: &Vec<String>, f: &dyn Fn(&SceneMeta) -> Option<String>| {
        let mut v: Vec<String> = ids
            .iter()
            .filter_map(|id| meta.get(id).and_then(f))
            .collect();
        v.sort_unstable();
        v.dedup();
        v.join(",")
    };
    let orbit_state = stack
        .items
        .iter()
        .map(|ids| join(ids, &|m| m.orbit_state.clone()))
        .collect();
    let platform = stack
        .items
        .iter()
        .map(|ids| join(ids, &|m| m.platform.clone()))
        .collect();
    InputStack {
        name: name.to_string(),
        rule: plan.rule,
        stack,
        has_data,
        orbit_state,
        platform,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 8, day).unwrap_or_default()
    }

    fn step(day: u32) -> (NaiveDate, NaiveDate) {
        (d(day), d(day + 1))
    }

    #[test]
    fn nearest_takes_the_nearest_day_ties_to_the_earlier_and_gaps_to_none() {
        let days = [d(3), d(7), d(12)];
        assert_eq!(nearest_day(&days, step(3), 0), Some(d(3)));
        assert_eq!(nearest_day(&days, step(4), 2), Some(d(3)));
        assert_eq!(nearest_day(&days, step(6), 2), Some(d(7)));
        // 08-05: two days either side: the earlier
        assert_eq!(nearest_day(&days, step(5), 2), Some(d(3)));
        // a gap: nothing within ±1
        assert_eq!(nearest_day(&days, step(5), 1), None);
        assert_eq!(nearest_day(&days, step(20), 5), None);
        // a multi-day step: distance to its nearer end
        assert_eq!(nearest_day(&days, (d(8), d(11)), 1), Some(d(7)));
        assert_eq!(nearest_day(&days, (d(10), d(11)), 2), Some(d(12)));
        // 08-09…08-10: 08-07 and 08-12 two days off either end, a tie: the earlier
        assert_eq!(nearest_day(&days, (d(9), d(11)), 2), Some(d(7)));
    }

    #[test]
    fn time_rules_parse_print_and_refuse_naming_the_key() {
        let parse = |s: &str| -> Result<TimeRule> {
            let v: toml::Table = toml::from_str(&format!("time = {s}"))
                .map_err(|e| Error::invalid_because("test", "toml", e))?;
            TimeRule::try_from(
                v.get("time")
                    .cloned()
                    .unwrap_or(toml::Value::Boolean(false)),
            )
        };
        assert_eq!(parse("\"daily\"").ok(), Some(TimeRule::Daily));
        assert_eq!(
            parse("{ nearest = 2 }").ok(),
            Some(TimeRule::Nearest { days: 2 })
        );
        assert_eq!(
            parse("{ composite = \"median\" }").ok(),
            Some(TimeRule::Composite {
                method: CompositeMethod::Median,
                per: CompositeSpan::Window
            })
        );
        assert_eq!(
            parse("{ composite = \"mean\", per = \"step\" }").ok(),
            Some(TimeRule::Composite {
                method: CompositeMethod::Mean,
                per: CompositeSpan::Step
            })
        );
        for bad in [
            "\"weekly\"",
            "{ nearest = -1 }",
            "{ composite = \"max\" }",
            "{ near = 2 }",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for r in [
            TimeRule::Daily,
            TimeRule::Static,
            TimeRule::Nearest { days: 4 },
            TimeRule::Composite {
                method: CompositeMethod::Mean,
                per: CompositeSpan::Step,
            },
        ] {
            assert_eq!(TimeRule::try_from(toml::Value::from(r)).ok(), Some(r));
        }
    }
}
