//! `tilestack dataset`: open a dataset config and report what it holds,
//! reading no pixel — what to run before a million-sample job.

use std::time::Instant;

use anyhow::{Context, Result};
use tilestack::{DatasetConfig, TileDataset};

use crate::args::DatasetArgs;

pub(crate) async fn run(a: DatasetArgs) -> Result<()> {
    // A plain thread: the dataset runs its own runtime, which refuses to
    // start inside another one's context.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(blocking(&a));
    });
    rx.await.context("the dataset thread died")?
}

fn blocking(a: &DatasetArgs) -> Result<()> {
    let cfg = DatasetConfig::from_file(&a.config)?;
    let rss_before = memory_kb("VmRSS");
    let t = Instant::now();
    let ds = TileDataset::open(&cfg)?;
    let secs = t.elapsed().as_secs_f64();
    let r = ds.report();
    let rss = memory_kb("VmRSS");
    let peak = memory_kb("VmHWM");
    let per_sample = |kb: Option<u64>| {
        kb.zip(rss_before)
            .map(|(k, b)| k.saturating_sub(b) as f64 * 1024.0 / r.candidates.max(1) as f64)
    };
    if a.json {
        let v = serde_json::json!({
            "name": cfg.name,
            "candidates": r.candidates,
            "kept": r.kept,
            "dropped": r.dropped,
            "cloudy_scenes": r.cloudy_scenes,
            "searches": r.searches,
            "scenes": r.scenes,
            "warnings": r.warnings,
            "warnings_dropped": r.warnings_dropped,
            "shape": ds.shape(),
            "inputs": std::iter::once(serde_json::json!({
                "name": cfg.first_input, "rule": "daily", "shape": ds.shape(),
                "searches": r.searches, "scenes": r.scenes,
            }))
            .chain(r.inputs.iter().zip(ds.input_layouts()).map(|(i, l)| serde_json::json!({
                "name": i.name, "rule": i.rule, "shape": l.shape, "searches": i.searches,
                "scenes": i.scenes, "samples_without_scene": i.samples_without_scene,
            })))
            .collect::<Vec<_>>(),
            "raster_labels": r.raster_labels.iter().map(|i| serde_json::json!({
                "name": i.name, "rule": i.rule, "searches": i.searches,
                "scenes": i.scenes, "samples_without_scene": i.samples_without_scene,
            })).collect::<Vec<_>>(),
            "open_s": secs,
            "rss_kb": rss,
            "peak_rss_kb": peak,
            "rss_bytes_per_candidate": per_sample(rss),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("dataset {}: {r}", cfg.name);
    println!("  shape [T, C, H, W] {:?}", ds.shape());
    if !r.inputs.is_empty() {
        println!(
            "  input {:?} (daily, defines the days): {:?}, {} searches, {} scenes",
            cfg.first_input,
            ds.shape(),
            r.searches,
            r.scenes
        );
        for (i, l) in r.inputs.iter().zip(ds.input_layouts()) {
            println!(
                "  input {:?} ({}): {:?} {:?}, {} searches, {} scenes, {} samples without a scene",
                i.name, i.rule, l.shape, l.bands, i.searches, i.scenes, i.samples_without_scene
            );
        }
    }
    for l in &r.raster_labels {
        println!(
            "  label {:?} ({}): {} searches, {} scenes, {} samples without a scene",
            l.name, l.rule, l.searches, l.scenes, l.samples_without_scene
        );
    }
    println!(
        "  {} searches, {} scenes held, opened in {secs:.2} s ({:.3} ms per candidate)",
        r.searches,
        r.scenes,
        secs * 1e3 / r.candidates.max(1) as f64
    );
    if let (Some(rss), Some(peak)) = (rss, peak) {
        // per candidate only where the samples, not the process, make the memory
        let each = per_sample(Some(rss))
            .filter(|_| r.candidates >= 10_000)
            .map(|b| format!(" ({b:.0} B per candidate over the start)"))
            .unwrap_or_default();
        println!(
            "  memory: {:.1} MB resident{each}, peak {:.1} MB",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    if r.warnings_dropped > 0 {
        println!("  … and {} more distinct warnings", r.warnings_dropped);
    }
    Ok(())
}

/// A `/proc/self/status` field in kB (Linux; `None` elsewhere).
fn memory_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
