//! Test stand-ins that speak real wire formats: a scriptable OpenAI-compatible model server,
//! a writer for tiny random-weight GGUF models, a launcher for llama.cpp's llama-server, and a
//! TCP relay that delays a server's requests.

// Test support: a panic here is a failed test, which is the point.
#![allow(clippy::unwrap_used)]

mod delay_proxy;
mod fake_bedrock;
mod fake_gitlab;
mod fake_openai;
mod fault_upstream;
mod gguf;
mod llama;
pub mod sigv4_check;
mod tls;

pub use delay_proxy::DelayProxy;
pub use fake_bedrock::{ACCESS_KEY, API_KEY, BedrockReply, FakeBedrock, REGION, SECRET_KEY};
pub use fake_gitlab::{FakeGitlab, GITLAB_KEY, INSTANCE_ID, OTHER_KEY, mint};
pub use fake_openai::{FakeUpstream, Recorded, Reply};
pub use fault_upstream::{Fault, FaultUpstream};
pub use gguf::write_tiny_llama;
pub use llama::{LlamaServer, metric};
pub use tls::SELF_SIGNED_CERT;
