//! Average and mode warps against GDAL's (`gdalwarp -r average` / `-r mode`
//! through rasterio, `tests/py/footprint_reference.py`): a 10 m source onto
//! a 30 m grid in its own UTM zone, aligned (each target pixel exactly 3 × 3
//! source pixels) and shifted off the source's pixel edges and over its
//! edges, and a 10 m source in zone 11 onto a 30 m grid in zone 10.

use ndarray::Array2;
use tilestack::geo::{GeoTransform, GridSpec, Resampling, warp};
use tilestack::{Epsg, Resolution};

use crate::util::python_script;

/// A value in `[0, 1)` drawn from `(r, c, salt)`, the same on every run.
fn noise(r: usize, c: usize, salt: u64) -> f64 {
    let mut z = (r as u64) << 32 ^ (c as u64) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether `(r, c)` is in the 9 × 9 NaN block at the centre of a `rows ×
/// cols` source (whole 30 m footprints without data).
fn in_block(r: usize, c: usize, rows: usize, cols: usize) -> bool {
    (rows / 2..rows / 2 + 9).contains(&r) && (cols / 2..cols / 2 + 9).contains(&c)
}

/// A reflectance-like band: a smooth field plus pixel noise, with scattered
/// NaN pixels and a NaN block ([`in_block`]).
fn continuous(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        if noise(r, c, 1) < 0.04 || in_block(r, c, rows, cols) {
            return f32::NAN;
        }
        let smooth = 400.0 * (r as f64 * 0.07).sin() * (c as f64 * 0.05).cos();
        (1000.0 + smooth + 200.0 * noise(r, c, 2)) as f32
    })
}

/// A land-cover-like band: five classes in patches of 2 × 3 pixels, some
/// pixels another class, scattered NaN pixels and the NaN block.
fn classes(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        if noise(r, c, 3) < 0.04 || in_block(r, c, rows, cols) {
            f32::NAN
        } else if noise(r, c, 4) < 0.2 {
            (noise(r, c, 5) * 5.0).floor() as f32
        } else {
            (noise(r / 2, c / 3, 6) * 5.0).floor() as f32
        }
    })
}

struct Case {
    name: &'static str,
    /// The largest relative difference from GDAL's average allowed.
    average_rel: f64,
    src_epsg: Epsg,
    src_transform: GeoTransform,
    rows: usize,
    cols: usize,
    dst: GridSpec,
}

/// GDAL's warp of `src` for `case` with `method` ("average" or "mode"):
/// the values (NaN for none), GDAL's version and how many pixels GDAL's own
/// approximate transformer changes.
fn gdal(case: &Case, src: &Array2<f32>, method: &str) -> (Array2<f32>, String, u64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.f32");
    let bytes: Vec<u8> = src.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    let gt = |t: &GeoTransform| t.to_gdal().map(|v| v.to_string()).join(",");
    let stdout = python_script(
        "footprint_reference.py",
        [
            path.display().to_string(),
            case.rows.to_string(),
            case.cols.to_string(),
            case.src_epsg.code().to_string(),
            gt(&case.src_transform),
            case.dst.epsg.code().to_string(),
            gt(&case.dst.transform),
            case.dst.width.to_string(),
            case.dst.height.to_string(),
            method.to_string(),
        ],
    );
    #[derive(serde::Deserialize)]
    struct Reference {
        gdal: String,
        values: Vec<Option<f64>>,
        approx_moved: u64,
        autoscale_max_rel: f64,
    }
    let r: Reference = serde_json::from_slice(&stdout).unwrap();
    let values = r
        .values
        .iter()
        .map(|v| v.map_or(f32::NAN, |v| v as f32))
        .collect();
    let shape = (case.dst.height, case.dst.width);
    (
        Array2::from_shape_vec(shape, values).unwrap(),
        r.gdal,
        r.approx_moved,
        r.autoscale_max_rel,
    )
}

fn cases() -> Vec<Case> {
    let (e10, e11) = (Epsg::new(32610).unwrap(), Epsg::new(32611).unwrap());
    let r30 = Resolution::new(30.0).unwrap();
    let dst = GridSpec::tile_around(e10, 558_976.0, 4_184_946.0, 48, r30).unwrap();
    // 10 m, 300 m beyond the target on every side, on the target's pixel edges
    let (x0, y0) = (dst.transform.x0, dst.transform.y0);
    let aligned = GeoTransform::north_up(x0 - 300.0, y0 + 300.0, 10.0);
    let mut shifted = dst.clone();
    // 317 m west and 323 m north of the aligned target: pixel edges 7 and
    // 3 m off the source's, and its first row and column over the source's
    // edges (each footprint then takes partial pixels, and at the edges
    // GDAL's overhang rule)
    shifted.transform = GeoTransform::north_up(x0 - 317.0, y0 + 323.0, 30.0);
    vec![
        Case {
            name: "same CRS, 10 m onto 30 m, aligned",
            // measured: bit for bit
            average_rel: 0.0,
            src_epsg: e10,
            src_transform: aligned,
            rows: 204,
            cols: 204,
            dst: dst.clone(),
        },
        Case {
            name: "same CRS, 10 m onto 30 m, shifted over the source's edges",
            // measured: 2 of 2304 pixels 1 float32 ulp apart (1.1e-7). GDAL
            // maps into the source with the inverted geotransform, `x / dx
            // − x0 / dx`, tilestack as `(x − x0) / dx`: the weights differ in
            // their last bits, and where the mean is that near a float32
            // rounding boundary it rounds the other way (a Python model of
            // the kernel with GDAL's arithmetic gives GDAL's 2304 of 2304)
            average_rel: 2e-7,
            src_epsg: e10,
            src_transform: aligned,
            rows: 204,
            cols: 204,
            dst: shifted,
        },
        Case {
            // the source of the nearest warp tests (src/geo/warp.rs)
            name: "zone 11 at 10 m onto zone 10 at 30 m",
            // measured: 1605 of 2304 pixels differ, by at most 1.7e-6. GDAL
            // here transforms every corner exactly; tilestack transforms
            // every 16th and interpolates (as for nearest and bilinear), a
            // corner error of ~1e-6 px that moves partial weights. With
            // every corner transformed (a 2.5× slower average) the two are
            // equal bit for bit. GDAL's own default 0.125 px approximation
            // changes 2175 of the 2304.
            average_rel: 1e-5,
            src_epsg: e11,
            src_transform: GeoTransform::north_up(29_160.0, 4_199_630.0, 10.0),
            rows: 300,
            cols: 300,
            dst,
        },
    ]
}

/// Target pixels NaN on one side only, pixels that differ, and the largest
/// relative difference of the others (`|a − b| / |b|`).
fn compare(ours: &Array2<f32>, gdal: &Array2<f32>) -> (usize, usize, f64) {
    let (mut nan, mut differ, mut rel) = (0, 0, 0.0f64);
    for (&a, &b) in ours.iter().zip(gdal) {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => {}
            (false, false) => {
                if a != b {
                    differ += 1;
                    rel = rel.max(((a as f64 - b as f64) / b as f64).abs());
                }
            }
            _ => nan += 1,
        }
    }
    (nan, differ, rel)
}

/// Mode equal to GDAL's pixel for pixel, average within each case's
/// `average_rel` (bit for bit, 1 float32 ulp, 1e-5), NaN where GDAL's is, in
/// every case; the figures are printed
/// (`cargo test --test it warp:: -- --nocapture`).
#[test]
fn average_and_mode_warps_equal_gdals_within_a_crs_and_across_zones() {
    for case in cases() {
        for (method, resampling, src) in [
            (
                "average",
                Resampling::Average,
                continuous(case.rows, case.cols),
            ),
            ("mode", Resampling::Mode, classes(case.rows, case.cols)),
        ] {
            let ours = warp(
                src.view(),
                &case.src_transform,
                case.src_epsg,
                &case.dst,
                resampling,
            )
            .unwrap();
            let (want, version, approx_moved, _) = gdal(&case, &src, method);
            let (nan, differ, rel) = compare(&ours, &want);
            let n = want.len();
            let nans = want.iter().filter(|v| v.is_nan()).count();
            println!(
                "{}, {method} (GDAL {version}): {n} pixels ({nans} NaN), {differ} differ \
                 (max relative {rel:.2e}), {nan} NaN on one side only; GDAL's 0.125 px \
                 approximation moves {approx_moved}",
                case.name
            );
            assert!(nans > 0 && nans < n / 4, "{}: {nans} NaN", case.name);
            assert_eq!(nan, 0, "{} {method}: NaN where GDAL has none", case.name);
            match resampling {
                Resampling::Mode => assert_eq!(differ, 0, "{} mode", case.name),
                _ => assert!(rel <= case.average_rel, "{} average: {rel:e}", case.name),
            }
        }
    }
}

/// Bilinear (continuous inputs: backscatter, a DEM) against GDAL's 2 × 2
/// bilinear kernel: a 20 m source onto a 10 m grid whose centres fall
/// between the source's, and zone 11 at 10 m onto zone 10 at 10 m. NaN
/// neighbours are left out and the weights renormalized, and a target whose
/// centre falls in a NaN source pixel is NaN, on both sides. GDAL by default
/// widens its kernel where it estimates the source window larger than the
/// target's (across zones the grids are rotated ~3°, and it does so there:
/// up to ~5 % apart on this noisy field); the reference is asked for the 2 × 2
/// kernel (`XSCALE=YSCALE=1`), and the default's distance from it is
/// printed. Onto coarser grids use average. The figures are printed.
#[test]
fn bilinear_warps_equal_gdals_onto_finer_and_equal_grids() {
    let (e10, e11) = (Epsg::new(32610).unwrap(), Epsg::new(32611).unwrap());
    let r10 = Resolution::new(10.0).unwrap();
    let dst = GridSpec::tile_around(e10, 558_976.0, 4_184_946.0, 64, r10).unwrap();
    let (x0, y0) = (dst.transform.x0, dst.transform.y0);
    let cases = [
        (
            Case {
                name: "same CRS, 20 m onto 10 m",
                average_rel: 0.0,
                src_epsg: e10,
                // 3 m and 7 m off the target's pixel edges
                src_transform: GeoTransform::north_up(x0 - 203.0, y0 + 207.0, 20.0),
                rows: 60,
                cols: 60,
                dst: dst.clone(),
            },
            // measured: 18 of 4096 differ, by 1 float32 ulp (1.2e-7)
            1e-6,
        ),
        (
            Case {
                name: "zone 11 at 10 m onto zone 10 at 10 m",
                average_rel: 0.0,
                src_epsg: e11,
                src_transform: GeoTransform::north_up(29_160.0, 4_199_630.0, 10.0),
                rows: 300,
                cols: 300,
                dst,
            },
            // measured: 1907 of 4096 differ, by at most 6.6e-7 (the corner
            // interpolation every 16 px, as for average)
            1e-5,
        ),
    ];
    for (case, tolerance) in cases {
        let src = continuous(case.rows, case.cols);
        let ours = warp(
            src.view(),
            &case.src_transform,
            case.src_epsg,
            &case.dst,
            Resampling::Bilinear,
        )
        .unwrap();
        let (want, version, approx_moved, autoscale) = gdal(&case, &src, "bilinear");
        let (nan, differ, rel) = compare(&ours, &want);
        let nans = want.iter().filter(|v| v.is_nan()).count();
        let only_ours = ours
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.is_nan() && !b.is_nan())
            .count();
        println!(
            "{}: NaN in ours only {only_ours}, in GDAL's only {}",
            case.name,
            nan - only_ours
        );
        println!(
            "{}, bilinear (GDAL {version}): {} pixels ({nans} NaN), {differ} differ (max \
             relative {rel:.2e}), {nan} NaN on one side only; GDAL's 0.125 px approximation \
             moves {approx_moved}; GDAL's default widened kernel is up to {autoscale:.2e} from \
             the 2 × 2 one",
            case.name,
            want.len()
        );
        assert!(
            nans > 0 && nans < want.len() / 4,
            "{}: {nans} NaN",
            case.name
        );
        assert_eq!(nan, 0, "{}: NaN on one side only", case.name);
        assert!(rel <= tolerance, "{}: {rel:e}", case.name);
    }
}
