//! `tilestack bench`: the figures of the benchmark issue from one process,
//! printed as one JSON object (`bench/bench_tilestack.py` runs it beside the
//! stackstac peer and prints the ratios).
//!
//! * `first_stack_s`: process start → the first stack built in memory
//!   (search, headers, reads, warp, fusion, mask; nothing written) — what a
//!   user waits for at the start of a notebook or a training run.
//! * `warm_s`: the same stack again, same process (header index and tile
//!   cache warm), with the HTTP requests each repeat made; `warm_floor`
//!   splits it: the search alone, the load from the kept plan (no search),
//!   and the time to write an output array of the stack's shape once.
//! * `random`: stacks over a list of centroids in one process with the
//!   default cache, `concurrency` stacks in flight.
//!
//! A training loop's wait for data is measured by `cargo bench --bench
//! loader` (`starved`: a real burn step through `StackDataLoader`).
//! * `limit`: the physical limit for the first stack: the compressed internal
//!   tiles its windows intersect (at the IFD used), as byte ranges; the time
//!   to fetch exactly those with a plain concurrent range client (a fresh
//!   reqwest client, no cache, one GET per range the HTTP client would fetch:
//!   the same `tilestack::fetch::coalesce` at its default gap); the time to
//!   inflate them whole with libdeflate on all cores and on one; and both
//!   overlapped (each range inflated as it lands), the limit for any client
//!   that fetches and decodes on the same cores.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use rayon::prelude::*;
use tilestack::geo::Mask;
use tilestack::stack::Built;
use tilestack::{Catalog, CogReader, StackPlan, StackRequest, build, plan_stack};

use crate::args::{BenchArgs, StackArgs};

/// `tilestack bench`: measures the stack `stack` describes and prints the
/// JSON object. `started`: when the process started.
pub(crate) async fn run(started: Instant, stack: &StackArgs, args: &BenchArgs) -> Result<()> {
    if stack.dry_run {
        bail!("--dry-run is for `tilestack stack`: bench measures real builds");
    }
    let (req, catalog, mask, reader) = super::stack::stack_setup(stack)?;
    let json = measure(started, &catalog, &req, mask.as_ref(), &reader, args).await?;
    println!("{json}");
    Ok(())
}

fn seconds(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn counters(reader: &CogReader) -> (u64, u64) {
    let m = reader.client().metrics();
    (m.requests(), m.bytes())
}

/// Peak resident memory of this process (`VmHWM`), MB.
fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The places of a centroids file (`lon,lat` lines), via the samplers' reader.
fn parse_centroids(path: &std::path::Path) -> Result<Vec<[f64; 2]>> {
    Ok(tilestack::dataset::read_points(path)?
        .into_iter()
        .map(|p| [p.lon, p.lat])
        .collect())
}

/// Runs the benchmark and returns its JSON.
async fn measure(
    started: Instant,
    catalog: &Catalog,
    req: &StackRequest,
    mask: Option<&Mask>,
    reader: &CogReader,
    args: &BenchArgs,
) -> Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    let t = Instant::now();
    let (plan, items) = plan_stack(catalog, req).await?;
    let planned_s = seconds(t);
    let t_load = Instant::now();
    let stack = plan.load(reader, mask).await?;
    let first = Built { stack, plan, items };
    let (r1, b1) = counters(reader);
    out.insert("first_stack_s".into(), seconds(started).into());
    out.insert("first_build_s".into(), seconds(t).into());
    out.insert("first_search_plan_s".into(), planned_s.into());
    out.insert("first_load_s".into(), seconds(t_load).into());
    out.insert(
        "first".into(),
        serde_json::json!({
            "requests": r1, "bytes": b1,
            "shape": first.stack.data.shape(),
            "scenes": first.plan.scenes.len(), "windows": first.plan.reads.len(),
        }),
    );
    let mut warm = Vec::new();
    let mut warm_requests = 0;
    for _ in 0..args.warm {
        let (r0, _) = counters(reader);
        let t = Instant::now();
        build(catalog, req, reader, mask).await?;
        warm.push(seconds(t));
        warm_requests += counters(reader).0 - r0;
    }
    out.insert("warm_s".into(), warm.into());
    out.insert("warm_requests".into(), warm_requests.into());
    if args.warm > 0 {
        out.insert(
            "warm_floor".into(),
            warm_floor(catalog, req, reader, mask, &first, args.warm).await?,
        );
    }
    if let Some(path) = &args.centroids_file {
        let centroids = parse_centroids(path)?;
        let (r0, b0) = counters(reader);
        let t = Instant::now();
        let times: Vec<f64> = futures::stream::iter(centroids.iter().map(|c| {
            let mut req = req.clone();
            req.centroid = *c;
            async move {
                let t = Instant::now();
                build(catalog, &req, reader, mask).await.map(|_| seconds(t))
            }
        }))
        .buffered(args.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<tilestack::Result<_>>()?;
        let total = seconds(t);
        let (r, b) = counters(reader);
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        out.insert(
            "random".into(),
            serde_json::json!({
                "n": times.len(), "total_s": total,
                "stacks_per_s": times.len() as f64 / total,
                "median_s": sorted.get(sorted.len() / 2),
                "per_stack_s": times, "concurrency": args.concurrency.max(1),
                "requests": r - r0, "bytes": b - b0,
            }),
        );
    }
    if args.limit {
        out.insert("limit".into(), limit(&first.plan, reader).await?);
    }
    out.insert(
        "cache".into(),
        serde_json::json!({
            "budget": reader.cache().budget(), "used": reader.cache().bytes_used(),
            "hits": reader.cache().metrics().cache_hits(),
            "misses": reader.cache().metrics().cache_misses(),
            "evictions": reader.cache().metrics().evictions(),
        }),
    );
    out.insert("peak_rss_mb".into(), peak_rss_mb().into());
    Ok(serde_json::Value::Object(out))
}

/// What a warm stack cannot go below, measured in this process, best of
/// `n`: the search alone; loading from the kept plan (what a dataset that
/// searched once does per sample: cached tiles, warp, fusion, mask); and
/// writing an output array of the stack's shape once, on all cores, into
/// fresh memory (the allocation's page faults included).
async fn warm_floor(
    catalog: &Catalog,
    req: &StackRequest,
    reader: &CogReader,
    mask: Option<&Mask>,
    first: &Built,
    n: usize,
) -> Result<serde_json::Value> {
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut search, mut load, mut write) = (Vec::new(), Vec::new(), Vec::new());
    let shape = first.stack.data.raw_dim();
    for _ in 0..n {
        let t = Instant::now();
        tilestack::stack::search_items(catalog, req).await?;
        search.push(seconds(t));
        let t = Instant::now();
        first.plan.load(reader, mask).await?;
        load.push(seconds(t));
        let t = Instant::now();
        let mut a = ndarray::Array4::<f32>::zeros(shape);
        if let Some(v) = a.as_slice_mut() {
            let block = v.len().div_ceil(rayon::current_num_threads()).max(1);
            v.par_chunks_mut(block).for_each(|c| c.fill(1.0));
        }
        write.push(seconds(t));
        std::hint::black_box(&a);
    }
    Ok(serde_json::json!({
        "search_s": best(&search), "load_s": best(&load), "output_write_s": best(&write),
        "output_bytes": first.stack.data.len() * 4,
    }))
}

/// One plain GET of `r` (the limit's client: no retries, no cache).
async fn get_range(client: &reqwest::Client, href: &str, r: &Range<u64>) -> Result<bytes::Bytes> {
    client
        .get(href)
        .header("Range", format!("bytes={}-{}", r.start, r.end - 1))
        .send()
        .await
        .and_then(|x| x.error_for_status())
        .with_context(|| format!("GET {href} {r:?}"))?
        .bytes()
        .await
        .with_context(|| format!("{href} {r:?}"))
}

/// The GETs the HTTP client makes for these tile ranges of one file: the
/// library's coalescing at the client's default gap (a gap's bytes are
/// fetched with the tiles around it).
fn fetched_ranges(ranges: &[Range<u64>]) -> Vec<Range<u64>> {
    tilestack::fetch::coalesce(ranges, tilestack::fetch::DEFAULT_COALESCE_GAP)
}

/// How many contiguous runs these tile ranges make (touching or overlapping
/// ranges are one run; any gap starts another).
fn contiguous_runs(ranges: &[Range<u64>]) -> usize {
    tilestack::fetch::coalesce(ranges, 1).len()
}

/// The physical limit of `plan`'s reads (see the module docs).
async fn limit(plan: &StackPlan, reader: &CogReader) -> Result<serde_json::Value> {
    // The internal tiles each window intersects, per href, at IFD 0 (the
    // stacks here are at the source resolution: no overview is used).
    // Per href: (byte range, tile x, tile y) of each needed tile.
    type Needed = Vec<(Range<u64>, usize, usize)>;
    let mut tiles: BTreeMap<String, Needed> = BTreeMap::new();
    let mut headers = BTreeMap::new();
    for r in &plan.reads {
        let h = reader.header(&r.href).await?;
        let info = &h.ifds[0];
        let tilestack::geo::PixelWindow {
            col_off: c0,
            row_off: r0,
            width: w,
            height: hgt,
        } = r.window;
        let (c1, r1) = ((c0 + w).min(info.width), (r0 + hgt).min(info.height));
        let (tw, th) = (info.tile_width, info.tile_height);
        for ty in r0 / th..=(r1 - 1) / th {
            for tx in c0 / tw..=(c1 - 1) / tw {
                if let Some(range) = info.tile_range(tx, ty) {
                    tiles
                        .entry(r.href.clone())
                        .or_default()
                        .push((range, tx, ty));
                }
            }
        }
        let bps = match info.sample_type {
            Some(tilestack::cog::SampleType::U8) => 1,
            _ => 2,
        };
        headers.insert(r.href.clone(), (h.clone(), tw * th * bps));
    }
    let mut n_tiles = 0;
    let mut bytes = 0;
    let mut strict = 0;
    let mut merged: Vec<(String, Range<u64>)> = Vec::new();
    for (href, needed) in &mut tiles {
        needed.sort_by_key(|(r, _, _)| r.start);
        needed.dedup();
        let ranges: Vec<Range<u64>> = needed.iter().map(|(r, _, _)| r.clone()).collect();
        n_tiles += ranges.len();
        bytes += ranges.iter().map(|r| r.end - r.start).sum::<u64>();
        strict += contiguous_runs(&ranges);
        // What the client fetches: tiles closer than its coalescing gap are
        // one GET (GDAL's 4-byte leader and trailer around each tile are
        // such gaps).
        merged.extend(
            fetched_ranges(&ranges)
                .into_iter()
                .map(|r| (href.clone(), r)),
        );
    }
    // Fetch exactly those ranges: fresh client, one GET each, 32 in flight.
    let client = reqwest::Client::new();
    let t = Instant::now();
    let fetched: Vec<(String, Range<u64>, bytes::Bytes)> =
        futures::stream::iter(merged.iter().cloned().map(|(href, r)| {
            let client = client.clone();
            async move {
                let body = get_range(&client, &href, &r).await?;
                Ok::<_, anyhow::Error>((href, r, body))
            }
        }))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let fetch_s = seconds(t);
    let fetched_bytes: u64 = fetched.iter().map(|(_, _, b)| b.len() as u64).sum();
    // Fetch and inflate overlapped, as a client must do both on these cores:
    // a fresh client again, each range's tiles inflated whole on the
    // blocking threads as the range lands.
    let client = reqwest::Client::new();
    let t = Instant::now();
    futures::stream::iter(merged.iter().cloned().map(|(href, r)| {
        let client = client.clone();
        // (offset in the range, length, inflated length) of its tiles
        let parts: Vec<(usize, usize, usize)> = tiles
            .get(&href)
            .into_iter()
            .flatten()
            .filter(|(tr, _, _)| tr.start >= r.start && tr.end <= r.end)
            .map(|(tr, _, _)| {
                let raw = headers.get(&href).map_or(0, |h| h.1);
                (
                    (tr.start - r.start) as usize,
                    (tr.end - tr.start) as usize,
                    raw,
                )
            })
            .collect();
        async move {
            let body = get_range(&client, &href, &r).await?;
            let inflated = tokio::task::spawn_blocking(move || -> Result<()> {
                let mut d = libdeflater::Decompressor::new();
                for (at, len, raw) in parts {
                    let z = body.get(at..at + len).context("short range")?;
                    let mut out = vec![0u8; raw];
                    d.zlib_decompress(z, &mut out)
                        .map_err(|e| anyhow::anyhow!("inflate: {e}"))?;
                }
                Ok(())
            });
            inflated.await.context("inflate task")?
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<Result<()>>>()
    .await
    .into_iter()
    .collect::<Result<()>>()?;
    let fetch_inflate_s = seconds(t);
    // The tiles as separate buffers, then inflated whole.
    let mut jobs: Vec<(bytes::Bytes, usize)> = Vec::new();
    let mut decode_jobs = Vec::new();
    for (href, r, body) in &fetched {
        let Some((header, raw_len)) = headers.get(href) else {
            continue;
        };
        for (tr, tx, ty) in tiles.get(href).into_iter().flatten() {
            if tr.start >= r.start && tr.end <= r.end {
                let s = (tr.start - r.start) as usize;
                let z = body.slice(s..s + (tr.end - tr.start) as usize);
                jobs.push((z.clone(), *raw_len));
                decode_jobs.push((header.clone(), *tx, *ty, z));
            }
        }
    }
    let inflate = |jobs: &[(bytes::Bytes, usize)]| -> Result<(f64, u64)> {
        let t = Instant::now();
        let total = jobs
            .par_iter()
            .map_init(libdeflater::Decompressor::new, |d, (z, n)| {
                let mut out = vec![0u8; *n];
                d.zlib_decompress(z, &mut out)
                    .map(|k| k as u64)
                    .map_err(|e| anyhow::anyhow!("inflate: {e}"))
            })
            .collect::<Result<Vec<u64>>>()?
            .into_iter()
            .sum();
        Ok((seconds(t), total))
    };
    let (all_cores_s, inflated) = inflate(&jobs)?;
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .context("one-thread pool")?;
    let (one_core_s, _) = one.install(|| inflate(&jobs))?;
    // tilestack's own decode of the same tiles (inflate, predictor undone,
    // nodata noted), on its blocking threads.
    let t = Instant::now();
    futures::stream::iter(
        decode_jobs
            .into_iter()
            .map(|(h, tx, ty, z)| tilestack::cog::decode_tile(h, 0, tx, ty, z)),
    )
    .buffer_unordered(64)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<tilestack::Result<Vec<_>>>()?;
    let decode_s = seconds(t);
    Ok(serde_json::json!({
        "tiles": n_tiles, "bytes": bytes, "ranges_strict": strict,
        "ranges": merged.len(), "fetch_s": fetch_s, "fetched_bytes": fetched_bytes,
        "fetch_inflate_s": fetch_inflate_s,
        "inflated_bytes": inflated, "inflate_all_cores_s": all_cores_s,
        "inflate_one_core_s": one_core_s, "decode_all_cores_s": decode_s,
        "cores": rayon::current_num_threads(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_fetches_what_the_client_fetches() {
        let gap = tilestack::fetch::DEFAULT_COALESCE_GAP;
        // GDAL's 4-byte trailer + leader between tiles, a gap just under the
        // client's, then one the client does not bridge; out of order.
        let a = 0..100;
        let b = 108..200;
        let c = 200 + gap - 1..300 + gap;
        let d = c.end + gap..c.end + gap + 50;
        let tiles = vec![d.clone(), b.clone(), a.clone(), c.clone()];
        assert_eq!(fetched_ranges(&tiles), vec![a.start..c.end, d.clone()]);
        assert_eq!(
            fetched_ranges(&tiles),
            tilestack::fetch::coalesce(&tiles, gap)
        );
        // Runs: only touching (or overlapping) tiles join.
        assert_eq!(contiguous_runs(&tiles), 4);
        assert_eq!(contiguous_runs(&[0..10, 10..12, 13..14, 11..12]), 2);
    }
}
