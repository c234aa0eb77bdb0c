//! [`TileDataset`]: a [`DatasetConfig`] opened — the catalog reached (the
//! demo world served on loopback when the config asks for it), the samples
//! placed, searched by region (one search per time window and 1° cell:
//! `region.rs`), their scenes picked and filtered before any pixel is read,
//! the label and mask layers parsed. A sample holds its place, window and
//! scene indexes (about 100 bytes), not a plan: it loads one sample's stack
//! on demand, planning it then; [`BatchLoader`](crate::loader::BatchLoader)
//! and the burn loader batch them.
//!
//! May import: every stage up to [`crate::stack`].

pub(crate) mod config;
pub(crate) mod input_search;
pub(crate) mod inputs;
pub(crate) mod labels;
pub(crate) mod region;
pub(crate) mod sample;
pub(crate) mod sampler;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
pub use config::{
    AugmentConfig, CatalogConfig, CatalogSource, DatasetConfig, ErrorPolicy, FilterConfig,
    InputConfig, LastBatch, LayerConfig, LoaderConfig, NormalizeConfig, RasterLayer,
};
pub use inputs::{
    CompositeMethod, CompositeSpan, InputLayout, InputPlan, InputStack, SceneMeta, TimeRule,
};
pub use sample::{DatasetReport, DatasetSample, InputReport};
pub use sampler::{SamplePoint, SamplerConfig, TimeWindows, cross, read_points};

use crate::cog::CogReader;
use crate::cog::cache::TileCache;
use crate::dataset::input_search::{InputSource, OpenInput, open_input, raster_scene};
use crate::dataset::inputs::{assemble_input, label, plan_input, source_request};
use crate::dataset::labels::{ClassMap, LabelLayer, RasterLabel};
use crate::dataset::region::open_by_region;
use crate::error::{Error, Result};
use crate::fetch::HttpRangeClient;
use crate::fetch::retry::RetryConfig;
use crate::geo::rasterize::Mask;
use crate::stac::catalog::Catalog;
use crate::stac::scene::Scene;
use crate::stack::plan::StackPlan;
use crate::stack::read::zarr_reader;
use crate::stack::request::StackRequest;
use crate::stack::{Layers, SampleLayout, TileStack};

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
    scenes: Vec<Scene>,
    layout: SampleLayout,
    /// Label layers in config order.
    labels: Vec<(String, LabelLayer)>,
    masks: Vec<(String, Mask)>,
    report: DatasetReport,
    /// The inputs after the first: their scenes and each sample's.
    inputs: Vec<OpenInput>,
    /// Their layouts, in config order.
    input_layouts: Vec<InputLayout>,
    /// Keeps the demo world's server alive as long as the dataset.
    #[cfg(feature = "demo")]
    _server: Option<crate::demo::server::WorldServer>,
    /// The inputs' own demo servers.
    #[cfg(feature = "demo")]
    _input_servers: Vec<Option<crate::demo::server::WorldServer>>,
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
    /// world when asked), places the samples, searches by region (one search
    /// per time window and 1° cell, 8 at once; see `dataset::region`), picks
    /// each sample's scenes and applies the filters. Nothing but the catalog
    /// is read, and no plan is kept: [`TileDataset::plan`] makes one.
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
                scenes: o.scenes,
                layout: o.layout,
                labels: o.labels,
                masks: o.masks,
                report: o.report,
                inputs: o.inputs,
                input_layouts: o.input_layouts,
                #[cfg(feature = "demo")]
                _server: o.server,
                #[cfg(feature = "demo")]
                _input_servers: o.input_servers,
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
        self.layout.clone()
    }

    /// The scenes of every sample, each once ([`DatasetSample::scenes`]
    /// index into them).
    pub fn scenes(&self) -> &[Scene] {
        &self.scenes
    }

    /// Sample `index`'s stack request (the config's `[stack]` at its place
    /// and days).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the index when there is no such sample.
    pub fn request(&self, index: usize) -> Result<StackRequest> {
        let s = self.sample(index)?;
        self.config.request(s.centroid, s.start, s.end)
    }

    /// Sample `index`'s plan, built from its scenes: the plan a search for
    /// that sample alone gives.
    ///
    /// ```no_run
    /// use tilestack::{DatasetConfig, TileDataset};
    /// let cfg = DatasetConfig::from_file("datasets/oakland-ships.toml".as_ref())?;
    /// let ds = TileDataset::open(&cfg)?;
    /// let s = &ds.samples()[0];
    /// let plan = ds.plan(0)?;
    /// assert_eq!(plan.scenes.len(), s.scenes.len());
    /// for (scene, &k) in plan.scenes.iter().zip(&s.scenes) {
    ///     assert_eq!(scene.id, ds.scenes()[k as usize].id); // each scene held once
    /// }
    /// println!("{} windows to read", plan.reads.len());
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`TileDataset::request`]; [`StackPlan::new`]'s errors.
    pub fn plan(&self, index: usize) -> Result<StackPlan> {
        let s = self.sample(index)?;
        let req = self.config.request(s.centroid, s.start, s.end)?;
        let scenes = s
            .scenes
            .iter()
            .map(|&k| {
                self.scenes.get(k as usize).cloned().ok_or_else(|| {
                    Error::internal("dataset", format!("sample {index} names no scene {k}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        StackPlan::new(&scenes, &req)
    }

    fn sample(&self, index: usize) -> Result<&DatasetSample> {
        self.samples
            .get(index)
            .ok_or_else(|| Error::invalid("sample", format!("no sample {index}")))
    }

    /// The GeoJSON label layers: name and features (raster label layers
    /// are read per sample; [`TileDataset::layout`] names every layer).
    pub fn labels(&self) -> impl Iterator<Item = (&str, &Mask)> {
        self.labels.iter().filter_map(|(n, l)| match l {
            LabelLayer::Vector(m) => Some((n.as_str(), m)),
            LabelLayer::Raster(_) => None,
        })
    }

    /// The input masks (name, features).
    pub fn masks(&self) -> &[(String, Mask)] {
        &self.masks
    }

    /// `[T, C, H, W]` of every sample's stack (before augmentation's crop).
    pub fn shape(&self) -> [usize; 4] {
        self.layout.shape
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
        let s = self.sample(index)?;
        let load = async {
            self.plan(index)?
                .load_reusing(&self.reader, None, buffer)
                .await
        };
        load.await.map_err(|e| Error::Sample {
            index,
            lon: s.centroid[0],
            lat: s.centroid[1],
            source: Box::new(e),
        })
    }
}

impl TileDataset {
    /// Loads sample `index`'s stack, its other inputs' stacks (at once)
    /// and rasterizes its label and mask layers on its grid: what the
    /// loaders and `materialize` put in a batch row.
    ///
    /// # Errors
    /// As [`TileDataset::load`] and [`TileDataset::load_inputs`]; a layer
    /// whose CRS cannot be projected.
    pub(crate) async fn load_with_layers(
        self: &Arc<Self>,
        index: usize,
        buffer: Option<ndarray::Array4<f32>>,
    ) -> Result<(TileStack, Layers, Vec<InputStack>)> {
        let (stack, inputs, rasters) = futures::future::try_join3(
            self.load_reusing(index, buffer),
            self.load_inputs(index),
            self.load_raster_labels(index),
        )
        .await?;
        let layers = if self.labels.is_empty() && self.masks.is_empty() {
            Layers::default()
        } else {
            let ds = self.clone();
            tokio::task::spawn_blocking(move || ds.rasterize_layers(index, rasters))
                .await
                .map_err(|e| Error::task("rasterize labels", e))??
        };
        Ok((stack, layers, inputs))
    }

    /// Sample `index`'s raster label layers, in config order, as loaded
    /// (codes, NaN = no data).
    async fn load_raster_labels(&self, index: usize) -> Result<Vec<InputStack>> {
        let loads = self.labels.iter().filter_map(|(name, l)| match l {
            LabelLayer::Raster(r) => {
                Some(self.load_as(index, &r.input, &r.open, format!("labels {name:?}")))
            }
            LabelLayer::Vector(_) => None,
        });
        futures::future::try_join_all(loads)
            .await
            .map_err(|e| self.sample_error(index, e))
    }

    /// The layers on sample `index`'s grid and steps: GeoJSON rasterized,
    /// `rasters` (its raster labels, loaded) turned into classes.
    fn rasterize_layers(&self, sample: usize, rasters: Vec<InputStack>) -> Result<Layers> {
        let req = self.request(sample)?;
        let (grid, bins) = (req.grid()?, req.bins());
        // The rasterizer writes exactly 0.0 or 1.0.
        let flat = |a: ndarray::Array2<f32>| a.iter().map(|&v| u8::from(v != 0.0)).collect();
        let mut rasters = rasters.into_iter();
        let labels = self
            .labels
            .iter()
            .map(|(_, l)| match l {
                LabelLayer::Vector(m) => bins
                    .iter()
                    .map(|bin| m.rasterize_days(&grid, Some(*bin)).map(flat))
                    .collect::<Result<Vec<_>>>(),
                LabelLayer::Raster(r) => rasters
                    .next()
                    .map(|input| r.classes.layer(&input, bins.len()))
                    .ok_or_else(|| Error::internal("labels", "a raster label was not loaded")),
            })
            .collect::<Result<Vec<_>>>()?;
        let masks = self
            .masks
            .iter()
            .map(|(_, m)| m.rasterize_days(&grid, None).map(flat))
            .collect::<Result<Vec<_>>>()?;
        Ok(Layers { labels, masks })
    }
}

impl TileDataset {
    /// The layouts of the inputs after the first (`[[inputs]]`): name, time
    /// rule, `[T, C, H, W]` (`T` = 1 for a static input), bands.
    pub fn input_layouts(&self) -> &[InputLayout] {
        &self.input_layouts
    }

    /// The scenes of input `k` of [`DatasetConfig::inputs`], each once.
    pub fn input_scenes(&self, k: usize) -> &[Scene] {
        self.inputs.get(k).map_or(&[], |i| i.scenes.as_slice())
    }

    /// Sample `index`'s plan of input `k` of [`DatasetConfig::inputs`]: its
    /// scenes on the sample's grid, put on the sample's days by the input's
    /// time rule.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the index or the input;
    /// [`StackPlan::new`]'s errors.
    pub fn input_plan(&self, index: usize, k: usize) -> Result<InputPlan> {
        let (cfg, open) = self.input(k)?;
        self.plan_as(index, cfg, open, &label(k + 1, &cfg.name))
    }

    /// Sample `index`'s plan of the raster label layer `name`: its scenes
    /// on the sample's grid and days, as [`TileDataset::input_plan`] plans
    /// an input (what loading the layer reads, before its codes become
    /// classes).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `name` is not a raster label layer;
    /// [`TileDataset::input_plan`]'s errors.
    pub fn label_plan(&self, index: usize, name: &str) -> Result<InputPlan> {
        match self.labels.iter().find(|(n, _)| n == name) {
            Some((_, LabelLayer::Raster(r))) => {
                self.plan_as(index, &r.input, &r.open, &format!("labels {name:?}"))
            }
            _ => Err(Error::invalid(
                "label",
                format!("no raster label layer {name:?}"),
            )),
        }
    }

    /// Input `k` after the first: its config and its opened scenes.
    fn input(&self, k: usize) -> Result<(&InputConfig, &OpenInput)> {
        match (self.config.inputs.get(k), self.inputs.get(k)) {
            (Some(cfg), Some(open)) => Ok((cfg, open)),
            _ => Err(Error::invalid(
                "input",
                format!("no input {k} after the first"),
            )),
        }
    }

    /// Sample `index`'s plan of `cfg` (an input, or a raster label read as
    /// one) over its opened scenes; `at` names it in errors.
    fn plan_as(
        &self,
        index: usize,
        cfg: &InputConfig,
        open: &OpenInput,
        at: &str,
    ) -> Result<InputPlan> {
        let s = self.sample(index)?;
        let primary = self.config.request(s.centroid, s.start, s.end)?;
        let named = |e: Error| Error::invalid_because("input", at, e);
        let req = source_request(&cfg.stack, cfg.time, &primary).map_err(named)?;
        let scenes = open
            .per_sample
            .get(index)
            .map(|ix| {
                ix.iter()
                    .filter_map(|&j| open.scenes.get(j as usize).cloned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        plan_input(&scenes, &req, cfg.time, &primary).map_err(named)
    }

    /// Loads sample `index`'s inputs after the first, in config order, at
    /// once: each on the sample's grid and days (see [`TimeRule`]). A
    /// `daily` or `nearest` step without a scene is NaN and flagged
    /// ([`InputStack::has_data`]); a `static` or window-composite input
    /// without any scene is an error.
    ///
    /// # Errors
    /// [`Error::Sample`] naming the sample, wrapping an error naming the
    /// input (`inputs[1] "s1"`) and its cause (URL, item).
    pub async fn load_inputs(&self, index: usize) -> Result<Vec<InputStack>> {
        let loads = (0..self.inputs.len()).map(|k| async move {
            let (cfg, open) = self.input(k)?;
            self.load_as(index, cfg, open, label(k + 1, &cfg.name))
                .await
        });
        futures::future::try_join_all(loads)
            .await
            .map_err(|e| self.sample_error(index, e))
    }

    /// `e`, naming sample `index` and its place.
    fn sample_error(&self, index: usize, e: Error) -> Error {
        let (lon, lat) = self
            .samples
            .get(index)
            .map_or((f64::NAN, f64::NAN), |s| (s.centroid[0], s.centroid[1]));
        Error::Sample {
            index,
            lon,
            lat,
            source: Box::new(e),
        }
    }

    /// [`TileDataset::load_inputs`] for synchronous code.
    ///
    /// # Errors
    /// As [`TileDataset::load_inputs`]; [`Error::Invalid`] inside an async runtime.
    pub fn load_inputs_blocking(&self, index: usize) -> Result<Vec<InputStack>> {
        crate::runtime::refuse_inside_async(
            "TileDataset::load_inputs_blocking",
            "use TileDataset::load_inputs",
        )?;
        self.handle()?.block_on(self.load_inputs(index))
    }

    /// Loads sample `index`'s `cfg` (an input, or a raster label read as
    /// one); `at` names it in errors.
    async fn load_as(
        &self,
        index: usize,
        cfg: &InputConfig,
        open: &OpenInput,
        at: String,
    ) -> Result<InputStack> {
        let plan = self.plan_as(index, cfg, open, &at)?;
        let named = |e: Error| Error::invalid_because("input", &at, e);
        if plan.plan.scenes.is_empty() && cfg.time.is_static() {
            let s = self.sample(index)?;
            return Err(named(Error::invalid(
                "input scenes",
                format!(
                    "no scene of this input meets the tile at ({:.5}, {:.5}) for {}",
                    s.centroid[0], s.centroid[1], cfg.time
                ),
            )));
        }
        let loaded = plan.plan.load(&self.reader, None).await.map_err(named)?;
        Ok(assemble_input(&cfg.name, &plan, loaded, &open.meta))
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
    scenes: Vec<Scene>,
    layout: SampleLayout,
    labels: Vec<(String, LabelLayer)>,
    masks: Vec<(String, Mask)>,
    report: DatasetReport,
    inputs: Vec<OpenInput>,
    input_layouts: Vec<InputLayout>,
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    server: Server,
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    input_servers: Vec<Server>,
}

fn open_on(rt: &tokio::runtime::Runtime, config: &DatasetConfig) -> Result<Opened> {
    let points = config.sampler.points(&config.path, config.seed)?;
    let windows = config
        .time
        .windows()
        .map_err(|e| config.error_because("time", e))?;
    let (catalog, server, world) = rt.block_on(open_catalog(config))?;
    let vector_labels = config.label_layers(world.as_deref())?;
    let masks = config.mask_layers(world.as_deref())?;
    // The reader exists before the search: Zarr items without a grid take
    // their stores' (metadata kept in its cache for the loads).
    let mut client = HttpRangeClient::new(RetryConfig::default())?;
    if let Some(signer) = config.signer()? {
        client = client.with_signer(signer);
    }
    let reader = CogReader::new(client, TileCache::new(config.loader.cache_bytes));
    let region = rt.block_on(open_by_region(
        config,
        &catalog,
        &points,
        &windows,
        &zarr_reader(&reader),
    ))?;
    let (samples, scenes, mut report) = (region.samples, region.scenes, region.report);
    if samples.is_empty() {
        return Err(config.error("sampler", format!("no sample left: {report}")));
    }
    let (mut inputs, mut input_servers) = (Vec::new(), Vec::new());
    for (k, input) in config.inputs.iter().enumerate() {
        let at = label(k + 1, &input.name);
        let (opened, server) = open_one(rt, config, &reader, input, &at, &samples)?;
        input_servers.push(server);
        report.inputs.push(opened.report.clone());
        inputs.push(opened);
    }
    // Label layers in config order: GeoJSON parsed above, rasters opened
    // as inputs are (their scenes searched by region, each sample's picked).
    let mut vectors = vector_labels.into_iter();
    let mut labels = Vec::with_capacity(config.labels.len());
    for l in &config.labels {
        let Some(input) = l.raster_input() else {
            let (name, mask) = vectors
                .next()
                .ok_or_else(|| Error::internal("dataset", "fewer GeoJSON labels than files"))?;
            labels.push((name, LabelLayer::Vector(mask)));
            continue;
        };
        let at = format!("labels {:?}", l.name);
        let input = input.map_err(|e| config.error_because(&at, e))?;
        let (open, server) = open_one(rt, config, &reader, &input, &at, &samples)?;
        input_servers.push(server);
        report.raster_labels.push(open.report.clone());
        labels.push((
            l.name.clone(),
            LabelLayer::Raster(Box::new(RasterLabel {
                classes: ClassMap::of(l),
                input,
                open,
            })),
        ));
    }
    let shape = one_shape(config, &samples)?;
    let layout = SampleLayout {
        shape,
        bands: config
            .request(samples[0].centroid, samples[0].start, samples[0].end)?
            .bands
            .iter()
            .map(|b| b.to_string())
            .collect(),
        labels: labels.iter().map(|(n, _)| n.clone()).collect(),
        masks: masks.iter().map(|(n, _)| n.clone()).collect(),
    };
    let [t, _, h, w] = layout.shape;
    let input_layouts = config
        .inputs
        .iter()
        .map(|i| InputLayout {
            name: i.name.clone(),
            rule: i.time,
            shape: [
                if i.time.is_static() { 1 } else { t },
                i.stack.fields().bands.len(),
                h,
                w,
            ],
            bands: i
                .stack
                .fields()
                .bands
                .iter()
                .map(|b| b.to_string())
                .collect(),
        })
        .collect();
    tracing::info!(dataset = %config.name, %report, "dataset opened");
    Ok(Opened {
        reader,
        samples,
        scenes,
        layout,
        labels,
        masks,
        report,
        inputs,
        input_layouts,
        server,
        input_servers,
    })
}

/// Opens one input after the first, or a raster label layer read as one:
/// its catalog (a demo world served on its own) or its one raster; `at`
/// names it in errors.
fn open_one(
    rt: &tokio::runtime::Runtime,
    config: &DatasetConfig,
    reader: &CogReader,
    input: &InputConfig,
    at: &str,
    samples: &[DatasetSample],
) -> Result<(OpenInput, Server)> {
    match (&input.catalog, &input.href) {
        (Some(c), _) => {
            let (catalog, server, _) =
                rt.block_on(open_catalog_of(config, c, &format!("{at}.catalog")))?;
            let opened = rt.block_on(open_input(
                config,
                input,
                at,
                InputSource::Catalog(&catalog),
                samples,
                &zarr_reader(reader),
            ))?;
            Ok((opened, server))
        }
        (None, Some(href)) => {
            let href = resolve_href(config, href);
            let band =
                input.stack.fields().bands.first().cloned().ok_or_else(|| {
                    config.error(at, "a single raster (href) needs one band name")
                })?;
            let scene = rt
                .block_on(raster_scene(reader, &href, &band))
                .map_err(|e| config.error_because(at, e))?;
            let opened = rt.block_on(open_input(
                config,
                input,
                at,
                InputSource::Raster(scene),
                samples,
                &zarr_reader(reader),
            ))?;
            Ok((opened, Server::default()))
        }
        (None, None) => Err(config.error(at, "set one of catalog and href")),
    }
}

/// The `[T, C, H, W]` every sample shares (a request's steps, bands and
/// tile: the same for every place of a time window).
///
/// # Errors
/// [`Error::Config`] naming the first sample whose shape differs.
fn one_shape(config: &DatasetConfig, samples: &[DatasetSample]) -> Result<[usize; 4]> {
    let mut shapes: BTreeMap<(NaiveDate, NaiveDate), [usize; 4]> = BTreeMap::new();
    let mut first: Option<[usize; 4]> = None;
    for s in samples {
        let shape = match shapes.get(&(s.start, s.end)) {
            Some(&shape) => shape,
            None => {
                let req = config.request(s.centroid, s.start, s.end)?;
                let grid = req.grid()?;
                let shape = [req.bins().len(), req.bands.len(), grid.height, grid.width];
                shapes.insert((s.start, s.end), shape);
                shape
            }
        };
        match first {
            None => first = Some(shape),
            Some(f) if f != shape => {
                return Err(config.error(
                    "stack",
                    format!(
                        "sample {} has shape [T, C, H, W] {shape:?}, the first {f:?}: a \
                         dataset's samples share one shape (use time windows of equal length)",
                        s.id
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(first.unwrap_or([0; 4]))
}

#[cfg(feature = "demo")]
type Server = Option<crate::demo::server::WorldServer>;
#[cfg(not(feature = "demo"))]
type Server = ();

/// An input's `href`: a URL as it is, a path resolved against the
/// config's folder, as a `file://` URL.
fn resolve_href(config: &DatasetConfig, href: &str) -> String {
    if href.contains("://") {
        return href.to_string();
    }
    let p = config.resolve(std::path::Path::new(href));
    let p = std::path::absolute(&p).unwrap_or(p);
    format!("file://{}", p.display())
}

/// The catalog, the demo server when there is one, and the demo world's folder.
async fn open_catalog(config: &DatasetConfig) -> Result<(Catalog, Server, Option<PathBuf>)> {
    config.catalog_source()?;
    open_catalog_of(config, &config.catalog, "catalog").await
}

/// [`open_catalog`] of any catalog table (an input's); errors name `key`.
async fn open_catalog_of(
    config: &DatasetConfig,
    c: &CatalogConfig,
    key: &str,
) -> Result<(Catalog, Server, Option<PathBuf>)> {
    match config.catalog_source_of(c, key)? {
        CatalogSource::Stac { url, collection } => {
            Ok((Catalog::stac(&url, &collection)?, Server::default(), None))
        }
        CatalogSource::Snapshot(p) => {
            let items = crate::stac::snapshot::load_snapshot(&p)
                .map_err(|e| config.error_because(&format!("{key}.snapshot"), e))?;
            Ok((Catalog::Items(items), Server::default(), None))
        }
        #[cfg(feature = "demo")]
        CatalogSource::Demo(recipe) => {
            use crate::demo::recipe::Recipe;
            use crate::demo::server::WorldServer;
            use crate::demo::world::World;
            let recipe = match recipe {
                None => Recipe::oakland(),
                Some(p) => Recipe::from_file(&p)
                    .map_err(|e| config.error_because(&format!("{key}.demo"), e))?,
            };
            let world = tokio::task::spawn_blocking(move || World::cached(&recipe))
                .await
                .map_err(|e| Error::task("demo world", e))??;
            let server = WorldServer::start(&world).await?;
            let collection = c
                .collection
                .clone()
                .unwrap_or_else(|| world.manifest().collection.clone());
            let catalog = Catalog::stac(&server.stac_url(), &collection)?;
            Ok((catalog, Some(server), Some(world.dir().to_path_buf())))
        }
        #[cfg(not(feature = "demo"))]
        CatalogSource::Demo(_) => Err(config.error(
            &format!("{key}.demo"),
            "the demo world needs tilestack's `demo` feature",
        )),
    }
}
