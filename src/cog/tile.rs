//! Decoded tiles: native samples kept as read (u8/u16) or f32, turned into
//! f32 with nodata as NaN only for the pixels a window copies out.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

/// Key of one decoded tile: `(href, IFD index, tile column, tile row, band)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TileKey {
    /// The COG's URL.
    pub href: String,
    /// IFD index (0 = full resolution, then overviews).
    pub ifd: usize,
    /// Tile column.
    pub x: usize,
    /// Tile row.
    pub y: usize,
    /// Band, 0-based (0 for a single-band file).
    pub band: usize,
}

/// One decoded tile, or its top rows, row-major. Edge tiles keep their full
/// (padded) size.
///
/// Unsigned 8/16-bit tiles stay in their native samples (half or a quarter
/// of f32's memory, in the cache too); values become f32, with nodata as
/// NaN, only for the pixels a window copies out ([`Tile::copy_row`]).
///
/// A tile read for a window that ends inside it is inflated only down to the
/// window's last row (plus a margin), and keeps its compressed bytes so that
/// a later window reaching further down decodes the rest without a fetch.
#[derive(Debug, Clone)]
pub struct Tile {
    /// Tile width in pixels.
    pub width: usize,
    /// Tile height in pixels (the full tile).
    pub height: usize,
    /// Rows decoded from the top (`rows <= height`).
    pub rows: usize,
    /// The `rows × width` samples.
    pub samples: Samples,
    /// The compressed tile, kept while `rows < height`.
    pub compressed: Option<Bytes>,
}

/// A tile's samples.
#[derive(Debug, Clone)]
pub enum Samples {
    /// f32 values, nodata already NaN.
    F32(Vec<f32>),
    /// Unsigned bytes; `nodata` reads as NaN.
    U8 {
        /// The samples.
        values: Vec<u8>,
        /// The nodata value, if one applies.
        nodata: Option<u8>,
    },
    /// Unsigned 16-bit samples, little-endian bytes; `nodata` reads as NaN.
    U16 {
        /// Two bytes a sample.
        le_bytes: Vec<u8>,
        /// The nodata value, if one applies.
        nodata: Option<u16>,
    },
}

impl Tile {
    /// A fully decoded f32 tile.
    pub fn full(width: usize, height: usize, data: Vec<f32>) -> Tile {
        Tile {
            width,
            height,
            rows: height,
            samples: Samples::F32(data),
            compressed: None,
        }
    }

    /// Bytes this tile holds in the cache (samples + kept compressed bytes).
    pub fn cached_bytes(&self) -> u64 {
        let samples = match &self.samples {
            Samples::F32(v) => v.len() * std::mem::size_of::<f32>(),
            Samples::U8 { values, .. } => values.len(),
            Samples::U16 { le_bytes, .. } => le_bytes.len(),
        };
        (samples + self.compressed.as_ref().map_or(0, Bytes::len)) as u64
    }

    /// Copies row `row`, columns `cols`, into `out` as f32 (nodata → NaN).
    /// Rows at or past [`Tile::rows`] and columns past the width are NaN.
    ///
    /// # Examples
    /// ```
    /// use tilestack::cog::Tile;
    /// let t = Tile::full(2, 2, vec![1.0, 2.0, 3.0, 4.0]);
    /// let mut out = [0.0f32; 2];
    /// t.copy_row(1, 0..2, &mut out);
    /// assert_eq!(out, [3.0, 4.0]);
    /// ```
    pub fn copy_row(&self, row: usize, cols: Range<usize>, out: &mut [f32]) {
        let n = cols.len().min(out.len());
        let out = &mut out[..n];
        if row >= self.rows || cols.end > self.width {
            out.fill(f32::NAN);
            return;
        }
        let start = row * self.width + cols.start;
        match &self.samples {
            Samples::F32(v) => match v.get(start..start + n) {
                Some(src) => out.copy_from_slice(src),
                None => out.fill(f32::NAN),
            },
            Samples::U8 { values, nodata } => match values.get(start..start + n) {
                Some(src) => {
                    for (o, &b) in out.iter_mut().zip(src) {
                        *o = if Some(b) == *nodata {
                            f32::NAN
                        } else {
                            f32::from(b)
                        };
                    }
                }
                None => out.fill(f32::NAN),
            },
            Samples::U16 { le_bytes, nodata } => match le_bytes.get(2 * start..2 * (start + n)) {
                Some(src) => {
                    let values = src
                        .chunks_exact(2)
                        .map(|p| u16::from_le_bytes([p[0], p[1]]));
                    // nodata outside the loop: each loop stays branch-light
                    match *nodata {
                        Some(nd) => {
                            for (o, v) in out.iter_mut().zip(values) {
                                *o = if v == nd { f32::NAN } else { f32::from(v) };
                            }
                        }
                        None => {
                            for (o, v) in out.iter_mut().zip(values) {
                                *o = f32::from(v);
                            }
                        }
                    }
                }
                None => out.fill(f32::NAN),
            },
        }
    }

    /// Samples `cols` (any order, repeats allowed) of `row` into `out` as
    /// f32, nodata → NaN, with the same values as [`Tile::copy_row`]. A row
    /// not decoded, or a column past the tile, gives NaN.
    ///
    /// ```
    /// use tilestack::cog::{Samples, Tile};
    /// let t = Tile { width: 3, height: 1, rows: 1, compressed: None,
    ///     samples: Samples::U8 { values: vec![5, 0, 7], nodata: Some(0) } };
    /// let mut out = [0f32; 4];
    /// t.gather_row(0, &[2, 2, 1, 9], &mut out);
    /// assert_eq!(out[..2], [7.0, 7.0]);
    /// assert!(out[2].is_nan() && out[3].is_nan());
    /// ```
    pub fn gather_row(&self, row: usize, cols: &[usize], out: &mut [f32]) {
        let n = cols.len().min(out.len());
        let (cols, out) = (&cols[..n], &mut out[..n]);
        if row >= self.rows {
            out.fill(f32::NAN);
            return;
        }
        let start = row * self.width;
        let w = self.width;
        match &self.samples {
            Samples::F32(v) => {
                let src = v.get(start..start + w).unwrap_or(&[]);
                for (o, &c) in out.iter_mut().zip(cols) {
                    *o = src.get(c).copied().unwrap_or(f32::NAN);
                }
            }
            Samples::U8 { values, nodata } => {
                let src = values.get(start..start + w).unwrap_or(&[]);
                for (o, &c) in out.iter_mut().zip(cols) {
                    *o = match src.get(c) {
                        Some(&b) if Some(b) != *nodata => f32::from(b),
                        _ => f32::NAN,
                    };
                }
            }
            Samples::U16 { le_bytes, nodata } => {
                let src = le_bytes.get(2 * start..2 * (start + w)).unwrap_or(&[]);
                let at = |c: usize| {
                    src.get(2 * c..2 * c + 2)
                        .map(|p| u16::from_le_bytes([p[0], p[1]]))
                };
                // nodata outside the loop: each loop stays branch-light
                match *nodata {
                    Some(nd) => {
                        for (o, &c) in out.iter_mut().zip(cols) {
                            *o = match at(c) {
                                Some(v) if v != nd => f32::from(v),
                                _ => f32::NAN,
                            };
                        }
                    }
                    None => {
                        for (o, &c) in out.iter_mut().zip(cols) {
                            *o = at(c).map_or(f32::NAN, f32::from);
                        }
                    }
                }
            }
        }
    }

    /// The decoded rows as f32 (nodata → NaN), `rows × width` values.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.width];
        for (r, chunk) in out.chunks_exact_mut(self.width.max(1)).enumerate() {
            self.copy_row(r, 0..self.width, chunk);
        }
        out
    }
}

/// A shared decoded tile.
pub type TileData = Arc<Tile>;
