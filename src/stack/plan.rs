//! Planning a stack, fetching nothing: which scenes fall in which time
//! step, which window of which asset each needs ([`StackPlan`]), which
//! overview to read.

use chrono::{DateTime, NaiveDate, Utc};
use geo::Intersects;

use crate::cog::header::CogHeader;
use crate::error::{Error, Result, Warning};
use crate::geo::grid::{GeoTransform, GridSpec, PixelWindow};
use crate::geo::warp::source_window;
use crate::stac::scene::{AssetFormat, Scene};
use crate::stack::request::StackRequest;
use crate::units::{BandName, Epsg};

/// One window of a COG or a Zarr array to read and warp.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    /// Index into [`StackPlan::scenes`].
    pub scene: usize,
    /// Index into [`StackPlan::read_bands`].
    pub band: usize,
    /// Asset href.
    pub href: String,
    /// Source window, clipped to the image.
    pub window: PixelWindow,
    /// Transform of the window's top-left pixel.
    pub window_transform: GeoTransform,
    /// Source CRS.
    pub epsg: Epsg,
    /// Nodata of the asset (applied by the reader too, from the COG).
    pub nodata: Option<f64>,
    /// Sentinel-2 harmonization: DN to subtract (clipping at it) before
    /// the scale, when [`StackRequest::harmonize`] is on and the asset
    /// needs it (see [`Harmonize`](crate::stac::scene::Harmonize)).
    pub dn_offset: Option<f64>,
    /// Scale/offset to apply (`raster:bands`, as harmonization leaves it), if any.
    /// For a Zarr array, [`CfUse`](crate::stac::scene::CfUse) may replace
    /// this and `dn_offset` from its CF attributes when it is read.
    pub scale_offset: Option<(f64, f64)>,
    /// COG or Zarr (and what a Zarr array's CF attributes do).
    pub format: AssetFormat,
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
    pub warnings: Vec<Warning>,
}

impl StackPlan {
    /// Plans a stack over `scenes` (any order; see [`scenes_from_items`](crate::stac::scene::scenes_from_items)).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad request, [`Error::Item`] when a scene lacks a band.
    pub fn new(scenes: &[Scene], request: &StackRequest) -> Result<StackPlan> {
        request.validate()?;
        let grid = request.grid()?;
        let read_bands = request.read_bands();
        let bins_t = request.bins();
        let tile = tile_polygon(&grid)?;
        let picked: Vec<Scene> = pick_scenes(scenes, 0..scenes.len(), request, &tile)
            .into_iter()
            .map(|i| scenes[i].clone())
            .collect();
        let mut warnings = Vec::new();
        if picked.is_empty() {
            warnings.push(Warning::NoScenes {
                centroid: request.centroid,
                start: request.start,
                end: request.end,
            });
        }
        let mut reads = Vec::new();
        for (si, scene) in picked.iter().enumerate() {
            for (bi, band) in read_bands.iter().enumerate() {
                let a = scene.assets.get(band).ok_or_else(|| {
                    Error::item(
                        &scene.id,
                        format!("band {band} was not converted (ask scenes_from_items for it)"),
                    )
                })?;
                let (c0, r0, c1, r1) =
                    source_window(&a.transform, a.epsg, &grid, request.resampling)?;
                let Some(window) = PixelWindow::from_bounds(c0, r0, c1, r1, a.shape.1, a.shape.0)
                else {
                    continue; // this asset's grid misses the tile
                };
                let (dn_offset, scale_offset) = a.radiometry(request.harmonize);
                reads.push(ReadPlan {
                    scene: si,
                    band: bi,
                    href: a.href.clone(),
                    window,
                    window_transform: window.transform(&a.transform),
                    epsg: a.epsg,
                    nodata: a.nodata,
                    dn_offset,
                    scale_offset,
                    format: a.format,
                });
            }
        }
        let bins = bins_t
            .iter()
            .zip(bin_members(&picked, &bins_t))
            .map(|(&bin, idx)| (bin, idx))
            .collect();
        let plan = StackPlan {
            request: request.clone(),
            grid,
            bins,
            scenes: picked,
            read_bands,
            reads,
            warnings,
        };
        check_memory(&plan.request, &plan.grid, plan.memory_bytes())?;
        Ok(plan)
    }

    /// `[T, C, H, W]` of the stack: steps, requested bands (no mask band), pixels.
    pub fn shape(&self) -> [usize; 4] {
        [
            self.bins.len(),
            self.request.bands.len(),
            self.grid.height,
            self.grid.width,
        ]
    }

    /// Bytes the stack takes in memory while it loads: the output (with
    /// room for a mask band), the scenes in flight and the steps being
    /// fused. A step's scenes wait for each other and the step is then
    /// fused straight into the output by one of a few workers (read bands
    /// that are no output band are kept beside it meanwhile), so this grows
    /// with the output and the largest step, not with the number of scenes.
    pub fn memory_bytes(&self) -> u64 {
        let sizes: Vec<usize> = self.bins.iter().map(|(_, i)| i.len()).collect();
        memory_for(
            &self.request,
            &self.grid,
            self.read_bands.len(),
            self.scenes.len(),
            &sizes,
        )
    }

    /// Source pixels the plan will read (an estimate of work before `load`).
    pub fn source_pixels(&self) -> u64 {
        self.reads.iter().map(|r| r.window.pixels()).sum()
    }

    /// Rough bytes to fetch: source pixels × 2 bytes (uint16) × 0.6, a typical
    /// DEFLATE ratio of Sentinel-2 COGs, plus one 16 KiB header per asset.
    pub fn estimated_bytes(&self) -> u64 {
        let hrefs: std::collections::HashSet<&str> =
            self.reads.iter().map(|r| r.href.as_str()).collect();
        (self.source_pixels() as f64 * 2.0 * 0.6) as u64 + hrefs.len() as u64 * 16 * 1024
    }
}

impl StackPlan {
    /// Whether `rp` may read an overview: overviews are allowed and the
    /// target grid is at least twice as coarse as the asset. Only then does
    /// the choice of IFD need the COG header.
    pub(crate) fn may_use_overview(&self, rp: &ReadPlan) -> bool {
        self.request.use_overviews
            && self.grid.transform.dx.abs() >= 2.0 * rp.window_transform.dx.abs()
    }

    /// The IFD, window and window transform that `rp` reads, given the
    /// asset's header `h` when [`may_use_overview`](Self::may_use_overview)
    /// (else full resolution, `h` unused); `None` when the window misses the
    /// chosen overview (the read is all NaN, nothing fetched).
    pub(crate) fn read_level(
        &self,
        rp: &ReadPlan,
        h: Option<&CogHeader>,
    ) -> Result<Option<(usize, PixelWindow, GeoTransform)>> {
        let full = Some((0, rp.window, rp.window_transform));
        let (Some(h), true) = (h, self.may_use_overview(rp)) else {
            return Ok(full);
        };
        let Some((i, t)) = pick_overview(h, self.grid.transform.dx.abs()) else {
            return Ok(full);
        };
        let (c0, r0, c1, r1) = source_window(&t, rp.epsg, &self.grid, self.request.resampling)?;
        let Some(info) = h.ifds.get(i) else {
            return Ok(full);
        };
        Ok(
            PixelWindow::from_bounds(c0, r0, c1, r1, info.width, info.height)
                .map(|w| (i, w, w.transform(&t))),
        )
    }
}

/// The coarsest overview of `h` whose pixels are not coarser than `target`
/// (CRS units), with its transform; `None` when full resolution fits best.
pub(crate) fn pick_overview(h: &CogHeader, target: f64) -> Option<(usize, GeoTransform)> {
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

/// [`StackPlan::memory_bytes`] from counts: `read_bands` bands read,
/// `scenes` scenes, `step_scenes` scenes in each time step.
pub(crate) fn memory_for(
    request: &StackRequest,
    grid: &GridSpec,
    read_bands: usize,
    scenes: usize,
    step_scenes: &[usize],
) -> u64 {
    let px = (grid.width * grid.height) as u64 * 4;
    let nb = read_bands as u64;
    let t = step_scenes.len() as u64;
    let out = t * (request.bands.len() as u64 + 1) * px;
    // the read bands a step being assembled keeps beside the output (a
    // band that is no output slot: a cloud band not asked for, the inputs
    // of derived bands); the others are fused straight into the output
    let with_scenes = step_scenes.iter().filter(|&&n| n > 0).count() as u64;
    let fused = with_scenes.min(FOLDS_IN_FLIGHT as u64) * nb * px;
    // read, and read waiting in the channel to be folded
    let in_flight = scenes.min(2 * scenes_in_flight(read_bands)) as u64 * nb * px;
    let open = if scenes == 0 {
        0
    } else {
        // the step filling and the steps being fused: up to STEP_BUFFER
        // windows each, or a fold's running sum + count and the scene
        // being folded (the median keeps every window of its step)
        let most = step_scenes.iter().copied().max().unwrap_or(0) as u64;
        let held = if request.fuse == crate::stack::request::Fusion::Median {
            most + 1
        } else {
            most.min(STEP_BUFFER as u64) + 4
        };
        (1 + FOLDS_IN_FLIGHT as u64) * held * nb * px
    };
    out + fused + in_flight + open
}

/// Scenes read at once by a load reading `read_bands` bands per scene:
/// enough for about [`READS_IN_FLIGHT`] concurrent reads, at least 2.
pub(crate) fn scenes_in_flight(read_bands: usize) -> usize {
    (READS_IN_FLIGHT / read_bands.max(1)).max(2)
}

/// [`Error::Invalid`] when a stack of `request` on `grid` needs `need`
/// bytes, over [`StackRequest::max_bytes`].
pub(crate) fn check_memory(request: &StackRequest, grid: &GridSpec, need: u64) -> Result<()> {
    if need <= request.max_bytes {
        return Ok(());
    }
    Err(Error::invalid(
        "stack size",
        format!(
            "{:.1} GB needed ({} steps × {} bands × {}×{} px, and the bands being \
             fused), over the limit of {:.1} GB (max_bytes): ask for fewer days or \
             bands, a smaller tile or a coarser resolution, or raise max_bytes",
            need as f64 / 1e9,
            request.bins().len(),
            request.bands.len() + 1,
            grid.width,
            grid.height,
            request.max_bytes as f64 / 1e9
        ),
    ))
}

/// The tile's outline in lon/lat, for the scene footprint test.
///
/// # Errors
/// A grid whose CRS cannot be projected to WGS 84.
pub(crate) fn tile_polygon(grid: &GridSpec) -> Result<geo::Polygon<f64>> {
    let ring = grid.wgs84_ring()?;
    Ok(geo::Polygon::new(
        geo::LineString::from(ring.to_vec()),
        vec![],
    ))
}

/// The scenes a stack of `request` uses, of `scenes[i]` for the `candidates`
/// `i` (`tile` its [`tile_polygon`]): acquired in the request's days and
/// with a footprint that meets the tile; in time order, ties by id (then
/// candidate order). What [`StackPlan::new`] keeps — and what a dataset
/// keeps per sample, so that the plan it builds later is the same.
pub(crate) fn pick_scenes(
    scenes: &[Scene],
    candidates: impl IntoIterator<Item = usize>,
    request: &StackRequest,
    tile: &geo::Polygon<f64>,
) -> Vec<usize> {
    pick_scenes_in(scenes, candidates, time_bounds(request), tile)
}

/// The first instant of a stack's days and the first after them: scenes
/// acquired in `[t0, t1)` belong to it.
pub(crate) type TimeBounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// [`TimeBounds`] of `request`: its first day to the end of its last step.
pub(crate) fn time_bounds(request: &StackRequest) -> TimeBounds {
    (
        request.start.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
        request
            .bins()
            .last()
            .and_then(|b| b.1.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()),
    )
}

/// [`pick_scenes`] with the request's [`time_bounds`] made once (a dataset
/// picks for every sample of a window with the same bounds).
pub(crate) fn pick_scenes_in(
    scenes: &[Scene],
    candidates: impl IntoIterator<Item = usize>,
    (t0, t1): TimeBounds,
    tile: &geo::Polygon<f64>,
) -> Vec<usize> {
    let mut picked: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| {
            scenes.get(i).is_some_and(|s| {
                t0.is_none_or(|t| s.datetime >= t)
                    && t1.is_none_or(|t| s.datetime < t)
                    && s.footprint.intersects(tile)
            })
        })
        .collect();
    picked.sort_by(|&a, &b| {
        let (a, b) = (&scenes[a], &scenes[b]);
        a.datetime.cmp(&b.datetime).then_with(|| a.id.cmp(&b.id))
    });
    picked
}

/// For each time step `[a, b)`, the indexes of the `scenes` (time order)
/// acquired in it.
pub(crate) fn bin_members<S: std::borrow::Borrow<Scene>>(
    scenes: &[S],
    bins: &[(NaiveDate, NaiveDate)],
) -> Vec<Vec<usize>> {
    let days: Vec<NaiveDate> = scenes
        .iter()
        .map(|s| s.borrow().datetime.date_naive())
        .collect();
    bins.iter()
        .map(|&(a, b)| {
            days.iter()
                .enumerate()
                .filter(|&(_, &d)| d >= a && d < b)
                .map(|(i, _)| i)
                .collect()
        })
        .collect()
}

/// Reads in flight at once while a stack loads. Scenes return in plan order,
/// so a slow scene holds the ones behind it: 32 (the flat read queue's
/// figure before scenes were folded as they arrive) cost the cold Oakland
/// stack ~15 %; at 96 it is as fast as before (same-run benchmark).
pub(crate) const READS_IN_FLIGHT: usize = 96;

/// Scenes a step of a loading stack holds before it is fused; a step of
/// more scenes is folded scene by scene as they arrive, so that a step of
/// many scenes (a month, or thousands of overlapping items) never holds
/// them all.
pub(crate) const STEP_BUFFER: usize = 4;

/// Steps of a loading stack folded at once on blocking threads while more
/// scenes arrive (see [`StackPlan::memory_bytes`]).
pub(crate) const FOLDS_IN_FLIGHT: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_over_the_memory_limit_is_refused_before_anything_is_allocated() {
        let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap_or_default();
        let mut req = StackRequest::new(
            [-122.33, 37.81],
            BandName::parse_list("B04").unwrap_or_default(),
            day(1),
            day(31),
        )
        .expect("request");
        req.tile_size = 16384;
        let err = StackPlan::new(&[], &req).expect_err("66 GB is over 8 GiB");
        let msg = err.to_string();
        assert!(
            msg.contains("66.6 GB needed") && msg.contains("limit of 8.6 GB"),
            "{msg}"
        );
        req.tile_size = 256;
        let plan = StackPlan::new(&[], &req).expect("a small stack");
        assert_eq!(plan.memory_bytes(), 31 * 2 * 256 * 256 * 4);
    }
}
