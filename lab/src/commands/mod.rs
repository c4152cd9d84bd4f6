//! One module per subcommand; each turns arguments into library calls.

pub mod doctor;
pub mod down;
pub mod plan;
pub mod prepare;
pub mod shell;
pub mod status;
pub mod up;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = crate::progress::Progress::new(cli.quiet);
    match cli.command {
        Command::Up(args) => up::run(args, &progress).await,
        Command::Prepare(args) => prepare::run(args, &progress).await,
        Command::Down(args) => down::run(args, &progress).await,
        Command::Status(args) => status::run(args).await,
        Command::Plan(args) => plan::run(args),
        Command::Doctor(args) => doctor::run(args).await,
        Command::Shell(args) => shell::run(args).await,
    }
}
