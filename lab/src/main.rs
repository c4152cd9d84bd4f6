use std::process::ExitCode;

use clap::Parser;
use lab::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // kube's client logs every refused request as an error; lab reports
    // the ones that matter itself, so they show with -v only.
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error,kube_client=off",
        (false, 0) => "warn,kube_client=off",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).without_time().init();

    match lab::commands::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // Reported once, here, with the chain of what was being attempted.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
