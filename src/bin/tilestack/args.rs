//! The command line: clap definitions and the typed values parsed from them.
//!
//! Parse errors from the typed parsers here are `anyhow` errors naming the
//! flag and its value (printed as one line by `main`), not clap usage errors.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Parser, Subcommand};

/// Daily satellite tile stacks from STAC + COGs, for burn training loops.
#[derive(Debug, Parser)]
#[command(name = "tilestack", version, about)]
pub(crate) struct Cli {
    /// Log more on stderr: -v info (timings), -vv debug, -vvv trace
    /// (default: warnings; RUST_LOG, when set, wins).
    #[arg(short, long, action = ArgAction::Count, global = true, display_order = 900)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

impl Cli {
    /// The log level `-v` asks for: warn, info, debug, then trace.
    pub(crate) fn log_level(&self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self.verbose {
            0 => LevelFilter::WARN,
            1 => LevelFilter::INFO,
            2 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Run the whole job on the embedded demo world (generated once, cached, served on 127.0.0.1).
    Demo(DemoArgs),
    /// Generate a demo world (COGs, STAC items, labels) into a folder.
    World(WorldArgs),
    /// Serve a world folder (STAC API + COGs with Range support) on 127.0.0.1 until interrupted.
    Serve(ServeArgs),
    /// Build a daily tile stack around a centroid: stack.safetensors + metadata.csv.
    Stack(Box<StackArgs>),
    /// Measure a stack: time to first stack, warm repeats, throughput over a
    /// list of centroids and the physical limit; prints one JSON object.
    Bench {
        /// The stack measured (`--out` and `--repeat` are not used;
        /// `--dry-run` is refused).
        #[command(flatten)]
        stack: Box<StackArgs>,
        /// What to measure besides the first stack.
        #[command(flatten)]
        bench: BenchArgs,
    },
    /// Draw a stack: the grid of daily RGB tiles and a cloud/NaN time series.
    Plot(PlotArgs),
    /// Search a STAC API and list the items.
    Search(SearchArgs),
    /// Write every sample of a dataset config as shards plus an index, for
    /// offline training (one machine, or one part of a Kubernetes Indexed
    /// Job / Slurm array: `--part`, else JOB_COMPLETION_INDEX or
    /// SLURM_ARRAY_TASK_ID). A rerun keeps finished shards.
    Materialize(MaterializeArgs),
    /// Open a dataset config and report it without reading a pixel:
    /// candidates, kept, dropped per reason, searches made, scenes held,
    /// time and memory — what to run before launching a large job.
    Dataset(DatasetArgs),
    /// Describe a GeoTIFF (a path, file:// or http(s) URL), like gdalinfo:
    /// size, bands, sample type, compression, predictor, tiles or strips,
    /// IFDs and overviews, CRS, transform, nodata, scale/offset, and whether
    /// its layout is a valid COG (and why not). A Zarr array (a path under
    /// a `.zarr` store): shape, chunks, shards, codecs, CF attributes and
    /// georeference.
    Info(InfoArgs),
    /// Read a pixel window of a GeoTIFF or Zarr array into a safetensors file: tensor
    /// `data`, f32 [bands, height, width], NaN for nodata.
    Read(ReadArgs),
}

// `tilestack info`.
#[derive(Debug, clap::Args)]
pub(crate) struct InfoArgs {
    /// The GeoTIFF or Zarr array (a path under a `.zarr` store): a local
    /// path, file://, http(s):// (or s3:// gs:// az://).
    pub(crate) href: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

// `tilestack read`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    /// The GeoTIFF or Zarr array (a path under a `.zarr` store): a local
    /// path, file://, http(s):// (or s3:// gs:// az://).
    pub(crate) href: String,
    /// The window, in pixels of the IFD read: COL,ROW,WIDTH,HEIGHT
    /// (pixels past the image are NaN).
    #[arg(long)]
    pub(crate) window: String,
    /// The IFD: 0 = full resolution, then overviews in file order (see `tilestack info`).
    #[arg(long, default_value_t = 0)]
    pub(crate) ifd: usize,
    /// Bands, 1-based as in GDAL, comma-separated (default: all); for a 3-D
    /// Zarr array, slices of its leading axis.
    #[arg(long, value_delimiter = ',')]
    pub(crate) bands: Vec<usize>,
    /// The safetensors file written.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

// The structs below carry no `///` docs of their own: a subcommand's help
// text is its `Cmd` variant's.

// `tilestack demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "demo-out")]
    pub(crate) out: PathBuf,
    /// Use this recipe instead of the embedded Oakland port one.
    #[arg(long)]
    pub(crate) recipe: Option<PathBuf>,
}

// `tilestack world`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorldArgs {
    /// Output folder.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Recipe TOML (default: the embedded Oakland port recipe).
    #[arg(long)]
    pub(crate) recipe: Option<PathBuf>,
    /// Also write each scene as an EOPF-like Zarr v2 store and a sharded
    /// GeoZarr v3 store, with a STAC collection of each
    /// (`<collection>-zarr-v2`, `<collection>-zarr-v3`).
    #[arg(long)]
    pub(crate) zarr: bool,
}

// `tilestack serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A folder written by `tilestack world`.
    pub(crate) dir: PathBuf,
    /// Port (0 = any free one).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
    /// Milliseconds every request waits before its answer: a distant
    /// server's round trip, on loopback (for benchmarks).
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_ms: u64,
}

// `tilestack dataset`.
#[derive(Debug, clap::Args)]
pub(crate) struct DatasetArgs {
    /// The dataset config (TOML).
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

// `tilestack stack`, and the stack `tilestack bench` measures.
#[derive(Debug, clap::Args)]
pub(crate) struct StackArgs {
    /// STAC API landing page URL.
    #[arg(long, required_unless_present = "snapshot")]
    pub(crate) stac: Option<String>,
    /// Build from a saved ItemCollection snapshot instead of a STAC API.
    #[arg(long, conflicts_with = "stac")]
    pub(crate) snapshot: Option<PathBuf>,
    /// Collection id.
    #[arg(long, default_value = "sentinel-2-l2a")]
    pub(crate) collection: String,
    /// Tile centre LON,LAT (degrees).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) centroid: String,
    /// Bands, comma-separated, in output order: asset keys (`B04`), band
    /// names or common names (`red`, `nir`, `swir16`), so one request reads
    /// Planetary Computer and Earth Search items alike.
    #[arg(long)]
    pub(crate) bands: String,
    /// Time range START/END, inclusive days (YYYY-MM-DD/YYYY-MM-DD).
    #[arg(long)]
    pub(crate) time: String,
    /// Pixel size in metres.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true, value_parser = parse_resolution)]
    pub(crate) resolution: f64,
    /// Tile side in pixels.
    #[arg(long, default_value_t = 256)]
    pub(crate) tile_size: usize,
    /// Target EPSG (default: the centroid's UTM zone).
    #[arg(long)]
    pub(crate) epsg: Option<u32>,
    /// GeoJSON polygons rasterized as the last band `mask` (features with `datetime` burn only their day).
    #[arg(long)]
    pub(crate) mask: Option<PathBuf>,
    /// Same-step fusion: mean, first, least-cloudy, median.
    #[arg(long, default_value = "mean")]
    pub(crate) fuse: String,
    /// Time steps: day, month or Nd (e.g. 5d), anchored at the start.
    #[arg(long, default_value = "day")]
    pub(crate) cadence: String,
    /// Resampling: nearest, bilinear, average (continuous bands, onto a coarser grid) or mode
    /// (categorical bands). Categorical bands are never blended: nearest under bilinear, mode
    /// under average.
    #[arg(long, default_value = "nearest")]
    pub(crate) resampling: String,
    /// Band read for the tile's own cloud fraction (e.g. SCL).
    #[arg(long)]
    pub(crate) cloud_band: Option<String>,
    /// Cloud masking: classes of --cloud-band that become no data in the
    /// other bands of their scene before same-day fusion (SCL: 8,9 = cloud).
    #[arg(long, value_delimiter = ',', requires = "cloud_band")]
    pub(crate) cloud_mask: Vec<u16>,
    /// Classes of --cloud-band counted as cloud in the tile's cloud fraction
    /// (default: SCL's 3,8,9,10 = shadow, cloud medium/high, cirrus).
    #[arg(long, value_delimiter = ',', requires = "cloud_band")]
    pub(crate) cloud_classes: Vec<u16>,
    /// --cloud-band is a bit-flag band (Landsat QA_PIXEL): these bits count
    /// as cloud in the cloud fraction (default for a band named qa_pixel:
    /// 1,2,3,4 = dilated cloud, cirrus, cloud, shadow).
    #[arg(long, value_delimiter = ',', requires = "cloud_band")]
    pub(crate) cloud_bits: Vec<u8>,
    /// Bits of a bit-flag --cloud-band whose pixels become no data in the
    /// other bands of their scene before same-day fusion (QA_PIXEL: 1,2,3,4).
    #[arg(long, value_delimiter = ',', requires = "cloud_band")]
    pub(crate) cloud_mask_bits: Vec<u8>,
    /// Keep Sentinel-2 L2A digital numbers as each processing baseline wrote
    /// them (by default the +1000 offset of baseline 04.00 and later is
    /// removed, so stacks across 25 January 2022 are on one scale).
    #[arg(long)]
    pub(crate) no_harmonize: bool,
    /// Bands converted from linear power to decibels (10·log10), e.g. the
    /// vv,vh backscatter of Sentinel-1 RTC; zero or negative → no data.
    #[arg(long, value_delimiter = ',')]
    pub(crate) decibels: Vec<String>,
    /// Min–max normalize each (day, band) over the tile (categorical bands untouched).
    #[arg(long)]
    pub(crate) normalize: bool,
    /// Output folder.
    #[arg(long, default_value = "stack-out")]
    pub(crate) out: PathBuf,
    /// Print what the stack would read as JSON (days and their items, grid,
    /// windows, IFDs, tiles, bytes, requests) and write nothing: only the
    /// catalog search and the COG headers are fetched, never pixels.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// With --dry-run: read no COG headers either (no tile counts; bytes
    /// are a rough estimate).
    #[arg(long, requires = "dry_run")]
    pub(crate) no_headers: bool,
    /// Tile cache budget in MiB.
    #[arg(long, default_value_t = 1024)]
    pub(crate) cache_mib: u64,
    /// Keep COG headers in this folder across runs (later runs open those
    /// files with zero header requests; a file that changed is detected by
    /// its size/ETag and re-read).
    #[arg(long)]
    pub(crate) header_cache: Option<PathBuf>,
    /// A window that still fails after retries becomes NaN (listed in the
    /// stack's `read_errors` metadata) instead of failing the stack.
    #[arg(long)]
    pub(crate) errors_as_nodata: bool,
    /// Build the stack this many times in one process (the repeats are warm:
    /// headers indexed, tiles cached) and report each repeat's time.
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: usize,
    /// Sign asset hrefs at read time: `planetary-computer` (SAS tokens; token
    /// endpoint from $PC_SDK_SAS_URL, key from $PC_SDK_SUBSCRIPTION_KEY).
    #[arg(long)]
    pub(crate) sign: Option<String>,
}

impl StackArgs {
    /// The request these arguments describe, validated.
    pub(crate) fn request(&self) -> Result<tilestack::StackRequest> {
        let [lon, lat] = parse_floats::<2>(&self.centroid, "centroid")?;
        let (start, end) = parse_time(&self.time)?;
        let mut req = tilestack::StackRequest::new(
            [lon, lat],
            tilestack::BandName::parse_list(&self.bands)?,
            start,
            end,
        )?;
        req.resolution = tilestack::Resolution::new(self.resolution)?;
        req.tile_size = self.tile_size;
        req.epsg = self.epsg.map(tilestack::Epsg::new).transpose()?;
        req.fuse = self.fuse.parse()?;
        req.cadence = self.cadence.parse()?;
        req.resampling = self.resampling.parse()?;
        req.cloud_band = self
            .cloud_band
            .as_deref()
            .map(tilestack::BandName::new)
            .transpose()?;
        req.cloud_mask = self.cloud_mask.clone();
        if !self.cloud_classes.is_empty() {
            req.cloud_classes = self.cloud_classes.clone();
        }
        req.cloud_bits = self.cloud_bits.clone();
        req.cloud_mask_bits = self.cloud_mask_bits.clone();
        req.harmonize = !self.no_harmonize;
        req.decibels = self
            .decibels
            .iter()
            .map(|b| tilestack::BandName::new(b.as_str()))
            .collect::<std::result::Result<_, _>>()?;
        req.normalize = self.normalize;
        req.errors_as_nodata = self.errors_as_nodata;
        req.validate()?;
        Ok(req)
    }
}

/// What `tilestack bench` measures besides the first stack.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Warm repeats of the first stack.
    #[arg(long, default_value_t = 3)]
    pub(crate) warm: usize,
    /// A file of `LON,LAT` lines: stacks built one after another in this
    /// process (the random-centroid throughput).
    #[arg(long)]
    pub(crate) centroids_file: Option<PathBuf>,
    /// Stacks in flight at once over the centroid list.
    #[arg(long, default_value_t = 2)]
    pub(crate) concurrency: usize,
    /// Also measure the physical limit of the first stack.
    #[arg(long)]
    pub(crate) limit: bool,
}

// `tilestack plot`.
#[derive(Debug, clap::Args)]
pub(crate) struct PlotArgs {
    /// A stack.safetensors written by `tilestack stack` or `tilestack demo`.
    pub(crate) stack: PathBuf,
    /// At most this many days.
    #[arg(long)]
    pub(crate) days: Option<usize>,
    /// First day shown (YYYY-MM-DD).
    #[arg(long)]
    pub(crate) start: Option<String>,
    /// Tiles per row.
    #[arg(long, default_value_t = 6)]
    pub(crate) cols: usize,
    /// Bands shown as R,G,B.
    #[arg(long, default_value = "B04,B03,B02")]
    pub(crate) rgb: String,
    /// Output PNG (the time series goes next to it as <name>-timeseries.png).
    #[arg(long, default_value = "days.png")]
    pub(crate) out: PathBuf,
}

impl PlotArgs {
    /// The picture's options: `--rgb`, `--start`, `--days`, `--cols`.
    pub(crate) fn options(&self) -> Result<tilestack::plot::PlotOptions> {
        let bands: Vec<String> = self.rgb.split(',').map(|b| b.trim().to_string()).collect();
        let rgb: [String; 3] = bands
            .try_into()
            .map_err(|_| anyhow::anyhow!("--rgb {:?}: expected three bands R,G,B", self.rgb))?;
        let start = self
            .start
            .as_deref()
            .map(|d| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .with_context(|| format!("--start {d:?} is not YYYY-MM-DD"))
            })
            .transpose()?;
        Ok(tilestack::plot::PlotOptions {
            rgb,
            start,
            days: self.days,
            cols: self.cols,
        })
    }
}

// `tilestack search`.
#[derive(Debug, clap::Args)]
pub(crate) struct SearchArgs {
    /// STAC API landing page URL.
    #[arg(long)]
    pub(crate) stac: String,
    /// Collection id.
    #[arg(long)]
    pub(crate) collection: String,
    /// Bounding box W,S,E,N in degrees.
    #[arg(long, conflicts_with = "centroid", allow_hyphen_values = true)]
    pub(crate) bbox: Option<String>,
    /// Centroid LON,LAT: searches the 2816 m square around it (256 px × 10 m × 1.1).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) centroid: Option<String>,
    /// Time range START/END (dates or RFC 3339, `..` for open ends).
    #[arg(long)]
    pub(crate) time: String,
    /// `query` extension filter as JSON, e.g. '{"eo:cloud_cover":{"lt":20}}'.
    #[arg(long)]
    pub(crate) query: Option<String>,
    /// Page size.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: u64,
    /// Stop after this many items.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_items: usize,
    /// Save the items as an ItemCollection snapshot (stacks can be built from it offline).
    #[arg(long)]
    pub(crate) save: Option<PathBuf>,
}

impl SearchArgs {
    /// The bounding box searched: `--bbox`, or the square around `--centroid`.
    pub(crate) fn bbox(&self) -> Result<[f64; 4]> {
        Ok(match (&self.bbox, &self.centroid) {
            (Some(b), _) => parse_floats::<4>(b, "bbox")?,
            (None, Some(c)) => {
                let [lon, lat] = parse_floats::<2>(c, "centroid")?;
                tilestack::geo::bbox_around(lon, lat, 256.0 * 10.0 * 1.1)?
            }
            (None, None) => bail!("give --bbox W,S,E,N or --centroid LON,LAT"),
        })
    }

    /// The `--query` filter, parsed as JSON.
    pub(crate) fn query(&self) -> Result<Option<serde_json::Value>> {
        self.query
            .as_deref()
            .map(|q| serde_json::from_str(q).with_context(|| format!("--query {q:?} is not JSON")))
            .transpose()
    }
}

/// `N` comma-separated numbers given to `--{what}`.
pub(crate) fn parse_floats<const N: usize>(s: &str, what: &str) -> Result<[f64; N]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--{what} {s:?}: expected {N} comma-separated numbers"))?;
    v.try_into()
        .map_err(|_| anyhow::anyhow!("--{what} {s:?}: expected {N} comma-separated numbers"))
}

/// A `--time` of inclusive days, `YYYY-MM-DD/YYYY-MM-DD` (the library's one
/// date-range parser; its errors quote the input).
pub(crate) fn parse_time(s: &str) -> Result<(chrono::NaiveDate, chrono::NaiveDate)> {
    Ok(tilestack::units::parse_day_range(s)?)
}

/// `--resolution`: a positive number of metres (a negative one is read as a
/// value, so that the message says what is wrong with it).
fn parse_resolution(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of metres"))?;
    tilestack::Resolution::new(v)
        .map(tilestack::Resolution::metres)
        .map_err(|e| e.chain())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbose_counts_up_to_trace_and_goes_anywhere() {
        use tracing::level_filters::LevelFilter;
        let level = |args: &[&str]| Cli::try_parse_from(args).unwrap().log_level();
        let plot = ["tilestack", "plot", "s.safetensors"];
        assert_eq!(level(&plot), LevelFilter::WARN);
        assert_eq!(level(&["tilestack", "-v", "plot", "s"]), LevelFilter::INFO);
        assert_eq!(
            level(&["tilestack", "plot", "s", "-vv"]),
            LevelFilter::DEBUG
        );
        assert_eq!(
            level(&["tilestack", "-vvv", "plot", "s"]),
            LevelFilter::TRACE
        );
        assert_eq!(
            level(&["tilestack", "-vvvvv", "plot", "s"]),
            LevelFilter::TRACE
        );
    }

    #[test]
    fn floats_need_exactly_n_numbers() {
        assert_eq!(
            parse_floats::<2>("-122.33, 37.81", "centroid").unwrap(),
            [-122.33, 37.81]
        );
        let err = parse_floats::<2>("1,2,3", "centroid").unwrap_err();
        assert!(
            format!("{err:#}").contains("--centroid \"1,2,3\""),
            "{err:#}"
        );
        let err = parse_floats::<4>("1,x,3,4", "bbox").unwrap_err();
        assert!(
            format!("{err:#}").contains("--bbox \"1,x,3,4\": expected 4 comma-separated numbers"),
            "{err:#}"
        );
    }

    #[test]
    fn time_is_inclusive_days_and_errors_quote_the_input() {
        let (a, b) = parse_time("2019-08-01/2019-08-30").unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("2019-08-01".into(), "2019-08-30".into())
        );
        let err = format!("{:#}", parse_time("2019-08-30/2019-08-01").unwrap_err());
        assert!(
            err.contains("time range") && err.contains("2019-08-30/2019-08-01"),
            "{err}"
        );
    }

    #[test]
    fn stack_args_become_a_request() {
        let cli = Cli::try_parse_from([
            "tilestack",
            "stack",
            "--snapshot",
            "items.json",
            "--centroid",
            "-122.33,37.81",
            "--bands",
            "B04,B08",
            "--time",
            "2019-08-01/2019-08-10",
            "--cloud-band",
            "SCL",
        ])
        .unwrap();
        let Cmd::Stack(a) = cli.cmd else {
            panic!("not a stack command")
        };
        let req = a.request().unwrap();
        assert_eq!(req.centroid, [-122.33, 37.81]);
        assert_eq!(req.tile_size, 256);
        let band = |b: &str| tilestack::BandName::new(b).unwrap();
        assert_eq!(req.bands, [band("B04"), band("B08")]);
        let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
        assert_eq!((req.start, req.end), (day(1), day(10)));
        assert_eq!(req.cloud_band, Some(band("SCL")));
    }

    #[test]
    fn no_headers_needs_dry_run() {
        let base = [
            "tilestack",
            "stack",
            "--stac",
            "http://127.0.0.1:9/",
            "--centroid",
            "-122.33,37.81",
            "--bands",
            "B04",
            "--time",
            "2019-08-01/2019-08-10",
        ];
        let parse = |more: &[&str]| Cli::try_parse_from(base.iter().chain(more));
        let e = parse(&["--no-headers"]).unwrap_err();
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{e}"
        );
        assert!(e.to_string().contains("--dry-run"), "{e}");
        let Cmd::Stack(a) = parse(&["--dry-run", "--no-headers"]).unwrap().cmd else {
            panic!("not a stack command")
        };
        assert!(a.dry_run && a.no_headers);
    }

    #[test]
    fn plot_options_need_three_bands() {
        let args = |rgb: &str| {
            let cli = Cli::try_parse_from(["tilestack", "plot", "s", "--rgb", rgb]).unwrap();
            let Cmd::Plot(p) = cli.cmd else {
                panic!("not a plot command")
            };
            p
        };
        assert_eq!(
            args("B04,B03,B02").options().unwrap(),
            tilestack::plot::PlotOptions {
                rgb: ["B04".into(), "B03".into(), "B02".into()],
                start: None,
                days: None,
                cols: 6,
            }
        );
        let err = args("B04,B03").options().unwrap_err();
        assert!(format!("{err}").contains("expected three bands"), "{err}");
    }
}

// `tilestack materialize`.
#[derive(Debug, clap::Args)]
pub(crate) struct MaterializeArgs {
    /// The dataset config (TOML).
    #[arg(long, required_unless_present = "merge")]
    pub(crate) config: Option<PathBuf>,
    /// Output folder, or s3:// gs:// az:// prefix.
    #[arg(long)]
    pub(crate) out: String,
    /// Write part I of N (I from 0), e.g. 2/8.
    #[arg(long, value_parser = parse_part)]
    pub(crate) part: Option<(usize, usize)>,
    /// The number of parts when the part index comes from the environment
    /// (a Kubernetes Job's completions; Slurm: default SLURM_ARRAY_TASK_COUNT).
    #[arg(long)]
    pub(crate) parts: Option<usize>,
    /// Target shard size in MiB.
    #[arg(long, default_value_t = 256)]
    pub(crate) shard_mb: u64,
    /// Only merge the part indexes (index-I-of-N.json, N from --parts) into index.json.
    #[arg(long, requires = "parts")]
    pub(crate) merge: bool,
}

/// `I/N` with `I < N`.
fn parse_part(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("--part {s}: expected I/N, e.g. 0/4"))?;
    let i: usize = i
        .trim()
        .parse()
        .with_context(|| format!("--part {s}: I is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .with_context(|| format!("--part {s}: N is not a number"))?;
    if n == 0 || i >= n {
        bail!("--part {s}: need 0 <= I < N (parts count from 0)");
    }
    Ok((i, n))
}
