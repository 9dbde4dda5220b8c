//! Admission: caps on model-server calls in flight, for the whole gateway and per deployment,
//! with a short bounded wait for a free place. Past them a request is shed at once with 503
//! and `Retry-After`, so an overload costs the client a retry instead of costing Hearth
//! memory for every request it hoards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The caps, as configured.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionLimits {
    /// Model-server calls in flight across all deployments (a stream counts until it ends).
    pub max_in_flight: usize,
    /// Model-server calls in flight to one deployment.
    pub max_in_flight_per_deployment: usize,
    /// Requests that may wait for a place at once; more are shed without waiting.
    pub max_queued: usize,
    /// The longest a request waits for a place.
    pub queue_timeout: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_in_flight: 1024,
            max_in_flight_per_deployment: 256,
            max_queued: 128,
            queue_timeout: Duration::from_secs(2),
        }
    }
}

/// Deployment entries kept before idle ones are forgotten: GitLab's custom models can name
/// endpoints Hearth has never seen, and the map must not grow with them.
const MAX_TRACKED: usize = 1024;

/// Held for as long as the call runs; dropping it frees the places.
pub(crate) struct Permit {
    _deployment: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

/// Why a request was shed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Overloaded {
    /// `"gateway"` or `"deployment"`.
    pub scope: &'static str,
    pub cap: usize,
}

impl Overloaded {
    /// Seconds a client should wait before trying again.
    pub(crate) const RETRY_AFTER: &'static str = "1";

    pub(crate) fn message(&self, deployment: &str) -> String {
        match self.scope {
            "deployment" => format!(
                "deployment {deployment:?} has {} requests in flight, its limit; retry shortly (the limit is --max-in-flight-per-deployment)",
                self.cap
            ),
            _ => format!(
                "Hearth has {} requests in flight, its limit; retry shortly (the limit is --max-in-flight)",
                self.cap
            ),
        }
    }
}

pub(crate) struct Admission {
    limits: AdmissionLimits,
    global: Arc<Semaphore>,
    /// Looked up by deployment name on every request (settings, not client input).
    deployments: Mutex<foldhash::HashMap<String, Arc<Semaphore>>>,
    queued: AtomicUsize,
}

impl Admission {
    pub(crate) fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            global: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            deployments: Mutex::default(),
            queued: AtomicUsize::new(0),
            limits,
        }
    }

    /// A place for one call to `deployment`, or why there is none.
    pub(crate) async fn admit(&self, deployment: &str) -> Result<Permit, Overloaded> {
        let deadline = Instant::now() + self.limits.queue_timeout;
        let per_deployment = self.semaphore(deployment);
        let cap = self.limits.max_in_flight_per_deployment.max(1);
        let deployment_place = self
            .take(&per_deployment, deadline)
            .await
            .ok_or(Overloaded {
                scope: "deployment",
                cap,
            })?;
        let global = self.take(&self.global, deadline).await.ok_or(Overloaded {
            scope: "gateway",
            cap: self.limits.max_in_flight.max(1),
        })?;
        Ok(Permit {
            _deployment: deployment_place,
            _global: global,
        })
    }

    async fn take(&self, sem: &Arc<Semaphore>, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Some(p);
        }
        let _waiting = Waiting::enter(&self.queued, self.limits.max_queued)?;
        tokio::time::timeout_at(deadline, sem.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Whether `deployment`'s in-flight cap is reached (a new request would have to queue).
    pub(crate) fn is_full(&self, deployment: &str) -> bool {
        let map = match self.deployments.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(deployment)
            .is_some_and(|s| s.available_permits() == 0)
    }

    fn semaphore(&self, deployment: &str) -> Arc<Semaphore> {
        let cap = self.limits.max_in_flight_per_deployment.max(1);
        let mut map = match self.deployments.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(s) = map.get(deployment) {
            return s.clone();
        }
        if map.len() >= MAX_TRACKED {
            // Idle entries hold no place; a busy one must stay or its count would reset.
            map.retain(|_, s| s.available_permits() < cap);
        }
        let s = Arc::new(Semaphore::new(cap));
        map.insert(deployment.to_string(), s.clone());
        s
    }
}

/// One request in the wait queue; leaves it when dropped (served, timed out or abandoned).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(queued: &'a AtomicUsize, max: usize) -> Option<Waiting<'a>> {
        let before = queued.fetch_add(1, Ordering::AcqRel);
        let entered = Waiting(queued);
        (before < max).then_some(entered)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(global: usize, per: usize, queued: usize, wait_ms: u64) -> AdmissionLimits {
        AdmissionLimits {
            max_in_flight: global,
            max_in_flight_per_deployment: per,
            max_queued: queued,
            queue_timeout: Duration::from_millis(wait_ms),
        }
    }

    #[tokio::test]
    async fn the_per_deployment_cap_sheds_only_that_deployment() {
        let a = Admission::new(limits(10, 2, 0, 50));
        let _p1 = a.admit("a").await.unwrap();
        let _p2 = a.admit("a").await.unwrap();
        let shed = a.admit("a").await.err().unwrap();
        assert_eq!((shed.scope, shed.cap), ("deployment", 2));
        assert!(a.admit("b").await.is_ok());
    }

    #[tokio::test]
    async fn the_global_cap_sheds_every_deployment_and_places_come_back() {
        let a = Admission::new(limits(2, 10, 0, 50));
        let p1 = a.admit("a").await.unwrap();
        let _p2 = a.admit("b").await.unwrap();
        assert_eq!(a.admit("c").await.err().unwrap().scope, "gateway");
        drop(p1);
        assert!(a.admit("c").await.is_ok());
    }

    #[tokio::test]
    async fn a_waiting_request_gets_a_place_freed_within_the_queue_timeout() {
        let a = Arc::new(Admission::new(limits(1, 1, 4, 2_000)));
        let p = a.admit("a").await.unwrap();
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("a").await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(p);
        assert!(waiter.await.unwrap());
        assert_eq!(a.queued.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_full_queue_sheds_without_waiting() {
        let a = Arc::new(Admission::new(limits(1, 1, 1, 5_000)));
        let _p = a.admit("a").await.unwrap();
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("a").await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        assert!(a.admit("a").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(4));
        waiter.abort();
    }

    #[test]
    fn idle_deployments_are_forgotten_past_the_tracking_limit() {
        let a = Admission::new(limits(10, 3, 0, 0));
        for i in 0..MAX_TRACKED + 10 {
            a.semaphore(&format!("d{i}"));
        }
        assert!(a.deployments.lock().unwrap().len() <= MAX_TRACKED);
    }
}
