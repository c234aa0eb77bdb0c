//! Warping a source raster window onto a target grid: nearest (default, as
//! stackstac) or bilinear, across CRSs. Sync and pure.

use ndarray::{Array2, ArrayView2};

use crate::error::Result;
use crate::geo::crs::Transformer;
use crate::geo::grid::{GeoTransform, GridSpec};

/// Resampling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resampling {
    /// The source pixel containing the target pixel centre (GDAL `near`).
    #[default]
    Nearest,
    /// Bilinear over the 4 nearest source centres; NaN neighbours are left
    /// out and the weights renormalized (GDAL's behaviour with nodata).
    Bilinear,
}

impl std::str::FromStr for Resampling {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nearest" | "near" => Ok(Resampling::Nearest),
            "bilinear" => Ok(Resampling::Bilinear),
            _ => Err(crate::error::Error::invalid(
                "resampling",
                format!("{s:?} (use nearest or bilinear)"),
            )),
        }
    }
}

/// Target pixel centres as fractional source pixel coordinates.
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
    fn new(src: &GeoTransform, src_epsg: crate::units::Epsg, dst: &GridSpec) -> Result<Self> {
        let t = Transformer::new(dst.epsg, src_epsg)?;
        let step = if dst.epsg == src_epsg { 1 } else { STEP };
        let nodes_w = dst.width.div_ceil(step) + 1;
        let nodes_h = dst.height.div_ceil(step) + 1;
        let mut nodes = Vec::with_capacity(nodes_w * nodes_h);
        for r in 0..nodes_h {
            for c in 0..nodes_w {
                let (x, y) = dst.transform.pixel_center(c * step, r * step);
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
    if x < -0.5 || y < -0.5 || x > cols as f64 - 0.5 || y > rows as f64 - 0.5 {
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

/// The pixel window `(col0, row0, col1, row1)` (exclusive ends, may extend
/// past the image) of a source grid that covers `dst`, with a 1-pixel margin
/// (2 for bilinear). Computed from the target's densified boundary.
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
        Resampling::Nearest => 1,
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
        // source pixels, so bilinear weighs its two or four neighbours
        // equally (clamped at the edge): (0+10+20+30)/4, (10+30)/2,
        // (20+30)/2, 30, all exact in f32; nearest takes the pixel below
        // right of each corner, inside the source only for the first.
        let out = warp(src.view(), &st, e, &dst, Resampling::Bilinear).unwrap();
        assert_eq!(out, ndarray::array![[15.0f32, 20.0], [25.0, 30.0]]);
        let nn = warp(src.view(), &st, e, &dst, Resampling::Nearest).unwrap();
        assert_eq!(nn[[0, 0]], 30.0);
        assert!(
            nn[[0, 1]].is_nan() && nn[[1, 0]].is_nan() && nn[[1, 1]].is_nan(),
            "{nn}"
        );
        let w = source_window(&st, e, &dst, Resampling::Nearest).unwrap();
        assert_eq!(w, (-1, -1, 4, 4));
    }
}
