//! The stack's files: `stack.safetensors` (the tensors and their metadata)
//! and `metadata.csv`; and the one safetensors encoding of a stack's
//! tensors and of a header, which the shard files ([`crate::shard`]) use for
//! every sample they hold.

use std::path::Path;

use chrono::NaiveDate;
use ndarray::Array4;

use crate::error::{Error, Result};
use crate::geo::grid::{GeoTransform, GridSpec};
use crate::stack::TileStack;
use crate::units::Epsg;

/// Little-endian bytes of `v` appended to `out`.
pub(crate) fn put_f32s(out: &mut Vec<u8>, v: &[f32]) {
    if cfg!(target_endian = "little") {
        out.extend_from_slice(bytemuck::cast_slice(v));
    } else {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// A header entry: `{"dtype", "shape", "data_offsets": [start, start + len]}`.
pub(crate) fn tensor_entry(
    dtype: &str,
    shape: &[usize],
    start: u64,
    len: u64,
) -> serde_json::Value {
    serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, start + len]})
}

/// A safetensors header from its JSON: the 8-byte length, then the JSON
/// padded with spaces so that the data after it starts on an `align`-byte
/// boundary of the file.
pub(crate) fn frame_header(mut json: Vec<u8>, align: u64) -> Vec<u8> {
    let total = 8 + json.len() as u64;
    let padded = total + (align - total % align) % align;
    json.resize((padded - 8) as usize, b' ');
    let mut out = Vec::with_capacity(padded as usize);
    out.extend_from_slice(&(padded - 8).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// A tensor of a stack file: its name, shape and values.
pub(crate) type NamedTensor<'a> = (&'static str, Vec<usize>, std::borrow::Cow<'a, [f32]>);

impl TileStack {
    /// The stack's tensors in file order, with their shapes: `data`
    /// (`[T, C, H, W]`), then `eo_cloud_cover`, `pct_nans` and
    /// `tile_cloud_fraction` (`[T]`, each padded with NaN or cut to `T`).
    pub(crate) fn tensors(&self) -> [NamedTensor<'_>; 4] {
        use std::borrow::Cow;
        let t = self.days.len();
        let data = match self.data.as_slice() {
            Some(d) => Cow::Borrowed(d),
            None => Cow::Owned(self.data.iter().copied().collect()),
        };
        let per_step = |v: &[f32]| -> Vec<f32> {
            let mut m = vec![f32::NAN; t];
            for (o, x) in m.iter_mut().zip(v) {
                *o = *x;
            }
            m
        };
        [
            ("data", self.data.shape().to_vec(), data),
            (
                "eo_cloud_cover",
                vec![t],
                Cow::Owned(per_step(&self.eo_cloud_cover)),
            ),
            ("pct_nans", vec![t], Cow::Owned(per_step(&self.pct_nans))),
            (
                "tile_cloud_fraction",
                vec![t],
                Cow::Owned(per_step(&self.tile_cloud_fraction)),
            ),
        ]
    }

    /// Writes `stack.safetensors`: tensors `data` (f32 `[T, C, H, W]`),
    /// `eo_cloud_cover`, `pct_nans`, `tile_cloud_fraction` (f32 `[T]`) and
    /// JSON strings in the metadata: `dates`, `bands`, `epsg`, `transform`
    /// (GDAL 6-tuple of the tile), `items`.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn write_safetensors(&self, path: &Path) -> Result<()> {
        let dates: Vec<String> = self.days.iter().map(|d| d.to_string()).collect();
        let meta: std::collections::BTreeMap<&str, String> = [
            ("dates", serde_json::to_string(&dates)),
            ("bands", serde_json::to_string(&self.bands)),
            ("epsg", serde_json::to_string(&self.grid.epsg.code())),
            (
                "transform",
                serde_json::to_string(&self.grid.transform.to_gdal()),
            ),
            ("items", serde_json::to_string(&self.items)),
            ("read_errors", serde_json::to_string(&self.read_errors)),
            ("format", Ok("\"tilestack-stack/1\"".to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
        // Written by hand rather than with `safetensors::serialize`, whose
        // metadata is a HashMap: sorted keys make equal stacks equal files.
        let tensors = self.tensors();
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(&meta).unwrap_or_default(),
        );
        let mut offset = 0u64;
        for (name, shape, values) in &tensors {
            let len = values.len() as u64 * 4;
            header.insert(name.to_string(), tensor_entry("F32", shape, offset, len));
            offset += len;
        }
        let json = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap_or_default();
        let head = frame_header(json, 8);
        // Streamed in 1 MiB pieces: no second copy of the stack in memory.
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
            f.write_all(&head)?;
            let mut buf = Vec::with_capacity(1 << 20);
            for (_, _, values) in &tensors {
                for chunk in values.chunks(1 << 18) {
                    buf.clear();
                    put_f32s(&mut buf, chunk);
                    f.write_all(&buf)?;
                }
            }
            f.flush()
        };
        write().map_err(|e| Error::io(path, e))
    }

    /// Reads a file written by [`TileStack::write_safetensors`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and what is missing or malformed,
    /// with the safetensors, JSON or date parser's error as its source.
    pub fn read_safetensors(path: &Path) -> Result<TileStack> {
        let buf = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: String| Error::config(path, m);
        let st = safetensors::SafeTensors::deserialize(&buf)
            .map_err(|e| Error::config_because(path, "not a safetensors file", e))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&buf)
            .map_err(|e| Error::config_because(path, "not a safetensors file", e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |k: &str| -> Result<serde_json::Value> {
            let s = meta
                .get(k)
                .ok_or_else(|| bad(format!("not a tile stack: metadata has no {k:?}")))?;
            serde_json::from_str(s)
                .map_err(|e| Error::config_because(path, format!("metadata {k:?}"), e))
        };
        let tensor = |k: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = st.tensor(k).map_err(|e| {
                Error::config_because(path, format!("not a tile stack: no tensor {k:?}"), e)
            })?;
            if t.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!(
                    "tensor {k:?} is {:?}, expected F32",
                    t.dtype()
                )));
            }
            let v = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok((t.shape().to_vec(), v))
        };
        let (shape, data) = tensor("data")?;
        let [t, c, h, w] = shape[..] else {
            return Err(bad(format!(
                "tensor \"data\" has shape {shape:?}, expected [T, C, H, W]"
            )));
        };
        let data = Array4::from_shape_vec((t, c, h, w), data).map_err(|e| {
            Error::config_because(path, "tensor \"data\" does not fill its shape", e)
        })?;
        let dates: Vec<String> = serde_json::from_value(field("dates")?)
            .map_err(|e| Error::config_because(path, "dates", e))?;
        let days = dates
            .iter()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|e| Error::config_because(path, format!("date {d:?}"), e))
            })
            .collect::<Result<Vec<_>>>()?;
        let bands: Vec<String> = serde_json::from_value(field("bands")?)
            .map_err(|e| Error::config_because(path, "bands", e))?;
        let epsg: u32 = serde_json::from_value(field("epsg")?)
            .map_err(|e| Error::config_because(path, "epsg", e))?;
        let tr: [f64; 6] = serde_json::from_value(field("transform")?)
            .map_err(|e| Error::config_because(path, "transform", e))?;
        let items: Vec<Vec<String>> = serde_json::from_value(field("items")?)
            .map_err(|e| Error::config_because(path, "items", e))?;
        if days.len() != t || bands.len() != c || items.len() != t {
            return Err(bad(format!(
                "{} dates, {} bands, {} item lists for data of shape {shape:?}",
                days.len(),
                bands.len(),
                items.len()
            )));
        }
        let per_step = |k: &str| -> Result<Vec<f32>> {
            match tensor(k) {
                Ok((s, v)) if s == [t] => Ok(v),
                Ok((s, _)) => Err(bad(format!("tensor {k:?} has shape {s:?}, expected [{t}]"))),
                Err(_) if k == "tile_cloud_fraction" => Ok(vec![f32::NAN; t]),
                Err(e) => Err(e),
            }
        };
        let read_errors: Vec<String> = match meta.get("read_errors") {
            Some(v) => serde_json::from_str(v)
                .map_err(|e| Error::config_because(path, "read_errors", e))?,
            None => Vec::new(),
        };
        Ok(TileStack {
            read_errors,
            eo_cloud_cover: per_step("eo_cloud_cover")?,
            pct_nans: per_step("pct_nans")?,
            tile_cloud_fraction: per_step("tile_cloud_fraction")?,
            data,
            bands,
            days,
            items,
            grid: GridSpec {
                epsg: Epsg::new(epsg)?,
                transform: GeoTransform::from_gdal(tr),
                width: w,
                height: h,
            },
        })
    }

    /// Writes `metadata.csv`: `date,eo_cloud_cover,pct_nans,tile_cloud_fraction,items`
    /// (items joined by `;`, empty cells for NaN).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn write_metadata_csv(&self, path: &Path) -> Result<()> {
        let num = |v: f32| {
            if v.is_nan() {
                String::new()
            } else {
                format!("{v}")
            }
        };
        let mut s = String::from("date,eo_cloud_cover,pct_nans,tile_cloud_fraction,items\n");
        for i in 0..self.len() {
            s.push_str(&format!(
                "{},{},{},{},{}\n",
                self.days[i],
                num(self.eo_cloud_cover[i]),
                num(self.pct_nans[i]),
                num(self.tile_cloud_fraction[i]),
                self.items[i].join(";")
            ));
        }
        std::fs::write(path, s).map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> TileStack {
        let mut data = Array4::from_elem((2, 2, 3, 3), 1.5f32);
        data[[1, 0, 0, 0]] = f32::NAN;
        TileStack {
            data,
            bands: vec!["B04".into(), "mask".into()],
            days: vec![
                NaiveDate::from_ymd_opt(2019, 8, 1).unwrap(),
                NaiveDate::from_ymd_opt(2019, 8, 2).unwrap(),
            ],
            eo_cloud_cover: vec![3.0, f32::NAN],
            pct_nans: vec![0.0, 100.0 / 9.0],
            tile_cloud_fraction: vec![f32::NAN, f32::NAN],
            items: vec![vec!["a".into()], vec![]],
            grid: GridSpec {
                epsg: Epsg::new(32610).unwrap(),
                transform: GeoTransform::north_up(557_700.0, 4_186_220.0, 10.0),
                width: 3,
                height: 3,
            },
            read_errors: vec![],
        }
    }

    #[test]
    fn safetensors_round_trip_and_bad_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.safetensors");
        let s = tiny();
        s.write_safetensors(&p).unwrap();
        let p2 = d.path().join("s2.safetensors");
        s.write_safetensors(&p2).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(&p2).unwrap(),
            "equal stacks, equal files"
        );
        let r = TileStack::read_safetensors(&p).unwrap();
        assert_eq!(r.bands, s.bands);
        assert_eq!(r.days, s.days);
        assert_eq!(r.items, s.items);
        assert_eq!(r.grid, s.grid);
        assert!(r.data[[1, 0, 0, 0]].is_nan());
        assert_eq!(r.data[[0, 1, 2, 2]], 1.5);
        let bad = d.path().join("x.safetensors");
        std::fs::write(&bad, b"not a stack").unwrap();
        let e = TileStack::read_safetensors(&bad).unwrap_err().to_string();
        assert!(e.contains("x.safetensors"), "{e}");
        let csv = d.path().join("m.csv");
        s.write_metadata_csv(&csv).unwrap();
        let text = std::fs::read_to_string(csv).unwrap();
        assert_eq!(text.lines().nth(2).unwrap(), "2019-08-02,,11.111111,,");
    }
}
