//! The one module that wires the stages: catalog → items → scenes → plan
//! → COG reads → warp → fusion → mask + metadata → [`TileStack`]. Planning
//! fetches nothing; loading is async (reads run concurrently; decode, warp
//! and fusion run on blocking threads).

use futures::StreamExt;
use ndarray::{Array2, Array4};
use std::sync::Arc;

use crate::cog::CogReader;
use crate::error::{Error, Result, Warning};
use crate::geo::rasterize::Mask;

use crate::stac::catalog::Catalog;
use crate::stac::client::SearchRequest;
use crate::stac::scene::{Scene, scenes_from_items, zarr_assets_without_grid};
use crate::stack::TileStack;
use crate::stack::fuse::{
    BandFold, FoldRule, into_values, nan_where_all_zero, nan_where_flagged, normalize,
    normalized_difference, to_decibels,
};
use crate::stack::plan::{FOLDS_IN_FLIGHT, ReadPlan, STEP_BUFFER, StackPlan};
use crate::stack::read::zarr_reader;
use crate::stack::request::{Fusion, StackRequest, bit_mask, derived_inputs};
use crate::units::BandName;
use crate::zarr::ZarrReader;

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
        let nb = self.read_bands.len();
        let t0 = std::time::Instant::now();
        // Each scene's reads together (plan order), the scenes in flight at
        // once bounded so that about READS_IN_FLIGHT reads run concurrently.
        let mut by_scene: Vec<Vec<ReadPlan>> = vec![Vec::new(); self.scenes.len()];
        for rp in &self.reads {
            if let Some(v) = by_scene.get_mut(rp.scene) {
                v.push(rp.clone());
            }
        }
        // The reads run in their own task, so that handing a scene on never
        // holds them up; scenes come back through a bounded channel.
        let plan = Arc::new(self.clone());
        let k = self.scenes_in_flight();
        let (tx, mut rx) = tokio::sync::mpsc::channel(k);
        let driver = {
            let (plan, reader) = (plan.clone(), reader.clone());
            let reads = async move {
                let plan = &plan;
                let reader = &reader;
                let scenes = futures::stream::iter(by_scene.into_iter().enumerate())
                    .map(|(si, reads)| async move {
                        let read = reads.into_iter().map(|rp| async move {
                            let bi = rp.band;
                            (bi, plan.read_one(reader, rp).await)
                        });
                        (si, futures::future::join_all(read).await)
                    })
                    // In plan order, whatever order the reads finish in: scenes
                    // are folded in the same order on every run (the same sums,
                    // and the same first error for a failing stack).
                    .buffered(k);
                futures::pin_mut!(scenes);
                while let Some(scene) = scenes.next().await {
                    if tx.send(scene).await.is_err() {
                        return; // the load stopped (an error): read no more
                    }
                }
            };
            AbortOnDrop(tokio::spawn(tracing::Instrument::in_current_span(reads)))
        };
        // The steps are fused and assembled on their own threads, straight
        // into the output, while the reads go on (see `StepFuser`).
        let (scene_tx, scene_rx) = tokio::sync::mpsc::channel(k);
        // Set once every scene is in: only then are the steps left open
        // fused (a failed or dropped load leaves them).
        let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fuser = {
            let (plan, complete) = (plan.clone(), complete.clone());
            let mask = mask.cloned();
            tokio::task::spawn_blocking(move || {
                StepFuser::new(&plan, mask.as_ref(), &complete).run(scene_rx, buffer)
            })
        };
        let mut read_errors = Vec::new();
        while let Some((si, results)) = rx.recv().await {
            let mut windows: Vec<Option<Vec<f32>>> = vec![None; nb];
            for (bi, r) in results {
                match r {
                    Ok(a) => windows[bi] = Some(into_values(a)),
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
            if scene_tx.send((si, windows)).await.is_err() {
                break; // the fuser stopped: its error is below
            }
        }
        complete.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(scene_tx);
        drop(driver);
        read_errors.sort();
        let t_read = t0.elapsed();
        let (data, steps, peak) = fuser.await.map_err(|e| Error::task("fuse", e))??;
        tracing::debug!(peak_window_bytes = peak, "steps fused");
        let out = self.assembled(data, steps, mask.is_some(), read_errors);
        tracing::info!(
            reads = self.reads.len(),
            read_errors = out.read_errors.len(),
            read_warp_ms = t_read.as_secs_f64() * 1e3,
            fuse_mask_ms = (t0.elapsed() - t_read).as_secs_f64() * 1e3,
            "stack loaded"
        );
        Ok(out)
    }

    /// Scenes read at once: enough for about [`READS_IN_FLIGHT`](crate::stack::plan::READS_IN_FLIGHT)
    /// concurrent reads, at least 2.
    pub(crate) fn scenes_in_flight(&self) -> usize {
        crate::stack::plan::scenes_in_flight(self.read_bands.len())
    }

    /// Whether band `bi` takes the least cloudy valid scene first
    /// (categorical bands, and `least-cloudy` fusion).
    fn ranked_by_cloud(&self, bi: usize) -> bool {
        self.request.is_categorical(&self.read_bands[bi])
            || self.request.fuse == Fusion::LeastCloudy
    }

    /// How band `bi` of a step is fused.
    fn fold_rule(&self, bi: usize) -> FoldRule {
        if self.ranked_by_cloud(bi) {
            return FoldRule::Ranked;
        }
        match self.request.fuse {
            Fusion::First => FoldRule::Ranked,
            Fusion::Median => FoldRule::Median,
            _ => FoldRule::Mean,
        }
    }

    /// Each scene's rank in its step (`idx` order) by cloud cover, least
    /// cloudy first, ties (and no cover, last) in plan order.
    fn cloud_ranks(&self, idx: &[usize]) -> Vec<u32> {
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by(|&a, &b| {
            let ca = self.scenes[idx[a]].cloud_cover.unwrap_or(f64::INFINITY);
            let cb = self.scenes[idx[b]].cloud_cover.unwrap_or(f64::INFINITY);
            ca.total_cmp(&cb)
        });
        let mut rank = vec![0u32; idx.len()];
        for (r, &k) in order.iter().enumerate() {
            rank[k] = r as u32;
        }
        rank
    }

    /// The per-scene rules before fusion: all-bands-zero is no data, and
    /// cloud masking by class or bit.
    fn scene_rules(&self, scene: &mut [Option<Vec<f32>>]) {
        let req = &self.request;
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
        let k = nrule.min(scene.len());
        if req.zero_is_nodata {
            nan_where_all_zero(&mut scene[..k]);
        }
        let cloud_idx = req
            .cloud_band
            .as_ref()
            .and_then(|cb| self.read_bands.iter().position(|b| b == cb))
            .filter(|_| !req.cloud_mask.is_empty() || !req.cloud_mask_bits.is_empty());
        if let Some(ci) = cloud_idx {
            let mask_bits = bit_mask(&req.cloud_mask_bits);
            nan_where_flagged(scene, ci, |v: f32| {
                v.is_finite()
                    && v >= 0.0
                    && ((v <= f32::from(u16::MAX) && req.cloud_mask.contains(&(v as u16)))
                        || (v as u32) & mask_bits != 0)
            });
        }
    }

    /// The stack from its fused, assembled output and each step's metadata.
    fn assembled(
        &self,
        data: Array4<f32>,
        steps: Vec<StepMeta>,
        with_mask: bool,
        read_errors: Vec<String>,
    ) -> TileStack {
        let mut bands: Vec<String> = self.request.bands.iter().map(|b| b.to_string()).collect();
        if with_mask {
            bands.push("mask".into());
        }
        let eo = steps.iter().map(|m| m.eo_cloud_cover).collect();
        let pct = steps.iter().map(|m| m.pct_nans).collect();
        let tcf = steps.iter().map(|m| m.tile_cloud_fraction).collect();
        TileStack {
            data,
            bands,
            days: self.bins.iter().map(|((a, _), _)| *a).collect(),
            eo_cloud_cover: eo,
            pct_nans: pct,
            tile_cloud_fraction: tcf,
            items: steps.into_iter().map(|m| m.items).collect(),
            grid: self.grid.clone(),
            read_errors,
        }
    }
}

/// A task aborted when its handle is dropped: a load that returns early
/// (an error) stops its reads.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A scene's windows, one per read band (`None`: not read).
type Windows = Vec<Option<Vec<f32>>>;

/// The time steps of a loading stack, fused and assembled as their scenes
/// arrive: on a blocking thread of its own, it owns the output array, keeps
/// each open step's scenes (in plan order; a step of more than
/// [`STEP_BUFFER`] scenes folds them as they come, so a step of thousands of
/// scenes never holds them all), and hands each complete step, with its own
/// block of the output, to one of [`FOLDS_IN_FLIGHT`] workers that fuse it
/// straight into that block and finish it there (derived bands, decibels,
/// metadata, normalization, mask). Steps are independent, so they are
/// fused while the reads still run and the load ends with the last step,
/// not with a pass over the whole stack.
struct StepFuser<'a> {
    plan: &'a StackPlan,
    mask: Option<&'a Mask>,
    /// Set by the load once every scene is in: the steps still open are
    /// then fused with what they have (after a failed load they are left).
    complete: &'a std::sync::atomic::AtomicBool,
    /// Step of each scene, and its place in that step's scene list.
    step_of: Vec<Option<(usize, usize)>>,
}

/// A step whose scenes are still arriving.
enum OpenStep {
    /// A step of at most [`STEP_BUFFER`] scenes: their windows wait (by
    /// place in the step) and the step is fused when the last arrives.
    Buffered {
        scenes: Vec<Option<Windows>>,
        left: usize,
    },
    /// A larger step: each scene folded into the step's running fusion as
    /// it arrives.
    Folding { fold: StepFold, left: usize },
}

impl OpenStep {
    fn left(&self) -> usize {
        match self {
            OpenStep::Buffered { left, .. } | OpenStep::Folding { left, .. } => *left,
        }
    }

    fn window_bytes(&self) -> usize {
        match self {
            OpenStep::Buffered { scenes, .. } => scenes
                .iter()
                .flatten()
                .flatten()
                .flatten()
                .map(|w| w.len() * std::mem::size_of::<f32>())
                .sum(),
            OpenStep::Folding { .. } => 0,
        }
    }
}

/// One step's fusion so far: a fold per read band (made on first use) and
/// each of its scenes' rank by cloud cover.
struct StepFold {
    folds: Vec<Option<BandFold>>,
    cloud_rank: Vec<u32>,
}

/// A complete step, handed to a worker with its block of the output.
struct StepJob<'o> {
    k: usize,
    out: &'o mut [f32],
    scenes: StepScenes,
}

/// What a step fuses.
enum StepScenes {
    /// Its scenes' windows, by place in the step.
    Buffered(Vec<Option<Windows>>),
    /// Its scenes folded as they arrived.
    Folded(StepFold),
    /// No scene.
    None,
}

/// The fused output, each step's metadata, and the most window bytes
/// the open steps held at once (for the logs).
type Fused = (Array4<f32>, Vec<StepMeta>, usize);

impl<'a> StepFuser<'a> {
    fn new(
        plan: &'a StackPlan,
        mask: Option<&'a Mask>,
        complete: &'a std::sync::atomic::AtomicBool,
    ) -> StepFuser<'a> {
        let mut step_of = vec![None; plan.scenes.len()];
        for (k, (_, idx)) in plan.bins.iter().enumerate() {
            for (j, &si) in idx.iter().enumerate() {
                if let Some(s) = step_of.get_mut(si) {
                    *s = Some((k, j));
                }
            }
        }
        StepFuser {
            plan,
            mask,
            complete,
            step_of,
        }
    }

    /// Fuses the scenes of `scenes` (sent in plan order; the channel closes
    /// when the reads are done) into `buffer` when it has the stack's shape,
    /// else into a new array.
    ///
    /// # Errors
    /// A mask that fails to rasterize, or a worker that failed (panicked).
    fn run(
        self,
        mut scenes: tokio::sync::mpsc::Receiver<(usize, Windows)>,
        buffer: Option<Array4<f32>>,
    ) -> Result<Fused> {
        let plan = self.plan;
        let (h, w) = (plan.grid.height, plan.grid.width);
        let nout = plan.request.bands.len() + usize::from(self.mask.is_some());
        let t = plan.bins.len();
        // Undated masks are the same every step: burned once.
        let static_mask = match self.mask {
            Some(m) if !m.is_time_varying() => Some(m.rasterize(&plan.grid, None)?),
            _ => None,
        };
        // Zeroed by the allocator (no fill pass), or a recycled buffer: every
        // step writes every value of its block.
        let mut data = match buffer {
            Some(b) if b.dim() == (t, nout, h, w) && b.is_standard_layout() => b,
            _ => Array4::zeros((t, nout, h, w)),
        };
        let block = (nout * h * w).max(1);
        let flat = data
            .as_slice_mut()
            .ok_or_else(|| Error::internal("stack", "output array is not contiguous"))?;
        let mut blocks: Vec<Option<&mut [f32]>> = flat.chunks_mut(block).map(Some).collect();
        let mut metas: Vec<Option<StepMeta>> = (0..t).map(|_| None).collect();
        let mut peak = 0usize;
        let static_mask = static_mask.as_ref();
        std::thread::scope(|s| -> Result<()> {
            // A rendezvous: a complete step waits for a free worker, and the
            // reads wait behind it, so windows never pile up behind slow folds.
            let (jobs, job_rx) = std::sync::mpsc::sync_channel::<StepJob<'_>>(0);
            // Held by the workers only: when they are all gone (an error),
            // a step handed on finds no one and the dispatch stops.
            let job_rx = Arc::new(std::sync::Mutex::new(job_rx));
            let workers: Vec<_> = (0..FOLDS_IN_FLIGHT)
                .map(|_| {
                    let job_rx = job_rx.clone();
                    s.spawn(move || -> Result<Vec<(usize, StepMeta)>> {
                        let mut done = Vec::new();
                        loop {
                            let job = job_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                            let Ok(job) = job else { return Ok(done) };
                            let meta = plan.assemble_step(
                                job.k,
                                job.scenes,
                                job.out,
                                self.mask,
                                static_mask,
                            )?;
                            done.push((job.k, meta));
                        }
                    })
                })
                .collect();
            drop(job_rx);
            let mut send = |k: usize, scenes: StepScenes| {
                if let Some(out) = blocks.get_mut(k).and_then(Option::take) {
                    // A worker gone (its error is collected below): stop.
                    jobs.send(StepJob { k, out, scenes }).is_ok()
                } else {
                    true
                }
            };
            let mut open: std::collections::BTreeMap<usize, OpenStep> = Default::default();
            'scenes: while let Some((si, windows)) = scenes.blocking_recv() {
                let Some(Some((k, j))) = self.step_of.get(si).copied() else {
                    continue; // in no step
                };
                let n = plan.bins[k].1.len();
                let step = open.entry(k).or_insert_with(|| {
                    if n <= STEP_BUFFER {
                        OpenStep::Buffered {
                            scenes: vec![None; n],
                            left: n,
                        }
                    } else {
                        OpenStep::Folding {
                            fold: plan.step_fold(k),
                            left: n,
                        }
                    }
                });
                match step {
                    OpenStep::Buffered { scenes, left } => {
                        if let Some(slot) = scenes.get_mut(j) {
                            *slot = Some(windows);
                        }
                        *left = left.saturating_sub(1);
                    }
                    // Scenes arrive in plan order: folded in that order, the
                    // same sums as a fold of the whole step.
                    OpenStep::Folding { fold, left } => {
                        plan.fold_scene(fold, j, windows);
                        *left = left.saturating_sub(1);
                    }
                }
                peak = peak.max(open.values().map(OpenStep::window_bytes).sum());
                if open.get(&k).is_some_and(|s| s.left() == 0)
                    && let Some(done) = open.remove(&k)
                    && !send(k, done.into())
                {
                    break 'scenes;
                }
            }
            // Steps still open (scenes that never arrived) are fused with
            // what they have; steps without scenes are all NaN. Not after a
            // failed or dropped load: its stack is thrown away.
            if self.complete.load(std::sync::atomic::Ordering::SeqCst) {
                for (k, step) in std::mem::take(&mut open) {
                    if !send(k, step.into()) {
                        break;
                    }
                }
                for k in 0..t {
                    if !send(k, StepScenes::None) {
                        break;
                    }
                }
            }
            drop(jobs);
            for worker in workers {
                let done = worker
                    .join()
                    .map_err(|_| Error::internal("fuse", "a fusion worker panicked"))??;
                for (k, meta) in done {
                    if let Some(slot) = metas.get_mut(k) {
                        *slot = Some(meta);
                    }
                }
            }
            Ok(())
        })?;
        let metas = metas
            .into_iter()
            .map(|m| m.ok_or_else(|| Error::internal("fuse", "a step was not fused")))
            .collect::<Result<_>>()?;
        Ok((data, metas, peak))
    }
}

impl From<OpenStep> for StepScenes {
    fn from(step: OpenStep) -> StepScenes {
        match step {
            OpenStep::Buffered { scenes, .. } => StepScenes::Buffered(scenes),
            OpenStep::Folding { fold, .. } => StepScenes::Folded(fold),
        }
    }
}

impl StackPlan {
    /// An empty fusion for step `k`.
    fn step_fold(&self, k: usize) -> StepFold {
        StepFold {
            folds: (0..self.read_bands.len()).map(|_| None).collect(),
            cloud_rank: self.cloud_ranks(&self.bins[k].1),
        }
    }

    /// Scene `j` of a step (its place in the step) through the per-scene
    /// rules and into the step's folds.
    fn fold_scene(&self, fold: &mut StepFold, j: usize, mut windows: Windows) {
        let npx = self.grid.width * self.grid.height;
        self.scene_rules(&mut windows);
        for (bi, w) in windows.into_iter().enumerate() {
            let (Some(w), Some(f)) = (w, fold.folds.get_mut(bi)) else {
                continue;
            };
            let rank = if self.ranked_by_cloud(bi) {
                fold.cloud_rank.get(j).copied().unwrap_or(u32::MAX)
            } else {
                j as u32
            };
            f.get_or_insert_with(|| BandFold::new(self.fold_rule(bi), npx))
                .add(w, rank);
        }
    }

    /// Step `k`'s scenes fused into one band per read band: written into
    /// `dst(bi)` where that is a slot of the output, else returned.
    /// NaN for a band no scene had.
    fn fuse_step<'o>(
        &self,
        k: usize,
        scenes: StepScenes,
        mut dst: impl FnMut(usize) -> Option<&'o mut [f32]>,
    ) -> Vec<Option<Vec<f32>>> {
        let npx = self.grid.width * self.grid.height;
        let nread = self.read_bands.len();
        let mut kept: Vec<Option<Vec<f32>>> = vec![None; nread];
        let fold = match scenes {
            StepScenes::Buffered(mut scenes) if scenes.iter().flatten().count() == 1 => {
                // One scene: every rule's fusion of one window is the window
                // (a mean of one value is that value, bit for bit), with NaN
                // as the folds write it. No fold state.
                let mut windows = scenes
                    .iter_mut()
                    .flatten()
                    .next()
                    .map(std::mem::take)
                    .unwrap_or_default();
                self.scene_rules(&mut windows);
                windows.resize(nread, None);
                for (bi, (w, keep)) in windows.into_iter().zip(kept.iter_mut()).enumerate() {
                    let w = w.filter(|w| w.len() == npx);
                    match (dst(bi), w) {
                        (Some(out), Some(w)) => {
                            for (o, &v) in out.iter_mut().zip(&w) {
                                *o = if v.is_nan() { f32::NAN } else { v };
                            }
                        }
                        (Some(out), None) => out.fill(f32::NAN),
                        (None, Some(mut w)) => {
                            for v in w.iter_mut().filter(|v| v.is_nan()) {
                                *v = f32::NAN;
                            }
                            *keep = Some(w);
                        }
                        (None, None) => *keep = Some(vec![f32::NAN; npx]),
                    }
                }
                return kept;
            }
            StepScenes::Buffered(scenes) => {
                let mut fold = self.step_fold(k);
                for (j, windows) in scenes.into_iter().enumerate() {
                    if let Some(windows) = windows {
                        self.fold_scene(&mut fold, j, windows);
                    }
                }
                Some(fold)
            }
            StepScenes::Folded(fold) => Some(fold),
            StepScenes::None => None,
        };
        for (bi, keep) in kept.iter_mut().enumerate() {
            let f = fold
                .as_ref()
                .and_then(|f| f.folds.get(bi))
                .and_then(Option::as_ref);
            let write = |out: &mut [f32]| match f {
                Some(f) => f.finish(out),
                None => out.fill(f32::NAN),
            };
            match dst(bi) {
                Some(out) => write(out),
                None => {
                    let mut v = vec![0f32; npx];
                    write(&mut v);
                    *keep = Some(v);
                }
            }
        }
        kept
    }
}

/// Per-step metadata of an assembled stack.
struct StepMeta {
    eo_cloud_cover: f32,
    pct_nans: f32,
    tile_cloud_fraction: f32,
    items: Vec<String>,
}

impl StackPlan {
    /// Fuses step `k`'s scenes into `out` (its block of the output: band,
    /// y, x; any contents on entry, every value written) and burns the
    /// mask; returns the step's metadata.
    fn assemble_step(
        &self,
        k: usize,
        scenes: StepScenes,
        out: &mut [f32],
        mask: Option<&Mask>,
        static_mask: Option<&Array2<f32>>,
    ) -> Result<StepMeta> {
        let req = &self.request;
        let npx = self.grid.height * self.grid.width;
        let nreq = req.bands.len();
        let ((day, _), idx) = &self.bins[k];
        let pos = |name: &str| self.read_bands.iter().position(|b| b.as_str() == name);
        let cloud_idx = req.cloud_band.as_ref().and_then(|cb| pos(cb.as_str()));
        // Each read band is fused straight into its output slot when it is
        // one (the first requested band of that name), else kept aside.
        let slot_of = |bi: usize| {
            let name = &self.read_bands[bi];
            req.bands
                .iter()
                .position(|b| b == name && derived_inputs(b).is_none())
        };
        let kept = {
            let mut slots: Vec<Option<&mut [f32]>> =
                out.chunks_mut(npx.max(1)).take(nreq).map(Some).collect();
            self.fuse_step(k, scenes, |bi| {
                slot_of(bi).and_then(|oi| slots.get_mut(oi)?.take())
            })
        };
        let values = |out: &'_ [f32], bi: usize| -> Vec<f32> {
            match (slot_of(bi), &kept[bi]) {
                (Some(oi), _) => out[oi * npx..(oi + 1) * npx].to_vec(),
                (None, Some(v)) => v.clone(),
                (None, None) => vec![f32::NAN; npx],
            }
        };
        let mut tcf = f32::NAN;
        if let Some(ci) = cloud_idx {
            let rule = req.cloud_rule();
            let cloud: &[f32] = match (slot_of(ci), &kept[ci]) {
                (Some(oi), _) => &out[oi * npx..(oi + 1) * npx],
                (None, Some(v)) => v,
                (None, None) => &[],
            };
            let (mut valid, mut cloudy) = (0usize, 0usize);
            for &v in cloud {
                if let Some(c) = rule.classify(v) {
                    valid += 1;
                    cloudy += usize::from(c);
                }
            }
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
        for (oi, band) in req.bands.iter().enumerate() {
            if req.decibels.contains(band) {
                to_decibels(&mut out[oi * npx..(oi + 1) * npx]);
            }
        }
        let nan = out[..nreq * npx].iter().filter(|v| v.is_nan()).count();
        let pct_nans = (100.0 * nan as f64 / (nreq * npx) as f64) as f32;
        let scenes: Vec<&Scene> = idx.iter().map(|&i| &self.scenes[i]).collect();
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
                None => &m.rasterize(&self.grid, Some(*day))?,
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
    Ok(search_items_query(catalog, req, None).await?.0)
}

/// [`search_items`] with a STAC `query` (e.g. on `eo:cloud_cover`) sent to a
/// STAC API; items of a snapshot are returned unfiltered (filter the scenes).
pub(crate) async fn search_items_query(
    catalog: &Catalog,
    req: &StackRequest,
    query: Option<&serde_json::Value>,
) -> Result<(Vec<stac::Item>, Vec<Warning>)> {
    req.validate()?;
    Ok(match catalog {
        Catalog::Items(items) => {
            // A snapshot may repeat an item (a merged or re-saved search):
            // kept once, as a search does.
            let mut seen = std::collections::HashSet::new();
            let mut warnings = Vec::new();
            let mut kept = Vec::with_capacity(items.len());
            for it in items {
                if seen.insert(it.id.as_str()) {
                    kept.push(it.clone());
                } else {
                    warnings.push(Warning::DuplicateItem {
                        id: it.id.clone(),
                        page: 0,
                    });
                }
            }
            (kept, warnings)
        }
        Catalog::Stac { client, collection } => {
            let bbox = req.grid()?.wgs84_bbox()?;
            let sreq = search_request(collection, bbox, req, query)?;
            let res = client.search(&sreq).await?;
            (res.items, res.warnings)
        }
    })
}

/// The search for the items of stacks of `req`'s days over `bbox` (lon/lat):
/// the request's first day to the last day of its last step, 250 items a
/// page, `query` when given. One stack's search, or a region's.
///
/// # Errors
/// A datetime the client refuses.
pub(crate) fn search_request(
    collection: &str,
    bbox: [f64; 4],
    req: &StackRequest,
    query: Option<&serde_json::Value>,
) -> Result<SearchRequest> {
    let last = req
        .bins()
        .last()
        .map(|b| b.1 - chrono::Days::new(1))
        .unwrap_or(req.end);
    let mut sreq = SearchRequest::new(collection.to_string())
        .bbox(bbox)
        .datetime(&format!("{}/{}", req.start, last))?;
    sreq.limit = Some(250);
    if let Some(q) = query {
        sreq = sreq.query(q.clone());
    }
    Ok(sreq)
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
/// use tilestack::cog::TileCache;
/// use tilestack::fetch::RetryConfig;
/// use tilestack::{BandName, Catalog, CogReader, HttpRangeClient, StackRequest, build};
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
    let (plan, items) = plan_stack_with(catalog, req, Some(reader)).await?;
    let stack = plan.load(reader, mask).await?;
    Ok(Built { stack, plan, items })
}

/// Gives each Zarr asset of `items` that `bands` resolve to and whose item
/// declares no grid for it (EOPF's Sample Service items carry `proj:code`
/// only; their `proj:bbox` is in degrees) the grid its store declares:
/// `proj:transform` and `proj:shape` from [`ZarrReader::georef`] (the
/// array's `proj:transform`/`spatial:transform` attribute, its grid
/// mapping's `GeoTransform`, or its `x`/`y` coordinate arrays of pixel
/// centres) and the array's shape, and `proj:code` when neither the asset
/// nor the item names a CRS. Assets that declare a grid are left as they
/// are. One metadata fetch per store (consolidated metadata), plus the
/// coordinate arrays where no attribute gives the transform. Returns how
/// many assets were given a grid.
///
/// # Errors
/// An [`Error::Item`] naming the item and the asset, with the store's error
/// (naming store and array) as its source, when the store's metadata
/// cannot be read or gives no north-up grid.
pub async fn fill_zarr_grids(
    items: &mut [stac::Item],
    bands: &[BandName],
    zarr: &ZarrReader,
) -> Result<usize> {
    let mut filled = 0;
    for item in items.iter_mut() {
        let keys = zarr_assets_without_grid(item, bands);
        if keys.is_empty() {
            continue;
        }
        let item_crs = ["proj:code", "proj:epsg"].iter().any(|k| {
            item.properties
                .additional_fields
                .get(*k)
                .is_some_and(|v| !v.is_null())
        });
        for key in keys {
            let Some(asset) = item.assets.get_mut(&key) else {
                continue;
            };
            let what = format!("asset {key}: the grid from its Zarr store");
            let href = asset.href.clone();
            let meta = match zarr.array(&href).await {
                Ok(m) => m,
                Err(e) => return Err(Error::item_because(&item.id, what, e)),
            };
            let geo = match zarr.georef(&href).await {
                Ok(g) => g,
                Err(e) => return Err(Error::item_because(&item.id, what, e)),
            };
            let nd = meta.shape.len();
            let (rows, cols) = (meta.shape[nd - 2], meta.shape[nd - 1]);
            let t = geo.transform;
            let fields = &mut asset.additional_fields;
            fields.insert(
                "proj:transform".into(),
                serde_json::json!([t.dx, 0.0, t.x0, 0.0, t.dy, t.y0]),
            );
            fields.insert("proj:shape".into(), serde_json::json!([rows, cols]));
            let asset_crs = ["proj:code", "proj:epsg"]
                .iter()
                .any(|k| fields.get(*k).is_some_and(|v| !v.is_null()));
            if let (false, false, Some(e)) = (asset_crs, item_crs, geo.epsg) {
                fields.insert("proj:code".into(), serde_json::json!(e.to_string()));
            }
            filled += 1;
        }
    }
    Ok(filled)
}

/// Items converted at once while a dataset opens, at most (each a store's
/// metadata fetch where its Zarr assets declare no grid).
const GRIDS_IN_FLIGHT: usize = 16;

/// The items of `items` that are not `known` yet (each id once, in
/// order), each with its [`Scene::from_item`]; an item that fails only
/// because Zarr assets of `bands` declare no grid (EOPF's Sample Service
/// items) is converted again with the grids its stores declare
/// ([`fill_zarr_grids`], through `zarr`: its metadata cache keeps each
/// store's grid, fetched once however many samples use the item). Items
/// that convert as they are fetch nothing and cost nothing more. What a
/// dataset's scene tables do as they grow (a dataset plans each sample
/// from its table, without the stack path's [`plan_stack_with`]); their
/// entries for `items` then come from [`table_entries`].
///
/// # Errors
/// Per item: [`Scene::from_item`]'s error, or [`fill_zarr_grids`]'s
/// (naming the item, the asset, and the store and array).
pub(crate) async fn new_scenes<'a>(
    items: &'a [stac::Item],
    known: impl Fn(&str) -> bool,
    bands: &[BandName],
    zarr: &ZarrReader,
) -> Vec<(&'a stac::Item, Result<Scene>)> {
    let mut seen = std::collections::HashSet::new();
    let fresh: Vec<&stac::Item> = items
        .iter()
        .filter(|it| !known(&it.id) && seen.insert(it.id.as_str()))
        .collect();
    let scenes: Vec<Result<Scene>> = futures::stream::iter(fresh.iter().map(|&item| async move {
        let err = match Scene::from_item(item, bands) {
            Ok(scene) => return Ok(scene),
            Err(e) => e,
        };
        if zarr_assets_without_grid(item, bands).is_empty() {
            return Err(err);
        }
        let mut filled = item.clone();
        fill_zarr_grids(std::slice::from_mut(&mut filled), bands, zarr).await?;
        Scene::from_item(&filled, bands)
    }))
    .buffered(GRIDS_IN_FLIGHT)
    .collect()
    .await;
    fresh.into_iter().zip(scenes).collect()
}

/// Each of `items`' entry in a scene table's `by_id`, in order (after
/// [`new_scenes`] has added those it did not hold).
///
/// # Errors
/// [`Error::Internal`] for an item the table does not hold.
pub(crate) fn table_entries<V: Copy>(
    items: &[stac::Item],
    by_id: &std::collections::HashMap<String, V>,
) -> Result<Vec<V>> {
    items
        .iter()
        .map(|it| {
            by_id
                .get(&it.id)
                .copied()
                .ok_or_else(|| Error::internal("dataset", "an item missing from the scene table"))
        })
        .collect()
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
    plan_stack_with(catalog, req, None).await
}

/// [`plan_stack`], and with `reader` the Zarr assets whose items declare no
/// grid get the one their stores declare first ([`fill_zarr_grids`], through
/// the reader's client and cache): what [`build`] and a dry run with headers
/// do. Without `reader` nothing but the search is fetched, and such an
/// asset is an error naming its item.
///
/// # Errors
/// As [`plan_stack`] and [`fill_zarr_grids`].
pub async fn plan_stack_with(
    catalog: &Catalog,
    req: &StackRequest,
    reader: Option<&CogReader>,
) -> Result<(StackPlan, Vec<stac::Item>)> {
    let t0 = std::time::Instant::now();
    let (mut items, warnings) = search_items_query(catalog, req, None).await?;
    if let Some(r) = reader {
        fill_zarr_grids(&mut items, &req.read_bands(), &zarr_reader(r)).await?;
    }
    let scenes = scenes_from_items(&items, &req.read_bands())?;
    let mut plan = StackPlan::new(&scenes, req)?;
    // the search's warnings reach the caller with the plan's own
    plan.warnings.splice(0..0, warnings);
    tracing::info!(
        items = items.len(),
        scenes = plan.scenes.len(),
        reads = plan.reads.len(),
        ms = t0.elapsed().as_secs_f64() * 1e3,
        "planned"
    );
    Ok((plan, items))
}
