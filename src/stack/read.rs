//! One read of a stack: a scene's band window fetched (or its cached
//! tiles), warped to the stack's grid on a blocking thread, harmonized and
//! scaled. [`StackPlan::load`](crate::stack::StackPlan::load) runs many at
//! once; this is where another raster source (Zarr) joins the COG one.

use ndarray::Array2;

use crate::cog::CogReader;
use crate::cog::window::TileWindow;
use crate::error::{Error, Result};
use crate::geo::warp::{Resampling, warp};
use crate::stack::plan::{ReadPlan, StackPlan};

impl StackPlan {
    /// One read: the window (or its tiles), warped to the grid on a blocking
    /// thread, harmonized and scaled.
    pub(crate) async fn read_one(&self, reader: &CogReader, rp: ReadPlan) -> Result<Array2<f32>> {
        let grid = self.grid.clone();
        let resampling = self.request.resampling;
        let header = if self.may_use_overview(&rp) {
            Some(reader.header(&rp.href).await?)
        } else {
            None
        };
        let Some((ifd, win, wt)) = self.read_level(&rp, header.as_deref())? else {
            return Ok(Array2::from_elem((grid.height, grid.width), f32::NAN));
        };
        // Nearest within one CRS samples the cached tiles directly: no
        // window copy, one pass.
        let direct = rp.epsg == grid.epsg && resampling == Resampling::Nearest;
        let src = if direct {
            Source::Tiles(reader.window_tiles(&rp.href, ifd, win).await?)
        } else {
            Source::Window(reader.read_window(&rp.href, ifd, win).await?)
        };
        tokio::task::spawn_blocking(move || -> Result<Array2<f32>> {
            let mut out = match src {
                Source::Window(src) => warp(src.view(), &wt, rp.epsg, &grid, resampling)?,
                Source::Tiles(Some(tiles)) => tiles.nearest(&wt, &grid),
                Source::Tiles(None) => Array2::from_elem((grid.height, grid.width), f32::NAN),
            };
            if let Some(k) = rp.dn_offset {
                // Planetary Computer's recipe: clip at the offset, subtract it.
                let k = k as f32;
                out.mapv_inplace(|v| if v.is_nan() { v } else { v.max(k) - k });
            }
            if let Some((scale, offset)) = rp.scale_offset {
                out.mapv_inplace(|v| (v as f64 * scale + offset) as f32);
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::task("warp", e))?
    }
}

/// What a read hands to its warp: the window's pixels, or its tiles for a
/// direct nearest sample.
enum Source {
    Window(Array2<f32>),
    Tiles(Option<TileWindow>),
}
