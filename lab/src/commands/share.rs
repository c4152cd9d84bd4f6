//! What a bug report takes: `lab bundle` (the tarball's path on stdout)
//! and `lab export logs` (the folder's path on stdout).

use std::process::ExitCode;

use crate::cli::{BundleArgs, ExportLogsArgs};

pub async fn bundle(args: BundleArgs) -> anyhow::Result<ExitCode> {
    let lab = crate::Lab::open(args.scenario.scenario)?;
    let selection = crate::bundle::Selection { tags: args.tags, name: args.name };
    let tarball = crate::bundle::make(&lab, args.diff, args.out, None, &selection).await?;
    println!("{}", tarball.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn export_logs(args: ExportLogsArgs) -> anyhow::Result<ExitCode> {
    let lab = crate::Lab::open(args.scenario)?;
    let dir = args.dir.unwrap_or_else(|| {
        let stamped = crate::artifacts::default_dir(&lab.scenario);
        stamped.with_file_name(format!("{}-logs", stamped.file_name().unwrap_or_default().to_string_lossy()))
    });
    let exported = crate::export::logs(&lab, &dir).await?;
    for problem in &exported.problems {
        eprintln!("not exported: {problem}");
    }
    eprintln!("exported {} file(s) of lab {}", exported.files, lab.scenario.name());
    println!("{}", dir.display());
    Ok(ExitCode::SUCCESS)
}
