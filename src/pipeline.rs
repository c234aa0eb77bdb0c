//! The one module that wires scenes → COG reads → warp → fusion → mask +
//! metadata → [`TileStack`]. Planning is sync and fetches nothing; loading
//! is async (reads run concurrently, decode/warp/fuse on blocking threads).

use crate::cog::CogReader;
use crate::cog::TileWindow;
use crate::rasterize::Mask;
use crate::scene::Scene;
use crate::stack::TileStack;
use crate::units::BandName;
use crate::warp::{Resampling, source_window, warp};
use crate::{Epsg, Error, GeoTransform, GridSpec, Resolution, Result, Transformer};
use chrono::NaiveDate;
use futures::StreamExt;
use geo::Intersects;
use ndarray::{Array2, Array4};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

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
pub struct StackRequest {
    /// `[lon, lat]` of the tile centre, degrees.
    pub centroid: [f64; 2],
    /// Bands (asset keys), in output order.
    pub bands: Vec<BandName>,
    /// First day (UTC), inclusive.
    pub start: NaiveDate,
    /// Last day (UTC), inclusive.
    pub end: NaiveDate,
    /// Pixel size, CRS units. Default 10 m.
    pub resolution: Resolution,
    /// Tile side, pixels. Default 256.
    pub tile_size: usize,
    /// Target CRS; default the UTM zone of the centroid (deterministic, never "the first item's").
    pub epsg: Option<Epsg>,
    /// Fusion of same-step scenes. Default mean.
    pub fuse: Fusion,
    /// Resampling. Default nearest.
    pub resampling: Resampling,
    /// Time binning. Default daily.
    pub cadence: Cadence,
    /// Categorical bands: never averaged (first valid, least cloudy first), never normalized.
    pub categorical: Vec<BandName>,
    /// Band read for the tile's own cloud fraction (SCL), if any.
    pub cloud_band: Option<BandName>,
    /// Min–max normalize each (step, band) to 0–1 over the tile (non-categorical bands).
    pub normalize: bool,
    /// Read a COG overview instead of the full resolution when the target grid
    /// is at least twice as coarse (the coarsest overview not coarser than the
    /// target), as GDAL's warper does. Default true.
    #[serde(default = "yes")]
    pub use_overviews: bool,
    /// A window that still fails after retries becomes NaN and is listed in
    /// [`TileStack::read_errors`] instead of failing the stack. Default false.
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
            resolution: Resolution::new(10.0)?,
            tile_size: 256,
            epsg: None,
            fuse: Fusion::Mean,
            resampling: Resampling::Nearest,
            cadence: Cadence::Daily,
            categorical: vec![BandName::new("SCL")?],
            cloud_band: None,
            normalize: false,
            errors_as_nodata: false,
            use_overviews: true,
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

    fn is_categorical(&self, b: &BandName) -> bool {
        self.categorical.contains(b)
    }

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

fn yes() -> bool {
    true
}

/// The coarsest overview of `h` whose pixels are not coarser than `target`
/// (CRS units), with its transform; `None` when full resolution fits best.
fn pick_overview(h: &crate::cog::CogHeader, target: f64) -> Option<(usize, GeoTransform)> {
    let main = h.ifds.first()?;
    let mut best: Option<(usize, GeoTransform)> = None;
    for i in 1..h.ifds.len() {
        let info = &h.ifds[i];
        // skip GDAL mask IFDs and anything that is not a smaller copy of the image
        if info.width >= main.width || info.sample_type != main.sample_type || info.tile_width == 0
        {
            continue;
        }
        if let Some(t) = h.ifd_transform(i)
            && t.dx.abs() <= target * (1.0 + 1e-9)
            && best.as_ref().is_none_or(|(_, b)| t.dx.abs() > b.dx.abs())
        {
            best = Some((i, t));
        }
    }
    best
}

fn add_month(d: NaiveDate) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(1))
        .unwrap_or(d + chrono::Days::new(31))
}

/// One COG window to read and warp.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    /// Index into [`StackPlan::scenes`].
    pub scene: usize,
    /// Index into [`StackPlan::read_bands`].
    pub band: usize,
    /// Asset href.
    pub href: String,
    /// Source window `(col0, row0, width, height)` clipped to the image.
    pub window: (usize, usize, usize, usize),
    /// Transform of the window's top-left pixel.
    pub window_transform: GeoTransform,
    /// Source CRS.
    pub epsg: Epsg,
    /// Nodata of the asset (applied by the reader too, from the COG).
    pub nodata: Option<f64>,
    /// `raster:bands` scale/offset to apply, if declared.
    pub scale_offset: Option<(f64, f64)>,
}

/// A stack description: built without fetching anything.
#[derive(Debug, Clone)]
pub struct StackPlan {
    /// The request.
    pub request: StackRequest,
    /// Target grid.
    pub grid: GridSpec,
    /// Time bins and the indices of their scenes (time order).
    pub bins: Vec<((NaiveDate, NaiveDate), Vec<usize>)>,
    /// Scenes that intersect the tile in the time range (time order).
    pub scenes: Vec<Scene>,
    /// Bands read: the requested ones, then the cloud band if it is extra.
    pub read_bands: Vec<BandName>,
    /// Windows to read.
    pub reads: Vec<ReadPlan>,
    /// Non-fatal findings (e.g. no scene intersects the tile).
    pub warnings: Vec<String>,
}

impl StackPlan {
    /// Plans a stack over `scenes` (any order; see [`crate::scene::scenes_from_items`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad request, [`Error::Item`] when a scene lacks a band.
    pub fn new(scenes: &[Scene], request: &StackRequest) -> Result<StackPlan> {
        request.validate()?;
        let grid = request.grid()?;
        let read_bands = request.read_bands();
        // The tile footprint in lon/lat, for the scene footprint test.
        let (minx, miny, maxx, maxy) = grid.bounds();
        let to_ll = Transformer::new(grid.epsg, Epsg::WGS84)?;
        let mut ring = Vec::new();
        for (x, y) in [
            (minx, miny),
            (maxx, miny),
            (maxx, maxy),
            (minx, maxy),
            (minx, miny),
        ] {
            ring.push(to_ll.transform(x, y)?);
        }
        let tile = geo::Polygon::new(geo::LineString::from(ring), vec![]);
        let bins_t = request.bins();
        let (t0, t1) = (
            request.start.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            bins_t
                .last()
                .and_then(|b| b.1.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
        );
        let mut picked: Vec<Scene> = scenes
            .iter()
            .filter(|s| t0.is_none_or(|t| s.datetime >= t) && t1.is_none_or(|t| s.datetime < t))
            .filter(|s| s.footprint.intersects(&tile))
            .cloned()
            .collect();
        picked.sort_by(|a, b| a.datetime.cmp(&b.datetime).then_with(|| a.id.cmp(&b.id)));
        let mut warnings = Vec::new();
        if picked.is_empty() {
            warnings.push(format!(
                "no scene intersects the tile around {:?} in {}/{}: the stack is all NaN",
                request.centroid, request.start, request.end
            ));
        }
        let mut reads = Vec::new();
        for (si, scene) in picked.iter().enumerate() {
            for (bi, band) in read_bands.iter().enumerate() {
                let a = scene.assets.get(band).ok_or_else(|| Error::Item {
                    item: scene.id.clone(),
                    message: format!(
                        "band {band} was not converted (ask scenes_from_items for it)"
                    ),
                })?;
                let (c0, r0, c1, r1) =
                    source_window(&a.transform, a.epsg, &grid, request.resampling)?;
                let (rows, cols) = (a.shape.0 as i64, a.shape.1 as i64);
                let (c0, r0, c1, r1) = (c0.max(0), r0.max(0), c1.min(cols), r1.min(rows));
                if c0 >= c1 || r0 >= r1 {
                    continue; // this asset's grid misses the tile
                }
                let t = &a.transform;
                reads.push(ReadPlan {
                    scene: si,
                    band: bi,
                    href: a.href.clone(),
                    window: (
                        c0 as usize,
                        r0 as usize,
                        (c1 - c0) as usize,
                        (r1 - r0) as usize,
                    ),
                    window_transform: GeoTransform {
                        x0: t.x0 + c0 as f64 * t.dx,
                        y0: t.y0 + r0 as f64 * t.dy,
                        dx: t.dx,
                        dy: t.dy,
                    },
                    epsg: a.epsg,
                    nodata: a.nodata,
                    scale_offset: a.scale_offset,
                });
            }
        }
        let bins = bins_t
            .into_iter()
            .map(|(a, b)| {
                let idx = picked
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| {
                        let d = s.datetime.date_naive();
                        d >= a && d < b
                    })
                    .map(|(i, _)| i)
                    .collect();
                ((a, b), idx)
            })
            .collect();
        Ok(StackPlan {
            request: request.clone(),
            grid,
            bins,
            scenes: picked,
            read_bands,
            reads,
            warnings,
        })
    }

    /// Source pixels the plan will read (an estimate of work before `load`).
    pub fn source_pixels(&self) -> u64 {
        self.reads
            .iter()
            .map(|r| (r.window.2 * r.window.3) as u64)
            .sum()
    }

    /// Rough bytes to fetch: source pixels × 2 bytes (uint16) × 0.6, a typical
    /// DEFLATE ratio of Sentinel-2 COGs, plus one 16 KiB header per asset.
    pub fn estimated_bytes(&self) -> u64 {
        let hrefs: std::collections::HashSet<&str> =
            self.reads.iter().map(|r| r.href.as_str()).collect();
        (self.source_pixels() as f64 * 2.0 * 0.6) as u64 + hrefs.len() as u64 * 16 * 1024
    }

    /// Reads, warps, fuses and assembles the stack; `mask` becomes the last band.
    ///
    /// # Errors
    /// The first failed read (naming URL and byte range) or warp.
    pub async fn load(&self, reader: &CogReader, mask: Option<&Mask>) -> Result<TileStack> {
        let (h, w) = (self.grid.height, self.grid.width);
        let nb = self.read_bands.len();
        let grid = self.grid.clone();
        let resampling = self.request.resampling;
        let use_overviews = self.request.use_overviews;
        let t0 = std::time::Instant::now();
        // Every read, concurrently; warp on blocking threads as reads land.
        let results: Vec<(usize, usize, Result<Array2<f32>>)> =
            futures::stream::iter(self.reads.iter().cloned())
                .map(|rp| {
                    let grid = grid.clone();
                    async move {
                        let (scene, band) = (rp.scene, rp.band);
                        let one = async move {
                            let (mut ifd, mut win, mut wt) =
                                (0usize, rp.window, rp.window_transform);
                            if use_overviews && grid.transform.dx.abs() >= 2.0 * wt.dx.abs() {
                                let h = reader.header(&rp.href).await?;
                                if let Some((i, t)) = pick_overview(&h, grid.transform.dx.abs()) {
                                    let (c0, r0, c1, r1) =
                                        source_window(&t, rp.epsg, &grid, resampling)?;
                                    let info = &h.ifds[i];
                                    let (c0, r0) = (c0.max(0), r0.max(0));
                                    let (c1, r1) =
                                        (c1.min(info.width as i64), r1.min(info.height as i64));
                                    if c0 >= c1 || r0 >= r1 {
                                        return Ok(Array2::from_elem(
                                            (grid.height, grid.width),
                                            f32::NAN,
                                        ));
                                    }
                                    ifd = i;
                                    win = (
                                        c0 as usize,
                                        r0 as usize,
                                        (c1 - c0) as usize,
                                        (r1 - r0) as usize,
                                    );
                                    wt = GeoTransform {
                                        x0: t.x0 + c0 as f64 * t.dx,
                                        y0: t.y0 + r0 as f64 * t.dy,
                                        ..t
                                    };
                                }
                            }
                            let (c0, r0, cw, ch) = win;
                            // Nearest within one CRS samples the cached tiles
                            // directly: no window copy, one pass.
                            let direct = rp.epsg == grid.epsg && resampling == Resampling::Nearest;
                            let src = if direct {
                                Source::Tiles(
                                    reader.window_tiles(&rp.href, ifd, c0, r0, cw, ch).await?,
                                )
                            } else {
                                Source::Window(
                                    reader.read_window(&rp.href, ifd, c0, r0, cw, ch).await?,
                                )
                            };
                            let warped =
                                tokio::task::spawn_blocking(move || -> Result<Array2<f32>> {
                                    let mut out = match src {
                                        Source::Window(src) => {
                                            warp(src.view(), &wt, rp.epsg, &grid, resampling)?
                                        }
                                        Source::Tiles(Some(tiles)) => tiles.nearest(&wt, &grid),
                                        Source::Tiles(None) => {
                                            Array2::from_elem((grid.height, grid.width), f32::NAN)
                                        }
                                    };
                                    if let Some((scale, offset)) = rp.scale_offset {
                                        out.mapv_inplace(|v| (v as f64 * scale + offset) as f32);
                                    }
                                    Ok(out)
                                })
                                .await
                                .map_err(|e| Error::invalid("warp task", e.to_string()))??;
                            Ok(warped)
                        };
                        (scene, band, one.await)
                    }
                })
                .buffer_unordered(32)
                .collect()
                .await;
        let mut per_scene = Warped::new(self.scenes.len(), nb, h * w);
        let mut read_errors = Vec::new();
        for (si, bi, r) in results {
            match r {
                Ok(a) => per_scene.put(si, bi, a),
                // The window stays NaN; the failure is recorded, never a silent zero.
                Err(e) if self.request.errors_as_nodata => read_errors.push(format!(
                    "{} {}: {e}",
                    self.scenes[si].id, self.read_bands[bi]
                )),
                Err(e) => return Err(e),
            }
        }
        read_errors.sort();
        let t_read = t0.elapsed();
        let plan = self.clone();
        let mask = mask.cloned();
        let out = tokio::task::spawn_blocking(move || plan.assemble(per_scene, mask.as_ref()))
            .await
            .map_err(|e| Error::invalid("assemble task", e.to_string()))?
            .map(|mut st| {
                st.read_errors = read_errors;
                st
            });
        if std::env::var_os("TILESTACK_TIMING").is_some() {
            eprintln!(
                "timing: read+decode+warp {:.3} s, fuse+mask {:.3} s",
                t_read.as_secs_f64(),
                (t0.elapsed() - t_read).as_secs_f64()
            );
        }
        out
    }

    /// Fusion, metadata and mask: sync.
    fn assemble(&self, mut per_scene: Warped, mask: Option<&Mask>) -> Result<TileStack> {
        let req = &self.request;
        let (h, w) = (self.grid.height, self.grid.width);
        let nreq = req.bands.len();
        // sat-tile-stack's rule: a pixel where all requested bands are exactly
        // 0 is nodata (here: all bands read for the request, not an extra cloud band).
        let nrule = self
            .read_bands
            .len()
            .saturating_sub(usize::from(
                req.cloud_band
                    .as_ref()
                    .is_some_and(|cb| !req.bands.contains(cb)),
            ))
            .max(1);
        per_scene.bands.par_iter_mut().for_each(|scene| {
            let k = nrule.min(scene.len());
            nan_where_all_zero(&mut scene[..k]);
        });
        let nout = nreq + usize::from(mask.is_some());
        let static_mask = match mask {
            Some(m) if !m.is_time_varying() => Some(m.rasterize(&self.grid, None)?),
            _ => None,
        };
        let t = self.bins.len();
        // Zeroed by the allocator (no fill pass): every step writes every
        // value of its block. The steps are independent: assembled in
        // parallel, each into its own (band, y, x) block of `data`.
        let mut data = Array4::zeros((t, nout, h, w));
        let block = nout * h * w;
        let flat = data
            .as_slice_mut()
            .ok_or_else(|| Error::invalid("stack", "output array is not contiguous".to_string()))?;
        let steps: Vec<StepMeta> = flat
            .par_chunks_mut(block.max(1))
            .zip(self.bins.par_iter())
            .map(|(chunk, ((day, _), idx))| {
                self.assemble_step(&per_scene, *day, idx, chunk, mask, static_mask.as_ref())
            })
            .collect::<Result<_>>()?;
        let eo = steps.iter().map(|m| m.eo_cloud_cover).collect();
        let pct = steps.iter().map(|m| m.pct_nans).collect();
        let tcf = steps.iter().map(|m| m.tile_cloud_fraction).collect();
        let items = steps.into_iter().map(|m| m.items).collect();
        let mut bands: Vec<String> = req.bands.iter().map(|b| b.to_string()).collect();
        if mask.is_some() {
            bands.push("mask".into());
        }
        Ok(TileStack {
            data,
            bands,
            days: self.bins.iter().map(|((a, _), _)| *a).collect(),
            eo_cloud_cover: eo,
            pct_nans: pct,
            tile_cloud_fraction: tcf,
            items,
            grid: self.grid.clone(),
            read_errors: Vec::new(),
        })
    }
}

/// sat-tile-stack's nodata rule on one scene's warped bands: a pixel where
/// every band is exactly 0 becomes NaN in all of them. A band not read (all
/// NaN, never 0) means the rule cannot apply.
fn nan_where_all_zero(head: &mut [Option<Vec<f32>>]) {
    if head.iter().any(Option::is_none) {
        return;
    }
    // One pass: the first band is rarely 0, so most pixels cost one load.
    let n = head.iter().flatten().map(Vec::len).min().unwrap_or(0);
    let mut bands: Vec<&mut [f32]> = head.iter_mut().flatten().map(|b| &mut b[..n]).collect();
    if let Some((first, rest)) = bands.split_first_mut() {
        for (p, v) in first.iter_mut().enumerate() {
            if *v == 0.0 && rest.iter().all(|b| b[p] == 0.0) {
                *v = f32::NAN;
                for b in rest.iter_mut() {
                    b[p] = f32::NAN;
                }
            }
        }
    }
}

/// What a read hands to its warp: the window's pixels, or its tiles for a
/// direct nearest sample.
enum Source {
    Window(Array2<f32>),
    Tiles(Option<TileWindow>),
}

/// Per-step metadata of an assembled stack.
struct StepMeta {
    eo_cloud_cover: f32,
    pct_nans: f32,
    tile_cloud_fraction: f32,
    items: Vec<String>,
}

impl StackPlan {
    /// Fuses one time step's scenes into `out` (band, y, x; NaN on entry) and
    /// burns the mask; returns the step's metadata.
    fn assemble_step(
        &self,
        per_scene: &Warped,
        day: NaiveDate,
        idx: &[usize],
        out: &mut [f32],
        mask: Option<&Mask>,
        static_mask: Option<&Array2<f32>>,
    ) -> Result<StepMeta> {
        let req = &self.request;
        let npx = self.grid.height * self.grid.width;
        let nreq = req.bands.len();
        let nread = self.read_bands.len();
        let pos = |name: &str| self.read_bands.iter().position(|b| b.as_str() == name);
        let cloud_idx = req.cloud_band.as_ref().and_then(|cb| pos(cb.as_str()));
        let scenes: Vec<&Scene> = idx.iter().map(|&i| &self.scenes[i]).collect();
        let mut by_cloud: Vec<usize> = idx.to_vec();
        by_cloud.sort_by(|&a, &b| {
            let ca = self.scenes[a].cloud_cover.unwrap_or(f64::INFINITY);
            let cb = self.scenes[b].cloud_cover.unwrap_or(f64::INFINITY);
            ca.total_cmp(&cb)
        });
        // Each read band is fused straight into its output slot when it is
        // one (the first requested band of that name), else into a buffer.
        let slot_of = |bi: usize| {
            let name = &self.read_bands[bi];
            req.bands
                .iter()
                .position(|b| b == name && derived_inputs(b).is_none())
        };
        let mut buffers: Vec<Option<Vec<f32>>> = vec![None; nread];
        for (bi, band) in self.read_bands.iter().enumerate() {
            let fuse = |dst: &mut [f32]| {
                if idx.is_empty() {
                    dst.fill(f32::NAN);
                } else if req.is_categorical(band) || req.fuse == Fusion::LeastCloudy {
                    first_valid(per_scene, &by_cloud, bi, dst);
                } else {
                    match req.fuse {
                        Fusion::First => first_valid(per_scene, idx, bi, dst),
                        Fusion::Median => reduce(per_scene, idx, bi, dst, median),
                        _ => mean_of(per_scene, idx, bi, dst),
                    }
                }
            };
            match slot_of(bi) {
                Some(oi) => fuse(&mut out[oi * npx..(oi + 1) * npx]),
                None => {
                    let mut v = vec![0f32; npx];
                    fuse(&mut v);
                    buffers[bi] = Some(v);
                }
            }
        }
        let values = |out: &[f32], bi: usize| -> Vec<f32> {
            match (slot_of(bi), &buffers[bi]) {
                (Some(oi), _) => out[oi * npx..(oi + 1) * npx].to_vec(),
                (None, Some(v)) => v.clone(),
                (None, None) => vec![f32::NAN; npx],
            }
        };
        let mut tcf = f32::NAN;
        if let Some(ci) = cloud_idx {
            let fused = values(out, ci);
            let valid = fused.iter().filter(|v| v.is_finite()).count();
            let cloudy = fused
                .iter()
                .filter(|v| matches!(**v as i64, 3 | 8 | 9 | 10) && v.is_finite())
                .count();
            if valid > 0 {
                tcf = cloudy as f32 / valid as f32;
            }
        }
        // Output bands not written above: derived ones, repeats, unknown.
        for (oi, band) in req.bands.iter().enumerate() {
            let filled = pos(band.as_str()).is_some_and(|bi| slot_of(bi) == Some(oi));
            if filled {
                continue;
            }
            let v = match (derived_inputs(band), pos(band.as_str())) {
                (Some((a, b)), _) => match (pos(a), pos(b)) {
                    (Some(a), Some(b)) => normalized_difference(&values(out, a), &values(out, b)),
                    _ => vec![f32::NAN; npx], // read_bands() always has them
                },
                (None, Some(bi)) => values(out, bi),
                (None, None) => vec![f32::NAN; npx],
            };
            out[oi * npx..(oi + 1) * npx].copy_from_slice(&v);
        }
        let nan = out[..nreq * npx].iter().filter(|v| v.is_nan()).count();
        let pct_nans = (100.0 * nan as f64 / (nreq * npx) as f64) as f32;
        let eo_cloud_cover = scenes
            .iter()
            .filter_map(|s| s.cloud_cover)
            .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.max(c))))
            .map_or(f32::NAN, |c| c as f32);
        if req.normalize {
            for (bi, band) in req.bands.iter().enumerate() {
                if !req.is_categorical(band) {
                    normalize(&mut out[bi * npx..(bi + 1) * npx]);
                }
            }
        }
        if let Some(m) = mask {
            // Undated masks are the same every step: burned once by the caller.
            let burned = match static_mask {
                Some(b) => b,
                None => &m.rasterize(&self.grid, Some(day))?,
            };
            for (o, &v) in out[nreq * npx..(nreq + 1) * npx]
                .iter_mut()
                .zip(burned.iter())
            {
                *o = v;
            }
        }
        Ok(StepMeta {
            eo_cloud_cover,
            pct_nans,
            tile_cloud_fraction: tcf,
            items: scenes.iter().map(|s| s.id.clone()).collect(),
        })
    }
}

/// The warped windows of a stack, `[scene][band]` as `h × w` values; `None`
/// where nothing was read (the asset misses the tile, or a read failed and
/// became NaN): all NaN.
#[derive(Debug)]
struct Warped {
    bands: Vec<Vec<Option<Vec<f32>>>>,
    npx: usize,
}

impl Warped {
    fn new(scenes: usize, bands: usize, npx: usize) -> Warped {
        Warped {
            bands: vec![vec![None; bands]; scenes],
            npx,
        }
    }

    fn put(&mut self, scene: usize, band: usize, a: Array2<f32>) {
        let v = if a.is_standard_layout() {
            a.into_raw_vec_and_offset().0
        } else {
            a.iter().copied().collect()
        };
        if v.len() == self.npx {
            self.bands[scene][band] = Some(v);
        }
    }

    fn band(&self, scene: usize, band: usize) -> Option<&[f32]> {
        self.bands[scene][band].as_deref()
    }
}

/// The first non-NaN value over the scenes in `order`, into `dst`.
fn first_valid(per: &Warped, order: &[usize], b: usize, dst: &mut [f32]) {
    dst.fill(f32::NAN);
    for &si in order {
        let Some(src) = per.band(si, b) else { continue };
        for (o, &v) in dst.iter_mut().zip(src) {
            if o.is_nan() && !v.is_nan() {
                *o = v;
            }
        }
    }
}

/// NaN-skipping mean over the scenes in `order`, into `dst`: an f64 sum in
/// scene order, divided once (the same arithmetic as summing a per-pixel list).
fn mean_of(per: &Warped, order: &[usize], b: usize, dst: &mut [f32]) {
    let read: Vec<&[f32]> = order.iter().filter_map(|&si| per.band(si, b)).collect();
    if let [only] = read[..] {
        // One scene: v / 1 in f64 is v again; only NaN is normalized.
        for (o, &v) in dst.iter_mut().zip(only) {
            *o = if v.is_nan() { f32::NAN } else { v };
        }
        return;
    }
    let mut sum = vec![0.0f64; dst.len()];
    let mut count = vec![0u32; dst.len()];
    for band in read {
        for ((s, n), &v) in sum.iter_mut().zip(count.iter_mut()).zip(band) {
            if !v.is_nan() {
                *s += f64::from(v);
                *n += 1;
            }
        }
    }
    for ((o, &s), &n) in dst.iter_mut().zip(&sum).zip(&count) {
        *o = if n == 0 {
            f32::NAN
        } else {
            (s / f64::from(n)) as f32
        };
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `f` of the non-NaN values over the scenes in `order`, per pixel, into `dst`.
fn reduce(per: &Warped, order: &[usize], b: usize, dst: &mut [f32], f: fn(&mut [f64]) -> f64) {
    let bands: Vec<&[f32]> = order.iter().filter_map(|&si| per.band(si, b)).collect();
    let mut buf = Vec::with_capacity(bands.len());
    for (p, o) in dst.iter_mut().enumerate() {
        buf.clear();
        buf.extend(
            bands
                .iter()
                .map(|band| band[p])
                .filter(|v| !v.is_nan())
                .map(f64::from),
        );
        *o = if buf.is_empty() {
            f32::NAN
        } else {
            f(&mut buf) as f32
        };
    }
}

/// `(a − b) / (a + b)`, NaN where either is NaN or the sum is 0.
fn normalized_difference(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let sum = x + y;
            if sum == 0.0 { f32::NAN } else { (x - y) / sum }
        })
        .collect()
}

fn normalize(a: &mut [f32]) {
    let (lo, hi) = a
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if lo.is_finite() {
        let span = hi - lo;
        for v in a.iter_mut() {
            *v = if span > 0.0 {
                (*v - lo) / span
            } else {
                0.0 * *v
            };
        }
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
        assert!(
            StackRequest::new([0.0, 0.0], BandName::parse_list("B04").unwrap(), d(2), d(1))
                .is_err()
        );
        assert_eq!("5d".parse::<Cadence>().unwrap(), Cadence::Days(5));
        assert!("0d".parse::<Cadence>().is_err());
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
        let nd = normalized_difference(&[3.0, 3.0], &[1.0, -3.0]);
        assert_eq!(nd[0], 0.5);
        assert!(nd[1].is_nan());
    }

    #[test]
    fn all_zero_pixels_become_nan_in_every_band_and_only_those() {
        let mut scene = vec![
            Some(vec![0.0, 0.0, 5.0, 0.0]),
            Some(vec![0.0, 3.0, 0.0, 0.0]),
            Some(vec![0.0, 0.0, 0.0, f32::NAN]),
        ];
        nan_where_all_zero(&mut scene);
        let bits = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| v.iter().map(|x| x.is_nan()).collect::<Vec<_>>())
        };
        // pixel 0 is 0 everywhere; pixel 3 has a NaN band: not all zero
        assert_eq!(bits(&scene[0]), Some(vec![true, false, false, false]));
        assert_eq!(bits(&scene[2]), Some(vec![true, false, false, true]));
        assert_eq!(scene[1].as_ref().unwrap()[1], 3.0);
        // a band not read: the rule cannot apply
        let mut partial = vec![Some(vec![0.0]), None];
        nan_where_all_zero(&mut partial);
        assert_eq!(partial[0], Some(vec![0.0]));
    }

    #[test]
    fn fusion_rules() {
        let mut per = Warped::new(4, 1, 3);
        for (si, v) in [
            vec![1.0, f32::NAN, 4.0],
            vec![3.0, 2.0, f32::NAN],
            vec![8.0, 6.0, f32::NAN],
        ]
        .into_iter()
        .enumerate()
        {
            per.put(si, 0, Array2::from_shape_vec((1, 3), v).unwrap());
        }
        let run = |f: &dyn Fn(&mut [f32])| {
            let mut v = vec![0.0f32; 3];
            f(&mut v);
            v
        };
        // scene 3 was not read: it counts as NaN everywhere
        assert_eq!(
            run(&|d| mean_of(&per, &[0, 3, 1], 0, d)),
            vec![2.0, 2.0, 4.0]
        );
        assert_eq!(run(&|d| mean_of(&per, &[0, 1], 0, d)), vec![2.0, 2.0, 4.0]);
        assert_eq!(
            run(&|d| reduce(&per, &[0, 1, 2], 0, d, median)),
            vec![3.0, 4.0, 4.0]
        );
        assert_eq!(
            run(&|d| first_valid(&per, &[1, 0], 0, d)),
            vec![3.0, 2.0, 4.0]
        );
        assert!(
            run(&|d| first_valid(&per, &[3], 0, d))
                .iter()
                .all(|v| v.is_nan())
        );
        let mut n = vec![2.0, 4.0, f32::NAN];
        normalize(&mut n);
        assert_eq!(n[1], 1.0);
        assert!(n[2].is_nan());
    }
}

/// Where a stack's scenes come from.
#[derive(Debug, Clone)]
pub enum Catalog {
    /// A live STAC API and collection. The client (and its connection pool)
    /// is shared by every search through this catalog: build it once with
    /// [`Catalog::stac`].
    Stac {
        /// The API client.
        client: crate::search::StacClient,
        /// Collection id.
        collection: String,
    },
    /// Items from a snapshot file or memory: no STAC API needed.
    Items(Vec<stac::Item>),
}

impl Catalog {
    /// A live STAC API at landing page `url`, searching `collection`.
    ///
    /// ```
    /// let cat = tilestack::pipeline::Catalog::stac("http://127.0.0.1:8090", "sentinel-2-l2a").unwrap();
    /// assert!(matches!(cat, tilestack::pipeline::Catalog::Stac { .. }));
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed URL.
    pub fn stac(url: &str, collection: &str) -> Result<Catalog> {
        Ok(Catalog::Stac {
            client: crate::search::StacClient::new(url)?,
            collection: collection.to_string(),
        })
    }
}

/// The items of `catalog` that `req` needs: for a STAC API one search
/// (bbox of the tile in WGS 84, the request's days), for items the items.
/// [`build`] starts with this; call it alone to keep a stack's items (and
/// then its [`StackPlan`]) and load the stack later without searching again.
///
/// # Errors
/// An invalid request, or the search's error naming the URL.
pub async fn search_items(catalog: &Catalog, req: &StackRequest) -> Result<Vec<stac::Item>> {
    req.validate()?;
    Ok(match catalog {
        Catalog::Items(items) => items.clone(),
        Catalog::Stac { client, collection } => {
            let grid = req.grid()?;
            let (minx, miny, maxx, maxy) = grid.bounds();
            let to_ll = Transformer::new(grid.epsg, Epsg::WGS84)?;
            let mut bbox = [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ];
            for (x, y) in [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy)] {
                let (lon, lat) = to_ll.transform(x, y)?;
                bbox = [
                    bbox[0].min(lon),
                    bbox[1].min(lat),
                    bbox[2].max(lon),
                    bbox[3].max(lat),
                ];
            }
            let last = req
                .bins()
                .last()
                .map(|b| b.1 - chrono::Days::new(1))
                .unwrap_or(req.end);
            let mut sreq = crate::search::SearchRequest::new(collection.clone())
                .bbox(bbox)
                .datetime(&format!("{}/{}", req.start, last))?;
            sreq.limit = Some(250);
            client.search(&sreq).await?.items
        }
    })
}

/// A stack with the plan that made it.
#[derive(Debug, Clone)]
pub struct Built {
    /// The stack.
    pub stack: TileStack,
    /// The plan (scenes, reads, warnings).
    pub plan: StackPlan,
    /// The items the catalog returned (before footprint filtering).
    pub items: Vec<stac::Item>,
}

/// Search (or take items), plan and load a stack: the whole job.
///
/// # Errors
/// Search, item conversion, read or warp errors, each naming its culprit.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::{BandName, cog::{CogReader, TileCache}, fetch::{HttpRangeClient, RetryConfig}};
/// use tilestack::pipeline::{build, Catalog, StackRequest};
/// let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04,B03,B02")?, day(1), day(30))?;
/// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30));
/// let cat = Catalog::stac("http://127.0.0.1:8090/", "sentinel-2-l2a")?;
/// let built = build(&cat, &req, &reader, None).await?;
/// println!("{:?}", built.stack.data.shape());
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
pub async fn build(
    catalog: &Catalog,
    req: &StackRequest,
    reader: &CogReader,
    mask: Option<&Mask>,
) -> Result<Built> {
    let (plan, items) = plan_stack(catalog, req).await?;
    let stack = plan.load(reader, mask).await?;
    Ok(Built { stack, plan, items })
}

/// Search (or take items) and plan a stack without reading anything: the
/// plan and the catalog's items. [`StackPlan::load`] then reads it, as often
/// as wanted (a dataset keeps plans and loads one per sample).
///
/// # Errors
/// Search or item conversion errors, each naming its culprit.
pub async fn plan_stack(
    catalog: &Catalog,
    req: &StackRequest,
) -> Result<(StackPlan, Vec<stac::Item>)> {
    let t0 = std::time::Instant::now();
    let items = search_items(catalog, req).await?;
    let scenes = crate::scene::scenes_from_items(&items, &req.read_bands())?;
    let plan = StackPlan::new(&scenes, req)?;
    if std::env::var_os("TILESTACK_TIMING").is_some() {
        eprintln!(
            "timing: search+plan {:.3} s ({} items)",
            t0.elapsed().as_secs_f64(),
            items.len()
        );
    }
    Ok((plan, items))
}
