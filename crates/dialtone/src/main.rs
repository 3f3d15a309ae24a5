//! The `dialtone` binary: `serve` and the operator commands.
//!
//! Kept thin: it parses flags (each also read from a `DIALTONE_…` variable), opens
//! the store, and calls into `dialtone-api` and `dialtone-store`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
