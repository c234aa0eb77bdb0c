//! `tilestack info HREF [--json]`: what a GeoTIFF's header says — what a
//! user checks first (like `gdalinfo` or `rio cogeo info`), read through the
//! same fetch layer and header parser as every pixel read. A Zarr array
//! href (a `.zarr` path component) prints the array's metadata instead:
//! format, shape, chunks, shards, codecs, CF attributes, georeference.

use anyhow::Result;
use serde_json::{Value, json};
use tilestack::cog::{CogHeader, IfdInfo, TileCache};
use tilestack::fetch::RetryConfig;
use tilestack::zarr::{ArrayMeta, ZarrReader, is_zarr_href};
use tilestack::{CogReader, HttpRangeClient};

use crate::args::InfoArgs;

/// `tilestack info`.
pub(crate) async fn run(a: &InfoArgs) -> Result<()> {
    let href = href_url(&a.href)?;
    if is_zarr_href(&href) {
        return run_zarr(&href, a.json).await;
    }
    let reader = CogReader::new(
        HttpRangeClient::new(RetryConfig::default())?,
        TileCache::new(1 << 20),
    );
    let h = reader.header(&href).await?;
    let info = describe(&h);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&h, &info);
    }
    Ok(())
}

/// `tilestack info` on a Zarr array.
async fn run_zarr(href: &str, as_json: bool) -> Result<()> {
    let reader = ZarrReader::new(
        HttpRangeClient::new(RetryConfig::default())?,
        TileCache::new(1 << 20),
    );
    let m = reader.array(href).await?;
    // an array without a georeference is still described
    let geo = reader.georef(href).await;
    let info = describe_zarr(&m, geo.as_ref().ok(), geo.as_ref().err());
    if as_json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        for (k, v) in info.as_object().into_iter().flatten() {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            println!("{:<14}{v}", format!("{k}:"));
        }
    }
    Ok(())
}

fn describe_zarr(
    m: &ArrayMeta,
    geo: Option<&tilestack::zarr::ZarrGeo>,
    geo_error: Option<&tilestack::Error>,
) -> Value {
    let codecs =
        |p: &tilestack::zarr::Pipeline| p.codecs.iter().map(|c| c.name()).collect::<Vec<_>>();
    let cf = m.cf();
    let num = |v: Option<f64>| {
        v.map_or(Value::Null, |v| {
            if v.is_finite() {
                json!(v)
            } else {
                json!(v.to_string())
            }
        })
    };
    json!({
        "href": m.href(),
        "store": m.store,
        "array": m.path,
        "format": format!("{:?}", m.format).to_lowercase(),
        "shape": m.shape,
        "data_type": m.dtype.name(),
        "chunks": m.chunk_shape,
        "shard_inner_chunks": m.pipeline.sharding.as_ref().map(|s| s.chunk_shape.clone()),
        "codecs": match &m.pipeline.sharding {
            Some(s) => json!({"sharding_indexed": {"inner": codecs(&s.inner),
                "index_location": format!("{:?}", s.index_location).to_lowercase(),
                "index_crc32c": s.index_crc32c}}),
            None => json!(codecs(&m.pipeline)),
        },
        "byte_order": format!("{:?}", m.pipeline.sharding.as_ref().map_or(m.pipeline.endian, |s| s.inner.endian)).to_lowercase(),
        "fill_value": num(Some(m.fill_value)),
        "dimensions": m.dimension_names,
        "scale_factor": num(cf.scale_factor),
        "add_offset": num(cf.add_offset),
        "nodata": num(cf.nodata),
        "crs": geo.and_then(|g| g.epsg).map(|e| format!("{e}")),
        "transform": geo.map(|g| json!([g.transform.x0, g.transform.dx, 0.0, g.transform.y0, 0.0, g.transform.dy])),
        "georeference": match (geo, geo_error) {
            (Some(g), _) => json!(format!("{:?}", g.source)),
            (None, Some(e)) => json!(e.chain()),
            _ => Value::Null,
        },
    })
}

/// A local path becomes a `file://` URL (absolute); URLs pass unchanged.
pub(crate) fn href_url(href: &str) -> Result<String> {
    if href.contains("://") {
        return Ok(href.to_string());
    }
    let path = std::path::Path::new(href);
    let abs =
        std::fs::canonicalize(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(format!("file://{}", abs.display()))
}

fn sample_type(i: &IfdInfo) -> String {
    match i.sample_type {
        Some(t) => format!("{t:?}").to_lowercase(),
        None => format!("unsupported ({} bits)", i.bits_per_sample),
    }
}

fn layout(i: &IfdInfo) -> Value {
    if i.striped {
        json!({"kind": "strips", "rows_per_strip": i.tile_height, "strips": i.tiles_down})
    } else if i.tile_width > 0 {
        json!({"kind": "tiles", "tile_width": i.tile_width, "tile_height": i.tile_height,
               "tiles_across": i.tiles_across, "tiles_down": i.tiles_down})
    } else {
        json!({"kind": "none"})
    }
}

/// ExtraSamples values by name (TIFF tag 338).
fn extra_samples(i: &IfdInfo) -> Vec<&'static str> {
    i.extra_samples
        .iter()
        .map(|e| match e {
            0 => "unspecified",
            1 => "associated alpha",
            2 => "unassociated alpha",
            _ => "unknown",
        })
        .collect()
}

/// How the stored samples become the bands a read returns, where they are
/// not the samples as stored (as GDAL converts them).
fn color_conversion(i: &IfdInfo) -> Option<&'static str> {
    if i.photometric == 6 && i.compression == 7 && !i.planar {
        Some("ycbcr_to_rgb")
    } else if i.cmyk_as_rgba() {
        Some("cmyk_to_rgba")
    } else {
        None
    }
}

fn role(index: usize, i: &IfdInfo) -> &'static str {
    match (index, i.is_mask()) {
        (0, _) => "image",
        (_, true) => "mask",
        _ => "overview",
    }
}

/// Everything `info` reports, as one JSON value (the text output prints the same).
fn describe(h: &CogHeader) -> Value {
    let main = &h.ifds[0];
    let (errors, warnings) = h.cog_layout();
    let sparse = main.tile_byte_counts.iter().filter(|&&n| n == 0).count();
    let num = |v: Option<f64>| {
        v.map_or(Value::Null, |v| {
            if v.is_finite() {
                json!(v)
            } else {
                json!(v.to_string())
            }
        })
    };
    json!({
        "href": h.href,
        "width": h.width,
        "height": h.height,
        "bands": main.bands(),
        "sample_type": sample_type(main),
        "bits_per_sample": main.bits_per_sample,
        "compression": main.compression_name(),
        "compression_code": main.compression,
        "predictor": main.predictor,
        "planar_configuration": if main.planar { "separate" } else { "contig" },
        "photometric": main.photometric_name(),
        "photometric_code": main.photometric,
        "extra_samples": extra_samples(main),
        "ycbcr_subsampling": main.ycbcr_subsampling.map(|(h, v)| json!([h, v])),
        "color_conversion": color_conversion(main),
        "layout": layout(main),
        "sparse_blocks": sparse,
        "bigtiff": h.bigtiff,
        "byte_order": if h.little_endian() { "little-endian" } else { "big-endian" },
        "crs": h.epsg.map(|e| format!("{e}")),
        "transform": h.transform.map(|t| json!([t.x0, t.dx, 0.0, t.y0, 0.0, t.dy])),
        "nodata": num(h.nodata),
        "scale": h.scale.iter().map(|v| num(*v)).collect::<Vec<_>>(),
        "offset": h.offset.iter().map(|v| num(*v)).collect::<Vec<_>>(),
        "ifds": h.ifds.iter().enumerate().map(|(k, i)| json!({
            "ifd": k,
            "role": role(k, i),
            "offset": h.ifd_offsets.get(k),
            "width": i.width,
            "height": i.height,
            "bands": i.bands(),
            "sample_type": sample_type(i),
            "compression": i.compression_name(),
            "layout": layout(i),
        })).collect::<Vec<_>>(),
        "overviews": h.ifds.iter().enumerate().skip(1).filter(|(_, i)| !i.is_mask())
            .map(|(_, i)| json!([i.width, i.height])).collect::<Vec<_>>(),
        "cog": {"valid": errors.is_empty(), "errors": errors, "warnings": warnings},
    })
}

fn print_text(h: &CogHeader, v: &Value) {
    let main = &h.ifds[0];
    let s = |k: &str| match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("file:         {}", h.href);
    println!(
        "size:         {} × {} px, {} band(s)",
        h.width,
        h.height,
        main.bands()
    );
    println!(
        "samples:      {} ({} bits)",
        s("sample_type"),
        main.bits_per_sample
    );
    println!(
        "compression:  {} ({}), predictor {}",
        main.compression_name(),
        main.compression,
        main.predictor
    );
    println!(
        "interleave:   {}",
        if main.planar {
            "band (planar, separate)"
        } else {
            "pixel (contig)"
        }
    );
    let mut colour = format!("{} ({})", main.photometric_name(), main.photometric);
    if let Some((h, v)) = main.ycbcr_subsampling {
        colour += &format!(", chroma subsampled {h}×{v}");
    }
    match color_conversion(main) {
        Some("ycbcr_to_rgb") => colour += ", read as RGB (as GDAL converts it)",
        Some(_) => colour += ", read as RGBA (as GDAL converts 8-bit CMYK)",
        None => {}
    }
    println!("photometric:  {colour}");
    if !main.extra_samples.is_empty() {
        let first = (main.bands() + 1).saturating_sub(main.extra_samples.len());
        let which = if first == main.bands() {
            format!("band {first}")
        } else {
            format!("bands {first}–{}", main.bands())
        };
        println!(
            "extra:        {} (read as {which})",
            extra_samples(main).join(", ")
        );
    }
    if main.striped {
        println!(
            "layout:       strips of {} rows ({} strips)",
            main.tile_height, main.tiles_down
        );
    } else {
        println!(
            "layout:       tiles {} × {} ({} × {})",
            main.tile_width, main.tile_height, main.tiles_across, main.tiles_down
        );
    }
    println!(
        "format:       {}, {}",
        if h.bigtiff { "BigTIFF" } else { "classic TIFF" },
        s("byte_order")
    );
    println!("crs:          {}", s("crs"));
    match h.transform {
        Some(t) => println!(
            "transform:    origin ({}, {}), pixel size ({}, {})",
            t.x0, t.y0, t.dx, t.dy
        ),
        None => println!("transform:    -"),
    }
    println!("nodata:       {}", s("nodata"));
    for (b, (sc, of)) in h.scale.iter().zip(&h.offset).enumerate() {
        if sc.is_some() || of.is_some() {
            println!(
                "band {}:       scale {}, offset {}",
                b + 1,
                sc.map_or("-".into(), |v| v.to_string()),
                of.map_or("-".into(), |v| v.to_string())
            );
        }
    }
    if v["sparse_blocks"].as_u64().unwrap_or(0) > 0 {
        println!(
            "sparse:       {} empty blocks (read as nodata, or 0)",
            v["sparse_blocks"]
        );
    }
    println!("ifds:");
    for (k, i) in h.ifds.iter().enumerate() {
        let what = if i.striped {
            format!("strips of {} rows", i.tile_height)
        } else {
            format!("tiles {}×{}", i.tile_width, i.tile_height)
        };
        println!(
            "  {k:>3}  {:<8} {:>6} × {:<6} {}, {}, at byte {}",
            role(k, i),
            i.width,
            i.height,
            what,
            i.compression_name(),
            h.ifd_offsets.get(k).map_or("-".into(), |o| o.to_string())
        );
    }
    let cog = &v["cog"];
    if cog["valid"].as_bool().unwrap_or(false) {
        println!("COG layout:   valid");
    } else {
        println!("COG layout:   NOT valid");
    }
    for e in cog["errors"].as_array().into_iter().flatten() {
        println!("  error:   {}", e.as_str().unwrap_or_default());
    }
    for w in cog["warnings"].as_array().into_iter().flatten() {
        println!("  warning: {}", w.as_str().unwrap_or_default());
    }
}
