#![doc = include_str!("../README.md")]

mod crs;
mod error;
mod grid;
pub mod search;
pub mod server;
mod units;
pub mod world;

pub use crs::{Transformer, bbox_around};
pub use error::{Error, Result};
pub use grid::{GeoTransform, GridSpec};
pub use units::{BandName, Epsg, Resolution};
