use std::process::ExitCode;

use crate::Lab;
use crate::state::{StateDir, index};

/// Whether a listed lab is up: its provider finds its nodes or processes.
async fn up(entry: &index::Entry) -> String {
    if !entry.state.is_dir() {
        return "gone (state folder removed by hand)".into();
    }
    let lab = match crate::scenario::Scenario::load(&entry.scenario) {
        Ok(scenario) => Lab::with_state(scenario, StateDir::at(&entry.state)),
        Err(e) => {
            let why = format!("{e:#}");
            return format!("unknown ({})", why.lines().next().unwrap_or_default());
        }
    };
    match lab.provider.exists().await {
        Ok(true) => "up".into(),
        Ok(false) => "down".into(),
        Err(e) => format!("unknown ({e})"),
    }
}

fn since(unix: u64) -> String {
    let ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| now.as_secs().saturating_sub(unix))
        .unwrap_or(0);
    match ago {
        0..60 => format!("{ago}s ago"),
        60..3600 => format!("{}m ago", ago / 60),
        3600..86400 => format!("{}h{:02}m ago", ago / 3600, ago % 3600 / 60),
        _ => format!("{}d ago", ago / 86400),
    }
}

pub async fn run(json: bool) -> anyhow::Result<ExitCode> {
    let entries = index::entries()?;
    let mut rows = Vec::new();
    for entry in &entries {
        match entry {
            Ok(entry) => rows.push((entry.clone(), up(entry).await)),
            Err(problem) => eprintln!("unreadable entry in lab's index: {problem}"),
        }
    }
    if json {
        let value: Vec<_> = rows
            .iter()
            .map(|(e, up)| {
                serde_json::json!({"name": e.name, "provider": e.provider, "state": e.state,
                "scenario": e.scenario, "instance": e.instance, "since": e.since, "up": up})
            })
            .collect();
        println!("{}", serde_json::Value::Array(value));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no labs on this machine (index: {})", index::dir().display());
        return Ok(ExitCode::SUCCESS);
    }
    let name = rows.iter().map(|(e, _)| e.name.len()).max().unwrap_or(4).max(4);
    let state = rows.iter().map(|(e, _)| e.state.display().to_string().len()).max().unwrap_or(5).max(12);
    println!("{:name$}  {:8}  {:10}  {:state$}  UP", "NAME", "PROVIDER", "SINCE", "STATE FOLDER");
    for (entry, up) in rows {
        let folder = entry.state.display().to_string();
        println!("{:name$}  {:8}  {:10}  {folder:state$}  {up}", entry.name, entry.provider, since(entry.since));
    }
    Ok(ExitCode::SUCCESS)
}
