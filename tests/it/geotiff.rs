//! Every GeoTIFF a user points at, through the `tilestack` binary:
//! the committed corpus (`tests/fixtures/geotiff/`, written by
//! `tests/py/make_geotiff_corpus.py`) read with `tilestack read` and compared
//! with rasterio by `tests/py/compare_read.py`; `tilestack info --json` on a
//! few of its files; and hostile files (truncated, unknown tag types, absurd
//! counts, IFD loops, zero-size tiles, offsets past the end, corrupt tile
//! bytes, an undecodable codec) that must end in exit code 1 and a message
//! naming the file: never a panic's 101, a signal, or a hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geotiff")
}

#[test]
fn every_corpus_file_reads_as_gdal_reads_it() {
    let mut cmd = Command::new(crate::util::python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/compare_read.py"))
        .arg(env!("CARGO_BIN_EXE_tilestack"));
    // every codec of the corpus, LERC included, is read and compared
    let out = cmd.output().expect("running compare_read.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tilestack read differs from rasterio:\n{stdout}\n{stderr}"
    );
    // the summary line: every read of every file matched
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(corpus().join("MANIFEST.json")).expect("MANIFEST.json"),
    )
    .expect("MANIFEST.json is JSON");
    let files = manifest["files"].as_array().expect("files").len();
    assert!(files >= 60, "{files} corpus files");
    assert!(
        stdout.contains(&format!("{files} files,")) && stdout.contains(" 0 mismatch"),
        "{stdout}"
    );
}

fn info(file: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tilestack"))
        .args(["info", "--json"])
        .arg(corpus().join(file))
        .output()
        .expect("running tilestack info");
    assert!(
        out.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("info --json prints JSON")
}

#[test]
fn info_reports_layout_type_codec_overviews_and_cog_validity() {
    let v = info("rgbn_uint8_pixel_deflate.tif");
    assert_eq!(v["bands"], 4);
    assert_eq!(v["sample_type"], "u8");
    assert_eq!(v["compression"], "DEFLATE");
    assert_eq!(v["planar_configuration"], "contig");
    assert_eq!(v["layout"]["kind"], "tiles");
    assert_eq!(v["layout"]["tile_width"], 32);
    assert_eq!(
        (v["width"].clone(), v["height"].clone()),
        (120.into(), 90.into())
    );
    assert_eq!(v["crs"], "EPSG:32610");

    let v = info("strip_uint8_none_short_last.tif");
    assert_eq!(v["compression"], "none");
    assert_eq!(v["layout"]["kind"], "strips");
    assert_eq!(v["layout"]["rows_per_strip"], 16);
    assert_eq!(v["layout"]["strips"], 6); // 5 × 16 + a short strip of 10

    let v = info("rgbn_uint16_planar_deflate_pred2.tif");
    assert_eq!(v["planar_configuration"], "separate");
    assert_eq!(v["predictor"], 2);
    assert_eq!(v["sample_type"], "u16");

    let v = info("visual_cog_rgb_uint8.tif");
    assert_eq!(v["cog"]["valid"], true, "{}", v["cog"]);
    assert!(!v["overviews"].as_array().unwrap().is_empty());

    // overviews added after the image: their IFDs and tiles come after it
    let v = info("overviews_uint16_gtiff.tif");
    assert_eq!(
        v["overviews"],
        serde_json::json!([[100, 100], [50, 50], [25, 25]])
    );
    assert_eq!(v["cog"]["valid"], false);
    let errors = v["cog"]["errors"].to_string();
    assert!(errors.contains("overview"), "{errors}");

    let v = info("bigtiff_bigendian_int16.tif");
    assert_eq!(v["bigtiff"], true);
    assert_eq!(v["byte_order"], "big-endian");
    assert_eq!(v["sample_type"], "i16");

    let v = info("scale_offset_uint16_2band.tif");
    assert_eq!(v["scale"], serde_json::json!([0.0001, 0.5]));
    assert_eq!(v["offset"], serde_json::json!([-0.1, 10.0]));

    let v = info("mask_uint8_internal.tif");
    let roles: Vec<&str> = v["ifds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["image", "mask"]);

    assert!(
        info("sparse_int16_nodata.tif")["sparse_blocks"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(info("sparse_int16_nodata.tif")["nodata"], -9999.0);
    assert_eq!(info("nodata_float32_nan.tif")["nodata"], "NaN");
    let v = info("dtype_uint12_deflate.tif");
    assert_eq!(
        (v["sample_type"].clone(), v["bits_per_sample"].clone()),
        ("u16".into(), 12.into())
    );
    assert_eq!(info("dtype_float16.tif")["sample_type"], "f16");
    for (file, codec) in [
        ("codec_lerc_float32.tif", "LERC"),
        ("codec_webp_rgb_lossy.tif", "WebP"),
        ("codec_lzma_uint16.tif", "LZMA"),
        ("codec_jpeg_uint8.tif", "JPEG"),
        ("codec_packbits_uint8.tif", "PackBits"),
        ("pred2_int16_zstd.tif", "ZSTD"),
        ("codec_lzw_uint8.tif", "LZW"),
    ] {
        assert_eq!(info(file)["compression"], codec, "{file}");
    }
}

/// Runs `tilestack ARGS` with a 60 s deadline and a 4 GiB address-space
/// limit (an allocation from a hostile count fails, it cannot take the
/// machine): `(exit code, stderr)`; a signal or a hang fails the test.
fn run_bounded(args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 4194304; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_tilestack"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning tilestack");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for tilestack") {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            let code = status.code().unwrap_or_else(|| {
                panic!("tilestack {args:?} ended by a signal: {status:?}\n{err}")
            });
            return (code, err);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("tilestack {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first IFD's entries of a classic little-endian TIFF: (entry byte
/// offset, tag, type, count, value or offset).
fn entries(b: &[u8]) -> Vec<(usize, u16, u16, u32, u32)> {
    assert_eq!(&b[..4], b"II*\0", "a classic little-endian TIFF");
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let at = u32_at(4) as usize;
    (0..u16_at(at) as usize)
        .map(|i| {
            let e = at + 2 + 12 * i;
            (e, u16_at(e), u16_at(e + 2), u32_at(e + 4), u32_at(e + 8))
        })
        .collect()
}

fn entry(b: &[u8], tag: u16) -> (usize, u16, u16, u32, u32) {
    *entries(b)
        .iter()
        .find(|e| e.1 == tag)
        .unwrap_or_else(|| panic!("tag {tag}"))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Each TileOffsets value (a LONG array stored out of line).
fn tile_offsets(b: &[u8]) -> Vec<(usize, u32)> {
    let (_, _, typ, count, at) = entry(b, 324);
    assert_eq!(typ, 4, "TileOffsets as LONG");
    (0..count as usize)
        .map(|i| {
            let p = at as usize + 4 * i;
            (p, u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]))
        })
        .collect()
}

#[test]
fn hostile_files_exit_1_naming_the_file_never_a_panic_signal_or_hang() {
    let lzw = std::fs::read(corpus().join("codec_lzw_uint8.tif")).unwrap();
    let deflate = std::fs::read(corpus().join("dtype_uint16.tif")).unwrap();
    let zstd = std::fs::read(corpus().join("codec_zstd_uint16.tif")).unwrap();
    type Make = Box<dyn Fn() -> Vec<u8>>;
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let src = lzw.clone();
    let patched = move |f: Patch| -> Make {
        let src = src.clone();
        Box::new(move || {
            let mut b = src.clone();
            f(&mut b);
            b
        })
    };
    // (file name, bytes, what the message must also say; "" = just the name)
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "truncated-header.tif",
            Box::new({
                let s = lzw.clone();
                move || s[..100].to_vec()
            }),
            "",
        ),
        (
            "truncated-tiles.tif",
            Box::new({
                let s = lzw.clone();
                move || {
                    let first_tile = tile_offsets(&s).iter().map(|t| t.1).min().unwrap() as usize;
                    s[..first_tile + 10].to_vec()
                }
            }),
            "",
        ),
        (
            "unknown-tag-type.tif",
            patched(Box::new(|b| {
                let e = entry(b, 324).0;
                put_u16(b, e + 2, 77);
            })),
            "type 77",
        ),
        (
            "absurd-count.tif",
            patched(Box::new(|b| {
                let e = entry(b, 325).0; // TileByteCounts
                put_u32(b, e + 4, u32::MAX);
            })),
            "4294967295",
        ),
        (
            "absurd-size.tif",
            patched(Box::new(|b| {
                let e = entry(b, 256).0; // ImageWidth
                put_u16(b, e + 2, 4); // LONG
                put_u32(b, e + 8, u32::MAX);
            })),
            "limit",
        ),
        (
            "ifd-loop.tif",
            patched(Box::new(|b| {
                let at = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
                let n = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
                put_u32(b, at + 2 + 12 * n, at as u32);
            })),
            "loop",
        ),
        (
            "zero-size-tile.tif",
            patched(Box::new(|b| {
                for tag in [322, 323] {
                    // TileWidth, TileLength
                    let e = entry(b, tag).0;
                    put_u32(b, e + 8, 0);
                }
            })),
            "",
        ),
        (
            "tile-offsets-past-eof.tif",
            patched(Box::new(|b| {
                for (p, _) in tile_offsets(b) {
                    put_u32(b, p, 0x7fff_0000);
                }
            })),
            "",
        ),
        (
            "corrupt-lzw-tile.tif",
            patched(Box::new(|b| {
                for (p, off) in tile_offsets(b) {
                    let _ = p;
                    for k in 0..8 {
                        b[off as usize + k] = 0xff;
                    }
                }
            })),
            "LZW",
        ),
        (
            "corrupt-deflate-tile.tif",
            Box::new({
                let s = deflate.clone();
                move || {
                    let mut b = s.clone();
                    for (_, off) in tile_offsets(&s) {
                        b[off as usize + 2] ^= 0xff;
                    }
                    b
                }
            }),
            "",
        ),
        (
            "corrupt-zstd-tile.tif",
            Box::new({
                let s = zstd.clone();
                move || {
                    let mut b = s.clone();
                    for (_, off) in tile_offsets(&s) {
                        b[off as usize] ^= 0xff;
                    }
                    b
                }
            }),
            "ZSTD",
        ),
        (
            "jpeg2000-codec.tif",
            patched(Box::new(|b| {
                let e = entry(b, 259).0; // Compression
                put_u16(b, e + 8, 34712);
            })),
            "JPEG 2000",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let out = out.to_str().unwrap();
    let mut failures = Vec::new();
    for (name, make, want) in &cases {
        let path = dir.path().join(name);
        std::fs::write(&path, make()).unwrap();
        let p = path.to_str().unwrap();
        let read = ["read", p, "--window", "0,0,120,90", "--out", out];
        let info = ["info", p];
        for args in [&read[..], &info[..]] {
            let (code, err) = run_bounded(args);
            let named = err.contains(name);
            // none of these reaches a panic, even a contained one
            let panicked = err.contains("panicked");
            // `info` only reads the header: bad tile bytes pass it
            let header_only = args[0] == "info"
                && matches!(
                    *name,
                    "truncated-tiles.tif"
                        | "tile-offsets-past-eof.tif"
                        | "corrupt-lzw-tile.tif"
                        | "corrupt-deflate-tile.tif"
                        | "corrupt-zstd-tile.tif"
                        | "jpeg2000-codec.tif"
                        | "zero-size-tile.tif"
                );
            eprintln!(
                "{} {name}: exit {code}: {}",
                args[0],
                err.lines().last().unwrap_or_default()
            );
            if header_only && code == 0 {
                continue;
            }
            if code != 1 || !named || panicked || !err.contains(want) {
                failures.push(format!("{} {name}: exit {code}: {err}", args[0]));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A corrupt tile read through the library: an `Error::Cog` naming the file
/// and tile, whose source is a `DecodeError` naming the codec and the tile,
/// whose source in turn is the decoder's own error.
#[tokio::test]
async fn a_corrupt_tile_is_a_typed_decode_error_with_the_decoder_error_as_source() {
    use tilestack::cog::{DecodeError, DecodeErrorKind, TileCache};
    use tilestack::error::Cause;
    use tilestack::fetch::RetryConfig;
    use tilestack::geo::PixelWindow;
    use tilestack::{CogReader, Error, HttpRangeClient};

    let mut b = std::fs::read(corpus().join("codec_lzw_uint8.tif")).unwrap();
    let tiles = tile_offsets(&b);
    for &(_, off) in &tiles {
        for k in 0..8 {
            b[off as usize + k] = 0xff;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt-lzw.tif");
    std::fs::write(&path, &b).unwrap();
    let href = format!("file://{}", path.display());
    let reader = CogReader::new(
        HttpRangeClient::new(RetryConfig::default()).unwrap(),
        TileCache::new(1 << 20),
    );
    let e = reader
        .read_window(&href, 0, PixelWindow::new(0, 0, 8, 8))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Cog { href: h, message, .. }
            if *h == href && message.starts_with("tile (0, 0) of IFD 0")),
        "{e:?}"
    );
    let d = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<Cause>())
        .and_then(|c| c.get().downcast_ref::<DecodeError>())
        .unwrap_or_else(|| panic!("no DecodeError behind {e:?}"));
    assert_eq!((d.codec, d.ifd, d.x, d.y), ("LZW", 0, 0, 0));
    assert_eq!(d.href, href);
    assert!(
        matches!(
            &d.kind,
            DecodeErrorKind::Codec(_) | DecodeErrorKind::Short { .. }
        ),
        "{:?}",
        d.kind
    );
    if matches!(&d.kind, DecodeErrorKind::Codec(_)) {
        assert!(std::error::Error::source(d).is_some(), "{d:?}");
    }
    // the chain names the file, the tile and the codec, once each
    let chain = e.chain();
    assert!(
        chain.contains(&href) && chain.contains("tile (0, 0)") && chain.contains("LZW decode"),
        "{chain}"
    );
}

/// Photometric interpretation, extra samples, chroma subsampling and the
/// colour conversion a read applies, in `tilestack info --json` (and its
/// text output) on the corpus files that carry them.
#[test]
fn info_reports_photometric_extra_samples_and_subsampling() {
    let v = info("alpha_rgba_uint8_jpeg.tif");
    assert_eq!(v["compression"], "JPEG");
    assert_eq!(v["photometric"], "rgb");
    assert_eq!(v["photometric_code"], 2);
    assert_eq!(
        v["extra_samples"],
        serde_json::json!(["unassociated alpha"])
    );
    assert_eq!(v["bands"], 4);
    assert_eq!(v["ycbcr_subsampling"], Value::Null);
    assert_eq!(v["color_conversion"], Value::Null);

    let v = info("alpha_rgba_uint8_associated.tif");
    assert_eq!(v["extra_samples"], serde_json::json!(["associated alpha"]));
    let v = info("extra_rgb_uint8_2unspecified.tif");
    assert_eq!(v["bands"], 5);
    assert_eq!(
        v["extra_samples"],
        serde_json::json!(["unspecified", "unspecified"])
    );

    for file in [
        "naip_like_ycbcr_jpeg_cog.tif",
        "codec_jpeg_rgb_ycbcr.tif",
        "jpeg_ycbcr_striped.tif",
    ] {
        let v = info(file);
        assert_eq!(v["photometric"], "ycbcr", "{file}");
        assert_eq!(v["photometric_code"], 6, "{file}");
        assert_eq!(v["ycbcr_subsampling"], serde_json::json!([2, 2]), "{file}");
        assert_eq!(v["color_conversion"], "ycbcr_to_rgb", "{file}");
        assert_eq!(v["extra_samples"], serde_json::json!([]), "{file}");
    }
    let v = info("naip_like_ycbcr_jpeg_cog.tif");
    assert_eq!(v["cog"]["valid"], true, "{}", v["cog"]);
    assert_eq!(v["layout"]["tile_width"], 512);
    assert_eq!(v["overviews"], serde_json::json!([[300, 260]]));

    for (file, sample_type, conversion) in [
        ("cmyk_uint8.tif", "u8", Value::from("cmyk_to_rgba")),
        ("cmyk_int8.tif", "i8", Value::from("cmyk_to_rgba")),
        ("cmyk_uint16_raw.tif", "u16", Value::Null),
    ] {
        let v = info(file);
        assert_eq!(v["photometric"], "cmyk", "{file}");
        assert_eq!(v["photometric_code"], 5, "{file}");
        assert_eq!(v["sample_type"], sample_type, "{file}");
        assert_eq!(v["color_conversion"], conversion, "{file}");
    }
    assert_eq!(info("miniswhite_uint8.tif")["photometric"], "miniswhite");
    assert_eq!(info("dtype_uint8.tif")["photometric"], "minisblack");

    // the text output says the same
    let out = Command::new(env!("CARGO_BIN_EXE_tilestack"))
        .arg("info")
        .arg(corpus().join("naip_like_ycbcr_jpeg_cog.tif"))
        .output()
        .expect("running tilestack info");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("photometric:  ycbcr (6), chroma subsampled 2×2, read as RGB"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tilestack"))
        .arg("info")
        .arg(corpus().join("alpha_rgba_uint8_jpeg.tif"))
        .output()
        .expect("running tilestack info");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("extra:        unassociated alpha (read as band 4)"),
        "{text}"
    );
}

/// The JPEG tiles' byte ranges of a classic little-endian tiled TIFF:
/// (offset, count) per tile (TileByteCounts as SHORT or LONG).
fn jpeg_tiles(b: &[u8]) -> Vec<(usize, usize)> {
    let (_, _, typ, count, at) = entry(b, 325);
    let counts: Vec<usize> = (0..count as usize)
        .map(|i| match typ {
            3 => {
                let p = at as usize + 2 * i;
                usize::from(u16::from_le_bytes([b[p], b[p + 1]]))
            }
            _ => {
                let p = at as usize + 4 * i;
                u32::from_le_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]) as usize
            }
        })
        .collect();
    tile_offsets(b)
        .iter()
        .zip(counts)
        .map(|(&(_, off), n)| (off as usize, n))
        .collect()
}

/// Hostile JPEG tiles: cut short, an absurd frame size, a component count
/// that is not the file's, a corrupt quantization table, garbage entropy
/// data.
/// Each read ends in exit 1 naming the file (never a panic, contained or
/// not), and the message names JPEG where the tile is what is wrong.
#[test]
fn hostile_jpeg_tiles_exit_1_naming_the_file() {
    let src = std::fs::read(corpus().join("codec_jpeg_rgb_ycbcr.tif")).unwrap();
    let tiles = jpeg_tiles(&src);
    fn find(b: &[u8], from: usize, to: usize, marker: u8) -> usize {
        (from..to - 1)
            .find(|&i| b[i] == 0xFF && b[i + 1] == marker)
            .unwrap_or_else(|| panic!("marker {marker:02X}"))
    }
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "jpeg-truncated.tif",
            Box::new(|b: &mut Vec<u8>| {
                // every tile's byte count cut to 40 bytes: mid-header
                let (_, _, typ, count, at) = entry(b, 325);
                for i in 0..count as usize {
                    if typ == 3 {
                        put_u16(b, at as usize + 2 * i, 40);
                    } else {
                        put_u32(b, at as usize + 4 * i, 40);
                    }
                }
            }),
            "JPEG",
        ),
        (
            "jpeg-absurd-frame.tif",
            Box::new({
                let tiles = tiles.clone();
                move |b: &mut Vec<u8>| {
                    for &(off, n) in &tiles {
                        let sof = find(b, off, off + n, 0xC0);
                        // height, width: 65535 × 65535
                        for k in 5..9 {
                            b[sof + k] = 0xFF;
                        }
                    }
                }
            }),
            "65535",
        ),
        (
            "jpeg-wrong-components.tif",
            Box::new({
                let tiles = tiles.clone();
                move |b: &mut Vec<u8>| {
                    for &(off, n) in &tiles {
                        let sof = find(b, off, off + n, 0xC0);
                        // the frame declares 2 components (its segment keeps 3)
                        b[sof + 9] = 2;
                    }
                }
            }),
            "JPEG",
        ),
        (
            "jpeg-corrupt-tables.tif",
            Box::new(|b: &mut Vec<u8>| {
                let (_, _, _, n, at) = entry(b, 347); // JPEGTables
                let (at, n) = (at as usize, n as usize);
                // GDAL's JPEGTABLESMODE=1: quantization tables only
                let dqt = find(b, at, at + n, 0xDB);
                // precision 2, table 5: no such thing
                b[dqt + 4] = 0x25;
            }),
            "JPEG",
        ),
        (
            "jpeg-garbage-scan.tif",
            Box::new({
                let tiles = tiles.clone();
                move |b: &mut Vec<u8>| {
                    for &(off, n) in &tiles {
                        let sos = find(b, off, off + n, 0xDA);
                        let len = usize::from(b[sos + 2]) << 8 | usize::from(b[sos + 3]);
                        b[sos + 2 + len..off + n - 2].fill(0xFE);
                    }
                }
            }),
            "",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let out = out.to_str().unwrap();
    let mut failures = Vec::new();
    for (name, patch, want) in &cases {
        let mut b = src.clone();
        patch(&mut b);
        let path = dir.path().join(name);
        std::fs::write(&path, &b).unwrap();
        let p = path.to_str().unwrap();
        let (code, err) = run_bounded(&["read", p, "--window", "0,0,120,90", "--out", out]);
        eprintln!(
            "{name}: exit {code}: {}",
            err.lines().last().unwrap_or_default()
        );
        // garbage entropy data may decode to garbage pixels (as in libjpeg):
        // then exit 0 is right; a failure must still be clean
        let garbage_ok = *name == "jpeg-garbage-scan.tif" && code == 0;
        if garbage_ok {
            continue;
        }
        if code != 1 || !err.contains(name) || err.contains("panicked") || !err.contains(want) {
            failures.push(format!("{name}: exit {code}: {err}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
