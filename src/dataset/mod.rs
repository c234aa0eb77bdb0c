//! [`TileDataset`]: a [`DatasetConfig`] opened — the catalog reached (the
//! demo world served on loopback when the config asks for it), the samples
//! placed, searched, planned and filtered before any pixel is read, the
//! label and mask layers parsed. It loads one sample's stack on demand;
//! [`BatchLoader`](crate::loader::BatchLoader) and the burn loader batch them.
//!
//! May import: every stage up to [`crate::stack`].

pub(crate) mod config;
pub(crate) mod sampler;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
pub use config::{
    AugmentConfig, CatalogConfig, CatalogSource, DatasetConfig, ErrorPolicy, FilterConfig,
    LastBatch, LayerConfig, LoaderConfig, NormalizeConfig,
};
use futures::StreamExt;
pub use sampler::{SamplePoint, SamplerConfig, TimeWindows, cross, read_points};

use crate::cog::CogReader;
use crate::cog::cache::TileCache;
use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;
use crate::fetch::retry::RetryConfig;
use crate::geo::rasterize::Mask;
use crate::stac::catalog::Catalog;
use crate::stac::scene::scenes_from_items;
use crate::stack::load::search_items_query;
use crate::stack::plan::StackPlan;
use crate::stack::{Layers, SampleLayout, TileStack};

/// One sample of a dataset: a place, a time window and its plan.
#[derive(Debug, Clone)]
pub struct DatasetSample {
    /// `point id` (with `@start` when the config has several time windows).
    pub id: String,
    /// `[lon, lat]` of the tile centre.
    pub centroid: [f64; 2],
    /// First day, inclusive.
    pub start: NaiveDate,
    /// Last day, inclusive.
    pub end: NaiveDate,
    /// Steps that have at least one scene (and enough footprint cover).
    pub days_with_data: usize,
    /// The plan: grid, scenes per step, windows to read.
    pub plan: StackPlan,
}

/// What [`TileDataset::open`] kept and dropped, and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetReport {
    /// Points × time windows the sampler produced.
    pub candidates: usize,
    /// Samples kept.
    pub kept: usize,
    /// Samples dropped, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// Scenes left out for `filters.max_cloud_cover`, summed over samples.
    pub cloudy_scenes: usize,
    /// Findings of the plans (no scene, truncated search, …), as text, once each.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} samples kept", self.kept, self.candidates)?;
        for (why, n) in &self.dropped {
            write!(f, "; {n} dropped: {why}")?;
        }
        if self.cloudy_scenes > 0 {
            write!(
                f,
                "; {} cloudy scenes left out (filters.max_cloud_cover)",
                self.cloudy_scenes
            )?;
        }
        Ok(())
    }
}

/// A training set opened from its config (see the module docs).
///
/// ```no_run
/// use tilestack::{DatasetConfig, TileDataset};
/// let cfg = DatasetConfig::from_file("datasets/oakland-ships.toml".as_ref())?;
/// let ds = TileDataset::open(&cfg)?; // serves the demo world on 127.0.0.1
/// println!("{}", ds.report()); // "20 of 20 samples kept"
/// println!("{:?}", ds.shape()); // [T, C, H, W]
/// # Ok::<(), tilestack::Error>(())
/// ```
pub struct TileDataset {
    /// `None` only while dropping. Planning, loads and the demo server run here.
    rt: Option<tokio::runtime::Runtime>,
    config: DatasetConfig,
    reader: CogReader,
    samples: Vec<DatasetSample>,
    labels: Vec<(String, Mask)>,
    masks: Vec<(String, Mask)>,
    report: DatasetReport,
    /// Keeps the demo world's server alive as long as the dataset.
    #[cfg(feature = "demo")]
    _server: Option<crate::demo::server::WorldServer>,
}

impl std::fmt::Debug for TileDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileDataset")
            .field("name", &self.config.name)
            .field("samples", &self.samples.len())
            .field("report", &self.report)
            .finish()
    }
}

impl TileDataset {
    /// Opens a dataset: reaches the catalog (generating and serving the demo
    /// world when asked), places the samples, searches and plans each (8 at
    /// once) and applies the filters. Nothing but the catalog is read.
    ///
    /// # Errors
    /// [`Error::Config`] naming the config file and key (sampler, label
    /// files, catalog); a search error naming the URL; [`Error::Config`] when
    /// every sample is filtered out (with the counts); [`Error::Invalid`] for
    /// a call from inside an async runtime; [`Error::Internal`] when its
    /// runtime cannot start.
    pub fn open(config: &DatasetConfig) -> Result<TileDataset> {
        let rt = crate::runtime::own_runtime(
            "TileDataset::open",
            "tilestack-data",
            config.loader.threads,
        )?;
        match open_on(&rt, config) {
            Ok(o) => Ok(TileDataset {
                rt: Some(rt),
                config: config.clone(),
                reader: o.reader,
                samples: o.samples,
                labels: o.labels,
                masks: o.masks,
                report: o.report,
                #[cfg(feature = "demo")]
                _server: o.server,
            }),
            Err(e) => {
                rt.shutdown_background();
                Err(e)
            }
        }
    }

    /// The config it was opened from.
    pub fn config(&self) -> &DatasetConfig {
        &self.config
    }

    /// The samples kept, in sampler order (point-major, then time window).
    pub fn samples(&self) -> &[DatasetSample] {
        &self.samples
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there is no sample (never, for an opened dataset).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// What was kept and dropped.
    pub fn report(&self) -> &DatasetReport {
        &self.report
    }

    /// The reader (tile cache, fetch metrics) every load goes through.
    pub fn reader(&self) -> &CogReader {
        &self.reader
    }

    /// The layout every sample shares: shape, bands, label and mask names.
    pub fn layout(&self) -> SampleLayout {
        SampleLayout {
            shape: self.shape(),
            bands: self
                .samples
                .first()
                .map(|s| s.plan.request.bands.iter().map(|b| b.to_string()).collect())
                .unwrap_or_default(),
            labels: self.labels.iter().map(|(n, _)| n.clone()).collect(),
            masks: self.masks.iter().map(|(n, _)| n.clone()).collect(),
        }
    }

    /// The label layers: name and features.
    pub fn labels(&self) -> &[(String, Mask)] {
        &self.labels
    }

    /// The input masks (name, features).
    pub fn masks(&self) -> &[(String, Mask)] {
        &self.masks
    }

    /// `[T, C, H, W]` of every sample's stack (before augmentation's crop).
    pub fn shape(&self) -> [usize; 4] {
        self.samples.first().map_or([0; 4], |s| s.plan.shape())
    }

    /// The runtime loads run on.
    ///
    /// # Errors
    /// [`Error::Internal`] while dropping (its runtime is shut down).
    pub fn handle(&self) -> Result<tokio::runtime::Handle> {
        self.rt
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| Error::internal("dataset", "its runtime is shut down"))
    }

    /// Loads sample `index`'s stack (no mask band: masks and labels are
    /// rasterized by the batcher).
    ///
    /// # Errors
    /// [`Error::Sample`] naming the sample and wrapping the load error (URL, item).
    pub async fn load(&self, index: usize) -> Result<TileStack> {
        self.load_reusing(index, None).await
    }

    /// [`TileDataset::load`] for synchronous code, on the dataset's own
    /// runtime: what burn's `Dataset::get` calls.
    ///
    /// # Errors
    /// As [`TileDataset::load`]; [`Error::Invalid`] when called inside an
    /// async runtime (use [`TileDataset::load`] there), never a panic.
    pub fn load_blocking(&self, index: usize) -> Result<TileStack> {
        crate::runtime::refuse_inside_async("TileDataset::load_blocking", "use TileDataset::load")?;
        self.handle()?.block_on(self.load_reusing(index, None))
    }

    /// As [`TileDataset::load`], into a recycled stack array when its shape
    /// fits (see [`StackPlan::load_reusing`]).
    ///
    /// # Errors
    /// As [`TileDataset::load`].
    pub async fn load_reusing(
        &self,
        index: usize,
        buffer: Option<ndarray::Array4<f32>>,
    ) -> Result<TileStack> {
        let s = self
            .samples
            .get(index)
            .ok_or_else(|| Error::invalid("sample", format!("no sample {index}")))?;
        s.plan
            .load_reusing(&self.reader, None, buffer)
            .await
            .map_err(|e| Error::Sample {
                index,
                lon: s.centroid[0],
                lat: s.centroid[1],
                source: Box::new(e),
            })
    }
}

impl TileDataset {
    /// Loads sample `index`'s stack and rasterizes its label and mask layers
    /// on its grid: what the loaders and `materialize` put in a batch row.
    ///
    /// # Errors
    /// As [`TileDataset::load`]; a layer whose CRS cannot be projected.
    pub(crate) async fn load_with_layers(
        self: &Arc<Self>,
        index: usize,
        buffer: Option<ndarray::Array4<f32>>,
    ) -> Result<(TileStack, Layers)> {
        let stack = self.load_reusing(index, buffer).await?;
        let layers = if self.labels.is_empty() && self.masks.is_empty() {
            Layers::default()
        } else {
            let ds = self.clone();
            tokio::task::spawn_blocking(move || ds.rasterize_layers(index))
                .await
                .map_err(|e| Error::task("rasterize labels", e))??
        };
        Ok((stack, layers))
    }

    fn rasterize_layers(&self, sample: usize) -> Result<Layers> {
        let plan = &self
            .samples
            .get(sample)
            .ok_or_else(|| Error::invalid("sample", format!("no sample {sample}")))?
            .plan;
        // The rasterizer writes exactly 0.0 or 1.0.
        let flat = |a: ndarray::Array2<f32>| a.iter().map(|&v| u8::from(v != 0.0)).collect();
        let labels = self
            .labels
            .iter()
            .map(|(_, m)| {
                plan.bins
                    .iter()
                    .map(|(bin, _)| m.rasterize_days(&plan.grid, Some(*bin)).map(flat))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let masks = self
            .masks
            .iter()
            .map(|(_, m)| m.rasterize_days(&plan.grid, None).map(flat))
            .collect::<Result<Vec<_>>>()?;
        Ok(Layers { labels, masks })
    }
}

impl Drop for TileDataset {
    fn drop(&mut self) {
        // Without waiting: a dataset may be dropped inside async code.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// What [`TileDataset::open`] makes on its runtime.
struct Opened {
    reader: CogReader,
    samples: Vec<DatasetSample>,
    labels: Vec<(String, Mask)>,
    masks: Vec<(String, Mask)>,
    report: DatasetReport,
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    server: Server,
}

fn open_on(rt: &tokio::runtime::Runtime, config: &DatasetConfig) -> Result<Opened> {
    let points = config.sampler.points(&config.path, config.seed)?;
    let windows = config
        .time
        .windows()
        .map_err(|e| config.error_because("time", e))?;
    let (catalog, server, world) = rt.block_on(open_catalog(config))?;
    let labels = config.label_layers(world.as_deref())?;
    let masks = config.mask_layers(world.as_deref())?;
    let (samples, report) = rt.block_on(plan_all(config, &catalog, &points, &windows))?;
    if samples.is_empty() {
        return Err(config.error("sampler", format!("no sample left: {report}")));
    }
    check_shapes(&samples).map_err(|e| config.error("stack", e))?;
    let mut client = HttpRangeClient::new(RetryConfig::default())?;
    if let Some(signer) = config.signer()? {
        client = client.with_signer(signer);
    }
    let reader = CogReader::new(client, TileCache::new(config.loader.cache_bytes));
    tracing::info!(dataset = %config.name, %report, "dataset opened");
    Ok(Opened {
        reader,
        samples,
        labels,
        masks,
        report,
        server,
    })
}

fn check_shapes(samples: &[DatasetSample]) -> std::result::Result<(), String> {
    match crate::stack::plan::other_shape(samples.iter().map(|s| &s.plan)) {
        Some((i, shape, first)) => Err(format!(
            "sample {} has shape [T, C, H, W] {shape:?}, the first {first:?}: a dataset's samples \
             share one shape (use time windows of equal length)",
            samples[i].id
        )),
        None => Ok(()),
    }
}

#[cfg(feature = "demo")]
type Server = Option<crate::demo::server::WorldServer>;
#[cfg(not(feature = "demo"))]
type Server = ();

/// The catalog, the demo server when there is one, and the demo world's folder.
async fn open_catalog(config: &DatasetConfig) -> Result<(Catalog, Server, Option<PathBuf>)> {
    match config.catalog_source()? {
        CatalogSource::Stac { url, collection } => {
            Ok((Catalog::stac(&url, &collection)?, Server::default(), None))
        }
        CatalogSource::Snapshot(p) => {
            let items = crate::stac::snapshot::load_snapshot(&p)
                .map_err(|e| config.error_because("catalog.snapshot", e))?;
            Ok((Catalog::Items(items), Server::default(), None))
        }
        #[cfg(feature = "demo")]
        CatalogSource::Demo(recipe) => {
            use crate::demo::recipe::Recipe;
            use crate::demo::server::WorldServer;
            use crate::demo::world::World;
            let recipe = match recipe {
                None => Recipe::oakland(),
                Some(p) => {
                    Recipe::from_file(&p).map_err(|e| config.error_because("catalog.demo", e))?
                }
            };
            let world = tokio::task::spawn_blocking(move || World::cached(&recipe))
                .await
                .map_err(|e| Error::task("demo world", e))??;
            let server = WorldServer::start(&world).await?;
            let collection = config
                .catalog
                .collection
                .clone()
                .unwrap_or_else(|| world.manifest().collection.clone());
            let catalog = Catalog::stac(&server.stac_url(), &collection)?;
            Ok((catalog, Some(server), Some(world.dir().to_path_buf())))
        }
        #[cfg(not(feature = "demo"))]
        CatalogSource::Demo(_) => Err(config.error(
            "catalog.demo",
            "the demo world needs tilestack's `demo` feature",
        )),
    }
}

/// Searches, plans and filters every point × window, 8 at once, in order.
async fn plan_all(
    config: &DatasetConfig,
    catalog: &Catalog,
    points: &[SamplePoint],
    windows: &[(NaiveDate, NaiveDate)],
) -> Result<(Vec<DatasetSample>, DatasetReport)> {
    let mut warnings = Vec::new();
    let mut query = config
        .filters
        .max_cloud_cover
        .map(|c| serde_json::json!({"eo:cloud_cover": {"lte": c}}));
    if let (Some(_), Catalog::Stac { client, .. }) = (&query, catalog)
        && !client.supports_query().await?
    {
        query = None;
        warnings.push(format!(
            "{} does not declare the STAC query extension: filters.max_cloud_cover applied to the items on the client",
            client.root()
        ));
    }
    let several = windows.len() > 1;
    let mut candidates = Vec::with_capacity(points.len() * windows.len());
    for p in points {
        for &(a, b) in windows {
            let id = if several {
                format!("{}@{a}", p.id)
            } else {
                p.id.clone()
            };
            candidates.push((id, [p.lon, p.lat], a, b));
        }
    }
    let mut report = DatasetReport {
        candidates: candidates.len(),
        warnings,
        ..DatasetReport::default()
    };
    let results: Vec<Result<Planned>> =
        futures::stream::iter(candidates.into_iter().map(|(id, centroid, start, end)| {
            let query = query.as_ref();
            async move {
                let req = config.request(centroid, start, end)?;
                let (items, warnings) = search_items_query(catalog, &req, query).await?;
                for w in &warnings {
                    tracing::warn!(warning = %w, "catalog");
                }
                let scenes = scenes_from_items(&items, &req.read_bands())?;
                let before = scenes.len();
                let scenes: Vec<_> = match config.filters.max_cloud_cover {
                    Some(max) => scenes
                        .into_iter()
                        .filter(|s| s.cloud_cover.is_none_or(|c| c <= max))
                        .collect(),
                    None => scenes,
                };
                let cloudy = before - scenes.len();
                let plan = StackPlan::new(&scenes, &req)?;
                let days = days_with_data(&plan, config.filters.min_footprint_cover)?;
                Ok(Planned {
                    sample: DatasetSample {
                        id,
                        centroid,
                        start,
                        end,
                        days_with_data: days,
                        plan,
                    },
                    cloudy,
                })
            }
        }))
        .buffered(8)
        .collect()
        .await;
    let mut samples = Vec::new();
    for r in results {
        let p = r?;
        report.cloudy_scenes += p.cloudy;
        for w in &p.sample.plan.warnings {
            let w = w.to_string();
            if !report.warnings.contains(&w) {
                report.warnings.push(w);
            }
        }
        let min = config.filters.min_days_with_data;
        if p.sample.days_with_data < min {
            let why = if config.filters.min_footprint_cover > 0.0 {
                format!(
                    "fewer than {min} steps with scenes covering {:.0} % of the tile",
                    config.filters.min_footprint_cover * 100.0
                )
            } else {
                format!("fewer than {min} steps with a scene")
            };
            *report.dropped.entry(why).or_default() += 1;
            continue;
        }
        samples.push(p.sample);
    }
    report.kept = samples.len();
    Ok((samples, report))
}

struct Planned {
    sample: DatasetSample,
    cloudy: usize,
}

/// Steps whose scenes' footprints cover at least `min_cover` of the tile
/// (any scene at all when `min_cover` is 0).
fn days_with_data(plan: &StackPlan, min_cover: f64) -> Result<usize> {
    if min_cover <= 0.0 {
        return Ok(plan.bins.iter().filter(|(_, s)| !s.is_empty()).count());
    }
    use geo::{Area, BooleanOps};
    let ring = plan.grid.wgs84_ring()?;
    let tile = geo::Polygon::new(geo::LineString::from(ring.to_vec()), vec![]);
    let tile_area = tile.unsigned_area();
    let mut n = 0;
    for (_, scenes) in &plan.bins {
        let mut union: Option<geo::MultiPolygon<f64>> = None;
        for &i in scenes {
            let fp = &plan.scenes[i].footprint;
            union = Some(match union {
                None => fp.clone(),
                Some(u) => u.union(fp),
            });
        }
        if let Some(u) = union {
            let covered = tile.intersection(&u).unsigned_area();
            if tile_area > 0.0 && covered / tile_area >= min_cover - 1e-9 {
                n += 1;
            }
        }
    }
    Ok(n)
}
