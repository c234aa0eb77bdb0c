//! Search by region, not by place. [`TileDataset::open`](crate::TileDataset::open)
//! groups its samples by time window and a cell of [`CELL_DEG`]° of
//! longitude and latitude, makes one paged search per group (over the union
//! of its samples' tile boxes, for the window's days), converts every item
//! once into a shared scene table, and picks each sample's scenes locally
//! with the plan's own rule ([`pick_scenes`]). A sample keeps the indexes of
//! its scenes, not a plan: [`TileDataset::plan`](crate::TileDataset::plan)
//! builds the plan when the sample loads, and it is the plan a search for
//! that sample alone gives (the tests compare them).
//!
//! A snapshot (items in memory) is the table itself: nothing is searched.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use futures::StreamExt;
use geo::{BoundingRect, Intersects};
use rayon::prelude::*;

use crate::dataset::config::DatasetConfig;
use crate::dataset::sample::{DatasetReport, DatasetSample};
use crate::dataset::sampler::SamplePoint;
use crate::error::{Error, Result, Warning};
use crate::geo::grid::GridSpec;
use crate::stac::catalog::Catalog;
use crate::stac::scene::Scene;
use crate::stack::load::{new_scenes, search_request, table_entries};
use crate::stack::plan::{
    TimeBounds, bin_members, check_memory, memory_for, pick_scenes_in, time_bounds,
};
use crate::stack::request::StackRequest;
use crate::zarr::ZarrReader;

/// The side of a search cell, in degrees of longitude and latitude: a
/// month of Sentinel-2 over one cell is a page or two of a STAC search.
pub(crate) const CELL_DEG: f64 = 1.0;

/// Searches in flight at once.
const SEARCHES_IN_FLIGHT: usize = 8;

/// Distinct warnings a report keeps (the rest are counted).
const MAX_WARNINGS: usize = 100;

/// What opening by region gives [`TileDataset`](crate::TileDataset).
pub(crate) struct Region {
    /// The kept samples, in sampler order (point-major, then window).
    pub(crate) samples: Vec<DatasetSample>,
    /// Every scene any search returned, once; samples index into it.
    pub(crate) scenes: Vec<Scene>,
    /// Counts, drops and warnings.
    pub(crate) report: DatasetReport,
}

/// A place × time window, with its tile's outline in lon/lat.
struct Candidate {
    id: String,
    centroid: [f64; 2],
    window: usize,
    ring: [(f64, f64); 5],
}

impl Candidate {
    fn bbox(&self) -> [f64; 4] {
        ring_bbox(&self.ring)
    }
}

/// What a sample keeps of its search: its scenes (table indexes, plan
/// order), the steps with data, the cloudy scenes left out.
struct Assigned {
    scenes: Box<[u32]>,
    days_with_data: usize,
    cloudy: usize,
}

/// The scene table as it fills: scenes, each scene's lon/lat box, the
/// table index of each item id, and the items that did not convert.
#[derive(Default)]
struct Table {
    scenes: Vec<Scene>,
    boxes: Vec<[f64; 4]>,
    by_id: HashMap<String, Slot>,
    failed: Vec<(Option<[f64; 4]>, Error)>,
}

#[derive(Clone, Copy)]
enum Slot {
    Scene(u32),
    Failed(usize),
}

impl Table {
    /// Adds the items of `items` the table does not hold yet (each id
    /// once; Zarr items without a grid take their stores' grids, see
    /// [`new_scenes`]); every item's slot, in order.
    async fn add_all(
        &mut self,
        items: &[stac::Item],
        read_bands: &[crate::units::BandName],
        zarr: &ZarrReader,
    ) -> Result<Vec<Slot>> {
        let known = |id: &str| self.by_id.contains_key(id);
        for (item, scene) in new_scenes(items, known, read_bands, zarr).await {
            self.insert(item, scene)?;
        }
        table_entries(items, &self.by_id)
    }

    /// Adds `item` as `scene` (or as the item that did not convert).
    fn insert(&mut self, item: &stac::Item, scene: Result<Scene>) -> Result<()> {
        let slot = match scene {
            Ok(scene) => {
                let k = u32::try_from(self.scenes.len()).map_err(|_| {
                    Error::invalid("catalog", "more than 4 billion scenes in one dataset")
                })?;
                self.boxes.push(footprint_bbox(&scene));
                self.scenes.push(scene);
                Slot::Scene(k)
            }
            Err(e) => {
                let bbox = item.bbox.map(|b| [b.xmin(), b.ymin(), b.xmax(), b.ymax()]);
                self.failed.push((bbox, e));
                Slot::Failed(self.failed.len() - 1)
            }
        };
        self.by_id.insert(item.id.clone(), slot);
        Ok(())
    }
}

/// A group's items: table slots, scenes first then failed items.
#[derive(Default)]
struct Group {
    members: Vec<u32>,
    scenes: Vec<u32>,
    failed: Vec<usize>,
}

/// Places the samples (`points` × `windows`), searches by region, picks
/// each sample's scenes and applies the filters. Nothing but the catalog
/// is read, and for Zarr items that declare no grid their stores'
/// metadata, once per store, through `zarr` (the dataset's reader).
///
/// # Errors
/// The first bad request in sampler order (naming the config key), a
/// search error naming the URL, an item that does not convert (naming it;
/// a Zarr item without a grid whose store gives none names the store and
/// array too) where a sample's search would have returned it, a stack over
/// `max_bytes`.
pub(crate) async fn open_by_region(
    config: &DatasetConfig,
    catalog: &Catalog,
    points: &[SamplePoint],
    windows: &[(NaiveDate, NaiveDate)],
    zarr: &ZarrReader,
) -> Result<Region> {
    let mut warnings: Vec<String> = Vec::new();
    let mut query = config
        .filters
        .max_cloud_cover
        .map(|c| serde_json::json!({"eo:cloud_cover": {"lte": c}}));
    if let (Some(_), Catalog::Stac { client, .. }) = (&query, catalog)
        && !client.supports_query().await?
    {
        query = None;
        warnings.push(format!(
            "{} does not declare the STAC query extension: filters.max_cloud_cover applied to the items on the client",
            client.root()
        ));
    }
    // One request per window (its days, bands and tile size; the centroid
    // of its first point): every sample of a window shares them.
    let window_reqs: Vec<StackRequest> = match points.first() {
        Some(p) => windows
            .iter()
            .map(|&(a, b)| config.request([p.lon, p.lat], a, b))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let candidates = {
        let (config, points, windows) = (config.clone(), points.to_vec(), windows.to_vec());
        tokio::task::spawn_blocking(move || place(&config, &points, &windows))
            .await
            .map_err(|e| Error::task("place samples", e))??
    };
    let mut report = DatasetReport {
        candidates: candidates.len(),
        ..DatasetReport::default()
    };
    for w in warnings {
        push_warning(&mut report, w);
    }
    let mut groups: BTreeMap<(usize, i64, i64), Group> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        let key = (
            c.window,
            (c.centroid[0] / CELL_DEG).floor() as i64,
            (c.centroid[1] / CELL_DEG).floor() as i64,
        );
        groups
            .entry(key)
            .or_default()
            .members
            .push(u32::try_from(i).map_err(|_| {
                Error::invalid("sampler", "more than 4 billion samples in one dataset")
            })?);
    }
    let mut table = Table::default();
    match catalog {
        Catalog::Items(items) => {
            // The snapshot is the table; a group's scenes are those whose
            // box meets the group's.
            let read_bands = window_reqs
                .first()
                .map(|r| r.read_bands())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            for it in items {
                if !seen.insert(it.id.as_str()) {
                    tracing::warn!(warning = %Warning::DuplicateItem { id: it.id.clone(), page: 0 }, "catalog");
                }
            }
            for slot in table.add_all(items, &read_bands, zarr).await? {
                if let Slot::Failed(k) = slot {
                    // a snapshot's items all went to every sample's plan
                    return Err(table.failed.swap_remove(k).1);
                }
            }
            for g in groups.values_mut() {
                let bbox = union_bbox(g.members.iter().map(|&i| candidates[i as usize].bbox()));
                g.scenes = (0..table.scenes.len() as u32)
                    .filter(|&k| overlaps(&table.boxes[k as usize], &bbox))
                    .collect();
            }
        }
        Catalog::Stac { client, collection } => {
            let searches: Vec<_> = groups
                .iter()
                .map(|(&(w, _, _), g)| {
                    let bbox = union_bbox(g.members.iter().map(|&i| candidates[i as usize].bbox()));
                    (bbox, window_reqs[w].clone())
                })
                .collect();
            report.searches = searches.len();
            let results: Vec<_> = futures::stream::iter(searches.into_iter().map(|(bbox, req)| {
                let query = query.as_ref();
                async move {
                    let sreq = search_request(collection, bbox, &req, query)?;
                    let res = client.search(&sreq).await?;
                    Ok::<_, Error>((res, req.read_bands()))
                }
            }))
            .buffered(SEARCHES_IN_FLIGHT)
            .collect()
            .await;
            for (g, r) in groups.values_mut().zip(results) {
                let (res, read_bands) = r?;
                for w in &res.warnings {
                    tracing::warn!(warning = %w, "catalog");
                    push_warning(&mut report, w.to_string());
                }
                for slot in table.add_all(&res.items, &read_bands, zarr).await? {
                    match slot {
                        Slot::Scene(k) => g.scenes.push(k),
                        Slot::Failed(k) => g.failed.push(k),
                    }
                }
            }
        }
    }
    report.scenes = table.scenes.len();
    // Each sample's scenes, on blocking threads (pure computation).
    let table = std::sync::Arc::new(table);
    let candidates = std::sync::Arc::new(candidates);
    let groups: Vec<Group> = groups.into_values().collect();
    let grids = window_reqs
        .iter()
        .map(StackRequest::grid)
        .collect::<Result<Vec<_>>>()?;
    let assigned = {
        let (config, table, candidates) = (config.clone(), table.clone(), candidates.clone());
        let windows = window_reqs
            .into_iter()
            .zip(grids)
            .map(|(req, grid)| Window {
                bins: req.bins(),
                bounds: time_bounds(&req),
                read_bands: req.read_bands().len(),
                req,
                grid,
            })
            .collect::<Vec<_>>();
        tokio::task::spawn_blocking(move || {
            assign_all(&config, &table, &candidates, &windows, &groups)
        })
        .await
        .map_err(|e| Error::task("assign scenes", e))?
    };
    let mut table = std::sync::Arc::try_unwrap(table)
        .map_err(|_| Error::internal("dataset", "the scene table is still shared"))?;
    let candidates = std::sync::Arc::try_unwrap(candidates)
        .map_err(|_| Error::internal("dataset", "the samples are still shared"))?;
    let mut samples = Vec::new();
    for (c, a) in candidates.into_iter().zip(assigned) {
        let a = match a {
            Ok(a) => a,
            Err(Failure::Item(k)) => return Err(table.failed.swap_remove(k).1),
            Err(Failure::Error(e)) => return Err(e),
        };
        report.cloudy_scenes += a.cloudy;
        if a.scenes.is_empty() {
            let (start, end) = windows[c.window];
            let w = Warning::NoScenes {
                centroid: c.centroid,
                start,
                end,
            };
            push_warning(&mut report, w.to_string());
        }
        let min = config.filters.min_days_with_data;
        if a.days_with_data < min {
            let why = if config.filters.min_footprint_cover > 0.0 {
                format!(
                    "fewer than {min} steps with scenes covering {:.0} % of the tile",
                    config.filters.min_footprint_cover * 100.0
                )
            } else {
                format!("fewer than {min} steps with a scene")
            };
            *report.dropped.entry(why).or_default() += 1;
            continue;
        }
        let (start, end) = windows[c.window];
        samples.push(DatasetSample {
            id: c.id,
            centroid: c.centroid,
            start,
            end,
            days_with_data: a.days_with_data,
            scenes: a.scenes,
        });
    }
    if report.warnings_dropped > 0 {
        tracing::warn!(
            more = report.warnings_dropped,
            "more distinct warnings than the report keeps"
        );
    }
    report.kept = samples.len();
    Ok(Region {
        samples,
        scenes: table.scenes,
        report,
    })
}

/// What every sample of one time window shares: its request (at the first
/// place), grid size, steps, time bounds and bands read.
struct Window {
    req: StackRequest,
    grid: GridSpec,
    bins: Vec<(NaiveDate, NaiveDate)>,
    bounds: TimeBounds,
    read_bands: usize,
}

/// Why a sample could not be assigned: an item of its search that did not
/// convert (index into [`Table::failed`]), or another error.
enum Failure {
    Item(usize),
    Error(Error),
}

/// Every candidate's scenes, in candidate order.
fn assign_all(
    config: &DatasetConfig,
    table: &Table,
    candidates: &[Candidate],
    windows: &[Window],
    groups: &[Group],
) -> Vec<std::result::Result<Assigned, Failure>> {
    let mut out: Vec<Option<std::result::Result<Assigned, Failure>>> =
        (0..candidates.len()).map(|_| None).collect();
    for g in groups {
        let done: Vec<(u32, std::result::Result<Assigned, Failure>)> = g
            .members
            .par_iter()
            .map(|&i| {
                let c = &candidates[i as usize];
                let r = match windows.get(c.window) {
                    Some(window) => assign(config, table, g, c, window),
                    None => Err(Failure::Error(Error::internal(
                        "dataset",
                        "a sample in no window",
                    ))),
                };
                (i, r)
            })
            .collect();
        for (i, r) in done {
            out[i as usize] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Failure::Error(Error::internal(
                    "dataset",
                    "a sample in no group",
                )))
            })
        })
        .collect()
}

/// One sample's scenes: the group's scenes that a search for its tile's
/// box would return (footprint meets the box), less the cloudy ones, then
/// the plan's pick ([`pick_scenes`]); the steps with data; the plan's
/// memory check.
fn assign(
    config: &DatasetConfig,
    table: &Table,
    group: &Group,
    c: &Candidate,
    window: &Window,
) -> std::result::Result<Assigned, Failure> {
    let (req, grid) = (&window.req, &window.grid);
    let bbox = c.bbox();
    // An item that did not convert fails the samples whose search returns it.
    if let Some(&k) = group
        .failed
        .iter()
        .find(|&&k| table.failed[k].0.is_none_or(|b| overlaps(&b, &bbox)))
    {
        return Err(Failure::Item(k));
    }
    // The scenes a search for this tile's box returns: those whose
    // footprint meets the box. Every scene the plan picks is among them
    // (the tile lies in its box), so the box test runs only to count the
    // cloudy scenes the filter leaves out, as a search per sample did.
    let max_cloud = config.filters.max_cloud_cover;
    let mut cloudy = 0;
    let mut rect = None;
    let kept = group.scenes.iter().map(|&k| k as usize).filter(|&k| {
        if !overlaps(&table.boxes[k], &bbox) {
            return false;
        }
        let scene = &table.scenes[k];
        match max_cloud {
            Some(max) if scene.cloud_cover.is_some_and(|cc| cc > max) => {
                let rect = rect.get_or_insert_with(|| {
                    geo::Rect::new(
                        geo::coord! { x: bbox[0], y: bbox[1] },
                        geo::coord! { x: bbox[2], y: bbox[3] },
                    )
                    .to_polygon()
                });
                if scene.footprint.intersects(&*rect) {
                    cloudy += 1;
                }
                false
            }
            _ => true,
        }
    });
    let tile = geo::Polygon::new(geo::LineString::from(c.ring.to_vec()), vec![]);
    let picked = pick_scenes_in(&table.scenes, kept, window.bounds, &tile);
    let scenes: Vec<&Scene> = picked.iter().map(|&k| &table.scenes[k]).collect();
    let bins = bin_members(&scenes, &window.bins);
    let sizes: Vec<usize> = bins.iter().map(Vec::len).collect();
    let need = memory_for(req, grid, window.read_bands, scenes.len(), &sizes);
    check_memory(req, grid, need).map_err(Failure::Error)?;
    let days_with_data = days_with_data(&bins, &scenes, &tile, config.filters.min_footprint_cover);
    Ok(Assigned {
        scenes: picked.iter().map(|&k| k as u32).collect(),
        days_with_data,
        cloudy,
    })
}

/// Every point × window with its tile outline (points major), on the
/// rayon pool; the first bad request in that order is the error.
fn place(
    config: &DatasetConfig,
    points: &[SamplePoint],
    windows: &[(NaiveDate, NaiveDate)],
) -> Result<Vec<Candidate>> {
    let several = windows.len() > 1;
    let placed: Vec<Result<Candidate>> = (0..points.len() * windows.len())
        .into_par_iter()
        .map(|k| {
            let (p, w) = (&points[k / windows.len()], k % windows.len());
            let (a, b) = windows[w];
            let ring = config.request([p.lon, p.lat], a, b)?.grid()?.wgs84_ring()?;
            let id = if several {
                format!("{}@{a}", p.id)
            } else {
                p.id.clone()
            };
            Ok(Candidate {
                id,
                centroid: [p.lon, p.lat],
                window: w,
                ring,
            })
        })
        .collect();
    placed.into_iter().collect()
}

/// Steps whose scenes' footprints cover at least `min_cover` of the tile
/// (any scene at all when `min_cover` is 0).
pub(crate) fn days_with_data(
    bins: &[Vec<usize>],
    scenes: &[&Scene],
    tile: &geo::Polygon<f64>,
    min_cover: f64,
) -> usize {
    if min_cover <= 0.0 {
        return bins.iter().filter(|s| !s.is_empty()).count();
    }
    use geo::{Area, BooleanOps};
    let tile_area = tile.unsigned_area();
    let mut n = 0;
    for step in bins {
        let mut union: Option<geo::MultiPolygon<f64>> = None;
        for &i in step {
            let fp = &scenes[i].footprint;
            union = Some(match union {
                None => fp.clone(),
                Some(u) => u.union(fp),
            });
        }
        if let Some(u) = union {
            let covered = tile.intersection(&u).unsigned_area();
            if tile_area > 0.0 && covered / tile_area >= min_cover - 1e-9 {
                n += 1;
            }
        }
    }
    n
}

fn push_warning(report: &mut DatasetReport, w: String) {
    if report.warnings.contains(&w) {
        return;
    }
    if report.warnings.len() < MAX_WARNINGS {
        report.warnings.push(w);
    } else {
        report.warnings_dropped += 1;
    }
}

pub(crate) fn ring_bbox(ring: &[(f64, f64); 5]) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for &(x, y) in &ring[..4] {
        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
    }
    b
}

pub(crate) fn union_bbox(boxes: impl Iterator<Item = [f64; 4]>) -> [f64; 4] {
    boxes.fold(
        [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ],
        |u, b| {
            [
                u[0].min(b[0]),
                u[1].min(b[1]),
                u[2].max(b[2]),
                u[3].max(b[3]),
            ]
        },
    )
}

pub(crate) fn footprint_bbox(s: &Scene) -> [f64; 4] {
    s.footprint.bounding_rect().map_or(
        [
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::INFINITY,
        ],
        |r| [r.min().x, r.min().y, r.max().x, r.max().y],
    )
}

/// Whether two lon/lat boxes meet (edges included).
pub(crate) fn overlaps(a: &[f64; 4], b: &[f64; 4]) -> bool {
    a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}
