//! Tile decode per codec, one GeoTIFF at a time: what `bench/codec_before_after.py`
//! runs in this tree and in an older commit's worktree (the file is copied
//! there, so it uses only API that both have: `CogReader::header`,
//! `IfdInfo::tile_range`, `cog::decode_tile`).
//!
//! # Input
//!
//! GeoTIFF paths (pixel-interleaved). Every full-resolution tile of each is
//! read into memory first; the timed part is `decode_tile` on those bytes,
//! one tile after another on one thread: decompression, predictor, colour
//! conversion, the samples as f32 in a `Tile` — what each fetched tile of a
//! window read goes through, without the fetch.
//!
//! # Output
//!
//! Per file, one line: `name tiles passes seconds us_per_tile`, or
//! `name ERROR message` when the commit cannot decode it (LERC before it
//! was built in, say). Each file is decoded once (warm-up, which also
//! decides whether it decodes at all), then pass after pass until
//! `--min-seconds` (default 0.5) have passed.
//!
//! ```sh
//! python3 bench/codec_before_after.py   # builds both commits, alternates them
//! target/release/codec_decode --min-seconds 0.5 FILE...   # (cargo build --release in bench/decode-harness)
//! ```

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tilestack::cog::{CogHeader, TileCache, decode_tile};
use tilestack::fetch::RetryConfig;
use tilestack::{CogReader, HttpRangeClient};

type Chunks = Vec<(usize, usize, Bytes)>;

async fn load(reader: &CogReader, path: &Path) -> Result<(Arc<CogHeader>, Chunks), String> {
    let abs = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let href = format!("file://{}", abs.display());
    let header = reader.header(&href).await.map_err(|e| e.to_string())?;
    let file = std::fs::read(&abs).map_err(|e| e.to_string())?;
    let info = &header.ifds[0];
    let mut chunks = Vec::new();
    for y in 0..info.tiles_down {
        for x in 0..info.tiles_across {
            let r = info.tile_range(x, y).ok_or("no tile range")?;
            let b = Bytes::copy_from_slice(&file[r.start as usize..r.end as usize]);
            chunks.push((x, y, b));
        }
    }
    Ok((header, chunks))
}

async fn pass(header: &Arc<CogHeader>, chunks: &Chunks) -> Result<(), String> {
    for (x, y, b) in chunks {
        let t = decode_tile(header.clone(), 0, *x, *y, b.clone())
            .await
            .map_err(|e| e.to_string())?;
        black_box(t);
    }
    Ok(())
}

fn main() {
    let mut min_s = 0.5f64;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--min-seconds" => {
                min_s = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--min-seconds SECONDS");
            }
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        eprintln!(
            "usage: codec_decode [--min-seconds S] FILE... (see bench/codec_before_after.py)"
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client = HttpRangeClient::new(RetryConfig::default()).expect("a client");
    let reader = CogReader::new(client, TileCache::new(0));
    for f in &files {
        let name = Path::new(f)
            .file_stem()
            .map_or(f.clone(), |s| s.to_string_lossy().into_owned());
        let result = rt.block_on(async {
            let (header, chunks) = load(&reader, Path::new(f)).await?;
            pass(&header, &chunks).await?;
            let t = Instant::now();
            let mut passes = 0u64;
            while t.elapsed().as_secs_f64() < min_s {
                pass(&header, &chunks).await?;
                passes += 1;
            }
            Ok::<_, String>((chunks.len(), passes, t.elapsed().as_secs_f64()))
        });
        match result {
            Ok((tiles, passes, secs)) => println!(
                "{name} {tiles} {passes} {secs:.6} {:.2}",
                secs * 1e6 / (tiles as f64 * passes as f64)
            ),
            Err(e) => println!("{name} ERROR {}", e.replace('\n', " ")),
        }
    }
}
