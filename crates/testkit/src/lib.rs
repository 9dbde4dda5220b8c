//! Test stand-ins that speak real wire formats: a scriptable OpenAI-compatible model server,
//! a writer for tiny random-weight GGUF models, and a launcher for llama.cpp's llama-server.

// Test support: a panic here is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

mod fake_openai;
mod gguf;
mod llama;

pub use fake_openai::{FakeUpstream, Recorded, Reply};
pub use gguf::write_tiny_llama;
pub use llama::LlamaServer;
