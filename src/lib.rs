#![cfg_attr(all(feature = "demo", feature = "burn"), doc = include_str!("../README.md"))]
#![cfg_attr(
    not(all(feature = "demo", feature = "burn")),
    doc = "Daily satellite tile stacks from STAC + COGs, fed to burn training loops. The README, with examples that run against the demo world, is this page built with the `demo` and `burn` features."
)]
//!
//! # Where each stage lives
//!
//! Modules are private; every public name is re-exported here, once. The
//! stages, in the order data flows through them (each imports only from
//! stages above it):
//!
//! | stage | file | main names |
//! |---|---|---|
//! | errors, warnings | `error.rs` | [`Error`], [`Warning`], [`Cause`] |
//! | units | `units.rs` | [`Epsg`], [`Resolution`], [`BandName`], [`TimeRange`] |
//! | CRS, grids | `crs.rs`, `grid.rs` | [`Transformer`], [`GeoTransform`], [`GridSpec`], [`PixelWindow`] |
//! | STAC search | `search.rs` | [`StacClient`], [`SearchRequest`], [`load_snapshot`] |
//! | items → scenes | `scene.rs` | [`Scene`], [`scenes_from_items`] |
//! | moving bytes | `fetch/` | [`HttpRangeClient`], [`RetryConfig`], [`coalesce`], [`PlanetaryComputerSigner`] |
//! | COG reads | `cog/` | [`CogReader`], [`CogHeader`], [`TileCache`], [`HeaderStore`], [`decode_tile`] |
//! | warp, masks | `warp.rs`, `rasterize.rs` | [`warp()`], [`Resampling`], [`Mask`] |
//! | request, plan, fusion | `request.rs`, `plan.rs`, `fuse.rs` | [`StackRequest`], [`StackPlan`], [`Catalog`] |
//! | the wiring | `pipeline.rs`, `dry_run.rs` | [`build`], [`plan_stack`], [`StackPlan::load`], [`dry_run()`] |
//! | stacks, loading | `stack.rs`, `loader.rs` | [`TileStack`], [`StackLoader`] |
//! | datasets, batches | `config.rs`, `sample.rs`, `dataset.rs`, `source.rs`, `batches.rs` | [`DatasetConfig`], [`TileDataset`], [`BatchLoader`] |
//! | shards | `shard/` | [`materialize`], [`ShardSet`] |
//! | burn (feature `burn`) | `train.rs` | `TileBatcher`, `TileBatch` |
//! | pictures (feature `plot`) | `plot.rs` | `plot_days`, `plot_timeseries` |
//! | the demo world (feature `demo`) | `demo/` | `demo::World`, `demo::WorldServer` |

mod batches;
mod cog;
mod config;
mod crs;
mod dataset;
#[cfg(feature = "demo")]
pub mod demo;
mod dry_run;
mod error;
mod fetch;
mod fuse;
mod grid;
mod loader;
mod pipeline;
mod plan;
#[cfg(feature = "plot")]
mod plot;
mod rasterize;
mod request;
mod sample;
mod scene;
mod search;
mod shard;
mod source;
mod stack;
#[cfg(feature = "burn")]
mod train;
mod units;
mod warp;

pub use batches::{BatchLoader, EpochBatches, HostBatch, LoaderMetrics, SampleStatus};
pub use cog::{
    CogHeader, CogReader, HeaderStore, IfdInfo, MAX_IFD_ENTRIES, MAX_IFDS, MAX_IMAGE_PIXELS,
    MAX_TAG_VALUES, MAX_TILE_BYTES, MAX_TILE_PIXELS, MAX_WINDOW_PIXELS, SampleType, Samples, Tile,
    TileCache, TileData, TileKey, TileWindow, cache_root, decode_tile,
};
pub use config::{
    AugmentConfig, CatalogConfig, CatalogSource, DatasetConfig, ErrorPolicy, FilterConfig,
    LastBatch, LayerConfig, LoaderConfig, NormalizeConfig,
};
pub use crs::{Transformer, bbox_around};
pub use dataset::{DatasetReport, DatasetSample, TileDataset};
pub use dry_run::{
    DryRun, Fetched, GridSummary, ReadSummary, SceneSummary, StepSummary, Totals, dry_run,
};
pub use error::{Cause, Error, Result, Warning};
pub use fetch::{
    Cloud, DEFAULT_COALESCE_GAP, DEFAULT_CONCURRENCY, DEFAULT_PER_HOST, FetchMetrics,
    HttpRangeClient, NoSigner, ObjectVersion, PcSignerConfig, PlanetaryComputerSigner, RetryConfig,
    Signer, coalesce, is_object_store_url,
};
#[cfg(feature = "cloud")]
pub use fetch::{ObjectStores, ObjectUrl, object_store};
pub use grid::{GeoTransform, GridSpec, PixelWindow};
pub use loader::{LoaderOptions, LoaderStats, StackLoader};
pub use pipeline::{Built, build, plan_stack, search_items};
pub use plan::{Catalog, ReadPlan, StackPlan};
#[cfg(feature = "plot")]
pub use plot::{PlotOptions, plot_days, plot_timeseries, save_png};
pub use rasterize::{Mask, MaskFeature, Rings};
pub use request::{Cadence, Fusion, StackRequest, derived_inputs};
pub use sample::{SamplePoint, SamplerConfig, TimeWindows, cross, read_points};
pub use scene::{Harmonize, Scene, SceneAsset, scenes_from_items};
pub use search::{
    DEFAULT_SEARCH_TIMEOUT, SearchRequest, SearchResults, StacClient, load_snapshot,
    normalize_datetime, save_snapshot,
};
pub use shard::{
    DEFAULT_SHARD_BYTES, INDEX_FORMAT, MaterializeOptions, MaterializeProgress, MaterializeReport,
    SampleEntry, ShardIndex, ShardInfo, ShardOptions, ShardSet, Verify, config_hash, materialize,
    merge_parts, part_from_env,
};
pub use stack::TileStack;
#[cfg(feature = "burn")]
pub use train::{ShardDataLoader, StackDataLoader, TileBatch, TileBatcher};
pub use units::{BandName, Epsg, Resolution, TimeRange, parse_day_range};
pub use warp::{Resampling, nearest_indices, source_window, warp};
