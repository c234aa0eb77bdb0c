//! stac-geoparquet snapshots: the bulk format Planetary Computer publishes its
//! catalogs in, read and written through the `stac` crate's geoarrow encoder.
//!
//! What differs from the `stac` crate's own `from_reader`/`into_writer`, and why:
//! - Reading tolerates assets without `href` (through the same
//!   [`item_from_json`](crate::stac::snapshot::item_from_json) as JSON snapshots): the
//!   crate's reader refuses the whole file for one such asset.
//! - Writing keeps datetimes to the microsecond: the crate's encoder stores
//!   `datetime`, `start_datetime`, … as millisecond timestamps, which would
//!   move Landsat and Sentinel-1 acquisition times (given in µs) and so the
//!   stack metadata built from them. The columns are re-made from the items'
//!   own values as microsecond timestamps (what Python's stac-geoparquet writes).
//! - A null geometry is written as the `bbox`'s rectangle (two where it
//!   crosses the antimeridian), the footprint [`Scene`](crate::stac::scene::Scene) takes
//!   from it anyway: stac-geoparquet requires a geometry, and the encoder
//!   fails on a null one.
//! - Both run under `catch_unwind`: the parquet and geoarrow code has
//!   `expect`s reachable from a malformed file, and a corrupt snapshot must
//!   be an error naming the file, not a crash.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, RecordBatch, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use geoparquet::reader::{GeoParquetReaderBuilder, GeoParquetRecordBatchReader};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use crate::error::{Cause, Error, Result};

/// A finding of our own (no foreign error behind it) as the [`Cause`] that
/// `rows` fails with beside the parquet, arrow and geoarrow errors.
fn finding(m: &str) -> Cause {
    Cause::from_boxed(m.into())
}

/// Reads every item of a stac-geoparquet file.
pub(crate) fn read(path: &Path) -> Result<Vec<stac::Item>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let rows = catch_unwind(AssertUnwindSafe(|| rows(bytes::Bytes::from(bytes))))
        .map_err(|p| {
            Error::config(
                path,
                format!(
                    "not a readable stac-geoparquet file (the parquet reader panicked: {})",
                    crate::runtime::panic_text(p.as_ref())
                ),
            )
        })?
        .map_err(|e| Error::config_because(path, "not a readable stac-geoparquet file", e))?;
    rows.into_iter()
        .map(|row| {
            let f = Value::Object(row);
            let id = f.get("id").and_then(Value::as_str).unwrap_or("<no id>");
            crate::stac::snapshot::item_from_json(&f)
                .map_err(|e| Error::item_because(id, format!("in {}", path.display()), e))
        })
        .collect()
}

/// The file's rows as STAC item JSON (geometry back to GeoJSON, `bbox` back
/// to an array, properties nested again).
fn rows(bytes: bytes::Bytes) -> std::result::Result<Vec<Map<String, Value>>, Cause> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(Cause::new)?;
    let geo = builder
        .geoparquet_metadata()
        .ok_or_else(|| finding("no \"geo\" metadata (a parquet file, but not GeoParquet)"))?
        .map_err(Cause::new)?;
    let schema = builder
        .geoarrow_schema(&geo, true, Default::default())
        .map_err(Cause::new)?;
    let batches = builder.build().map_err(Cause::new)?;
    let reader = GeoParquetRecordBatchReader::try_new(batches, schema).map_err(Cause::new)?;
    stac::geoarrow::json::from_record_batch_reader(reader).map_err(Cause::new)
}

/// Writes `items` as one stac-geoparquet file (zstd, as `stac` writes by default).
pub(crate) fn write(items: &[stac::Item], path: &Path) -> Result<()> {
    if items.is_empty() {
        return Err(Error::config(
            path,
            "no items to write: a stac-geoparquet file takes its schema from its items \
             (save an empty snapshot as .json)",
        ));
    }
    let items = items
        .iter()
        .map(|it| with_geometry(it, path))
        .collect::<Result<Vec<_>>>()?;
    let bytes = catch_unwind(AssertUnwindSafe(|| encode(items)))
        .map_err(|p| {
            Error::config(
                path,
                format!(
                    "stac-geoparquet encoding panicked: {}",
                    crate::runtime::panic_text(p.as_ref())
                ),
            )
        })?
        .map_err(|e| Error::config_because(path, "stac-geoparquet encoding failed", e))?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The item with its `bbox` as geometry where the geometry is null.
fn with_geometry(item: &stac::Item, path: &Path) -> Result<stac::Item> {
    let mut item = item.clone();
    if item.geometry.is_some() {
        return Ok(item);
    }
    let Some(b) = item.bbox else {
        return Err(Error::item(
            item.id.clone(),
            format!(
                "writing {}: no geometry nor bbox (stac-geoparquet needs a geometry)",
                path.display()
            ),
        ));
    };
    let (w, s, e, n) = (b.xmin(), b.ymin(), b.xmax(), b.ymax());
    // the rings Scene::from_item makes of a bbox, vertex for vertex
    let rect = |w: f64, e: f64| serde_json::json!([[[w, s], [e, s], [e, n], [w, n], [w, s]]]);
    let geometry = if w <= e {
        serde_json::json!({"type": "Polygon", "coordinates": rect(w, e)})
    } else {
        serde_json::json!({"type": "MultiPolygon", "coordinates": [rect(w, 180.0), rect(-180.0, e)]})
    };
    item.geometry = Some(serde_json::from_value(geometry).map_err(|e| {
        Error::item_because(
            item.id.clone(),
            format!("writing {}: its bbox as geometry", path.display()),
            e,
        )
    })?);
    Ok(item)
}

/// The file's bytes: `stac`'s encoder and metadata, datetimes in microseconds.
fn encode(items: Vec<stac::Item>) -> std::result::Result<Vec<u8>, Cause> {
    // each row's datetime fields as the items give them, before encoding
    let props: Vec<Map<String, Value>> = items
        .iter()
        .map(|it| match serde_json::to_value(&it.properties) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        })
        .collect();
    let (state, batch) =
        stac::geoparquet::WriterState::new(Default::default(), items).map_err(Cause::new)?;
    let batch = microsecond_datetimes(batch, &props).map_err(Cause::new)?;
    let mut out = Vec::new();
    let options = stac::geoparquet::WriterOptions::default();
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(options.into())).map_err(Cause::new)?;
    writer.write(&batch).map_err(Cause::new)?;
    for kv in state.into_metadata().map_err(Cause::new)? {
        writer.append_key_value_metadata(kv);
    }
    writer.close().map_err(Cause::new)?;
    Ok(out)
}

/// Replaces the encoder's millisecond datetime columns with microsecond ones
/// taken from `props` (row `i` is item `i`). A value that does not parse as
/// RFC 3339 here (the encoder's parser is more permissive) keeps its
/// millisecond value.
fn microsecond_datetimes(
    batch: RecordBatch,
    props: &[Map<String, Value>],
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let ms = column.as_any().downcast_ref::<TimestampMillisecondArray>();
        let (Some(ms), DataType::Timestamp(TimeUnit::Millisecond, tz)) = (ms, field.data_type())
        else {
            fields.push(field.clone());
            columns.push(column.clone());
            continue;
        };
        let us: TimestampMicrosecondArray = ms
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let exact = props
                    .get(i)
                    .and_then(|p| p.get(field.name()))
                    .and_then(Value::as_str)
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|d| d.timestamp_micros());
                m.map(|m| exact.unwrap_or(m.saturating_mul(1000)))
            })
            .collect();
        let us = us.with_timezone_opt(tz.clone());
        fields.push(Arc::new(
            Field::new(field.name(), us.data_type().clone(), field.is_nullable())
                .with_metadata(field.metadata().clone()),
        ));
        columns.push(Arc::new(us));
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
}
