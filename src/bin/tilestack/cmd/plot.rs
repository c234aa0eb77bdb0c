//! `tilestack plot`, and the two pictures `demo` draws too.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tilestack::TileStack;
use tilestack::plot::PlotOptions;

use crate::args::PlotArgs;

/// `tilestack plot`.
pub(crate) fn run(a: &PlotArgs) -> Result<()> {
    let st = TileStack::read_safetensors(&a.stack)?;
    let opts = a.options()?;
    let ts = write_plots(&st, &opts, &a.out)
        .with_context(|| format!("plotting {}", a.stack.display()))?;
    println!("wrote {} and {}", a.out.display(), ts.display());
    Ok(())
}

/// Writes the days picture and, beside it, the time series; returns the
/// time series' path.
pub(crate) fn write_plots(stack: &TileStack, opts: &PlotOptions, out: &Path) -> Result<PathBuf> {
    tilestack::plot::save_png(&tilestack::plot::plot_days(stack, opts)?, out)?;
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("days");
    let ts = out.with_file_name(format!("{stem}-timeseries.png"));
    tilestack::plot::save_png(&tilestack::plot::plot_timeseries(stack)?, &ts)?;
    Ok(ts)
}
