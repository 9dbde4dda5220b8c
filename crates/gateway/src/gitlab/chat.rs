//! Duo Chat: `/v2/chat/agent`, one ReAct step streamed as NDJSON, and the older
//! `/v1/chat/{tool}`.
//!
//! GitLab runs the tools. Each call sends the conversation and the scratchpad of earlier steps
//! (thought, action, input, observation); the model either picks the next action or gives the
//! final answer, whose text is streamed as it arrives.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use hearth_catalog::Feature;
use hearth_providers::{CallContext, ChatMessage, ChatRequest, ChunkStream, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::correlation::CorrelationId;
use crate::extract::RawBody;
use crate::gitlab::error::GitlabError;
use crate::gitlab::model::{ModelFields, UseCase, select};
use crate::gitlab::record::{exchange, failed, finish_whole, recorded};
use crate::gitlab::{admit, authorize};
use crate::openai::error::OaiError;
use crate::openai::now_secs;
use crate::pump;
use crate::telemetry::Exchange;
use tokio::time::Instant;

const FINAL: &str = "Final Answer:";
const STOP: &str = "Observation:";

#[derive(Deserialize, Clone)]
struct Step {
    #[serde(default)]
    thought: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    tool_input: String,
    #[serde(default)]
    observation: String,
}

#[derive(Deserialize)]
struct PadEntry {
    #[serde(default)]
    action: Option<Step>,
    #[serde(default)]
    observation: String,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    agent_scratchpad: Option<Vec<PadEntry>>,
    #[serde(default)]
    current_file: Option<Value>,
    #[serde(default)]
    additional_context: Option<Vec<Value>>,
}

#[derive(Deserialize, Default)]
struct Scratchpad {
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Deserialize, Default)]
struct Options {
    #[serde(default)]
    agent_scratchpad: Scratchpad,
}

#[derive(Deserialize)]
struct AgentBody {
    messages: Vec<Message>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    unavailable_resources: Vec<String>,
    #[serde(default)]
    model_metadata: Option<ModelFields>,
}

/// Tools GitLab runs for Duo Chat, and the resource each needs.
const TOOLS: &[(&str, &str, &str)] = &[
    (
        "issue_reader",
        "Issues",
        "reads an issue: give its URL or reference",
    ),
    (
        "epic_reader",
        "Epics",
        "reads an epic: give its URL or reference",
    ),
    (
        "merge_request_reader",
        "Merge Requests",
        "reads a merge request: give its URL or reference",
    ),
    (
        "commit_reader",
        "Commits",
        "reads a commit: give its URL or SHA",
    ),
    (
        "build_reader",
        "Pipelines",
        "reads a CI job's log: give the job's URL",
    ),
    (
        "gitlab_documentation",
        "Documentation",
        "searches GitLab's documentation: give a question",
    ),
];

fn system_prompt(unavailable: &[String]) -> String {
    let tools: Vec<String> = TOOLS
        .iter()
        .filter(|(_, resource, _)| !unavailable.iter().any(|u| u == resource))
        .map(|(name, _, what)| format!("- {name}: {what}"))
        .collect();
    format!(
        "You are GitLab Duo Chat, a helpful assistant for software development in GitLab.\n\
         You can use these tools:\n{}\n\n\
         Work in steps. For each step write:\n\
         Thought: what you need to do next\n\
         Action: the tool to use, one of the names above\n\
         Action Input: the input for the tool\n\
         Then stop: the tool's result comes back as Observation.\n\
         When you can answer without a tool, write:\n\
         Thought: I can answer now\n\
         {FINAL} your answer in Markdown",
        tools.join("\n")
    )
}

fn conversation(body: &AgentBody) -> Result<Vec<ChatMessage>, GitlabError> {
    let mut out = vec![ChatMessage {
        role: "system".into(),
        content: system_prompt(&body.unavailable_resources),
        ..Default::default()
    }];
    let mut steps: Vec<Step> = body
        .options
        .as_ref()
        .map(|o| o.agent_scratchpad.steps.clone())
        .unwrap_or_default();
    for (i, m) in body.messages.iter().enumerate() {
        if m.agent_scratchpad.is_some() && m.role != "assistant" {
            return Err(GitlabError::detail(
                StatusCode::BAD_REQUEST,
                format!("messages[{i}]: only assistant messages carry an agent_scratchpad"),
            ));
        }
        if let Some(pad) = &m.agent_scratchpad {
            steps.extend(pad.iter().filter_map(|e| {
                e.action.clone().map(|mut s| {
                    s.observation = e.observation.clone();
                    s
                })
            }));
            continue;
        }
        let role = match m.role.as_str() {
            "user" => "user",
            "assistant" => "assistant",
            "system" => "system",
            other => {
                return Err(GitlabError::detail(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("messages[{i}].role {other:?} is not user, assistant or system"),
                ));
            }
        };
        let mut content = m.content.clone().unwrap_or_default();
        if let Some(file) = &m.current_file {
            let path = file["file_path"].as_str().unwrap_or("");
            let selected = file["selected_code"]
                .as_str()
                .or_else(|| file["data"].as_str())
                .unwrap_or("");
            content.push_str(&format!(
                "\n\nThe user is looking at {path}:\n```\n{selected}\n```"
            ));
        }
        for ctx in m.additional_context.iter().flatten() {
            if let Some(text) = ctx["content"].as_str() {
                content.push_str(&format!(
                    "\n\nContext ({}):\n{text}",
                    ctx["category"].as_str().unwrap_or("context")
                ));
            }
        }
        out.push(ChatMessage {
            role: role.into(),
            content,
            ..Default::default()
        });
    }
    if !steps.is_empty() {
        let pad: String = steps
            .iter()
            .map(|s| {
                format!(
                    "Thought: {}\nAction: {}\nAction Input: {}\nObservation: {}\n",
                    s.thought, s.tool, s.tool_input, s.observation
                )
            })
            .collect();
        out.push(ChatMessage {
            role: "assistant".into(),
            content: pad,
            ..Default::default()
        });
        out.push(ChatMessage {
            role: "user".into(),
            content: "Continue with the next step.".into(),
            ..Default::default()
        });
    }
    Ok(out)
}

fn line(kind: &str, data: Value) -> Bytes {
    let mut s = json!({"type": kind, "data": data}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Reads the model's ReAct text as it streams: final-answer text goes out at once, an action
/// is reported when the step ends.
struct ReactStream {
    upstream: ChunkStream,
    text: String,
    /// Byte offset where the final answer starts, once `Final Answer:` was seen.
    answer_at: Option<usize>,
    sent: usize,
    usage: Option<Usage>,
    model: String,
    done: bool,
}

impl ReactStream {
    fn parse_action(&self) -> Option<Value> {
        let field = |name: &str| {
            self.text
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let tool = field("Action:")?;
        Some(
            json!({"tool": tool, "tool_input": field("Action Input:").unwrap_or_default(), "thought": field("Thought:").unwrap_or_default()}),
        )
    }

    async fn next(&mut self) -> Option<Vec<Bytes>> {
        if self.done {
            return None;
        }
        loop {
            match self.upstream.next().await {
                Some(Ok(chunk)) => {
                    if chunk.usage.is_some() {
                        self.usage = chunk.usage;
                    }
                    self.text.push_str(&chunk.text);
                    if self.answer_at.is_none()
                        && let Some(i) = self.text.find(FINAL)
                    {
                        let mut at = i + FINAL.len();
                        if self.text[at..].starts_with(' ') {
                            at += 1;
                        }
                        self.answer_at = Some(at);
                        self.sent = at;
                    }
                    if self.answer_at.is_some() && self.text.len() > self.sent {
                        let delta = self.text[self.sent..].to_string();
                        self.sent = self.text.len();
                        return Some(vec![line(
                            "final_answer_delta",
                            json!({"text": delta, "finish_reason": null}),
                        )]);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(vec![line(
                        "error",
                        json!({"message": e.to_string(), "retryable": matches!(e, hearth_providers::ProviderError::Timeout { .. })}),
                    )]);
                }
                None => {
                    self.done = true;
                    let mut out = Vec::new();
                    if self.answer_at.is_some() {
                        out.push(line(
                            "final_answer_delta",
                            json!({"text": "", "finish_reason": "stop"}),
                        ));
                    } else if let Some(action) = self.parse_action() {
                        out.push(line("action", action));
                    } else {
                        out.push(line("unknown", json!({"text": self.text.trim()})));
                    }
                    let u = self.usage.unwrap_or_default();
                    let mut usage = serde_json::Map::new();
                    usage.insert(self.model.clone(), json!({"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}));
                    out.push(line("usage", json!({"usage": usage})));
                    return Some(out);
                }
            }
        }
    }
}

/// The agent body and the conversation it asks the model for.
fn agent_request(body: &[u8]) -> Result<(AgentBody, Vec<ChatMessage>), GitlabError> {
    let b: AgentBody = serde_json::from_slice(body).map_err(|e| {
        GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: {e}"),
        )
    })?;
    let messages = conversation(&b)?;
    Ok((b, messages))
}

async fn agent_inner(
    state: AppState,
    cid: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GitlabError> {
    let started = Instant::now();
    authorize(&state, &headers, Some("duo_chat")).await?;
    let (b, messages) = agent_request(&body)?;
    let sel = select(
        &state,
        &b.model_metadata.clone().unwrap_or_default(),
        Feature::DuoChat,
        UseCase::Chat,
    )?;
    let model = sel.deployment.upstream_model().to_string();
    let req = ChatRequest {
        model: model.clone(),
        messages,
        max_tokens: Some(2048),
        temperature: Some(0.1),
        stop: vec![STOP.into()].into(),
        ..Default::default()
    };
    let permit = admit(&state, &sel.deployment.name).await?;
    let mut record = exchange(&state, &sel, Feature::DuoChat, &cid, started);
    let ctx = CallContext {
        request_id: cid,
        affinity: None,
    };
    let deadline = Instant::now() + sel.endpoint.timeouts.total;
    let called = Instant::now();
    let upstream = state
        .provider
        .chat_stream(&sel.endpoint, &req, true, &ctx)
        .await
        .map_err(|e| {
            let o = OaiError::upstream(&sel.deployment.name, &e);
            let mut g = GitlabError::detail(o.status, o.message);
            g.retry_after = o.retry_after;
            g
        });
    record.upstream_time = called.elapsed();
    let upstream = match upstream {
        Ok(up) => recorded(up, record),
        Err(g) => {
            failed(record, &g);
            return Err(g);
        }
    };
    let react = ReactStream {
        upstream,
        text: String::new(),
        answer_at: None,
        sent: 0,
        usage: None,
        model,
        done: false,
    };
    let stream =
        futures_util::stream::unfold(react, |mut r| async move { r.next().await.map(|b| (b, r)) })
            .flat_map(futures_util::stream::iter);
    let mut response = Response::new(pump::body(stream, deadline, Some(permit)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
    );
    Ok(response)
}

pub(crate) async fn agent(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    agent_inner(state, cid.0, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
struct ToolComponent {
    payload: Value,
}

#[derive(Deserialize)]
struct ToolBody {
    prompt_components: Vec<ToolComponent>,
    #[serde(default)]
    stream: bool,
}

async fn tool_inner(
    state: AppState,
    cid: String,
    tool: String,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GitlabError> {
    let started = Instant::now();
    const TOOLS: &[&str] = &[
        "explain_code",
        "write_tests",
        "refactor_code",
        "explain_vulnerability",
        "summarize_comments",
        "troubleshoot_job",
        "agent",
    ];
    if !TOOLS.contains(&tool.as_str()) {
        return Err(GitlabError::detail(
            StatusCode::NOT_FOUND,
            format!("Unknown chat tool '{tool}'"),
        ));
    }
    let scope = if tool == "agent" {
        "duo_chat"
    } else {
        tool.as_str()
    };
    authorize(&state, &headers, Some(scope)).await?;
    let b: ToolBody = serde_json::from_slice(&body).map_err(|e| {
        GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: {e}"),
        )
    })?;
    let [component] = b.prompt_components.as_slice() else {
        return Err(GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation error: prompt_components takes exactly one component",
        ));
    };
    let p = &component.payload;
    let messages: Vec<ChatMessage> = match &p["content"] {
        Value::String(s) => vec![ChatMessage {
            role: "user".into(),
            content: s.clone(),
            ..Default::default()
        }],
        Value::Array(items) => items
            .iter()
            .map(|m| ChatMessage {
                role: m["role"].as_str().unwrap_or("user").into(),
                content: m["content"].as_str().unwrap_or("").into(),
                ..Default::default()
            })
            .collect(),
        _ => {
            return Err(GitlabError::detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation error: payload.content must be text or messages",
            ));
        }
    };
    let fields = ModelFields {
        provider: p["provider"].as_str().map(str::to_owned),
        name: p["model"].as_str().map(str::to_owned),
        endpoint: p["model_endpoint"].as_str().map(str::to_owned),
        api_key: p["model_api_key"].as_str().map(str::to_owned),
        identifier: p["model_identifier"].as_str().map(str::to_owned),
    };
    let feature = Feature::parse(&tool).unwrap_or(Feature::DuoChat);
    let sel = select(&state, &fields, feature, UseCase::Chat)?;
    let params = &p["params"];
    let req = ChatRequest {
        model: sel.deployment.upstream_model().to_string(),
        messages,
        max_tokens: params["max_tokens_to_sample"]
            .as_u64()
            .map(|n| n.min(u64::from(u32::MAX)) as u32)
            .or(Some(2048)),
        temperature: params["temperature"].as_f64(),
        stop: params["stop_sequences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect(),
        ..Default::default()
    };
    let permit = admit(&state, &sel.deployment.name).await?;
    let mut record = exchange(&state, &sel, feature, &cid, started);
    let ctx = CallContext {
        request_id: cid,
        affinity: None,
    };
    let fail = |e: hearth_providers::ProviderError, record: Exchange| {
        let o = OaiError::upstream(&sel.deployment.name, &e);
        let g = GitlabError::detail(o.status, o.message);
        failed(record, &g);
        g
    };
    let called = Instant::now();
    if b.stream {
        let deadline = Instant::now() + sel.endpoint.timeouts.total;
        let up = state
            .provider
            .chat_stream(&sel.endpoint, &req, false, &ctx)
            .await;
        record.upstream_time = called.elapsed();
        let up = match up {
            Ok(up) => recorded(up, record),
            Err(e) => return Err(fail(e, record)),
        };
        let s = up.filter_map(|c| {
            std::future::ready(
                c.ok()
                    .filter(|c| !c.text.is_empty())
                    .map(|c| Bytes::from(c.text)),
            )
        });
        let mut r = Response::new(pump::body(s, deadline, Some(permit)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        return Ok(r);
    }
    let reply = state.provider.chat(&sel.endpoint, &req, &ctx).await;
    record.upstream_time = called.elapsed();
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return Err(fail(e, record)),
    };
    finish_whole(record, &reply.text, reply.usage);
    Ok(Json(json!({"response": reply.text, "metadata": {"provider": fields.provider.unwrap_or_else(|| "litellm".into()), "model": sel.name, "timestamp": now_secs()}})).into_response())
}

pub(crate) async fn tool(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    Path(tool): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    tool_inner(state, cid.0, tool, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_json::{edited, json_like};
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "messages",
        "role",
        "content",
        "user",
        "assistant",
        "system",
        "agent_scratchpad",
        "action",
        "thought",
        "tool",
        "tool_input",
        "observation",
        "current_file",
        "file_path",
        "selected_code",
        "data",
        "additional_context",
        "category",
        "options",
        "steps",
        "unavailable_resources",
        "model_metadata",
    ];

    /// A bad agent body is a 4xx with GitLab's `detail`, never a panic.
    fn check(body: &[u8]) -> Result<(), TestCaseError> {
        if let Err(e) = agent_request(body) {
            prop_assert!(e.status.is_client_error(), "{}", e.status);
            prop_assert!(!e.auth);
        }
        Ok(())
    }

    fn agent_body() -> Value {
        serde_json::json!({
            "messages": [
                {"role": "user", "content": "what does this do?",
                    "current_file": {"file_path": "a.rs", "selected_code": "fn main() {}"},
                    "additional_context": [{"category": "file", "content": "more"}]},
                {"role": "assistant", "agent_scratchpad": [{"action": {"thought": "t", "tool": "issue_reader",
                    "tool_input": "#1"}, "observation": "o"}]},
            ],
            "options": {"agent_scratchpad": {"steps": [{"thought": "t", "tool": "x", "tool_input": "y", "observation": "z"}]}},
            "unavailable_resources": ["Pipelines"],
            "model_metadata": {"provider": "litellm", "name": "mistral", "endpoint": "http://m:8000/v1"},
        })
    }

    #[test]
    fn the_template_is_valid() {
        assert!(agent_request(agent_body().to_string().as_bytes()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_are_refused_or_parsed(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(&body)?;
        }

        #[test]
        fn arbitrary_json_is_refused_or_parsed(body in json_like(NAMES)) {
            check(body.to_string().as_bytes())?;
        }

        #[test]
        fn edited_agent_bodies_are_refused_or_parsed(body in edited(agent_body(), NAMES)) {
            check(body.to_string().as_bytes())?;
        }
    }
}
