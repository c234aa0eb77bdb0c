//! The demo world as a C-band radar sees it: Sentinel-1 RTC-like gamma0
//! (linear power) for VV and VH, and the static layers (DEM, land cover)
//! read off the same continuous world model as the optical scenes.
//!
//! Radar sees surfaces, not the atmosphere: clouds, haze, shadows and sun
//! glint do not exist here. Water is dark (specular), vegetation medium
//! (volume scattering, strongest in VH), buildings, quays and container
//! stacks bright (double bounce) and ships are strong point targets whose
//! impulse response leaks into a faint cross along the image rows and
//! columns. All of it is multiplied by fully developed speckle.

use crate::demo::render::{Class, Sample, SceneState, WorldModel, coast_field, hash01, veg_field};

/// Equivalent number of looks of the speckle (Planetary Computer's
/// `sentinel-1-rtc` items say `sar:looks_equivalent_number` 4.4).
pub(crate) const LOOKS: u32 = 4;

/// Nodata of the VV and VH COGs, as Planetary Computer's RTC items declare it.
pub(crate) const S1_NODATA: f64 = -32768.0;

/// Peak gamma0 of a ship's strongest scatterer (its superstructure) in VV.
const PEAK_VV: f64 = 40.0;
/// First sidelobe of the impulse response, relative to the peak (−13 dB:
/// an unweighted sinc²); the k-th falls off as 1/k².
const SIDELOBE: f64 = 0.05;
/// Sidelobes drawn on each side of a peak, pixels.
const SIDELOBE_PX: i64 = 8;

/// Mean VV and VH gamma0 (linear power) of a sample before speckle.
/// `(i, j)` index the 10 m cells; `day_seed` varies the wind over water.
fn mean_backscatter(s: &Sample, x: f64, y: f64, day_seed: u64) -> (f64, f64) {
    let (i, j) = s.cell();
    // Field-scale texture on land: 40 m patches, the same every day.
    let patch = 0.6 + 0.8 * hash01(i.div_euclid(4), j.div_euclid(4), 0x5A_7E47);
    match s.class() {
        Class::Water => {
            // Wind roughens the sea in slow patterns that change daily.
            let ph = (day_seed % 1000) as f64 / 159.0;
            let wind = 1.0 + 0.45 * (x / 1300.0 + ph).sin() * (y / 900.0 - ph).cos();
            (0.011 * wind, 0.0018 * wind)
        }
        Class::Veg => (0.10 * patch, 0.028 * patch),
        Class::Urban => (0.16 * patch, 0.025 * patch),
        Class::Roof => (0.6 * s.tone(), 0.05 * s.tone()),
        Class::Quay => (0.28, 0.03),
        Class::Container => (0.9 * s.tone(), 0.08 * s.tone()),
        // Steel hulls: bright whatever their paint.
        Class::Ship | Class::DarkShip => (2.2 * s.tone(), 0.45 * s.tone()),
    }
}

/// Gamma-distributed speckle of mean 1 and [`LOOKS`] looks at a cell: the
/// mean of `LOOKS` unit exponentials, from hashes of the cell (no shared
/// random stream: each pixel's value is its own).
fn speckle(i: i64, j: i64, seed: u64) -> f64 {
    let mut sum = 0.0;
    for k in 0..LOOKS as u64 {
        let u = 1.0 - hash01(i, j, seed.wrapping_add(k.wrapping_mul(0x9E37)));
        sum -= u.ln();
    }
    sum / f64::from(LOOKS)
}

/// Keeps 10 mantissa bits (0.1 % relative precision, far below speckle):
/// the rest are noise that would only make the COGs incompressible.
fn quantize(v: f64) -> f32 {
    f32::from_bits((v as f32).to_bits() & !0x1FFF)
}

/// VV and VH gamma0 of one pass on a north-up grid in the world CRS:
/// `samples` are the grid's pixel samples (rows of `n`), `(ulx, uly)` its
/// corner, 10 m pixels. Returns `(vv, vh)`, row-major.
pub(crate) fn render_pass(
    samples: &[Sample],
    st: &SceneState,
    n: usize,
    ulx: f64,
    uly: f64,
    res: f64,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut vv = vec![0f64; samples.len()];
    let mut vh = vec![0f64; samples.len()];
    for (k, s) in samples.iter().enumerate() {
        let (col, row) = (k % n, k / n);
        let x = ulx + (col as f64 + 0.5) * res;
        let y = uly - (row as f64 + 0.5) * res;
        let (mv, mh) = mean_backscatter(s, x, y, seed);
        let (i, j) = s.cell();
        vv[k] = mv * speckle(i, j, seed.wrapping_add(1));
        vh[k] = mh * speckle(i, j, seed.wrapping_add(2));
    }
    // Point targets: deterministic (coherent), so added after the speckle.
    for ship in st.ships() {
        let (cx, cy) = ship.centre();
        let c0 = ((cx - ulx) / res).floor() as i64;
        let r0 = ((uly - cy) / res).floor() as i64;
        let peak = PEAK_VV * (0.7 + 0.6 * hash01(c0, r0, seed.wrapping_add(3)));
        let mut add = |c: i64, r: i64, p: f64| {
            if (0..n as i64).contains(&c) && (0..n as i64).contains(&r) {
                let k = r as usize * n + c as usize;
                vv[k] += p;
                vh[k] += 0.2 * p;
            }
        };
        add(c0, r0, peak);
        for d in 1..=SIDELOBE_PX {
            let p = peak * SIDELOBE / (d * d) as f64;
            add(c0 + d, r0, p);
            add(c0 - d, r0, p);
            add(c0, r0 + d, p);
            add(c0, r0 - d, p);
        }
    }
    (
        vv.into_iter().map(quantize).collect(),
        vh.into_iter().map(quantize).collect(),
    )
}

/// ESA WorldCover codes the land-cover layer uses.
pub(crate) mod worldcover {
    /// Tree cover.
    pub(crate) const TREES: u8 = 10;
    /// Grassland.
    pub(crate) const GRASS: u8 = 30;
    /// Built-up: towns and the quays (see [`super::land_cover`]).
    pub(crate) const BUILT_UP: u8 = 50;
    /// Permanent water bodies.
    pub(crate) const WATER: u8 = 80;
}

/// Land-cover class of a static sample (no ships): ESA WorldCover codes.
///
/// Quays and container yards are **50 (built-up)**: WorldCover has no
/// port class, and its built-up class covers "buildings, roads and other
/// man-made structures", which is what a paved terminal is and how the real
/// map labels the Port of Oakland's terminals. A model trained on this
/// layer then reads real WorldCover tiles the same way; the quay polygons
/// themselves are in `terminals.geojson`. Berths (water inside a terminal)
/// are 80, vegetation is trees (10) where the vegetation field is strong,
/// grassland (30) elsewhere.
pub(crate) fn land_cover(s: &Sample, x: f64, y: f64) -> u8 {
    match s.class() {
        Class::Water | Class::Ship | Class::DarkShip => worldcover::WATER,
        Class::Veg if veg_field(x, y) > 0.7 => worldcover::TREES,
        Class::Veg => worldcover::GRASS,
        Class::Urban | Class::Roof | Class::Quay | Class::Container => worldcover::BUILT_UP,
    }
}

/// Terrain height (metres above sea level) of a static sample: water 0,
/// quays and yards a flat 4 m apron, land 3 m at the shore rising about
/// 12 m per kilometre inland, with gentle hills.
pub(crate) fn elevation(model: &WorldModel, s: &Sample, x: f64, y: f64) -> f32 {
    let h = match s.class() {
        Class::Water | Class::Ship | Class::DarkShip => 0.0,
        Class::Quay | Class::Container => 4.0,
        Class::Veg | Class::Urban | Class::Roof => {
            let inland = coast_field(model, x, y).max(0.0);
            3.0 + 0.012 * inland + 1.5 * (1.5 + veg_field(x, y)).max(0.0)
        }
    };
    ((h * 100.0_f64).round() / 100.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speckle_has_mean_one_and_the_variance_of_its_looks() {
        let n = 20_000;
        let v: Vec<f64> = (0..n).map(|k| speckle(k, 3 * k, 11)).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.02, "{mean}");
        assert!((var - 1.0 / f64::from(LOOKS)).abs() < 0.02, "{var}");
        assert!(v.iter().all(|&x| x > 0.0));
    }

    #[test]
    fn quantize_keeps_three_significant_digits() {
        for v in [0.0123, 1.7, 40.3] {
            let q = f64::from(quantize(v));
            assert!((q - v).abs() / v < 1e-3, "{v} -> {q}");
        }
    }
}
