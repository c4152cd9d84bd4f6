//! One module per subcommand; each turns arguments into library calls.

pub mod bisect;
pub mod build;
pub mod doctor;
pub mod down;
pub mod fio;
pub mod list;
pub mod plan;
pub mod prepare;
pub mod replay;
pub mod run;
pub mod share;
pub mod shell;
pub mod status;
pub mod steps;
pub mod up;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let progress = crate::progress::Progress::new(cli.quiet);
    match cli.command {
        Command::Up(args) => up::run(args, &progress).await,
        Command::Prepare(args) => prepare::run(args, &progress).await,
        Command::Build(args) => build::build(args, &progress).await,
        Command::Load(args) => build::load(args, &progress).await,
        Command::Images(args) => build::images(args).await,
        Command::Test(args) => {
            let lab = crate::Lab::open(args.scenario.scenario.clone())?;
            let _held = lab.hold("test")?;
            let options = args.options();
            let started = std::time::Instant::now();
            let passed = tokio::select! {
                passed = crate::suite::run(&lab.scenario, &lab.state, &options) => passed?,
                why = interrupted() => return Err(stopped(&lab, why, "lab test")),
            };
            progress.count(Some(crate::plan::Phase::Features), started.elapsed());
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Run(args) => run::run(args, &progress).await,
        Command::Fio(args) => tokio::select! {
            done = fio::run(args) => done,
            why = interrupted() => anyhow::bail!("lab fio {why}: the runs finished so far are recorded; the one under way is not"),
        },
        Command::Deploy(args) => {
            let lab = crate::Lab::open(args.change.scenario.scenario)?.adopting(args.adopt);
            lab.check_pool_devices().await?;
            let plan = if args.server_dry_run { lab.server_dry_run_plan()? } else { lab.deploy_plan()? };
            let done = run_or_show(&lab, &plan, args.change.dry_run, &progress, "deploy").await;
            account(&progress, "deploy", None);
            done
        }
        Command::Down(args) => down::run(args, &progress).await,
        Command::Status(args) => status::run(args).await,
        Command::List(args) => list::run(args.json).await,
        Command::Bisect(args) => bisect::run(args, &progress).await,
        Command::Bundle(args) => share::bundle(args).await,
        Command::Replay(args) => replay::run(args, &progress).await,
        Command::Export(crate::cli::ExportCommand::Logs(args)) => share::export_logs(args).await,
        Command::Completions(args) => {
            use clap::CommandFactory as _;
            clap_complete::generate(args.shell, &mut crate::cli::Cli::command(), "lab", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Steps(args) => {
            print!("{}", steps::render(args.word.as_deref()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => plan::run(args),
        Command::Doctor(args) => doctor::run(args).await,
        Command::Shell(args) => shell::run(args).await,
    }
}

/// Where a run's time went, by phase, once it spent time in more than one:
/// said on stderr, and with `keep_in`, a JSON line appended to
/// `keep_in/timings.jsonl` (0600).
pub fn account(progress: &crate::progress::Progress, command: &str, keep_in: Option<&std::path::Path>) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let Some(line) = progress.account_line() else { return };
    progress.line(&line);
    let Some(dir) = keep_in else { return };
    let seconds: serde_json::Map<String, serde_json::Value> = progress
        .account()
        .into_iter()
        .map(|(phase, s)| (phase.to_string(), serde_json::json!((s * 10.0).round() / 10.0)))
        .collect();
    let record = serde_json::json!({
        "command": command,
        "at": crate::artifacts::utc_stamp(std::time::SystemTime::now()),
        "seconds": seconds,
    });
    let file = dir.join("timings.jsonl");
    let written = crate::state::make_private_dir(dir).and_then(|()| {
        let mut out = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&file)?;
        writeln!(out, "{record}")?;
        Ok(())
    });
    if let Err(e) = written {
        progress.line(&format!("cannot keep the timings in {}: {e:#}", file.display()));
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM.
/// Racing a command against it drops the command's future: its child
/// processes are killed, and what it made for itself (test loop devices,
/// node-shell pods) is removed as its values drop; its records stay.
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "was interrupted (SIGINT)",
        () = terminated => "was terminated (SIGTERM)",
    }
}

/// The error of a command stopped by a signal: what stays and how to finish.
fn stopped(lab: &crate::Lab, why: &str, command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{command} {why}; its log is {}; `lab down` removes the lab from the records in {}",
        lab.state.log().display(),
        lab.state.dir().display()
    )
}

/// With `--dry-run`, print the plan and say so: the command then changes nothing.
fn shown(lab: &crate::Lab, plan: &crate::plan::Plan, dry_run: bool) -> bool {
    if dry_run {
        print!("{}", plan.render(lab.provider.as_ref(), false));
    }
    dry_run
}

/// Print the plan (`--dry-run`) or execute it, holding the lab (`command` names the holder).
async fn run_or_show(
    lab: &crate::Lab,
    plan: &crate::plan::Plan,
    dry_run: bool,
    progress: &crate::progress::Progress,
    command: &str,
) -> anyhow::Result<ExitCode> {
    if shown(lab, plan, dry_run) {
        return Ok(ExitCode::SUCCESS);
    }
    let _held = lab.hold(command)?;
    tokio::select! {
        done = crate::plan::execute(plan, lab.provider.as_ref(), progress, &lab.state) => done?,
        why = interrupted() => return Err(stopped(lab, why, &format!("lab {command}"))),
    }
    Ok(ExitCode::SUCCESS)
}

/// After a failed `lab up` or `lab prepare`: the lab's log and plan copied
/// into the artifacts folder (`--artifacts DIR`, else beside the scenario),
/// with what `lab export logs` gathers when the cluster got that far (node
/// logs, pods, events, what is not Ready), and bundled, so they survive the
/// cleanup; both paths are printed.
async fn keep_failure_log(lab: &crate::Lab, artifacts: Option<&std::path::Path>, command: &str) {
    let dir =
        artifacts.map(std::path::Path::to_path_buf).unwrap_or_else(|| crate::artifacts::default_dir(&lab.scenario));
    if lab.provider.exists().await.unwrap_or(false) {
        match crate::export::logs(lab, &dir.join("logs")).await {
            Ok(exported) => eprintln!(
                "gathered {} file(s) of the cluster's logs into {}",
                exported.files,
                dir.join("logs").display()
            ),
            Err(e) => eprintln!("gathering the cluster's logs into {} failed: {e:#}", dir.join("logs").display()),
        }
    }
    let kept = crate::artifacts::keep(&dir, &[lab.state.log(), lab.state.file("plan.txt")])
        .and_then(|()| crate::artifacts::bundle(&dir));
    match kept {
        Ok(tarball) => eprintln!("the log of the failed lab {command}: {} (and {})", dir.display(), tarball.display()),
        Err(e) => eprintln!("keeping the log of the failed lab {command} in {} failed: {e:#}", dir.display()),
    }
}
