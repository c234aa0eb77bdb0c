//! `tilestack read HREF --window COL,ROW,W,H [--ifd N] [--bands 1,2,3] --out FILE`:
//! one window of a GeoTIFF into a safetensors file — the reader as users and
//! tests call it from a shell. A Zarr array href reads the same way:
//! `--bands` are 1-based slices of a 3-D array's leading axis (`--ifd` must
//! be 0: Zarr overviews are other arrays).

use anyhow::{Context, Result, bail};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use tilestack::cog::TileCache;
use tilestack::fetch::RetryConfig;
use tilestack::geo::PixelWindow;
use tilestack::zarr::{ZarrReader, is_zarr_href};
use tilestack::{CogReader, HttpRangeClient};

use crate::args::ReadArgs;

/// `tilestack read`.
pub(crate) async fn run(a: &ReadArgs) -> Result<()> {
    let window = parse_window(&a.window)?;
    let href = super::info::href_url(&a.href)?;
    let client = HttpRangeClient::new(RetryConfig::default())?;
    let data = if is_zarr_href(&href) {
        if a.ifd != 0 {
            bail!(
                "--ifd {}: a Zarr array has no IFDs (its overviews are other arrays)",
                a.ifd
            );
        }
        ZarrReader::new(client, TileCache::new(256 << 20))
            .read_bands(&href, window, &a.bands)
            .await?
    } else {
        CogReader::new(client, TileCache::new(256 << 20))
            .read_bands(&href, a.ifd, window, &a.bands)
            .await?
    };
    let shape = data.shape().to_vec();
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, shape.clone(), &bytes)
        .context("building the safetensors tensor")?;
    safetensors::serialize_to_file([("data", view)], None, &a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    let nan = data.iter().filter(|v| v.is_nan()).count();
    println!(
        "{}: [{}, {}, {}] f32 ({} NaN) -> {}",
        a.href,
        shape[0],
        shape[1],
        shape[2],
        nan,
        a.out.display()
    );
    Ok(())
}

/// `COL,ROW,W,H` in pixels, width and height > 0.
fn parse_window(s: &str) -> Result<PixelWindow> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--window {s:?}: expected COL,ROW,WIDTH,HEIGHT (pixels)"))?;
    let [c, r, w, h] = v[..] else {
        bail!(
            "--window {s:?}: expected 4 numbers COL,ROW,WIDTH,HEIGHT, got {}",
            v.len()
        );
    };
    if w == 0 || h == 0 {
        bail!("--window {s:?}: width and height must be > 0");
    }
    Ok(PixelWindow::new(c, r, w, h))
}

#[cfg(test)]
mod tests {
    use super::parse_window;

    #[test]
    fn window_flag() {
        let w = parse_window("10, 20,30,40").unwrap();
        assert_eq!((w.col_off, w.row_off, w.width, w.height), (10, 20, 30, 40));
        for bad in ["1,2,3", "1,2,3,4,5", "a,2,3,4", "1,2,0,4", "-1,2,3,4"] {
            let e = parse_window(bad).unwrap_err().to_string();
            assert!(e.contains("--window"), "{e}");
        }
    }
}
