//! Serving-platform adapters. Today: the OpenAI-compatible platform (vLLM, llama.cpp's
//! llama-server, Ollama, TGI) and Azure OpenAI, which speaks the same API in its own dialect. Each adapter turns Hearth's request types into the platform's
//! wire format and its answers — whole or streamed — back into [`Reply`] and [`Chunk`], with
//! every failure as one [`ProviderError`].

mod error;
mod openai_compat;
mod sse;
mod types;

pub use error::{ProviderError, TimeoutPhase};
pub use openai_compat::OpenAiCompatible;
pub use sse::{SseDecoder, SseEvent};
pub use types::{
    CallContext, ChatMessage, ChatRequest, Chunk, ChunkStream, Endpoint, Flavor, Reply,
    TextRequest, Timeouts, Usage,
};
