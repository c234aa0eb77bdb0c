//! Geometry, pure and free of I/O: CRS transforms ([`Transformer`]), grids
//! and pixel windows ([`GridSpec`], [`GeoTransform`], [`PixelWindow`]),
//! warping a source window onto a tile grid ([`warp()`]), and vector masks
//! rasterized by the pixel-centre rule ([`Mask`]).
//!
//! May import: [`crate::error`], [`crate::units`]. Nothing here reads a
//! file or a socket; every function is a synchronous function of its
//! arguments, so callers run them on blocking threads or rayon.

pub(crate) mod crs;
pub(crate) mod grid;
pub(crate) mod rasterize;
pub(crate) mod warp;

pub use crs::{Transformer, bbox_around};
pub use grid::{GeoTransform, GridSpec, PixelWindow};
pub use rasterize::{Mask, MaskFeature, Rings};
pub use warp::{Resampling, nearest_indices, source_window, warp};
