//! The scenes of the inputs after the first, found as the first input's
//! are (`region.rs`): the kept samples grouped by time window and
//! [`CELL_DEG`]° cell, one paged search per group and input (over the
//! union of its samples' tiles, for the days the input's time rule reads),
//! every item converted once into the input's scene table, each sample's
//! scenes picked locally with the plan's own rule. A sample keeps indexes,
//! not plans. A snapshot is the table itself; a single raster (`href`) is a
//! table of one scene, its grid and CRS from its header.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use rayon::prelude::*;

use crate::cog::CogReader;
use crate::dataset::config::{DatasetConfig, InputConfig};
use crate::dataset::inputs::{SceneMeta, source_request};
use crate::dataset::region::{CELL_DEG, footprint_bbox, overlaps, ring_bbox, union_bbox};
use crate::dataset::sample::{DatasetSample, InputReport};
use crate::error::{Error, Result};
use crate::geo::grid::GridSpec;
use crate::stac::catalog::Catalog;
use crate::stac::scene::{Scene, SceneAsset};
use crate::stack::load::{new_scenes, search_request, table_entries};
use crate::stack::plan::{TimeBounds, pick_scenes_in, time_bounds};
use crate::stack::request::StackRequest;
use crate::zarr::ZarrReader;

/// Searches in flight at once, per input.
const SEARCHES_IN_FLIGHT: usize = 8;

/// One input after the first, opened: its scenes (each once), their
/// orbit and platform, and each sample's scenes (indexes, plan order).
#[derive(Debug)]
pub(crate) struct OpenInput {
    pub(crate) scenes: Vec<Scene>,
    pub(crate) meta: HashMap<String, SceneMeta>,
    pub(crate) per_sample: Vec<Box<[u32]>>,
    pub(crate) report: InputReport,
}

/// Where an input's scenes come from.
pub(crate) enum InputSource<'a> {
    /// A catalog (STAC API, snapshot, demo world).
    Catalog(&'a Catalog),
    /// One raster, as a scene.
    Raster(Scene),
}

/// A sample's tile for this input: its box, outline, time bounds and window.
struct Tile {
    bbox: [f64; 4],
    polygon: geo::Polygon<f64>,
    bounds: TimeBounds,
    window: (NaiveDate, NaiveDate),
}

/// Opens `input` (an input after the first, or a raster label layer read
/// as one) over the kept `samples`; `at` names it in errors.
///
/// # Errors
/// Errors naming the input (`inputs[k + 1] "name"`, `labels "name"`): a
/// request that does not validate, a search that fails, an item that does
/// not convert.
pub(crate) async fn open_input(
    config: &DatasetConfig,
    input: &InputConfig,
    at: &str,
    source: InputSource<'_>,
    samples: &[DatasetSample],
    zarr: &ZarrReader,
) -> Result<OpenInput> {
    let input = input.clone();
    let tiles = {
        let (cfg, samples, input) = (config.clone(), samples.to_vec(), input.clone());
        tokio::task::spawn_blocking(move || {
            samples
                .par_iter()
                .map(|s| {
                    let primary = cfg.request(s.centroid, s.start, s.end)?;
                    let req = source_request(&input.stack, input.time, &primary)?;
                    let ring = req.grid()?.wgs84_ring()?;
                    Ok(Tile {
                        bbox: ring_bbox(&ring),
                        polygon: geo::Polygon::new(geo::LineString::from(ring.to_vec()), vec![]),
                        bounds: time_bounds(&req),
                        window: (s.start, s.end),
                    })
                })
                .collect::<Result<Vec<Tile>>>()
        })
        .await
        .map_err(|e| Error::task("place input tiles", e))?
        .map_err(|e| config.error_because(at, e))?
    };
    let mut groups: BTreeMap<(NaiveDate, NaiveDate, i64, i64), Vec<usize>> = BTreeMap::new();
    for (i, (s, t)) in samples.iter().zip(&tiles).enumerate() {
        let key = (
            t.window.0,
            t.window.1,
            (s.centroid[0] / CELL_DEG).floor() as i64,
            (s.centroid[1] / CELL_DEG).floor() as i64,
        );
        groups.entry(key).or_default().push(i);
    }
    let mut table = Table::default();
    let mut report = InputReport {
        name: input.name.clone(),
        rule: input.time.to_string(),
        ..InputReport::default()
    };
    // Each group's candidate scenes (table indexes).
    let mut candidates: Vec<Vec<u32>> = Vec::with_capacity(groups.len());
    match source {
        InputSource::Raster(scene) => {
            table.push(scene, SceneMeta::default());
            candidates = vec![vec![0]; groups.len()];
        }
        InputSource::Catalog(Catalog::Items(items)) => {
            let read_bands = match samples.first() {
                Some(s) => {
                    let primary = config.request(s.centroid, s.start, s.end)?;
                    source_request(&input.stack, input.time, &primary)
                        .map_err(|e| config.error_because(at, e))?
                        .read_bands()
                }
                None => Vec::new(),
            };
            table
                .add_all(items, &read_bands, zarr)
                .await
                .map_err(|e| config.error_because(at, e))?;
            for members in groups.values() {
                let bbox = union_bbox(members.iter().map(|&i| tiles[i].bbox));
                candidates.push(
                    (0..table.scenes.len() as u32)
                        .filter(|&j| overlaps(&table.boxes[j as usize], &bbox))
                        .collect(),
                );
            }
        }
        InputSource::Catalog(Catalog::Stac { client, collection }) => {
            let searches = groups
                .values()
                .map(|members| {
                    let bbox = union_bbox(members.iter().map(|&i| tiles[i].bbox));
                    let s = &samples[members[0]];
                    let primary = config.request(s.centroid, s.start, s.end)?;
                    let req = source_request(&input.stack, input.time, &primary)
                        .map_err(|e| config.error_because(at, e))?;
                    Ok((bbox, req))
                })
                .collect::<Result<Vec<(_, StackRequest)>>>()?;
            report.searches = searches.len();
            let results: Vec<_> =
                futures::stream::iter(searches.into_iter().map(|(bbox, req)| async move {
                    let sreq = search_request(collection, bbox, &req, None)?;
                    let res = client.search(&sreq).await?;
                    Ok::<_, Error>((res, req.read_bands()))
                }))
                .buffered(SEARCHES_IN_FLIGHT)
                .collect()
                .await;
            for r in results {
                let (res, read_bands) = r.map_err(|e| config.error_because(at, e))?;
                let group = table
                    .add_all(&res.items, &read_bands, zarr)
                    .await
                    .map_err(|e| config.error_because(at, e))?;
                candidates.push(group);
            }
        }
    }
    let mut per_sample: Vec<Box<[u32]>> = vec![Box::default(); samples.len()];
    for (members, cands) in groups.values().zip(&candidates) {
        for &i in members {
            let t = &tiles[i];
            let picked = pick_scenes_in(
                &table.scenes,
                cands
                    .iter()
                    .map(|&j| j as usize)
                    .filter(|&j| overlaps(&table.boxes[j], &t.bbox)),
                t.bounds,
                &t.polygon,
            );
            per_sample[i] = picked.into_iter().map(|j| j as u32).collect();
        }
    }
    report.scenes = table.scenes.len();
    report.samples_without_scene = per_sample.iter().filter(|s| s.is_empty()).count();
    tracing::info!(input = %input.name, rule = %input.time, scenes = report.scenes,
        without = report.samples_without_scene, "input opened");
    Ok(OpenInput {
        scenes: table.scenes,
        meta: table.meta,
        per_sample,
        report,
    })
}

/// An input's scene table as it fills.
#[derive(Default)]
struct Table {
    scenes: Vec<Scene>,
    boxes: Vec<[f64; 4]>,
    meta: HashMap<String, SceneMeta>,
    by_id: HashMap<String, u32>,
}

impl Table {
    fn push(&mut self, scene: Scene, meta: SceneMeta) -> u32 {
        let k = self.scenes.len() as u32;
        self.by_id.insert(scene.id.clone(), k);
        self.meta.insert(scene.id.clone(), meta);
        self.boxes.push(footprint_bbox(&scene));
        self.scenes.push(scene);
        k
    }

    /// Adds the items of `items` the table does not hold yet (each id
    /// once; Zarr items without a grid take their stores' grids, see
    /// [`new_scenes`]); every item's index, in order.
    ///
    /// # Errors
    /// The first item that does not convert, in order.
    async fn add_all(
        &mut self,
        items: &[stac::Item],
        read_bands: &[crate::units::BandName],
        zarr: &ZarrReader,
    ) -> Result<Vec<u32>> {
        let known = |id: &str| self.by_id.contains_key(id);
        for (item, scene) in new_scenes(items, known, read_bands, zarr).await {
            if self.scenes.len() >= u32::MAX as usize {
                return Err(Error::invalid(
                    "catalog",
                    "more than 4 billion scenes in one input",
                ));
            }
            self.push(scene?, SceneMeta::of(item));
        }
        table_entries(items, &self.by_id)
    }
}

/// A single raster as a scene of one band (`band`): its grid and CRS from
/// its header, its footprint the raster's outline, its date the epoch (a
/// `static` input reads it whatever its date).
///
/// # Errors
/// The header's read error (naming the href); [`Error::Cog`] naming the
/// href when the raster has no geotransform or no EPSG code.
pub(crate) async fn raster_scene(
    reader: &CogReader,
    href: &str,
    band: &crate::units::BandName,
) -> Result<Scene> {
    let h = reader.header(href).await?;
    let transform = h.transform.ok_or_else(|| {
        Error::cog(
            href,
            "no geotransform (ModelTiepoint/ModelPixelScale): its grid cannot be established",
        )
    })?;
    let epsg = h.epsg.ok_or_else(|| {
        Error::cog(
            href,
            "no EPSG code in its GeoKeys: its CRS cannot be established",
        )
    })?;
    let grid = GridSpec {
        epsg,
        transform,
        width: h.width,
        height: h.height,
    };
    let ring = grid.wgs84_ring()?;
    let footprint = geo::MultiPolygon::new(vec![geo::Polygon::new(
        geo::LineString::from(ring.to_vec()),
        vec![],
    )]);
    let asset = SceneAsset {
        key: band.to_string(),
        href: href.to_string(),
        epsg,
        transform,
        shape: (h.height, h.width),
        nodata: h.nodata,
        scale_offset: None,
        harmonize: None,
        // a single raster href is read as a GeoTIFF (its header gave the grid)
        format: crate::stac::scene::AssetFormat::Cog,
    };
    Ok(Scene {
        id: href.rsplit('/').next().unwrap_or(href).to_string(),
        datetime: Utc.timestamp_opt(0, 0).single().unwrap_or_default(),
        footprint,
        cloud_cover: None,
        assets: [(band.clone(), asset)].into_iter().collect(),
    })
}
