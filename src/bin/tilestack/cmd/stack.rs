//! `tilestack stack`, and what `bench` and `demo` share with it: the reader,
//! the setup from `StackArgs`, and a stack built and written.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tilestack::cog::{HeaderStore, TileCache};
use tilestack::fetch::{PcSignerConfig, PlanetaryComputerSigner, RetryConfig};
use tilestack::geo::Mask;
use tilestack::stack::Built;
use tilestack::{Catalog, CogReader, HttpRangeClient, StackRequest};

use crate::args::StackArgs;

/// `tilestack stack`: builds the stack, writes it, prints one line; with
/// `--dry-run`, prints the plan's summary as JSON and writes nothing.
pub(crate) async fn run(a: &StackArgs) -> Result<()> {
    let t = Instant::now();
    let (req, catalog, mask, reader) = stack_setup(a)?;
    if a.dry_run {
        let reader = (!a.no_headers).then_some(&reader);
        let mut dry = tilestack::stack::dry_run(&catalog, &req, reader).await?;
        if mask.is_some() {
            dry = dry.with_mask();
        }
        for w in &dry.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}", serde_json::to_string_pretty(&dry)?);
        return Ok(());
    }
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
    Ok(())
}

/// One reader for a whole command: HTTP client (signed if asked) + tile cache.
pub(crate) fn make_reader(
    cache_bytes: u64,
    sign: Option<&str>,
    header_cache: Option<&Path>,
) -> Result<CogReader> {
    let mut client = HttpRangeClient::new(RetryConfig::default())?;
    match sign {
        None | Some("none") => {}
        Some("planetary-computer" | "pc") => {
            let signer = PlanetaryComputerSigner::new(PcSignerConfig::default());
            client = client.with_signer(Arc::new(signer));
        }
        Some(other) => bail!("--sign {other:?}: use planetary-computer or none"),
    }
    let mut reader = CogReader::new(client, TileCache::new(cache_bytes));
    if let Some(dir) = header_cache {
        reader = reader.with_header_store(HeaderStore::open(dir)?);
    }
    Ok(reader)
}

/// What `stack` and `bench` build from their `StackArgs`: the request, the
/// catalog, the mask and the one reader.
pub(crate) fn stack_setup(
    a: &StackArgs,
) -> Result<(StackRequest, Catalog, Option<Mask>, CogReader)> {
    let req = a.request()?;
    let (catalog, mask) = stack_inputs(a)?;
    let reader = make_reader(
        a.cache_mib << 20,
        a.sign.as_deref(),
        a.header_cache.as_deref(),
    )?;
    Ok((req, catalog, mask, reader))
}

/// The catalog and mask a `StackArgs` names.
fn stack_inputs(a: &StackArgs) -> Result<(Catalog, Option<Mask>)> {
    let mask = a.mask.as_deref().map(Mask::from_file).transpose()?;
    let catalog = match (&a.stac, &a.snapshot) {
        (_, Some(p)) => Catalog::Items(tilestack::stac::load_snapshot(p)?),
        (Some(u), None) => Catalog::stac(u, &a.collection)?,
        (None, None) => bail!("give --stac URL or --snapshot FILE"),
    };
    Ok((catalog, mask))
}

/// Builds a stack and writes `stack.safetensors` + `metadata.csv` into `out`.
pub(crate) async fn run_stack(
    catalog: &Catalog,
    req: &StackRequest,
    mask: Option<&Mask>,
    out: &Path,
    reader: &CogReader,
    repeat: usize,
) -> Result<Built> {
    let t = Instant::now();
    let mut built = tilestack::build(catalog, req, reader, mask).await?;
    tracing::info!(
        ms = t.elapsed().as_secs_f64() * 1e3,
        scenes = built.plan.scenes.len(),
        windows = built.plan.reads.len(),
        "built stack"
    );
    // Warm repeats: same process, same reader (header index and tile cache hot).
    for k in 1..repeat.max(1) {
        let (r0, b0) = (
            reader.client().metrics().requests(),
            reader.client().metrics().bytes(),
        );
        let t = Instant::now();
        built = tilestack::build(catalog, req, reader, mask).await?;
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
    tracing::info!(
        ms = t.elapsed().as_secs_f64() * 1e3,
        out = %out.display(),
        "wrote stack"
    );
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
