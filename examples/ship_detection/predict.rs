//! Every detector the example compares, behind one call: the temporal
//! model, the per-day UNet, the brightness threshold and the temporal-median
//! difference, each turning a place's observed days into ship masks for the
//! days asked for.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use chrono::NaiveDate;

use crate::Res;
use crate::data::{DataInfo, host};
use crate::model::ShipNet;
use crate::temporal::{Seq, TemporalNet, median, tensors};

/// A place's ship masks: `(day index in its Seq, [H, W] mask)`.
pub(crate) type DayMasks = Vec<(usize, Vec<bool>)>;

/// A detector.
pub(crate) enum Predictor<'a> {
    /// The temporal model: sees all of a place's observed days at once.
    Temporal(&'a TemporalNet),
    /// The per-day UNet: one day at a time.
    Unet(&'a ShipNet),
    /// Ship where the mean RGB reflectance is at least this many DN.
    Brightness(f32),
    /// Ship where the mean RGB reflectance exceeds its per-pixel median over
    /// the place's valid days by at least this many DN.
    MedianDiff(f32),
}

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
    let mut out = vec![0.0f32; b.len()];
    let mut buf = Vec::with_capacity(s.len());
    for q in 0..p {
        buf.clear();
        for i in 0..s.len() {
            if s.valid[i * p + q] >= 0.5 {
                buf.push(b[i * p + q]);
            }
        }
        let m = median(&mut buf);
        for i in 0..s.len() {
            out[i * p + q] = b[i * p + q] - m;
        }
    }
    out
}

impl Predictor<'_> {
    /// Ship masks (`[H, W]`, on valid pixels only) of the days of each place
    /// that `want` takes: per place, `(day index in the Seq, mask)`.
    /// `micro` bounds the places (temporal) or days (UNet) per forward pass.
    pub(crate) fn predict(
        &self,
        seqs: &[Seq],
        want: &dyn Fn(NaiveDate) -> bool,
        info: &DataInfo,
        micro: usize,
        device: &Device,
    ) -> Res<Vec<DayMasks>> {
        let wanted =
            |s: &Seq| -> Vec<usize> { (0..s.len()).filter(|&i| want(s.days[i])).collect() };
        let threshold = |s: &Seq, score: &[f32], thr: f32| -> Vec<(usize, Vec<bool>)> {
            let p = s.h * s.w;
            wanted(s)
                .into_iter()
                .map(|i| {
                    let v = s.valid_of(i);
                    (
                        i,
                        (0..p)
                            .map(|q| v[q] >= 0.5 && score[i * p + q] >= thr)
                            .collect(),
                    )
                })
                .collect()
        };
        match self {
            Predictor::Brightness(thr) => Ok(seqs
                .iter()
                .map(|s| threshold(s, &brightness(s, info), *thr))
                .collect()),
            Predictor::MedianDiff(thr) => Ok(seqs
                .iter()
                .map(|s| threshold(s, &median_diff(s, info), *thr))
                .collect()),
            Predictor::Temporal(model) => {
                let model = model.valid();
                let mut out = Vec::with_capacity(seqs.len());
                for group in seqs.chunks(micro.max(1)) {
                    let refs: Vec<&Seq> = group.iter().collect();
                    let t = tensors(&refs, device);
                    let k = t.days;
                    let z = host(model.forward(&t))?;
                    for (gi, s) in group.iter().enumerate() {
                        let p = s.h * s.w;
                        out.push(
                            wanted(s)
                                .into_iter()
                                .map(|i| {
                                    let lz = &z[(gi * k + i) * p..(gi * k + i + 1) * p];
                                    let v = s.valid_of(i);
                                    (i, (0..p).map(|q| v[q] >= 0.5 && lz[q] > 0.0).collect())
                                })
                                .collect(),
                        );
                    }
                }
                Ok(out)
            }
            Predictor::Unet(model) => {
                let model = model.valid();
                let mut out = Vec::with_capacity(seqs.len());
                for s in seqs {
                    let (p, c) = (s.h * s.w, s.c);
                    let days = wanted(s);
                    let mut masks = Vec::with_capacity(days.len());
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
                        let vt = Tensor::<4>::from_data(
                            TensorData::new(v.clone(), [n, 1, s.h, s.w]),
                            device,
                        );
                        let z = host(model.forward(xt, vt))?;
                        for (j, &i) in chunk.iter().enumerate() {
                            let (lz, lv) = (&z[j * p..(j + 1) * p], &v[j * p..(j + 1) * p]);
                            masks.push((i, (0..p).map(|q| lv[q] >= 0.5 && lz[q] > 0.0).collect()));
                        }
                    }
                    out.push(masks);
                }
                Ok(out)
            }
        }
    }
}
