//! Work beside the main thread, on a thread and a one-thread rayon pool of
//! its own: the per-day UNet baseline's training and scoring, and opening
//! the unseen world.
//!
//! **Why.** burn's CPU backend keeps this 2-core machine only ~70 % busy
//! with one training: about half of a step is serial (autodiff
//! bookkeeping, element-wise kernels, allocation). 12 steps of the per-day
//! UNet took 15.8 s on one rayon thread and 12.2 s on two
//! (`RAYON_NUM_THREADS=1`, `--model unet --epochs 1 --max-steps 12`):
//! 1.3×. Two trainings, each in a pool of its own, fill the machine (two
//! on the one global pool, an earlier attempt not kept, slowed each other
//! down nearly as much as they gained). The caller keeps the global pool.
//! `--sequential` runs the same work one thing after another,
//! with the same figures bit for bit: `--epochs 3 --unet-epochs 3
//! --eval-world datasets/second-port-ships.toml` took 251 s that way and
//! 180 s side by side (BENCHMARKS.md).

use std::thread::{Scope, ScopedJoinHandle};

use crate::Res;

/// Work started by [`beside`]: running on its thread, or done already.
pub(crate) enum Pending<'s, R> {
    Running(&'static str, ScopedJoinHandle<'s, Res<R>>),
    Done(Res<R>),
}

impl<R> Pending<'_, R> {
    /// Its result, once it has one; a panic on its thread is an error.
    pub(crate) fn join(self) -> Res<R> {
        match self {
            Pending::Running(name, h) => h
                .join()
                .unwrap_or_else(|_| Err(format!("{name}: the thread panicked").into())),
            Pending::Done(r) => r,
        }
    }
}

/// Starts `f` on a thread of its own (named `name`) inside a new one-thread
/// rayon pool, so burn's kernels it calls run there; or, with `inline`
/// (`--sequential`), runs it here, now, on the caller's pool.
///
/// # Errors
/// The thread could not start.
pub(crate) fn beside<'s, R: Send + 's>(
    s: &'s Scope<'s, '_>,
    name: &'static str,
    inline: bool,
    f: impl FnOnce() -> Res<R> + Send + 's,
) -> Res<Pending<'s, R>> {
    if inline {
        return Ok(Pending::Done(f()));
    }
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(s, move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(move |_| name.into())
                .build()?;
            pool.install(f)
        })
        .map_err(|e| format!("{name}: cannot start a thread: {e}"))?;
    Ok(Pending::Running(name, h))
}

/// `main` here and `other` (when there is one) [`beside`] it; both results
/// once both are done.
///
/// # Errors
/// Either's error (`main`'s first), or `other`'s thread could not start.
pub(crate) fn both<A, B: Send>(
    name: &'static str,
    inline: bool,
    main: impl FnOnce() -> Res<A>,
    other: Option<impl FnOnce() -> Res<B> + Send>,
) -> Res<(A, Option<B>)> {
    std::thread::scope(|s| {
        let b = other.map(|f| beside(s, name, inline, f)).transpose()?;
        let a = main();
        let b = b.map(Pending::join).transpose();
        Ok((a?, b?))
    })
}
