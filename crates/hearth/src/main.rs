//! The `hearth` binary: the CLI and `hearth serve`. Thin glue over the library crates.

mod cli;
mod cli_models;
mod cli_verify;
mod client;
mod commands;
mod config;
mod database;
mod listen;
mod logging;
mod ops;
mod output;
mod serve;
mod serve_tls;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// jemalloc, with its background thread: it spends fewer instructions per request than glibc's
/// malloc, and the thread hands memory back to the system some 10 s after a burst of streams
/// ends, where glibc kept the peak (docs/benchmarks.md, "Allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Outbound TLS (the CLI towards an https Hearth) uses rustls with the ring provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Catalog(args) => commands::catalog::run(args).map(|()| ExitCode::SUCCESS),
            Command::Plan(args) => commands::plan::run(args),
            Command::Models(cmd) => commands::models::run(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Features(cmd) => commands::features::run(cmd)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Settings(cmd) => commands::settings::run(cmd)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Keys(cmd) => commands::keys::run(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Verify(args) => commands::verify::run(args).await,
            Command::Completions(args) => ops::completions(&args).map(|()| ExitCode::SUCCESS),
            Command::Health(args) => ops::health(args).await,
            Command::Db(cmd) => commands::db::run(cmd).await.map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        // `hearth catalog | head`: the reader has what it wanted.
        Err(e) if e.downcast_ref::<output::StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
