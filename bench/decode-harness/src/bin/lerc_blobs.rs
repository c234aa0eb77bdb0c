//! tilestack's LERC decoder timed on a folder of raw LERC chunks — one
//! half of `bench/lerc_vs_cpp.py`, whose other half (`bench/lerc_decode.c`)
//! times Esri's C++ library (`lerc_getBlobInfo` + `lerc_decode`, as GDAL
//! calls it) on the very same files.
//!
//! # Input
//!
//! `DIR/manifest.tsv`, one line per source file: `name outer width rows
//! samples dtype tiles`, where `outer` is the LercParameters' further
//! compression (0 none, 1 DEFLATE, 2 ZSTD) and `dtype` a numpy name
//! (`uint8`, `float32`, ...); the chunks are `DIR/name/0.bin`,
//! `DIR/name/1.bin`, ... exactly as stored in the TIFF (the outer
//! DEFLATE/ZSTD still around them). `bench/lerc_vs_cpp.py` writes it.
//!
//! # Output
//!
//! Per file, one line: `name pixels_per_pass passes seconds mpx_per_s`.
//! Each file is decoded once (warm-up), then pass after pass (every chunk
//! of the file through `tilestack::cog::decode_lerc_chunk`: outer
//! inflate/zstd, LERC decode, the samples as f32) until `MIN_SECONDS`
//! have passed.
//!
//! ```sh
//! python3 bench/lerc_vs_cpp.py          # builds this and the C harness, alternates them
//! target/release/lerc_blobs DIR 0.5     # (cargo build --release in bench/decode-harness)
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tilestack::cog::{SampleType, decode_lerc_chunk};

struct Set {
    name: String,
    outer: u32,
    width: usize,
    rows: usize,
    samples: usize,
    dtype: SampleType,
    chunks: Vec<Vec<u8>>,
}

fn dtype(name: &str) -> SampleType {
    match name {
        "int8" => SampleType::I8,
        "uint8" => SampleType::U8,
        "int16" => SampleType::I16,
        "uint16" => SampleType::U16,
        "int32" => SampleType::I32,
        "uint32" => SampleType::U32,
        "float32" => SampleType::F32,
        "float64" => SampleType::F64,
        other => panic!("manifest: unknown dtype {other}"),
    }
}

fn load(dir: &Path) -> Vec<Set> {
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest.tsv");
    manifest
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 7, "manifest line {line:?}");
            let n: usize = f[6].parse().expect("tiles");
            let chunks = (0..n)
                .map(|i| {
                    std::fs::read(dir.join(f[0]).join(format!("{i}.bin"))).expect("a chunk file")
                })
                .collect();
            Set {
                name: f[0].to_string(),
                outer: f[1].parse().expect("outer"),
                width: f[2].parse().expect("width"),
                rows: f[3].parse().expect("rows"),
                samples: f[4].parse().expect("samples"),
                dtype: dtype(f[5]),
                chunks,
            }
        })
        .collect()
}

fn pass(s: &Set) {
    let params = [4, s.outer];
    for c in &s.chunks {
        let v = decode_lerc_chunk(c, Some(&params[..]), s.width, s.rows, s.samples, s.dtype)
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        black_box(v);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: lerc_blobs DIR [MIN_SECONDS] (see bench/lerc_vs_cpp.py)");
        std::process::exit(2);
    };
    let min_s: f64 = args.get(1).map_or(0.5, |s| s.parse().expect("MIN_SECONDS"));
    for s in load(&dir) {
        pass(&s);
        let t = Instant::now();
        let mut passes = 0u64;
        while t.elapsed().as_secs_f64() < min_s {
            pass(&s);
            passes += 1;
        }
        let secs = t.elapsed().as_secs_f64();
        let px = s.width * s.rows * s.chunks.len();
        println!(
            "{} {px} {passes} {secs:.6} {:.3}",
            s.name,
            (px as f64 * passes as f64) / secs / 1e6
        );
    }
}
