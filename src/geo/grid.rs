//! Georeferenced pixel grids: affine transforms and tile grids.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::geo::crs::Transformer;
use crate::units::{Epsg, Resolution};

/// A north-up affine pixel → CRS transform: `x = x0 + col·dx`, `y = y0 + row·dy`
/// with `dy < 0`. Coordinates refer to pixel **corners**; the centre of pixel
/// `(col, row)` is at `col + 0.5, row + 0.5`.
///
/// # Examples
/// ```
/// use tilestack::geo::GeoTransform;
/// let t = GeoTransform::north_up(557_700.0, 4_186_220.0, 10.0);
/// assert_eq!(t.to_gdal(), [557_700.0, 10.0, 0.0, 4_186_220.0, 0.0, -10.0]);
/// assert_eq!(t.pixel_center(0, 0), (557_705.0, 4_186_215.0));
/// assert_eq!(t.to_pixel(557_715.0, 4_186_200.0), (1.5, 2.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoTransform {
    /// x of the top-left corner of pixel (0, 0), CRS units.
    pub x0: f64,
    /// y of the top-left corner of pixel (0, 0), CRS units.
    pub y0: f64,
    /// Pixel width, CRS units (> 0).
    pub dx: f64,
    /// Pixel height, CRS units (< 0 for north-up).
    pub dy: f64,
}

impl GeoTransform {
    /// A square-pixel north-up transform with its top-left corner at `(x0, y0)`.
    pub fn north_up(x0: f64, y0: f64, res: f64) -> Self {
        GeoTransform {
            x0,
            y0,
            dx: res,
            dy: -res,
        }
    }

    /// From a GDAL geotransform `(x0, dx, 0, y0, 0, dy)` (north-up: the
    /// rotation terms are ignored), the inverse of [`GeoTransform::to_gdal`].
    ///
    /// ```
    /// use tilestack::geo::GeoTransform;
    /// let t = GeoTransform::from_gdal([565_000.0, 10.0, 0.0, 4_185_000.0, 0.0, -10.0]);
    /// assert_eq!(GeoTransform::from_gdal(t.to_gdal()), t);
    /// ```
    pub fn from_gdal(g: [f64; 6]) -> GeoTransform {
        GeoTransform {
            x0: g[0],
            dx: g[1],
            y0: g[3],
            dy: g[5],
        }
    }

    /// GDAL's 6-tuple `[x0, dx, 0, y0, 0, dy]`.
    pub fn to_gdal(&self) -> [f64; 6] {
        [self.x0, self.dx, 0.0, self.y0, 0.0, self.dy]
    }

    /// From a STAC `proj:transform` (rasterio/affine order `[a, b, c, d, e, f]`,
    /// optionally followed by `0, 0, 1`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for rotated/sheared or degenerate transforms.
    pub fn from_stac(t: &[f64]) -> Result<Self> {
        if t.len() != 6 && t.len() != 9 {
            return Err(Error::invalid(
                "proj:transform",
                format!("has {} numbers, expected 6 or 9", t.len()),
            ));
        }
        let (a, b, c, d, e, f) = (t[0], t[1], t[2], t[3], t[4], t[5]);
        if b != 0.0 || d != 0.0 {
            return Err(Error::invalid(
                "proj:transform",
                "rotated grids are not supported",
            ));
        }
        if !(a > 0.0 && e < 0.0 && c.is_finite() && f.is_finite()) {
            return Err(Error::invalid(
                "proj:transform",
                format!("{t:?} is not a north-up transform"),
            ));
        }
        Ok(GeoTransform {
            x0: c,
            y0: f,
            dx: a,
            dy: e,
        })
    }

    /// STAC `proj:transform` (6 numbers).
    pub fn to_stac(&self) -> [f64; 6] {
        [self.dx, 0.0, self.x0, 0.0, self.dy, self.y0]
    }

    /// CRS coordinates of the centre of pixel `(col, row)`.
    pub fn pixel_center(&self, col: usize, row: usize) -> (f64, f64) {
        (
            self.x0 + (col as f64 + 0.5) * self.dx,
            self.y0 + (row as f64 + 0.5) * self.dy,
        )
    }

    /// Fractional pixel coordinates `(col, row)` of a CRS point (corner-based).
    pub fn to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        ((x - self.x0) / self.dx, (y - self.y0) / self.dy)
    }
}

/// A raster grid: CRS, transform and size in pixels.
///
/// # Examples
/// ```
/// use tilestack::geo::GridSpec;
/// use tilestack::{Epsg, Resolution};
/// let epsg = Epsg::new(32610).unwrap();
/// let g = GridSpec::tile_around(epsg, 558_976.1, 4_184_946.3, 256, Resolution::new(10.0).unwrap()).unwrap();
/// assert_eq!((g.transform.x0, g.transform.y0), (557_700.0, 4_186_220.0));
/// assert_eq!((g.width, g.height), (256, 256));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    /// The grid's CRS.
    pub epsg: Epsg,
    /// Pixel → CRS transform.
    pub transform: GeoTransform,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl GridSpec {
    /// The `size`×`size` tile around a centroid `(cx, cy)` given in `epsg`
    /// units, snapped to multiples of `res` as sat-tile-stack's crop does:
    /// `left = ceil((cx − size·res/2)/res)·res`, `top = floor((cy + size·res/2)/res)·res`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero size or non-finite centroid.
    pub fn tile_around(epsg: Epsg, cx: f64, cy: f64, size: usize, res: Resolution) -> Result<Self> {
        if size == 0 {
            return Err(Error::invalid("tile size", "must be > 0"));
        }
        if !cx.is_finite() || !cy.is_finite() {
            return Err(Error::invalid(
                "centroid",
                format!("({cx}, {cy}) is not finite"),
            ));
        }
        let r = res.metres();
        let half = size as f64 * r / 2.0;
        let left = ((cx - half) / r).ceil() * r;
        let top = ((cy + half) / r).floor() * r;
        Ok(GridSpec {
            epsg,
            transform: GeoTransform::north_up(left, top, r),
            width: size,
            height: size,
        })
    }

    /// `(min_x, min_y, max_x, max_y)` of the grid in its CRS.
    pub fn bounds(&self) -> (f64, f64, f64, f64) {
        let t = &self.transform;
        let x1 = t.x0 + self.width as f64 * t.dx;
        let y1 = t.y0 + self.height as f64 * t.dy;
        (t.x0.min(x1), t.y0.min(y1), t.x0.max(x1), t.y0.max(y1))
    }

    /// The grid's outline in WGS 84 `(lon, lat)`: its four corners from the
    /// lower left, counter-clockwise, and the first again (a closed ring).
    ///
    /// # Errors
    /// [`Error::Crs`] when the grid's CRS is unsupported.
    pub fn wgs84_ring(&self) -> Result<[(f64, f64); 5]> {
        let (minx, miny, maxx, maxy) = self.bounds();
        let to_ll = Transformer::new(self.epsg, Epsg::WGS84)?;
        let mut ring = [(0.0, 0.0); 5];
        for (out, (x, y)) in ring.iter_mut().zip([
            (minx, miny),
            (maxx, miny),
            (maxx, maxy),
            (minx, maxy),
            (minx, miny),
        ]) {
            *out = to_ll.transform(x, y)?;
        }
        Ok(ring)
    }

    /// The WGS 84 bounding box `[west, south, east, north]` of the grid's
    /// corners (what a STAC search for the grid asks for).
    ///
    /// # Errors
    /// [`Error::Crs`] when the grid's CRS is unsupported.
    ///
    /// # Examples
    /// ```
    /// use tilestack::geo::GridSpec;
    /// use tilestack::{Epsg, Resolution};
    /// let g = GridSpec::tile_around(Epsg::new(32610)?, 558_980.0, 4_184_950.0, 256, Resolution::new(10.0)?)?;
    /// let [w, s, e, n] = g.wgs84_bbox()?;
    /// assert!(w < -122.32 && e > -122.34 && s < 37.81 && n > 37.81);
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    pub fn wgs84_bbox(&self) -> Result<[f64; 4]> {
        let ring = self.wgs84_ring()?;
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for &(lon, lat) in &ring[..4] {
            bbox = [
                bbox[0].min(lon),
                bbox[1].min(lat),
                bbox[2].max(lon),
                bbox[3].max(lat),
            ];
        }
        Ok(bbox)
    }
}

/// A rectangle of an image's pixels: the column and row of its top-left
/// pixel, its width and height. The one type for window math: clipping to
/// an image and the window's own pixel → CRS transform.
///
/// # Examples
/// ```
/// use tilestack::geo::{GeoTransform, PixelWindow};
/// let w = PixelWindow::from_bounds(-5, 10, 30, 20, 25, 100).unwrap(); // clipped to 25 × 100 px
/// assert_eq!(w, PixelWindow::new(0, 10, 25, 10));
/// let t = w.transform(&GeoTransform::north_up(500_000.0, 4_200_000.0, 10.0));
/// assert_eq!((t.x0, t.y0), (500_000.0, 4_199_900.0));
/// assert_eq!(PixelWindow::new(20, 0, 10, 10).clip(25, 100), Some(PixelWindow::new(20, 0, 5, 10)));
/// assert_eq!(PixelWindow::new(30, 0, 10, 10).clip(25, 100), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PixelWindow {
    /// Column of the top-left pixel.
    pub col_off: usize,
    /// Row of the top-left pixel.
    pub row_off: usize,
    /// Width, pixels.
    pub width: usize,
    /// Height, pixels.
    pub height: usize,
}

impl PixelWindow {
    /// The window at `(col_off, row_off)` of `width × height` pixels.
    pub fn new(col_off: usize, row_off: usize, width: usize, height: usize) -> Self {
        PixelWindow {
            col_off,
            row_off,
            width,
            height,
        }
    }

    /// The pixels `[c0, c1) × [r0, r1)` (signed: e.g. a footprint reaching
    /// past the image) clipped to an image of `cols × rows`; `None` when
    /// nothing is left.
    pub fn from_bounds(
        c0: i64,
        r0: i64,
        c1: i64,
        r1: i64,
        cols: usize,
        rows: usize,
    ) -> Option<Self> {
        let (c0, r0) = (c0.max(0), r0.max(0));
        let (c1, r1) = (c1.min(cols as i64), r1.min(rows as i64));
        if c0 >= c1 || r0 >= r1 {
            return None;
        }
        Some(PixelWindow::new(
            c0 as usize,
            r0 as usize,
            (c1 - c0) as usize,
            (r1 - r0) as usize,
        ))
    }

    /// One past the last column.
    pub fn col_end(&self) -> usize {
        self.col_off.saturating_add(self.width)
    }

    /// One past the last row.
    pub fn row_end(&self) -> usize {
        self.row_off.saturating_add(self.height)
    }

    /// Pixels in the window.
    pub fn pixels(&self) -> u64 {
        (self.width as u64).saturating_mul(self.height as u64)
    }

    /// The part of the window inside an image of `cols × rows`; `None` when
    /// they do not overlap.
    pub fn clip(&self, cols: usize, rows: usize) -> Option<PixelWindow> {
        let (c0, c1) = (self.col_off.min(cols), self.col_end().min(cols));
        let (r0, r1) = (self.row_off.min(rows), self.row_end().min(rows));
        (c0 < c1 && r0 < r1).then(|| PixelWindow::new(c0, r0, c1 - c0, r1 - r0))
    }

    /// The pixel → CRS transform of the window's own pixels, given the
    /// image's `image` transform.
    pub fn transform(&self, image: &GeoTransform) -> GeoTransform {
        GeoTransform {
            x0: image.x0 + self.col_off as f64 * image.dx,
            y0: image.y0 + self.row_off as f64 * image.dy,
            ..*image
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stac_transform_round_trip() {
        let t = GeoTransform::north_up(500_000.0, 4_200_000.0, 20.0);
        assert_eq!(GeoTransform::from_stac(&t.to_stac()).unwrap(), t);
        let says = |t: &[f64], m: &str| {
            let e = GeoTransform::from_stac(t).unwrap_err().to_string();
            assert!(e.contains(m), "{t:?}: {e}");
        };
        says(
            &[10.0, 0.1, 0.0, 0.0, -10.0, 0.0],
            "invalid proj:transform: rotated grids are not supported",
        );
        says(&[10.0, 0.0, 0.0], "has 3 numbers, expected 6 or 9");
        says(
            &[10.0, 0.0, 0.0, 0.0, 10.0, 0.0],
            "is not a north-up transform",
        );
        // the 9-number form (with the affine's last row) is read
        let nine = [20.0, 0.0, 500_000.0, 0.0, -20.0, 4_200_000.0, 0.0, 0.0, 1.0];
        assert_eq!(GeoTransform::from_stac(&nine).unwrap(), t);
    }

    #[test]
    fn tile_on_grid_lines_is_exact() {
        let e = Epsg::new(32610).unwrap();
        let r = Resolution::new(10.0).unwrap();
        // centroid exactly on a grid line: left edge lands on it, still 256 px
        let g = GridSpec::tile_around(e, 1280.0, 1280.0, 256, r).unwrap();
        assert_eq!(g.transform.x0, 0.0);
        assert_eq!(g.transform.y0, 2560.0);
        assert_eq!(g.bounds(), (0.0, 0.0, 2560.0, 2560.0));
        let bad = GridSpec::tile_around(e, f64::NAN, 0.0, 256, r).unwrap_err();
        assert_eq!(bad.to_string(), "invalid centroid: (NaN, 0) is not finite");
        let none = GridSpec::tile_around(e, 0.0, 0.0, 0, r).unwrap_err();
        assert_eq!(none.to_string(), "invalid tile size: must be > 0");
    }
}
