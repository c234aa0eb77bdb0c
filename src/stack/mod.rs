//! [`TileStack`]: the daily tile stack, and its files (`stack.safetensors`,
//! `metadata.csv`).
//!
//! The stack stage: a [`StackRequest`] (place, days, bands, grid, fusion)
//! is planned against a catalog into a [`StackPlan`] (per time step: scenes,
//! IFDs, windows, bytes; nothing fetched), which loads into a [`TileStack`]
//! (reads, decode, warp, fusion, mask, metadata). [`build`] does both;
//! [`dry_run()`] says what a load would read.
//!
//! May import: [`crate::error`], [`crate::units`], [`crate::geo`],
//! [`crate::fetch`], [`crate::cog`], [`crate::stac`].

pub(crate) mod dry_run;
pub(crate) mod file;
pub(crate) mod fuse;
pub(crate) mod load;
pub(crate) mod plan;
pub(crate) mod read;
pub(crate) mod request;

use chrono::NaiveDate;
pub use dry_run::{
    DryRun, Fetched, GridSummary, ReadSummary, SceneSummary, StepSummary, Totals, dry_run,
};
pub use load::{Built, build, fill_zarr_grids, plan_stack, plan_stack_with, search_items};
use ndarray::Array4;
pub use plan::{ReadPlan, StackPlan};
pub use request::{Cadence, Fusion, StackRequest, StackTemplate, derived_inputs};

use crate::geo::grid::GridSpec;

/// A stack of `T` time steps × `C` bands × `H` × `W` pixels on one grid.
/// NaN is nodata. When a mask was given its band is last, named `mask`.
#[derive(Debug, Clone, PartialEq)]
pub struct TileStack {
    /// `f32[T, C, H, W]`.
    pub data: Array4<f32>,
    /// Band names, in `C` order.
    pub bands: Vec<String>,
    /// First day of each time step (UTC).
    pub days: Vec<NaiveDate>,
    /// Max scene-level `eo:cloud_cover` of each step, percent; NaN when no scene.
    pub eo_cloud_cover: Vec<f32>,
    /// NaN pixels of each step over the requested bands (mask excluded), percent 0–100.
    pub pct_nans: Vec<f32>,
    /// The tile's own cloud fraction (SCL 3, 8, 9, 10 among valid SCL pixels), 0–1;
    /// NaN when no cloud band was read or the step has no valid SCL pixel.
    pub tile_cloud_fraction: Vec<f32>,
    /// Scene ids that supplied each step (provenance).
    pub items: Vec<Vec<String>>,
    /// The tile grid.
    pub grid: GridSpec,
    /// Windows that failed and were filled with NaN (`errors_as_nodata`):
    /// `"<item id> <band>: <error>"`. Empty when every read succeeded.
    pub read_errors: Vec<String>,
}

/// A sample's label and mask layers, rasterized on its stack's grid: 1
/// inside a feature and 0 outside. The loaders put them beside the stack in
/// a batch row (as `f32`); shards store them as they are (U8).
///
/// # Examples
/// ```
/// let layers = tilestack::stack::Layers::default();
/// assert!(layers.labels.is_empty() && layers.masks.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layers {
    /// Per label layer, per time step, `H × W` values row-major (`[L][T][H·W]`).
    pub labels: Vec<Vec<Vec<u8>>>,
    /// Per input mask, `H × W` values row-major (`[M][H·W]`).
    pub masks: Vec<Vec<u8>>,
}

/// What every sample of a dataset looks like: its stack's shape, band
/// names, and the names of its label and mask layers. A
/// [`TileDataset`](crate::dataset::TileDataset) and a
/// [`ShardSet`](crate::shard::ShardSet) of it have the same layout; batches,
/// shard regions and budgets are sized from it.
///
/// # Examples
/// ```
/// let layout = tilestack::stack::SampleLayout {
///     shape: [30, 4, 256, 256],
///     bands: vec!["B04".into(), "B03".into(), "B02".into(), "B08".into()],
///     labels: vec!["ships".into()],
///     masks: vec![],
/// };
/// // f32 data, 3 f32 of metadata per step, one u8 per layer pixel
/// assert_eq!(layout.region_bytes(), Some(30 * 4 * 65536 * 4 + 12 * 30 + 30 * 65536));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleLayout {
    /// `[T, C, H, W]` of every sample's stack.
    pub shape: [usize; 4],
    /// Band names, in `C` order.
    pub bands: Vec<String>,
    /// Label layer names (`[T, H, W]` each).
    pub labels: Vec<String>,
    /// Input mask names (`[H, W]` each).
    pub masks: Vec<String>,
}

impl SampleLayout {
    /// Bytes of one sample as a shard stores it: `f32` data, three `f32`
    /// of metadata per step, one byte per layer pixel (labels per step);
    /// `None` when a (hostile) shape overflows.
    pub fn region_bytes(&self) -> Option<u64> {
        let [t, c, h, w] = self.shape;
        let px = h.checked_mul(w)?;
        let data = t.checked_mul(c)?.checked_mul(px)?.checked_mul(4)?;
        let layers = self
            .labels
            .len()
            .checked_mul(t)?
            .checked_add(self.masks.len())?
            .checked_mul(px)?;
        let total = data.checked_add(t.checked_mul(12)?)?.checked_add(layers)?;
        u64::try_from(total).ok()
    }
}

impl TileStack {
    /// Number of time steps.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// True when there is no time step.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }
}
