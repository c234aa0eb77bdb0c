//! At most so many requests in flight to one host, across every clone of a
//! client and every caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Requests in flight to one host (scheme + host + port) at most, by default,
/// across every clone of a client and every caller.
pub const DEFAULT_PER_HOST: usize = 32;

/// One semaphore per host, shared by clones of a client.
#[derive(Debug)]
pub(super) struct HostLimits {
    per_host: usize,
    map: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl HostLimits {
    pub(super) fn new(per_host: usize) -> Self {
        HostLimits {
            per_host: per_host.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn acquire(&self, url: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let key = url::Url::parse(url)
            .map(|u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_default();
        let sem = {
            // Short critical section, never held across the await below.
            let mut map = self.map.lock().ok()?;
            map.entry(key)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_host)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }
}
