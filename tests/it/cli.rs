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
