//! The demo world's other sensors and layers, each its own STAC collection
//! beside the Sentinel-2 one:
//!
//! | collection | like (Planetary Computer) | items | assets |
//! |---|---|---|---|
//! | `<collection>-s1` | `sentinel-1-rtc` | one per recipe `s1_passes` entry | `vv`, `vh`: float32 gamma0, linear power, nodata −32768 |
//! | `<collection>-dem` | `cop-dem-glo-30` | one, static | `data`: float32 metres |
//! | `<collection>-landcover` | `esa-worldcover` | one, static | `map`: uint8 ESA WorldCover codes, nodata 0 |
//!
//! All of them lie on one grid: the 10 m grid of the first granule in the
//! world CRS (granule `A` of the Oakland recipe), so a pixel of the DEM, of
//! the land cover, of an S1 pass and of that granule's 10 m S2 bands is the
//! same patch of ground, sampled from the same continuous world model.
//!
//! Nothing here draws from the optical scenes' random streams: the S2 COGs
//! are byte-identical with or without these collections.

use std::path::Path;

use serde_json::{Value, json};

use crate::demo::cog_writer::{self, CogOptions, CogPixels, OverviewResampling};
use crate::demo::recipe::{Recipe, S1Def};
use crate::demo::render::{CoordMap, Sample, SceneState, WorldModel};
use crate::demo::sar::{self, S1_NODATA};
use crate::demo::world::{WorldCollection, footprint_wgs84, ring_bbox};
use crate::error::{Error, Result};
use crate::geo::crs::Transformer;
use crate::units::Epsg;

/// Nodata of the DEM: declared so that sea level (0 m) is a value, not a hole.
const DEM_NODATA: f64 = -32767.0;

/// What [`generate`] made: a collection, its items, the manifest entry.
pub(crate) struct Extra {
    pub(crate) entry: WorldCollection,
    pub(crate) collection: Value,
    pub(crate) items: Vec<Value>,
}

/// The shared 10 m grid of the extra layers, in the world CRS.
#[derive(Debug, Clone, Copy)]
struct Grid {
    epsg: Epsg,
    ulx: f64,
    uly: f64,
    res: f64,
    n: usize,
}

impl Grid {
    /// The 10 m grid of the first granule in the world CRS (as
    /// `write_scene` places it), or one centred on the centroid.
    fn of(recipe: &Recipe, model: &WorldModel) -> Result<Grid> {
        let ext = recipe.scene_size as f64 * 10.0;
        let r60 = |v: f64| (v / 60.0).round() * 60.0;
        let (ulx, uly) = match recipe.granules.values().find(|g| g.epsg == recipe.epsg) {
            Some(g) => {
                let to_g = Transformer::new(Epsg::WGS84, g.epsg)?;
                let (xg, yg) = to_g.transform(recipe.centroid[0], recipe.centroid[1])?;
                (
                    r60(xg + g.ul_extent[0] * ext + g.ul_metres[0]),
                    r60(yg + g.ul_extent[1] * ext + g.ul_metres[1]),
                )
            }
            None => (r60(model.xc - ext / 2.0), r60(model.yc + ext / 2.0)),
        };
        Ok(Grid {
            epsg: model.epsg,
            ulx,
            uly,
            res: 10.0,
            n: recipe.scene_size,
        })
    }

    fn samples(&self, model: &WorldModel, st: &SceneState) -> Result<Vec<Sample>> {
        let map = CoordMap::new(self.epsg, self.epsg, self.ulx, self.uly, self.res, self.n)?;
        Ok(map.sample_all(model, st))
    }

    /// Pixel-centre coordinates of sample `k`.
    fn centre(&self, k: usize) -> (f64, f64) {
        let (col, row) = (k % self.n, k / self.n);
        (
            self.ulx + (col as f64 + 0.5) * self.res,
            self.uly - (row as f64 + 0.5) * self.res,
        )
    }

    fn cog(&self, tile: usize, nodata: Option<f64>, ovr: OverviewResampling) -> CogOptions {
        CogOptions {
            width: self.n,
            height: self.n,
            epsg: self.epsg.code() as u16,
            origin_x: self.ulx,
            origin_y: self.uly,
            resolution: self.res,
            tile_size: tile,
            nodata,
            overview_resampling: ovr,
            deflate_level: 6,
        }
    }

    fn ext(&self) -> f64 {
        self.n as f64 * self.res
    }

    /// `proj:*` fields of an item or asset on this grid.
    fn proj(&self) -> serde_json::Map<String, Value> {
        let (ulx, uly, res, n, ext) = (self.ulx, self.uly, self.res, self.n, self.ext());
        let v = json!({
            "proj:epsg": self.epsg.code(),
            "proj:code": self.epsg.to_string(),
            "proj:shape": [n, n],
            "proj:bbox": [ulx, uly - ext, ulx + ext, uly],
            "proj:transform": [res, 0.0, ulx, 0.0, -res, uly],
        });
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    fn footprint(&self, model: &WorldModel) -> Result<(Vec<[f64; 2]>, [f64; 4])> {
        let ring = footprint_wgs84(self.epsg, model, self.ulx, self.uly, self.ext(), None)?;
        let bbox = ring_bbox(&ring);
        Ok((ring, bbox))
    }
}

/// Collection ids of the extra layers of a world whose S2 collection is `base`.
pub(crate) fn s1_collection_id(base: &str) -> String {
    format!("{base}-s1")
}
pub(crate) fn dem_collection_id(base: &str) -> String {
    format!("{base}-dem")
}
pub(crate) fn landcover_collection_id(base: &str) -> String {
    format!("{base}-landcover")
}

/// Writes the COGs of every extra layer under `out/data/<item id>/` and
/// returns their collections and items (hrefs relative to `out/items/`).
///
/// # Errors
/// [`Error::Io`] on write failures, [`Error::Crs`] on projection failures.
pub(crate) fn generate(recipe: &Recipe, model: &WorldModel, out: &Path) -> Result<Vec<Extra>> {
    let grid = Grid::of(recipe, model)?;
    let mut extras = Vec::new();
    let passes = recipe.s1_passes();
    if !passes.is_empty() {
        extras.push(write_s1(recipe, model, &grid, &passes, out)?);
    }
    extras.extend(write_static(recipe, model, &grid, out)?);
    Ok(extras)
}

fn write_file(path: &Path, px: CogPixels<'_>, opts: &CogOptions) -> Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    cog_writer::write_cog(path, px, opts)?;
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len())
}

fn asset(grid: &Grid, id: &str, key: &str, fields: Value) -> Value {
    let mut a = json!({
        "href": format!("../data/{id}/{key}.tif"),
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "gsd": grid.res,
    });
    if let (Value::Object(m), Value::Object(f)) = (&mut a, fields) {
        m.extend(grid.proj());
        m.extend(f);
    }
    a
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn write_s1(
    recipe: &Recipe,
    model: &WorldModel,
    grid: &Grid,
    passes: &[S1Def],
    out: &Path,
) -> Result<Extra> {
    let cid = s1_collection_id(&recipe.collection);
    let (ring, bbox) = grid.footprint(model)?;
    let opts = grid.cog(
        recipe.cog_tile_size,
        Some(S1_NODATA),
        OverviewResampling::Average,
    );
    let mut items = Vec::new();
    let mut bytes = 0u64;
    for p in passes {
        let st = SceneState::radar(model, p.day);
        let samples = grid.samples(model, &st)?;
        let (vv, vh) =
            sar::render_pass(&samples, &st, grid.n, grid.ulx, grid.uly, grid.res, p.seed);
        let dir = out.join("data").join(&p.id);
        bytes += write_file(&dir.join("vv.tif"), CogPixels::F32(&vv), &opts)?;
        bytes += write_file(&dir.join("vh.tif"), CogPixels::F32(&vh), &opts)?;
        let band = |pol: &str, long: &str| {
            asset(
                grid,
                &p.id,
                &pol.to_ascii_lowercase(),
                json!({
                    "title": format!("{pol}: vertical transmit, {long} receive"),
                    "description": format!("Terrain-corrected gamma naught values of signal transmitted with vertical polarization and received with {long} polarization with radiometric terrain correction applied."),
                    "raster:bands": [{"nodata": S1_NODATA, "data_type": "float32", "spatial_resolution": grid.res}],
                }),
            )
        };
        let mut props = json!({
            "datetime": rfc3339(p.datetime),
            "start_datetime": rfc3339(p.datetime - chrono::Duration::seconds(12)),
            "end_datetime": rfc3339(p.datetime + chrono::Duration::seconds(13)),
            "platform": p.platform,
            "constellation": "Sentinel-1",
            "sar:instrument_mode": "IW",
            "sar:frequency_band": "C",
            "sar:center_frequency": 5.405,
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "GRD",
            "sar:resolution_range": 20,
            "sar:resolution_azimuth": 22,
            "sar:pixel_spacing_range": 10,
            "sar:pixel_spacing_azimuth": 10,
            "sar:looks_range": 5,
            "sar:looks_azimuth": 1,
            "sar:looks_equivalent_number": sar::LOOKS,
            "sar:observation_direction": "right",
            "sat:orbit_state": p.orbit,
            "sat:relative_orbit": p.relative_orbit,
            "sat:absolute_orbit": p.absolute_orbit,
            "s1:processing_level": "1",
            "s1:resolution": "high",
            "s1:product_timeliness": "Fast-24h",
        });
        if let Value::Object(m) = &mut props {
            m.extend(grid.proj());
        }
        items.push(json!({
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
                "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
                "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
                "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            ],
            "id": p.id,
            "collection": cid,
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "bbox": bbox,
            "properties": props,
            "links": [],
            "assets": {"vh": band("VH", "horizontal"), "vv": band("VV", "vertical")},
        }));
    }
    let times: Vec<String> = passes.iter().map(|p| rfc3339(p.datetime)).collect();
    let mut platforms: Vec<&str> = passes.iter().map(|p| p.platform.as_str()).collect();
    platforms.sort_unstable();
    platforms.dedup();
    let collection = json!({
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "title": format!("Sentinel-1 RTC (synthetic demo world {:?})", recipe.name),
        "description": "Synthetic Sentinel-1 radiometrically terrain corrected (RTC) gamma0 backscatter generated by tilestack, like Planetary Computer's sentinel-1-rtc: VV and VH as float32 linear power, nodata -32768. Ships are strong point targets with sidelobes, water is dark, speckle has 4 looks; clouds do not exist for radar.",
        "license": "CC0-1.0",
        "extent": {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[times.first(), times.last()]]},
        },
        "summaries": {
            "platform": platforms,
            "constellation": ["Sentinel-1"],
            "sar:polarizations": ["VV", "VH"],
            "sar:instrument_mode": ["IW"],
            "sar:frequency_band": ["C"],
            "sat:orbit_state": ["ascending", "descending"],
            "proj:epsg": [grid.epsg.code()],
        },
        "links": [],
    });
    Ok(Extra {
        entry: WorldCollection {
            id: cid,
            like: "sentinel-1-rtc".into(),
            items: passes.iter().map(|p| p.id.clone()).collect(),
            cog_bytes: bytes,
        },
        collection,
        items,
    })
}

/// The eleven ESA WorldCover classes, as `classification:classes`.
fn worldcover_classes() -> Value {
    let c = [
        (10, "Tree cover", "006400"),
        (20, "Shrubland", "FFBB22"),
        (30, "Grassland", "FFFF4C"),
        (40, "Cropland", "F096FF"),
        (50, "Built-up", "FA0000"),
        (60, "Bare / sparse vegetation", "B4B4B4"),
        (70, "Snow and ice", "F0F0F0"),
        (80, "Permanent water bodies", "0064C8"),
        (90, "Herbaceous wetland", "0096A0"),
        (95, "Mangroves", "00CF75"),
        (100, "Moss and lichen", "FAE6A0"),
    ];
    Value::Array(
        c.iter()
            .map(|&(v, d, h)| json!({"value": v, "description": d, "color-hint": h}))
            .collect(),
    )
}

fn write_static(
    recipe: &Recipe,
    model: &WorldModel,
    grid: &Grid,
    out: &Path,
) -> Result<Vec<Extra>> {
    let samples = grid.samples(model, &SceneState::still())?;
    let (ring, bbox) = grid.footprint(model)?;
    let dem: Vec<f32> = samples
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let (x, y) = grid.centre(k);
            sar::elevation(model, s, x, y)
        })
        .collect();
    let lc: Vec<u8> = samples
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let (x, y) = grid.centre(k);
            sar::land_cover(s, x, y)
        })
        .collect();
    debug_assert!(lc.iter().all(|&c| c != 0));

    let dem_id = format!("{}-dem", recipe.name);
    let dem_bytes = write_file(
        &out.join("data").join(&dem_id).join("data.tif"),
        CogPixels::F32(&dem),
        &grid.cog(
            recipe.cog_tile_size,
            Some(DEM_NODATA),
            OverviewResampling::Average,
        ),
    )?;
    let lc_id = format!("{}-landcover", recipe.name);
    let lc_bytes = write_file(
        &out.join("data").join(&lc_id).join("map.tif"),
        CogPixels::U8(&lc),
        &grid.cog(recipe.cog_tile_size, Some(0.0), OverviewResampling::Nearest),
    )?;

    let item = |id: &str, cid: &str, props: Value, assets: Value, ext: &[&str]| {
        let mut props = props;
        if let Value::Object(m) = &mut props {
            m.extend(grid.proj());
        }
        json!({
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": ext,
            "id": id,
            "collection": cid,
            "geometry": {"type": "Polygon", "coordinates": [ring.clone()]},
            "bbox": bbox,
            "properties": props,
            "links": [],
            "assets": assets,
        })
    };
    let collection = |cid: &str, title: String, description: &str, interval: [&str; 2]| {
        json!({
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": cid,
            "title": title,
            "description": description,
            "license": "CC0-1.0",
            "extent": {
                "spatial": {"bbox": [bbox]},
                "temporal": {"interval": [interval]},
            },
            "summaries": {"proj:epsg": [grid.epsg.code()]},
            "links": [],
        })
    };
    let proj_raster = [
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    ];

    let dem_cid = dem_collection_id(&recipe.collection);
    let dem_item = item(
        &dem_id,
        &dem_cid,
        json!({"datetime": "2021-04-22T00:00:00Z", "platform": "TanDEM-X", "gsd": grid.res}),
        json!({"data": asset(grid, &dem_id, "data", json!({
            "title": "Elevation (synthetic, metres above sea level)",
            "raster:bands": [{"nodata": DEM_NODATA, "data_type": "float32", "spatial_resolution": grid.res, "unit": "metre"}],
        }))}),
        &proj_raster,
    );
    let dem = Extra {
        entry: WorldCollection {
            id: dem_cid.clone(),
            like: "cop-dem-glo-30".into(),
            items: vec![dem_id.clone()],
            cog_bytes: dem_bytes,
        },
        collection: collection(
            &dem_cid,
            format!("Elevation (synthetic demo world {:?})", recipe.name),
            "A static elevation model of the synthetic world generated by tilestack, like Planetary Computer's cop-dem-glo-30 but on the world's 10 m UTM grid: float32 metres, water 0, quays a flat 4 m apron, land rising inland.",
            ["2021-04-22T00:00:00Z", "2021-04-22T00:00:00Z"],
        ),
        items: vec![dem_item],
    };

    let lc_cid = landcover_collection_id(&recipe.collection);
    let mut ext = proj_raster.to_vec();
    ext.push("https://stac-extensions.github.io/classification/v1.0.0/schema.json");
    let lc_item = item(
        &lc_id,
        &lc_cid,
        json!({
            "datetime": "2021-01-01T00:00:00Z",
            "start_datetime": "2021-01-01T00:00:00Z",
            "end_datetime": "2021-12-31T23:59:59Z",
            "esa_worldcover:product_version": "2.0.0",
            "mission": "sentinel-1, sentinel-2",
            "instruments": ["c-sar", "msi"],
        }),
        json!({"map": asset(grid, &lc_id, "map", json!({
            "title": "Land Cover Classes",
            "description": "ESA WorldCover codes: 10 tree cover, 30 grassland, 50 built-up (towns, quays and container yards), 80 permanent water (berths included)",
            "raster:bands": [{"nodata": 0, "sampling": "area", "data_type": "uint8", "spatial_resolution": grid.res}],
            "classification:classes": worldcover_classes(),
        }))}),
        &ext,
    );
    let landcover = Extra {
        entry: WorldCollection {
            id: lc_cid.clone(),
            like: "esa-worldcover".into(),
            items: vec![lc_id.clone()],
            cog_bytes: lc_bytes,
        },
        collection: collection(
            &lc_cid,
            format!("Land cover (synthetic demo world {:?})", recipe.name),
            "A static land-cover map of the synthetic world generated by tilestack, like Planetary Computer's esa-worldcover: uint8 ESA WorldCover codes (10, 30, 50, 80), nodata 0, on the world's 10 m grid.",
            ["2021-01-01T00:00:00Z", "2021-12-31T23:59:59Z"],
        ),
        items: vec![lc_item],
    };
    Ok(vec![dem, landcover])
}
