//! `tilestack world` (generate a demo world into a folder) and
//! `tilestack serve` (serve one on 127.0.0.1).

use std::time::Instant;

use anyhow::{Context, Result};
use tilestack::demo::{World, WorldServer};

use crate::args::{ServeArgs, WorldArgs};

/// `tilestack world`.
pub(crate) fn world(a: &WorldArgs) -> Result<()> {
    let mut recipe = super::load_recipe(a.recipe.as_deref())?;
    recipe.zarr |= a.zarr;
    let t = Instant::now();
    let w = World::generate(&recipe, &a.out)?;
    println!(
        "wrote {} scenes ({:.1} MB of COGs) to {} in {:.1} s",
        w.manifest().scenes.len(),
        w.manifest().cog_bytes as f64 / 1e6,
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    if w.has_zarr() {
        println!(
            "  and each as Zarr: collections {0}-zarr-v2, {0}-zarr-v3",
            recipe.collection
        );
    }
    for c in w.collections() {
        println!(
            "  and collection {} (like {}): {} items, {:.1} MB of COGs",
            c.id,
            c.like,
            c.items.len(),
            c.cog_bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// `tilestack serve`: until Ctrl-C.
pub(crate) async fn serve(a: &ServeArgs) -> Result<()> {
    let world = World::open(&a.dir)?;
    let opts = tilestack::demo::ServerOptions {
        bind: format!("127.0.0.1:{}", a.port),
        latency_ms: a.latency_ms,
        ..Default::default()
    };
    let server = WorldServer::start_with(&world, opts).await?;
    println!("STAC API: {}", server.stac_url());
    println!("COGs:     {}/data/", server.url());
    println!("serving {} until interrupted (Ctrl-C)", a.dir.display());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    Ok(())
}
