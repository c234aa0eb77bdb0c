//! The runtimes the blocking entry points run their async work on, and the
//! text of a caught panic: plumbing every stage shares (stage 0, beside
//! [`crate::error`]; imports nothing but it).

use crate::error::{Error, Result};

/// Refuses a blocking call made inside async code (where `block_on` would
/// panic): `who` names the call and `instead` what to use there.
pub(crate) fn refuse_inside_async(who: &'static str, instead: &str) -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::invalid(
            who,
            format!("called inside an async runtime; {instead}"),
        ));
    }
    Ok(())
}

/// A multi-thread runtime of `threads` workers (else one per core) whose
/// threads are called `thread_name`, refused inside another runtime: `who`
/// names the caller in the error.
pub(crate) fn own_runtime(
    who: &'static str,
    thread_name: &str,
    threads: Option<usize>,
) -> Result<tokio::runtime::Runtime> {
    refuse_inside_async(
        who,
        "call it from a plain thread (e.g. tokio::task::spawn_blocking)",
    )?;
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.thread_name(thread_name)
        .enable_all()
        .build()
        .map_err(|e| Error::internal_because(who, "cannot start its runtime", e))
}

/// The message of a caught panic (`&str` or `String` payloads), else `""`.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
