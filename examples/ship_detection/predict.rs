//! Every detector the example compares, behind one call: the temporal
//! model, the per-day UNet, the brightness threshold and the temporal-median
//! difference, each turning a place's observed days into ship masks for the
//! days asked for.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::Res;
use crate::data::{DataInfo, host};
use crate::model::ShipNet;
use crate::temporal::{Seq, TemporalNet, temporal_median, tensors};

/// A detector: a per-pixel score and the threshold it is cut at.
pub(crate) enum Predictor<'a> {
    /// The temporal model (sees all of a place's observed days at once):
    /// ship where its logit exceeds the threshold.
    Temporal(&'a TemporalNet, f32),
    /// The per-day UNet (one day at a time): ship where its logit exceeds
    /// the threshold.
    Unet(&'a ShipNet, f32),
    /// Ship where the mean RGB reflectance is at least this many DN.
    Brightness(f32),
    /// Ship where the mean RGB reflectance exceeds its per-pixel median over
    /// the place's valid days by at least this many DN.
    MedianDiff(f32),
}

/// A place's per-pixel scores: `(day index in its Seq, [H, W] scores)`.
pub(crate) type DayScores = Vec<(usize, Vec<f32>)>;

/// The brightness (mean RGB reflectance, DN) of each pixel of each day,
/// `[K, H, W]`.
pub(crate) fn brightness(s: &Seq, info: &DataInfo) -> Vec<f32> {
    let p = s.h * s.w;
    let mut out = vec![0.0f32; s.len() * p];
    for i in 0..s.len() {
        for &b in &info.rgb {
            let x = s.band_of(i, b);
            for q in 0..p {
                out[i * p + q] += info.dn(b, x[q]) / 3.0;
            }
        }
    }
    out
}

/// The brightness minus its per-pixel median over the valid days, `[K, H, W]`.
pub(crate) fn median_diff(s: &Seq, info: &DataInfo) -> Vec<f32> {
    let p = s.h * s.w;
    let b = brightness(s, info);
    let m = temporal_median(&b, &s.valid, s.len(), 1);
    b.iter().enumerate().map(|(j, &x)| x - m[j % p]).collect()
}

impl Predictor<'_> {
    /// The threshold the scores are cut at.
    pub(crate) fn threshold(&self) -> f32 {
        match self {
            Predictor::Temporal(_, t) | Predictor::Unet(_, t) => *t,
            Predictor::Brightness(t) | Predictor::MedianDiff(t) => *t,
        }
    }

    /// Whether a pixel that scores `score` is ship when cut at `thr`: a
    /// logit above it, a brightness at least it.
    pub(crate) fn is_ship(&self, score: f32, thr: f32) -> bool {
        match self {
            Predictor::Temporal(..) | Predictor::Unet(..) => score > thr,
            Predictor::Brightness(_) | Predictor::MedianDiff(_) => score >= thr,
        }
    }

    /// A day tile scored `z`, cut at `thr` on its pixels `valid`.
    pub(crate) fn cut(&self, z: &[f32], valid: &[f32], thr: f32) -> Vec<bool> {
        z.iter()
            .zip(valid)
            .map(|(&z, &v)| v >= 0.5 && self.is_ship(z, thr))
            .collect()
    }

    /// The per-pixel scores (logits or DN) of every day of each place.
    /// `micro` bounds the places (temporal) or days (UNet) per forward pass.
    pub(crate) fn scores(
        &self,
        seqs: &[Seq],
        info: &DataInfo,
        micro: usize,
        device: &Device,
    ) -> Res<Vec<DayScores>> {
        let per_day = |s: &Seq, score: &[f32]| -> DayScores {
            let p = s.h * s.w;
            (0..s.len())
                .map(|i| (i, score[i * p..(i + 1) * p].to_vec()))
                .collect()
        };
        match self {
            Predictor::Brightness(_) => Ok(seqs
                .iter()
                .map(|s| per_day(s, &brightness(s, info)))
                .collect()),
            Predictor::MedianDiff(_) => Ok(seqs
                .iter()
                .map(|s| per_day(s, &median_diff(s, info)))
                .collect()),
            Predictor::Temporal(model, _) => {
                let model = model.valid();
                let mut out = Vec::with_capacity(seqs.len());
                for group in seqs.chunks(micro.max(1)) {
                    let refs: Vec<&Seq> = group.iter().collect();
                    let t = tensors(&refs, device);
                    let k = t.days;
                    let z = host(model.forward(&t))?;
                    for (gi, s) in group.iter().enumerate() {
                        let p = s.h * s.w;
                        out.push(per_day(s, &z[gi * k * p..(gi * k + s.len()) * p]));
                    }
                }
                Ok(out)
            }
            Predictor::Unet(model, _) => {
                let model = model.valid();
                let mut out = Vec::with_capacity(seqs.len());
                for s in seqs {
                    let (p, c) = (s.h * s.w, s.c);
                    let days: Vec<usize> = (0..s.len()).collect();
                    let mut scores = Vec::with_capacity(days.len());
                    for chunk in days.chunks(micro.max(1)) {
                        let n = chunk.len();
                        let mut x = Vec::with_capacity(n * c * p);
                        let mut v = Vec::with_capacity(n * p);
                        for &i in chunk {
                            for b in 0..c {
                                x.extend_from_slice(s.band_of(i, b));
                            }
                            v.extend_from_slice(s.valid_of(i));
                        }
                        let xt =
                            Tensor::<4>::from_data(TensorData::new(x, [n, c, s.h, s.w]), device);
                        let vt =
                            Tensor::<4>::from_data(TensorData::new(v, [n, 1, s.h, s.w]), device);
                        let z = host(model.forward(xt, vt))?;
                        for (j, &i) in chunk.iter().enumerate() {
                            scores.push((i, z[j * p..(j + 1) * p].to_vec()));
                        }
                    }
                    out.push(scores);
                }
                Ok(out)
            }
        }
    }
}
