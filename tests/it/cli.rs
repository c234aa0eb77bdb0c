//! The `tilestack` binary: bad input exits non-zero with a one-line error naming the culprit.

use std::process::Command;

fn tilestack() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tilestack"))
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn serve_rejects_a_folder_that_is_not_a_world() {
    let d = tempfile::tempdir().unwrap();
    let out = tilestack().arg("serve").arg(d.path()).output().unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains(&d.path().display().to_string()) && err.contains("not a tilestack world"),
        "{err}"
    );
}

#[test]
fn world_rejects_a_malformed_recipe() {
    let d = tempfile::tempdir().unwrap();
    let recipe = d.path().join("bad.toml");
    std::fs::write(&recipe, "name = \"x\"\nseed = \"not a number\"\n").unwrap();
    let out = tilestack()
        .args(["world", "--out"])
        .arg(d.path().join("w"))
        .arg("--recipe")
        .arg(&recipe)
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("bad.toml") && err.contains("seed"), "{err}");
}

#[test]
fn search_rejects_a_bad_time_range() {
    let out = tilestack()
        .args([
            "search",
            "--stac",
            "http://127.0.0.1:9/",
            "--collection",
            "c",
        ])
        .args([
            "--centroid",
            "-122.33,37.81",
            "--time",
            "2019-08-30/2019-08-01",
        ])
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("time range") && err.contains("2019-08-30/2019-08-01"),
        "{err}"
    );
}

#[test]
fn serve_then_search_and_save_a_snapshot() {
    use std::io::BufRead;
    let world = crate::util::small_world();
    let mut serve = tilestack()
        .arg("serve")
        .arg(world.dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(serve.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.strip_prefix("STAC API: ").unwrap().trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("items.json");
    let out = tilestack()
        .args(["search", "--stac", &url, "--collection", "sentinel-2-l2a"])
        .args([
            "--centroid",
            "-122.33,37.81",
            "--time",
            "2019-08-01/2019-08-30",
        ])
        .args(["--limit", "4", "--save"])
        .arg(&snap)
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("total: 16 items in 4 pages"), "{stdout}");
    assert!(stdout.contains("S2A_MSIL2A_20190813T185921_R013_T11SKB_20190813T000000"));
    assert!(stdout.contains("EPSG:32611"));
    let items = tilestack::search::load_snapshot(&snap).unwrap();
    assert_eq!(items.len(), 16);
}
