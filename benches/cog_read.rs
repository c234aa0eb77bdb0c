//! COG window reads over HTTP `Range`, cold and warm, and what decoding costs
//! next to the physical limit (raw inflate of the same bytes).
//!
//! # Input
//!
//! The embedded Oakland demo recipe (`Recipe::oakland()`, as in
//! `datasets/oakland-port/recipe.toml`) shrunk to 1024 px scenes with 512 px
//! COG tiles (`name = "oakland-bench"`), generated once by
//! `World::cached_in(.., "target/bench-worlds")` and reused by later runs
//! (deterministic: byte-identical on every machine). Everything reads
//! scene 0's B04: a 1024×1024 uint16 COG, DEFLATE + horizontal predictor,
//! 2×2 tiles of 512 px at full resolution. It is served by a
//! [`WorldServer`] on 127.0.0.1, so "fetch" means a real loopback HTTP
//! request through `HttpRangeClient` (one shared connection pool).
//!
//! # Benchmarks
//!
//! - `cog_read/cold_window_256`: a fresh `CogReader` (fresh `TileCache`, fresh
//!   header index) reads the 256×256 window at (384, 384), which straddles
//!   all four tiles: header parse + one coalesced tile request + four tile
//!   decodes. Throughput: compressed bytes fetched per read (header and tiles).
//! - `cog_read/warm_window_256`: the same read on one reader whose cache holds
//!   the tiles: no request, only copying out of decoded tiles.
//! - `cog_tiles/fetch_decode_{bytes,tiles}`: headers indexed but no tile
//!   cache (`TileCache::new(0)` evicts every tile at once), reading the whole
//!   1024×1024 image: fetch + decode of four tiles per read, reported as
//!   compressed MB/s and as tiles/s.
//! - `decode/*`: the four compressed tiles, already in memory: tilestack's
//!   own decode (`cog::decode_tile`: libdeflate inflate, predictor undone in
//!   place, nodata noted; what every fetched tile goes through), async-tiff's
//!   generic decode plus conversion to f32 (tilestack's fallback for other
//!   layouts), against raw zlib inflate alone with flate2 (miniz_oxide) and
//!   with libdeflater — the physical limit. Throughput: compressed bytes.
//! - `decode_lerc/*`: every tile of each LERC file of the GeoTIFF corpus
//!   (`tests/fixtures/geotiff/codec_lerc_*.tif`) through `cog::decode_tile`
//!   (the pure-Rust LERC decoder). Throughput: pixels.
//!
//! Sample sizes and measurement times are small so that `cargo test
//! --all-targets` (which runs each benchmark once) and `cargo bench` stay quick.
//!
//! ```sh
//! cargo bench --features demo --bench cog_read
//! ```

use std::hint::black_box;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use async_tiff::decoder::DecoderRegistry;
use async_tiff::error::AsyncTiffResult;
use async_tiff::metadata::TiffMetadataReader;
use async_tiff::reader::AsyncFileReader;
use async_tiff::{Tile, TypedArray};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::BoxFuture;
use tilestack::cog::TileCache;
use tilestack::demo::{Recipe, World, WorldServer};
use tilestack::fetch::RetryConfig;
use tilestack::geo::PixelWindow;
use tilestack::{CogReader, HttpRangeClient};

/// The window of the cold and warm reads: (col, row, width, height), full resolution.
const WINDOW: (usize, usize, usize, usize) = (384, 384, 256, 256);

fn bench_world() -> World {
    let mut r = Recipe::oakland();
    r.name = "oakland-bench".into();
    r.scene_size = 1024;
    r.cog_tile_size = 512;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-worlds");
    World::cached_in(&r, &root).expect("generating the bench world")
}

/// A whole file in memory, for async-tiff's tile API.
#[derive(Debug)]
struct InMemory(Bytes);

impl AsyncFileReader for InMemory {
    fn get_bytes<'a, 'b>(&'a self, range: Range<u64>) -> BoxFuture<'b, AsyncTiffResult<Bytes>>
    where
        'a: 'b,
        Self: 'b,
    {
        let r = range.start as usize..(range.end as usize).min(self.0.len());
        Box::pin(async move { Ok(self.0.slice(r)) })
    }
}

/// The full-resolution tiles of `path`, compressed, as async-tiff hands them to a decoder.
fn full_res_tiles(path: &std::path::Path) -> Vec<Tile> {
    let file = InMemory(Bytes::from(
        std::fs::read(path).expect("reading the bench COG"),
    ));
    futures::executor::block_on(async {
        let mut meta = TiffMetadataReader::try_open(&file).await.unwrap();
        let ifds = meta.read_all_ifds(&file).await.unwrap();
        let ifd = &ifds[0];
        let (w, h) = (ifd.image_width() as usize, ifd.image_height() as usize);
        let (tw, th) = (
            ifd.tile_width().unwrap() as usize,
            ifd.tile_height().unwrap() as usize,
        );
        let mut tiles = Vec::new();
        for y in 0..h.div_ceil(th) {
            for x in 0..w.div_ceil(tw) {
                tiles.push(ifd.fetch_tile(x, y, &file).await.unwrap());
            }
        }
        tiles
    })
}

fn compressed(tile: &Tile) -> &Bytes {
    match tile.compressed_bytes() {
        async_tiff::CompressedBytes::Chunky(b) => b,
        async_tiff::CompressedBytes::Planar(_) => panic!("the bench COG is chunky"),
    }
}

/// What `cog.rs` does to a fetched tile: decode, then widen to f32.
fn decode_to_f32(tile: Tile, registry: &DecoderRegistry) -> Vec<f32> {
    let (data, _, _) = tile.decode(registry).unwrap().into_inner();
    match data {
        TypedArray::UInt16(v) => v.into_iter().map(f32::from).collect(),
        other => panic!("B04 is uint16, got {other:?}"),
    }
}

fn benches(c: &mut Criterion) {
    let world = bench_world();
    let scene = &world.manifest().scenes[0].id;
    let rel = format!("data/{scene}/B04.tif");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(WorldServer::start(&world)).unwrap();
    let url = format!("{}/{rel}", server.url());
    let client = HttpRangeClient::new(RetryConfig::default()).unwrap();
    let (col, row, w, h) = WINDOW;

    // What one cold read costs on the wire, to report it as throughput.
    server.stats().reset();
    let r = CogReader::new(client.clone(), TileCache::new(1 << 30));
    let px = rt
        .block_on(r.read_window(&url, 0, PixelWindow::new(col, row, w, h)))
        .unwrap();
    assert_eq!(px.dim(), (h, w));
    let cold_bytes = server.stats().data_bytes();
    let cold_requests = server.stats().data_requests();
    let header = rt.block_on(r.header(&url)).unwrap();
    let (full_w, full_h) = (header.width, header.height);
    let n_tiles = header.ifds[0].tiles_across * header.ifds[0].tiles_down;
    let tile_bytes: u64 = header.ifds[0].tile_byte_counts.iter().sum();
    eprintln!(
        "bench COG {rel}: {full_w}×{full_h} px, {n_tiles} tiles of {}×{} px, {tile_bytes} compressed tile bytes; \
         cold 256×256 read = {cold_requests} requests, {cold_bytes} bytes",
        header.tile_width, header.tile_height
    );

    let mut g = c.benchmark_group("cog_read");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes(cold_bytes));
    g.bench_function("cold_window_256", |b| {
        b.iter(|| {
            let r = CogReader::new(client.clone(), TileCache::new(1 << 30));
            black_box(
                rt.block_on(r.read_window(&url, 0, PixelWindow::new(col, row, w, h)))
                    .unwrap(),
            )
        })
    });
    let warm = CogReader::new(client.clone(), TileCache::new(1 << 30));
    rt.block_on(warm.read_window(&url, 0, PixelWindow::new(col, row, w, h)))
        .unwrap();
    g.throughput(Throughput::Elements((w * h) as u64));
    g.bench_function("warm_window_256", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(warm.read_window(&url, 0, PixelWindow::new(col, row, w, h)))
                    .unwrap(),
            )
        })
    });
    g.finish();

    // Headers indexed, tiles never cached: every read fetches and decodes all tiles.
    let uncached = CogReader::new(client.clone(), TileCache::new(0));
    rt.block_on(uncached.header(&url)).unwrap();
    let mut g = c.benchmark_group("cog_tiles");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (name, tp) in [
        ("fetch_decode_bytes", Throughput::Bytes(tile_bytes)),
        ("fetch_decode_tiles", Throughput::Elements(n_tiles as u64)),
    ] {
        g.throughput(tp);
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    rt.block_on(uncached.read_window(
                        &url,
                        0,
                        PixelWindow::new(0, 0, full_w, full_h),
                    ))
                    .unwrap(),
                )
            })
        });
    }
    g.finish();

    // Decoding alone, on the same compressed tiles.
    let tiles = full_res_tiles(&world.dir().join(&rel));
    let raw_len = header.tile_width * header.tile_height * 2;
    let total: u64 = tiles.iter().map(|t| compressed(t).len() as u64).sum();
    assert_eq!(total, tile_bytes);
    let registry = DecoderRegistry::default();
    let mut g = c.benchmark_group("decode");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(total));
    let across = header.ifds[0].tiles_across;
    g.bench_function(BenchmarkId::new("tilestack_decode_tile", n_tiles), |b| {
        b.iter(|| {
            rt.block_on(async {
                for (i, t) in tiles.iter().enumerate() {
                    let tile = tilestack::cog::decode_tile(
                        header.clone(),
                        0,
                        i % across,
                        i / across,
                        compressed(t).clone(),
                    )
                    .await
                    .unwrap();
                    black_box(tile);
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("async_tiff_to_f32", n_tiles), |b| {
        b.iter(|| {
            for t in &tiles {
                black_box(decode_to_f32(t.clone(), &registry));
            }
        })
    });
    let mut out = vec![0u8; raw_len];
    g.bench_function(BenchmarkId::new("inflate_flate2", n_tiles), |b| {
        let mut d = flate2::Decompress::new(true);
        b.iter(|| {
            for t in &tiles {
                d.reset(true);
                let status = d
                    .decompress(compressed(t), &mut out, flate2::FlushDecompress::Finish)
                    .unwrap();
                assert_eq!(status, flate2::Status::StreamEnd);
                assert_eq!(d.total_out() as usize, raw_len);
            }
            black_box(&out);
        })
    });
    g.bench_function(BenchmarkId::new("inflate_libdeflate", n_tiles), |b| {
        let mut d = libdeflater::Decompressor::new();
        b.iter(|| {
            for t in &tiles {
                let n = d.zlib_decompress(compressed(t), &mut out).unwrap();
                assert_eq!(n, raw_len);
            }
            black_box(&out);
        })
    });
    g.finish();

    // LERC, pure Rust (src/cog/lerc.rs): every tile of each of the corpus's
    // LERC files (GDAL-written, 120×90 px in 32 px tiles), already in memory,
    // through `cog::decode_tile`. Throughput: pixels decoded.
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geotiff");
    let mut g = c.benchmark_group("decode_lerc");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for name in [
        "codec_lerc_float32",
        "codec_lerc_uint16_lossy",
        "codec_lerc_zstd_float32_lossy",
        "codec_lerc_deflate_float64",
        "codec_lerc_rgb_uint8_pixel",
    ] {
        let path = corpus.join(format!("{name}.tif"));
        let href = format!("file://{}", path.display());
        let header = rt.block_on(r.header(&href)).unwrap();
        let tiles = full_res_tiles(&path);
        let (across, tw, th) = (
            header.ifds[0].tiles_across,
            header.ifds[0].tile_width,
            header.ifds[0].tile_height,
        );
        g.throughput(Throughput::Elements((tiles.len() * tw * th) as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    for (i, t) in tiles.iter().enumerate() {
                        let tile = tilestack::cog::decode_tile(
                            header.clone(),
                            0,
                            i % across,
                            i / across,
                            compressed(t).clone(),
                        )
                        .await
                        .unwrap();
                        black_box(tile);
                    }
                })
            })
        });
    }
    g.finish();

    rt.block_on(server.shutdown());
}

criterion_group!(cog_read, benches);
criterion_main!(cog_read);
