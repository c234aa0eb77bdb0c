//! `tilestack demo`: the whole job on the embedded demo world — world
//! (generated once, cached), loopback server, search, stack, pictures — and
//! the table of days.

use std::time::Instant;

use anyhow::{Context, Result};
use tilestack::demo::{World, WorldServer};
use tilestack::geo::Mask;
use tilestack::plot::PlotOptions;
use tilestack::stac::{SearchRequest, StacClient};
use tilestack::{BandName, Catalog, StackRequest, TileStack};

use super::plot::write_plots;
use super::stack::{make_reader, run_stack};
use crate::args::DemoArgs;

/// `tilestack demo`.
pub(crate) async fn run(a: &DemoArgs) -> Result<()> {
    let out = &a.out;
    let recipe = super::load_recipe(a.recipe.as_deref())?;
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
    let bbox = tilestack::geo::bbox_around(lon, lat, 256.0 * 10.0 * 1.1)?;
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
    let mut req = StackRequest::new(
        [lon, lat],
        BandName::parse_list("B04,B03,B02,B08,B11")?,
        day(1)?,
        day(30)?,
    )?;
    req.cloud_band = Some(BandName::new("SCL")?);
    let mask = Mask::from_file(&world.terminals_path())?;
    let catalog = Catalog::stac(&server.stac_url(), &world.manifest().collection)?;
    let pb = spinner("stack: reading COGs over HTTP Range, warping, fusing ...");
    let reader = make_reader(1 << 30, None, None)?;
    let built = run_stack(&catalog, &req, Some(&mask), out, &reader, 1).await;
    pb.finish_and_clear();
    let built = built?;
    let t_stack = t2.elapsed();
    tilestack::stac::save_snapshot(&found.items, &out.join("items.json"))?;

    let t3 = Instant::now();
    let days_png = out.join("days.png");
    let ts = write_plots(&built.stack, &PlotOptions::default(), &days_png)?;
    let t_plot = t3.elapsed();
    let t4 = Instant::now();
    let s1 = match world.collection_like("sentinel-1-rtc") {
        Some(id) => Some(stack_s1(id, &server, &req, &mask, out, &reader).await?),
        None => None,
    };
    let t_s1 = t4.elapsed();
    server.shutdown().await;

    println!();
    print_days(&built.stack);
    println!();
    println!(
        "phases: world {:.2} s, search {:.2} s, stack {:.2} s, plot {:.2} s, sentinel-1 {:.2} s",
        t_world.as_secs_f64(),
        t_search.as_secs_f64(),
        t_stack.as_secs_f64(),
        t_plot.as_secs_f64(),
        t_s1.as_secs_f64()
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
    if let Some((passes, png)) = s1 {
        println!(
            "wrote:  {} (Sentinel-1 VV, VH in dB: {passes} days with a pass)",
            png.display()
        );
    }
    Ok(())
}

/// The Sentinel-1 row: the same tile and days from the radar collection
/// alone (the single-collection pipeline), VV and VH in decibels, drawn as
/// VV, VH, VV. Returns the days with a pass and the picture's path.
async fn stack_s1(
    collection: &str,
    server: &WorldServer,
    s2: &StackRequest,
    mask: &Mask,
    out: &std::path::Path,
    reader: &tilestack::CogReader,
) -> Result<(usize, std::path::PathBuf)> {
    let bands = BandName::parse_list("vv,vh")?;
    let mut req = StackRequest::new(s2.centroid, bands.clone(), s2.start, s2.end)?;
    req.decibels = bands;
    let catalog = Catalog::stac(&server.stac_url(), collection)?;
    let dir = out.join("s1");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pb = spinner("sentinel-1: stacking VV and VH ...");
    let built = run_stack(&catalog, &req, Some(mask), &dir, reader, 1).await;
    pb.finish_and_clear();
    let built = built?;
    let png = out.join("s1-days.png");
    let opts = PlotOptions {
        rgb: ["vv".into(), "vh".into(), "vv".into()],
        ..PlotOptions::default()
    };
    write_plots(&built.stack, &opts, &png)?;
    let passes = built.stack.items.iter().filter(|i| !i.is_empty()).count();
    Ok((passes, png))
}

/// A spinner on stderr while a long phase runs.
fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// The table of days the demo prints (same values as metadata.csv).
fn print_days(stack: &TileStack) {
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
