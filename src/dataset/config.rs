//! Dataset configs (`datasets/*.toml`): one file describes a training set —
//! where the scenes come from, what stack each sample is, where the samples
//! are, what is dropped before any pixel is read, the label layers, the
//! normalization, the augmentations and how the loader batches. The same
//! file drives [`TileDataset::open`](crate::dataset::TileDataset::open), the burn
//! loader and the trainer.
//!
//! ```toml
//! name = "oakland-ships"
//! seed = 7
//!
//! [catalog]
//! demo = "oakland"            # or: stac = "https://…/api/stac/v1" / snapshot = "items.json"
//! collection = "sentinel-2-l2a"
//!
//! [stack]                     # any StackRequest field but centroid/start/end
//! bands = ["B04", "B03", "B02", "B08"]
//! tile_size = 128
//!
//! [time]
//! range = "2019-08-01/2019-08-30"
//!
//! [sampler]
//! kind = "random"
//! bbox = [-122.34, 37.79, -122.30, 37.82]
//! count = 20
//!
//! [[labels]]
//! name = "ships"
//! file = "../oakland-port/ships.geojson"   # features dated by `datetime`
//!
//! [[labels]]                  # a categorical raster: class indexes (see LayerConfig)
//! name = "cover"
//! raster = { catalog = { stac = "https://…/api/stac/v1", collection = "esa-worldcover" }, band = "map" }
//! classes = [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100]
//! ```
//!
//! Relative paths are relative to the config file. Unknown keys are errors
//! (a typo must not silently fall back to a default); every error names the
//! file, the key and the problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::inputs::{TimeRule, label, source_request};
use crate::dataset::sampler::{SamplerConfig, TimeWindows};
use crate::error::{Error, Result};
use crate::geo::rasterize::Mask;
use crate::stack::request::{StackRequest, StackTemplate};

/// A training set, as one TOML file describes it (see the module docs).
///
/// # Examples
/// ```
/// use tilestack::DatasetConfig;
/// let cfg = DatasetConfig::from_toml_str(r#"
///     [catalog]
///     stac = "http://127.0.0.1:8090"
///     collection = "sentinel-2-l2a"
///     [stack]
///     bands = ["B04"]
///     [time]
///     range = "2019-08-01/2019-08-10"
///     [sampler]
///     kind = "grid"
///     bbox = [-122.34, 37.79, -122.30, 37.82]
///     stride_m = 1280.0
/// "#, "inline.toml".as_ref())?;
/// assert_eq!(cfg.loader.batch_size, 8);
/// let bad = DatasetConfig::from_toml_str("[catalog]\nstak = 1", "typo.toml".as_ref()).unwrap_err();
/// assert!(bad.to_string().contains("typo.toml"));
/// // the TOML parser's error is the source: `chain` prints it after the message
/// assert!(std::error::Error::source(&bad).is_some() && bad.chain().contains("stak"));
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// A name for logs and shard indexes (default: the file's stem).
    #[serde(default)]
    pub name: String,
    /// Seed of every random choice: random sampler, epoch order, augmentation (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Where scenes come from.
    pub catalog: CatalogConfig,
    /// The stack each sample is: a [`StackRequest`] without centroid and
    /// days, parsed once (defaults applied, unknown keys refused).
    pub stack: StackTemplate,
    /// The days: one fixed window or sliding windows.
    pub time: TimeWindows,
    /// Where the samples are.
    pub sampler: SamplerConfig,
    /// Input masks: GeoJSON rasterized per sample as `[H, W]` inputs (dated
    /// features per step are not supported here; use a label layer).
    #[serde(default)]
    pub masks: Vec<LayerConfig>,
    /// Label layers: GeoJSON rasterized as `[T, H, W]` 0/1 targets (a
    /// feature with a `datetime` property labels only that day's step), or
    /// categorical rasters as class indexes (see [`LayerConfig`]).
    #[serde(default)]
    pub labels: Vec<LayerConfig>,
    /// What is dropped before any pixel is read.
    #[serde(default)]
    pub filters: FilterConfig,
    /// Per-band normalization of the inputs.
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Seeded augmentations.
    #[serde(default)]
    pub augment: AugmentConfig,
    /// How the loader batches, prefetches and handles errors.
    #[serde(default)]
    pub loader: LoaderConfig,
    /// The inputs after the first (`[[inputs]]`, see
    /// [`TimeRule`](crate::dataset::TimeRule)): each planned on the
    /// sample's grid and put on its days by its time rule. The first input
    /// is `[catalog]` + `[stack]` (or the first `[[inputs]]` entry, moved
    /// there when the file is read). Default none: one input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputConfig>,
    /// The first input's name: the first `[[inputs]]` entry's, else
    /// `[catalog] collection`, else `main` (not a TOML key).
    #[serde(skip)]
    pub first_input: String,
    /// The file this config was read from (not a TOML key).
    #[serde(skip)]
    pub path: PathBuf,
}

/// One `[[inputs]]` entry: a name, a source (a catalog, or one raster
/// `href`), the stack template of its bands and its [`TimeRule`]. The grid
/// fields of its `stack` (`resolution`, `tile_size`, `epsg`) and `cadence`
/// are the first input's: every input lands on the sample's grid and days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// The input's name (in batches, shards and errors): unique.
    pub name: String,
    /// Where its scenes come from (as `[catalog]`); or `href`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogConfig>,
    /// One raster (a COG path relative to the config, or a URL) instead of a
    /// catalog: its grid and CRS from its header; `time = "static"`, one band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Its bands, fusion, cloud handling, categorical bands, resampling: any
    /// `[stack]` field.
    pub stack: StackTemplate,
    /// Its time rule (default `daily`).
    #[serde(default)]
    pub time: TimeRule,
    /// `(x − mean) / std` per band of this input, and its no-data fill
    /// (default: raw values, no data as `[normalize] fill`). Read-time, as
    /// `[normalize]`: not in the dataset's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<NormalizeConfig>,
}

/// `[catalog]`: exactly one of `stac`, `snapshot`, `demo`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// A STAC API landing page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stac: Option<String>,
    /// A snapshot file of items (`tilestack search --save`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
    /// The embedded demo world: `"oakland"`, or a recipe file. The loader
    /// generates it once (cached) and serves it on 127.0.0.1 itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demo: Option<String>,
    /// The collection searched (required with `stac`; the world's own with `demo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Sign asset hrefs at read time: `"planetary-computer"` (SAS tokens
    /// from `$PC_SDK_SAS_URL`, key from `$PC_SDK_SUBSCRIPTION_KEY`, see
    /// [`PcSignerConfig`](crate::fetch::sign::PcSignerConfig)) or `"none"` (the default).
    /// Tokens live only in memory: never in shards, indexes or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<String>,
}

/// Where a [`CatalogConfig`] points, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogSource {
    /// A STAC API and collection.
    Stac {
        /// Landing page URL.
        url: String,
        /// Collection id.
        collection: String,
    },
    /// A snapshot file (absolute or relative to the working directory).
    Snapshot(PathBuf),
    /// A demo world recipe: `None` = the built-in Oakland port.
    Demo(Option<PathBuf>),
}

/// A layer: an input mask or a label layer — GeoJSON (`file`), or, for a
/// label, a categorical raster (`raster`).
///
/// A GeoJSON layer is 1 inside a feature and 0 outside. A raster label
/// holds class indexes: each pixel's product code (nearest neighbour,
/// never interpolated) through `classes` (code → its position) or `remap`
/// (code → the value given); a code neither lists, and no data, is
/// `ignore_index`. With neither, the code itself (an integer 0–255).
///
/// ```toml
/// [[labels]]                       # ESA WorldCover as four classes
/// name = "cover"
/// raster = { catalog = { stac = "http://127.0.0.1:8080", collection = "esa-worldcover" }, band = "map" }
/// classes = [80, 50, 10, 30]       # water 0, built-up 1, trees 2, grass 3; other codes 255
///
/// [[labels]]                       # Dynamic World's label band, one map per step
/// name = "dw"
/// raster = { catalog = { stac = "http://127.0.0.1:8080", collection = "dynamic-world" }, band = "label", time = { nearest = 2 } }
///
/// [[labels]]                       # a user's own label GeoTIFF: water against the rest
/// name = "water"
/// raster = { href = "water.tif", band = "label" }
/// remap = { 1 = 1, 2 = 0, 3 = 0 }
/// ignore_index = 0
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// The layer's name (in batches and shard indexes).
    pub name: String,
    /// The GeoJSON file (`demo:ships`, `demo:terminals`: the demo world's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// A categorical raster instead (labels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raster: Option<RasterLayer>,
    /// A raster's product codes in class order: code → its position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<u32>>,
    /// A raster's product codes → class indexes (keys are the codes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap: Option<BTreeMap<String, u8>>,
    /// The class of no data and of codes `classes`/`remap` leave out (default 255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_index: Option<u8>,
}

/// Where a raster label layer is read from: one band of a catalog's items
/// (ESA WorldCover's `map`, Dynamic World's `label`, io-lulc's `data`) or
/// of one raster, put on each sample's grid by nearest neighbour and on
/// its days by `time` (default `static`: one map labels every step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RasterLayer {
    /// A catalog whose items carry the band (as `[catalog]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogConfig>,
    /// Or one raster: a COG path relative to the config, or a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// The band (asset key) holding the codes.
    pub band: String,
    /// How its maps land on the sample's days (`static`, `daily`, `nearest = N`).
    #[serde(default = "static_rule")]
    pub time: TimeRule,
}

fn static_rule() -> TimeRule {
    TimeRule::Static
}

impl LayerConfig {
    /// A GeoJSON layer.
    ///
    /// ```
    /// let l = tilestack::dataset::LayerConfig::geojson("ships", "ships.geojson");
    /// assert!(l.raster.is_none());
    /// ```
    pub fn geojson(name: impl Into<String>, file: impl Into<PathBuf>) -> LayerConfig {
        LayerConfig {
            name: name.into(),
            file: Some(file.into()),
            raster: None,
            classes: None,
            remap: None,
            ignore_index: None,
        }
    }

    /// The input a raster layer is read as: its one band, categorical,
    /// nearest neighbour, zeros kept (a class code 0 is a class).
    pub(crate) fn raster_input(&self) -> Option<Result<InputConfig>> {
        let r = self.raster.as_ref()?;
        let mut table = toml::Table::new();
        let band = toml::Value::Array(vec![toml::Value::String(r.band.clone())]);
        table.insert("bands".into(), band.clone());
        table.insert("categorical".into(), band);
        table.insert("resampling".into(), "nearest".into());
        table.insert("zero_is_nodata".into(), false.into());
        Some(StackTemplate::from_table(table).map(|stack| InputConfig {
            name: self.name.clone(),
            catalog: r.catalog.clone(),
            href: r.href.clone(),
            stack,
            time: r.time,
            normalize: None,
        }))
    }
}

/// `[filters]`: decided from the catalog alone, before any pixel is read.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Scenes with `eo:cloud_cover` above this percent are not used (sent
    /// as a STAC `query` and applied again to the items). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cloud_cover: Option<f64>,
    /// Samples with fewer steps that have a scene are dropped. Default 1.
    #[serde(default = "one")]
    pub min_days_with_data: usize,
    /// A step counts as having data only when its scenes' footprints cover
    /// at least this fraction (0–1) of the tile. Default 0 (any overlap).
    #[serde(default)]
    pub min_footprint_cover: f64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            max_cloud_cover: None,
            min_days_with_data: 1,
            min_footprint_cover: 0.0,
        }
    }
}

fn one() -> usize {
    1
}

/// `[normalize]`: `(x − mean) / std` per input band, in band order; absent
/// = raw values. NaN (no data) is replaced afterwards by `fill`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Per-band means (empty: no normalization).
    #[serde(default)]
    pub mean: Vec<f32>,
    /// Per-band standard deviations (same length as `mean`).
    #[serde(default)]
    pub std: Vec<f32>,
    /// The value no-data pixels take in the inputs (after normalization).
    /// Default 0. `nan` keeps NaN (most models then produce NaN losses).
    #[serde(default)]
    pub fill: f32,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            mean: Vec::new(),
            std: Vec::new(),
            fill: 0.0,
        }
    }
}

/// `[augment]`: seeded from (seed, epoch, sample), applied identically to
/// inputs, validity, input masks and labels.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// Random horizontal and vertical flips.
    #[serde(default)]
    pub flips: bool,
    /// Random rotations by 0, 90, 180 or 270 degrees.
    #[serde(default)]
    pub rot90: bool,
    /// A random square crop of this side, pixels (must not exceed the tile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<usize>,
}

impl AugmentConfig {
    /// True when any augmentation is on.
    pub fn any(&self) -> bool {
        self.flips || self.rot90 || self.crop.is_some()
    }
}

/// What happens to a sample whose stack fails to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorPolicy {
    /// The batch is an error naming the sample and the cause (URL, item):
    /// the training loop decides. The next batch is the next one.
    #[default]
    Fail,
    /// The sample is replaced by the next sample of the epoch's order that
    /// loads (deterministic), flagged [`SampleStatus::Replaced`](crate::loader::SampleStatus::Replaced) and counted.
    Replace,
    /// The sample stays, all NaN (invalid everywhere), flagged
    /// [`SampleStatus::Failed`](crate::loader::SampleStatus::Failed) with the error.
    Nan,
}

/// How the last, incomplete batch of an epoch (or of a device's slice) is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LastBatch {
    /// A smaller last batch. Slices made by `slice` are padded to equal
    /// batch counts, as with `Pad`.
    #[default]
    Keep,
    /// Filled to full size with samples from the start of the order, flagged
    /// [`SampleStatus::Padded`](crate::loader::SampleStatus::Padded).
    Pad,
    /// Dropped (and slices cut to the smallest slice's count of whole batches).
    Drop,
}

/// `[loader]`: batching, order, prefetch and errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// Samples per batch (default 8).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// A new seeded order every epoch (default true); false = the samples' order.
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// The last, incomplete batch (default keep).
    #[serde(default)]
    pub last_batch: LastBatch,
    /// Batches loaded ahead of the one the training loop is on (default 4).
    #[serde(default = "default_ahead")]
    pub prefetch_batches: usize,
    /// Bytes of batches the loader may hold at once: loading, ready and
    /// being handed over (default 2 GiB). Must hold at least one batch.
    #[serde(default = "default_budget")]
    pub budget_bytes: u64,
    /// Stack loads running at once (default: twice the cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loads_at_once: Option<usize>,
    /// Worker threads of the loader's runtime (default: the cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Bytes of decoded COG tiles cached (default 1 GiB).
    #[serde(default = "default_cache")]
    pub cache_bytes: u64,
    /// Failing samples (default fail).
    #[serde(default)]
    pub errors: ErrorPolicy,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: default_batch(),
            shuffle: true,
            last_batch: LastBatch::Keep,
            prefetch_batches: default_ahead(),
            budget_bytes: default_budget(),
            loads_at_once: None,
            threads: None,
            cache_bytes: default_cache(),
            errors: ErrorPolicy::Fail,
        }
    }
}

fn default_batch() -> usize {
    8
}
fn default_ahead() -> usize {
    4
}
fn default_budget() -> u64 {
    2 << 30
}
fn default_cache() -> u64 {
    1 << 30
}
fn yes() -> bool {
    true
}

impl DatasetConfig {
    /// Reads and checks a config file.
    ///
    /// # Errors
    /// [`Error::Io`] when unreadable; [`Error::Config`] naming the file, the
    /// key and the problem.
    pub fn from_file(path: &Path) -> Result<DatasetConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        DatasetConfig::from_toml_str(&text, path)
    }

    /// Parses and checks TOML text; `path` names it in errors and anchors
    /// relative paths.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path`, the key and the problem, with the
    /// TOML parser's error (or the key's own [`Error`]) as its source.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<DatasetConfig> {
        let not_one = |e| Error::config_because(path, "not a dataset config", e);
        let table: toml::Table = toml::from_str(text).map_err(not_one)?;
        let (mut cfg, first): (DatasetConfig, Option<String>) = if !table.contains_key("catalog")
            && !table.contains_key("stack")
            && table.contains_key("inputs")
        {
            let mut table = table;
            let name = first_input_to_top(&mut table).map_err(|m| Error::config(path, m))?;
            let cfg = toml::Value::Table(table).try_into().map_err(not_one)?;
            (cfg, Some(name))
        } else {
            (toml::from_str(text).map_err(not_one)?, None)
        };
        cfg.first_input = first
            .or_else(|| cfg.catalog.collection.clone())
            .unwrap_or_else(|| "main".into());
        cfg.path = path.to_path_buf();
        if cfg.name.is_empty() {
            cfg.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "dataset".into());
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// An [`Error::Config`] naming this file and `key`.
    pub(crate) fn error(&self, key: &str, message: impl std::fmt::Display) -> Error {
        Error::config(&self.path, format!("{key}: {message}"))
    }

    /// An [`Error::Config`] naming this file and `key`, caused by `cause`
    /// (its source: a bad value's [`Error::Invalid`], a file's own error).
    pub(crate) fn error_because(&self, key: &str, cause: Error) -> Error {
        Error::config_because(&self.path, key, cause)
    }

    /// A path of the config, resolved against the config's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// The signer the catalogs' `sign` keys ask for, if any: `catalog.sign`,
    /// and each `[[inputs]]` and raster label's `catalog.sign`. A dataset
    /// reads through one client, so one signer serves every input; it signs
    /// only the hrefs it recognizes (Planetary Computer's storage), so an
    /// input from elsewhere beside a Planetary Computer one is read as it is.
    ///
    /// ```
    /// let cfg = tilestack::DatasetConfig::from_toml_str(
    ///     "[catalog]\nsnapshot = \"items.json\"\n[stack]\nbands = [\"B04\"]\n\
    ///      [time]\nrange = \"2019-08-01/2019-08-05\"\n[sampler]\nkind = \"random\"\n\
    ///      bbox = [-122.35, 37.79, -122.31, 37.83]\ncount = 4\n\
    ///      [[inputs]]\nname = \"s1\"\ncatalog = { snapshot = \"s1.json\", sign = \"planetary-computer\" }\n\
    ///      stack = { bands = [\"vv\"] }\n", "a.toml".as_ref())?;
    /// assert!(cfg.signer()?.is_some(), "the S1 input asks for signing");
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] naming the key (`catalog.sign`, `inputs[1] "s1".catalog.sign`)
    /// for a value other than `"planetary-computer"` or `"none"`.
    pub fn signer(&self) -> Result<Option<std::sync::Arc<dyn crate::fetch::sign::Signer>>> {
        let inputs = self.inputs.iter().enumerate().filter_map(|(k, i)| {
            i.catalog
                .as_ref()
                .map(|c| (format!("{}.catalog.sign", label(k + 1, &i.name)), c))
        });
        let labels = self.labels.iter().filter_map(|l| {
            let c = l.raster.as_ref()?.catalog.as_ref()?;
            Some((format!("labels {:?}.raster.catalog.sign", l.name), c))
        });
        let mut pc = false;
        for (key, c) in std::iter::once(("catalog.sign".to_string(), &self.catalog))
            .chain(inputs)
            .chain(labels)
        {
            match c.sign.as_deref() {
                None | Some("none") => {}
                Some("planetary-computer") => pc = true,
                Some(other) => {
                    return Err(self.error(
                        &key,
                        format!("{other:?}: use \"planetary-computer\" or \"none\""),
                    ));
                }
            }
        }
        Ok(pc.then(|| {
            std::sync::Arc::new(crate::fetch::sign::PlanetaryComputerSigner::new(
                crate::fetch::sign::PcSignerConfig::default(),
            )) as std::sync::Arc<dyn crate::fetch::sign::Signer>
        }))
    }

    /// The checked catalog source.
    ///
    /// # Errors
    /// [`Error::Config`] unless exactly one of `stac`, `snapshot`, `demo` is
    /// set, or `stac` lacks a `collection`.
    pub fn catalog_source(&self) -> Result<CatalogSource> {
        self.signer()?;
        self.catalog_source_of(&self.catalog, "catalog")
    }

    /// [`DatasetConfig::catalog_source`] of any catalog table (an input's),
    /// errors naming `key`.
    ///
    /// # Errors
    /// As [`DatasetConfig::catalog_source`].
    pub fn catalog_source_of(&self, c: &CatalogConfig, key: &str) -> Result<CatalogSource> {
        match (&c.stac, &c.snapshot, &c.demo) {
            (Some(url), None, None) => {
                let collection = c.collection.clone().ok_or_else(|| {
                    self.error(
                        &format!("{key}.collection"),
                        format!("required with {key}.stac"),
                    )
                })?;
                Ok(CatalogSource::Stac {
                    url: url.clone(),
                    collection,
                })
            }
            (None, Some(p), None) => Ok(CatalogSource::Snapshot(self.resolve(p))),
            (None, None, Some(d)) if d == "oakland" => Ok(CatalogSource::Demo(None)),
            (None, None, Some(d)) => Ok(CatalogSource::Demo(Some(self.resolve(Path::new(d))))),
            _ => Err(self.error(
                key,
                "set exactly one of stac (a STAC API URL), snapshot (an items file), \
                 demo (\"oakland\" or a recipe file)",
            )),
        }
    }

    /// The stack request for one sample: `[stack]` with the centroid and days.
    ///
    /// # Errors
    /// [`Error::Config`] naming the `stack.*` key that is unknown or malformed.
    pub fn request(
        &self,
        centroid: [f64; 2],
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    ) -> Result<StackRequest> {
        self.stack
            .at(centroid, start, end)
            .map_err(|e| self.error_because("stack", e))
    }

    /// The GeoJSON label layers, parsed (raster layers are read per
    /// sample). `demo_world` is the folder of the demo world being served,
    /// which `file = "demo:ships"` (its per-day ship footprints) and
    /// `"demo:terminals"` name.
    ///
    /// # Errors
    /// [`Error::Config`] naming this file, the `labels` entry and the GeoJSON
    /// file's problem.
    pub fn label_layers(&self, demo_world: Option<&Path>) -> Result<Vec<(String, Mask)>> {
        self.layers("labels", &self.labels, demo_world)
    }

    /// The input masks, parsed (see [`DatasetConfig::label_layers`]).
    ///
    /// # Errors
    /// As [`DatasetConfig::label_layers`].
    pub fn mask_layers(&self, demo_world: Option<&Path>) -> Result<Vec<(String, Mask)>> {
        self.layers("masks", &self.masks, demo_world)
    }

    fn layers(
        &self,
        key: &str,
        layers: &[LayerConfig],
        demo_world: Option<&Path>,
    ) -> Result<Vec<(String, Mask)>> {
        layers
            .iter()
            .filter_map(|l| l.file.as_ref().map(|f| (l, f)))
            .map(|(l, f)| {
                let file = f.to_string_lossy();
                let p = match (file.strip_prefix("demo:"), demo_world) {
                    (Some("ships"), Some(w)) => w.join("labels").join("ships.geojson"),
                    (Some("terminals"), Some(w)) => w.join("terminals.geojson"),
                    (Some(other), _) => {
                        return Err(self.error(
                            &format!("{key} {:?} (file)", l.name),
                            format!(
                                "demo:{other}: the demo world's layers are demo:ships and \
                                 demo:terminals, with catalog.demo"
                            ),
                        ));
                    }
                    (None, _) => self.resolve(f),
                };
                Mask::from_file(&p)
                    .map(|m| (l.name.clone(), m))
                    .map_err(|e| self.error_because(&format!("{key} {:?} (file)", l.name), e))
            })
            .collect()
    }

    /// Checks what can be checked without reading other files.
    fn check(&self) -> Result<()> {
        self.catalog_source()?;
        let day = chrono::NaiveDate::default();
        let probe = self.request([0.0, 0.0], day, day)?;
        self.time
            .windows()
            .map_err(|e| self.error_because("time", e))?;
        self.check_normalize("normalize", &self.normalize, probe.bands.len())?;
        if let Some(c) = self.augment.crop
            && (c == 0 || c > probe.tile_size)
        {
            return Err(self.error(
                "augment.crop",
                format!("{c} (1..={} = stack.tile_size)", probe.tile_size),
            ));
        }
        let l = &self.loader;
        if l.batch_size == 0 {
            return Err(self.error("loader.batch_size", "0 (at least 1)"));
        }
        let f = &self.filters;
        if !(0.0..=1.0).contains(&f.min_footprint_cover) {
            return Err(self.error(
                "filters.min_footprint_cover",
                format!("{} (a fraction 0–1)", f.min_footprint_cover),
            ));
        }
        if let Some(c) = f.max_cloud_cover
            && !(0.0..=100.0).contains(&c)
        {
            return Err(self.error("filters.max_cloud_cover", format!("{c} (a percent 0–100)")));
        }
        self.check_inputs(&probe)?;
        self.check_layers(&probe)?;
        let mut names: Vec<&str> = self.labels.iter().map(|l| l.name.as_str()).collect();
        names.extend(self.masks.iter().map(|l| l.name.as_str()));
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(self.error("labels/masks", format!("the name {:?} is used twice", w[0])));
        }
        Ok(())
    }
}

impl DatasetConfig {
    /// Every input's name, the first input's first.
    pub fn input_names(&self) -> Vec<String> {
        std::iter::once(self.first_input.clone())
            .chain(self.inputs.iter().map(|i| i.name.clone()))
            .collect()
    }

    /// An [`Error::Config`] naming this file and input `k` of
    /// [`DatasetConfig::inputs`] (`inputs[k + 1] "name"`), caused by `cause`.
    pub(crate) fn input_error(&self, k: usize, cause: Error) -> Error {
        let name = self.inputs.get(k).map_or("", |i| i.name.as_str());
        self.error_because(&label(k + 1, name), cause)
    }

    /// Each layer: one source (a file; a raster for labels only), class
    /// keys only with a raster, codes that are numbers; a raster's input
    /// checked as an input's is.
    fn check_layers(&self, probe: &StackRequest) -> Result<()> {
        for (key, layers) in [("labels", &self.labels), ("masks", &self.masks)] {
            for l in layers {
                let at = format!("{key} {:?}", l.name);
                let classes = l.classes.is_some() || l.remap.is_some() || l.ignore_index.is_some();
                match (&l.file, &l.raster) {
                    (Some(_), None) if classes => {
                        return Err(self.error(
                            &at,
                            "classes, remap and ignore_index are for raster layers (a GeoJSON layer is 0/1)",
                        ));
                    }
                    (Some(_), None) => continue,
                    (None, Some(_)) if key == "masks" => {
                        return Err(self.error(
                            &at,
                            "an input mask is GeoJSON (file); a raster goes in [[inputs]] (static)",
                        ));
                    }
                    (None, Some(_)) => {}
                    _ => {
                        return Err(self.error(&at, "set exactly one of file (GeoJSON) and raster"));
                    }
                }
                if l.classes.is_some() && l.remap.is_some() {
                    return Err(self.error(&at, "give classes or remap, not both"));
                }
                if let Some(c) = &l.classes {
                    if c.len() > 255 {
                        return Err(self.error(&at, format!("{} classes (at most 255)", c.len())));
                    }
                    let mut sorted = c.clone();
                    sorted.sort_unstable();
                    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                        return Err(self.error(&at, format!("classes: {} is listed twice", w[0])));
                    }
                }
                if let Some(bad) = l
                    .remap
                    .iter()
                    .flatten()
                    .find(|(k, _)| k.parse::<f64>().is_err())
                {
                    return Err(self.error(
                        &at,
                        format!("remap: the key {:?} is not a code (a number)", bad.0),
                    ));
                }
                let Some(input) = l.raster_input() else {
                    continue;
                };
                let input = input.map_err(|e| self.error_because(&at, e))?;
                self.check_source(&at, &input)?;
                if !matches!(
                    input.time,
                    TimeRule::Static | TimeRule::Daily | TimeRule::Nearest { .. }
                ) {
                    return Err(self.error(
                        &at,
                        format!(
                            "time = {}: a label map is static, daily or nearest",
                            input.time
                        ),
                    ));
                }
                source_request(&input.stack, input.time, probe)
                    .map_err(|e| self.error_because(&at, e))?;
            }
        }
        Ok(())
    }

    /// A `normalize` table (`at` names it) for `bands` bands: one mean and
    /// one positive std per band, or none.
    fn check_normalize(&self, at: &str, n: &NormalizeConfig, bands: usize) -> Result<()> {
        if n.mean.len() != n.std.len() || (!n.mean.is_empty() && n.mean.len() != bands) {
            return Err(self.error(
                at,
                format!(
                    "mean has {} values and std {}: give one of each per band ({bands})",
                    n.mean.len(),
                    n.std.len()
                ),
            ));
        }
        if let Some(i) = n.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(self.error(
                &format!("{at}.std"),
                format!("value {i} is {} (must be > 0)", n.std[i]),
            ));
        }
        Ok(())
    }

    /// An input's source: a catalog, or one raster (static, one band).
    fn check_source(&self, at: &str, input: &InputConfig) -> Result<()> {
        match (&input.catalog, &input.href) {
            (Some(c), None) => {
                self.catalog_source_of(c, &format!("{at}.catalog"))?;
            }
            (None, Some(_)) => {
                if input.time != TimeRule::Static {
                    return Err(self.error(
                        at,
                        format!(
                            "time = {}: a single raster (href) has no dates; use time = \"static\"",
                            input.time
                        ),
                    ));
                }
                if input.stack.fields().bands.len() != 1
                    || input.stack.fields().cloud_band.is_some()
                {
                    return Err(self.error(
                        at,
                        "a single raster (href) is one band: give stack.bands one name and no cloud_band",
                    ));
                }
            }
            _ => {
                return Err(self.error(
                    at,
                    "set exactly one of catalog (a [catalog]-like table) and href (one raster)",
                ));
            }
        }
        Ok(())
    }

    /// The inputs after the first: names unique, one source each, a
    /// request that validates on the first input's grid and days.
    fn check_inputs(&self, probe: &StackRequest) -> Result<()> {
        let mut names = vec![self.first_input.as_str()];
        for (k, input) in self.inputs.iter().enumerate() {
            let at = label(k + 1, &input.name);
            if input.name.is_empty() || names.contains(&input.name.as_str()) {
                return Err(self.error(&at, "each input needs a name of its own"));
            }
            names.push(&input.name);
            self.check_source(&at, input)?;
            if let Some(n) = &input.normalize {
                let bands = input.stack.fields().bands.len();
                self.check_normalize(&format!("{at}.normalize"), n, bands)?;
            }
            source_request(&input.stack, input.time, probe).map_err(|e| self.input_error(k, e))?;
        }
        Ok(())
    }
}

/// Moves the first `[[inputs]]` entry of a config written with `[[inputs]]`
/// alone to `[catalog]` + `[stack]`; its name. The first input defines the
/// sample's days: its time rule is `daily`.
fn first_input_to_top(table: &mut toml::Table) -> std::result::Result<String, String> {
    let Some(toml::Value::Array(inputs)) = table.get_mut("inputs") else {
        return Err("inputs: an array of tables ([[inputs]])".into());
    };
    if inputs.is_empty() {
        return Err("inputs: empty (give at least one input, or [catalog] and [stack])".into());
    }
    let first = inputs.remove(0);
    let empty = inputs.is_empty();
    let toml::Value::Table(mut first) = first else {
        return Err("inputs[0]: not a table".into());
    };
    let name = match first.remove("name") {
        Some(toml::Value::String(s)) if !s.is_empty() => s,
        _ => return Err("inputs[0]: a name is required".into()),
    };
    let at = label(0, &name);
    match first.remove("time") {
        None => {}
        Some(toml::Value::String(s)) if s == "daily" => {}
        Some(other) => {
            return Err(format!(
                "{at}: time = {other}: the first input defines the sample's days, its rule is \"daily\""
            ));
        }
    }
    let catalog = first.remove("catalog").ok_or_else(|| {
        format!("{at}: the first input defines the sample's days: it needs a catalog (not a single href)")
    })?;
    let stack = first
        .remove("stack")
        .ok_or_else(|| format!("{at}: stack is required (its bands)"))?;
    if let Some(k) = first.keys().next() {
        return Err(format!(
            "{at}: unknown key {k:?} (name, catalog, stack, time)"
        ));
    }
    if empty {
        table.remove("inputs");
    }
    table.insert("catalog".into(), catalog);
    table.insert("stack".into(), stack);
    Ok(name)
}
