"""Writes tilestack's GeoTIFF corpus with GDAL (through rasterio) into
tests/fixtures/geotiff/, plus MANIFEST.json listing each file's traits.

Usage: python3 tests/py/make_geotiff_corpus.py [OUT_DIR]

Every file is small (at most 200 px a side) and deterministic: pixel values
come from a seeded generator, so rerunning the script with the same GDAL
rewrites the same pixels (the bytes may differ across GDAL versions; the
committed files are the ones the tests read). tests/py/compare_read.py reads
each file with `tilestack read` and with rasterio and compares them, using
the MANIFEST's `tolerance` (largest absolute difference from GDAL's read;
0 = bit-exact) and, where given, `mean_tolerance` (mean absolute difference)
for lossy codecs.

Covered: layouts (tiled, striped incl. a short last strip and one strip,
pixel-interleaved 3/4-band, planar), BigTIFF, big-endian, partial edge tiles,
internal masks, overviews (GTiff and the COG driver), sample types u8 i8 u16
i16 u32 i32 f16 f32 f64 and 12-bit, predictors 2 and 3, codecs none DEFLATE
LZW ZSTD JPEG PackBits LERC (+DEFLATE, +ZSTD) WebP (lossy, lossless) LZMA,
sparse tiles with and without nodata, nodata values, scale/offset metadata,
photometric interpretations (RGB, YCbCr JPEG incl. a NAIP-like COG, CMYK
8-bit read as RGBA and 16-bit read raw, MinIsWhite) and extra samples
(associated and unassociated alpha, unspecified; an RGBA JPEG).
"""

import json
import os
import sys

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.transform import from_origin

W, H = 120, 90  # not multiples of the 32 px tiles: partial edge tiles
CRS = "EPSG:32610"
TRANSFORM = from_origin(560000.0, 4180000.0, 10.0, 10.0)

# dtype -> (low, high) of the generated values (inside the type, clear of
# the nodata values used below)
RANGES = {
    "uint8": (1, 250),
    "int8": (-120, 120),
    "uint16": (1, 60000),
    "int16": (-30000, 30000),
    "uint32": (1, 4_000_000_000),
    "int32": (-2_000_000_000, 2_000_000_000),
    "float32": (-1000.0, 3000.0),
    "float64": (-1e6, 1e6),
}


def pixels(dtype: str, bands: int, seed: int, w: int = W, h: int = H, hi=None) -> np.ndarray:
    """Smooth gradients quantized to 1024 levels plus a little noise, so
    predictors and codecs have work to do and the files stay small (float
    values are binary fractions with a short mantissa)."""
    rng = np.random.default_rng(seed)
    lo, top = RANGES[dtype]
    if hi is not None:
        top = hi
    yy, xx = np.mgrid[0:h, 0:w]
    span = top - lo
    if np.issubdtype(np.dtype(dtype), np.integer):
        step = max(span // 1100, 1)
        noise_step = max(step // 8, 1)
    else:
        step = 2.0 ** np.floor(np.log2(span / 1100))
        noise_step = step / 8
    out = np.empty((bands, h, w), dtype="float64")
    for b in range(bands):
        smooth = (np.sin(xx / (13.0 + 4 * b)) + np.cos(yy / (9.0 + 3 * b)) + 2.0) / 4.0
        q = np.round(smooth * 1023)
        out[b] = lo + q * step + rng.integers(0, 4, (h, w)) * noise_step
    return np.clip(out, lo, top).astype(dtype)


MANIFEST = []


def write(out_dir, name, data, traits, *, nodata=None, mask=None, overviews=None,
          driver="GTiff", scales=None, offsets=None, write_window=None, **opts):
    """Writes `data` ([bands, h, w]) as `name` with creation options `opts`
    and records it in the manifest with `traits`."""
    path = os.path.join(out_dir, name)
    bands, h, w = data.shape
    profile = dict(driver=driver, width=w, height=h, count=bands, dtype=str(data.dtype),
                   crs=CRS, transform=TRANSFORM)
    if nodata is not None:
        profile["nodata"] = nodata
    profile.update(opts)
    env = {"GDAL_TIFF_INTERNAL_MASK": "YES"} if mask is not None else {}
    with rasterio.Env(**env):
        if driver == "COG":
            # the COG driver writes by copying a source dataset
            tmp = path + ".src.tif"
            src_profile = dict(profile, driver="GTiff")
            for k in opts:
                src_profile.pop(k, None)
            with rasterio.open(tmp, "w", **src_profile) as src:
                src.write(data)
                if mask is not None:
                    src.write_mask(mask)
            rasterio.shutil.copy(tmp, path, driver="COG", **opts)
            os.remove(tmp)
        else:
            with rasterio.open(path, "w", **profile) as dst:
                if write_window is not None:
                    c, r, ww, hh = write_window
                    dst.write(data[:, r:r + hh, c:c + ww],
                              window=rasterio.windows.Window(c, r, ww, hh))
                else:
                    dst.write(data)
                if mask is not None:
                    dst.write_mask(mask)
                if scales is not None:
                    dst.scales = scales
                if offsets is not None:
                    dst.offsets = offsets
            if overviews:
                with rasterio.open(path, "r+") as dst:
                    dst.build_overviews(overviews, Resampling.average)
    entry = {"file": name, "bands": bands, "dtype": traits.pop("dtype", str(data.dtype)),
             "width": w, "height": h}
    entry.update(traits)
    entry.setdefault("tolerance", 0)
    entry["size_bytes"] = os.path.getsize(path)
    MANIFEST.append(entry)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "fixtures", "geotiff")
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.endswith(".tif"):
            os.remove(os.path.join(out_dir, f))
    MANIFEST.clear()
    tiled = dict(tiled=True, blockxsize=32, blockysize=32)

    def t(layout, codec, predictor=1, **kw):
        d = dict(layout=layout, codec=codec, predictor=predictor)
        d.update(kw)
        return d

    # --- sample types: single band, tiled 64 (partial edge tiles), DEFLATE
    for i, dt in enumerate(["uint8", "int8", "uint16", "int16", "uint32", "int32",
                            "float32", "float64"]):
        write(out_dir, f"dtype_{dt}.tif", pixels(dt, 1, 10 + i),
              t("tiled", "DEFLATE"), compress="deflate", **tiled)
    # float16: GDAL stores Float32 with NBITS=16 as IEEE half floats
    half = pixels("float32", 1, 30).astype("float16").astype("float32")
    write(out_dir, "dtype_float16.tif", half, t("tiled", "DEFLATE", dtype="float16"),
          compress="deflate", nbits=16, **tiled)
    write(out_dir, "dtype_float16_pred3.tif", half,
          t("tiled", "DEFLATE", 3, dtype="float16"), compress="deflate", nbits=16,
          predictor=3, **tiled)
    # 12-bit: UInt16 with NBITS=12, packed samples (no predictor: libtiff
    # differences only 8/16/32/64-bit samples)
    twelve = pixels("uint16", 1, 31, hi=4095)
    write(out_dir, "dtype_uint12_deflate.tif", twelve,
          t("tiled", "DEFLATE", dtype="uint12"), compress="deflate", nbits=12, **tiled)
    write(out_dir, "dtype_uint12_none_striped.tif", twelve,
          t("striped", "none", dtype="uint12"), nbits=12, tiled=False, blockysize=16)
    write(out_dir, "dtype_uint12_3band.tif", pixels("uint16", 3, 32, hi=4095),
          t("pixel-interleaved", "LZW", dtype="uint12"), compress="lzw", nbits=12, **tiled)

    # --- predictors
    write(out_dir, "pred2_uint16_lzw.tif", pixels("uint16", 1, 40),
          t("tiled", "LZW", 2), compress="lzw", predictor=2, **tiled)
    write(out_dir, "pred2_int16_zstd.tif", pixels("int16", 1, 41),
          t("tiled", "ZSTD", 2), compress="zstd", predictor=2, **tiled)
    write(out_dir, "pred2_uint32_deflate.tif", pixels("uint32", 1, 42),
          t("tiled", "DEFLATE", 2), compress="deflate", predictor=2, **tiled)
    write(out_dir, "pred2_int8_deflate.tif", pixels("int8", 1, 43),
          t("tiled", "DEFLATE", 2), compress="deflate", predictor=2, **tiled)
    write(out_dir, "pred3_float32_deflate.tif", pixels("float32", 1, 44),
          t("tiled", "DEFLATE", 3), compress="deflate", predictor=3, **tiled)
    write(out_dir, "pred3_float64_zstd.tif", pixels("float64", 1, 45),
          t("tiled", "ZSTD", 3), compress="zstd", predictor=3, **tiled)
    write(out_dir, "pred3_float32_3band_lzw.tif", pixels("float32", 3, 46),
          t("pixel-interleaved", "LZW", 3), compress="lzw", predictor=3, **tiled)

    # --- multi-band: pixel-interleaved (S2 `visual`, NAIP) and planar
    write(out_dir, "rgb_uint8_pixel_deflate.tif", pixels("uint8", 3, 50),
          t("pixel-interleaved", "DEFLATE", 2), compress="deflate", predictor=2,
          interleave="pixel", photometric="rgb", **tiled)
    write(out_dir, "rgbn_uint8_pixel_deflate.tif", pixels("uint8", 4, 51),
          t("pixel-interleaved", "DEFLATE"), compress="deflate", interleave="pixel", **tiled)
    write(out_dir, "rgbn_uint16_pixel_zstd_pred2.tif", pixels("uint16", 4, 52),
          t("pixel-interleaved", "ZSTD", 2), compress="zstd", predictor=2,
          interleave="pixel", **tiled)
    write(out_dir, "rgb_uint8_planar_lzw.tif", pixels("uint8", 3, 53),
          t("planar", "LZW"), compress="lzw", interleave="band", **tiled)
    write(out_dir, "rgbn_uint16_planar_deflate_pred2.tif", pixels("uint16", 4, 54),
          t("planar", "DEFLATE", 2), compress="deflate", predictor=2, interleave="band",
          **tiled)
    write(out_dir, "f32_2band_planar_pred3.tif", pixels("float32", 2, 55),
          t("planar", "ZSTD", 3), compress="zstd", predictor=3, interleave="band", **tiled)
    # S2 `visual`-like: 3-band u8 COG with overviews (COG driver)
    write(out_dir, "visual_cog_rgb_uint8.tif", pixels("uint8", 3, 56, w=200, h=180),
          t("pixel-interleaved", "DEFLATE", 2, overviews=True, cog=True), driver="COG",
          compress="deflate", predictor="yes", blocksize=64, overview_resampling="average")

    # --- strips
    write(out_dir, "strip_uint8_none_short_last.tif", pixels("uint8", 1, 60),
          t("striped", "none"), tiled=False, blockysize=16)  # 90 = 5×16 + 10
    write(out_dir, "strip_uint16_deflate_pred2.tif", pixels("uint16", 1, 61),
          t("striped", "DEFLATE", 2), compress="deflate", predictor=2, tiled=False,
          blockysize=7)
    write(out_dir, "strip_one_strip_int16_lzw.tif", pixels("int16", 1, 62),
          t("striped", "LZW"), compress="lzw", tiled=False, blockysize=H)
    write(out_dir, "strip_rgb_uint8_pixel_packbits.tif", pixels("uint8", 3, 63),
          t("striped pixel-interleaved", "PackBits"), compress="packbits", tiled=False,
          blockysize=20, interleave="pixel")
    write(out_dir, "strip_rgbn_uint16_planar_zstd.tif", pixels("uint16", 4, 64),
          t("striped planar", "ZSTD"), compress="zstd", tiled=False, blockysize=32,
          interleave="band")
    write(out_dir, "strip_float32_pred3.tif", pixels("float32", 1, 65),
          t("striped", "DEFLATE", 3), compress="deflate", predictor=3, tiled=False,
          blockysize=10)

    # --- BigTIFF, big-endian
    write(out_dir, "bigtiff_uint16_deflate.tif", pixels("uint16", 1, 70),
          t("tiled", "DEFLATE", bigtiff=True), compress="deflate", bigtiff="yes", **tiled)
    write(out_dir, "bigtiff_rgb_uint8_planar_zstd.tif", pixels("uint8", 3, 71),
          t("planar", "ZSTD", bigtiff=True), compress="zstd", bigtiff="yes",
          interleave="band", **tiled)
    write(out_dir, "bigendian_uint16_pred2.tif", pixels("uint16", 1, 72),
          t("tiled", "DEFLATE", 2, big_endian=True), compress="deflate", predictor=2,
          endianness="big", **tiled)
    write(out_dir, "bigendian_float32_pred3.tif", pixels("float32", 1, 73),
          t("tiled", "DEFLATE", 3, big_endian=True), compress="deflate", predictor=3,
          endianness="big", **tiled)
    write(out_dir, "bigendian_int32_strip_none.tif", pixels("int32", 1, 74),
          t("striped", "none", big_endian=True), endianness="big", tiled=False,
          blockysize=16)
    write(out_dir, "bigendian_float64_3band_lzw.tif", pixels("float64", 3, 75),
          t("pixel-interleaved", "LZW", 2, big_endian=True), compress="lzw", predictor=2,
          endianness="big", **tiled)
    write(out_dir, "bigendian_uint12.tif", twelve,
          t("tiled", "none", dtype="uint12", big_endian=True), nbits=12,
          endianness="big", **tiled)
    write(out_dir, "bigtiff_bigendian_int16.tif", pixels("int16", 1, 76),
          t("tiled", "ZSTD", 2, bigtiff=True, big_endian=True), compress="zstd",
          predictor=2, bigtiff="yes", endianness="big", **tiled)

    # --- codecs (u8 single band unless said)
    base8 = pixels("uint8", 1, 80)
    write(out_dir, "codec_none_uint8.tif", base8, t("tiled", "none"), **tiled)
    write(out_dir, "codec_lzw_uint8.tif", base8, t("tiled", "LZW"), compress="lzw", **tiled)
    write(out_dir, "codec_zstd_uint16.tif", pixels("uint16", 1, 81), t("tiled", "ZSTD"),
          compress="zstd", **tiled)
    write(out_dir, "codec_packbits_uint8.tif", base8, t("tiled", "PackBits"),
          compress="packbits", **tiled)
    write(out_dir, "codec_packbits_int16.tif", pixels("int16", 1, 82), t("tiled", "PackBits"),
          compress="packbits", **tiled)
    write(out_dir, "codec_lzma_uint16.tif", pixels("uint16", 1, 83), t("tiled", "LZMA"),
          compress="lzma", **tiled)
    write(out_dir, "codec_lzma_float32_pred3.tif", pixels("float32", 1, 84),
          t("tiled", "LZMA", 3), compress="lzma", predictor=3, **tiled)
    # JPEG: tilestack decodes as GDAL's libjpeg 9 does (its IDCT, its 2×
    # chroma upsampling inside the IDCT, its YCbCr tables): tolerance 0
    write(out_dir, "codec_jpeg_uint8.tif", base8,
          t("tiled", "JPEG", lossy=True), compress="jpeg", jpeg_quality=90, **tiled)
    write(out_dir, "codec_jpeg_rgb_ycbcr.tif", pixels("uint8", 3, 85),
          t("pixel-interleaved", "JPEG", lossy=True, photometric="ycbcr",
            ycbcr_subsampling=[2, 2], color_conversion="ycbcr_to_rgb"),
          compress="jpeg", photometric="ycbcr", jpeg_quality=90, interleave="pixel",
          **tiled)
    write(out_dir, "codec_jpeg_rgb_planar.tif", pixels("uint8", 3, 86),
          t("planar", "JPEG", lossy=True), compress="jpeg",
          interleave="band", jpeg_quality=90, **tiled)
    write(out_dir, "codec_lerc_float32.tif", pixels("float32", 1, 87),
          t("tiled", "LERC"), compress="lerc", **tiled)
    write(out_dir, "codec_lerc_uint16_lossy.tif", pixels("uint16", 1, 88),
          t("tiled", "LERC", lossy=True, tolerance=2), compress="lerc", max_z_error=2,
          **tiled)
    write(out_dir, "codec_lerc_deflate_float64.tif", pixels("float64", 1, 89),
          t("tiled", "LERC_DEFLATE"), compress="lerc_deflate", **tiled)
    write(out_dir, "codec_lerc_zstd_float32_lossy.tif", pixels("float32", 1, 90),
          t("tiled", "LERC_ZSTD", lossy=True, tolerance=0.01), compress="lerc_zstd",
          max_z_error=0.01, **tiled)
    write(out_dir, "codec_lerc_rgb_uint8_pixel.tif", pixels("uint8", 3, 91),
          t("pixel-interleaved", "LERC"), compress="lerc", interleave="pixel", **tiled)
    write(out_dir, "codec_webp_rgb_lossless.tif", pixels("uint8", 3, 92),
          t("pixel-interleaved", "WebP"), compress="webp", webp_lossless=True, **tiled)
    write(out_dir, "codec_webp_rgb_lossy.tif", pixels("uint8", 3, 93),
          t("pixel-interleaved", "WebP", lossy=True, tolerance=1), compress="webp",
          webp_level=90, **tiled)
    write(out_dir, "codec_webp_rgba_lossless.tif", pixels("uint8", 4, 94),
          t("pixel-interleaved", "WebP"), compress="webp", webp_lossless=True, **tiled)

    # --- photometric interpretations, alpha and extra samples (read as
    # further bands, as GDAL reads them)
    write(out_dir, "alpha_rgba_uint8_jpeg.tif", pixels("uint8", 4, 120),
          # RGB JPEG (no colour conversion) + unassociated alpha, 4 components
          t("pixel-interleaved", "JPEG", lossy=True, photometric="rgb",
            extra_samples=["unassociated alpha"]),
          compress="jpeg", photometric="rgb", alpha="YES", jpeg_quality=90,
          interleave="pixel", **tiled)
    write(out_dir, "alpha_rgba_uint8_associated.tif", pixels("uint8", 4, 121),
          t("pixel-interleaved", "DEFLATE", photometric="rgb",
            extra_samples=["associated alpha"]),
          compress="deflate", photometric="rgb", alpha="PREMULTIPLIED", interleave="pixel",
          **tiled)
    write(out_dir, "extra_rgb_uint8_2unspecified.tif", pixels("uint8", 5, 122),
          t("pixel-interleaved", "DEFLATE", photometric="rgb",
            extra_samples=["unspecified", "unspecified"]),
          compress="deflate", photometric="rgb", alpha="UNSPECIFIED", interleave="pixel",
          **tiled)
    # 8-bit CMYK: GDAL reads it as RGBA through libtiff (R = (255-K)(255-C)/255,
    # alpha 255), signed samples as their bytes; 16-bit CMYK reads raw
    write(out_dir, "cmyk_uint8.tif", pixels("uint8", 4, 123),
          t("pixel-interleaved", "DEFLATE", photometric="cmyk", color_conversion="cmyk_to_rgba"),
          compress="deflate", photometric="cmyk", interleave="pixel", **tiled)
    write(out_dir, "cmyk_int8.tif", pixels("int8", 4, 124),
          t("pixel-interleaved", "DEFLATE", photometric="cmyk", color_conversion="cmyk_to_rgba"),
          compress="deflate", photometric="cmyk", interleave="pixel", **tiled)
    write(out_dir, "cmyk_uint16_raw.tif", pixels("uint16", 4, 125, w=60, h=45),
          t("pixel-interleaved", "DEFLATE", photometric="cmyk"),
          compress="deflate", photometric="cmyk", interleave="pixel", **tiled)
    write(out_dir, "miniswhite_uint8.tif", pixels("uint8", 1, 126),
          t("tiled", "DEFLATE", photometric="miniswhite"),
          compress="deflate", photometric="miniswhite", **tiled)
    # NAIP-like: JPEG/YCbCr COG (2×2 chroma subsampling), 512 px blocks,
    # quality 85, an overview. NAIP itself is 4 bands (RGBN); GDAL writes
    # YCbCr JPEG with 3 bands only (the COG driver drops a 4th), so RGB.
    naip = pixels("uint8", 3, 127, w=600, h=520)
    naip[:, 100:180, 150:260] = np.array([230, 20, 30], "uint8")[:, None, None]
    naip[:, 300:420, 40:90] = np.array([10, 200, 40], "uint8")[:, None, None]
    naip[:, 250:330, 380:560] = np.array([20, 40, 240], "uint8")[:, None, None]
    write(out_dir, "naip_like_ycbcr_jpeg_cog.tif", naip,
          t("pixel-interleaved", "JPEG", lossy=True, overviews=True, cog=True,
            photometric="ycbcr", ycbcr_subsampling=[2, 2], color_conversion="ycbcr_to_rgb"),
          driver="COG", compress="jpeg", photometric="ycbcr", quality=85, blocksize=512,
          overview_resampling="average")
    # YCbCr JPEG in strips of 16 rows, the last one short (90 = 5 × 16 + 10)
    write(out_dir, "jpeg_ycbcr_striped.tif", pixels("uint8", 3, 128),
          t("striped pixel-interleaved", "JPEG", lossy=True, photometric="ycbcr",
            ycbcr_subsampling=[2, 2], color_conversion="ycbcr_to_rgb"),
          compress="jpeg", photometric="ycbcr", jpeg_quality=80, interleave="pixel",
          tiled=False, blockysize=16)

    # --- nodata, masks, sparse tiles, scale/offset, overviews
    a = pixels("uint16", 1, 100)
    a[0, 10:30, 10:50] = 0
    write(out_dir, "nodata_uint16_zero.tif", a, t("tiled", "DEFLATE", nodata=0), nodata=0,
          compress="deflate", **tiled)
    f = pixels("float32", 1, 101)
    f[0, 40:60, 70:110] = np.nan
    write(out_dir, "nodata_float32_nan.tif", f, t("tiled", "DEFLATE", 3, nodata="nan"),
          nodata=float("nan"), compress="deflate", predictor=3, **tiled)
    f = pixels("float32", 1, 102)
    f[0, 70:90, 0:60] = -9999.0
    write(out_dir, "nodata_float32_m9999.tif", f, t("tiled", "ZSTD", nodata=-9999),
          nodata=-9999.0, compress="zstd", **tiled)
    i = pixels("int16", 2, 103)
    i[:, 60:80, 80:120] = -32768
    write(out_dir, "nodata_int16_min_2band.tif", i,
          t("pixel-interleaved", "LZW", 2, nodata=-32768), nodata=-32768, compress="lzw",
          predictor=2, **tiled)
    m = np.full((H, W), 255, dtype="uint8")
    m[20:50, 30:80] = 0
    m[60:, 90:] = 0
    write(out_dir, "mask_uint8_internal.tif", pixels("uint8", 1, 104),
          t("tiled", "DEFLATE", mask=True), mask=m, compress="deflate", **tiled)
    write(out_dir, "mask_rgb_uint8_pixel_overviews.tif", pixels("uint8", 3, 105),
          t("pixel-interleaved", "DEFLATE", mask=True, overviews=True), mask=m,
          compress="deflate", overviews=[2, 4], **tiled)
    write(out_dir, "mask_uint16_striped.tif", pixels("uint16", 1, 106),
          t("striped", "LZW", mask=True), mask=m, compress="lzw", tiled=False, blockysize=25)
    # sparse: only a window written, the other tiles never (offset 0, count 0)
    sp = pixels("int16", 1, 107)
    write(out_dir, "sparse_int16_nodata.tif", sp,
          t("tiled", "DEFLATE", sparse=True, nodata=-9999), nodata=-9999,
          compress="deflate", sparse_ok=True, write_window=(32, 32, 32, 32), **tiled)
    write(out_dir, "sparse_uint8_no_nodata.tif", pixels("uint8", 1, 108),
          t("tiled", "DEFLATE", sparse=True), compress="deflate", sparse_ok=True,
          write_window=(0, 0, 60, 40), **tiled)
    write(out_dir, "sparse_rgb_uint8_planar.tif", pixels("uint8", 3, 109),
          t("planar", "ZSTD", sparse=True), compress="zstd", sparse_ok=True,
          interleave="band", write_window=(32, 0, 64, 32), **tiled)
    write(out_dir, "scale_offset_uint16_2band.tif", pixels("uint16", 2, 110),
          t("pixel-interleaved", "DEFLATE", scale=[0.0001, 0.5], offset=[-0.1, 10.0]),
          compress="deflate", scales=[0.0001, 0.5], offsets=[-0.1, 10.0], **tiled)
    write(out_dir, "overviews_uint16_gtiff.tif", pixels("uint16", 1, 111, w=200, h=200),
          t("tiled", "DEFLATE", 2, overviews=True), compress="deflate", predictor=2,
          overviews=[2, 4, 8], **tiled)
    write(out_dir, "overviews_float32_cog.tif", pixels("float32", 1, 112, w=160, h=140),
          t("tiled", "ZSTD", 3, overviews=True, cog=True), driver="COG", compress="zstd",
          predictor="yes", blocksize=32, overview_resampling="average")

    MANIFEST.sort(key=lambda e: e["file"])
    with open(os.path.join(out_dir, "MANIFEST.json"), "w") as fh:
        json.dump({"generator": "tests/py/make_geotiff_corpus.py",
                   "gdal": rasterio.__gdal_version__, "rasterio": rasterio.__version__,
                   "files": MANIFEST}, fh, indent=1)
        fh.write("\n")
    total = sum(e["size_bytes"] for e in MANIFEST)
    print(f"{len(MANIFEST)} files, {total} bytes in {out_dir}")


if __name__ == "__main__":
    main()
