//! What GitLab's routes put into the metrics: one exchange per call to a deployment, opened
//! once the call is admitted and timed from the handler's start (so the token check counts
//! as Hearth's own time), recorded when the answer is written or the stream ends.

use futures_util::StreamExt;
use hearth_catalog::Feature;
use hearth_providers::{ChunkStream, ProviderError, Usage};
use tokio::time::Instant;

use crate::AppState;
use crate::gitlab::error::GitlabError;
use crate::gitlab::model::Selected;
use crate::openai::error::OaiError;
use crate::telemetry::Exchange;

pub(crate) fn exchange(
    state: &AppState,
    sel: &Selected,
    feature: Feature,
    cid: &str,
    started: Instant,
) -> Exchange {
    // GitLab's routes write their own `hearth::ai` records, in GitLab's words.
    crate::openai::exchange(
        state,
        &sel.deployment,
        feature,
        cid,
        false,
        String::new(),
        started,
    )
}

/// Records an exchange as it ends: Hearth's own time is what the wait on the model server
/// leaves of the whole.
pub(crate) fn settle(record: Option<Exchange>, status: u16, error: Option<&str>) {
    if let Some(mut r) = record {
        r.overhead = r.started.elapsed().saturating_sub(r.upstream_time);
        r.finish(status, error);
    }
}

/// A call that failed before its answer began, recorded with the status GitLab gets.
pub(crate) fn failed(record: Exchange, e: &GitlabError) {
    record.finish(e.status.as_u16(), Some(&e.message));
}

/// A stream the model server broke off, recorded with the status its error maps to.
pub(crate) fn broke_off(record: Option<Exchange>, e: &ProviderError) {
    if let Some(r) = record {
        let o = OaiError::upstream(&r.deployment, e);
        settle(Some(r), o.status.as_u16(), Some(&o.message));
    }
}

/// A whole answer's exchange, recorded once its response is built.
pub(crate) fn finish_whole(mut record: Exchange, text: &str, usage: Option<Usage>) {
    record.record_text(text);
    record.usage = usage;
    settle(Some(record), 200, None);
}

/// `upstream`'s chunks, counted into `record` as they pass (text, usage, the wait on each).
/// Recorded at the end (200), at an error (its status), or as 499 when dropped before
/// either — for readers that take the stream to its end.
pub(crate) fn recorded(upstream: ChunkStream, record: Exchange) -> ChunkStream {
    futures_util::stream::unfold(
        (upstream, Some(record)),
        |(mut up, mut record)| async move {
            let r = record.as_mut()?;
            let asked = Instant::now();
            let next = up.next().await;
            r.upstream_time += asked.elapsed();
            match next {
                Some(Ok(chunk)) => {
                    r.record_text(&chunk.text);
                    r.usage = chunk.usage.or(r.usage);
                    Some((Ok(chunk), (up, record)))
                }
                Some(Err(e)) => {
                    broke_off(record.take(), &e);
                    Some((Err(e), (up, None)))
                }
                None => {
                    settle(record.take(), 200, None);
                    None
                }
            }
        },
    )
    .boxed()
}
