//! Metrics (Prometheus text at `/metrics`) and the per-request record that feeds them and the
//! opt-in verbose AI log.

use std::collections::{BTreeMap, VecDeque};

/// Per-request lookups by feature and deployment name (settings, not client input).
type FastMap<K, V> = foldhash::HashMap<K, V>;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use hearth_catalog::Feature;
use hearth_providers::Usage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    feature: String,
    deployment: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    feature: String,
    deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    feature: String,
    deployment: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FeatureLabels {
    feature: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    deployment: String,
    /// `gateway` or `deployment`: which cap was full.
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    deployment: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnlyDeployment {
    deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    feature: String,
    from: String,
    to: String,
}

/// Client disconnect status, as nginx logs it.
pub(crate) const CLIENT_CLOSED: u16 = 499;

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 10 ms to ~80 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

fn overhead_histogram() -> Histogram {
    // 10 µs to ~80 ms: Hearth's own time should sit at the bottom of this range.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 14))
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<RequestLabels, Counter>,
    upstream_latency: Histograms<DeploymentLabels>,
    time_to_first_token: Histograms<DeploymentLabels>,
    tokens: Family<TokenLabels, Counter>,
    overhead: Histograms<FeatureLabels>,
    shed: Family<ShedLabels, Counter>,
    ejections: Family<ReplicaLabels, Counter>,
    readmissions: Family<ReplicaLabels, Counter>,
    retries: Family<OnlyDeployment, Counter>,
    retry_budget_spent: Family<OnlyDeployment, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    superseded: Family<FeatureLabels, Counter>,
    coalesced: Family<FeatureLabels, Counter>,
    /// Set from the pools at each scrape.
    replica_healthy: Family<ReplicaLabels, Gauge>,
    replica_in_flight: Family<ReplicaLabels, Gauge>,
    replica_queued: Family<ReplicaLabels, Gauge>,
    /// Per-minute request and error counts by feature, for the console's status strip:
    /// Prometheus counters only ever grow, and the console shows the last minutes.
    recent: Mutex<VecDeque<Minute>>,
    /// Each feature and deployment's series, resolved once (see [`Series`]).
    series: RwLock<FastMap<Feature, FastMap<String, Arc<Series>>>>,
    started: Instant,
}

/// The series one feature and deployment records into at the end of every request, each taken
/// from its family the first time it is used and kept: recording a request then builds no
/// label strings and searches no family. A series appears in `/metrics` only once used, as
/// before.
#[derive(Default)]
struct Series {
    /// `requests` with status 200; other statuses go through the family.
    ok: OnceLock<Counter>,
    upstream_latency: OnceLock<Histogram>,
    time_to_first_token: OnceLock<Histogram>,
    tokens_in: OnceLock<Counter>,
    tokens_out: OnceLock<Counter>,
    /// The feature's `gateway_overhead_seconds` (one series per feature).
    overhead: OnceLock<Histogram>,
}

/// How many minutes of per-feature counts the status strip can show.
pub(crate) const RECENT_MINUTES: u64 = 15;

struct Minute {
    /// Minutes since the process started.
    index: u64,
    counts: BTreeMap<Feature, RecentCounts>,
}

/// Requests and failed requests of one feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecentCounts {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hearth");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RequestLabels, Counter>::default();
        let upstream_latency: Histograms<DeploymentLabels> =
            Family::new_with_constructor(latency_histogram);
        let time_to_first_token: Histograms<DeploymentLabels> =
            Family::new_with_constructor(latency_histogram);
        let tokens = Family::<TokenLabels, Counter>::default();
        let overhead: Histograms<FeatureLabels> = Family::new_with_constructor(overhead_histogram);
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "requests",
            "Inference requests by feature, deployment and HTTP status",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Inference requests that failed, by feature, deployment and status",
            errors.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time the model server took for a whole answer",
            upstream_latency.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from the request to the first token sent to the client",
            time_to_first_token.clone(),
        );
        registry.register(
            "tokens",
            "Tokens in (prompt) and out (completion), as the model server counted them",
            tokens.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Time spent inside Hearth per request, excluding waiting on the model server",
            overhead.clone(),
        );
        registry.register(
            "shed",
            "Requests answered 503 because the in-flight cap (gateway or deployment) was full",
            shed.clone(),
        );
        let ejections = Family::<ReplicaLabels, Counter>::default();
        let readmissions = Family::<ReplicaLabels, Counter>::default();
        let retries = Family::<OnlyDeployment, Counter>::default();
        let retry_budget_spent = Family::<OnlyDeployment, Counter>::default();
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        let superseded = Family::<FeatureLabels, Counter>::default();
        let coalesced = Family::<FeatureLabels, Counter>::default();
        let replica_healthy = Family::<ReplicaLabels, Gauge>::default();
        let replica_in_flight = Family::<ReplicaLabels, Gauge>::default();
        let replica_queued = Family::<ReplicaLabels, Gauge>::default();
        registry.register(
            "replica_ejections",
            "Times a replica was taken out of rotation after failures or a failed health check",
            ejections.clone(),
        );
        registry.register(
            "replica_readmissions",
            "Times an ejected replica answered again (a probe request or a health check)",
            readmissions.clone(),
        );
        registry.register(
            "upstream_retries",
            "Attempts sent to another replica after a failure before any answer",
            retries.clone(),
        );
        registry.register(
            "retry_budget_spent",
            "Retries not made because the deployment's retry budget was spent",
            retry_budget_spent.clone(),
        );
        registry.register(
            "fallbacks",
            "Requests served by a feature's fallback deployment instead of its own",
            fallbacks.clone(),
        );
        registry.register(
            "completions_cancelled_superseded",
            "Completions cancelled because a newer one came from the same client and file",
            superseded.clone(),
        );
        registry.register(
            "completions_coalesced",
            "Completions answered by an identical request already in flight",
            coalesced.clone(),
        );
        registry.register(
            "replica_healthy",
            "1 when the replica takes traffic, 0 while it is ejected",
            replica_healthy.clone(),
        );
        registry.register(
            "replica_in_flight",
            "Requests Hearth has in flight on the replica",
            replica_in_flight.clone(),
        );
        registry.register(
            "replica_queued",
            "Requests the replica's model server reports waiting (vLLM, llama-server /metrics)",
            replica_queued.clone(),
        );
        Metrics {
            registry,
            ejections,
            readmissions,
            retries,
            retry_budget_spent,
            fallbacks,
            superseded,
            coalesced,
            replica_healthy,
            replica_in_flight,
            replica_queued,
            requests,
            errors,
            upstream_latency,
            time_to_first_token,
            tokens,
            overhead,
            shed,
            recent: Mutex::new(VecDeque::new()),
            series: RwLock::default(),
            started: Instant::now(),
        }
    }

    /// The series of `feature` and `deployment`, created empty the first time.
    fn series(&self, feature: Feature, deployment: &str) -> Arc<Series> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&feature)
            .and_then(|m| m.get(deployment))
        {
            return s.clone();
        }
        self.series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(feature)
            .or_default()
            .entry(deployment.to_string())
            .or_default()
            .clone()
    }

    /// How long this process has been serving.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn count_recent(&self, feature: Feature, failed: bool) {
        let index = self.started.elapsed().as_secs() / 60;
        // A poisoned lock only means a panic elsewhere mid-update; the counts are still usable.
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.back().is_none_or(|m| m.index != index) {
            recent.push_back(Minute {
                index,
                counts: BTreeMap::new(),
            });
        }
        while recent
            .front()
            .is_some_and(|m| m.index + RECENT_MINUTES <= index)
        {
            recent.pop_front();
        }
        if let Some(minute) = recent.back_mut() {
            let c = minute.counts.entry(feature).or_default();
            c.requests += 1;
            c.errors += u64::from(failed);
        }
    }

    /// Requests and errors per feature over the last [`RECENT_MINUTES`] minutes.
    pub(crate) fn recent(&self) -> BTreeMap<Feature, RecentCounts> {
        let now = self.started.elapsed().as_secs() / 60;
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: BTreeMap<Feature, RecentCounts> = BTreeMap::new();
        for minute in recent.iter().filter(|m| m.index + RECENT_MINUTES > now) {
            for (feature, c) in &minute.counts {
                let total = out.entry(*feature).or_default();
                total.requests += c.requests;
                total.errors += c.errors;
            }
        }
        out
    }

    /// Counts a request shed by admission control.
    pub(crate) fn shed(&self, deployment: &str, scope: &str) {
        self.shed
            .get_or_create(&ShedLabels {
                deployment: deployment.to_string(),
                scope: scope.to_string(),
            })
            .inc();
    }

    pub(crate) fn pool_event(&self, event: crate::routing::PoolEvent<'_>) {
        use crate::routing::PoolEvent;
        match event {
            PoolEvent::Ejected {
                deployment,
                endpoint,
            } => self
                .ejections
                .get_or_create(&ReplicaLabels {
                    deployment: deployment.into(),
                    endpoint: endpoint.into(),
                })
                .inc(),
            PoolEvent::Readmitted {
                deployment,
                endpoint,
            } => self
                .readmissions
                .get_or_create(&ReplicaLabels {
                    deployment: deployment.into(),
                    endpoint: endpoint.into(),
                })
                .inc(),
            PoolEvent::Retry { deployment } => self
                .retries
                .get_or_create(&OnlyDeployment {
                    deployment: deployment.into(),
                })
                .inc(),
            PoolEvent::BudgetSpent { deployment } => self
                .retry_budget_spent
                .get_or_create(&OnlyDeployment {
                    deployment: deployment.into(),
                })
                .inc(),
        };
    }

    pub(crate) fn fallback(&self, feature: Feature, from: &str, to: &str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                feature: feature.as_str().into(),
                from: from.into(),
                to: to.into(),
            })
            .inc();
    }

    pub(crate) fn superseded(&self, feature: Feature) {
        self.superseded
            .get_or_create(&FeatureLabels {
                feature: feature.as_str().into(),
            })
            .inc();
    }

    pub(crate) fn coalesced(&self, feature: Feature) {
        self.coalesced
            .get_or_create(&FeatureLabels {
                feature: feature.as_str().into(),
            })
            .inc();
    }

    /// Copies each replica's state into the gauges (at scrape time, so the request path
    /// never touches a label map for them).
    pub(crate) fn set_replicas(&self, pools: &[Arc<crate::routing::Pool>]) {
        self.replica_healthy.clear();
        self.replica_in_flight.clear();
        self.replica_queued.clear();
        for pool in pools {
            for r in &pool.replicas {
                let labels = ReplicaLabels {
                    deployment: pool.deployment.clone(),
                    endpoint: r.url.to_string(),
                };
                self.replica_healthy
                    .get_or_create(&labels)
                    .set(i64::from(!r.is_ejected()));
                self.replica_in_flight
                    .get_or_create(&labels)
                    .set(i64::from(r.in_flight()));
                self.replica_queued
                    .get_or_create(&labels)
                    .set(i64::from(r.queued()));
            }
        }
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// Counts a request refused before any model server was called.
    pub(crate) fn refused(&self, feature: Feature, status: u16) {
        let labels = RequestLabels {
            feature: feature.as_str().into(),
            deployment: String::new(),
            status: status.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.errors.get_or_create(&labels).inc();
        self.count_recent(feature, true);
    }
}

/// What one inference request did, recorded once when it ends — or, if it is dropped first
/// (the client left), recorded then as 499.
pub(crate) struct Exchange {
    pub metrics: Arc<Metrics>,
    pub feature: Feature,
    pub deployment: String,
    pub upstream_model: String,
    pub correlation_id: String,
    /// Prompt and completion are kept only with verbose AI logs on.
    pub verbose: bool,
    pub prompt: String,
    pub completion: String,
    pub started: Instant,
    pub upstream_time: Duration,
    pub first_token: Option<Duration>,
    pub usage: Option<Usage>,
    pub overhead: Duration,
    recorded: bool,
}

impl Exchange {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        feature: Feature,
        deployment: String,
        upstream_model: String,
        correlation_id: String,
        verbose: bool,
        prompt: String,
        started: Instant,
    ) -> Exchange {
        Exchange {
            metrics,
            feature,
            deployment,
            upstream_model,
            correlation_id,
            verbose,
            prompt: if verbose { prompt } else { String::new() },
            completion: String::new(),
            started,
            upstream_time: Duration::ZERO,
            first_token: None,
            usage: None,
            overhead: Duration::ZERO,
            recorded: false,
        }
    }

    pub(crate) fn record_text(&mut self, text: &str) {
        if self.first_token.is_none() && !text.is_empty() {
            self.first_token = Some(self.started.elapsed());
        }
        if self.verbose {
            self.completion.push_str(text);
        }
    }

    pub(crate) fn finish(mut self, status: u16, error: Option<&str>) {
        self.record(status, error);
    }

    fn record(&mut self, status: u16, error: Option<&str>) {
        self.recorded = true;
        let metrics = &*self.metrics;
        let series = metrics.series(self.feature, &self.deployment);
        let feature = self.feature.as_str();
        let deployment = self.deployment.as_str();
        let labels = || RequestLabels {
            feature: feature.into(),
            deployment: deployment.into(),
            status: status.to_string(),
        };
        let dep = || DeploymentLabels {
            feature: feature.into(),
            deployment: deployment.into(),
        };
        let tokens = |direction: &str| TokenLabels {
            feature: feature.into(),
            deployment: deployment.into(),
            direction: direction.into(),
        };
        if status == 200 {
            series
                .ok
                .get_or_init(|| metrics.requests.get_or_create(&labels()).clone())
                .inc();
        } else {
            metrics.requests.get_or_create(&labels()).inc();
        }
        if error.is_some() {
            metrics.errors.get_or_create(&labels()).inc();
        }
        metrics.count_recent(self.feature, error.is_some());
        series
            .upstream_latency
            .get_or_init(|| metrics.upstream_latency.get_or_create(&dep()).clone())
            .observe(self.upstream_time.as_secs_f64());
        if let Some(t) = self.first_token {
            series
                .time_to_first_token
                .get_or_init(|| metrics.time_to_first_token.get_or_create(&dep()).clone())
                .observe(t.as_secs_f64());
        }
        if let Some(u) = self.usage {
            series
                .tokens_in
                .get_or_init(|| metrics.tokens.get_or_create(&tokens("in")).clone())
                .inc_by(u.prompt_tokens);
            series
                .tokens_out
                .get_or_init(|| metrics.tokens.get_or_create(&tokens("out")).clone())
                .inc_by(u.completion_tokens);
        }
        series
            .overhead
            .get_or_init(|| {
                metrics
                    .overhead
                    .get_or_create(&FeatureLabels {
                        feature: feature.into(),
                    })
                    .clone()
            })
            .observe(self.overhead.as_secs_f64());
        if let Some(e) = error {
            tracing::warn!(correlation_id = %self.correlation_id, feature = self.feature.as_str(),
                deployment = %self.deployment, status_code = status, error = e, "inference failed");
        }
        if self.verbose {
            tracing::info!(
                target: "hearth::ai",
                correlation_id = %self.correlation_id,
                feature = self.feature.as_str(),
                deployment = %self.deployment,
                model = %self.upstream_model,
                prompt = %self.prompt,
                completion = %self.completion,
                prompt_tokens = self.usage.map(|u| u.prompt_tokens),
                completion_tokens = self.usage.map(|u| u.completion_tokens),
                time_to_first_token_ms = self.first_token.map(|d| d.as_millis() as u64),
                duration_ms = self.started.elapsed().as_millis() as u64,
                overhead_us = self.overhead.as_micros() as u64,
                status_code = status,
                "ai request"
            );
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(
                CLIENT_CLOSED,
                Some("the client disconnected before the answer ended"),
            );
        }
    }
}
