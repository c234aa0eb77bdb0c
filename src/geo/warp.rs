//! Warping a source raster window onto a target grid, across CRSs. Sync and
//! pure. Four methods, as GDAL's warper (`gdalwarp -r …`) computes them:
//!
//! * values at the target pixel's centre: **nearest** (the default, as
//!   stackstac) and **bilinear** (continuous bands, upsampling);
//! * values over the target pixel's **footprint** (its corners mapped into
//!   the source, so a 30 m pixel over a 10 m source spans 3 × 3 source
//!   pixels): **average**, the covered-area-weighted mean (continuous bands,
//!   downsampling), and **mode**, the most frequent value (categorical bands:
//!   it never invents a class).
//!
//! NaN is nodata everywhere: left out of bilinear, average and mode, and
//! given where no valid source pixel contributes. Compared with GDAL 3.10.3
//! (`tests/it/warp.rs`): mode equal pixel for pixel, average to a float32
//! ulp within a CRS and within 2e-6 relative across UTM zones, where the
//! corners are interpolated between exact transforms as the centres are.

use ndarray::{Array2, ArrayView2};

use crate::error::Result;
use crate::geo::crs::Transformer;
use crate::geo::grid::{GeoTransform, GridSpec};

/// Resampling method: see the module docs for what each computes. Written
/// `nearest` (or GDAL's `near`), `bilinear`, `average`, `mode` in configs.
///
/// ```
/// use tilestack::geo::Resampling;
/// assert_eq!("average".parse::<Resampling>().unwrap(), Resampling::Average);
/// assert_eq!("mode".parse::<Resampling>().unwrap(), Resampling::Mode);
/// let e = "cubic".parse::<Resampling>().unwrap_err().to_string();
/// assert!(e.contains("nearest, bilinear, average or mode"), "{e}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resampling {
    /// The source pixel containing the target pixel centre (GDAL `near`).
    #[default]
    Nearest,
    /// Bilinear over the 4 nearest source centres; NaN neighbours are left
    /// out and the weights renormalized, and a target whose centre falls in
    /// a NaN source pixel is NaN (GDAL's behaviour with nodata).
    Bilinear,
    /// The mean of the source pixels under the target pixel's footprint,
    /// each weighted by the fraction of it the footprint covers (GDAL
    /// `average`, area-weighted since GDAL 3.1); NaN pixels are left out,
    /// NaN when all are. For continuous bands; it interpolates classes.
    Average,
    /// The most frequent value among the source pixels the target pixel's
    /// footprint touches, each counted once however little of it is covered
    /// (GDAL `mode` as 3.10 computes it, the GDAL of rasterio 1.4.4's
    /// wheels, which the tests compare with; GDAL's development tree now
    /// weights the counts by covered area too); NaN pixels
    /// are left out, NaN when all are. Ties go to the value that reached the
    /// winning count first, scanning the footprint row by row (GDAL's rule).
    /// For categorical bands: the result is always one of the source values.
    Mode,
}

impl Resampling {
    /// What a categorical band (classes, a cloud band) is read with when a
    /// stack asks for `self`: nearest for bilinear, mode for average, which
    /// never invent a class; nearest and mode unchanged.
    ///
    /// ```
    /// use tilestack::geo::Resampling;
    /// assert_eq!(Resampling::Bilinear.for_categorical(), Resampling::Nearest);
    /// assert_eq!(Resampling::Average.for_categorical(), Resampling::Mode);
    /// assert_eq!(Resampling::Mode.for_categorical(), Resampling::Mode);
    /// ```
    pub fn for_categorical(self) -> Resampling {
        match self {
            Resampling::Nearest | Resampling::Bilinear => Resampling::Nearest,
            Resampling::Average | Resampling::Mode => Resampling::Mode,
        }
    }
}

impl std::str::FromStr for Resampling {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nearest" | "near" => Ok(Resampling::Nearest),
            "bilinear" => Ok(Resampling::Bilinear),
            "average" => Ok(Resampling::Average),
            "mode" => Ok(Resampling::Mode),
            _ => Err(crate::error::Error::invalid(
                "resampling",
                format!("{s:?} (use nearest, bilinear, average or mode)"),
            )),
        }
    }
}

/// Target pixel centres (or corners) as fractional source pixel coordinates.
///
/// Same-CRS grids are mapped exactly; across CRSs the exact transform is
/// evaluated every `STEP` pixels and interpolated bilinearly in between
/// (the idea of GDAL's approximate transformer; the error here is far below
/// GDAL's 0.125 px budget at 10 m).
#[derive(Debug)]
struct Mapping {
    step: usize,
    nodes_w: usize,
    nodes: Vec<(f64, f64)>,
}

const STEP: usize = 16;

impl Mapping {
    /// `at(c, r)`: the centre of target pixel `(c, r)`.
    fn new(src: &GeoTransform, src_epsg: crate::units::Epsg, dst: &GridSpec) -> Result<Self> {
        Self::points(src, src_epsg, dst, 0.5, dst.width, dst.height)
    }

    /// `at(c, r)`: the top-left corner of target pixel `(c, r)`, for `c` in
    /// `0..=width` and `r` in `0..=height` (the last ones: the grid's right
    /// and bottom edges).
    fn corners(src: &GeoTransform, src_epsg: crate::units::Epsg, dst: &GridSpec) -> Result<Self> {
        Self::points(src, src_epsg, dst, 0.0, dst.width + 1, dst.height + 1)
    }

    /// The target points `(c + offset, r + offset)` (pixel units) for `c`
    /// in `0..cols`, `r` in `0..rows`.
    fn points(
        src: &GeoTransform,
        src_epsg: crate::units::Epsg,
        dst: &GridSpec,
        offset: f64,
        cols: usize,
        rows: usize,
    ) -> Result<Self> {
        let t = Transformer::new(dst.epsg, src_epsg)?;
        let step = if dst.epsg == src_epsg { 1 } else { STEP };
        let nodes_w = cols.div_ceil(step) + 1;
        let nodes_h = rows.div_ceil(step) + 1;
        let dt = &dst.transform;
        let mut nodes = Vec::with_capacity(nodes_w * nodes_h);
        for r in 0..nodes_h {
            for c in 0..nodes_w {
                // as `pixel_center` computes it when `offset` is 0.5
                let x = dt.x0 + ((c * step) as f64 + offset) * dt.dx;
                let y = dt.y0 + ((r * step) as f64 + offset) * dt.dy;
                let (sx, sy) = t.transform(x, y)?;
                nodes.push(src.to_pixel(sx, sy));
            }
        }
        Ok(Mapping {
            step,
            nodes_w,
            nodes,
        })
    }

    fn at(&self, col: usize, row: usize) -> (f64, f64) {
        if self.step == 1 {
            return self.nodes[row * self.nodes_w + col];
        }
        // step is STEP here: a constant divisor (shifts, not divisions)
        let (c0, r0) = (col / STEP, row / STEP);
        let fx = (col % STEP) as f64 / STEP as f64;
        let fy = (row % STEP) as f64 / STEP as f64;
        let n = |c: usize, r: usize| self.nodes[r * self.nodes_w + c];
        let (a, b, c, d) = (n(c0, r0), n(c0 + 1, r0), n(c0, r0 + 1), n(c0 + 1, r0 + 1));
        (
            (a.0 * (1.0 - fx) + b.0 * fx) * (1.0 - fy) + (c.0 * (1.0 - fx) + d.0 * fx) * fy,
            (a.1 * (1.0 - fx) + b.1 * fx) * (1.0 - fy) + (c.1 * (1.0 - fx) + d.1 * fx) * fy,
        )
    }
}

/// Warps `src` (rows × cols, placed by `src_transform` in `src_epsg`) onto
/// `dst`. Target pixels that fall outside the source are NaN.
///
/// # Errors
/// [`crate::error::Error::Crs`] when a CRS is unsupported.
///
/// # Examples
/// ```
/// use ndarray::array;
/// use tilestack::geo::{GeoTransform, GridSpec, Resampling, warp};
/// use tilestack::Epsg;
/// let epsg = Epsg::new(32610).unwrap();
/// // a 2×2 raster at 20 m onto a 4×4 grid at 10 m: each value covers 2×2 pixels
/// let src = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let t20 = GeoTransform::north_up(0.0, 40.0, 20.0);
/// let dst = GridSpec { epsg, transform: GeoTransform::north_up(0.0, 40.0, 10.0), width: 4, height: 4 };
/// let out = warp(src.view(), &t20, epsg, &dst, Resampling::Nearest).unwrap();
/// assert_eq!(out.row(0).to_vec(), vec![1.0, 1.0, 2.0, 2.0]);
/// assert_eq!(out.row(3).to_vec(), vec![3.0, 3.0, 4.0, 4.0]);
/// ```
pub fn warp(
    src: ArrayView2<'_, f32>,
    src_transform: &GeoTransform,
    src_epsg: crate::units::Epsg,
    dst: &GridSpec,
    resampling: Resampling,
) -> Result<Array2<f32>> {
    if src_epsg == dst.epsg && resampling == Resampling::Nearest {
        return Ok(nearest_same_crs(src, src_transform, dst));
    }
    match resampling {
        Resampling::Average => {
            let corners = Mapping::corners(src_transform, src_epsg, dst)?;
            return Ok(over_footprints(src, &corners, dst, average));
        }
        Resampling::Mode => {
            let corners = Mapping::corners(src_transform, src_epsg, dst)?;
            let mut bins = Vec::new();
            let kernel =
                |src: &ArrayView2<'_, f32>, xs: &Span, ys: &Span| mode(src, xs, ys, &mut bins);
            return Ok(over_footprints(src, &corners, dst, kernel));
        }
        Resampling::Nearest | Resampling::Bilinear => {}
    }
    let map = Mapping::new(src_transform, src_epsg, dst)?;
    let (rows, cols) = src.dim();
    let mut out = Array2::from_elem((dst.height, dst.width), f32::NAN);
    for ((r, c), px) in out.indexed_iter_mut() {
        let (sc, sr) = map.at(c, r);
        *px = match resampling {
            Resampling::Nearest => {
                // For non-negative values truncation is floor (and cheaper:
                // without SSE4.1 `floor` is a libm call); NaN fails the test.
                if sc >= 0.0 && sr >= 0.0 && (sc as usize) < cols && (sr as usize) < rows {
                    src[[sr as usize, sc as usize]]
                } else {
                    f32::NAN
                }
            }
            Resampling::Bilinear => bilinear(&src, sc - 0.5, sr - 0.5),
            // handled above, over footprints
            Resampling::Average | Resampling::Mode => f32::NAN,
        };
    }
    Ok(out)
}

/// Nearest within one CRS: both grids are axis-aligned, so the source column
/// depends on the target column only and the row on the row. The indices are
/// computed once per column and per row with the same arithmetic as the
/// general path (`to_pixel(pixel_center)`), so the values are identical.
fn nearest_same_crs(src: ArrayView2<'_, f32>, st: &GeoTransform, dst: &GridSpec) -> Array2<f32> {
    let (rows, cols) = src.dim();
    let (row_idx, col_idx) = nearest_indices(st, rows, cols, dst);
    let mut out = Array2::from_elem((dst.height, dst.width), f32::NAN);
    for (mut orow, ri) in out.rows_mut().into_iter().zip(&row_idx) {
        let Some(ri) = *ri else { continue };
        let srow = src.row(ri);
        match (srow.as_slice(), orow.as_slice_mut()) {
            (Some(s), Some(o)) => {
                for (px, ci) in o.iter_mut().zip(&col_idx) {
                    if let Some(ci) = *ci {
                        *px = s[ci];
                    }
                }
            }
            _ => {
                for (px, ci) in orow.iter_mut().zip(&col_idx) {
                    if let Some(ci) = *ci {
                        *px = srow[ci];
                    }
                }
            }
        }
    }
    out
}

/// The source row of each target row and the source column of each target
/// column for a nearest warp within one CRS, or `None` outside the
/// `rows × cols` source (`st` is its transform). Same-CRS nearest warps are
/// exactly `out[r][c] = src[row[r]][col[c]]`.
///
/// ```
/// use tilestack::geo::{GeoTransform, GridSpec, nearest_indices};
/// use tilestack::Epsg;
/// let epsg = Epsg::new(32610).unwrap();
/// let dst = GridSpec { epsg, transform: GeoTransform::north_up(0.0, 40.0, 10.0), width: 4, height: 4 };
/// // a 2×2 source at 20 m: each source pixel covers 2×2 target pixels
/// let (rows, cols) = nearest_indices(&GeoTransform::north_up(0.0, 40.0, 20.0), 2, 2, &dst);
/// assert_eq!(cols, [Some(0), Some(0), Some(1), Some(1)]);
/// assert_eq!(rows, cols);
/// ```
pub fn nearest_indices(
    st: &GeoTransform,
    rows: usize,
    cols: usize,
    dst: &GridSpec,
) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
    let index = |n: usize, limit: usize, f: &dyn Fn(usize) -> f64| -> Vec<Option<usize>> {
        (0..n)
            .map(|i| {
                let v = f(i).floor();
                (v >= 0.0 && (v as usize) < limit).then_some(v as usize)
            })
            .collect()
    };
    let dt = &dst.transform;
    let col_idx = index(dst.width, cols, &|c| {
        st.to_pixel(dt.pixel_center(c, 0).0, 0.0).0
    });
    let row_idx = index(dst.height, rows, &|r| {
        st.to_pixel(0.0, dt.pixel_center(0, r).1).1
    });
    (row_idx, col_idx)
}

/// Bilinear at centre-based coordinates `(x, y)`; NaN-aware.
fn bilinear(src: &ArrayView2<'_, f32>, x: f64, y: f64) -> f32 {
    let (rows, cols) = src.dim();
    // GDAL's rule: the source pixel the target centre falls in must be
    // inside and valid; only then are its valid neighbours blended.
    let (ix, iy) = ((x + 0.5).floor(), (y + 0.5).floor());
    if ix < 0.0 || iy < 0.0 || ix >= cols as f64 || iy >= rows as f64 {
        return f32::NAN;
    }
    if src[[iy as usize, ix as usize]].is_nan() {
        return f32::NAN;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (mut acc, mut wsum) = (0.0f64, 0.0f64);
    for (dy, wy) in [(0.0, 1.0 - fy), (1.0, fy)] {
        for (dx, wx) in [(0.0, 1.0 - fx), (1.0, fx)] {
            let w = wx * wy;
            if w <= 0.0 {
                continue;
            }
            let (cx, cy) = (
                (x0 + dx).clamp(0.0, cols as f64 - 1.0),
                (y0 + dy).clamp(0.0, rows as f64 - 1.0),
            );
            let v = src[[cy as usize, cx as usize]];
            if v.is_finite() {
                acc += w * v as f64;
                wsum += w;
            }
        }
    }
    if wsum > 0.0 {
        (acc / wsum) as f32
    } else {
        f32::NAN
    }
}

/// GDAL's tolerance when it rounds a footprint's edges to source pixels: an
/// edge within 1e-10 px of a pixel boundary is on it.
const EDGE_EPS: f64 = 1e-10;

/// The source pixels `i0..i1` along one axis that a footprint `[lo, hi]`
/// (fractional source pixel coordinates, corner-based) covers in a source
/// `n` pixels long, and how much of each it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    i0: usize,
    i1: usize,
    lo: f64,
    hi: f64,
}

impl Span {
    /// `None` when `[lo, hi]` misses `[0, n]` (or is not finite). The
    /// rounding is GDAL's: pixels within [`EDGE_EPS`] of the footprint's
    /// edge are left out, and a footprint thinner than that still takes the
    /// pixel it lies on.
    fn new(lo: f64, hi: f64, n: usize) -> Option<Span> {
        let len = n as f64;
        if !(lo.is_finite() && hi.is_finite() && hi > -EDGE_EPS && lo < len + EDGE_EPS) {
            return None;
        }
        // both in 0..=n: lo < n + EDGE_EPS and hi > -EDGE_EPS were checked
        let i0 = (lo + EDGE_EPS).floor().clamp(0.0, len) as usize;
        let mut i1 = (hi - EDGE_EPS).ceil().clamp(0.0, len) as usize;
        if i0 == i1 && i1 < n {
            i1 += 1;
        }
        Some(Span { i0, i1, lo, hi })
    }

    /// The weight of pixel `i` (in `i0..i1`): the fraction of it inside the
    /// footprint, 1 for a footprint within one pixel. As GDAL computes it
    /// (`GWKAverageOrMode`), a footprint hanging over the source's edge
    /// gives the edge pixel the overhang too (a weight above 1), as if the
    /// edge pixel went on.
    fn weight(&self, i: usize) -> f64 {
        if i == self.i0 {
            if self.i0 + 1 == self.i1 {
                1.0
            } else {
                1.0 - (self.lo - self.i0 as f64)
            }
        } else if i + 1 == self.i1 {
            1.0 - (self.i1 as f64 - self.hi)
        } else {
            1.0
        }
    }
}

/// Each target pixel of `dst` from the source pixels under its footprint:
/// its top-left and bottom-right corners mapped into the source (`corners`,
/// see [`Mapping::corners`]) span a source rectangle, as GDAL's warper
/// takes it (the other two corners are not looked at, so across CRSs the
/// footprint is that axis-aligned rectangle, not the rotated pixel).
/// `kernel` computes the value from the source and the rectangle's column
/// and row [`Span`]s; pixels whose footprint misses the source are NaN.
fn over_footprints(
    src: ArrayView2<'_, f32>,
    corners: &Mapping,
    dst: &GridSpec,
    mut kernel: impl FnMut(&ArrayView2<'_, f32>, &Span, &Span) -> f32,
) -> Array2<f32> {
    let (rows, cols) = src.dim();
    let mut out = Array2::from_elem((dst.height, dst.width), f32::NAN);
    for ((r, c), px) in out.indexed_iter_mut() {
        let (ax, ay) = corners.at(c, r);
        let (bx, by) = corners.at(c + 1, r + 1);
        let xs = Span::new(ax.min(bx), ax.max(bx), cols);
        let ys = Span::new(ay.min(by), ay.max(by), rows);
        if let (Some(xs), Some(ys)) = (xs, ys) {
            *px = kernel(&src, &xs, &ys);
        }
    }
    out
}

/// The covered-area-weighted mean of the non-NaN source pixels of a
/// footprint (NaN if none), accumulated in f64 as a running weighted mean
/// (West's incremental form, as GDAL accumulates it, so the sums round as
/// GDAL's do).
fn average(src: &ArrayView2<'_, f32>, xs: &Span, ys: &Span) -> f32 {
    let (mut mean, mut total) = (0.0f64, 0.0f64);
    for i in ys.i0..ys.i1 {
        let wy = ys.weight(i);
        for j in xs.i0..xs.i1 {
            let v = src[[i, j]];
            let w = wy * xs.weight(j);
            if v.is_nan() || w <= 0.0 {
                continue;
            }
            total += w;
            mean += (w / total) * (v as f64 - mean);
        }
    }
    if total > 0.0 { mean as f32 } else { f32::NAN }
}

/// The most frequent non-NaN value of a footprint's source pixels, each
/// counted once (NaN if none). The winner changes only when another value's
/// count passes it, so of values tied at the top the one that got there
/// first, scanning row by row, wins. `bins` is scratch space: `(value,
/// count)` in order of first appearance.
fn mode(src: &ArrayView2<'_, f32>, xs: &Span, ys: &Span, bins: &mut Vec<(f32, u32)>) -> f32 {
    bins.clear();
    let mut best = 0;
    for i in ys.i0..ys.i1 {
        for j in xs.i0..xs.i1 {
            let v = src[[i, j]];
            if v.is_nan() {
                continue;
            }
            match bins.iter().position(|b| b.0 == v) {
                Some(k) => {
                    bins[k].1 += 1;
                    if bins[k].1 > bins[best].1 {
                        best = k;
                    }
                }
                // the first bin is the first winner; a new value (count 1)
                // never passes the winner
                None => bins.push((v, 1)),
            }
        }
    }
    bins.get(best).map_or(f32::NAN, |b| b.0)
}

/// The pixel window `(col0, row0, col1, row1)` (exclusive ends, may extend
/// past the image) of a source grid that covers `dst`, with a 1-pixel margin
/// (2 for bilinear). Computed from the target's densified boundary: its
/// outer edges, so the window holds the footprint of every target pixel too
/// (what average and mode read, a target pixel's corners mapped; downsampling
/// 10 m to 30 m, 3 × 3 source pixels each), and the margin keeps those
/// footprints off the window's edges.
///
/// # Errors
/// [`crate::error::Error::Crs`] when a CRS is unsupported.
pub fn source_window(
    src_transform: &GeoTransform,
    src_epsg: crate::units::Epsg,
    dst: &GridSpec,
    resampling: Resampling,
) -> Result<(i64, i64, i64, i64)> {
    let t = Transformer::new(dst.epsg, src_epsg)?;
    let (minx, miny, maxx, maxy) = dst.bounds();
    let k = 16;
    let mut pts = Vec::new();
    for i in 0..=k {
        let f = i as f64 / k as f64;
        pts.push((minx + (maxx - minx) * f, miny));
        pts.push((minx + (maxx - minx) * f, maxy));
        pts.push((minx, miny + (maxy - miny) * f));
        pts.push((maxx, miny + (maxy - miny) * f));
    }
    let (mut c0, mut r0, mut c1, mut r1) = (
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in pts {
        let (sx, sy) = t.transform(x, y)?;
        let (c, r) = src_transform.to_pixel(sx, sy);
        c0 = c0.min(c);
        r0 = r0.min(r);
        c1 = c1.max(c);
        r1 = r1.max(r);
    }
    let m = match resampling {
        Resampling::Nearest | Resampling::Average | Resampling::Mode => 1,
        Resampling::Bilinear => 2,
    };
    Ok((
        c0.floor() as i64 - m,
        r0.floor() as i64 - m,
        c1.ceil() as i64 + m,
        r1.ceil() as i64 + m,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Epsg;

    #[test]
    fn nearest_never_invents_values_across_zones() {
        let e10 = Epsg::new(32610).unwrap();
        let e11 = Epsg::new(32611).unwrap();
        let src = Array2::from_shape_fn((300, 300), |(r, c)| (r * 1000 + c) as f32);
        // place the source in zone 11 around the image of a zone-10 point
        let t = Transformer::new(e10, e11).unwrap();
        let (x, y) = t.transform(558_976.0, 4_184_946.0).unwrap();
        let st = GeoTransform::north_up(
            (x / 10.0).floor() * 10.0 - 1500.0,
            (y / 10.0).floor() * 10.0 + 1500.0,
            10.0,
        );
        let dst = GridSpec::tile_around(
            e10,
            558_976.0,
            4_184_946.0,
            64,
            crate::units::Resolution::new(10.0).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (st.x0, st.y0),
            (29_160.0, 4_199_630.0),
            "the script's source"
        );
        assert_eq!(
            (dst.transform.x0, dst.transform.y0),
            (558_660.0, 4_185_260.0),
            "the script's target"
        );
        let out = warp(src.view(), &st, e11, &dst, Resampling::Nearest).unwrap();
        let set: std::collections::HashSet<u32> = src.iter().map(|v| v.to_bits()).collect();
        assert!(out.iter().all(|v| set.contains(&v.to_bits())));
        // The zone-11 grid is rotated ~3.7° against zone 10, so source rows
        // drift across target columns: the source pixel GDAL takes for the
        // corners and the centre (`gdalwarp -r near -et 0`, from
        // `python3 tests/py/warp_reference.py`, case zone11_to_zone10_64).
        #[rustfmt::skip]
        let gdal: [(usize, usize, SourcePixel); 5] = [
            (0, 0, Some((116, 121))),
            (0, 63, Some((120, 184))),
            (63, 0, Some((179, 117))),
            (63, 63, Some((183, 180))),
            (32, 32, Some((150, 151))),
        ];
        for (r, c, want) in gdal {
            assert_eq!(source_pixel(out[[r, c]]), want, "target ({r}, {c})");
        }
    }

    /// A source pixel `(row, col)`, or `None` outside the source.
    type SourcePixel = Option<(usize, usize)>;

    /// The source pixel a value of `row * 1000 + col` names (NaN: none).
    fn source_pixel(v: f32) -> SourcePixel {
        (!v.is_nan()).then_some((v as usize / 1000, v as usize % 1000))
    }

    #[test]
    fn nearest_across_zones_takes_gdals_source_pixels() {
        // GDAL's choice for every pixel of an 8 × 8 grid at 40 m in zone 10
        // over a 10 m source in zone 11 (`gdalwarp -r near -et 0` through
        // rasterio: `python3 tests/py/warp_reference.py`, case
        // zone11_to_zone10_8x8; rows drift by one source row every ~4
        // target columns): `[row][col] = Some((source row, source col))`.
        #[rustfmt::skip]
        let gdal: [[SourcePixel; 8]; 8] = [
            [Some((136, 139)), Some((137, 143)), Some((137, 147)), Some((137, 151)), Some((137, 155)), Some((138, 159)), Some((138, 163)), Some((138, 167))],
            [Some((140, 139)), Some((141, 143)), Some((141, 147)), Some((141, 151)), Some((141, 155)), Some((142, 159)), Some((142, 163)), Some((142, 167))],
            [Some((144, 139)), Some((145, 143)), Some((145, 147)), Some((145, 151)), Some((145, 155)), Some((146, 159)), Some((146, 163)), Some((146, 167))],
            [Some((148, 138)), Some((149, 142)), Some((149, 146)), Some((149, 150)), Some((149, 154)), Some((150, 158)), Some((150, 162)), Some((150, 167))],
            [Some((152, 138)), Some((153, 142)), Some((153, 146)), Some((153, 150)), Some((153, 154)), Some((154, 158)), Some((154, 162)), Some((154, 166))],
            [Some((156, 138)), Some((157, 142)), Some((157, 146)), Some((157, 150)), Some((157, 154)), Some((158, 158)), Some((158, 162)), Some((158, 166))],
            [Some((160, 138)), Some((161, 142)), Some((161, 146)), Some((161, 150)), Some((161, 154)), Some((162, 158)), Some((162, 162)), Some((162, 166))],
            [Some((164, 137)), Some((165, 141)), Some((165, 145)), Some((165, 149)), Some((165, 153)), Some((166, 157)), Some((166, 161)), Some((166, 165))],
        ];
        let (e10, e11) = (Epsg::new(32610).unwrap(), Epsg::new(32611).unwrap());
        let src = Array2::from_shape_fn((300, 300), |(r, c)| (r * 1000 + c) as f32);
        let st = GeoTransform::north_up(29_160.0, 4_199_630.0, 10.0);
        let dst = GridSpec::tile_around(
            e10,
            558_976.0,
            4_184_946.0,
            8,
            crate::units::Resolution::new(40.0).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (dst.transform.x0, dst.transform.y0),
            (558_840.0, 4_185_080.0)
        );
        let out = warp(src.view(), &st, e11, &dst, Resampling::Nearest).unwrap();
        let got: Vec<Vec<_>> = out
            .rows()
            .into_iter()
            .map(|row| row.iter().map(|&v| source_pixel(v)).collect())
            .collect();
        let want: Vec<Vec<_>> = gdal.iter().map(|row| row.to_vec()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn nearest_within_a_crs_takes_gdals_source_pixels() {
        // A 6 × 5 source at 20 m onto a 16 × 16 grid at 10 m that overhangs
        // it on all four sides, centres never on a source edge. GDAL's
        // source row per target row and column per target column
        // (`python3 tests/py/warp_reference.py`, case same_crs):
        #[rustfmt::skip]
        let rows: [Option<usize>; 16] = [None, None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(2), Some(3), Some(3), Some(4), Some(4), Some(5), Some(5), None, None];
        #[rustfmt::skip]
        let cols: [Option<usize>; 16] = [None, None, None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(2), Some(3), Some(3), Some(4), Some(4), None, None, None];
        let e = Epsg::new(32610).unwrap();
        let st = GeoTransform::north_up(499_980.0, 4_200_020.0, 20.0);
        let dst = GridSpec {
            epsg: e,
            transform: GeoTransform::north_up(499_953.0, 4_200_043.0, 10.0),
            width: 16,
            height: 16,
        };
        assert_eq!(
            nearest_indices(&st, 6, 5, &dst),
            (rows.to_vec(), cols.to_vec())
        );
        // and the warp itself: out[r][c] = src[rows[r]][cols[c]], NaN where
        // either is outside, on the fast path and on the general one
        let src = Array2::from_shape_fn((6, 5), |(r, c)| (r * 1000 + c) as f32);
        let fast = warp(src.view(), &st, e, &dst, Resampling::Nearest).unwrap();
        let map = Mapping::new(&st, e, &dst).unwrap();
        for ((r, c), &v) in fast.indexed_iter() {
            let want = rows[r].zip(cols[c]);
            assert_eq!(source_pixel(v), want, "target ({r}, {c})");
            let (sc, sr) = map.at(c, r);
            let general = (sc >= 0.0 && sr >= 0.0 && sc < 5.0 && sr < 6.0)
                .then(|| (sr.floor() as usize, sc.floor() as usize));
            assert_eq!(general, want, "general mapping at ({r}, {c})");
        }
    }

    #[test]
    fn same_crs_fast_path_equals_the_general_mapping() {
        let e = Epsg::new(32610).unwrap();
        let src = Array2::from_shape_fn((70, 90), |(r, c)| (r * 1000 + c) as f32);
        // 20 m source, 10 m target offset by a fraction of a pixel and partly outside
        let st = GeoTransform::north_up(499_980.0, 4_200_020.0, 20.0);
        for (x0, y0) in [(500_003.0, 4_199_997.0), (499_500.0, 4_200_500.0)] {
            let dst = GridSpec {
                epsg: e,
                transform: GeoTransform::north_up(x0, y0, 10.0),
                width: 200,
                height: 150,
            };
            let fast = warp(src.view(), &st, e, &dst, Resampling::Nearest).unwrap();
            let map = Mapping::new(&st, e, &dst).unwrap();
            let general = Array2::from_shape_fn((150, 200), |(r, c)| {
                let (sc, sr) = map.at(c, r);
                let (ic, ir) = (sc.floor(), sr.floor());
                if ic >= 0.0 && ir >= 0.0 && (ic as usize) < 90 && (ir as usize) < 70 {
                    src[[ir as usize, ic as usize]]
                } else {
                    f32::NAN
                }
            });
            let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&general));
            // partly outside the source on both grids: NaN and values
            assert!(fast.iter().any(|v| v.is_nan()) && fast.iter().any(|v| v.is_finite()));
        }
    }

    #[test]
    fn outside_is_nan_and_bilinear_interpolates() {
        let e = Epsg::new(32610).unwrap();
        let src = ndarray::array![[0.0f32, 10.0], [20.0, 30.0]];
        let st = GeoTransform::north_up(0.0, 20.0, 10.0);
        let dst = GridSpec {
            epsg: e,
            transform: GeoTransform::north_up(5.0, 15.0, 10.0),
            width: 2,
            height: 2,
        };
        // Target centres (10, 10), (20, 10), (10, 0), (20, 0) are source
        // pixel coordinates (1, 1), (2, 1), (1, 2), (2, 2): corners shared by
        // source pixels. Both methods take the pixel below right of each
        // corner as the one the centre falls in, inside the source only for
        // the first (GDAL's rule): there bilinear weighs the four neighbours
        // equally, (0+10+20+30)/4, exact in f32; the others are NaN.
        let out = warp(src.view(), &st, e, &dst, Resampling::Bilinear).unwrap();
        assert_eq!(out[[0, 0]], 15.0);
        assert!(
            out[[0, 1]].is_nan() && out[[1, 0]].is_nan() && out[[1, 1]].is_nan(),
            "{out}"
        );
        // a NaN source pixel under the centre is NaN; a NaN neighbour is
        // left out and the weights renormalized
        let holed = ndarray::array![[f32::NAN, 10.0], [20.0, 30.0]];
        let one = GridSpec {
            width: 1,
            height: 1,
            ..dst.clone()
        };
        let at = |t: GeoTransform| {
            warp(
                holed.view(),
                &st,
                e,
                &GridSpec {
                    transform: t,
                    ..one.clone()
                },
                Resampling::Bilinear,
            )
            .unwrap()[[0, 0]]
        };
        // centre (10, 10): in pixel (1, 1) = 30; neighbours 10, 20, 30 equally
        assert_eq!(at(GeoTransform::north_up(5.0, 15.0, 10.0)), 20.0);
        // centre (9, 11): in pixel (0, 0), NaN
        assert!(at(GeoTransform::north_up(4.0, 16.0, 10.0)).is_nan());
        let nn = warp(src.view(), &st, e, &dst, Resampling::Nearest).unwrap();
        assert_eq!(nn[[0, 0]], 30.0);
        assert!(
            nn[[0, 1]].is_nan() && nn[[1, 0]].is_nan() && nn[[1, 1]].is_nan(),
            "{nn}"
        );
        let w = source_window(&st, e, &dst, Resampling::Nearest).unwrap();
        assert_eq!(w, (-1, -1, 4, 4));
    }

    /// `src` at 10 m from (0, 10 × rows) onto one target pixel of `res` m
    /// whose top-left corner is the source's.
    fn one_pixel(src: Array2<f32>, res: f64, resampling: Resampling) -> f32 {
        let e = Epsg::new(32610).unwrap();
        let top = 10.0 * src.nrows() as f64;
        let st = GeoTransform::north_up(0.0, top, 10.0);
        let dst = GridSpec {
            epsg: e,
            transform: GeoTransform::north_up(0.0, top, res),
            width: 1,
            height: 1,
        };
        warp(src.view(), &st, e, &dst, resampling).unwrap()[[0, 0]]
    }

    #[test]
    fn average_weighs_source_pixels_by_the_area_the_footprint_covers() {
        let nan = f32::NAN;
        // 2 × 2 at 10 m onto one 20 m pixel: the plain mean
        let a = || ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
        assert_eq!(one_pixel(a(), 20.0, Resampling::Average), 2.5);
        // onto one 15 m pixel: the footprint covers all of (0, 0), half of
        // (0, 1) and (1, 0), a quarter of (1, 1):
        // (1·1 + 2·½ + 3·½ + 4·¼) / (1 + ½ + ½ + ¼) = 4.5 / 2.25
        assert_eq!(one_pixel(a(), 15.0, Resampling::Average), 2.0);
        // NaN left out: (1 + 3 + 4) / 3
        let holed = ndarray::array![[1.0f32, nan], [3.0, 4.0]];
        assert_eq!(
            one_pixel(holed, 20.0, Resampling::Average),
            (8.0f64 / 3.0) as f32
        );
        // all NaN: NaN
        let empty = Array2::from_elem((2, 2), nan);
        assert!(one_pixel(empty, 20.0, Resampling::Average).is_nan());
        // a 30 m grid over a 10 m source, 3:1: each target pixel the mean
        // of its 3 × 3 block (means of small integers, exact in f32)
        let e = Epsg::new(32610).unwrap();
        let src = Array2::from_shape_fn((6, 9), |(r, c)| (r * 9 + c) as f32);
        let st = GeoTransform::north_up(500_000.0, 4_200_060.0, 10.0);
        let dst = GridSpec {
            epsg: e,
            transform: GeoTransform::north_up(500_000.0, 4_200_060.0, 30.0),
            width: 3,
            height: 2,
        };
        let out = warp(src.view(), &st, e, &dst, Resampling::Average).unwrap();
        let want = Array2::from_shape_fn((2, 3), |(r, c)| (r * 27 + c * 3 + 10) as f32);
        assert_eq!(out, want);
    }

    #[test]
    fn mode_takes_the_most_frequent_value_and_breaks_ties_as_gdal() {
        let nan = f32::NAN;
        // a clear winner: 1 five times of nine
        let clear = ndarray::array![[1.0f32, 1.0, 2.0], [1.0, 3.0, 2.0], [4.0, 1.0, 1.0]];
        assert_eq!(one_pixel(clear, 30.0, Resampling::Mode), 1.0);
        // ties, two each: the value that reached two first, row by row
        // (1, 2, 2 → 2 has two; the last 1 only ties it). GDAL 3.10.3
        // through rasterio gives 2 and 1 for these, and 3 for the third
        // (`gdalwarp -r mode`, float32, uint8 and uint16 alike).
        let tie = ndarray::array![[1.0f32, 2.0], [2.0, 1.0]];
        assert_eq!(one_pixel(tie, 20.0, Resampling::Mode), 2.0);
        let tie = ndarray::array![[2.0f32, 1.0], [1.0, 2.0]];
        assert_eq!(one_pixel(tie, 20.0, Resampling::Mode), 1.0);
        let tie = ndarray::array![[5.0f32, 3.0], [3.0, 5.0]];
        assert_eq!(one_pixel(tie, 20.0, Resampling::Mode), 3.0);
        // a pixel counts once however little of it the footprint covers:
        // over a 15 m pixel, 7 covers ½ + ½ + ¼ of a pixel, 1 all of one,
        // and 7 wins 3 to 1
        let partial = ndarray::array![[1.0f32, 7.0], [7.0, 7.0]];
        assert_eq!(one_pixel(partial, 15.0, Resampling::Mode), 7.0);
        // NaN left out, however many; all NaN: NaN
        let holed = ndarray::array![[nan, nan], [nan, 7.0]];
        assert_eq!(one_pixel(holed, 20.0, Resampling::Mode), 7.0);
        assert!(one_pixel(Array2::from_elem((2, 2), nan), 20.0, Resampling::Mode).is_nan());
    }

    #[test]
    fn footprints_overhanging_the_source_follow_gdals_edge_rule() {
        // One 15 m target pixel starting 5 m left of and above a 2 × 2
        // source: its footprint is [-0.5, 1] in both axes. GDAL's weights
        // give the edge pixel the overhang too (1.5), so the value is that
        // pixel's; a footprint entirely outside is NaN.
        let e = Epsg::new(32610).unwrap();
        let src = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
        let st = GeoTransform::north_up(0.0, 20.0, 10.0);
        let at = |x0: f64, y0: f64, res: f64, m: Resampling| {
            let dst = GridSpec {
                epsg: e,
                transform: GeoTransform::north_up(x0, y0, res),
                width: 1,
                height: 1,
            };
            warp(src.view(), &st, e, &dst, m).unwrap()[[0, 0]]
        };
        assert_eq!(at(-5.0, 25.0, 15.0, Resampling::Average), 1.0);
        // [-0.5, 1.5]: weights 1.5 and 0.5 per axis
        // (1·2.25 + 2·0.75 + 3·0.75 + 4·0.25) / 4 = 7 / 4
        assert_eq!(at(-5.0, 25.0, 20.0, Resampling::Average), 1.75);
        assert!(at(-30.0, 20.0, 20.0, Resampling::Average).is_nan());
        assert!(at(20.0, 20.0, 10.0, Resampling::Mode).is_nan());
        assert_eq!(Span::new(-0.5, 1.0, 2).map(|s| s.weight(0)), Some(1.0));
        let s = Span::new(-0.5, 1.5, 2).unwrap();
        assert_eq!((s.i0, s.i1, s.weight(0), s.weight(1)), (0, 2, 1.5, 0.5));
        // edges within 1e-10 px of a pixel boundary are on it
        let s = Span::new(3.0 - 1e-12, 6.0 + 1e-12, 9).unwrap();
        assert_eq!((s.i0, s.i1), (3, 6));
    }

    #[test]
    fn mode_across_zones_never_invents_values_and_the_window_holds_every_footprint() {
        let (e10, e11) = (Epsg::new(32610).unwrap(), Epsg::new(32611).unwrap());
        // classes 0..5 in 10 m blocks of 2 × 3 pixels, in zone 11
        let src = Array2::from_shape_fn((300, 300), |(r, c)| ((r / 2 + c / 3) % 5) as f32);
        let st = GeoTransform::north_up(29_160.0, 4_199_630.0, 10.0);
        let dst = GridSpec::tile_around(
            e10,
            558_976.0,
            4_184_946.0,
            32,
            crate::units::Resolution::new(30.0).unwrap(),
        )
        .unwrap();
        let out = warp(src.view(), &st, e11, &dst, Resampling::Mode).unwrap();
        assert!(
            out.iter()
                .all(|&v| (0.0..5.0).contains(&v) && v.fract() == 0.0)
        );
        let avg = warp(src.view(), &st, e11, &dst, Resampling::Average).unwrap();
        assert!(avg.iter().all(|v| v.is_finite()) && avg.iter().any(|v| v.fract() != 0.0));
        for m in [Resampling::Average, Resampling::Mode] {
            let (c0, r0, c1, r1) = source_window(&st, e11, &dst, m).unwrap();
            let corners = Mapping::corners(&st, e11, &dst).unwrap();
            for r in 0..dst.height {
                for c in 0..dst.width {
                    let (ax, ay) = corners.at(c, r);
                    let (bx, by) = corners.at(c + 1, r + 1);
                    let (x0, x1) = (ax.min(bx), ax.max(bx));
                    let (y0, y1) = (ay.min(by), ay.max(by));
                    assert!(
                        x0.floor() as i64 > c0
                            && (x1.ceil() as i64) < c1
                            && y0.floor() as i64 > r0
                            && (y1.ceil() as i64) < r1,
                        "{m:?}: footprint of ({r}, {c}) [{x0}, {x1}] × [{y0}, {y1}] \
                         off the window {:?}",
                        (c0, r0, c1, r1)
                    );
                }
            }
        }
    }

    #[test]
    fn resampling_names_parse_and_serialize_alike() {
        for (name, m) in [
            ("nearest", Resampling::Nearest),
            ("bilinear", Resampling::Bilinear),
            ("average", Resampling::Average),
            ("mode", Resampling::Mode),
        ] {
            assert_eq!(name.parse::<Resampling>().unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("{name:?}"));
            assert_eq!(serde_json::from_str::<Resampling>(&json).unwrap(), m);
        }
    }
}
