//! End-to-end tests. Each starts the real `hearth` binary on 127.0.0.1:0 with its own data
//! directory and speaks HTTP to it (or runs the CLI against it).
//!
//! Where new tests go: admin API rules in `deployments`, `features`, `settings`; malformed
//! input, auth and concurrency in `robustness`; the OpenAI front door against a scripted
//! upstream in `inference`, against a real llama-server in `llama`, against several
//! llama-server replicas behind one deployment (prefix cache, a killed replica, a slow one) in
//! `routing_llama`, against an Azure OpenAI
//! stand-in in `azure`, against a Bedrock stand-in that checks SigV4 in `bedrock`; GitLab's
//! AI-gateway routes and their JWT auth in `gitlab`, GitLab key fetching under load and
//! outages in `jwks`; restarts and encryption in `persistence`; two replicas on one PostgreSQL
//! in `replicas`; health, correlation ids, logs and shutdown in `server`; the web console (HTTP
//! security checks and headless-Chromium tests) in `console`; log level names in `log_levels`;
//! timeouts, caps, shedding and draining at the front door in `limits`; the command line in
//! `cli`; what each OpenAI field becomes per platform in `compat`; the official OpenAI Python SDK
//! and the ollama library against Hearth in `sdk`; `hearth verify` in `verify`.

// Helpers outside `#[test]` functions unwrap too: in a test a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod anthropic;
mod azure;
mod bedrock;
mod cli;
mod compat;
mod console;
mod deployments;
mod faults;
mod features;
mod gitlab;
mod harness;
mod inference;
mod jwks;
mod limits;
mod llama;
mod log_levels;
mod ops;
mod persistence;
mod replicas;
mod robustness;
mod routing;
mod routing_llama;
mod sdk;
mod server;
mod settings;
mod tls;
mod verify;
