//! The one module that wires the stages: catalog → items → scenes → plan
//! → COG reads → warp → fusion → mask + metadata → [`TileStack`]. Planning
//! fetches nothing; loading is async (reads run concurrently; decode, warp
//! and fusion run on blocking threads).

use chrono::NaiveDate;
use futures::StreamExt;
use ndarray::{Array2, Array4};
use rayon::prelude::*;
use std::sync::Arc;

use crate::cog::CogReader;
use crate::error::{Error, Result, Warning};
use crate::geo::rasterize::Mask;

use crate::stac::catalog::Catalog;
use crate::stac::client::SearchRequest;
use crate::stac::scene::{Scene, scenes_from_items};
use crate::stack::TileStack;
use crate::stack::fuse::{
    BandFold, FoldRule, into_values, nan_where_all_zero, nan_where_flagged, normalize,
    normalized_difference, to_decibels,
};
use crate::stack::plan::{FOLDS_IN_FLIGHT, ReadPlan, STEP_BUFFER, StackPlan};
use crate::stack::request::{Fusion, StackRequest, bit_mask, derived_inputs};

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
        // The reads run in their own task, so that folding a scene here never
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
        let mut steps = StepFolds::new(plan.clone());
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
            steps.add(si, windows).await?;
        }
        drop(driver);
        read_errors.sort();
        let t_read = t0.elapsed();
        tracing::debug!(
            peak_window_bytes = steps.peak_bytes,
            "scenes read, their steps folding"
        );
        let fused = steps.finish().await?;
        let mask = mask.cloned();
        let out = tokio::task::spawn_blocking(move || plan.assemble(&fused, mask.as_ref(), buffer))
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
        nan_where_all_zero(&mut scene[..k]);
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

    /// Fusion is done ([`StepFolds`]); derived bands, metadata and mask: sync.
    fn assemble(
        &self,
        fused: &[Option<Vec<Vec<f32>>>],
        mask: Option<&Mask>,
        buffer: Option<Array4<f32>>,
    ) -> Result<TileStack> {
        let req = &self.request;
        let (h, w) = (self.grid.height, self.grid.width);
        let nreq = req.bands.len();
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
            .ok_or_else(|| Error::internal("stack", "output array is not contiguous"))?;
        let steps: Vec<StepMeta> = flat
            .par_chunks_mut(block.max(1))
            .zip(self.bins.par_iter())
            .zip(fused.par_iter())
            .map(|((chunk, ((day, _), idx)), fused)| {
                self.assemble_step(
                    fused.as_deref(),
                    *day,
                    idx,
                    chunk,
                    mask,
                    static_mask.as_ref(),
                )
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

/// A task aborted when its handle is dropped: a load that returns early
/// (an error) stops its reads.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The time steps of a stack being folded: scenes arrive in plan order and
/// wait in their step; a step whose scenes have all arrived is handed to a
/// blocking thread, which applies the per-scene rules, folds its scenes into
/// [`BandFold`]s in plan order and finishes them into fused read bands.
/// Steps are independent, so they fold in parallel with each other and with
/// the reads still coming; scenes are in time order and steps are time
/// ranges, so about one step waits at a time.
struct StepFolds {
    plan: Arc<StackPlan>,
    /// Step of each scene, and its place in that step's scene list.
    step_of: Vec<Option<(usize, usize)>>,
    /// Open steps: their scenes so far and how many are still to come.
    open: std::collections::BTreeMap<usize, OpenStep>,
    /// Steps being finished, oldest first: at most [`FOLDS_IN_FLIGHT`], so
    /// that windows never pile up behind slow folds.
    folding: std::collections::VecDeque<(usize, tokio::task::JoinHandle<Vec<Vec<f32>>>)>,
    /// Finished steps: each read band fused (`None`: a step without scenes).
    fused: Vec<Option<Vec<Vec<f32>>>>,
    /// Most window bytes the open steps held at once (for the logs).
    peak_bytes: usize,
}

/// A step whose scenes are still arriving.
enum OpenStep {
    /// A step of at most [`STEP_BUFFER`] scenes: their windows wait (by
    /// place in the step) and the step is fused when the last arrives.
    Buffered {
        windows: Vec<Option<Vec<Option<Vec<f32>>>>>,
        left: usize,
    },
    /// A larger step: each scene is folded into the step's running fusion
    /// as it arrives, one fold at a time, on a blocking thread.
    Folding { state: FoldState, left: usize },
}

/// A large step's running fusion: ready, or busy folding a scene.
enum FoldState {
    Ready(StepFold),
    Busy(tokio::task::JoinHandle<StepFold>),
    /// Only while a scene is being handed over.
    Taken,
}

impl FoldState {
    async fn ready(self) -> Result<StepFold> {
        match self {
            FoldState::Ready(f) => Ok(f),
            FoldState::Busy(task) => task.await.map_err(|e| Error::task("fuse", e)),
            FoldState::Taken => Err(Error::internal("fuse", "a step's fold was lost")),
        }
    }
}

/// One step's fusion so far: a fold per read band (made on first use) and
/// each of its scenes' rank by cloud cover.
struct StepFold {
    folds: Vec<Option<BandFold>>,
    cloud_rank: Vec<u32>,
}

impl OpenStep {
    fn left(&self) -> usize {
        match self {
            OpenStep::Buffered { left, .. } | OpenStep::Folding { left, .. } => *left,
        }
    }

    fn window_bytes(&self) -> usize {
        match self {
            OpenStep::Buffered { windows, .. } => windows
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

impl StepFolds {
    fn new(plan: Arc<StackPlan>) -> StepFolds {
        let mut step_of = vec![None; plan.scenes.len()];
        for (k, (_, idx)) in plan.bins.iter().enumerate() {
            for (j, &si) in idx.iter().enumerate() {
                if let Some(s) = step_of.get_mut(si) {
                    *s = Some((k, j));
                }
            }
        }
        StepFolds {
            fused: vec![None; plan.bins.len()],
            plan,
            step_of,
            open: Default::default(),
            folding: Default::default(),
            peak_bytes: 0,
        }
    }

    /// Adds scene `si`'s windows (one per read band) to its step, and
    /// finishes the step once all its scenes are in.
    ///
    /// # Errors
    /// A fold task that failed (panicked).
    async fn add(&mut self, si: usize, windows: Vec<Option<Vec<f32>>>) -> Result<()> {
        let Some(Some((k, j))) = self.step_of.get(si).copied() else {
            return Ok(()); // in no step
        };
        let n = self.plan.bins[k].1.len();
        let plan = self.plan.clone();
        let step = self.open.entry(k).or_insert_with(|| {
            if n <= STEP_BUFFER {
                OpenStep::Buffered {
                    windows: vec![None; n],
                    left: n,
                }
            } else {
                OpenStep::Folding {
                    state: FoldState::Ready(plan.step_fold(k)),
                    left: n,
                }
            }
        });
        match step {
            OpenStep::Buffered { windows: w, left } => {
                if let Some(slot) = w.get_mut(j) {
                    *slot = Some(windows);
                }
                *left = left.saturating_sub(1);
            }
            OpenStep::Folding { state, left } => {
                // Scenes arrive in plan order: folded in that order, the
                // same sums as a fold of the whole step.
                let mut fold = std::mem::replace(state, FoldState::Taken).ready().await?;
                *state = FoldState::Busy(tokio::task::spawn_blocking(move || {
                    plan.fold_scene(&mut fold, j, windows);
                    fold
                }));
                *left = left.saturating_sub(1);
            }
        }
        let held: usize = self.open.values().map(OpenStep::window_bytes).sum();
        self.peak_bytes = self.peak_bytes.max(held);
        if self.open.get(&k).is_some_and(|s| s.left() == 0)
            && let Some(done) = self.open.remove(&k)
        {
            self.finish_step(k, done).await?;
            while self.folding.len() > FOLDS_IN_FLIGHT {
                self.collect_oldest().await?;
            }
        }
        Ok(())
    }

    /// Hands step `k` to a blocking thread that fuses what it has.
    async fn finish_step(&mut self, k: usize, step: OpenStep) -> Result<()> {
        let plan = self.plan.clone();
        let task = match step {
            OpenStep::Buffered { windows, .. } => {
                tokio::task::spawn_blocking(move || plan.fold_step(k, windows))
            }
            OpenStep::Folding { state, .. } => {
                let fold = state.ready().await?;
                tokio::task::spawn_blocking(move || plan.finish_fold(&fold))
            }
        };
        self.folding.push_back((k, task));
        Ok(())
    }

    async fn collect_oldest(&mut self) -> Result<()> {
        if let Some((k, task)) = self.folding.pop_front() {
            let bands = task.await.map_err(|e| Error::task("fuse", e))?;
            if let Some(slot) = self.fused.get_mut(k) {
                *slot = Some(bands);
            }
        }
        Ok(())
    }

    /// Every step's fused read bands (`None`: a step without scenes; steps
    /// still open — scenes that never arrived — are fused with what they
    /// have).
    async fn finish(mut self) -> Result<Vec<Option<Vec<Vec<f32>>>>> {
        for (k, step) in std::mem::take(&mut self.open) {
            self.finish_step(k, step).await?;
        }
        while !self.folding.is_empty() {
            self.collect_oldest().await?;
        }
        Ok(self.fused)
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
    fn fold_scene(&self, fold: &mut StepFold, j: usize, mut windows: Vec<Option<Vec<f32>>>) {
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

    /// A step's folds as fused bands (NaN for a band no scene had).
    fn finish_fold(&self, fold: &StepFold) -> Vec<Vec<f32>> {
        let npx = self.grid.width * self.grid.height;
        fold.folds
            .iter()
            .map(|f| {
                let mut v = vec![f32::NAN; npx];
                if let Some(f) = f {
                    f.finish(&mut v);
                }
                v
            })
            .collect()
    }

    /// Step `k`'s scenes (windows by place in the step, plan order) through
    /// the per-scene rules and fused into read bands.
    fn fold_step(&self, k: usize, mut scenes: Vec<Option<Vec<Option<Vec<f32>>>>>) -> Vec<Vec<f32>> {
        let npx = self.grid.width * self.grid.height;
        if scenes.iter().flatten().count() == 1
            && let Some(mut windows) = scenes.iter_mut().flatten().next().map(std::mem::take)
        {
            // One scene: every rule's fusion of one window is the window
            // (a mean of one value is that value, bit for bit), with NaN as
            // the folds write it. No fold state, no copy.
            self.scene_rules(&mut windows);
            return windows
                .into_iter()
                .map(|w| match w {
                    Some(mut w) if w.len() == npx => {
                        for v in w.iter_mut().filter(|v| v.is_nan()) {
                            *v = f32::NAN;
                        }
                        w
                    }
                    _ => vec![f32::NAN; npx],
                })
                .collect();
        }
        let mut fold = self.step_fold(k);
        for (j, windows) in scenes.into_iter().enumerate() {
            if let Some(windows) = windows {
                self.fold_scene(&mut fold, j, windows);
            }
        }
        self.finish_fold(&fold)
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
    /// Fuses one time step's scenes into `out` (band, y, x; NaN on entry) and
    /// burns the mask; returns the step's metadata.
    fn assemble_step(
        &self,
        fused: Option<&[Vec<f32>]>,
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
        // Each read band is copied straight into its output slot when it is
        // one (the first requested band of that name), else into a buffer.
        let slot_of = |bi: usize| {
            let name = &self.read_bands[bi];
            req.bands
                .iter()
                .position(|b| b == name && derived_inputs(b).is_none())
        };
        let mut buffers: Vec<Option<Vec<f32>>> = vec![None; nread];
        for (bi, buffer) in buffers.iter_mut().enumerate() {
            let fuse = |dst: &mut [f32]| match fused.and_then(|f| f.get(bi)) {
                Some(v) if v.len() == dst.len() => dst.copy_from_slice(v),
                _ => dst.fill(f32::NAN),
            };
            match slot_of(bi) {
                Some(oi) => fuse(&mut out[oi * npx..(oi + 1) * npx]),
                None => {
                    let mut v = vec![0f32; npx];
                    fuse(&mut v);
                    *buffer = Some(v);
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
            let rule = req.cloud_rule();
            let (mut valid, mut cloudy) = (0usize, 0usize);
            for v in values(out, ci) {
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
    let (items, warnings) = search_items_query(catalog, req, None).await?;
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
