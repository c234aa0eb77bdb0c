//! What a stack would read, without reading it: [`DryRun`], a serializable
//! summary of a [`StackPlan`] — steps and their items, the grid, every
//! window with its IFD, tiles, bytes and requests, and totals. Built from the
//! plan alone (nothing fetched), or with the COG headers (only headers
//! fetched), which give the overview choice, the tiles and their exact byte
//! counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::cog::CogReader;
use crate::error::Result;
use crate::fetch::coalesce;
use crate::geo::grid::{GeoTransform, PixelWindow};
use crate::stac::catalog::Catalog;
use crate::stac::scene::{AssetFormat, CfUse};
use crate::stack::load::plan_stack_with;
use crate::stack::plan::StackPlan;
use crate::stack::read::{zarr_radiometry, zarr_reader};
use crate::stack::request::StackRequest;
use crate::units::Epsg;
use crate::zarr::meta::ArrayMeta;

/// What a stack would read, and what finding it out fetched: the JSON that
/// `tilestack stack --dry-run` prints.
///
/// Made by [`StackPlan::dry_run`] (from the plan alone: nothing fetched),
/// [`StackPlan::dry_run_with_headers`] (the COG headers fetched, nothing
/// else) or [`dry_run`] (search, plan, headers).
///
/// With headers, `totals.estimated_bytes` and `totals.estimated_requests`
/// are what a [`StackPlan::load`] with a cold reader (no cached tiles, same
/// coalesce gap) fetches for pixels, exactly, barring retries: the byte
/// ranges of the windows' tiles from the headers' tile byte counts, merged
/// into requests by the reader's own [`coalesce`] rule. A load also fetches
/// the headers, as the dry run did (`fetched.header_bytes`), unless its
/// reader has them already.
///
/// # Examples
/// ```
/// use tilestack::{BandName, StackPlan, StackRequest};
/// let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04,B03")?, day(1), day(3))?;
/// let dry = StackPlan::new(&[], &req)?.dry_run(); // no scenes: three empty days
/// assert_eq!(dry.shape, [3, 2, 256, 256]);
/// assert_eq!(dry.grid.epsg.code(), 32610);
/// assert_eq!((dry.totals.scenes, dry.totals.windows, dry.fetched.headers), (0, 0, 0));
/// assert!(dry.warnings[0].contains("no scene intersects"));
/// let json = serde_json::to_value(&dry).unwrap();
/// assert_eq!(json["steps"][0]["start"], "2019-08-01");
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// `[T, C, H, W]` of the stack ([`StackPlan::shape`]).
    pub shape: [usize; 4],
    /// The requested bands, in output order.
    pub bands: Vec<String>,
    /// The bands read: the requested ones, then the cloud band if extra.
    pub read_bands: Vec<String>,
    /// The output grid.
    pub grid: GridSummary,
    /// The time steps (days, or cadence bins) and their scenes.
    pub steps: Vec<StepSummary>,
    /// The scenes, in time order, with the asset each band resolves to.
    pub scenes: Vec<SceneSummary>,
    /// One entry per scene × band window to read, in plan order.
    pub reads: Vec<ReadSummary>,
    /// Sums over the reads.
    pub totals: Totals,
    /// What making this summary fetched.
    pub fetched: Fetched,
    /// Non-fatal findings: the plan's warnings, then the dry run's own.
    pub warnings: Vec<String>,
}

impl DryRun {
    /// The summary of the stack with a mask band burned last (as
    /// [`build`](crate::stack::load::build) with a [`Mask`](crate::geo::rasterize::Mask) makes it): one
    /// more band, named `mask`, in the shape and the bands (the memory
    /// always counts one).
    /// Nothing is read for it.
    ///
    /// ```
    /// # use tilestack::{BandName, StackPlan, StackRequest};
    /// # let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
    /// # let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(3))?;
    /// let dry = StackPlan::new(&[], &req)?.dry_run().with_mask();
    /// assert_eq!(dry.shape, [3, 2, 256, 256]);
    /// assert_eq!(dry.bands.last().map(String::as_str), Some("mask"));
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    pub fn with_mask(mut self) -> DryRun {
        // The memory already has room for it (`StackPlan::memory_bytes`).
        self.shape[1] += 1;
        self.bands.push("mask".into());
        self
    }
}

/// The output grid of a [`DryRun`].
///
/// ```
/// # use tilestack::{BandName, StackPlan, StackRequest};
/// # let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// # let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(1))?;
/// let g = StackPlan::new(&[], &req)?.dry_run().grid;
/// assert_eq!((g.width, g.height, g.resolution), (256, 256, 10.0));
/// assert_eq!(g.bounds[2] - g.bounds[0], 2560.0);
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridSummary {
    /// EPSG code of the grid's CRS.
    pub epsg: Epsg,
    /// Pixel → CRS transform.
    pub transform: GeoTransform,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Pixel size, CRS units.
    pub resolution: f64,
    /// `[left, bottom, right, top]`, CRS units.
    pub bounds: [f64; 4],
}

/// One time step of a [`DryRun`]: its days and its scenes.
///
/// ```
/// # use tilestack::{BandName, StackPlan, StackRequest};
/// # let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// # let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(2))?;
/// let s = &StackPlan::new(&[], &req)?.dry_run().steps[1];
/// assert_eq!((s.start, s.end, s.count), (day(2), day(3), 0));
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepSummary {
    /// First day of the step.
    pub start: NaiveDate,
    /// The day after the step's last day (exclusive).
    pub end: NaiveDate,
    /// The ids of the step's items, in time order (the stack's `items`).
    pub items: Vec<String>,
    /// `items.len()`.
    pub count: usize,
}

/// One scene of a [`DryRun`].
///
/// ```
/// let s = tilestack::stack::SceneSummary {
///     id: "S2B_1".into(),
///     datetime: "2019-08-01T18:49:00Z".parse().unwrap(),
///     cloud_cover: Some(3.5),
///     assets: [("B04".to_string(), "red".to_string())].into(),
/// };
/// assert_eq!(serde_json::to_value(&s).unwrap()["assets"]["B04"], "red");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SceneSummary {
    /// Item id.
    pub id: String,
    /// Acquisition time, UTC.
    pub datetime: DateTime<Utc>,
    /// Scene-level `eo:cloud_cover`, percent.
    pub cloud_cover: Option<f64>,
    /// Band (as requested) → the item's asset key that answers it.
    pub assets: BTreeMap<String, String>,
}

/// One window of a [`DryRun`]: a scene × band read.
///
/// `ifd`, `window`, `tiles`, `bytes` and `requests` come from the COG header
/// when the dry run read headers; without headers `tiles`, `bytes` and
/// `requests` are `None`, and so is `ifd` where an overview might be read
/// (`window` is then the full-resolution one).
///
/// ```
/// let r = tilestack::stack::ReadSummary {
///     item: "S2B_1".into(), band: "B04".into(), asset: "B04".into(),
///     href: "http://127.0.0.1:8080/data/S2B_1/B04.tif".into(),
///     ifd: Some(0), window: tilestack::geo::PixelWindow::new(10, 20, 256, 256),
///     tile_size: Some([256, 256]), tiles: Some(4), bytes: Some(90_000), requests: Some(2),
///     dn_offset: None, scale_offset: None,
/// };
/// assert_eq!(serde_json::to_value(&r).unwrap()["window"]["col_off"], 10);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadSummary {
    /// Item id.
    pub item: String,
    /// Band, as requested.
    pub band: String,
    /// The item's asset key the band resolved to.
    pub asset: String,
    /// Asset href (unsigned).
    pub href: String,
    /// IFD read: 0 = full resolution, else an overview; `None` when that
    /// needs the header and none was read.
    pub ifd: Option<usize>,
    /// Source pixel window at `ifd` (full resolution when `ifd` is `None`),
    /// clipped to the image. Empty (all zero) when the window misses the
    /// chosen overview: nothing is read.
    pub window: PixelWindow,
    /// `[width, height]` of the COG's internal tiles at `ifd`.
    pub tile_size: Option<[usize; 2]>,
    /// Internal tiles the window intersects (sparse ones included).
    pub tiles: Option<usize>,
    /// Bytes fetched for those tiles, coalesced as the reader does (tiles
    /// another read fetches first are counted there).
    pub bytes: Option<u64>,
    /// Range requests for those tiles, after coalescing.
    pub requests: Option<u64>,
    /// Sentinel-2 harmonization: DN subtracted (clipping at it) before the scale.
    pub dn_offset: Option<f64>,
    /// Scale and offset applied, `[scale, offset]`.
    pub scale_offset: Option<[f64; 2]>,
}

/// Sums over a [`DryRun`]'s reads.
///
/// ```
/// # use tilestack::{BandName, StackPlan, StackRequest};
/// # let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// # let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(1))?;
/// let t = StackPlan::new(&[], &req)?.dry_run().totals;
/// assert_eq!((t.windows, t.tiles, t.estimated_bytes), (0, None, 0));
/// assert_eq!(t.basis, "heuristic");
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    /// Scenes in the stack.
    pub scenes: usize,
    /// Windows to read (scene × band pairs whose asset covers the tile).
    pub windows: usize,
    /// Source pixels of the windows.
    pub source_pixels: u64,
    /// Distinct internal tiles to fetch (headers read), else `None`.
    pub tiles: Option<usize>,
    /// Pixel bytes to fetch: exact from the headers' tile byte counts, or
    /// the plan's rough [`StackPlan::estimated_bytes`] without headers.
    pub estimated_bytes: u64,
    /// Range requests for pixels (headers read), else `None`.
    pub estimated_requests: Option<u64>,
    /// How the estimates were made: `"tile byte counts"` or `"heuristic"`.
    pub basis: String,
    /// Memory the stack takes while it loads ([`StackPlan::memory_bytes`]).
    pub memory_bytes: u64,
}

/// What making a [`DryRun`] fetched: catalog items and COG headers, never
/// pixels.
///
/// ```
/// # use tilestack::{BandName, StackPlan, StackRequest};
/// # let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// # let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(1))?;
/// let f = StackPlan::new(&[], &req)?.dry_run().fetched;
/// assert_eq!((f.headers, f.header_requests, f.header_bytes, f.pixel_bytes), (0, 0, 0, 0));
/// # Ok::<(), tilestack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fetched {
    /// Items the catalog returned (before footprint filtering); `None` when
    /// the summary was made from a plan.
    pub catalog_items: Option<usize>,
    /// COG headers consulted (distinct hrefs); 0 without headers.
    pub headers: usize,
    /// HTTP requests those headers took (0 for headers the reader had in
    /// memory or in its header store).
    pub header_requests: u64,
    /// Bytes those requests received.
    pub header_bytes: u64,
    /// Pixel (tile) bytes fetched: always 0, the point of a dry run.
    pub pixel_bytes: u64,
}

impl StackPlan {
    /// The plan's [`DryRun`], fetching nothing: IFDs where no overview can
    /// apply, windows, and the rough [`estimated_bytes`](Self::estimated_bytes);
    /// no tile counts.
    ///
    /// ```
    /// # use tilestack::{BandName, StackPlan, StackRequest};
    /// # let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
    /// # let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(1))?;
    /// assert_eq!(StackPlan::new(&[], &req)?.dry_run().fetched.headers, 0);
    /// # Ok::<(), tilestack::Error>(())
    /// ```
    pub fn dry_run(&self) -> DryRun {
        let reads = self
            .reads
            .iter()
            .map(|rp| {
                let ifd = (!self.may_use_overview(rp)).then_some(0);
                self.read_summary(rp, ifd, rp.window)
            })
            .collect();
        let totals = Totals {
            tiles: None,
            estimated_bytes: self.estimated_bytes(),
            estimated_requests: None,
            basis: "heuristic".into(),
            ..self.base_totals()
        };
        self.summary(reads, totals, Fetched::none(), Vec::new())
    }

    /// The plan's [`DryRun`] with every asset's COG header read through
    /// `reader` (its index, its header store, else fetched — nothing else is
    /// fetched): the IFD each read takes, its window there, the tiles it
    /// intersects and their bytes and requests, coalesced with the reader's
    /// gap. `fetched` counts the header requests and bytes as the reader's
    /// client metrics moved (so a client shared with other work at the same
    /// time counts that too).
    ///
    /// # Errors
    /// The first header that cannot be read, naming its href.
    ///
    /// # Examples
    /// ```no_run
    /// # tokio_test::block_on(async {
    /// use tilestack::cog::TileCache;
    /// use tilestack::fetch::RetryConfig;
    /// use tilestack::{BandName, Catalog, CogReader, HttpRangeClient, StackRequest, plan_stack};
    /// let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
    /// let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04")?, day(1), day(10))?;
    /// let (plan, _) = plan_stack(&Catalog::stac("http://127.0.0.1:8090/", "sentinel-2-l2a")?, &req).await?;
    /// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30));
    /// let dry = plan.dry_run_with_headers(&reader).await?;
    /// println!("{} tiles, {} bytes", dry.totals.tiles.unwrap_or(0), dry.totals.estimated_bytes);
    /// assert_eq!(reader.cache().len(), 0); // no tile was fetched
    /// # Ok::<(), tilestack::Error>(())
    /// # });
    /// ```
    pub async fn dry_run_with_headers(&self, reader: &CogReader) -> Result<DryRun> {
        let metrics = reader.client().metrics().clone();
        let (r0, b0) = (metrics.requests(), metrics.bytes());
        let hrefs_of = |zarr: bool| {
            let mut hrefs: Vec<&str> = self
                .reads
                .iter()
                .filter(|r| matches!(r.format, AssetFormat::Zarr(_)) == zarr)
                .map(|r| r.href.as_str())
                .collect();
            hrefs.sort_unstable();
            hrefs.dedup();
            hrefs
        };
        let headers: HashMap<&str, Arc<crate::cog::header::CogHeader>> =
            futures::stream::iter(hrefs_of(false))
                .map(|href| async move { reader.header(href).await.map(|h| (href, h)) })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_>>()?;
        // Zarr arrays: their metadata (the store's consolidated metadata,
        // else the array's own documents) in place of a header.
        let zarr = zarr_reader(reader);
        let arrays: HashMap<&str, Arc<ArrayMeta>> = futures::stream::iter(hrefs_of(true))
            .map(|href| {
                let zarr = &zarr;
                async move { zarr.array(href).await.map(|m| (href, m)) }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let fetched = Fetched {
            catalog_items: None,
            headers: headers.len() + arrays.len(),
            header_requests: metrics.requests().saturating_sub(r0),
            header_bytes: metrics.bytes().saturating_sub(b0),
            pixel_bytes: 0,
        };
        let gap = reader.client().coalesce_gap();
        let mut seen: HashSet<(&str, usize, usize, usize)> = HashSet::new();
        let mut reads = Vec::with_capacity(self.reads.len());
        let mut warnings = Vec::new();
        let (mut tiles_total, mut bytes_total, mut requests_total) = (0usize, 0u64, 0u64);
        for rp in &self.reads {
            if let (AssetFormat::Zarr(cf_use), Some(meta)) =
                (rp.format, arrays.get(rp.href.as_str()))
            {
                reads.push(self.zarr_read_summary(rp, cf_use, meta));
                continue;
            }
            let h = headers.get(rp.href.as_str()).map(Arc::as_ref);
            let Some((ifd, window, _)) = self.read_level(rp, h)? else {
                warnings.push(format!(
                    "{} {}: the window misses the overview chosen for {}; nothing is read",
                    self.scenes[rp.scene].id, self.read_bands[rp.band], rp.href
                ));
                let mut r = self.read_summary(rp, None, PixelWindow::default());
                (r.tiles, r.bytes, r.requests) = (Some(0), Some(0), Some(0));
                reads.push(r);
                continue;
            };
            let mut r = self.read_summary(rp, Some(ifd), window);
            let info = h.and_then(|h| h.ifds.get(ifd));
            if let Some(info) = info.filter(|i| i.tile_width > 0 && i.tile_height > 0) {
                let (tw, th) = (info.tile_width, info.tile_height);
                let xy: Vec<(usize, usize)> = match window.clip(info.width, info.height) {
                    Some(c) => (c.row_off / th..=(c.row_end() - 1) / th)
                        .flat_map(|y| {
                            (c.col_off / tw..=(c.col_end() - 1) / tw).map(move |x| (x, y))
                        })
                        .collect(),
                    None => Vec::new(),
                };
                // Tiles an earlier read fetches come from the cache here.
                let fresh: Vec<(usize, usize)> = xy
                    .iter()
                    .copied()
                    .filter(|&(x, y)| seen.insert((rp.href.as_str(), ifd, x, y)))
                    .collect();
                let ranges: Vec<_> = fresh
                    .iter()
                    .filter_map(|&(x, y)| info.tile_range(x, y))
                    .collect();
                let merged = coalesce(&ranges, gap);
                let bytes = merged.iter().map(|m| m.end - m.start).sum::<u64>();
                tiles_total += fresh.len();
                bytes_total += bytes;
                requests_total += merged.len() as u64;
                r.tile_size = Some([tw, th]);
                (r.tiles, r.bytes, r.requests) =
                    (Some(xy.len()), Some(bytes), Some(merged.len() as u64));
            } else {
                warnings.push(format!(
                    "{}: IFD {ifd} is missing or not tiled; the read will fail",
                    rp.href
                ));
            }
            reads.push(r);
        }
        let totals = Totals {
            tiles: Some(tiles_total),
            estimated_bytes: bytes_total,
            estimated_requests: Some(requests_total),
            basis: "tile byte counts".into(),
            ..self.base_totals()
        };
        Ok(self.summary(reads, totals, fetched, warnings))
    }

    fn read_summary(
        &self,
        rp: &crate::stack::plan::ReadPlan,
        ifd: Option<usize>,
        window: PixelWindow,
    ) -> ReadSummary {
        let scene = &self.scenes[rp.scene];
        let band = &self.read_bands[rp.band];
        ReadSummary {
            item: scene.id.clone(),
            band: band.to_string(),
            asset: scene
                .assets
                .get(band)
                .map(|a| a.key.clone())
                .unwrap_or_default(),
            href: rp.href.clone(),
            ifd,
            window,
            tile_size: None,
            tiles: None,
            bytes: None,
            requests: None,
            dn_offset: rp.dn_offset,
            scale_offset: rp.scale_offset.map(|(s, o)| [s, o]),
        }
    }

    /// The summary of a read of a Zarr array, from its metadata: the
    /// (inner) chunks under the window and the radiometry its CF attributes
    /// give; bytes and requests unknown (they need the chunk sizes: v2
    /// objects, v3 shard indexes).
    fn zarr_read_summary(
        &self,
        rp: &crate::stack::plan::ReadPlan,
        cf_use: CfUse,
        meta: &ArrayMeta,
    ) -> ReadSummary {
        let mut r = self.read_summary(rp, Some(0), rp.window);
        let (dn, so) = zarr_radiometry(rp, cf_use, self.request.harmonize, &meta.cf(), meta.dtype);
        r.dn_offset = dn;
        r.scale_offset = so.map(|(s, o)| [s, o]);
        let nd = meta.shape.len();
        let rc = meta.read_chunk_shape();
        if nd >= 2 {
            let dim = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).max(1);
            let (th, tw) = (dim(rc[nd - 2]), dim(rc[nd - 1]));
            let (h, w) = (dim(meta.shape[nd - 2]), dim(meta.shape[nd - 1]));
            r.tile_size = Some([tw, th]);
            r.tiles = Some(match rp.window.clip(w, h) {
                Some(c) => {
                    ((c.col_end() - 1) / tw - c.col_off / tw + 1)
                        * ((c.row_end() - 1) / th - c.row_off / th + 1)
                }
                None => 0,
            });
        }
        r
    }

    fn base_totals(&self) -> Totals {
        Totals {
            scenes: self.scenes.len(),
            windows: self.reads.len(),
            source_pixels: self.source_pixels(),
            tiles: None,
            estimated_bytes: 0,
            estimated_requests: None,
            basis: String::new(),
            memory_bytes: self.memory_bytes(),
        }
    }

    fn summary(
        &self,
        reads: Vec<ReadSummary>,
        totals: Totals,
        fetched: Fetched,
        more_warnings: Vec<String>,
    ) -> DryRun {
        let g = &self.grid;
        let t = &g.transform;
        let (left, bottom, right, top) = g.bounds();
        let grid = GridSummary {
            epsg: g.epsg,
            transform: *t,
            width: g.width,
            height: g.height,
            resolution: t.dx.abs(),
            bounds: [left, bottom, right, top],
        };
        let steps = self
            .bins
            .iter()
            .map(|((start, end), idx)| StepSummary {
                start: *start,
                end: *end,
                items: idx.iter().map(|&i| self.scenes[i].id.clone()).collect(),
                count: idx.len(),
            })
            .collect();
        let scenes = self
            .scenes
            .iter()
            .map(|s| SceneSummary {
                id: s.id.clone(),
                datetime: s.datetime,
                cloud_cover: s.cloud_cover,
                assets: s
                    .assets
                    .iter()
                    .map(|(b, a)| (b.to_string(), a.key.clone()))
                    .collect(),
            })
            .collect();
        let mut warnings: Vec<String> = self.warnings.iter().map(|w| w.to_string()).collect();
        warnings.extend(more_warnings);
        DryRun {
            shape: self.shape(),
            bands: self.request.bands.iter().map(|b| b.to_string()).collect(),
            read_bands: self.read_bands.iter().map(|b| b.to_string()).collect(),
            grid,
            steps,
            scenes,
            reads,
            totals,
            fetched,
            warnings,
        }
    }
}

impl Fetched {
    fn none() -> Fetched {
        Fetched {
            catalog_items: None,
            headers: 0,
            header_requests: 0,
            header_bytes: 0,
            pixel_bytes: 0,
        }
    }
}

/// Search (or take items), plan, and summarize the stack `req` asks for
/// without reading a pixel: with `reader`, its COG headers are read too
/// ([`StackPlan::dry_run_with_headers`]), else nothing more is fetched
/// ([`StackPlan::dry_run`]). With `reader`, the Zarr assets whose items
/// declare no grid (EOPF's Sample Service items) get the one their stores'
/// metadata declares ([`plan_stack_with`](crate::stack::plan_stack_with));
/// without it such an asset is an error naming its item.
/// `fetched.catalog_items` counts the catalog's items.
///
/// # Errors
/// Search, item conversion or planning errors, and with `reader` the first
/// header that cannot be read, each naming its culprit.
///
/// # Examples
/// ```no_run
/// # tokio_test::block_on(async {
/// use tilestack::cog::TileCache;
/// use tilestack::fetch::RetryConfig;
/// use tilestack::stack::dry_run;
/// use tilestack::{BandName, Catalog, CogReader, HttpRangeClient, StackRequest};
/// let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
/// let req = StackRequest::new([-122.33, 37.81], BandName::parse_list("B04,B03,B02")?, day(1), day(30))?;
/// let reader = CogReader::new(HttpRangeClient::new(RetryConfig::default())?, TileCache::new(1 << 30));
/// let cat = Catalog::stac("http://127.0.0.1:8090/", "sentinel-2-l2a")?;
/// let dry = dry_run(&cat, &req, Some(&reader)).await?;
/// println!("{}", serde_json::to_string_pretty(&dry).unwrap());
/// # Ok::<(), tilestack::Error>(())
/// # });
/// ```
pub async fn dry_run(
    catalog: &Catalog,
    req: &StackRequest,
    reader: Option<&CogReader>,
) -> Result<DryRun> {
    let (plan, items) = plan_stack_with(catalog, req, reader).await?;
    let mut dry = match reader {
        Some(r) => plan.dry_run_with_headers(r).await?,
        None => plan.dry_run(),
    };
    dry.fetched.catalog_items = Some(items.len());
    Ok(dry)
}
