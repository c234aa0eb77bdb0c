//! What an opened dataset holds per sample ([`DatasetSample`]) and what
//! opening it kept and dropped ([`DatasetReport`]).

use std::collections::BTreeMap;

use chrono::NaiveDate;

/// One sample of a dataset: a place, a time window and its scenes. It
/// holds what identifies its stack, not the stack's plan, so that a
/// dataset of a million places fits in memory; [`TileDataset::plan`](crate::dataset::TileDataset::plan)
/// builds the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSample {
    /// `point id` (with `@start` when the config has several time windows).
    pub id: String,
    /// `[lon, lat]` of the tile centre.
    pub centroid: [f64; 2],
    /// First day, inclusive.
    pub start: NaiveDate,
    /// Last day, inclusive.
    pub end: NaiveDate,
    /// Steps that have at least one scene (and enough footprint cover).
    pub days_with_data: usize,
    /// Its scenes: indexes into [`TileDataset::scenes`](crate::dataset::TileDataset::scenes), in plan order
    /// (time, then id).
    pub scenes: Box<[u32]>,
}

/// What [`TileDataset::open`](crate::dataset::TileDataset::open) kept and dropped, and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetReport {
    /// Points × time windows the sampler produced.
    pub candidates: usize,
    /// Samples kept.
    pub kept: usize,
    /// Samples dropped, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// Scenes left out for `filters.max_cloud_cover`, summed over samples.
    pub cloudy_scenes: usize,
    /// Findings of the searches and plans (no scene, truncated search, …),
    /// as text, once each; the first 100.
    pub warnings: Vec<String>,
    /// Distinct warnings past the first 100 (counted, not kept).
    pub warnings_dropped: usize,
    /// STAC searches made (one per time window and search cell; 0 for a
    /// snapshot).
    pub searches: usize,
    /// Scenes held (each item once, however many samples use it).
    pub scenes: usize,
    /// The inputs after the first (`[[inputs]]`), in config order.
    pub inputs: Vec<InputReport>,
    /// The raster label layers, read as inputs are, in config order.
    pub raster_labels: Vec<InputReport>,
}

/// What opening found for one input after the first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputReport {
    /// The input's name.
    pub name: String,
    /// Its time rule, as text.
    pub rule: String,
    /// STAC searches made for it (0 for a snapshot or a single raster).
    pub searches: usize,
    /// Its scenes held (each once).
    pub scenes: usize,
    /// Kept samples none of whose scenes it has: their loads fail naming
    /// the input (`[loader] errors` decides), or, for `daily`/`nearest`,
    /// every step is invalid.
    pub samples_without_scene: usize,
}

impl std::fmt::Display for InputReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input {:?} ({}): {} scenes, {} searches, {} samples without a scene",
            self.name, self.rule, self.scenes, self.searches, self.samples_without_scene
        )
    }
}

impl std::fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} samples kept", self.kept, self.candidates)?;
        for (why, n) in &self.dropped {
            write!(f, "; {n} dropped: {why}")?;
        }
        if self.cloudy_scenes > 0 {
            write!(
                f,
                "; {} cloudy scenes left out (filters.max_cloud_cover)",
                self.cloudy_scenes
            )?;
        }
        for i in &self.inputs {
            write!(f, "; {i}")?;
        }
        for l in &self.raster_labels {
            // "input \"cover\" (static): …" said of a label
            write!(f, "; label{}", format!("{l}").trim_start_matches("input"))?;
        }
        Ok(())
    }
}
