//! [`LoaderMetrics`]: what one epoch of a loader cost, and how long the
//! training loop waited for it.

/// What one epoch of a [`BatchLoader`](crate::loader::BatchLoader) cost, and what the training loop waited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoaderMetrics {
    /// The epoch.
    pub epoch: u64,
    /// Batches handed out.
    pub batches: usize,
    /// Samples handed out (padding included).
    pub samples: usize,
    /// Seconds the caller's `next()` blocked, summed.
    pub wait_s: f64,
    /// Seconds from `iter()` to the first batch.
    pub first_batch_s: f64,
    /// Seconds from `iter()` to the last batch.
    pub epoch_s: f64,
    /// Stack loads of the epoch's batches (replacement attempts included).
    pub loads: u64,
    /// Loads that failed.
    pub load_errors: u64,
    /// Samples replaced ([`ErrorPolicy::Replace`](crate::dataset::ErrorPolicy::Replace)).
    pub replaced: u64,
    /// Samples handed out as no data ([`ErrorPolicy::Nan`](crate::dataset::ErrorPolicy::Nan)).
    pub failed: u64,
    /// Padded rows.
    pub padded: u64,
    /// Tile cache hits / (hits + misses) during the epoch; NaN without lookups.
    pub cache_hit_rate: f64,
    /// Body bytes fetched during the epoch.
    pub bytes_fetched: u64,
    /// Requests sent during the epoch.
    pub requests: u64,
    /// Most bytes the loader held at once (all epochs so far).
    pub peak_bytes: u64,
    /// The budget.
    pub budget_bytes: u64,
}

impl LoaderMetrics {
    /// Stack loads per second of epoch time.
    pub fn loads_per_s(&self) -> f64 {
        if self.epoch_s > 0.0 {
            self.loads as f64 / self.epoch_s
        } else {
            0.0
        }
    }

    /// The share of the epoch the caller waited for data after the first batch.
    pub fn wait_fraction_after_first(&self) -> f64 {
        let rest = self.epoch_s - self.first_batch_s;
        if rest > 0.0 {
            ((self.wait_s - self.first_batch_s).max(0.0) / rest).min(1.0)
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for LoaderMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {}: {} batches ({} samples) in {:.2} s, first batch {:.3} s, waited {:.3} s \
             ({:.1} % after the first), {} loads ({:.1}/s), cache hits {:.0} %, {:.1} MB fetched \
             in {} requests, peak {:.0} of {:.0} MB",
            self.epoch,
            self.batches,
            self.samples,
            self.epoch_s,
            self.first_batch_s,
            self.wait_s,
            100.0 * self.wait_fraction_after_first(),
            self.loads,
            self.loads_per_s(),
            100.0 * self.cache_hit_rate,
            self.bytes_fetched as f64 / 1e6,
            self.requests,
            self.peak_bytes as f64 / 1e6,
            self.budget_bytes as f64 / 1e6,
        )?;
        for (n, what) in [
            (self.replaced, "replaced"),
            (self.failed, "failed (no data)"),
            (self.padded, "padded"),
            (self.load_errors, "load errors"),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        Ok(())
    }
}
