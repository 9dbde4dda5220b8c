//! Active health checks: every interval each replica of an OpenAI-compatible deployment is
//! asked for its model list (cheap on vLLM and llama-server) and, for load-aware policies, its
//! `/metrics` queue length. A connection that fails ejects the replica at once, a timeout or a
//! 5xx counts as one failure; any answer (a 404 from a server without a model list included)
//! brings an ejected one back.

use std::sync::{Arc, Weak};
use std::time::Duration;

use hearth_catalog::Capability;
use hearth_providers::{Outcome, ProviderError, Providers, Timeouts, outcome_of};
use hearth_registry::{DeploymentPlatform, Registry, RoutingPolicy};

use super::replicas::{Pool, Pools};
use super::{CloudDefaults, endpoint_for};

/// The longest one check may take; a replica slower than this to list its models is in
/// trouble anyway.
const CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// Runs the checks until the gateway that owns `pools` is gone.
pub(crate) fn spawn(
    pools: Weak<Pools>,
    registry: Weak<Registry>,
    providers: Arc<Providers>,
    cloud: Arc<CloudDefaults>,
    interval: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let (Some(pools), Some(registry)) = (pools.upgrade(), registry.upgrade()) else {
                return;
            };
            let snap = registry.snapshot();
            drop(registry);
            let live = pools.sync(snap.deployments());
            let checks = snap
                .deployments()
                .iter()
                .filter(|d| d.platform == DeploymentPlatform::OpenaiCompatible)
                .filter_map(|d| {
                    let pool = live.iter().find(|p| p.deployment == d.name)?.clone();
                    let mut ep = endpoint_for(d, Capability::CodeCompletion, &cloud).ok()?;
                    ep.timeouts = Timeouts {
                        connect: CHECK_DEADLINE,
                        first_token: CHECK_DEADLINE,
                        total: CHECK_DEADLINE.min(interval),
                    };
                    Some((pool, ep))
                })
                .collect::<Vec<_>>();
            drop(pools);
            let providers = &*providers;
            let round = checks.iter().flat_map(|(pool, ep)| {
                (0..pool.replicas.len()).map(move |i| check(providers, pool, ep, i))
            });
            futures_util::future::join_all(round).await;
        }
    });
}

async fn check(
    providers: &Providers,
    pool: &Arc<Pool>,
    ep: &hearth_providers::Endpoint,
    index: usize,
) {
    let Some(replica) = pool.replicas.get(index) else {
        return;
    };
    let mut one = ep.clone();
    one.base_url = replica.url.to_string();
    match providers.list_models(&one).await {
        Ok(_) => pool.answered(index),
        Err(e) => {
            match outcome_of(&e) {
                // It answered: a server without a model list (404) or that wants another key
                // (401) is up; requests will meet and report the same.
                Outcome::Answered => pool.answered(index),
                Outcome::Busy => {}
                _ => {
                    let cannot_connect = matches!(e, ProviderError::Connect { .. });
                    pool.failed(index, Some(e.to_string()), cannot_connect);
                }
            }
            return;
        }
    }
    if pool.policy != RoutingPolicy::RoundRobin {
        // Servers without /metrics (llama-server without --metrics) just give no signal.
        let queued = match providers.server_metrics(&one).await {
            Ok(text) => queue_length(&text),
            Err(_) => 0,
        };
        replica.set_queued(queued);
    }
}

/// Requests waiting in the server's queue, from its Prometheus text: vLLM's
/// `vllm:num_requests_waiting` (summed over its model labels) or llama-server's
/// `llamacpp:requests_deferred`.
pub(crate) fn queue_length(metrics: &str) -> u32 {
    let total: f64 = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let name_end = l.find(['{', ' '])?;
            let name = &l[..name_end];
            if name != "vllm:num_requests_waiting" && name != "llamacpp:requests_deferred" {
                return None;
            }
            let value = l.rsplit(' ').next()?.trim();
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        })
        .sum();
    // Saturating float-to-int: a huge or odd value must not wrap.
    total.min(f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::queue_length;

    #[test]
    fn reads_vllm_and_llama_server_queues() {
        let vllm = "# HELP vllm:num_requests_waiting Number of requests waiting.\n\
            # TYPE vllm:num_requests_waiting gauge\n\
            vllm:num_requests_waiting{engine=\"0\",model_name=\"codestral\"} 3.0\n\
            vllm:num_requests_running{engine=\"0\",model_name=\"codestral\"} 8.0\n";
        assert_eq!(queue_length(vllm), 3);
        let llama = "# TYPE llamacpp:requests_deferred gauge\nllamacpp:requests_deferred 2\n\
            llamacpp:requests_processing 1\n";
        assert_eq!(queue_length(llama), 2);
        assert_eq!(queue_length("garbage\nvllm:num_requests_waiting NaN\n"), 0);
    }
}
