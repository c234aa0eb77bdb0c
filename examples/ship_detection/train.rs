//! The two training loops: the temporal model (a step is a few places,
//! each with a random subset of its training days) and the per-day UNet (a
//! step is a micro-batch of day tiles). Both: forward, masked loss,
//! backward, Adam with a cosine-decayed rate; the loader's data wait timed.
//! Both see the same sun-glint augmentation ([`glint`]). The UNet baseline
//! may train on a thread of its own beside the temporal model ([`Lane`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use chrono::NaiveDate;

use crate::args::Opts;
use burn::tensor::{Tensor, TensorData};

use tilestack::StackDataLoader;

use crate::data::{HostBatch, Loaders, Mix, Split, gather, glint, host, slices};
use crate::metrics::Counts;
use crate::model::{ShipNet, masked_loss};
use crate::report::EpochReport;
use crate::temporal::{Seq, TemporalNet, sequences, tensors};
use crate::{Res, dbg_err, say};

/// What the training did.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) epochs: Vec<EpochReport>,
    /// Loss of every optimizer step, in order.
    pub(crate) losses: Vec<f32>,
    /// Days the training steps saw.
    pub(crate) trained_days: BTreeSet<NaiveDate>,
}

/// Where a training loop runs: the loader it draws its epochs from, the
/// prefix of its epoch lines, and a flag that ends it at its next step (set
/// when the loop beside it failed, so the run's error is not kept waiting
/// for a training nobody will read).
#[derive(Clone, Copy)]
pub(crate) struct Lane<'a> {
    pub(crate) name: &'static str,
    pub(crate) train: &'a StackDataLoader,
    pub(crate) stop: &'a AtomicBool,
}

impl Lane<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// `r`, having set the flag if it is an error.
    pub(crate) fn end<T>(&self, r: Res<T>) -> Res<T> {
        if r.is_err() {
            self.stop.store(true, Ordering::Relaxed);
        }
        r
    }
}

/// Cosine decay to 5 % of `lr` over `total` steps.
fn rate(lr: f64, step: usize, total: usize) -> f64 {
    let frac = (step as f64 / total.max(1) as f64).min(1.0);
    lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()))
}

/// Pixel counts of a step's logits against its targets on valid pixels.
fn count(counts: &mut Counts, z: &[f32], y: &[f32], v: &[f32]) {
    for p in 0..z.len() {
        if v[p] >= 0.5 {
            counts.add(z[p] > 0.0, y[p] > 0.5);
        }
    }
}

/// An epoch's running figures.
struct Epoch {
    t0: Instant,
    wait: f64,
    tiles: usize,
    steps: usize,
    loss: f64,
    train: Counts,
}

impl Epoch {
    fn start() -> Epoch {
        Epoch {
            t0: Instant::now(),
            wait: 0.0,
            tiles: 0,
            steps: 0,
            loss: 0.0,
            train: Counts::default(),
        }
    }

    /// The epoch's report, printed and logged.
    fn finish(self, o: &Opts, lane: Lane, epoch: usize, of: usize, log: &mut Log) {
        let seconds = self.t0.elapsed().as_secs_f64();
        let r = EpochReport {
            epoch,
            loss: self.loss / self.steps.max(1) as f64,
            wait_fraction: self.wait / seconds.max(1e-9),
            tiles_per_s: self.tiles as f64 / seconds.max(1e-9),
            seconds,
            steps: self.steps,
        };
        epoch_line(o, lane.name, &r, of, &self.train);
        log.epochs.push(r);
    }
}

fn epoch_line(o: &Opts, name: &str, r: &EpochReport, of: usize, train: &Counts) {
    say(
        o,
        format!(
            "{name}epoch {:>2}/{}  loss {:.4}  train pixel F1 {:.3}  data wait {:.1} %  {:.1} day tiles/s  ({:.1} s)",
            r.epoch + 1,
            of,
            r.loss,
            train.f1(),
            100.0 * r.wait_fraction,
            r.tiles_per_s,
            r.seconds
        ),
    );
}

/// A place's days less up to two, dropped at random (at least three kept
/// where it has them): each step sees another gap pattern.
fn subset(s: &Seq, mix: &mut Mix) -> Seq {
    let k = s.len();
    if k <= 3 {
        return s.clone();
    }
    let keep = k - (mix.next() % 3).min(k as u64 - 3) as usize;
    let mut idx: Vec<usize> = (0..k).collect();
    for i in (1..k).rev() {
        idx.swap(i, (mix.next() % (i as u64 + 1)) as usize);
    }
    idx.truncate(keep);
    idx.sort_unstable();
    s.subset(&idx)
}

/// Trains the temporal model on the training days of each place.
pub(crate) fn temporal(
    o: &Opts,
    l: &Loaders,
    mut model: TemporalNet,
    lane: Lane,
    log: &mut Log,
) -> Res<TemporalNet> {
    let mut optim = AdamConfig::new().init();
    let places = lane.train.batches().num_items();
    let per_epoch = places.div_ceil(o.places_per_step);
    let total = o.epochs * o.max_steps.map_or(per_epoch, |m| m.min(per_epoch));
    let mut mix = Mix(o.seed);
    let device = l.device.clone();
    let mut step = 0usize;
    for epoch in 0..o.epochs {
        if lane.stopped() {
            break;
        }
        let mut e = Epoch::start();
        let mut it = burn::data::dataloader::DataLoader::iter(lane.train);
        'epoch: loop {
            let tw = Instant::now();
            let Some(batch) = it.next() else { break };
            e.wait += tw.elapsed().as_secs_f64();
            let hb = HostBatch::new(&batch.map_err(dbg_err)?, &l.info)?;
            let mut seqs: Vec<Seq> = sequences(
                &hb,
                |r| hb.keep(r, Split::Train),
                |d| l.info.split(d) == Split::Train,
            )
            .iter()
            .map(|s| s.model_view().0)
            .filter(|s| s.len() > 0)
            .map(|s| {
                let mut s = subset(&s, &mut mix);
                let n = s.c * s.h * s.w;
                for i in 0..s.len() {
                    glint(
                        &mut s.x[i * n..(i + 1) * n],
                        s.c,
                        s.h,
                        s.w,
                        &l.info,
                        &mut mix,
                    );
                }
                s
            })
            .collect();
            for i in (1..seqs.len()).rev() {
                seqs.swap(i, (mix.next() % (i as u64 + 1)) as usize);
            }
            for group in seqs.chunks(o.places_per_step) {
                if o.max_steps.is_some_and(|m| e.steps >= m) || lane.stopped() {
                    break 'epoch;
                }
                let refs: Vec<&Seq> = group.iter().collect();
                for s in group {
                    log.trained_days.extend(s.days.iter().copied());
                }
                let t = tensors(&refs, &device);
                let logits = model.forward(&t);
                count(
                    &mut e.train,
                    &host(logits.clone())?,
                    &t.host_label,
                    &t.host_seen,
                );
                let loss = masked_loss(logits, t.label.clone(), t.seen.clone(), o.pos_weight);
                let lv = loss.clone().into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(rate(o.lr, step, total), model, grads);
                log.losses.push(lv);
                e.loss += lv as f64;
                e.tiles += group.iter().map(Seq::len).sum::<usize>();
                step += 1;
                e.steps += 1;
            }
        }
        drop(it);
        e.finish(o, lane, epoch, o.epochs, log);
    }
    Ok(model)
}

/// Trains the per-day UNet on the training days' tiles, `epochs` epochs,
/// drawn from the lane's loader.
pub(crate) fn unet(
    o: &Opts,
    l: &Loaders,
    mut model: ShipNet,
    epochs: usize,
    train_slices: usize,
    lane: Lane,
    log: &mut Log,
) -> Res<ShipNet> {
    let mut optim = AdamConfig::new().init();
    // Steps per epoch: each batch's training slices in micro-batches.
    let per_epoch = train_slices.div_ceil(o.micro_batch) + lane.train.batches().num_batches();
    let total = epochs * o.max_steps.map_or(per_epoch, |m| m.min(per_epoch));
    let mut mix = Mix(o.seed);
    let mut step = 0usize;
    for epoch in 0..epochs {
        if lane.stopped() {
            break;
        }
        let mut e = Epoch::start();
        let mut it = burn::data::dataloader::DataLoader::iter(lane.train);
        loop {
            if o.max_steps.is_some_and(|m| e.steps >= m) || lane.stopped() {
                break;
            }
            let tw = Instant::now();
            let Some(batch) = it.next() else { break };
            e.wait += tw.elapsed().as_secs_f64();
            let batch = batch.map_err(dbg_err)?;
            let mut sl = slices(&batch, &l.info, Split::Train)?;
            // Day slices in a seeded random order (Fisher–Yates).
            for i in (1..sl.len()).rev() {
                sl.swap(i, (mix.next() % (i as u64 + 1)) as usize);
            }
            for chunk in sl.chunks(o.micro_batch) {
                if o.max_steps.is_some_and(|m| e.steps >= m) || lane.stopped() {
                    break;
                }
                let idx: Vec<usize> = chunk.iter().map(|s| s.0).collect();
                log.trained_days.extend(chunk.iter().map(|s| s.1));
                // read on the host, glint added, uploaded once to the model's device
                let [x, y, v] = gather(&batch, &l.info, &idx)?;
                let [n, c, h, w] = x.dims();
                let mut xs = host(x)?;
                for i in 0..n {
                    glint(
                        &mut xs[i * c * h * w..(i + 1) * c * h * w],
                        c,
                        h,
                        w,
                        &l.info,
                        &mut mix,
                    );
                }
                let (ys, vs) = (host(y)?, host(v)?);
                let up = |d: Vec<f32>, ch| {
                    Tensor::<4>::from_data(TensorData::new(d, [n, ch, h, w]), &l.device)
                };
                let v = up(vs.clone(), 1);
                let logits = model.forward(up(xs, c), v.clone());
                count(&mut e.train, &host(logits.clone())?, &ys, &vs);
                let loss = masked_loss(logits, up(ys, 1), v, o.pos_weight);
                let lv = loss.clone().into_scalar::<f32>();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(rate(o.lr, step, total), model, grads);
                log.losses.push(lv);
                e.loss += lv as f64;
                e.tiles += idx.len();
                step += 1;
                e.steps += 1;
            }
        }
        drop(it);
        e.finish(o, lane, epoch, epochs, log);
    }
    Ok(model)
}
