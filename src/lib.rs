#![doc = include_str!("../README.md")]

pub mod cog;
mod crs;
mod error;
pub mod fetch;
mod grid;
pub mod header_store;
pub mod loader;
pub mod pipeline;
pub mod plot;
pub mod rasterize;
pub mod scene;
pub mod search;
pub mod server;
pub mod sign;
pub mod stack;
pub mod store;
#[cfg(feature = "burn")]
pub mod train;
mod units;
pub mod warp;
pub mod world;

pub use crs::{Transformer, bbox_around};
pub use error::{Error, Result};
pub use grid::{GeoTransform, GridSpec};
pub use units::{BandName, Epsg, Resolution};
