//! The world as a continuous function of coordinates in the recipe's CRS:
//! coast, terminals, ships, clouds, swath edges. Pure and deterministic.

use rayon::prelude::*;

use crate::demo::recipe::{Recipe, SceneDef};
use crate::error::Result;
use crate::geo::crs::Transformer;
use crate::units::Epsg;

/// Bands written per scene: name, resolution (m), seed of its texture.
pub(crate) const BANDS: [(&str, f64, u64); 6] = [
    ("B02", 10.0, 2),
    ("B03", 10.0, 3),
    ("B04", 10.0, 4),
    ("B08", 10.0, 8),
    ("B11", 20.0, 11),
    ("SCL", 20.0, 99),
];

/// Surface reflectance × 10 000 per [`Class`] (water, vegetation, urban,
/// quay, ship, dark-hulled ship, container stack, white roof), for B02 B03
/// B04 B08 B11. Containers and roofs span the bright ships' range, dark
/// hulls sit between water and land: brightness alone cannot find ships.
const REFL: [[f64; 5]; 8] = [
    [620.0, 540.0, 330.0, 170.0, 90.0],
    [420.0, 700.0, 480.0, 3300.0, 1700.0],
    [1050.0, 1150.0, 1250.0, 2100.0, 2300.0],
    [1550.0, 1650.0, 1750.0, 1950.0, 2500.0],
    [2600.0, 2700.0, 2800.0, 3100.0, 2600.0],
    [760.0, 740.0, 720.0, 1050.0, 800.0],
    [2550.0, 2650.0, 2750.0, 2700.0, 2900.0],
    [2750.0, 2800.0, 2850.0, 3000.0, 3100.0],
];
/// Opaque cloud, haze (thin cloud, aerosol: bluish) and sun glint
/// (specular, strongest in the visible), B02 B03 B04 B08 B11.
const CLOUD_REFL: [f64; 5] = [7800.0, 7600.0, 7500.0, 7700.0, 4200.0];
const HAZE_REFL: [f64; 5] = [7400.0, 7000.0, 6600.0, 5600.0, 3600.0];
const GLINT_REFL: [f64; 5] = [2300.0, 2250.0, 2200.0, 1500.0, 500.0];
/// Container colours (B02, B03, B04 multipliers): white, red, blue, grey.
const TINTS: [[f64; 3]; 4] = [
    [1.05, 1.05, 1.05],
    [0.75, 0.85, 1.3],
    [1.3, 0.95, 0.75],
    [0.95, 1.0, 1.0],
];

/// Surface class of a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Class {
    Water = 0,
    Veg = 1,
    Urban = 2,
    Quay = 3,
    Ship = 4,
    DarkShip = 5,
    Container = 6,
    Roof = 7,
}

/// Everything the bands of one pixel are derived from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    class: Class,
    /// Object tone: brightness multiplier of a ship, container stack or roof.
    tone: f32,
    /// Container colour (index into `TINTS`).
    tint: u8,
    /// Cloud density after texture, 0..1.5.
    dens: f32,
    /// Haze (thin cloud) fraction, 0..0.5: mixes toward `HAZE_REFL`.
    haze: f32,
    /// Sun glint on water, 0..1.5 after texture.
    glint: f32,
    shadow: bool,
    valid: bool,
    i: i64,
    j: i64,
}

impl Sample {
    /// The surface class.
    pub(crate) fn class(&self) -> Class {
        self.class
    }
    /// Object tone: brightness multiplier of a ship, container stack or roof.
    pub(crate) fn tone(&self) -> f64 {
        f64::from(self.tone)
    }
    /// Integer grid indices of the pixel (world CRS, `res` cells).
    pub(crate) fn cell(&self) -> (i64, i64) {
        (self.i, self.j)
    }
}

/// A deterministic, version-independent random stream (splitmix64), so a
/// world stays byte-identical across `rand` upgrades.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn uniform(&mut self, a: f64, b: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        a + (b - a) * u
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Uniform [0, 1) from integer grid indices.
pub(crate) fn hash01(i: i64, j: i64, seed: u64) -> f64 {
    let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed.wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 31;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 29;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A rotated rectangle frame: centre and rotation of its `u` axis from north.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    cx: f64,
    cy: f64,
    sin: f64,
    cos: f64,
}

impl Frame {
    fn new(cx: f64, cy: f64, rotation_deg: f64) -> Self {
        let t = rotation_deg.to_radians();
        Frame {
            cx,
            cy,
            sin: t.sin(),
            cos: t.cos(),
        }
    }
    /// World → local `(u along, v across)`; `v < 0` is the water side.
    fn local(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.cx, y - self.cy);
        (dx * self.sin + dy * self.cos, dx * self.cos - dy * self.sin)
    }
    /// Local → world.
    pub(crate) fn world(&self, u: f64, v: f64) -> (f64, f64) {
        (
            self.cx + u * self.sin + v * self.cos,
            self.cy + u * self.cos - v * self.sin,
        )
    }
}

/// A terminal: frame plus half sizes.
#[derive(Debug, Clone)]
pub(crate) struct TerminalGeom {
    pub(crate) name: String,
    pub(crate) frame: Frame,
    pub(crate) hu: f64,
    pub(crate) hv: f64,
}

/// A ship: a rectangle in a frame's local coordinates.
#[derive(Debug, Clone)]
pub(crate) struct Ship {
    /// Stable id: `"{terminal}-{berth}-{visit}"` (terminal as `terminal_id`
    /// in terminals.geojson, berth and visit counted from 1) for a ship at a
    /// berth, `"under-way"` for the one in the channel.
    pub(crate) id: String,
    pub(crate) frame: Frame,
    pub(crate) uc: f64,
    pub(crate) vc: f64,
    pub(crate) hl: f64,
    pub(crate) hw: f64,
    /// Terminal name, or `None` for the ship under way.
    pub(crate) terminal: Option<String>,
    /// Arrival and departure day of month of a berth visit: moored on days
    /// `arrival..departure` (the departure may fall after the month's end);
    /// `None` for the ship under way.
    pub(crate) stay: Option<(u32, u32)>,
    /// A dark hull (about as bright as asphalt) rather than a bright deck.
    pub(crate) dark: bool,
    /// Brightness multiplier of the hull.
    pub(crate) tone: f64,
}

impl Ship {
    /// The centre in world coordinates.
    pub(crate) fn centre(&self) -> (f64, f64) {
        self.frame.world(self.uc, self.vc)
    }
    fn contains(&self, x: f64, y: f64) -> bool {
        let (u, v) = self.frame.local(x, y);
        (u - self.uc).abs() <= self.hl && (v - self.vc).abs() <= self.hw
    }
    /// The four corners in world coordinates.
    pub(crate) fn corners(&self) -> [(f64, f64); 4] {
        let (u, v, l, w) = (self.uc, self.vc, self.hl, self.hw);
        [
            self.frame.world(u - l, v - w),
            self.frame.world(u + l, v - w),
            self.frame.world(u + l, v + w),
            self.frame.world(u - l, v + w),
        ]
    }
}

/// Berth slots are cut along a quay every `SLOT_M` metres or more.
const SLOT_M: f64 = 300.0;
/// Water kept at each end of a berth slot: ships of neighbouring slots are
/// at least twice this apart, so each ship is its own 8-connected
/// component of a 10 m label raster.
const SLOT_MARGIN_M: f64 = 20.0;
/// The schedule covers days `1..=SCHEDULE_DAYS` of the month.
const SCHEDULE_DAYS: u32 = 31;

/// Draws a hull: dark with probability 0.4, and a tone.
fn paint(rng: &mut Rng) -> (bool, f64) {
    let dark = rng.uniform(0.0, 1.0) < 0.4;
    let tone = if dark {
        rng.uniform(0.85, 1.2)
    } else {
        rng.uniform(0.85, 1.15)
    };
    (dark, tone)
}

/// The month's berth visits of the terminals, drawn once from `seed`.
///
/// Each terminal's water side is cut along the quay into
/// `max(1, floor(2·hu / 300 m))` slots. Each slot holds visits in turn: an
/// empty gap of 1–5 days (the first 0 for half the slots, so about half the
/// berths are busy on day 1, else 1–4), then a ship moored 2–7 days at one
/// position, and again until the month ends. A ship is 150–330 m long but keeps 20 m of water to each end
/// of its slot, 30–50 m wide, and lies in the berth band `v` in
/// `[20 − hv, −70]` of the terminal frame (a terminal too small for that
/// has no berths).
fn berth_schedule(seed: u64, terminals: &[TerminalGeom]) -> Vec<Ship> {
    let mut ships = Vec::new();
    for (k, t) in terminals.iter().enumerate() {
        let quay = 2.0 * t.hu;
        let slots = ((quay / SLOT_M).floor() as usize).max(1);
        let slot_len = quay / slots as f64;
        let max_len = (slot_len - 2.0 * SLOT_MARGIN_M).min(330.0);
        // The berth band is `v` in [-hv + 20, -70]: a ship fits across it
        // when it is at most `hv - 90` m wide.
        let max_width = (t.hv - 90.0).min(50.0);
        if max_len < 50.0 || max_width < 30.0 {
            continue; // no room for a ship on this (small) terminal
        }
        for slot in 0..slots {
            let lo = -t.hu + slot as f64 * slot_len + SLOT_MARGIN_M;
            let hi = lo + slot_len - 2.0 * SLOT_MARGIN_M;
            // A stream per terminal and slot: the schedule of one berth does
            // not depend on how many others there are.
            let mut rng = Rng::new(
                seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
                    .wrapping_add(3000 + 64 * k as u64 + slot as u64),
            );
            // The first gap: none for half the berths (busy on day 1),
            // else 1–4 days.
            let mut arrival = if rng.uniform(0.0, 1.0) < 0.5 {
                1
            } else {
                2 + rng.below(4) as u32
            };
            let mut visit = 1;
            while arrival <= SCHEDULE_DAYS {
                let departure = arrival + 2 + rng.below(6) as u32;
                let length = rng.uniform(150.0f64.min(max_len), max_len);
                let width = rng.uniform(30.0, max_width);
                let uc = rng.uniform(lo + length / 2.0, hi - length / 2.0);
                let vc = rng.uniform(-t.hv + 20.0 + width / 2.0, -70.0 - width / 2.0);
                let (dark, tone) = paint(&mut rng);
                ships.push(Ship {
                    id: format!("{}-{}-{visit}", k + 1, slot + 1),
                    frame: t.frame,
                    uc,
                    vc,
                    hl: length / 2.0,
                    hw: width / 2.0,
                    terminal: Some(t.name.clone()),
                    stay: Some((arrival, departure)),
                    dark,
                    tone,
                });
                visit += 1;
                arrival = departure + 1 + rng.below(5) as u32;
            }
        }
    }
    ships
}

/// The static part of the world, in the recipe CRS.
#[derive(Debug, Clone)]
pub(crate) struct WorldModel {
    pub(crate) epsg: Epsg,
    pub(crate) xc: f64,
    pub(crate) yc: f64,
    pub(crate) seed: u64,
    pub(crate) terminals: Vec<TerminalGeom>,
    /// Every berth visit of the month ([`berth_schedule`]).
    berths: Vec<Ship>,
}

impl WorldModel {
    pub(crate) fn new(recipe: &Recipe) -> Result<Self> {
        let t = Transformer::new(Epsg::WGS84, recipe.epsg)?;
        let (xc, yc) = t.transform(recipe.centroid[0], recipe.centroid[1])?;
        let terminals: Vec<TerminalGeom> = recipe
            .terminals
            .iter()
            .map(|t| TerminalGeom {
                name: t.name.clone(),
                frame: Frame::new(xc + t.offset[0], yc + t.offset[1], t.rotation_deg),
                hu: t.half_length,
                hv: t.half_width,
            })
            .collect();
        Ok(WorldModel {
            epsg: recipe.epsg,
            xc,
            yc,
            seed: recipe.seed,
            berths: berth_schedule(recipe.seed, &terminals),
            terminals,
        })
    }

    /// Ships of a day: those moored at the berths that day (the month's
    /// schedule, [`berth_schedule`]), then the one under way in the channel,
    /// 160 m further north each day. About 40 % have dark hulls; the rest
    /// bright decks of varied tone.
    pub(crate) fn ships_for_day(&self, day: u32) -> Vec<Ship> {
        let mut ships: Vec<Ship> = self
            .berths
            .iter()
            .filter(|s| s.stay.is_some_and(|(a, d)| (a..d).contains(&day)))
            .cloned()
            .collect();
        let rot = self
            .terminals
            .first()
            .map(|t| t.frame)
            .unwrap_or(Frame::new(0.0, 0.0, 20.0));
        let under_way = Frame {
            cx: self.xc - 1500.0,
            cy: self.yc - 2500.0 + 160.0 * day as f64,
            ..rot
        };
        let (dark, tone) = paint(&mut Rng::new(self.seed.wrapping_add(5000)));
        ships.push(Ship {
            id: "under-way".into(),
            frame: under_way,
            uc: 0.0,
            vc: 0.0,
            hl: 110.0,
            hw: 18.0,
            terminal: None,
            stay: None,
            dark,
            tone,
        });
        ships
    }
}

/// Per-scene dynamic state: ships, clouds, swath edge, gain.
#[derive(Debug, Clone)]
pub(crate) struct SceneState {
    ships: Vec<Ship>,
    /// `(x, y, sigma, amplitude)` in world coordinates.
    clouds: Vec<(f64, f64, f64, f64)>,
    /// Haze blobs, `(x, y, sigma, amplitude)` in world coordinates.
    haze: Vec<(f64, f64, f64, f64)>,
    /// Sun-glint blobs, `(x, y, sigma, amplitude)` in world coordinates.
    glint: Vec<(f64, f64, f64, f64)>,
    /// Swath edge `(x, y, nx, ny)` in world coordinates: valid where `(p − (x, y))·n > 0`.
    pub(crate) edge: Option<(f64, f64, f64, f64)>,
    seed: u64,
    /// Seed of the day's sea state: the scenes of one overpass see the same
    /// glint facets.
    day_seed: u64,
    pub(crate) gain: f64,
}

impl SceneState {
    pub(crate) fn new(
        model: &WorldModel,
        scene: &SceneDef,
        center_world: (f64, f64),
        extent: f64,
    ) -> Self {
        let mut rng = Rng::new(scene.seed);
        let mut clouds = Vec::new();
        for _ in 0..scene.spec.n_clouds {
            clouds.push((
                center_world.0 + rng.uniform(-0.45, 0.45) * extent,
                center_world.1 + rng.uniform(-0.45, 0.45) * extent,
                rng.uniform(300.0, 1500.0),
                rng.uniform(0.6, 1.6),
            ));
        }
        let at_tile = |v: &[[f64; 4]]| -> Vec<(f64, f64, f64, f64)> {
            v.iter()
                .map(|c| (model.xc + c[0], model.yc + c[1], c[2], c[3]))
                .collect()
        };
        clouds.extend(at_tile(&scene.spec.clouds_at_tile));
        let edge = scene
            .spec
            .edge
            .map(|e| (model.xc + e[0], model.yc + e[1], e[2], e[3]));
        SceneState {
            ships: model.ships_for_day(scene.day),
            clouds,
            haze: at_tile(&scene.spec.haze),
            glint: at_tile(&scene.spec.glint),
            edge,
            seed: scene.seed,
            day_seed: model.seed.wrapping_mul(31).wrapping_add(scene.day as u64),
            gain: scene.spec.gain * (1.0 + 0.02 * (scene.day as f64).sin()),
        }
    }
}

impl SceneState {
    /// The world with nothing that changes: no ships, clouds, haze, glint
    /// or swath edge (static layers: DEM, land cover).
    pub(crate) fn still() -> Self {
        SceneState {
            ships: Vec::new(),
            clouds: Vec::new(),
            haze: Vec::new(),
            glint: Vec::new(),
            edge: None,
            seed: 0,
            day_seed: 0,
            gain: 1.0,
        }
    }

    /// What a radar sees on `day`: that day's ships (the same
    /// [`WorldModel::ships_for_day`] as the optical scenes and the ship
    /// truth), and no cloud, haze or glint.
    pub(crate) fn radar(model: &WorldModel, day: u32) -> Self {
        SceneState {
            ships: model.ships_for_day(day),
            ..SceneState::still()
        }
    }

    /// The ships of this state.
    pub(crate) fn ships(&self) -> &[Ship] {
        &self.ships
    }
}

/// Signed coast field at `(x, y)`: > 0 on the mainland side, roughly metres
/// inland from the shore (before channel, island and terminals).
pub(crate) fn coast_field(model: &WorldModel, x: f64, y: f64) -> f64 {
    let (dx, dy) = (x - model.xc, y - model.yc);
    dx + 250.0 + 300.0 * (dy / 1700.0).sin() + 120.0 * (dy / 410.0 + 1.3).sin()
}

/// The smooth field whose high values are vegetation on land (> 0.35).
pub(crate) fn veg_field(x: f64, y: f64) -> f64 {
    (x / 530.0).sin() * (y / 770.0).cos() + 0.5 * ((x + y) / 1900.0).sin()
}

/// Samples the world at a pixel centre `(x, y)` (world CRS) of a `res` grid.
pub(crate) fn sample(model: &WorldModel, st: &SceneState, x: f64, y: f64, res: f64) -> Sample {
    let i = (x / res).floor() as i64;
    let j = (y / res).floor() as i64;
    let (dx, dy) = (x - model.xc, y - model.yc);
    let coast = coast_field(model, x, y);
    let channel = (dy + 1800.0 - 100.0 * (x / 900.0).sin()).abs() < 180.0 && dx > -300.0;
    let island = (dx + 5200.0).powi(2) / 1.2e6 + (dy - 3500.0).powi(2) / 0.5e6 < 1.0;
    let mut land = (coast > 0.0 && !channel) || island;
    let smooth = veg_field(x, y);
    let veg = land && smooth > 0.35;
    let (mut quay, mut berth) = (false, false);
    for t in &model.terminals {
        let (u, v) = t.frame.local(x, y);
        if u.abs() <= t.hu && v.abs() <= t.hv {
            if v >= -50.0 {
                quay = true;
            } else {
                berth = true;
            }
        }
    }
    land = (land || quay) && !berth;
    let ship = if !land || berth {
        st.ships.iter().find(|s| s.contains(x, y))
    } else {
        None
    };
    let (mut tone, mut tint) = (1.0f64, 0u8);
    let class = if let Some(s) = ship {
        tone = s.tone;
        if s.dark { Class::DarkShip } else { Class::Ship }
    } else if quay {
        match container(model, x, y) {
            Some((t, c)) => {
                (tone, tint) = (t, c);
                Class::Container
            }
            None => Class::Quay,
        }
    } else if land && veg {
        Class::Veg
    } else if land {
        match roof(model.seed, x, y) {
            Some(t) => {
                tone = t;
                Class::Roof
            }
            None => Class::Urban,
        }
    } else {
        Class::Water
    };
    let (mut dens, mut shad) = (0.0f64, 0.0f64);
    for &(bx, by, sig, amp) in &st.clouds {
        let s2 = 2.0 * sig * sig;
        let d = (x - bx).powi(2) + (y - by).powi(2);
        if d < 25.0 * s2 {
            dens += amp * (-d / s2).exp();
        }
        let d = (x - bx - 450.0).powi(2) + (y - by + 350.0).powi(2);
        if d < 25.0 * s2 {
            shad += amp * (-d / s2).exp();
        }
    }
    if dens > 0.0 || shad > 0.0 {
        let tex = 0.75 + 0.5 * hash01(i.div_euclid(7), j.div_euclid(7), st.seed.wrapping_add(17));
        dens = (dens * tex).clamp(0.0, 1.5);
        shad = (shad * tex).clamp(0.0, 1.5);
    }
    let haze = blobs(&st.haze, x, y).clamp(0.0, 0.5);
    let mut glint = 0.0;
    if class == Class::Water {
        let g = blobs(&st.glint, x, y);
        if g > 0.0 {
            // Wave facets: speckle at 20 m, strong and uneven.
            let facet = hash01(
                i.div_euclid(2),
                j.div_euclid(2),
                st.day_seed.wrapping_add(29),
            );
            glint = (g * (0.3 + 1.1 * facet)).clamp(0.0, 1.5);
        }
    }
    let valid = match st.edge {
        Some((ex, ey, nx, ny)) => (x - ex) * nx + (y - ey) * ny > 0.0,
        None => true,
    };
    Sample {
        class,
        tone: tone as f32,
        tint,
        dens: dens as f32,
        haze: haze as f32,
        glint: glint as f32,
        shadow: shad > 0.5 && dens <= 0.3,
        valid,
        i,
        j,
    }
}

/// Sum of Gaussian blobs `(x, y, sigma, amplitude)` at `(x, y)`.
fn blobs(b: &[(f64, f64, f64, f64)], x: f64, y: f64) -> f64 {
    let mut v = 0.0;
    for &(bx, by, sig, amp) in b {
        let s2 = 2.0 * sig * sig;
        let d = (x - bx).powi(2) + (y - by).powi(2);
        if d < 25.0 * s2 {
            v += amp * (-d / s2).exp();
        }
    }
    v
}

/// A container stack at `(x, y)` on a quay: the yard is a grid of 45 × 20 m
/// stacks in 60 × 30 m cells from the quay edge inland, 70 % of cells
/// filled; returns the stack's tone and colour.
fn container(model: &WorldModel, x: f64, y: f64) -> Option<(f64, u8)> {
    for (k, t) in model.terminals.iter().enumerate() {
        let (u, v) = t.frame.local(x, y);
        if u.abs() > t.hu - 20.0 || !(-45.0..t.hv - 40.0).contains(&v) {
            continue;
        }
        let (cu, cv) = ((u + t.hu) / 60.0, (v + 45.0) / 30.0);
        let (iu, iv) = (cu.floor() as i64, cv.floor() as i64);
        if cu - (iu as f64) > 0.75 || cv - (iv as f64) > 0.67 {
            return None; // an aisle
        }
        let seed = model.seed.wrapping_add(700 + k as u64);
        if hash01(iu, iv, seed) > 0.7 {
            return None;
        }
        let tone = 0.6 + 0.65 * hash01(iu, iv, seed.wrapping_add(1));
        let tint = (hash01(iu, iv, seed.wrapping_add(2)) * 4.0) as u8;
        return Some((tone, tint.min(3)));
    }
    None
}

/// A white roof at `(x, y)` on urban land: 12 % of 50 m cells hold a 30 m
/// building; returns its tone.
fn roof(seed: u64, x: f64, y: f64) -> Option<f64> {
    let (cu, cv) = (x / 50.0, y / 50.0);
    let (iu, iv) = (cu.floor() as i64, cv.floor() as i64);
    if cu - (iu as f64) > 0.6 || cv - (iv as f64) > 0.6 {
        return None;
    }
    let seed = seed.wrapping_add(800);
    (hash01(iu, iv, seed) < 0.12).then(|| 0.8 + 0.45 * hash01(iu, iv, seed.wrapping_add(1)))
}

/// SCL code of a sample (0 no data, 3 shadow, 4 veg, 5 bare, 6 water, 8/9 cloud, 10 cirrus).
pub(crate) fn scl(s: &Sample) -> u8 {
    if !s.valid {
        return 0;
    }
    let d = s.dens;
    if d > 0.8 {
        9
    } else if d > 0.5 {
        8
    } else if d > 0.3 || s.haze > 0.25 {
        10
    } else if s.shadow {
        3
    } else {
        match s.class {
            Class::Water => 6,
            Class::Veg => 4,
            _ => 5,
        }
    }
}

/// DN of reflectance band `b` (index into B02 B03 B04 B08 B11) of a sample; 0 = nodata.
pub(crate) fn reflectance(s: &Sample, st: &SceneState, b: usize, band_seed: u64) -> u16 {
    if !s.valid {
        return 0;
    }
    let mut base = REFL[s.class as usize][b] * s.tone as f64;
    if s.class == Class::Container && b < 3 {
        base *= TINTS[s.tint as usize][b];
    }
    let stat = hash01(s.i, s.j, band_seed);
    let mut v = match s.class {
        Class::Ship | Class::DarkShip | Class::Container | Class::Roof => {
            base * (0.93 + 0.14 * stat)
        }
        Class::Water => base * (0.95 + 0.1 * stat),
        _ => base * (0.8 + 0.4 * stat),
    };
    v += s.glint as f64 * GLINT_REFL[b];
    let noise = hash01(s.i, s.j, st.seed.wrapping_mul(131).wrapping_add(band_seed)) - 0.5;
    v = v * st.gain + noise * if b == 4 { 60.0 } else { 40.0 };
    if s.shadow {
        v *= 0.45;
    }
    let h = s.haze as f64;
    v = v * (1.0 - h) + HAZE_REFL[b] * h;
    let d = s.dens as f64;
    if d > 0.3 {
        let alpha = 0.35 + 0.65 * ((d - 0.3) / 0.6).clamp(0.0, 1.0);
        v = v * (1.0 - alpha) + CLOUD_REFL[b] * alpha;
    }
    v.round().clamp(1.0, 65535.0) as u16
}

/// Maps pixel centres of a scene grid to world coordinates. Scenes in
/// another CRS use an exact transform every `STEP` pixels and bilinear
/// interpolation between (sub-millimetre error at 10 m, as GDAL's
/// approximate transformer does).
#[derive(Debug)]
pub(crate) struct CoordMap {
    ulx: f64,
    uly: f64,
    res: f64,
    n: usize,
    /// Exact world coordinates at every STEP-th pixel centre (None = same CRS).
    nodes: Option<(usize, Vec<(f64, f64)>)>,
}

const STEP: usize = 32;

impl CoordMap {
    pub(crate) fn new(
        scene_epsg: Epsg,
        world_epsg: Epsg,
        ulx: f64,
        uly: f64,
        res: f64,
        n: usize,
    ) -> Result<Self> {
        let nodes = if scene_epsg == world_epsg {
            None
        } else {
            let t = Transformer::new(scene_epsg, world_epsg)?;
            let m = n.div_ceil(STEP) + 1;
            let mut v = Vec::with_capacity(m * m);
            for r in 0..m {
                for c in 0..m {
                    let x = ulx + ((c * STEP) as f64 + 0.5) * res;
                    let y = uly - ((r * STEP) as f64 + 0.5) * res;
                    v.push(t.transform(x, y)?);
                }
            }
            Some((m, v))
        };
        Ok(CoordMap {
            ulx,
            uly,
            res,
            n,
            nodes,
        })
    }

    pub(crate) fn world(&self, col: usize, row: usize) -> (f64, f64) {
        match &self.nodes {
            None => (
                self.ulx + (col as f64 + 0.5) * self.res,
                self.uly - (row as f64 + 0.5) * self.res,
            ),
            Some((m, v)) => {
                let (c0, r0) = (col / STEP, row / STEP);
                let (fx, fy) = (
                    (col % STEP) as f64 / STEP as f64,
                    (row % STEP) as f64 / STEP as f64,
                );
                let at = |c: usize, r: usize| v[r.min(m - 1) * m + c.min(m - 1)];
                let (a, b, c, d) = (
                    at(c0, r0),
                    at(c0 + 1, r0),
                    at(c0, r0 + 1),
                    at(c0 + 1, r0 + 1),
                );
                let x =
                    (a.0 * (1.0 - fx) + b.0 * fx) * (1.0 - fy) + (c.0 * (1.0 - fx) + d.0 * fx) * fy;
                let y =
                    (a.1 * (1.0 - fx) + b.1 * fx) * (1.0 - fy) + (c.1 * (1.0 - fx) + d.1 * fx) * fy;
                (x, y)
            }
        }
    }

    /// Samples every pixel of the grid (rows in parallel).
    pub(crate) fn sample_all(&self, model: &WorldModel, st: &SceneState) -> Vec<Sample> {
        let n = self.n;
        let mut out = vec![
            Sample {
                class: Class::Water,
                tone: 1.0,
                tint: 0,
                dens: 0.0,
                haze: 0.0,
                glint: 0.0,
                shadow: false,
                valid: false,
                i: 0,
                j: 0,
            };
            n * n
        ];
        out.par_chunks_mut(n).enumerate().for_each(|(row, line)| {
            for (col, px) in line.iter_mut().enumerate() {
                let (x, y) = self.world(col, row);
                *px = sample(model, st, x, y, self.res);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_uniform_enough() {
        let mean: f64 = (0..10_000).map(|k| hash01(k, 7 * k, 3)).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }

    /// The committed recipes: Oakland and the second port.
    fn recipes() -> [Recipe; 2] {
        let second = Recipe::from_toml_str(
            include_str!("../../datasets/second-port/recipe.toml"),
            std::path::Path::new("datasets/second-port/recipe.toml"),
        )
        .unwrap();
        [Recipe::oakland(), second]
    }

    /// A lower bound of the distance between two ships: the widest gap
    /// between their projections on the four edge normals (exact for two
    /// ships of one frame).
    fn gap(a: &Ship, b: &Ship) -> f64 {
        let (ca, cb) = (a.corners(), b.corners());
        let mut best = f64::NEG_INFINITY;
        for c in [&ca, &cb] {
            for k in 0..2 {
                let (p, q) = (c[k], c[k + 1]);
                let len = ((q.0 - p.0).powi(2) + (q.1 - p.1).powi(2)).sqrt();
                let n = ((q.1 - p.1) / len, (p.0 - q.0) / len);
                let proj = |c: &[(f64, f64); 4]| {
                    let v = c.map(|p| p.0 * n.0 + p.1 * n.1);
                    (
                        v.iter().copied().fold(f64::INFINITY, f64::min),
                        v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    )
                };
                let ((a0, a1), (b0, b1)) = (proj(&ca), proj(&cb));
                best = best.max((b0 - a1).max(a0 - b1));
            }
        }
        best
    }

    #[test]
    fn ships_of_a_day_keep_40_m_of_water_between_them() {
        for r in recipes() {
            let m = WorldModel::new(&r).unwrap();
            for day in 1..=31 {
                let ships = m.ships_for_day(day);
                for (i, a) in ships.iter().enumerate() {
                    for b in &ships[i + 1..] {
                        let g = gap(a, b);
                        assert!(g >= 40.0, "{} day {day}: {} {} {g} m", r.name, a.id, b.id);
                    }
                }
            }
        }
    }

    #[test]
    fn berth_ships_dwell_in_place_and_come_and_go() {
        for r in recipes() {
            let m = WorldModel::new(&r).unwrap();
            // id -> (first day seen, ship), days seen
            let mut seen: std::collections::BTreeMap<String, (Ship, Vec<u32>)> =
                std::collections::BTreeMap::new();
            for day in 1..=31 {
                let ships = m.ships_for_day(day);
                let ids: std::collections::BTreeSet<_> = ships.iter().map(|s| &s.id).collect();
                assert_eq!(ids.len(), ships.len(), "ids of a day are unique");
                for s in ships.into_iter().filter(|s| s.terminal.is_some()) {
                    let e = seen.entry(s.id.clone()).or_insert((s.clone(), Vec::new()));
                    let f = &e.0;
                    assert_eq!(
                        (f.uc, f.vc, f.hl, f.hw, f.dark, f.tone, f.stay),
                        (s.uc, s.vc, s.hl, s.hw, s.dark, s.tone, s.stay),
                        "{}: a moored ship does not change",
                        s.id
                    );
                    e.1.push(day);
                }
            }
            assert!(m.ships_for_day(40).iter().all(|s| s.terminal.is_none()));
            for (k, t) in m.terminals.iter().enumerate() {
                let visits: Vec<_> = seen
                    .values()
                    .filter(|(s, _)| s.terminal.as_deref() == Some(t.name.as_str()))
                    .collect();
                let arrivals = visits
                    .iter()
                    .filter(|(s, _)| s.stay.is_some_and(|(a, _)| a > 1))
                    .count();
                let departures = visits
                    .iter()
                    .filter(|(s, _)| s.stay.is_some_and(|(_, d)| d <= 31))
                    .count();
                assert!(arrivals >= 1 && departures >= 1, "{} {}", r.name, t.name);
                for (s, days) in &visits {
                    assert!(s.id.starts_with(&format!("{}-", k + 1)), "{}", s.id);
                    let (a, d) = s.stay.unwrap();
                    assert!((2..=7).contains(&(d - a)), "{}: {a}..{d}", s.id);
                    let want: Vec<u32> = (a..d.min(32)).collect();
                    assert_eq!(days, &want, "{}: present on its days only", s.id);
                    // on the water side, inside the terminal's berth band
                    assert!(s.vc + s.hw <= -70.0 + 1e-9 && s.vc - s.hw >= -t.hv + 20.0 - 1e-9);
                    assert!(s.uc.abs() + s.hl <= t.hu - 20.0 + 1e-9, "{}", s.id);
                    assert!((2.0 * s.hl) >= 150.0 && (2.0 * s.hl) <= 330.0);
                }
            }
            assert!(
                m.ships_for_day(1).iter().any(|s| s.terminal.is_some()),
                "{}: some berths are busy on day 1",
                r.name
            );
        }
    }

    /// Berths are water, and open onto water beyond the terminal's edge.
    #[test]
    fn berths_are_on_water_facing_water() {
        for r in recipes() {
            let m = WorldModel::new(&r).unwrap();
            let still = SceneState::still();
            for t in &m.terminals {
                for u in [-t.hu + 50.0, 0.0, t.hu - 50.0] {
                    for v in [-t.hv + 30.0, -100.0, -t.hv - 40.0] {
                        let (x, y) = t.frame.world(u, v);
                        let c = sample(&m, &still, x, y, 10.0).class();
                        assert_eq!(c, Class::Water, "{} {} u {u} v {v}", r.name, t.name);
                    }
                    let (x, y) = t.frame.world(u, 0.0);
                    let c = sample(&m, &still, x, y, 10.0).class();
                    assert!(matches!(c, Class::Quay | Class::Container), "{c:?}");
                }
            }
        }
    }

    #[test]
    fn the_ship_under_way_moves() {
        let m = WorldModel::new(&Recipe::oakland()).unwrap();
        let at = |day| {
            let ships = m.ships_for_day(day);
            let s = ships.iter().find(|s| s.id == "under-way").unwrap().clone();
            assert!(s.terminal.is_none() && s.stay.is_none());
            s
        };
        let (a, b) = (at(1), at(3));
        assert!((b.centre().1 - a.centre().1 - 320.0).abs() < 1e-6);
        assert_eq!((a.dark, a.tone), (b.dark, b.tone), "the same ship");
    }

    #[test]
    fn water_land_and_ship_classes_appear() {
        let r = Recipe::oakland();
        let m = WorldModel::new(&r).unwrap();
        let scene = &r.scenes()[0];
        let st = SceneState::new(&m, scene, (m.xc, m.yc), 20_480.0);
        // far west is water, far east is land
        assert_eq!(
            sample(&m, &st, m.xc - 3000.0, m.yc + 500.0, 10.0).class,
            Class::Water
        );
        assert_ne!(
            sample(&m, &st, m.xc + 3000.0, m.yc + 500.0, 10.0).class,
            Class::Water
        );
        let ship = st.ships.iter().find(|s| !s.dark).expect("a bright ship");
        let (x, y) = ship.frame.world(ship.uc, ship.vc);
        let s = sample(&m, &st, x, y, 10.0);
        assert_eq!(s.class, Class::Ship);
        assert!(reflectance(&s, &st, 2, 4) > 2000, "ships are bright in B04");
    }

    /// Over the terminals on a clear day, a brightness threshold low enough
    /// to keep 90 % of ship pixels keeps more land than ship, and the dark
    /// hulls sit below land: brightness alone cannot find the ships. Ship
    /// pixels are pooled over the ships of 8 days (lit as day 1) and
    /// counted per day.
    #[test]
    fn brightness_alone_cannot_separate_ships() {
        const DAYS: u32 = 8;
        let r = Recipe::oakland();
        let m = WorldModel::new(&r).unwrap();
        let scene = &r.scenes()[0]; // day 1: clear, no haze, no glint
        let mut st = SceneState::new(&m, scene, (m.xc, m.yc), 20_480.0);
        let (mut ships, mut dark, mut others) = (Vec::new(), 0usize, Vec::new());
        for day in 1..=DAYS {
            st.ships = m.ships_for_day(day);
            for row in 0..250 {
                for col in 0..250 {
                    let (x, y) = (
                        m.xc - 1500.0 + 10.0 * col as f64,
                        m.yc + 1500.0 - 12.0 * row as f64,
                    );
                    let s = sample(&m, &st, x, y, 10.0);
                    let b = (0..3)
                        .map(|b| reflectance(&s, &st, b, b as u64))
                        .map(f64::from)
                        .sum::<f64>()
                        / 3.0;
                    match s.class {
                        Class::Ship => ships.push(b),
                        Class::DarkShip => {
                            dark += 1;
                            ships.push(b);
                        }
                        _ if day == 1 => others.push(b),
                        _ => {}
                    }
                }
            }
        }
        assert!(ships.len() > 1000, "{} ship pixels", ships.len());
        ships.sort_by(f64::total_cmp);
        let t = ships[ships.len() / 10];
        let land_above = others.iter().filter(|&&b| b >= t).count();
        let per_day = ships.len() / DAYS as usize;
        assert!(
            land_above > per_day,
            "{land_above} other pixels ≥ {t} vs {per_day} ship pixels a day",
        );
        assert!(dark * 5 >= ships.len(), "{dark} dark of {}", ships.len());
        let bright_others = others.iter().filter(|&&b| b >= 2400.0).count();
        assert!(
            bright_others > per_day / 2,
            "{bright_others} bright non-ship pixels"
        );
    }
}
