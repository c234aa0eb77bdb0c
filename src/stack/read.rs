//! One read of a stack: a scene's band window fetched (or its cached
//! tiles), warped to the stack's grid on a blocking thread, harmonized and
//! scaled. [`StackPlan::load`](crate::stack::StackPlan::load) runs many at
//! once. Two sources: COGs ([`CogReader`]) and arrays of Zarr stores
//! ([`ZarrReader`], chosen by the asset's
//! [`AssetFormat`]), the latter kept beside the COG reader and sharing its
//! client and tile cache, so one byte budget bounds both.

use ndarray::Array2;

use crate::cog::CogReader;
use crate::cog::window::TileWindow;
use crate::error::{Error, Result};
use crate::geo::warp::{Resampling, warp};
use crate::stac::scene::{AssetFormat, CfUse};
use crate::stack::plan::{ReadPlan, StackPlan};
use crate::zarr::ZarrReader;
use crate::zarr::meta::{Cf, DataType};

impl StackPlan {
    /// One read: the window (or its tiles), warped to the grid on a blocking
    /// thread, harmonized and scaled.
    pub(crate) async fn read_one(&self, reader: &CogReader, rp: ReadPlan) -> Result<Array2<f32>> {
        let grid = self.grid.clone();
        // Categorical bands (classes, the cloud band) are never blended.
        let resampling = match self.read_bands.get(rp.band) {
            Some(b) if self.request.is_categorical(b) => self.request.resampling.for_categorical(),
            _ => self.request.resampling,
        };
        // Nearest within one CRS samples the cached tiles directly: no
        // window copy, one pass.
        let direct = rp.epsg == grid.epsg && resampling == Resampling::Nearest;
        let (src, wt, (dn_offset, scale_offset)) = match rp.format {
            AssetFormat::Cog => {
                let header = if self.may_use_overview(&rp) {
                    Some(reader.header(&rp.href).await?)
                } else {
                    None
                };
                let Some((ifd, win, wt)) = self.read_level(&rp, header.as_deref())? else {
                    return Ok(Array2::from_elem((grid.height, grid.width), f32::NAN));
                };
                let src = if direct {
                    Source::Tiles(reader.window_tiles(&rp.href, ifd, win).await?)
                } else {
                    Source::Window(reader.read_window(&rp.href, ifd, win).await?)
                };
                (src, wt, (rp.dn_offset, rp.scale_offset))
            }
            AssetFormat::Zarr(cf_use) => {
                // Overviews of a GeoZarr store are other arrays (other
                // hrefs): a Zarr asset is read at its own resolution.
                let zarr = zarr_reader(reader);
                let meta = zarr.array(&rp.href).await?;
                let radiometry =
                    zarr_radiometry(&rp, cf_use, self.request.harmonize, &meta.cf(), meta.dtype);
                let src = if direct {
                    Source::Tiles(zarr.window_tiles(&rp.href, 0, rp.window).await?)
                } else {
                    Source::Window(zarr.read_window(&rp.href, 0, rp.window).await?)
                };
                (src, rp.window_transform, radiometry)
            }
        };
        let epsg = rp.epsg;
        tokio::task::spawn_blocking(move || -> Result<Array2<f32>> {
            let mut out = match src {
                Source::Window(src) => warp(src.view(), &wt, epsg, &grid, resampling)?,
                Source::Tiles(Some(tiles)) => tiles.nearest(&wt, &grid),
                Source::Tiles(None) => Array2::from_elem((grid.height, grid.width), f32::NAN),
            };
            if let Some(k) = dn_offset {
                // Planetary Computer's recipe: clip at the offset, subtract it.
                let k = k as f32;
                out.mapv_inplace(|v| if v.is_nan() { v } else { v.max(k) - k });
            }
            if let Some((scale, offset)) = scale_offset {
                out.mapv_inplace(|v| (v as f64 * scale + offset) as f32);
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::task("warp", e))?
    }
}

/// The Zarr reader kept beside `reader` (made on first use), fetching
/// through its client into its tile cache: one reader, so array metadata
/// and shard indexes are read once per load, dataset or loader.
pub(crate) fn zarr_reader(reader: &CogReader) -> ZarrReader {
    let make = || ZarrReader::new(reader.client().clone(), reader.cache().clone());
    reader.companion(make).unwrap_or_else(make)
}

/// The `(DN offset to subtract, scale/offset)` a read of the Zarr array of
/// `rp` applies, given its CF attributes `cf` and what they do (`cf_use`,
/// see [`CfUse`]), with Sentinel-2 harmonization on or off.
///
/// ```text
/// Declared         → the plan's (the item's raster:bands, harmonized)
/// Sentinel2Counts  → harmonize: (−add_offset / scale_factor, none); off: (none, none)
///                    a float array without CF (reflectance, as GeoZarr
///                    converters write it): harmonize: (none, (10000, 0))
/// Apply            → (none, (scale_factor, add_offset))
/// ```
pub(crate) fn zarr_radiometry(
    rp: &ReadPlan,
    cf_use: CfUse,
    harmonize: bool,
    cf: &Cf,
    dtype: DataType,
) -> (Option<f64>, Option<(f64, f64)>) {
    match cf_use {
        CfUse::Declared => (rp.dn_offset, rp.scale_offset),
        CfUse::Sentinel2Counts if !harmonize => (None, None),
        CfUse::Sentinel2Counts => match (cf.scale_factor, cf.add_offset) {
            // float samples and no CF: reflectance already decoded (EOPF
            // Explorer's GeoZarr stores float32 `(DN − 1000) / 10000`),
            // which is the pre-04.00 count / 10000 whatever the baseline
            (None, None) if matches!(dtype, DataType::F32 | DataType::F64) => {
                (None, Some((REFLECTANCE_COUNTS, 0.0)))
            }
            // nothing in the store: the item's processing baseline decides
            (None, None) => (rp.dn_offset, None),
            (s, o) => (counts_offset(s.unwrap_or(1.0), o.unwrap_or(0.0)), None),
        },
        CfUse::Apply => match (cf.scale_factor, cf.add_offset) {
            (None, None) => (None, None),
            (s, o) => (None, Some((s.unwrap_or(1.0), o.unwrap_or(0.0)))),
        },
    }
}

/// Counts per unit of Sentinel-2 reflectance on the pre-04.00 scale
/// (`reflectance = DN / 10000`).
const REFLECTANCE_COUNTS: f64 = 10000.0;

/// The counts a negative CF `offset` at `scale` stands for (`-0.1` at
/// `0.0001`: 1000), rounded to a whole count when it is one within float
/// error; `None` for no offset, or one that is not a positive count.
fn counts_offset(scale: f64, offset: f64) -> Option<f64> {
    if offset == 0.0 || scale == 0.0 || !scale.is_finite() || !offset.is_finite() {
        return None;
    }
    let k = -offset / scale;
    let r = k.round();
    let k = if (k - r).abs() <= 1e-6 * r.abs().max(1.0) {
        r
    } else {
        k
    };
    (k > 0.0).then_some(k)
}

/// What a read hands to its warp: the window's pixels, or its tiles for a
/// direct nearest sample.
enum Source {
    Window(Array2<f32>),
    Tiles(Option<TileWindow>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EOPF Explorer's GeoZarr stores decode CF into float32 reflectance
    /// (the real r10m/b04 of tests/fixtures/zarr/real: `float32`, no
    /// scale_factor/add_offset, fill NaN): put on the counts scale (×10000),
    /// never 1000 DN subtracted from a reflectance (which clipped every
    /// value to 0). The EOPF v2 product's uint16 counts with their CF
    /// add_offset −0.1 still lose 1000 DN.
    #[test]
    fn zarr_float_reflectance_without_cf_goes_on_the_counts_scale() {
        use crate::zarr::meta::{ArrayMeta, Consolidated};
        let root: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/zarr/real/geozarr-S2A_MSIL2A_20251008T100041_N0511_R122_T32TQM_20251008T122613.zarr/zarr.json"
        ))
        .unwrap();
        let c = Consolidated::from_v3_root(&root);
        let f: ArrayMeta = c
            .array("http://h/g.zarr", "measurements/reflectance/r10m/b04")
            .unwrap()
            .unwrap();
        assert_eq!(f.dtype, DataType::F32);
        let cf = f.cf();
        assert_eq!((cf.scale_factor, cf.add_offset), (None, None));
        let rp = ReadPlan {
            scene: 0,
            band: 0,
            href: f.href(),
            window: crate::geo::grid::PixelWindow::new(0, 0, 1, 1),
            window_transform: crate::geo::grid::GeoTransform::north_up(699960.0, 4700040.0, 10.0),
            epsg: crate::units::Epsg::new(32632).unwrap(),
            nodata: None,
            dn_offset: Some(1000.0),
            scale_offset: None,
            format: AssetFormat::Zarr(CfUse::Sentinel2Counts),
        };
        assert_eq!(
            zarr_radiometry(&rp, CfUse::Sentinel2Counts, true, &cf, f.dtype),
            (None, Some((10000.0, 0.0)))
        );
        // harmonization off: as stored
        assert_eq!(
            zarr_radiometry(&rp, CfUse::Sentinel2Counts, false, &cf, f.dtype),
            (None, None)
        );
        // integer counts without CF: the item's baseline decides, as before
        assert_eq!(
            zarr_radiometry(&rp, CfUse::Sentinel2Counts, true, &cf, DataType::U16),
            (Some(1000.0), None)
        );
        let v2 = Consolidated::from_v2(
            "http://h/p.zarr",
            include_bytes!(
                "../../tests/fixtures/zarr/real/S2A_MSIL2A_20251008T100041_N0511_R122_T32TQM_20251008T122613.zarr/.zmetadata"
            ),
        )
        .unwrap();
        let u = v2
            .array("http://h/p.zarr", "measurements/reflectance/r10m/b04")
            .unwrap()
            .unwrap();
        assert_eq!(
            zarr_radiometry(&rp, CfUse::Sentinel2Counts, true, &u.cf(), u.dtype),
            (Some(1000.0), None)
        );
    }

    #[test]
    fn eopf_offsets_are_whole_counts() {
        assert_eq!(counts_offset(0.0001, -0.1), Some(1000.0));
        assert_eq!(counts_offset(1e-4, 0.0), None);
        assert_eq!(counts_offset(1e-4, 0.1), None);
        assert_eq!(counts_offset(0.0, -0.1), None);
    }
}
