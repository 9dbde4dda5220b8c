//! Serving-platform adapters: the OpenAI-compatible platform (vLLM, llama.cpp's llama-server,
//! Ollama, TGI), Azure OpenAI (the same API in its own dialect) and AWS Bedrock. [`Providers`]
//! dispatches on the endpoint's [`Flavor`]. Each adapter turns Hearth's request types into the platform's
//! wire format and its answers — whole or streamed — back into [`Reply`] and [`Chunk`], with
//! every failure as one [`ProviderError`].

mod bedrock;
mod error;
mod limits;
mod openai_compat;
mod redact;
mod replicas;
mod sse;
mod types;
mod upstream;

pub use bedrock::{
    AwsDefaults, BedrockAuth, BedrockTarget, FrameReader, bedrock_auth_from_key,
    bedrock_runtime_url, encode_label, sigv4_headers,
};
pub use error::{ConnectCause, ProviderError, TimeoutPhase};
pub use limits::UpstreamLimits;
pub use openai_compat::Providers;
pub use replicas::{MAX_ATTEMPTS, Outcome, Pick, Replicas, outcome_of, retryable};
pub use sse::{SseDecoder, SseEvent, SseRef};
pub use types::{
    CallContext, ChatMessage, ChatRequest, Chunk, ChunkExtra, ChunkStream, Endpoint, Flavor, Reply,
    TextRequest, Timeouts, Usage,
};
