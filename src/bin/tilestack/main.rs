//! The `tilestack` command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tilestack::search::{SearchRequest, SearchResults, StacClient};
use tilestack::server::WorldServer;
use tilestack::world::{Recipe, World};

/// Daily satellite tile stacks from STAC + COGs, for burn training loops.
#[derive(Debug, Parser)]
#[command(name = "tilestack", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the whole job on the embedded demo world (generated once, cached, served on 127.0.0.1).
    Demo {
        /// Output folder.
        #[arg(long, default_value = "demo-out")]
        out: PathBuf,
        /// Use this recipe instead of the embedded Oakland port one.
        #[arg(long)]
        recipe: Option<PathBuf>,
    },
    /// Generate a demo world (COGs, STAC items, labels) into a folder.
    World {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Recipe TOML (default: the embedded Oakland port recipe).
        #[arg(long)]
        recipe: Option<PathBuf>,
    },
    /// Serve a world folder (STAC API + COGs with Range support) on 127.0.0.1 until interrupted.
    Serve {
        /// A folder written by `tilestack world`.
        dir: PathBuf,
        /// Port (0 = any free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Build a daily tile stack around a centroid: stack.safetensors + metadata.csv.
    Stack(Box<StackArgs>),
    /// Search a STAC API and list the items.
    Search {
        /// STAC API landing page URL.
        #[arg(long)]
        stac: String,
        /// Collection id.
        #[arg(long)]
        collection: String,
        /// Bounding box W,S,E,N in degrees.
        #[arg(long, conflicts_with = "centroid", allow_hyphen_values = true)]
        bbox: Option<String>,
        /// Centroid LON,LAT: searches the 2816 m square around it (256 px × 10 m × 1.1).
        #[arg(long, allow_hyphen_values = true)]
        centroid: Option<String>,
        /// Time range START/END (dates or RFC 3339, `..` for open ends).
        #[arg(long)]
        time: String,
        /// `query` extension filter as JSON, e.g. '{"eo:cloud_cover":{"lt":20}}'.
        #[arg(long)]
        query: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Stop after this many items.
        #[arg(long, default_value_t = 10_000)]
        max_items: usize,
        /// Save the items as an ItemCollection snapshot (stacks can be built from it offline).
        #[arg(long)]
        save: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct StackArgs {
    /// STAC API landing page URL.
    #[arg(long, required_unless_present = "snapshot")]
    stac: Option<String>,
    /// Build from a saved ItemCollection snapshot instead of a STAC API.
    #[arg(long, conflicts_with = "stac")]
    snapshot: Option<PathBuf>,
    /// Collection id.
    #[arg(long, default_value = "sentinel-2-l2a")]
    collection: String,
    /// Tile centre LON,LAT (degrees).
    #[arg(long, allow_hyphen_values = true)]
    centroid: String,
    /// Bands (asset keys), comma-separated, in output order.
    #[arg(long)]
    bands: String,
    /// Time range START/END, inclusive days (YYYY-MM-DD/YYYY-MM-DD).
    #[arg(long)]
    time: String,
    /// Pixel size in metres.
    #[arg(long, default_value_t = 10.0)]
    resolution: f64,
    /// Tile side in pixels.
    #[arg(long, default_value_t = 256)]
    tile_size: usize,
    /// Target EPSG (default: the centroid's UTM zone).
    #[arg(long)]
    epsg: Option<u32>,
    /// GeoJSON polygons rasterized as the last band `mask` (features with `datetime` burn only their day).
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Same-step fusion: mean, first, least-cloudy, median.
    #[arg(long, default_value = "mean")]
    fuse: String,
    /// Time steps: day, month or Nd (e.g. 5d), anchored at the start.
    #[arg(long, default_value = "day")]
    cadence: String,
    /// Resampling: nearest or bilinear.
    #[arg(long, default_value = "nearest")]
    resampling: String,
    /// Band read for the tile's own cloud fraction (e.g. SCL).
    #[arg(long)]
    cloud_band: Option<String>,
    /// Min–max normalize each (day, band) over the tile (categorical bands untouched).
    #[arg(long)]
    normalize: bool,
    /// Output folder.
    #[arg(long, default_value = "stack-out")]
    out: PathBuf,
    /// Tile cache budget in MiB.
    #[arg(long, default_value_t = 1024)]
    cache_mib: u64,
}

fn parse_days(s: &str) -> Result<(chrono::NaiveDate, chrono::NaiveDate)> {
    let parse = |d: &str| {
        chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
            .with_context(|| format!("--time {s:?}: {d:?} is not YYYY-MM-DD"))
    };
    match s.split_once('/') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a {
                bail!("invalid time range: {s:?}: end is before start");
            }
            Ok((a, b))
        }
        None => bail!("--time {s:?}: expected START/END"),
    }
}

/// The request a `StackArgs` describes.
fn stack_request(a: &StackArgs) -> Result<tilestack::pipeline::StackRequest> {
    let [lon, lat] = parse_floats::<2>(&a.centroid, "centroid")?;
    let (start, end) = parse_days(&a.time)?;
    let mut req = tilestack::pipeline::StackRequest::new(
        [lon, lat],
        tilestack::BandName::parse_list(&a.bands)?,
        start,
        end,
    )?;
    req.resolution = tilestack::Resolution::new(a.resolution)?;
    req.tile_size = a.tile_size;
    req.epsg = a.epsg.map(tilestack::Epsg::new).transpose()?;
    req.fuse = a.fuse.parse()?;
    req.cadence = a.cadence.parse()?;
    req.resampling = a.resampling.parse()?;
    req.cloud_band = a
        .cloud_band
        .as_deref()
        .map(tilestack::BandName::new)
        .transpose()?;
    req.normalize = a.normalize;
    req.validate()?;
    Ok(req)
}

/// Builds a stack and writes `stack.safetensors` + `metadata.csv` into `out`.
async fn run_stack(
    catalog: &tilestack::pipeline::Catalog,
    req: &tilestack::pipeline::StackRequest,
    mask: Option<&tilestack::rasterize::Mask>,
    out: &std::path::Path,
    cache_bytes: u64,
) -> Result<tilestack::pipeline::Built> {
    let client = tilestack::fetch::HttpRangeClient::new(tilestack::fetch::RetryConfig::default())?;
    let reader =
        tilestack::cog::CogReader::new(client, tilestack::cog::TileCache::new(cache_bytes));
    let built = tilestack::pipeline::build(catalog, req, &reader, mask).await?;
    for w in &built.plan.warnings {
        eprintln!("warning: {w}");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    built
        .stack
        .write_safetensors(&out.join("stack.safetensors"))?;
    built.stack.write_metadata_csv(&out.join("metadata.csv"))?;
    let m = reader.client().metrics();
    eprintln!(
        "fetched {} requests, {:.1} MB ({} scenes, {} windows)",
        m.requests(),
        m.bytes() as f64 / 1e6,
        built.plan.scenes.len(),
        built.plan.reads.len()
    );
    Ok(built)
}

fn parse_floats<const N: usize>(s: &str, what: &str) -> Result<[f64; N]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--{what} {s:?}: expected {N} comma-separated numbers"))?;
    v.try_into()
        .map_err(|_| anyhow::anyhow!("--{what} {s:?}: expected {N} comma-separated numbers"))
}

fn load_recipe(path: &Option<PathBuf>) -> Result<Recipe> {
    Ok(match path {
        Some(p) => Recipe::from_file(p)?,
        None => Recipe::oakland(),
    })
}

fn print_results(res: &SearchResults) {
    println!(
        "{:<62} {:<20} {:>7} {:>11}",
        "id", "datetime", "cloud%", "crs"
    );
    for it in &res.items {
        let dt = it
            .properties
            .datetime
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let extra = &it.properties.additional_fields;
        let cloud = extra
            .get("eo:cloud_cover")
            .and_then(|v| v.as_f64())
            .map(|c| format!("{c:.1}"))
            .unwrap_or_else(|| "-".into());
        let crs = extra
            .get("proj:code")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| {
                extra
                    .get("proj:epsg")
                    .and_then(|v| v.as_u64())
                    .map(|e| format!("EPSG:{e}"))
            })
            .unwrap_or_else(|| "-".into());
        println!("{:<62} {:<20} {:>7} {:>11}", it.id, dt, cloud, crs);
    }
    for w in &res.warnings {
        eprintln!("warning: {w}");
    }
    println!("total: {} items in {} pages", res.items.len(), res.pages);
}

async fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::World { out, recipe } => {
            let recipe = load_recipe(&recipe)?;
            let t = Instant::now();
            let w = World::generate(&recipe, &out)?;
            println!(
                "wrote {} scenes ({:.1} MB of COGs) to {} in {:.1} s",
                w.manifest().scenes.len(),
                w.manifest().cog_bytes as f64 / 1e6,
                out.display(),
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::Serve { dir, port } => {
            let world = World::open(&dir)?;
            let server = WorldServer::start_on(&world, &format!("127.0.0.1:{port}")).await?;
            println!("STAC API: {}", server.stac_url());
            println!("COGs:     {}/data/", server.url());
            println!("serving {} until interrupted (Ctrl-C)", dir.display());
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            server.shutdown().await;
        }
        Cmd::Search {
            stac,
            collection,
            bbox,
            centroid,
            time,
            query,
            limit,
            max_items,
            save,
        } => {
            let bbox = match (bbox, centroid) {
                (Some(b), _) => parse_floats::<4>(&b, "bbox")?,
                (None, Some(c)) => {
                    let [lon, lat] = parse_floats::<2>(&c, "centroid")?;
                    tilestack::bbox_around(lon, lat, 256.0 * 10.0 * 1.1)?
                }
                (None, None) => bail!("give --bbox W,S,E,N or --centroid LON,LAT"),
            };
            let mut req = SearchRequest::new(collection).bbox(bbox).datetime(&time)?;
            req.limit = Some(limit);
            if let Some(q) = query {
                req = req.query(
                    serde_json::from_str(&q)
                        .with_context(|| format!("--query {q:?} is not JSON"))?,
                );
            }
            let mut client = StacClient::new(&stac)?;
            client.max_items = max_items;
            let res = client.search(&req).await?;
            print_results(&res);
            if let Some(p) = save {
                tilestack::search::save_snapshot(&res.items, &p)?;
                println!("saved {} items to {}", res.items.len(), p.display());
            }
        }
        Cmd::Stack(a) => {
            let t = Instant::now();
            let req = stack_request(&a)?;
            let mask = a
                .mask
                .as_deref()
                .map(tilestack::rasterize::Mask::from_file)
                .transpose()?;
            let catalog = match (&a.stac, &a.snapshot) {
                (_, Some(p)) => {
                    tilestack::pipeline::Catalog::Items(tilestack::search::load_snapshot(p)?)
                }
                (Some(u), None) => tilestack::pipeline::Catalog::Stac {
                    url: u.clone(),
                    collection: a.collection.clone(),
                },
                (None, None) => bail!("give --stac URL or --snapshot FILE"),
            };
            let built = run_stack(&catalog, &req, mask.as_ref(), &a.out, a.cache_mib << 20).await?;
            let shape = built.stack.data.shape().to_vec();
            println!(
                "stack {:?} (time, band, y, x) in {} from {} scenes -> {} in {:.2} s",
                shape,
                built.stack.grid.epsg,
                built.plan.scenes.len(),
                a.out.join("stack.safetensors").display(),
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::Demo { out, recipe } => {
            let recipe = load_recipe(&recipe)?;
            let t0 = Instant::now();
            let world = tokio::task::spawn_blocking(move || World::cached(&recipe)).await??;
            let t_world = t0.elapsed();
            println!(
                "world:  {} ({} scenes) in {:.1} s",
                world.dir().display(),
                world.manifest().scenes.len(),
                t_world.as_secs_f64()
            );
            let server = WorldServer::start(&world).await?;
            println!("server: STAC API at {} (127.0.0.1 only)", server.stac_url());
            let t1 = Instant::now();
            let [lon, lat] = world.manifest().centroid;
            let bbox = tilestack::bbox_around(lon, lat, 256.0 * 10.0 * 1.1)?;
            let req = SearchRequest::new(world.manifest().collection.clone())
                .bbox(bbox)
                .datetime("2019-08-01/2019-08-30")?;
            let res = StacClient::new(&server.stac_url())?.search(&req).await?;
            print_results(&res);
            println!("search: {:.2} s", t1.elapsed().as_secs_f64());
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let snap = out.join("items.json");
            tilestack::search::save_snapshot(&res.items, &snap)?;
            println!("wrote:  {} (catalog snapshot)", snap.display());
            server.shutdown().await;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
