//! `tilestack demo` and `tilestack plot`: the files a new user gets, and the pictures.

use std::process::Command;

use tilestack::TileStack;
use tilestack::plot::{PlotOptions, plot_days, plot_timeseries};

use crate::util::{small_recipe, small_world, target_dir};

fn tilestack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tilestack"))
}

/// Runs the demo on the small world (same cache as the other tests).
fn run_demo(out: &std::path::Path) -> String {
    small_world();
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("small.toml");
    std::fs::write(&recipe, toml::to_string(&small_recipe()).unwrap()).unwrap();
    let o = tilestack()
        .args(["demo", "--recipe"])
        .arg(&recipe)
        .arg("--out")
        .arg(out)
        .env("TILESTACK_CACHE", target_dir().join("test-worlds"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

#[test]
fn demo_writes_stack_csv_and_picture_and_the_table_matches_the_csv() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_demo(out.path());
    for f in [
        "stack.safetensors",
        "metadata.csv",
        "days.png",
        "days-timeseries.png",
        "items.json",
    ] {
        assert!(
            out.path().join(f).is_file(),
            "{f} missing; stdout:\n{stdout}"
        );
    }
    let stack = TileStack::read_safetensors(&out.path().join("stack.safetensors")).unwrap();
    assert_eq!(stack.data.shape(), &[30, 6, 256, 256]);
    assert_eq!(stack.bands.last().map(String::as_str), Some("mask"));

    // metadata.csv = the safetensors tensors
    let csv = std::fs::read_to_string(out.path().join("metadata.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "date,eo_cloud_cover,pct_nans,tile_cloud_fraction,items"
    );
    let num = |s: &str| {
        if s.is_empty() {
            f32::NAN
        } else {
            s.parse::<f32>().unwrap()
        }
    };
    let same = |a: f32, b: f32| (a.is_nan() && b.is_nan()) || a == b;
    for (t, line) in lines.enumerate() {
        let c: Vec<&str> = line.split(',').collect();
        assert_eq!(c[0], stack.days[t].to_string());
        assert!(same(num(c[1]), stack.eo_cloud_cover[t]), "{line}");
        assert!(same(num(c[2]), stack.pct_nans[t]), "{line}");
        assert!(same(num(c[3]), stack.tile_cloud_fraction[t]), "{line}");
        let ids: Vec<&str> = if c[4].is_empty() {
            vec![]
        } else {
            c[4].split(';').collect()
        };
        assert_eq!(ids, stack.items[t]);
    }

    // the printed table = the CSV, rounded to 0.1
    let table: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("2019-08-"))
        .collect();
    assert_eq!(table.len(), 30, "{stdout}");
    for (t, row) in table.iter().enumerate() {
        let c: Vec<&str> = row.split_whitespace().collect();
        let f = |v: f32| {
            if v.is_nan() {
                "-".to_string()
            } else {
                format!("{v:.1}")
            }
        };
        assert_eq!(c[0], stack.days[t].to_string());
        assert_eq!(c[1], stack.items[t].len().to_string());
        assert_eq!(c[2], f(stack.eo_cloud_cover[t]));
        assert_eq!(c[3], f(100.0 * stack.tile_cloud_fraction[t]));
        assert_eq!(c[4], f(stack.pct_nans[t]));
    }
    let png = image::open(out.path().join("days.png")).unwrap();
    assert!(png.width() > 6 * 256 && png.height() > 5 * 256);
    assert!(stdout.contains("phases: world"));
    // the Sentinel-1 row: VV, VH in dB of the radar collection alone
    let s1 = TileStack::read_safetensors(&out.path().join("s1").join("stack.safetensors")).unwrap();
    assert_eq!(s1.bands, ["vv", "vh", "mask"]);
    assert_eq!(s1.items.iter().filter(|i| !i.is_empty()).count(), 10);
    assert!(out.path().join("s1-days.png").is_file());
    assert!(
        stdout.contains("Sentinel-1 VV, VH in dB: 10 days"),
        "{stdout}"
    );
}

/// Share of the tile that is NaN grey (counting the red mask outline over grey when `with_red`).
fn grey_fraction(img: &image::RgbImage, x0: u32, y0: u32, w: u32, h: u32, with_red: bool) -> f64 {
    let mut g = 0;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            // grey, or the red mask outline drawn over it
            let px = img.get_pixel(x, y).0;
            g += usize::from(px == [150, 150, 150] || (with_red && px == [230, 20, 20]));
        }
    }
    g as f64 / (w * h) as f64
}

fn red_pixels(img: &image::RgbImage) -> usize {
    img.pixels().filter(|p| p.0 == [230, 20, 20]).count()
}

#[test]
fn plots_of_nan_days_single_days_and_maskless_stacks() {
    let out = tempfile::tempdir().unwrap();
    run_demo(out.path());
    let stack = TileStack::read_safetensors(&out.path().join("stack.safetensors")).unwrap();
    // 08-02 has no scene: its tile is all grey; 08-01 is clear: none grey; the mask is outlined
    let two = plot_days(
        &stack,
        &PlotOptions {
            days: Some(2),
            cols: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let (x1, y) = (6, 6 + 22);
    assert_eq!(grey_fraction(&two, x1, y, 256, 256, false), 0.0);
    assert_eq!(grey_fraction(&two, x1 + 262, y, 256, 256, true), 1.0);
    assert!(red_pixels(&two) > 500);
    // a single day
    let one = plot_days(
        &stack,
        &PlotOptions {
            start: chrono::NaiveDate::from_ymd_opt(2019, 8, 21),
            days: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(one.width(), 256 + 12);
    // no mask band: no red
    let mut nomask = stack.clone();
    nomask.data = stack.data.slice(ndarray::s![.., 0..5, .., ..]).to_owned();
    nomask.bands.pop();
    let img = plot_days(&nomask, &PlotOptions::default()).unwrap();
    assert_eq!(red_pixels(&img), 0);
    assert!(plot_timeseries(&nomask).unwrap().width() > 300);
    // missing RGB band is named
    let e = plot_days(
        &nomask,
        &PlotOptions {
            rgb: ["B05".into(), "B03".into(), "B02".into()],
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("B05") && e.contains("B04"), "{e}");
}

#[test]
fn plot_rejects_files_that_are_not_stacks() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("notes.txt");
    std::fs::write(&p, "hello").unwrap();
    let o = tilestack().arg("plot").arg(&p).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a safetensors file"),
        "{err}"
    );
    // a safetensors file without the stack's metadata
    let p = d.path().join("weights.safetensors");
    let data = vec![0u8; 16];
    let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &data).unwrap();
    safetensors::serialize_to_file([("w", v)], None, &p).unwrap();
    let o = tilestack().arg("plot").arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("weights.safetensors")
            && err.contains("not a tile stack: no tensor \"data\""),
        "{err}"
    );
}
