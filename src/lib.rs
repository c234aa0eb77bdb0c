#![cfg_attr(all(feature = "demo", feature = "burn"), doc = include_str!("../README.md"))]
#![cfg_attr(
    not(all(feature = "demo", feature = "burn")),
    doc = "Daily satellite tile stacks from STAC + COGs, fed to burn training loops. The README, with examples that run against the demo world, is this page built with the `demo` and `burn` features."
)]
//!
//! # Where each stage lives
//!
//! One public module per stage, in the order data flows through them. Each
//! module imports only from the modules above it in this table (and from
//! its own files), and inside the crate every import names the module that
//! defines the item (`crate::geo::grid::GridSpec`), so the import graph is
//! this table; `tests/stages.py` checks both in CI.
//!
//! | stage | module | what it holds |
//! |---|---|---|
//! | errors, warnings | [`error`] | [`Error`], [`Warning`], [`error::Cause`] |
//! | units | [`units`] | [`Epsg`], [`Resolution`], [`BandName`], [`units::TimeRange`] |
//! | geometry (pure, no I/O) | [`geo`] | CRS transforms, grids and windows, warping, rasterized masks |
//! | moving bytes | [`fetch`] | [`HttpRangeClient`], retries, per-host limits, coalescing, signing, object stores |
//! | COG reads | [`cog`] | [`CogReader`], headers and their index, the tile cache, decoding, windows |
//! | Zarr reads | [`zarr`] | [`zarr::ZarrReader`]: v2/v3 metadata, Blosc/zstd/gzip and sharding, windows through the same fetch layer and tile cache, georeferencing |
//! | catalogs | [`stac`] | [`stac::StacClient`], snapshots (JSON, stac-geoparquet), items → [`stac::Scene`]s |
//! | stacks | [`stack`] | [`StackRequest`] → [`StackPlan`] → [`TileStack`]: [`build`], [`plan_stack`], fusion, dry runs |
//! | datasets | [`dataset`] | [`DatasetConfig`] (`datasets/*.toml`), samplers, [`TileDataset`] |
//! | shards | [`shard`] | [`materialize`], [`ShardSet`] |
//! | batches | [`loader`] | [`BatchLoader`]: epoch order, prefetch under a byte budget, augmentation, metrics |
//! | burn (feature `burn`) | `burn` | `StackDataLoader`, `ShardDataLoader`, `TileBatch`; burn's `Dataset` on [`TileDataset`] |
//! | pictures (feature `plot`) | `plot` | `plot_days`, `plot_timeseries` |
//! | the demo world (feature `demo`) | `demo` | `demo::World`, `demo::WorldServer`; nothing above imports it |
//!
//! The names at the crate root are the ones a user types first; every
//! other public name lives in its stage's module.

pub mod error;
pub(crate) mod runtime;
pub mod units;

pub mod geo;

pub mod fetch;

pub mod cog;

pub mod zarr;

pub mod stac;

pub mod stack;

pub mod dataset;

pub mod shard;

pub mod loader;

#[cfg(feature = "burn")]
pub mod burn;

#[cfg(feature = "plot")]
pub mod plot;

#[cfg(feature = "demo")]
pub mod demo;

#[cfg(feature = "burn")]
#[doc(no_inline)]
pub use burn::{ShardDataLoader, StackDataLoader, TileBatch};
#[doc(no_inline)]
pub use cog::CogReader;
#[doc(no_inline)]
pub use dataset::{DatasetConfig, LoaderConfig, TileDataset};
#[doc(no_inline)]
pub use error::{Error, Result, Warning};
#[doc(no_inline)]
pub use fetch::HttpRangeClient;
#[doc(no_inline)]
pub use loader::BatchLoader;
#[doc(no_inline)]
pub use shard::{ShardSet, materialize};
#[doc(no_inline)]
pub use stac::Catalog;
#[doc(no_inline)]
pub use stack::{StackPlan, StackRequest, TileStack, build, plan_stack};
#[doc(no_inline)]
pub use units::{BandName, Epsg, Resolution};
