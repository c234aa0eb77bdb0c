//! `tilestack materialize`: a dataset config's samples as shards.

use anyhow::{Context, Result};
use tilestack::shard::{MaterializeOptions, merge_parts, part_from_env};
use tilestack::{DatasetConfig, materialize};

use crate::args::MaterializeArgs;

pub(crate) async fn run(a: MaterializeArgs) -> Result<()> {
    // A plain thread, not spawn_blocking: the dataset runs its own runtime,
    // which refuses to start inside another one's context.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(blocking(&a));
    });
    rx.await.context("the materialize thread died")?
}

fn blocking(a: &MaterializeArgs) -> Result<()> {
    if a.merge {
        let n = a.parts.context("--merge needs --parts N")?;
        let index = merge_parts(&a.out, n, None)?;
        println!(
            "merged {n} parts: {} samples in {} shards → {}/index.json",
            index.samples,
            index.shard_count,
            a.out.trim_end_matches('/')
        );
        return Ok(());
    }
    let path = a.config.as_ref().context("--config is required")?;
    let cfg = DatasetConfig::from_file(path)?;
    let part = match a.part {
        Some(p) => Some(p),
        None => part_from_env(a.parts)?,
    };
    let opts = MaterializeOptions {
        part,
        shard_bytes: a.shard_mb.max(1) << 20,
        ..MaterializeOptions::new(a.out.clone())
    };
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} samples [{bar:30}] {per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_message("opening the dataset (search and plans)");
    let report = materialize(&cfg, &opts, &mut |p| {
        pb.set_length(p.samples_total as u64);
        pb.set_position(p.samples_done as u64);
        let failed = if p.failed > 0 {
            format!(", {} failed", p.failed)
        } else {
            String::new()
        };
        pb.set_message(format!(
            "{:.1} MB written, shard {}/{}{failed}",
            p.bytes_written as f64 / 1e6,
            p.shards_done,
            p.shards_total
        ));
    });
    pb.finish_and_clear();
    let report = report?;
    println!("{report}");
    if report.complete {
        println!("index: {}/index.json", a.out.trim_end_matches('/'));
    } else {
        println!(
            "part index: {} (index.json is written when every part has finished)",
            report.index
        );
    }
    Ok(())
}
