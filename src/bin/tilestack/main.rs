//! The `tilestack` command line.

mod bench;

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
    /// Measure a stack: time to first stack, warm repeats, throughput over a
    /// list of centroids and the physical limit; prints one JSON object.
    Bench {
        /// The stack measured (`--out` and `--repeat` are not used).
        #[command(flatten)]
        stack: Box<StackArgs>,
        /// What to measure besides the first stack.
        #[command(flatten)]
        bench: bench::BenchArgs,
    },
    /// Draw a stack: the grid of daily RGB tiles and a cloud/NaN time series.
    Plot {
        /// A stack.safetensors written by `tilestack stack` or `tilestack demo`.
        stack: PathBuf,
        /// At most this many days.
        #[arg(long)]
        days: Option<usize>,
        /// First day shown (YYYY-MM-DD).
        #[arg(long)]
        start: Option<String>,
        /// Tiles per row.
        #[arg(long, default_value_t = 6)]
        cols: usize,
        /// Bands shown as R,G,B.
        #[arg(long, default_value = "B04,B03,B02")]
        rgb: String,
        /// Output PNG (the time series goes next to it as <name>-timeseries.png).
        #[arg(long, default_value = "days.png")]
        out: PathBuf,
    },
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
    /// Keep COG headers in this folder across runs (later runs open those
    /// files with zero header requests; a file that changed is detected by
    /// its size/ETag and re-read).
    #[arg(long)]
    header_cache: Option<PathBuf>,
    /// A window that still fails after retries becomes NaN (listed in the
    /// stack's `read_errors` metadata) instead of failing the stack.
    #[arg(long)]
    errors_as_nodata: bool,
    /// Build the stack this many times in one process (the repeats are warm:
    /// headers indexed, tiles cached) and report each repeat's time.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Sign asset hrefs at read time: `planetary-computer` (SAS tokens; token
    /// endpoint from $PC_SDK_SAS_URL, key from $PC_SDK_SUBSCRIPTION_KEY).
    #[arg(long)]
    sign: Option<String>,
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
    req.errors_as_nodata = a.errors_as_nodata;
    req.validate()?;
    Ok(req)
}

/// One reader for a whole command: HTTP client (signed if asked) + tile cache.
fn make_reader(
    cache_bytes: u64,
    sign: Option<&str>,
    header_cache: Option<&std::path::Path>,
) -> Result<tilestack::cog::CogReader> {
    let mut client =
        tilestack::fetch::HttpRangeClient::new(tilestack::fetch::RetryConfig::default())?;
    match sign {
        None | Some("none") => {}
        Some("planetary-computer" | "pc") => {
            let signer = tilestack::sign::PlanetaryComputerSigner::new(
                tilestack::sign::PcSignerConfig::default(),
            );
            client = client.with_signer(std::sync::Arc::new(signer));
        }
        Some(other) => bail!("--sign {other:?}: use planetary-computer or none"),
    }
    let mut reader =
        tilestack::cog::CogReader::new(client, tilestack::cog::TileCache::new(cache_bytes));
    if let Some(dir) = header_cache {
        reader = reader.with_header_store(tilestack::header_store::HeaderStore::open(dir)?);
    }
    Ok(reader)
}

/// What `stack` and `bench` build from their `StackArgs`: the request, the
/// catalog, the mask and the one reader.
fn stack_setup(
    a: &StackArgs,
) -> Result<(
    tilestack::pipeline::StackRequest,
    tilestack::pipeline::Catalog,
    Option<tilestack::rasterize::Mask>,
    tilestack::cog::CogReader,
)> {
    let req = stack_request(a)?;
    let (catalog, mask) = stack_inputs(a)?;
    let reader = make_reader(
        a.cache_mib << 20,
        a.sign.as_deref(),
        a.header_cache.as_deref(),
    )?;
    Ok((req, catalog, mask, reader))
}

/// The catalog and mask a `StackArgs` names.
fn stack_inputs(
    a: &StackArgs,
) -> Result<(
    tilestack::pipeline::Catalog,
    Option<tilestack::rasterize::Mask>,
)> {
    let mask = a
        .mask
        .as_deref()
        .map(tilestack::rasterize::Mask::from_file)
        .transpose()?;
    let catalog = match (&a.stac, &a.snapshot) {
        (_, Some(p)) => tilestack::pipeline::Catalog::Items(tilestack::search::load_snapshot(p)?),
        (Some(u), None) => tilestack::pipeline::Catalog::stac(u, &a.collection)?,
        (None, None) => bail!("give --stac URL or --snapshot FILE"),
    };
    Ok((catalog, mask))
}

/// Builds a stack and writes `stack.safetensors` + `metadata.csv` into `out`.
async fn run_stack(
    catalog: &tilestack::pipeline::Catalog,
    req: &tilestack::pipeline::StackRequest,
    mask: Option<&tilestack::rasterize::Mask>,
    out: &std::path::Path,
    reader: &tilestack::cog::CogReader,
    repeat: usize,
) -> Result<tilestack::pipeline::Built> {
    let mut built = tilestack::pipeline::build(catalog, req, reader, mask).await?;
    // Warm repeats: same process, same reader (header index and tile cache hot).
    for k in 1..repeat.max(1) {
        let (r0, b0) = (
            reader.client().metrics().requests(),
            reader.client().metrics().bytes(),
        );
        let t = Instant::now();
        built = tilestack::pipeline::build(catalog, req, reader, mask).await?;
        eprintln!(
            "warm build {k}: {:.3} s, {} requests, {} bytes",
            t.elapsed().as_secs_f64(),
            reader.client().metrics().requests() - r0,
            reader.client().metrics().bytes() - b0
        );
    }
    for w in &built.plan.warnings {
        eprintln!("warning: {w}");
    }
    for e in &built.stack.read_errors {
        eprintln!("warning: filled with NaN after a failed read: {e}");
    }
    let t = Instant::now();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    built
        .stack
        .write_safetensors(&out.join("stack.safetensors"))?;
    built.stack.write_metadata_csv(&out.join("metadata.csv"))?;
    if std::env::var_os("TILESTACK_TIMING").is_some() {
        eprintln!("timing: write {:.3} s", t.elapsed().as_secs_f64());
    }
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

/// Writes the days picture and, beside it, the time series.
fn write_plots(
    stack: &tilestack::stack::TileStack,
    opts: &tilestack::plot::PlotOptions,
    out: &std::path::Path,
) -> Result<PathBuf> {
    tilestack::plot::save_png(&tilestack::plot::plot_days(stack, opts)?, out)?;
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("days");
    let ts = out.with_file_name(format!("{stem}-timeseries.png"));
    tilestack::plot::save_png(&tilestack::plot::plot_timeseries(stack)?, &ts)?;
    Ok(ts)
}

/// The table of days the demo prints (same values as metadata.csv).
fn print_days(stack: &tilestack::stack::TileStack) {
    let f = |v: f32| {
        if v.is_nan() {
            "-".to_string()
        } else {
            format!("{v:.1}")
        }
    };
    println!(
        "{:<10}  {:>5}  {:>14}  {:>13}  {:>6}",
        "date", "items", "scene cloud %", "tile cloud %", "NaN %"
    );
    for t in 0..stack.len() {
        println!(
            "{:<10}  {:>5}  {:>14}  {:>13}  {:>6}",
            stack.days[t].to_string(),
            stack.items[t].len(),
            f(stack.eo_cloud_cover[t]),
            f(100.0 * stack.tile_cloud_fraction[t]),
            f(stack.pct_nans[t])
        );
    }
}

fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
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

async fn run(cli: Cli, started: Instant) -> Result<()> {
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
            let (req, catalog, mask, reader) = stack_setup(&a)?;
            let built = run_stack(&catalog, &req, mask.as_ref(), &a.out, &reader, a.repeat).await?;
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
        Cmd::Bench { stack, bench } => {
            let (req, catalog, mask, reader) = stack_setup(&stack)?;
            let json = bench::run(started, &catalog, &req, mask.as_ref(), &reader, &bench).await?;
            println!("{json}");
        }
        Cmd::Plot {
            stack,
            days,
            start,
            cols,
            rgb,
            out,
        } => {
            let st = tilestack::stack::TileStack::read_safetensors(&stack)?;
            let bands: Vec<String> = rgb.split(',').map(|b| b.trim().to_string()).collect();
            let rgb: [String; 3] = bands
                .try_into()
                .map_err(|_| anyhow::anyhow!("--rgb {rgb:?}: expected three bands R,G,B"))?;
            let start = start
                .map(|d| {
                    chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                        .with_context(|| format!("--start {d:?} is not YYYY-MM-DD"))
                })
                .transpose()?;
            let opts = tilestack::plot::PlotOptions {
                rgb,
                start,
                days,
                cols,
            };
            let ts = write_plots(&st, &opts, &out)?;
            println!("wrote {} and {}", out.display(), ts.display());
        }
        Cmd::Demo { out, recipe } => {
            let recipe = load_recipe(&recipe)?;
            let t0 = Instant::now();
            let pb = spinner("world: generating the Oakland port demo world (first run only) ...");
            let world = tokio::task::spawn_blocking(move || World::cached(&recipe)).await??;
            pb.finish_and_clear();
            let t_world = t0.elapsed();
            println!(
                "world:  {} ({} scenes)",
                world.dir().display(),
                world.manifest().scenes.len()
            );
            let server = WorldServer::start(&world).await?;
            println!("server: STAC API at {} (127.0.0.1 only)", server.stac_url());

            let t1 = Instant::now();
            let [lon, lat] = world.manifest().centroid;
            let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).context("demo date");
            let bbox = tilestack::bbox_around(lon, lat, 256.0 * 10.0 * 1.1)?;
            let sreq = SearchRequest::new(world.manifest().collection.clone())
                .bbox(bbox)
                .datetime("2019-08-01/2019-08-30")?;
            let found = StacClient::new(&server.stac_url())?.search(&sreq).await?;
            let t_search = t1.elapsed();
            println!(
                "search: {} items around ({lon}, {lat}) in August 2019",
                found.items.len()
            );

            let t2 = Instant::now();
            let mut req = tilestack::pipeline::StackRequest::new(
                [lon, lat],
                tilestack::BandName::parse_list("B04,B03,B02,B08,B11")?,
                day(1)?,
                day(30)?,
            )?;
            req.cloud_band = Some(tilestack::BandName::new("SCL")?);
            let mask = tilestack::rasterize::Mask::from_file(&world.terminals_path())?;
            let catalog = tilestack::pipeline::Catalog::stac(
                &server.stac_url(),
                &world.manifest().collection,
            )?;
            let pb = spinner("stack: reading COGs over HTTP Range, warping, fusing ...");
            let reader = make_reader(1 << 30, None, None)?;
            let built = run_stack(&catalog, &req, Some(&mask), &out, &reader, 1).await;
            pb.finish_and_clear();
            let built = built?;
            let t_stack = t2.elapsed();
            tilestack::search::save_snapshot(&found.items, &out.join("items.json"))?;

            let t3 = Instant::now();
            let days_png = out.join("days.png");
            let ts = write_plots(
                &built.stack,
                &tilestack::plot::PlotOptions::default(),
                &days_png,
            )?;
            let t_plot = t3.elapsed();
            server.shutdown().await;

            println!();
            print_days(&built.stack);
            println!();
            println!(
                "phases: world {:.2} s, search {:.2} s, stack {:.2} s, plot {:.2} s",
                t_world.as_secs_f64(),
                t_search.as_secs_f64(),
                t_stack.as_secs_f64(),
                t_plot.as_secs_f64()
            );
            println!(
                "stack {:?} (time, band, y, x), bands {}",
                built.stack.data.shape(),
                built.stack.bands.join(",")
            );
            for f in ["stack.safetensors", "metadata.csv", "items.json"] {
                println!("wrote:  {}", out.join(f).display());
            }
            println!("wrote:  {}\nwrote:  {}", days_png.display(), ts.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
