//! The fuzz corpus replayed on stable: every file of `fuzz/corpus/NAME/`
//! (seeds from `fuzz/make_seeds.py`, the inputs libFuzzer kept, and each
//! crash it found, as `crash-*`, once fixed) goes through the same body as
//! the fuzz target `NAME` (`fuzz/bodies.rs`). Bad input must come back as an
//! error: a panic fails the test, naming the file.

#[path = "../../fuzz/bodies.rs"]
mod bodies;

use std::path::{Path, PathBuf};

fn replay(name: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
        "{}: no seed inputs",
        dir.display()
    );
    let mut panicked = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panicked.push(f.display().to_string());
        }
    }
    assert!(
        panicked.is_empty(),
        "{name}: {} of {} inputs panicked: {panicked:#?}",
        panicked.len(),
        files.len()
    );
}

#[test]
fn tiff_corpus_gives_errors_not_panics() {
    replay("tiff", bodies::tiff);
}

#[test]
fn stac_item_corpus_gives_errors_not_panics() {
    replay("stac_item", bodies::stac_item);
}

#[test]
fn geojson_mask_corpus_gives_errors_not_panics() {
    replay("geojson_mask", bodies::geojson_mask);
}

#[test]
fn dataset_toml_corpus_gives_errors_not_panics() {
    replay("dataset_toml", bodies::dataset_toml);
}

#[test]
fn shard_index_corpus_gives_errors_not_panics() {
    replay("shard_index", bodies::shard_index);
}

#[test]
fn zarr_store_corpus_gives_errors_not_panics() {
    replay("zarr_store", bodies::zarr_store);
}
