//! The decoded tiles under one window, sampled straight into an output grid
//! (nearest neighbour), or copied into a plain window array.

use ndarray::Array2;

use crate::cog::tile::TileData;
use crate::geo::grid::{GeoTransform, GridSpec, PixelWindow};
use crate::geo::warp::nearest_indices;

/// The decoded tiles under a window of one IFD, from
/// [`CogReader::window_tiles`](crate::cog::CogReader::window_tiles): sampled straight from the tiles, so that a
/// nearest-neighbour warp needs no intermediate window copy.
#[derive(Debug, Clone)]
pub struct TileWindow {
    /// The window asked for (image pixels).
    pub(super) window: PixelWindow,
    /// Image width, pixels.
    pub(super) width: usize,
    /// Image height, pixels.
    pub(super) height: usize,
    pub(super) tile_width: usize,
    pub(super) tile_height: usize,
    /// First tile column and row under the window.
    pub(super) tx0: usize,
    pub(super) ty0: usize,
    /// Tiles across and down under the window.
    pub(super) across: usize,
    pub(super) down: usize,
    /// The tiles, row-major.
    pub(super) tiles: Vec<TileData>,
}

impl TileWindow {
    /// The tiles `tiles` (row-major, `across × down` of them from tile
    /// `(tx0, ty0)`) of an image of `width × height` pixels in tiles of
    /// `tile_width × tile_height`, under `window`: how another source (the
    /// Zarr reader's decoded chunks) hands its tiles to the same sampling.
    pub(crate) fn from_tiles(
        window: PixelWindow,
        (width, height): (usize, usize),
        (tile_width, tile_height): (usize, usize),
        (tx0, ty0): (usize, usize),
        (across, down): (usize, usize),
        tiles: Vec<TileData>,
    ) -> TileWindow {
        TileWindow {
            window,
            width,
            height,
            tile_width,
            tile_height,
            tx0,
            ty0,
            across,
            down,
            tiles,
        }
    }

    /// The window warped onto `dst` by nearest neighbour within one CRS,
    /// sampled straight from the tiles; `window_transform` georeferences
    /// the window's top-left pixel. Bit-identical to
    /// [`warp`](crate::geo::warp()) of [`CogReader::read_window`](crate::cog::CogReader::read_window)'s array, without
    /// that intermediate copy (pixels outside the window or the image: NaN).
    pub fn nearest(&self, window_transform: &GeoTransform, dst: &GridSpec) -> Array2<f32> {
        let PixelWindow {
            col_off: c0,
            row_off: r0,
            width: w,
            height: h,
        } = self.window;
        let (rows, cols) = nearest_indices(window_transform, h, w, dst);
        let shift = |v: Vec<Option<usize>>, by: usize| -> Vec<Option<usize>> {
            v.into_iter().map(|i| i.map(|i| i + by)).collect()
        };
        // `sample` writes every value (NaN where nothing is read).
        let mut out = Array2::zeros((dst.height, dst.width));
        if let Some(o) = out.as_slice_mut() {
            self.sample(&shift(rows, r0), &shift(cols, c0), o);
        }
        out
    }

    /// Writes the image pixels `(rows[i], cols[j])` into `out[i * cols.len() + j]`
    /// as f32 (nodata → NaN). `None`, a pixel outside the image or outside
    /// the tiles this window holds, or a row not decoded, gives NaN.
    /// `out` must hold `rows.len() × cols.len()` values; extra rows are left.
    pub fn sample(&self, rows: &[Option<usize>], cols: &[Option<usize>], out: &mut [f32]) {
        let (tw, th) = (self.tile_width.max(1), self.tile_height.max(1));
        let x_end = (self.tx0 + self.across) * tw;
        let y_end = (self.ty0 + self.down) * th;
        // Columns as runs over one tile column each: (tile column, first
        // output column, the in-tile columns); `None` runs are NaN.
        let mut runs: Vec<(Option<usize>, usize, Vec<usize>)> = Vec::new();
        for (j, c) in cols.iter().enumerate() {
            let at = c
                .filter(|&c| c < self.width && c >= self.tx0 * tw && c < x_end)
                .map(|c| (c / tw - self.tx0, c % tw));
            let tile = at.map(|(t, _)| t);
            match runs.last_mut() {
                Some((t, _, cc)) if *t == tile => cc.extend(at.map(|(_, c)| c)),
                _ => runs.push((tile, j, at.map(|(_, c)| c).into_iter().collect())),
            }
        }
        // The first in-tile column of runs whose columns are consecutive.
        let consecutive: Vec<Option<usize>> = runs
            .iter()
            .map(|(_, _, cc)| {
                let c0 = *cc.first()?;
                cc.iter()
                    .enumerate()
                    .all(|(k, &c)| c == c0 + k)
                    .then_some(c0)
            })
            .collect();
        let n = cols.len();
        for (orow, r) in out.chunks_exact_mut(n.max(1)).zip(rows) {
            let r = r.filter(|&r| r < self.height && r >= self.ty0 * th && r < y_end);
            let Some(r) = r else {
                orow.fill(f32::NAN);
                continue;
            };
            let (ty, rr) = (r / th - self.ty0, r % th);
            for (k, ((tile, j, cc), step)) in runs.iter().zip(&consecutive).enumerate() {
                let end = runs.get(k + 1).map_or(n, |next| next.1);
                let dst = &mut orow[*j..end];
                match (
                    tile.and_then(|t| self.tiles.get(ty * self.across + t)),
                    step,
                ) {
                    // source pixels side by side (same resolution): a row copy
                    (Some(t), Some(c0)) => t.copy_row(rr, *c0..*c0 + cc.len(), dst),
                    (Some(t), None) => t.gather_row(rr, cc, dst),
                    (None, _) => dst.fill(f32::NAN),
                }
            }
        }
    }

    /// The window as a plain array (`height × width`, NaN outside the image
    /// and for nodata): the tiles' rows copied into place.
    pub fn to_array(&self) -> Array2<f32> {
        let win = self.window;
        let mut out = Array2::from_elem((win.height, win.width), f32::NAN);
        let Some(clipped) = win.clip(self.width, self.height) else {
            return out;
        };
        let (tw, th) = (self.tile_width, self.tile_height);
        let (c0, c1) = (clipped.col_off, clipped.col_end());
        let (r0, r1) = (clipped.row_off, clipped.row_end());
        for (i, tile) in self.tiles.iter().enumerate() {
            let (x, y) = (self.tx0 + i % self.across, self.ty0 + i / self.across);
            // Intersection of this tile with the clipped window, image pixels.
            let (tx0, ty0) = (x * tw, y * th);
            let (ix0, ix1) = (c0.max(tx0), c1.min(tx0 + tw));
            let (iy0, iy1) = (r0.max(ty0), r1.min(ty0 + th));
            for row in iy0..iy1 {
                let mut dst = out.row_mut(row - win.row_off);
                if let Some(dst) = dst.as_slice_mut() {
                    let at = ix0 - win.col_off;
                    tile.copy_row(
                        row - ty0,
                        ix0 - tx0..ix1 - tx0,
                        &mut dst[at..at + (ix1 - ix0)],
                    );
                }
            }
        }
        out
    }
}
