//! The one module that wires the stages: catalog → items → scenes → plan
//! → COG reads → warp → fusion → mask + metadata → [`TileStack`]. Planning
//! fetches nothing; loading is async (reads run concurrently; decode, warp
//! and fusion run on blocking threads).

use crate::cog::{CogReader, TileWindow};
use crate::fuse::{
    Warped, first_valid, mean_of, median, nan_where_all_zero, nan_where_class, normalize,
    normalized_difference, reduce,
};
use crate::plan::{Catalog, StackPlan};
use crate::rasterize::Mask;
use crate::request::{Fusion, StackRequest, derived_inputs};
use crate::scene::{Scene, scenes_from_items};
use crate::search::SearchRequest;
use crate::stack::TileStack;
use crate::warp::{Resampling, warp};
use crate::{Error, Result};
use chrono::NaiveDate;
use futures::StreamExt;
use ndarray::{Array2, Array4};
use rayon::prelude::*;

impl StackPlan {
    /// Reads, warps, fuses and assembles the stack; `mask` becomes the last band.
    ///
    /// # Errors
    /// The first failed read (naming URL and byte range) or warp.
    pub async fn load(&self, reader: &CogReader, mask: Option<&Mask>) -> Result<TileStack> {
        self.load_reusing(reader, mask, None).await
    }

    /// As [`StackPlan::load`], writing the stack into `buffer` when it has
    /// the stack's shape (a recycled [`TileStack::data`]): a loader that
    /// loads many stacks of one shape then maps no fresh memory per stack.
    /// Every value is written; the buffer's old contents never show.
    ///
    /// # Errors
    /// As [`StackPlan::load`].
    #[tracing::instrument(level = "info", name = "load", skip_all, fields(scenes = self.scenes.len(), steps = self.bins.len()))]
    pub async fn load_reusing(
        &self,
        reader: &CogReader,
        mask: Option<&Mask>,
        buffer: Option<Array4<f32>>,
    ) -> Result<TileStack> {
        let (h, w) = (self.grid.height, self.grid.width);
        let nb = self.read_bands.len();
        let grid = self.grid.clone();
        let resampling = self.request.resampling;
        let plan = self;
        let t0 = std::time::Instant::now();
        // Every read, concurrently; warp on blocking threads as reads land.
        let results: Vec<(usize, usize, Result<Array2<f32>>)> =
            futures::stream::iter(self.reads.iter().cloned())
                .map(|rp| {
                    let grid = grid.clone();
                    async move {
                        let (scene, band) = (rp.scene, rp.band);
                        let one = async move {
                            let header = if plan.may_use_overview(&rp) {
                                Some(reader.header(&rp.href).await?)
                            } else {
                                None
                            };
                            let Some((ifd, win, wt)) = plan.read_level(&rp, header.as_deref())?
                            else {
                                return Ok(Array2::from_elem((grid.height, grid.width), f32::NAN));
                            };
                            // Nearest within one CRS samples the cached tiles
                            // directly: no window copy, one pass.
                            let direct = rp.epsg == grid.epsg && resampling == Resampling::Nearest;
                            let src = if direct {
                                Source::Tiles(reader.window_tiles(&rp.href, ifd, win).await?)
                            } else {
                                Source::Window(reader.read_window(&rp.href, ifd, win).await?)
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
                                .map_err(|e| Error::task("warp", e))??;
                            Ok(warped)
                        };
                        (scene, band, one.await)
                    }
                })
                .buffer_unordered(32)
                .collect()
                .await;
        // In plan order, whatever order the reads finished in: the error
        // reported for a failing stack is the same on every run.
        let mut results = results;
        results.sort_by_key(|(si, bi, _)| (*si, *bi));
        let mut per_scene = Warped::new(self.scenes.len(), nb, h * w);
        let mut read_errors = Vec::new();
        for (si, bi, r) in results {
            match r {
                Ok(a) => per_scene.put(si, bi, a),
                // The window stays NaN; the failure is recorded, never a silent zero.
                Err(e) if self.request.errors_as_nodata => read_errors.push(format!(
                    "{} {}: {}",
                    self.scenes[si].id,
                    self.read_bands[bi],
                    e.chain()
                )),
                Err(e) => return Err(e),
            }
        }
        read_errors.sort();
        let t_read = t0.elapsed();
        let plan = self.clone();
        let mask = mask.cloned();
        let out =
            tokio::task::spawn_blocking(move || plan.assemble(per_scene, mask.as_ref(), buffer))
                .await
                .map_err(|e| Error::task("assemble", e))?
                .map(|mut st| {
                    st.read_errors = read_errors;
                    st
                });
        tracing::info!(
            reads = self.reads.len(),
            read_errors = out.as_ref().map_or(0, |s| s.read_errors.len()),
            read_warp_ms = t_read.as_secs_f64() * 1e3,
            fuse_mask_ms = (t0.elapsed() - t_read).as_secs_f64() * 1e3,
            "stack loaded"
        );
        out
    }

    /// Fusion, metadata and mask: sync.
    fn assemble(
        &self,
        mut per_scene: Warped,
        mask: Option<&Mask>,
        buffer: Option<Array4<f32>>,
    ) -> Result<TileStack> {
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
        let cloud_idx = req
            .cloud_band
            .as_ref()
            .and_then(|cb| self.read_bands.iter().position(|b| b == cb))
            .filter(|_| !req.cloud_mask.is_empty());
        per_scene.bands.par_iter_mut().for_each(|scene| {
            let k = nrule.min(scene.len());
            nan_where_all_zero(&mut scene[..k]);
            if let Some(ci) = cloud_idx {
                nan_where_class(scene, ci, &req.cloud_mask);
            }
        });
        let nout = nreq + usize::from(mask.is_some());
        let static_mask = match mask {
            Some(m) if !m.is_time_varying() => Some(m.rasterize(&self.grid, None)?),
            _ => None,
        };
        let t = self.bins.len();
        // Zeroed by the allocator (no fill pass), or a recycled buffer: every
        // step writes every value of its block. The steps are independent:
        // assembled in parallel, each into its own (band, y, x) block of `data`.
        let mut data = match buffer {
            Some(b) if b.dim() == (t, nout, h, w) && b.is_standard_layout() => b,
            _ => Array4::zeros((t, nout, h, w)),
        };
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

/// The items of `catalog` that `req` needs: for a STAC API one search
/// (bbox of the tile in WGS 84, the request's days), for items the items.
/// [`build`] starts with this; call it alone to keep a stack's items (and
/// then its [`StackPlan`]) and load the stack later without searching again.
///
/// # Errors
/// An invalid request, or the search's error naming the URL.
pub async fn search_items(catalog: &Catalog, req: &StackRequest) -> Result<Vec<stac::Item>> {
    search_items_query(catalog, req, None).await
}

/// [`search_items`] with a STAC `query` (e.g. on `eo:cloud_cover`) sent to a
/// STAC API; items of a snapshot are returned unfiltered (filter the scenes).
pub(crate) async fn search_items_query(
    catalog: &Catalog,
    req: &StackRequest,
    query: Option<&serde_json::Value>,
) -> Result<Vec<stac::Item>> {
    req.validate()?;
    Ok(match catalog {
        Catalog::Items(items) => items.clone(),
        Catalog::Stac { client, collection } => {
            let bbox = req.grid()?.wgs84_bbox()?;
            let last = req
                .bins()
                .last()
                .map(|b| b.1 - chrono::Days::new(1))
                .unwrap_or(req.end);
            let mut sreq = SearchRequest::new(collection.clone())
                .bbox(bbox)
                .datetime(&format!("{}/{}", req.start, last))?;
            sreq.limit = Some(250);
            if let Some(q) = query {
                sreq = sreq.query(q.clone());
            }
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
/// use tilestack::{build, BandName, Catalog, CogReader, HttpRangeClient, RetryConfig, StackRequest, TileCache};
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
    let scenes = scenes_from_items(&items, &req.read_bands())?;
    let plan = StackPlan::new(&scenes, req)?;
    tracing::info!(
        items = items.len(),
        scenes = plan.scenes.len(),
        reads = plan.reads.len(),
        ms = t0.elapsed().as_secs_f64() * 1e3,
        "planned"
    );
    Ok((plan, items))
}
