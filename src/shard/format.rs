//! The shard file: a safetensors file whose samples are laid out one after
//! another, each sample's tensors contiguous and 64-byte aligned, with the
//! samples' index entries in its `__metadata__` (so a shard describes
//! itself, and a rerun of `materialize` rebuilds the index from the shards
//! it keeps).
//!
//! Per sample `k` (its dataset index, six digits), in this order:
//!
//! | tensor | dtype | shape |
//! |---|---|---|
//! | `{k}/data` | F32 | `[T, C, H, W]`, NaN = no data |
//! | `{k}/eo_cloud_cover` | F32 | `[T]` |
//! | `{k}/pct_nans` | F32 | `[T]` |
//! | `{k}/tile_cloud_fraction` | F32 | `[T]` |
//! | `{k}/labels` | U8 | `[L, T, H, W]`: 0/1 (GeoJSON) or class indexes (raster), when the dataset has labels |
//! | `{k}/masks` | U8 | `[M, H, W]`, 0/1 (when it has masks) |
//! | `{k}/inputs/{name}/data` | F32 | `[T', C', H, W]` of each input after the first, in config order (`T'` = 1 when static) |
//! | `{k}/inputs/{name}/eo_cloud_cover`, `…/pct_nans`, `…/tile_cloud_fraction` | F32 | `[T']` |
//! | `{k}/inputs/{name}/has_data` | U8 | `[T']`, 1 when a scene filled the step |
//! | `{k}/_pad` | U8 | `[p]`, zeros up to the next 64-byte boundary (when needed) |
//!
//! A sample that failed to load has no tensors; its entry holds the error.

use std::collections::BTreeMap;

use crate::dataset::inputs::{InputLayout, InputStack};
use crate::error::{Error, Result};
use crate::shard::index::SampleEntry;
use crate::stack::file::{frame_header, put_f32s, tensor_entry};
use crate::stack::{Layers, TileStack};

/// `__metadata__["format"]` of a shard.
pub(crate) const SHARD_FORMAT: &str = "tilestack-shard/1";

/// Every sample's region starts on this boundary (in the file).
pub(crate) const ALIGN: u64 = 64;

/// One sample's bytes: its tensors, in the order above, without the pad.
#[derive(Debug)]
pub(crate) struct Region {
    pub(crate) bytes: Vec<u8>,
    /// The tensors: name suffix, dtype, shape, byte length.
    pub(crate) tensors: Vec<(String, &'static str, Vec<usize>, usize)>,
}

/// A sample's region from its stack, layers and other inputs (one per
/// layout of `layouts`, in that order).
///
/// # Errors
/// [`Error::Invalid`] when an input is not the one its layout describes
/// (name, shape).
pub(crate) fn encode(
    stack: &TileStack,
    layers: &Layers,
    inputs: &[InputStack],
    layouts: &[InputLayout],
) -> Result<Region> {
    let (t, c, h, w) = stack.data.dim();
    let px = h * w;
    let (labels, masks) = (&layers.labels, &layers.masks);
    let data_bytes = t * c * px * 4;
    let mut bytes = Vec::with_capacity(data_bytes + 12 * t + (labels.len() * t + masks.len()) * px);
    let mut tensors = Vec::with_capacity(6);
    for (name, shape, values) in stack.tensors() {
        put_f32s(&mut bytes, &values);
        tensors.push((name.to_string(), "F32", shape, values.len() * 4));
    }
    if !labels.is_empty() {
        for layer in labels {
            for ti in 0..t {
                match layer.get(ti) {
                    Some(step) if step.len() == px => bytes.extend_from_slice(step),
                    _ => bytes.extend(std::iter::repeat_n(0u8, px)),
                }
            }
        }
        tensors.push((
            "labels".into(),
            "U8",
            vec![labels.len(), t, h, w],
            labels.len() * t * px,
        ));
    }
    if !masks.is_empty() {
        for m in masks {
            if m.len() == px {
                bytes.extend_from_slice(m);
            } else {
                bytes.extend(std::iter::repeat_n(0u8, px));
            }
        }
        tensors.push((
            "masks".into(),
            "U8",
            vec![masks.len(), h, w],
            masks.len() * px,
        ));
    }
    if inputs.len() != layouts.len() {
        return Err(Error::internal(
            "shard",
            format!("{} inputs for {} layouts", inputs.len(), layouts.len()),
        ));
    }
    for (input, layout) in inputs.iter().zip(layouts) {
        let [it, ic, ih, iw] = layout.shape;
        if input.name != layout.name
            || input.stack.data.dim() != (it, ic, ih, iw)
            || input.stack.days.len() != it
            || input.has_data.len() != it
        {
            return Err(Error::invalid(
                "input",
                format!(
                    "{:?} of shape {:?} ({} days) is not its layout's {:?} {:?}",
                    input.name,
                    input.stack.data.shape(),
                    input.stack.days.len(),
                    layout.name,
                    layout.shape
                ),
            ));
        }
        for (name, shape, values) in input.stack.tensors() {
            put_f32s(&mut bytes, &values);
            tensors.push((
                format!("inputs/{}/{name}", layout.name),
                "F32",
                shape,
                values.len() * 4,
            ));
        }
        bytes.extend(input.has_data.iter().map(|&b| u8::from(b)));
        tensors.push((
            format!("inputs/{}/has_data", layout.name),
            "U8",
            vec![it],
            it,
        ));
    }
    Ok(Region { bytes, tensors })
}

/// Zero bytes after a region of `len` bytes up to the next boundary.
pub(crate) fn pad_for(len: u64) -> u64 {
    (ALIGN - len % ALIGN) % ALIGN
}

/// The shard's header (8-byte length + JSON, padded with spaces so that
/// the data starts on a 64-byte boundary) for `regions` (sample index,
/// region) and the metadata; fills in each entry's `offset`.
pub(crate) fn header(
    regions: &[(usize, &Region)],
    entries: &mut [SampleEntry],
    mut meta: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    // Offsets inside the data buffer are known before the header's length:
    // the buffer starts at the (aligned) end of the header.
    let mut tensors = serde_json::Map::new();
    let mut at: u64 = 0;
    let mut starts = Vec::with_capacity(regions.len());
    for (k, r) in regions {
        starts.push(at);
        for (name, dtype, shape, len) in &r.tensors {
            tensors.insert(
                format!("{k:06}/{name}"),
                tensor_entry(dtype, shape, at, *len as u64),
            );
            at += *len as u64;
        }
        let pad = pad_for(r.bytes.len() as u64);
        if pad > 0 {
            tensors.insert(
                format!("{k:06}/_pad"),
                tensor_entry("U8", &[pad as usize], at, pad),
            );
            at += pad;
        }
    }
    // The header's length depends on the entries' offsets, which depend on
    // the header's length: iterate until it is stable (twice at most in
    // practice; the offsets only grow by digits).
    let mut base: u64 = 0;
    for _ in 0..8 {
        for e in entries.iter_mut() {
            if let Some(i) = regions.iter().position(|(k, _)| *k == e.index) {
                e.offset = base + starts[i];
            }
        }
        meta.insert(
            "entries".into(),
            serde_json::to_string(&entries).map_err(json_err)?,
        );
        let mut all = tensors.clone();
        all.insert(
            "__metadata__".into(),
            serde_json::to_value(&meta).map_err(json_err)?,
        );
        let json = serde_json::to_vec(&serde_json::Value::Object(all)).map_err(json_err)?;
        let out = frame_header(json, ALIGN);
        if out.len() as u64 == base {
            return Ok(out);
        }
        base = out.len() as u64;
    }
    Err(Error::internal(
        "shard header",
        "its length did not settle (entries too large)",
    ))
}

fn json_err(e: serde_json::Error) -> Error {
    Error::internal_because("shard header", "cannot write it as JSON", e)
}

/// What is wrong with a shard file's header, as [`parse_header`] and
/// [`header_entries`] find it; the JSON parser's error is the source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Fewer than the 8 bytes of the header's length.
    #[error("shorter than a safetensors header")]
    Short,
    /// The header's length is over the limit.
    #[error("declares a {declared}-byte header (more than {max})")]
    TooLarge {
        /// The length the file declares.
        declared: u64,
        /// The limit.
        max: u64,
    },
    /// The header is not JSON.
    #[error("header is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// `__metadata__` is not a map of strings.
    #[error("__metadata__")]
    Metadata(#[source] serde_json::Error),
    /// `__metadata__.format` is not a shard's.
    #[error("not a tilestack shard (__metadata__.format is {found:?}, expected {SHARD_FORMAT:?})")]
    NotAShard {
        /// The format found, if any.
        found: Option<String>,
    },
    /// `__metadata__` lacks `entries`.
    #[error("__metadata__ has no entries")]
    NoEntries,
    /// `__metadata__.entries` does not parse.
    #[error("__metadata__.entries")]
    Entries(#[source] serde_json::Error),
}

/// The JSON header of a shard file from its first bytes: `(header length
/// including the 8-byte prefix, the header)`. `head` must hold at least 8
/// bytes; returns `Ok(None)` when it holds fewer than the header.
pub(crate) fn parse_header(
    head: &[u8],
    max: u64,
) -> std::result::Result<Option<(u64, serde_json::Value)>, HeaderError> {
    let Some(len) = head.get(..8) else {
        return Err(HeaderError::Short);
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(len);
    let n = u64::from_le_bytes(n);
    if n > max {
        return Err(HeaderError::TooLarge { declared: n, max });
    }
    let end = 8 + n as usize;
    let Some(json) = head.get(8..end) else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_slice(json).map_err(HeaderError::NotJson)?;
    Ok(Some((end as u64, v)))
}

/// The entries a shard's header lists, and its `__metadata__`.
pub(crate) fn header_entries(
    header: &serde_json::Value,
) -> std::result::Result<(Vec<SampleEntry>, BTreeMap<String, String>), HeaderError> {
    let meta: BTreeMap<String, String> = header
        .get("__metadata__")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(HeaderError::Metadata)?
        .unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(SHARD_FORMAT) {
        return Err(HeaderError::NotAShard {
            found: meta.get("format").cloned(),
        });
    }
    let entries = meta
        .get("entries")
        .ok_or(HeaderError::NoEntries)
        .and_then(|s| serde_json::from_str(s).map_err(HeaderError::Entries))?;
    Ok((entries, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_round_up_to_the_boundary() {
        assert_eq!(pad_for(0), 0);
        assert_eq!(pad_for(1), 63);
        assert_eq!(pad_for(64), 0);
        assert_eq!(pad_for(130), 62);
    }

    #[test]
    fn header_lengths_are_aligned_and_parse_back() {
        let r = Region {
            bytes: vec![0; 10],
            tensors: vec![("masks".into(), "U8", vec![1, 2, 5], 10)],
        };
        let mut entries = vec![SampleEntry {
            index: 3,
            ..SampleEntry::default()
        }];
        let meta = BTreeMap::from([("format".to_string(), SHARD_FORMAT.to_string())]);
        let h = header(&[(3, &r)], &mut entries, meta).expect("header");
        assert_eq!(h.len() % 64, 0);
        assert_eq!(entries[0].offset, h.len() as u64);
        let (end, v) = parse_header(&h, 1 << 20).expect("parses").expect("whole");
        assert_eq!(end, h.len() as u64);
        assert_eq!(
            v["000003/masks"]["data_offsets"],
            serde_json::json!([0, 10])
        );
        assert_eq!(v["000003/_pad"]["shape"], serde_json::json!([54]));
        let (back, _) = header_entries(&v).expect("entries");
        assert_eq!(back, entries);
    }

    #[test]
    fn header_errors_are_typed_and_keep_the_json_error() {
        assert!(matches!(parse_header(&[0; 4], 64), Err(HeaderError::Short)));
        let big = 100u64.to_le_bytes();
        assert!(matches!(
            parse_header(&big, 64),
            Err(HeaderError::TooLarge {
                declared: 100,
                max: 64
            })
        ));
        let mut head = 3u64.to_le_bytes().to_vec();
        head.extend_from_slice(b"{x}");
        let e = parse_header(&head, 64).unwrap_err();
        assert!(matches!(e, HeaderError::NotJson(_)), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
        let v = serde_json::json!({"__metadata__": {"format": SHARD_FORMAT, "entries": "[1"}});
        let e = header_entries(&v).unwrap_err();
        assert!(matches!(e, HeaderError::Entries(_)), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
        let v = serde_json::json!({"__metadata__": {"format": "other"}});
        assert!(matches!(
            header_entries(&v),
            Err(HeaderError::NotAShard { found: Some(f) }) if f == "other"
        ));
    }

    #[test]
    fn layers_are_stored_as_they_are_and_inputs_must_fit_their_layout() {
        let grid = crate::geo::grid::GridSpec {
            epsg: crate::units::Epsg::WGS84,
            transform: crate::geo::grid::GeoTransform::north_up(0.0, 0.0, 1.0),
            width: 2,
            height: 1,
        };
        let stack = TileStack {
            data: ndarray::Array4::zeros((1, 1, 1, 2)),
            bands: vec!["a".into()],
            days: vec![chrono::NaiveDate::default()],
            eo_cloud_cover: vec![1.0],
            pct_nans: vec![0.0],
            tile_cloud_fraction: vec![f32::NAN],
            items: vec![vec![]],
            grid,
            read_errors: vec![],
        };
        // class indexes of a raster label, 255 = ignore
        let classes = Layers {
            labels: vec![vec![vec![3, 255]]],
            masks: vec![vec![1, 0]],
        };
        let r = encode(&stack, &classes, &[], &[]).expect("layers encode");
        assert_eq!(r.bytes.len(), 8 + 12 + 2 + 2);
        assert_eq!(&r.bytes[20..], &[3, 255, 1, 0]);
        let input = InputStack {
            name: "s1".into(),
            rule: crate::dataset::TimeRule::Static,
            stack: stack.clone(),
            has_data: vec![true],
            orbit_state: vec![String::new()],
            platform: vec![String::new()],
        };
        let layout = InputLayout {
            name: "s1".into(),
            rule: crate::dataset::TimeRule::Static,
            shape: [1, 1, 1, 2],
            bands: vec!["a".into()],
        };
        let r = encode(
            &stack,
            &Layers::default(),
            std::slice::from_ref(&input),
            std::slice::from_ref(&layout),
        )
        .expect("an input that fits");
        assert_eq!(
            r.bytes.len() as u64,
            8 + 12 + layout.region_bytes().unwrap()
        );
        let names: Vec<&str> = r.tensors.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "data",
                "eo_cloud_cover",
                "pct_nans",
                "tile_cloud_fraction",
                "inputs/s1/data",
                "inputs/s1/eo_cloud_cover",
                "inputs/s1/pct_nans",
                "inputs/s1/tile_cloud_fraction",
                "inputs/s1/has_data"
            ]
        );
        let wide = InputLayout {
            shape: [1, 2, 1, 2],
            ..layout
        };
        let e = encode(&stack, &Layers::default(), &[input], &[wide]).unwrap_err();
        assert!(e.to_string().contains("is not its layout's"), "{e}");
    }
}
