//! The `parley` binary: the server and its admin commands. Everything lives in the `api` crate.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    api::cli::main().await
}
