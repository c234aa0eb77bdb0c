//! Planning a stack, fetching nothing: which scenes fall in which time
//! step, which window of which asset each needs ([`StackPlan`]), which
//! overview to read.

use chrono::NaiveDate;
use geo::Intersects;

use crate::cog::header::CogHeader;
use crate::error::{Error, Result, Warning};
use crate::geo::grid::{GeoTransform, GridSpec, PixelWindow};
use crate::geo::warp::source_window;
use crate::stac::scene::Scene;
use crate::stack::request::StackRequest;
use crate::units::{BandName, Epsg};

/// One COG window to read and warp.
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
        // The tile footprint in lon/lat, for the scene footprint test.
        let ring = grid.wgs84_ring()?;
        let tile = geo::Polygon::new(geo::LineString::from(ring.to_vec()), vec![]);
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
        let plan = StackPlan {
            request: request.clone(),
            grid,
            bins,
            scenes: picked,
            read_bands,
            reads,
            warnings,
        };
        let need = plan.memory_bytes();
        if need > request.max_bytes {
            return Err(Error::invalid(
                "stack size",
                format!(
                    "{:.1} GB needed ({} steps × {} bands × {}×{} px, and the bands being \
                     fused), over the limit of {:.1} GB (max_bytes): ask for fewer days or \
                     bands, a smaller tile or a coarser resolution, or raise max_bytes",
                    need as f64 / 1e9,
                    plan.bins.len(),
                    request.bands.len() + 1,
                    plan.grid.width,
                    plan.grid.height,
                    request.max_bytes as f64 / 1e9
                ),
            ));
        }
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
    /// room for a mask band) and each step's fused read bands, plus the
    /// scenes in flight and the open steps' running fusion. Scenes are folded
    /// into their step as they arrive, so this grows with the output, not
    /// with the number of scenes — except for `median` fusion, which keeps
    /// every window of its largest step.
    pub fn memory_bytes(&self) -> u64 {
        let px = (self.grid.width * self.grid.height) as u64 * 4;
        let nb = self.read_bands.len() as u64;
        let t = self.bins.len() as u64;
        let out = t * (self.request.bands.len() as u64 + 1) * px;
        let with_scenes = self.bins.iter().filter(|(_, i)| !i.is_empty()).count() as u64;
        let fused = with_scenes * nb * px;
        // read, and read waiting in the channel to be folded
        let scenes = self.scenes.len().min(2 * self.scenes_in_flight()) as u64;
        let in_flight = scenes * nb * px;
        let open = if self.scenes.is_empty() {
            0
        } else if self.request.fuse == crate::stack::request::Fusion::Median {
            let most = self.bins.iter().map(|(_, i)| i.len()).max().unwrap_or(0);
            most as u64 * nb * px
        } else {
            // two open steps (one finishing, the next starting), sum + count
            2 * nb * px * 3
        };
        out + fused + in_flight + open
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

/// The first plan whose shape differs from the first plan's: `(index, its
/// shape, the first shape)`. Batches need one shape.
pub(crate) fn other_shape<'a>(
    plans: impl IntoIterator<Item = &'a StackPlan>,
) -> Option<(usize, [usize; 4], [usize; 4])> {
    let mut it = plans.into_iter().enumerate();
    let (_, first) = it.next()?;
    let first = first.shape();
    it.map(|(i, p)| (i, p.shape(), first))
        .find(|(_, s, f)| s != f)
}

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
