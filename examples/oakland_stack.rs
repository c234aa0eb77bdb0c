//! Build the Oakland daily stack through the library API (what `tilestack demo`
//! does, minus the pictures): generate or reuse the demo world, serve it on
//! 127.0.0.1, search, read, warp, fuse and mask.
//!
//! ```sh
//! cargo run --release --features demo --example oakland_stack
//! ```

use tilestack::cog::TileCache;
use tilestack::demo::{Recipe, World, WorldServer};
use tilestack::fetch::RetryConfig;
use tilestack::geo::Mask;
use tilestack::{BandName, Catalog, CogReader, Error, HttpRangeClient, StackRequest, build};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let world = World::cached(&Recipe::oakland())?;
    let server = WorldServer::start(&world).await?;
    let day = |d| {
        chrono::NaiveDate::from_ymd_opt(2019, 8, d).ok_or(Error::Invalid {
            what: "day",
            message: format!("2019-08-{d}"),
            source: None,
        })
    };
    let mut req = StackRequest::new(
        world.manifest().centroid,
        BandName::parse_list("B04,B03,B02,B08,B11,ndvi")?,
        day(1)?,
        day(30)?,
    )?;
    req.cloud_band = Some(BandName::new("SCL")?);
    let reader = CogReader::new(
        HttpRangeClient::new(RetryConfig::default())?,
        TileCache::new(1 << 30),
    );
    let catalog = Catalog::stac(&server.stac_url(), &world.manifest().collection)?;
    let mask = Mask::from_file(&world.terminals_path())?;
    let t = std::time::Instant::now();
    let built = build(&catalog, &req, &reader, Some(&mask)).await?;
    let s = &built.stack;
    println!(
        "{:?} {} in {:.2} s, {} requests, {:.1} MB",
        s.data.shape(),
        s.bands.join(","),
        t.elapsed().as_secs_f64(),
        reader.client().metrics().requests(),
        reader.client().metrics().bytes() as f64 / 1e6
    );
    for t in 0..s.len() {
        if !s.items[t].is_empty() {
            println!(
                "{}  scenes {}  cloud {:5.1} %  tile cloud {:5.1} %  NaN {:5.1} %",
                s.days[t],
                s.items[t].len(),
                s.eo_cloud_cover[t],
                100.0 * s.tile_cloud_fraction[t],
                s.pct_nans[t]
            );
        }
    }
    server.shutdown().await;
    Ok(())
}
