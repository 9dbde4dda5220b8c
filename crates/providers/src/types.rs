//! The request and answer types every adapter speaks.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::error::ProviderError;

/// How long each phase of a call may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the first streamed token.
    pub first_token: Duration,
    /// The whole call.
    pub total: Duration,
}

/// Which dialect of the OpenAI API the server speaks.
#[derive(Clone, Debug)]
pub enum Flavor {
    /// vLLM, llama.cpp, Ollama, TGI: `{base}/completions`, `Authorization: Bearer`.
    OpenAi,
    /// Azure OpenAI: the deployment is in the URL (classic, with `api-version`) or in the
    /// body's `model` (the v1 API); the key goes in `api-key`, or an Entra token as Bearer.
    Azure {
        deployment: String,
        /// `None` for the v1 API (`/openai/v1/...`).
        api_version: Option<String>,
    },
    /// AWS Bedrock Runtime: its own API, SigV4 or a Bedrock API key.
    Bedrock(crate::bedrock::BedrockTarget),
}

/// Where and how to reach one deployment.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// vLLM-style: the base URL ending in `/v1`. Azure: `https://{resource}.openai.azure.com`.
    /// With `replicas`, the first replica's (for messages before any attempt).
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub timeouts: Timeouts,
    pub flavor: Flavor,
    /// The deployment's replicas, when it has more than one or health is tracked: each
    /// attempt then goes to the replica they pick.
    pub replicas: Option<std::sync::Arc<dyn crate::replicas::Replicas>>,
}

/// Per-call context passed upstream.
#[derive(Clone, Debug, Default)]
pub struct CallContext {
    /// Sent as `X-Request-ID`, so upstream logs line up with Hearth's.
    pub request_id: String,
    /// Requests with the same key prefer the same replica (see `Replicas::pick`).
    pub affinity: Option<u64>,
}

/// A raw-prompt request for a text-completions endpoint.
#[derive(Clone, Debug, Default)]
pub struct TextRequest {
    pub model: String,
    pub prompt: String,
    pub max_tokens: u32,
    /// f64 as JSON parses it, so the client's `0.32` goes upstream as `0.32`.
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Arc<[String]>,
    pub user: Option<String>,
    /// Client fields sent upstream as they came (`seed`, penalties, `logit_bias`, tools,
    /// `response_format`…); the front door has refused those the platform cannot honour.
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// The message's other fields as the client sent them: `tool_calls`, `tool_call_id`,
    /// `name`, `function_call`.
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Arc<[String]>,
    pub user: Option<String>,
    /// As [`TextRequest::extra`].
    pub extra: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A whole answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// The answer message's fields beyond role and content (`tool_calls`, `function_call`,
    /// `refusal`), as the platform sent them in OpenAI's shape.
    pub message: Map<String, Value>,
    /// The choice's `logprobs`, when asked for.
    pub logprobs: Option<Value>,
}

/// One piece of a streamed answer. `text` may be empty (a role-only or usage-only chunk).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// What few chunks carry, behind a pointer: every chunk is moved through each layer of the
    /// relay, and dropped, and an inline map and JSON value made it 128 bytes, not 80.
    pub extra: Option<Box<ChunkExtra>>,
}

/// A chunk's tool-call pieces and logprobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkExtra {
    /// The delta's fields beyond role and content (`tool_calls` pieces, `function_call`).
    pub delta: Map<String, Value>,
    pub logprobs: Option<Value>,
}

impl ChunkExtra {
    /// `None` when there is nothing to carry.
    pub fn of(delta: Map<String, Value>, logprobs: Option<Value>) -> Option<Box<ChunkExtra>> {
        (!delta.is_empty() || logprobs.is_some()).then(|| Box::new(ChunkExtra { delta, logprobs }))
    }
}

impl Chunk {
    /// Whether the chunk says the model has begun answering: text, a tool-call piece or a
    /// finish (a role-only or usage-only chunk does not).
    pub(crate) fn is_token(&self) -> bool {
        !self.text.is_empty()
            || self.finish_reason.is_some()
            || self.extra.as_ref().is_some_and(|e| !e.delta.is_empty())
    }
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, ProviderError>> + Send>>;
