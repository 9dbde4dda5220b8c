//! Calls to a deployment with several replicas: which replica each attempt goes to is the
//! gateway's choice ([`Replicas`]); this module runs the attempts, retrying on another replica
//! only while nothing has been received, and reports how each attempt went.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{ConnectCause, ProviderError, TimeoutPhase};
use crate::types::{CallContext, Endpoint};

/// At most this many attempts per call, whatever the number of replicas.
pub const MAX_ATTEMPTS: usize = 3;

/// A replica chosen for one attempt.
pub struct Pick {
    /// Which replica, as [`Replicas::report`] wants it back.
    pub index: usize,
    pub base_url: Arc<str>,
    /// Held while the attempt is in flight (for a stream, until the stream is dropped), so the
    /// chooser can count each replica's load.
    pub guard: Box<dyn Send + Sync>,
}

/// How an attempt went, as far as the replica's health is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The replica answered (an error the client caused, such as a 400, counts as answered).
    Answered,
    /// Connection reset, a 5xx, or no answer in time: counts towards ejection.
    Failed,
    /// Nothing listens there (connection refused) or the host name does not resolve: no
    /// reason to send it more until it is back.
    Unreachable,
    /// 429: busy, not broken.
    Busy,
}

/// Chooses the replica for each attempt and hears how it went. Implemented by the gateway.
pub trait Replicas: Send + Sync + std::fmt::Debug {
    /// The replica for the next attempt, never one in `tried`; `None` when none is left.
    fn pick(&self, affinity: Option<u64>, tried: &[usize]) -> Option<Pick>;
    /// How the attempt on replica `index` went, and how long it took to answer (the whole
    /// answer, or a stream's head).
    fn report(&self, index: usize, outcome: Outcome, elapsed: Duration);
    /// Whether one more attempt fits the retry budget (and takes it from the budget).
    fn may_retry(&self) -> bool;
}

/// What an error says about the replica that returned it.
pub fn outcome_of(e: &ProviderError) -> Outcome {
    match e {
        ProviderError::Connect {
            cause: ConnectCause::Refused | ConnectCause::DnsNotFound,
            ..
        } => Outcome::Unreachable,
        ProviderError::Connect { .. } | ProviderError::Timeout { .. } => Outcome::Failed,
        ProviderError::Upstream { status: 429, .. } => Outcome::Busy,
        ProviderError::Upstream { status, .. } if *status >= 500 => Outcome::Failed,
        ProviderError::Protocol(_) | ProviderError::Stream(_) => Outcome::Failed,
        ProviderError::Upstream { .. } | ProviderError::TooLarge { .. } => Outcome::Answered,
    }
}

/// Whether another replica may be tried after `e`: the request cannot have been acted on
/// (no connection, or the server said it is unavailable or busy for a moment).
pub fn retryable(e: &ProviderError) -> bool {
    match e {
        ProviderError::Connect { .. } => true,
        ProviderError::Timeout {
            phase: TimeoutPhase::Connect,
            ..
        } => true,
        ProviderError::Upstream {
            status: 502 | 503, ..
        } => true,
        ProviderError::Upstream {
            status: 429,
            retry_after,
            ..
        } => retry_after
            .as_deref()
            .is_none_or(|s| s.trim().parse::<u64>().is_ok_and(|secs| secs <= 1)),
        _ => false,
    }
}

/// Runs `call` on the endpoint's replicas: one attempt when it has none, else up to
/// [`MAX_ATTEMPTS`] on distinct replicas while the error is [`retryable`] and the budget
/// allows. Returns the answer and the guard of the replica that gave it.
pub(crate) async fn attempt<T, F, Fut>(
    ep: &Endpoint,
    ctx: &CallContext,
    call: F,
) -> Result<(T, Option<Box<dyn Send + Sync>>), ProviderError>
where
    F: Fn(Endpoint) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let Some(replicas) = &ep.replicas else {
        return call(ep.clone()).await.map(|t| (t, None));
    };
    let mut tried: Vec<usize> = Vec::with_capacity(MAX_ATTEMPTS);
    let mut last: Option<ProviderError> = None;
    while tried.len() < MAX_ATTEMPTS {
        if !tried.is_empty() && !replicas.may_retry() {
            break;
        }
        let Some(pick) = replicas.pick(ctx.affinity, &tried) else {
            break;
        };
        let mut one = ep.clone();
        one.base_url = pick.base_url.to_string();
        one.replicas = None;
        let started = Instant::now();
        match call(one).await {
            Ok(t) => {
                replicas.report(pick.index, Outcome::Answered, started.elapsed());
                return Ok((t, Some(pick.guard)));
            }
            Err(e) => {
                replicas.report(pick.index, outcome_of(&e), started.elapsed());
                tried.push(pick.index);
                let again = retryable(&e);
                last = Some(e);
                if !again {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| ProviderError::Connect {
        endpoint: ep.base_url.clone(),
        cause: ConnectCause::Other,
        message: "no replica of this deployment is available".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_before_any_work_are_retried() {
        let upstream = |status, retry_after: Option<&str>| ProviderError::Upstream {
            status,
            message: String::new(),
            code: None,
            retry_after: retry_after.map(str::to_owned),
        };
        assert!(retryable(&upstream(503, None)));
        assert!(retryable(&upstream(502, None)));
        assert!(retryable(&upstream(429, Some("1"))));
        assert!(!retryable(&upstream(429, Some("30"))));
        assert!(!retryable(&upstream(500, None)));
        assert!(!retryable(&upstream(400, None)));
        assert!(!retryable(&ProviderError::Timeout {
            phase: TimeoutPhase::FirstToken,
            after: std::time::Duration::from_secs(1)
        }));
        assert_eq!(outcome_of(&upstream(500, None)), Outcome::Failed);
        assert_eq!(outcome_of(&upstream(429, None)), Outcome::Busy);
        assert_eq!(outcome_of(&upstream(404, None)), Outcome::Answered);
    }
}
