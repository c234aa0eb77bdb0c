//! [`HostBatch`]: one batch in host memory, framework-neutral (flat `f32`
//! arrays), and how a sample's stack and layers become one of its rows:
//! through its augmentation's pixel map, normalized, no data filled,
//! validity and metadata beside it.

use chrono::NaiveDate;

use crate::dataset::config::{InputConfig, NormalizeConfig};
use crate::dataset::inputs::{InputLayout, InputStack};
use crate::loader::augment::PixelMap;
use crate::stack::{Layers, TileStack};

/// What became of one sample of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleStatus {
    /// Loaded as planned.
    Ok,
    /// Its own stack failed to load ([`ErrorPolicy::Replace`](crate::dataset::ErrorPolicy::Replace)); the batch
    /// holds the sample named in [`HostBatch::samples`] instead.
    Replaced {
        /// The sample that failed.
        failed: usize,
        /// Why, with its causes.
        error: String,
    },
    /// Its stack failed to load ([`ErrorPolicy::Nan`](crate::dataset::ErrorPolicy::Nan)): all NaN, invalid everywhere.
    Failed {
        /// Why, with its causes.
        error: String,
    },
    /// A repeat from the start of the order, filling the last batch or a
    /// device's slice ([`LastBatch::Pad`](crate::dataset::LastBatch::Pad)).
    Padded,
}

/// One batch in host memory. Layouts are row-major; `B` samples, `T` steps,
/// `C` input bands, `H × W` pixels (after any crop).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// The epoch it belongs to.
    pub epoch: u64,
    /// Its index in the epoch (of its slice).
    pub index: usize,
    /// `[B, T, C, H, W]`.
    pub shape: [usize; 5],
    /// `f32[B, T, C, H, W]` inputs, normalized, no-data replaced by the fill value.
    pub inputs: Vec<f32>,
    /// `f32[B, T, H, W]`: 1 where every input band has data, else 0.
    pub valid: Vec<f32>,
    /// Label layer names, in [`HostBatch::labels`] order.
    pub label_names: Vec<String>,
    /// Per label layer, `f32[B, T, H, W]`: 1 inside the layer's features that apply to the step.
    pub labels: Vec<Vec<f32>>,
    /// Input mask names, in [`HostBatch::masks`] order.
    pub mask_names: Vec<String>,
    /// Per input mask, `f32[B, H, W]`.
    pub masks: Vec<Vec<f32>>,
    /// The dataset sample index of each row.
    pub samples: Vec<usize>,
    /// The sample ids.
    pub ids: Vec<String>,
    /// Per row, the first day of each step.
    pub days: Vec<Vec<NaiveDate>>,
    /// `[B, T]` max scene `eo:cloud_cover`, percent; NaN when no scene.
    pub eo_cloud_cover: Vec<f32>,
    /// `[B, T]` percent of no-data input pixels.
    pub pct_nans: Vec<f32>,
    /// `[B, T]` the tile's own cloud fraction (cloud band), 0–1; NaN when not read.
    pub tile_cloud_fraction: Vec<f32>,
    /// Per row, what became of the sample.
    pub status: Vec<SampleStatus>,
    /// Per row, windows that failed and were read as no data (`errors_as_nodata`).
    pub read_errors: Vec<Vec<String>>,
    /// The inputs after the first (`[[inputs]]`), one tensor each, in
    /// config order; empty for a dataset of one input. The first input
    /// stays in [`HostBatch::inputs`], so code and shards of one input keep
    /// working.
    pub sources: Vec<SourceBatch>,
}

/// One input after the first, batched: its own tensor, validity and
/// metadata.
///
/// Per-source tensors rather than one tensor of named channels, because
/// the inputs differ in what a channel *is*: a static input (DEM, land
/// cover) has no `T` axis, and repeating it `T` times would cost `T×` the
/// memory and shard bytes for nothing; an input's no-data and its steps
/// without a pass (`nearest` gaps) are its own, so validity is per source
/// and step; categorical and continuous inputs are normalized differently
/// (the first input's `[normalize]` does not apply here: values are raw, or
/// normalized by the input's own `normalize`, no data replaced by its fill
/// value or `[normalize] fill`). A model concatenates what it wants
/// along `C` itself; `TileBatch::input(name)` hands out each by name.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceBatch {
    /// The input's name.
    pub name: String,
    /// `[B, T, C, H, W]`, or `[B, C, H, W]` for a static input.
    pub shape: Vec<usize>,
    /// Band names, in `C` order.
    pub bands: Vec<String>,
    /// The values (raw), no data replaced by the fill value.
    pub values: Vec<f32>,
    /// `[B, T, H, W]` (or `[B, H, W]`): 1 where every band has data.
    pub valid: Vec<f32>,
    /// `[B, T]` (or `[B]`): 1 when a scene filled the step, 0 for a step
    /// without one (a `nearest` gap, a day without a pass).
    pub has_data: Vec<f32>,
    /// `[B, T]` (or `[B]`): max `eo:cloud_cover` of the step's scenes,
    /// percent; NaN when none declares it (radar, a DEM) or no scene.
    pub eo_cloud_cover: Vec<f32>,
    /// `[B, T]` (or `[B]`): percent of the step's pixels without data.
    pub pct_nans: Vec<f32>,
    /// `[B, T]` (or `[B]`): the tile's own cloud fraction (the input's
    /// cloud band), 0–1; NaN when it has none.
    pub tile_cloud_fraction: Vec<f32>,
    /// Per row and step, the scenes' `sat:orbit_state` (comma-separated; empty when undeclared).
    pub orbit_state: Vec<Vec<String>>,
    /// Per row and step, the scenes' `platform` (comma-separated).
    pub platform: Vec<Vec<String>>,
}

impl SourceBatch {
    /// An empty source of `rows` rows for `layout`, on `h × w` pixels (after any crop).
    pub(crate) fn new(layout: &InputLayout, rows: usize, h: usize, w: usize) -> SourceBatch {
        let [t, c, _, _] = layout.shape;
        let mut shape = layout.batch_shape(rows);
        let n = shape.len();
        shape[n - 2] = h;
        shape[n - 1] = w;
        SourceBatch {
            name: layout.name.clone(),
            shape,
            bands: layout.bands.clone(),
            values: vec![0.0; rows * t * c * h * w],
            valid: vec![0.0; rows * t * h * w],
            has_data: vec![0.0; rows * t],
            eo_cloud_cover: vec![f32::NAN; rows * t],
            pct_nans: vec![100.0; rows * t],
            tile_cloud_fraction: vec![f32::NAN; rows * t],
            orbit_state: vec![Vec::new(); rows],
            platform: vec![Vec::new(); rows],
        }
    }

    /// Steps per row (1 for a static input).
    fn steps(&self) -> usize {
        if self.shape.len() == 5 {
            self.shape[1]
        } else {
            1
        }
    }

    /// Writes `input` into row `row` through `map`, normalized by `norm`
    /// (per band; none: raw), no data as `fill`.
    fn write_row(
        &mut self,
        row: usize,
        input: &InputStack,
        map: &PixelMap,
        norm: Option<&NormalizeConfig>,
        fill: f32,
    ) {
        let t = self.steps();
        let c = self.bands.len();
        let n = self.shape.len();
        let px = self.shape[n - 2] * self.shape[n - 1];
        let (st, sc, sh, sw) = input.stack.data.dim();
        let same_grid = (sh, sw) == (map.src_h, map.src_w);
        let owned: Vec<f32>;
        let data: &[f32] = match input.stack.data.as_slice() {
            Some(d) => d,
            None => {
                owned = input.stack.data.iter().copied().collect();
                &owned
            }
        };
        for ti in 0..t {
            let valid = &mut self.valid[(row * t + ti) * px..][..px];
            valid.fill(1.0);
            for ci in 0..c {
                let out = &mut self.values[((row * t + ti) * c + ci) * px..][..px];
                let src = (ti < st && ci < sc && same_grid)
                    .then(|| &data[(ti * sc + ci) * sh * sw..][..sh * sw]);
                let (mean, std) = norm
                    .and_then(|n| Some((*n.mean.get(ci)?, *n.std.get(ci)?)))
                    .unwrap_or((0.0, 1.0));
                for (i, (o, ok)) in out.iter_mut().zip(valid.iter_mut()).enumerate() {
                    let v = match src {
                        Some(s) if map.identity => s[i],
                        Some(s) => s[map.index[i] as usize],
                        None => f32::NAN,
                    };
                    let nan = v.is_nan();
                    *o = if nan { fill } else { (v - mean) / std };
                    *ok = if nan { 0.0 } else { *ok };
                }
            }
            self.has_data[row * t + ti] =
                f32::from(u8::from(input.has_data.get(ti).copied().unwrap_or(false)));
        }
        let at = row * t..(row + 1) * t;
        per_step(
            &input.stack.eo_cloud_cover,
            &mut self.eo_cloud_cover[at.clone()],
        );
        per_step(&input.stack.pct_nans, &mut self.pct_nans[at.clone()]);
        per_step(
            &input.stack.tile_cloud_fraction,
            &mut self.tile_cloud_fraction[at],
        );
        self.orbit_state[row] = input.orbit_state.clone();
        self.platform[row] = input.platform.clone();
    }

    /// Row `row` as no data everywhere.
    fn write_failed(&mut self, row: usize, fill: f32) {
        let t = self.steps();
        let c = self.bands.len();
        let n = self.shape.len();
        let px = self.shape[n - 2] * self.shape[n - 1];
        self.values[row * t * c * px..][..t * c * px].fill(fill);
        self.valid[row * t * px..][..t * px].fill(0.0);
        self.has_data[row * t..][..t].fill(0.0);
        self.eo_cloud_cover[row * t..][..t].fill(f32::NAN);
        self.pct_nans[row * t..][..t].fill(100.0);
        self.tile_cloud_fraction[row * t..][..t].fill(f32::NAN);
        self.orbit_state[row].clear();
        self.platform[row].clear();
    }
}

impl HostBatch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// True when the batch has no row.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// An empty batch of `rows` rows shaped `[T, C, H, W]`, every input NaN-free 0.
    pub(crate) fn new(
        epoch: u64,
        index: usize,
        rows: usize,
        [t, c, h, w]: [usize; 4],
        label_names: Vec<String>,
        mask_names: Vec<String>,
    ) -> HostBatch {
        let px = h * w;
        HostBatch {
            epoch,
            index,
            shape: [rows, t, c, h, w],
            inputs: vec![0.0; rows * t * c * px],
            valid: vec![0.0; rows * t * px],
            labels: vec![vec![0.0; rows * t * px]; label_names.len()],
            label_names,
            masks: vec![vec![0.0; rows * px]; mask_names.len()],
            mask_names,
            samples: vec![0; rows],
            ids: vec![String::new(); rows],
            days: vec![Vec::new(); rows],
            eo_cloud_cover: vec![f32::NAN; rows * t],
            pct_nans: vec![100.0; rows * t],
            tile_cloud_fraction: vec![f32::NAN; rows * t],
            status: vec![SampleStatus::Ok; rows],
            read_errors: vec![Vec::new(); rows],
            sources: Vec::new(),
        }
    }

    /// This batch with an empty [`SourceBatch`] per input after the first.
    pub(crate) fn with_sources(mut self, layouts: &[InputLayout]) -> HostBatch {
        let [rows, _, _, h, w] = self.shape;
        self.sources = layouts
            .iter()
            .map(|l| SourceBatch::new(l, rows, h, w))
            .collect();
        self
    }

    /// Writes a sample's inputs after the first into row `row` through
    /// `map` (the first input's augmentation: every input moves alike),
    /// each normalized by its `normalize` (`configs`, in the same order),
    /// else raw with no data as `fill`.
    pub(crate) fn write_sources(
        &mut self,
        row: usize,
        inputs: &[InputStack],
        configs: &[InputConfig],
        map: &PixelMap,
        fill: f32,
    ) {
        for (k, (src, input)) in self.sources.iter_mut().zip(inputs).enumerate() {
            let norm = configs.get(k).and_then(|c| c.normalize.as_ref());
            let fill = norm.map_or(fill, |n| n.fill);
            src.write_row(row, input, map, norm, fill);
        }
    }

    /// The input after the first named `name`.
    pub fn source(&self, name: &str) -> Option<&SourceBatch> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Bytes of the batch's arrays.
    pub(crate) fn bytes(rows: usize, [t, c, h, w]: [usize; 4], labels: usize, masks: usize) -> u64 {
        let px = (h * w) as u64;
        let rows = rows as u64;
        let t = t as u64;
        4 * rows * (t * c as u64 * px + t * px * (1 + labels as u64) + masks as u64 * px + 3 * t)
    }

    /// A batch of stacks as they are (no augmentation, no normalization),
    /// no-data replaced by `fill`: what burn's `Batcher` path makes. Stacks
    /// of another shape than the first are cut or padded with no data.
    pub fn from_stacks(stacks: &[TileStack], fill: f32) -> HostBatch {
        let shape = stacks.first().map_or([0; 4], |s| {
            let d = s.data.dim();
            [d.0, d.1, d.2, d.3]
        });
        let mut b = HostBatch::new(0, 0, stacks.len(), shape, Vec::new(), Vec::new());
        let map = PixelMap::identity(shape[2], shape[3]);
        let norm = NormalizeConfig {
            fill,
            ..NormalizeConfig::default()
        };
        for (row, s) in stacks.iter().enumerate() {
            b.write_row(
                row,
                row,
                s,
                &map,
                &norm,
                &Layers::default(),
                SampleStatus::Ok,
            );
        }
        b
    }

    /// Writes one stack into row `row` through `map` (augmentation),
    /// normalizing and filling; `labels` are `[T][H0 × W0]` per layer and
    /// `masks` `[H0 × W0]` per layer, on the stack's grid.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_row(
        &mut self,
        row: usize,
        sample: usize,
        stack: &TileStack,
        map: &PixelMap,
        norm: &NormalizeConfig,
        layers: &Layers,
        status: SampleStatus,
    ) {
        let [_, t, c, h, w] = self.shape;
        let px = h * w;
        let (st, sc, sh, sw) = stack.data.dim();
        let src_px = sh * sw;
        let data = stack.data.as_slice();
        let owned: Vec<f32>;
        let data: &[f32] = match data {
            Some(d) => d,
            None => {
                owned = stack.data.iter().copied().collect();
                &owned
            }
        };
        let same_grid = (sh, sw) == (map.src_h, map.src_w);
        for ti in 0..t {
            let valid = &mut self.valid[(row * t + ti) * px..(row * t + ti + 1) * px];
            valid.fill(1.0);
            for ci in 0..c {
                let out = &mut self.inputs[((row * t + ti) * c + ci) * px..][..px];
                let src = (ti < st && ci < sc && same_grid)
                    .then(|| &data[(ti * sc + ci) * src_px..][..src_px]);
                let (mean, std) = match (norm.mean.get(ci), norm.std.get(ci)) {
                    (Some(&m), Some(&s)) => (m, s),
                    _ => (0.0, 1.0),
                };
                // Branch-free (selects), so that the loop vectorizes.
                let put = |(o, ok): (&mut f32, &mut f32), v: f32| {
                    let nan = v.is_nan();
                    let z = (v - mean) / std;
                    *o = if nan { norm.fill } else { z };
                    *ok = if nan { 0.0 } else { *ok };
                };
                match src {
                    None => out
                        .iter_mut()
                        .zip(valid.iter_mut())
                        .for_each(|p| put(p, f32::NAN)),
                    Some(s) if map.identity => out
                        .iter_mut()
                        .zip(valid.iter_mut())
                        .zip(s)
                        .for_each(|(p, &v)| put(p, v)),
                    Some(s) => out
                        .iter_mut()
                        .zip(valid.iter_mut())
                        .zip(&map.index)
                        .for_each(|(p, &j)| put(p, s[j as usize])),
                }
            }
            for (layer, per_step) in layers.labels.iter().enumerate() {
                let out = &mut self.labels[layer][(row * t + ti) * px..][..px];
                if let Some(src) = per_step.get(ti).filter(|_| same_grid) {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = f32::from(src[map.index[i] as usize]);
                    }
                } else {
                    out.fill(0.0);
                }
            }
        }
        for (layer, src) in layers.masks.iter().enumerate() {
            let out = &mut self.masks[layer][row * px..][..px];
            if same_grid {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = f32::from(src[map.index[i] as usize]);
                }
            } else {
                out.fill(0.0);
            }
        }
        per_step(
            &stack.eo_cloud_cover,
            &mut self.eo_cloud_cover[row * t..][..t],
        );
        per_step(&stack.pct_nans, &mut self.pct_nans[row * t..][..t]);
        per_step(
            &stack.tile_cloud_fraction,
            &mut self.tile_cloud_fraction[row * t..][..t],
        );
        self.samples[row] = sample;
        self.days[row] = stack.days.clone();
        self.read_errors[row] = stack.read_errors.clone();
        self.status[row] = status;
    }

    /// Row `row` as no data everywhere (a failed sample under [`ErrorPolicy::Nan`](crate::dataset::ErrorPolicy::Nan)).
    pub(crate) fn write_failed(&mut self, row: usize, sample: usize, fill: f32, error: String) {
        let [_, t, c, h, w] = self.shape;
        let px = h * w;
        self.inputs[row * t * c * px..][..t * c * px].fill(fill);
        self.valid[row * t * px..][..t * px].fill(0.0);
        for l in &mut self.labels {
            l[row * t * px..][..t * px].fill(0.0);
        }
        for m in &mut self.masks {
            m[row * px..][..px].fill(0.0);
        }
        self.eo_cloud_cover[row * t..][..t].fill(f32::NAN);
        self.pct_nans[row * t..][..t].fill(100.0);
        self.tile_cloud_fraction[row * t..][..t].fill(f32::NAN);
        self.days[row].clear();
        self.read_errors[row].clear();
        for src in &mut self.sources {
            src.write_failed(row, fill);
        }
        self.samples[row] = sample;
        self.status[row] = SampleStatus::Failed { error };
    }
}

/// A stack's per-step metadata into a row's steps (NaN past its steps).
fn per_step(v: &[f32], out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = v.get(i).copied().unwrap_or(f32::NAN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_written_through_the_map_with_validity_and_fill() {
        let mut stack = TileStack {
            data: ndarray::Array4::from_shape_fn((1, 2, 2, 2), |(_, c, y, x)| {
                if (c, y, x) == (1, 0, 0) {
                    f32::NAN
                } else {
                    (c * 10 + y * 2 + x) as f32
                }
            }),
            bands: vec!["a".into(), "b".into()],
            days: vec![NaiveDate::from_ymd_opt(2019, 8, 1).unwrap_or_default()],
            eo_cloud_cover: vec![5.0],
            pct_nans: vec![12.5],
            tile_cloud_fraction: vec![f32::NAN],
            items: vec![vec![]],
            grid: crate::geo::grid::GridSpec::tile_around(
                crate::units::Epsg::utm_for(-122.3, 37.8),
                500_000.0,
                4_000_000.0,
                2,
                crate::units::Resolution::TEN_METRES,
            )
            .expect("grid"),
            read_errors: vec![],
        };
        stack.items[0].push("s1".into());
        let b = HostBatch::from_stacks(&[stack], -1.0);
        assert_eq!(b.shape, [1, 1, 2, 2, 2]);
        assert_eq!(b.inputs, vec![0.0, 1.0, 2.0, 3.0, -1.0, 11.0, 12.0, 13.0]);
        assert_eq!(b.valid, vec![0.0, 1.0, 1.0, 1.0]);
        assert_eq!(b.eo_cloud_cover, vec![5.0]);
    }
}
