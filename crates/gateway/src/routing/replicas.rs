//! Each deployment's replicas and what Hearth knows of them: requests in flight, the model
//! server's own queue, and health — passive (failed calls eject a replica for a growing
//! interval, then one probe request may bring it back) and active (see `health`).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hearth_providers::{Outcome, Pick, Replicas};
use hearth_registry::{Deployment, RoutingPolicy};

use super::budget::RetryBudget;
use super::pick::{Candidate, Ring, choose};

/// How replicas are watched and retried; `hearth serve` flags set it.
#[derive(Clone, Debug)]
pub struct UpstreamRouting {
    /// Between active checks of each replica; zero turns them off.
    pub health_interval: Duration,
    /// Consecutive failed calls that eject a replica.
    pub eject_after: u32,
    /// The first ejection's length; each further one doubles it, up to `max_ejection`.
    pub ejection: Duration,
    pub max_ejection: Duration,
    /// Retries may add this share of a deployment's requests (0.2 = 20 %).
    pub retry_ratio: f64,
    /// Retries allowed before any traffic has paid for them.
    pub retry_reserve: u32,
    /// A completion from the same client and file cancels the one still in flight.
    pub supersede: bool,
    /// Identical completion requests in flight share one upstream call.
    pub coalesce: bool,
    /// An answer also serves exact repeats from the same client for this long; zero: never.
    pub cache_ttl: Duration,
}

impl Default for UpstreamRouting {
    fn default() -> Self {
        UpstreamRouting {
            health_interval: Duration::from_secs(5),
            eject_after: 3,
            ejection: Duration::from_secs(5),
            max_ejection: Duration::from_secs(300),
            retry_ratio: 0.2,
            retry_reserve: 10,
            supersede: true,
            coalesce: true,
            cache_ttl: Duration::ZERO,
        }
    }
}

/// A replica's health.
#[derive(Clone, Debug, Default)]
pub(crate) struct Health {
    /// A call or a health check has reported on the replica.
    pub known: bool,
    pub consecutive_failures: u32,
    /// Ejections in a row without a success between them; sets the next one's length.
    pub ejections: u32,
    pub ejected_until: Option<Instant>,
    /// An ejection has run out and one request is trying the replica, since then.
    pub probing: Option<Instant>,
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Replica {
    pub url: Arc<str>,
    in_flight: Arc<AtomicU32>,
    /// Requests waiting in the model server's own queue, from its `/metrics`.
    queued: AtomicU32,
    health: Mutex<Health>,
    /// How long it takes to answer: a moving average, and when it last moved.
    latency: Mutex<Option<(f64, Instant)>>,
}

impl Replica {
    fn new(url: &str) -> Replica {
        Replica {
            url: Arc::from(url),
            in_flight: Arc::default(),
            queued: AtomicU32::new(0),
            health: Mutex::new(Health::default()),
            latency: Mutex::new(None),
        }
    }

    /// Adds one answer's time to the moving average; the older the average, the more the new
    /// answer counts.
    fn observe(&self, elapsed: Duration) {
        let sample = elapsed.as_secs_f64() * 1000.0;
        if let Ok(mut l) = self.latency.lock() {
            let now = Instant::now();
            *l = Some(match *l {
                None => (sample, now),
                Some((avg, at)) => {
                    let age = now.saturating_duration_since(at).as_secs_f64();
                    let kept = (1.0 - LATENCY_WEIGHT) * (-age / LATENCY_MEMORY.as_secs_f64()).exp();
                    (sample + kept * (avg - sample), now)
                }
            });
        }
    }

    /// The moving average in milliseconds and how old it is; `None` before the first answer.
    pub(crate) fn latency(&self, now: Instant) -> Option<(f64, Duration)> {
        self.latency
            .lock()
            .ok()
            .and_then(|l| *l)
            .map(|(avg, at)| (avg, now.saturating_duration_since(at)))
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    pub(crate) fn set_queued(&self, n: u32) {
        self.queued.store(n, Ordering::Relaxed);
    }

    pub(crate) fn health(&self) -> Health {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Healthy now: never ejected, or the ejection ran out and no probe is under way.
    fn available(&self, now: Instant) -> bool {
        self.health.lock().is_ok_and(|h| match h.ejected_until {
            None => true,
            // A probe whose outcome never came back (its client left) frees the slot.
            Some(until) => now >= until && h.probing.is_none_or(|since| now - since > PROBE_GIVEUP),
        })
    }

    /// Out of rotation: ejected and not yet back (once the ejection runs out it takes only a
    /// probe until an answer re-admits it).
    pub(crate) fn is_ejected(&self) -> bool {
        self.health.lock().is_ok_and(|h| h.ejected_until.is_some())
    }
}

/// How long a probe request may hold the only way into an ejected replica.
const PROBE_GIVEUP: Duration = Duration::from_secs(30);

/// Each answer's share of a replica's moving-average latency.
const LATENCY_WEIGHT: f64 = 0.3;

/// A replica's latency that no answer has refreshed for this long is mostly forgotten (it
/// drifts back to the fastest replica's, by e^-1 per period), so a replica that was slow and
/// stopped getting work is tried again and timed anew.
const LATENCY_MEMORY: Duration = Duration::from_secs(10);

/// The latency the chooser weighs each replica's load by: its moving average, drawn back
/// towards the fastest replica's as it ages; 0 (unknown) before its first answer.
fn latencies(replicas: &[Replica], now: Instant) -> Vec<f64> {
    let known: Vec<Option<(f64, Duration)>> = replicas.iter().map(|r| r.latency(now)).collect();
    let fastest = known
        .iter()
        .flatten()
        .map(|(avg, _)| *avg)
        .fold(f64::INFINITY, f64::min);
    known
        .iter()
        .map(|k| match k {
            None => 0.0,
            Some((avg, age)) => {
                let kept = (-age.as_secs_f64() / LATENCY_MEMORY.as_secs_f64()).exp();
                fastest + (avg - fastest) * kept
            }
        })
        .collect()
}

/// Counts a request in flight on a replica until dropped.
struct InFlight(Arc<AtomicU32>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a pool tells the rest of the gateway (metrics).
#[derive(Clone, Copy, Debug)]
pub(crate) enum PoolEvent<'a> {
    Ejected {
        deployment: &'a str,
        endpoint: &'a str,
    },
    Readmitted {
        deployment: &'a str,
        endpoint: &'a str,
    },
    Retry {
        deployment: &'a str,
    },
    BudgetSpent {
        deployment: &'a str,
    },
}

pub(crate) type Events = Arc<dyn Fn(PoolEvent<'_>) + Send + Sync>;

/// One deployment's replicas.
pub(crate) struct Pool {
    pub deployment: String,
    pub policy: RoutingPolicy,
    pub replicas: Vec<Replica>,
    ring: Ring,
    turn: AtomicUsize,
    budget: RetryBudget,
    settings: UpstreamRouting,
    events: Events,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("deployment", &self.deployment)
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

impl Pool {
    fn new(d: &Deployment, settings: &UpstreamRouting, events: Events, old: Option<&Pool>) -> Pool {
        let replicas: Vec<Replica> = d
            .endpoints
            .iter()
            .map(|url| {
                let fresh = Replica::new(url);
                // A replica that stays keeps what is known of it.
                if let Some(prev) = old.and_then(|o| o.replicas.iter().find(|r| &*r.url == url)) {
                    if let (Ok(mut h), Ok(p)) = (fresh.health.lock(), prev.health.lock()) {
                        *h = p.clone();
                    }
                    if let (Ok(mut l), Ok(p)) = (fresh.latency.lock(), prev.latency.lock()) {
                        *l = *p;
                    }
                    return Replica {
                        in_flight: prev.in_flight.clone(),
                        ..fresh
                    };
                }
                fresh
            })
            .collect();
        Pool {
            deployment: d.name.clone(),
            policy: d.routing,
            ring: Ring::new(replicas.iter().map(|r| &*r.url)),
            replicas,
            turn: AtomicUsize::new(0),
            budget: RetryBudget::new(settings.retry_ratio, settings.retry_reserve),
            settings: settings.clone(),
            events,
        }
    }

    /// Whether this pool's replicas are `d`'s endpoints, in order.
    pub(crate) fn has_replicas_of(&self, d: &Deployment) -> bool {
        self.replicas.len() == d.endpoints.len()
            && self
                .replicas
                .iter()
                .zip(&d.endpoints)
                .all(|(r, u)| &*r.url == u)
    }

    /// Whether some replica can take a request now.
    pub(crate) fn any_available(&self) -> bool {
        let now = Instant::now();
        self.replicas.iter().any(|r| r.available(now))
    }

    /// Records a failure (a call's or an active check's); ejects past the threshold, or at
    /// once when `eject_now` (a failed probe or check).
    pub(crate) fn failed(&self, index: usize, why: Option<String>, eject_now: bool) {
        let Some(r) = self.replicas.get(index) else {
            return;
        };
        let now = Instant::now();
        let mut ejected = None;
        if let Ok(mut h) = r.health.lock() {
            h.known = true;
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            if why.is_some() {
                h.last_error = why;
            }
            let in_ejection = h.ejected_until.is_some_and(|u| now < u);
            let probe_failed = h.probing.is_some();
            if !in_ejection
                && (eject_now
                    || probe_failed
                    || h.consecutive_failures >= self.settings.eject_after)
            {
                let doubling = 2u32.saturating_pow(h.ejections.min(16));
                let length = self
                    .settings
                    .ejection
                    .saturating_mul(doubling)
                    .min(self.settings.max_ejection);
                h.ejections = h.ejections.saturating_add(1);
                h.ejected_until = Some(now + length);
                h.probing = None;
                ejected = Some(length);
            }
        }
        if let Some(length) = ejected {
            tracing::warn!(deployment = %self.deployment, endpoint = %r.url,
                ejected_for_ms = u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
                reason = r.health().last_error.as_deref().unwrap_or("failures"),
                "replica ejected");
            (self.events)(PoolEvent::Ejected {
                deployment: &self.deployment,
                endpoint: &r.url,
            });
        }
    }

    /// Records a success: the replica is healthy again.
    pub(crate) fn answered(&self, index: usize) {
        let Some(r) = self.replicas.get(index) else {
            return;
        };
        let mut readmitted = false;
        if let Ok(mut h) = r.health.lock() {
            readmitted = h.ejected_until.is_some();
            *h = Health {
                known: true,
                ..Health::default()
            };
        }
        if readmitted {
            tracing::info!(deployment = %self.deployment, endpoint = %r.url, "replica re-admitted");
            (self.events)(PoolEvent::Readmitted {
                deployment: &self.deployment,
                endpoint: &r.url,
            });
        }
    }

    /// The replica `choose` picks among several.
    fn choose_among(&self, affinity: Option<u64>, tried: &[usize], now: Instant) -> Option<usize> {
        let latency = latencies(&self.replicas, now);
        let candidates: Vec<Candidate> = self
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                usable: !tried.contains(&i) && r.available(now),
                in_flight: r.in_flight(),
                queued: r.queued(),
                latency_ms: latency[i],
            })
            .collect();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        choose(self.policy, &candidates, &self.ring, affinity, turn).or_else(|| {
            // Every replica ejected: rather than refuse, try the one whose ejection ends
            // first — a probe that may find it back (fallbacks are chosen before this).
            (tried.is_empty())
                .then(|| {
                    (0..self.replicas.len())
                        .min_by_key(|&i| self.replicas[i].health().ejected_until.unwrap_or(now))
                })
                .flatten()
        })
    }
}

impl Replicas for Pool {
    fn pick(&self, affinity: Option<u64>, tried: &[usize]) -> Option<Pick> {
        let now = Instant::now();
        if tried.is_empty() {
            self.budget.deposit();
        }
        let index = match self.replicas.as_slice() {
            // One replica (most deployments): what `choose_among` would pick, without building
            // its candidates — the replica if usable, else (on a first try) the replica anyway.
            [only] => {
                (tried.is_empty() || (!tried.contains(&0) && only.available(now))).then_some(0)?
            }
            _ => self.choose_among(affinity, tried, now)?,
        };
        let r = &self.replicas[index];
        if let Ok(mut h) = r.health.lock()
            && h.ejected_until.is_some()
        {
            h.probing = Some(now);
        }
        r.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Pick {
            index,
            base_url: r.url.clone(),
            guard: Box::new(InFlight(r.in_flight.clone())),
        })
    }

    fn report(&self, index: usize, outcome: Outcome, elapsed: Duration) {
        match outcome {
            Outcome::Answered => {
                if let Some(r) = self.replicas.get(index) {
                    r.observe(elapsed);
                }
                self.answered(index);
            }
            Outcome::Failed => self.failed(index, None, false),
            Outcome::Unreachable => self.failed(index, None, true),
            Outcome::Busy => {
                if let Some(Ok(mut h)) = self.replicas.get(index).map(|r| r.health.lock()) {
                    h.probing = None;
                }
            }
        }
    }

    fn may_retry(&self) -> bool {
        let deployment = &self.deployment;
        if self.budget.withdraw() {
            (self.events)(PoolEvent::Retry { deployment });
            true
        } else {
            (self.events)(PoolEvent::BudgetSpent { deployment });
            tracing::warn!(deployment = %self.deployment, "retry budget spent: not retrying");
            false
        }
    }
}

/// Every deployment's pool, by deployment id. A pool is rebuilt when its deployment's
/// endpoints or policy change, keeping what is known of the replicas that stay.
pub(crate) struct Pools {
    settings: UpstreamRouting,
    pools: RwLock<foldhash::HashMap<i64, Arc<Pool>>>,
    events: Events,
}

impl Pools {
    pub(crate) fn new(settings: UpstreamRouting, events: Events) -> Pools {
        Pools {
            settings,
            pools: RwLock::default(),
            events,
        }
    }

    pub(crate) fn settings(&self) -> &UpstreamRouting {
        &self.settings
    }

    /// The deployment's pool; `None` when it has no endpoint of its own (Bedrock's public
    /// endpoint) or is not stored (GitLab's custom models).
    pub(crate) fn of(&self, d: &Deployment) -> Option<Arc<Pool>> {
        if d.endpoints.is_empty() || d.id == 0 {
            return None;
        }
        if let Ok(map) = self.pools.read()
            && let Some(p) = map.get(&d.id)
            && p.policy == d.routing
            && p.deployment == d.name
            && p.has_replicas_of(d)
        {
            return Some(p.clone());
        }
        let mut map = self.pools.write().ok()?;
        let fresh = Arc::new(Pool::new(
            d,
            &self.settings,
            self.events.clone(),
            map.get(&d.id).map(|p| &**p),
        ));
        map.insert(d.id, fresh.clone());
        Some(fresh)
    }

    /// The pools of `deployments` (created as needed); the others are dropped.
    pub(crate) fn sync(&self, deployments: &[Arc<Deployment>]) -> Vec<Arc<Pool>> {
        let live: Vec<Arc<Pool>> = deployments.iter().filter_map(|d| self.of(d)).collect();
        if let Ok(mut map) = self.pools.write() {
            map.retain(|id, _| deployments.iter().any(|d| d.id == *id));
        }
        live
    }

    /// The pool of deployment `id` if one exists, without creating it.
    pub(crate) fn get(&self, id: i64) -> Option<Arc<Pool>> {
        self.pools.read().ok()?.get(&id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(urls: &[&str], settings: UpstreamRouting) -> Pool {
        let d = Deployment {
            id: 1,
            name: "d".into(),
            family: hearth_catalog::Family::Codestral,
            model: None,
            platform: hearth_registry::DeploymentPlatform::OpenaiCompatible,
            endpoint: urls.first().map(|u| u.to_string()),
            endpoints: urls.iter().map(|u| u.to_string()).collect(),
            routing: RoutingPolicy::RoundRobin,
            identifier: "custom_openai/m".into(),
            api_key: hearth_registry::ApiKey::None,
            timeouts: Default::default(),
            api_version: None,
            region: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        Pool::new(&d, &settings, Arc::new(|_| {}), None)
    }

    #[test]
    fn consecutive_failures_eject_and_a_probe_readmits() {
        let p = pool(
            &["http://a/v1", "http://b/v1"],
            UpstreamRouting {
                ejection: Duration::from_millis(30),
                ..Default::default()
            },
        );
        for _ in 0..3 {
            p.report(0, Outcome::Failed, Duration::ZERO);
        }
        assert!(p.replicas[0].is_ejected());
        for _ in 0..4 {
            let pick = p.pick(None, &[]).map(|p| p.index);
            assert_eq!(pick, Some(1), "an ejected replica takes no traffic");
        }
        std::thread::sleep(Duration::from_millis(40));
        // The ejection ran out, but it is not back until an answer says so.
        assert!(p.replicas[0].is_ejected());
        // One probe goes to it, and no second request while it runs.
        let probes: Vec<_> = (0..4).filter_map(|_| p.pick(None, &[])).collect();
        assert_eq!(probes.iter().filter(|p| p.index == 0).count(), 1);
        p.report(0, Outcome::Answered, Duration::from_millis(5));
        assert!(p.replicas[0].available(Instant::now()));
        assert!(!p.replicas[0].is_ejected());
    }

    #[test]
    fn a_failed_probe_ejects_for_longer() {
        let p = pool(
            &["http://a/v1"],
            UpstreamRouting {
                ejection: Duration::from_millis(20),
                eject_after: 1,
                ..Default::default()
            },
        );
        p.report(0, Outcome::Failed, Duration::ZERO);
        let first = p.replicas[0].health().ejected_until;
        std::thread::sleep(Duration::from_millis(25));
        let probe = p.pick(None, &[]);
        assert!(probe.is_some());
        p.report(0, Outcome::Failed, Duration::ZERO);
        let h = p.replicas[0].health();
        assert_eq!(h.ejections, 2);
        assert!(h.ejected_until > first);
    }

    #[test]
    fn a_slow_replica_is_timed_and_forgiven_as_its_time_ages() {
        let p = pool(&["http://a/v1", "http://b/v1"], UpstreamRouting::default());
        let now = Instant::now();
        assert_eq!(latencies(&p.replicas, now), [0.0, 0.0]);
        p.report(0, Outcome::Answered, Duration::from_millis(20));
        p.report(1, Outcome::Answered, Duration::from_millis(800));
        p.report(1, Outcome::Answered, Duration::from_millis(500));
        let fresh = latencies(&p.replicas, Instant::now());
        assert!((fresh[0] - 20.0).abs() < 0.5, "{fresh:?}");
        assert!((fresh[1] - 710.0).abs() < 5.0, "moving average: {fresh:?}");
        let later = latencies(&p.replicas, Instant::now() + LATENCY_MEMORY * 3);
        assert!(later[1] < 60.0, "drawn back to the fastest's: {later:?}");
        // Failures do not count as answers.
        p.report(0, Outcome::Failed, Duration::from_secs(5));
        assert!((latencies(&p.replicas, Instant::now())[0] - 20.0).abs() < 0.5);
    }

    #[test]
    fn in_flight_counts_follow_the_guards() {
        let p = pool(&["http://a/v1", "http://b/v1"], UpstreamRouting::default());
        let a = p.pick(None, &[]);
        let b = p.pick(None, &[]);
        assert_eq!(p.replicas.iter().map(Replica::in_flight).sum::<u32>(), 2);
        drop(a);
        drop(b);
        assert_eq!(p.replicas.iter().map(Replica::in_flight).sum::<u32>(), 0);
    }
}
