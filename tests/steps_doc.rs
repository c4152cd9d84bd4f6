//! `docs/steps.md`, the catalogue of every Gherkin step lab understands
//! (what `lab steps` prints), is generated from the step definitions in
//! `lab/src/suite/steps/` and the feature files: each step with its
//! parameters, the feature line that uses it as an example, and where it is
//! defined. This test fails when the catalogue is stale;
//! `LAB_UPDATE_DOCS=1 cargo test --test steps_doc` writes it anew. Beside it,
//! the ledger of upstream's Mayastor feature files (`features/mayastor/UPSTREAM.md`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// One step definition read from the source.
struct Step {
    keyword: String,
    pattern: String,
    parameters: Vec<(String, String)>,
    doc: String,
    function: String,
}

/// The `#[given|when|then(regex = r"…")]` definitions of one file, with the
/// doc comment above them and the names and types of the function's
/// arguments after the world.
fn steps_in(text: &str) -> Vec<Step> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, first) in lines.iter().enumerate() {
        let Some(keyword) =
            ["given", "when", "then"].into_iter().find(|k| first.trim().starts_with(&format!("#[{k}(")))
        else {
            continue;
        };
        // The attribute, joined when rustfmt split it over lines.
        let mut line = String::new();
        let mut end_of_attribute = i;
        for (j, part) in lines[i..].iter().enumerate() {
            line.push_str(part.trim());
            end_of_attribute = i + j;
            if part.trim_end().ends_with(")]") {
                break;
            }
        }
        let line = line.as_str();
        let start = line.find("r#\"").map(|p| (p + 3, "\"#")).or_else(|| line.find("r\"").map(|p| (p + 2, "\"")));
        let (at, end) = start.unwrap_or_else(|| panic!("line {}: a step without a raw-string regex", i + 1));
        let rest = &line[at..];
        let pattern = rest[..rest.rfind(end).unwrap()].to_string();
        let mut doc = Vec::new();
        for above in lines[..i].iter().rev() {
            match above.trim().strip_prefix("///") {
                Some(d) => doc.push(d.trim().to_string()),
                None if above.trim().starts_with("#[") => continue,
                None => break,
            }
        }
        doc.reverse();
        let mut signature = String::new();
        for below in &lines[end_of_attribute + 1..] {
            signature.push_str(below.trim());
            if below.contains('{') {
                break;
            }
        }
        let function = signature
            .split_once("fn ")
            .and_then(|(_, rest)| rest.split(['(', '<']).next())
            .unwrap_or_default()
            .trim()
            .to_string();
        let args = signature.split_once('(').and_then(|(_, a)| a.split_once(')')).map(|(a, _)| a).unwrap_or("");
        let parameters = args
            .split(',')
            .skip(1)
            .filter_map(|a| a.split_once(':'))
            .map(|(name, ty)| (name.trim().to_string(), ty.trim().to_string()))
            .filter(|(name, _)| !name.is_empty())
            .collect();
        out.push(Step { keyword: keyword.to_string(), pattern, parameters, doc: doc.join(" "), function });
    }
    out
}

/// The pattern as a reader writes the step: each capture group becomes
/// `<parameter>`, the anchors go.
fn readable(pattern: &str, parameters: &[(String, String)]) -> String {
    let body = pattern.trim_start_matches('^').trim_end_matches('$');
    let mut out = String::new();
    let mut depth = 0;
    let mut group = 0;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next().unwrap_or_default();
                if depth == 0 {
                    out.push(next);
                }
            }
            '(' => {
                let capturing = chars.peek() != Some(&'?');
                if depth == 0 && capturing {
                    let name = parameters.get(group).map(|(n, _)| n.as_str()).unwrap_or("value");
                    write!(out, "<{name}>").unwrap();
                    group += 1;
                    depth = 1;
                } else if depth > 0 {
                    depth += 1;
                } else {
                    out.push(c);
                }
            }
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Every step line of the feature files: (file relative to the repository, text without its keyword).
fn feature_lines(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                pending.push(p);
            } else if p.extension().is_some_and(|e| e == "feature") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let line = line.trim();
            for keyword in ["Given ", "When ", "Then ", "And ", "But ", "* "] {
                if let Some(text) = line.strip_prefix(keyword) {
                    out.push((name.clone(), text.to_string()));
                }
            }
        }
    }
    out
}

/// The catalogue, as markdown.
fn catalogue() -> String {
    let root = repo();
    let features = feature_lines(&root.join("features"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("lab/src/suite/steps"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "mod.rs"))
        .collect();
    files.sort();
    let mut out = String::from(
        "# The Gherkin steps lab understands\n\n\
         Generated from `lab/src/suite/steps/` and `features/` by `tests/steps_doc.rs`\n\
         (`LAB_UPDATE_DOCS=1 cargo test --test steps_doc`); `lab steps [WORD]` prints it.\n\
         A step matches only under the keyword it is defined with (And and But\n\
         continue the keyword before them). A step no feature uses yet has no example.\n",
    );
    let mut total = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let steps = steps_in(&text);
        let attributes =
            text.lines().filter(|l| ["#[given(", "#[when(", "#[then("].iter().any(|a| l.trim().starts_with(a))).count();
        assert_eq!(steps.len(), attributes, "{}: a step definition was not read", file.display());
        if steps.is_empty() {
            continue;
        }
        let domain = file.file_stem().unwrap().to_string_lossy().to_string();
        let module_doc: Vec<&str> =
            text.lines().take_while(|l| l.starts_with("//!")).map(|l| l.trim_start_matches("//!").trim()).collect();
        write!(out, "\n## {domain}\n\n").unwrap();
        if !module_doc.is_empty() {
            writeln!(out, "{}\n", module_doc.join(" ")).unwrap();
        }
        for step in steps {
            total += 1;
            let regex = regex::Regex::new(&step.pattern).unwrap_or_else(|e| panic!("{}: {e}", step.pattern));
            let keyword = format!("{}{}", step.keyword[..1].to_uppercase(), &step.keyword[1..]);
            writeln!(out, "- **{keyword}** `{}`", readable(&step.pattern, &step.parameters)).unwrap();
            if !step.doc.is_empty() {
                writeln!(out, "  {}", step.doc).unwrap();
            }
            if !step.parameters.is_empty() {
                let params: Vec<String> = step.parameters.iter().map(|(name, ty)| format!("`{name}` ({ty})")).collect();
                writeln!(out, "  - parameters: {}", params.join(", ")).unwrap();
            }
            match features.iter().find(|(_, text)| regex.is_match(text)) {
                Some((file, text)) => writeln!(out, "  - example: `{text}` ({file})").unwrap(),
                None => writeln!(out, "  - example: none yet").unwrap(),
            }
            let source = file.strip_prefix(&root).unwrap().display();
            writeln!(out, "  - defined in {source}, `fn {}`", step.function).unwrap();
        }
    }
    write!(out, "\n{total} steps.\n").unwrap();
    out
}

#[test]
fn the_step_catalogue_is_current() {
    let path = repo().join("docs/steps.md");
    let fresh = catalogue();
    if std::env::var_os("LAB_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == fresh,
        "{} is not the catalogue of today's steps: LAB_UPDATE_DOCS=1 cargo test --test steps_doc writes it",
        path.display()
    );
}

/// The upstream ledger (`features/mayastor/UPSTREAM.md`): the rows of one
/// `## ` section as (file, status word).
fn ledger_rows(text: &str, section: &str) -> Vec<(String, String)> {
    let start = text.find(section).unwrap_or_else(|| panic!("UPSTREAM.md has no section {section:?}"));
    let body = &text[start + section.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    body.lines()
        .filter(|l| l.starts_with("| ") && l.contains(".feature"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let status = cells[3].split([':', ' ']).next().unwrap_or_default();
            let status = if status == "not" { "not yet" } else { status };
            (cells[1].to_string(), status.to_string())
        })
        .collect()
}

/// The feature files in an upstream tarball under `prefix`, relative to it.
fn tarball_features(tarball: &Path, prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("tar").arg("-tJf").arg(tarball).output().unwrap();
    assert!(out.status.success(), "tar -tJf {}", tarball.display());
    let mut files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(".feature"))
        .filter_map(|l| l.strip_prefix(prefix).map(String::from))
        .collect();
    files.sort();
    files
}

/// Every row of the ledger has a status, and its count line says what its rows say.
#[test]
fn the_upstream_ledger_counts_what_its_rows_say() {
    let text = std::fs::read_to_string(repo().join("features/mayastor/UPSTREAM.md")).unwrap();
    let control = ledger_rows(&text, "## Control plane");
    let engine = ledger_rows(&text, "## io-engine");
    let count = |rows: &[(String, String)], status: &str| rows.iter().filter(|(_, s)| s == status).count();
    for (rows, name) in [(&control, "control plane"), (&engine, "io-engine")] {
        let unknown: Vec<_> =
            rows.iter().filter(|(_, s)| !["covered", "partly", "not yet"].contains(&s.as_str())).collect();
        assert!(unknown.is_empty(), "{name}: rows with no status word: {unknown:?}");
        let line = format!(
            "{name} {} covered, {} partly, {} not yet (of {})",
            count(rows, "covered"),
            count(rows, "partly"),
            count(rows, "not yet"),
            rows.len()
        );
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&line), "UPSTREAM.md's count line should say `{line}`");
    }
}

/// Every upstream feature file, from the tarballs themselves, is in the ledger once.
#[test]
#[ignore = "needs Mayastor's source tarballs (../shared/sources or LAB_MAYASTOR_TARBALLS): bash .ci/run runs it"]
fn the_upstream_ledger_names_exactly_the_tarballs_feature_files() {
    let text = std::fs::read_to_string(repo().join("features/mayastor/UPSTREAM.md")).unwrap();
    let sources = std::env::var_os("LAB_MAYASTOR_TARBALLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/sources"));
    let find = |start: &str| {
        std::fs::read_dir(&sources)
            .unwrap_or_else(|e| panic!("the upstream tarballs' folder {}: {e}", sources.display()))
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(start) && n.ends_with(".tar.xz"))
            })
            .unwrap_or_else(|| panic!("no {start}*.tar.xz in {}", sources.display()))
    };
    for (section, tarball, prefix) in [
        ("## Control plane", find("mayastor-control-plane-"), "tests/bdd/features/"),
        ("## io-engine", find("mayastor-8"), "test/python/"),
    ] {
        let mut listed: Vec<String> = ledger_rows(&text, section).into_iter().map(|(file, _)| file).collect();
        listed.sort();
        assert_eq!(
            listed,
            tarball_features(&tarball, prefix),
            "{section} of UPSTREAM.md against {}",
            tarball.display()
        );
    }
}
