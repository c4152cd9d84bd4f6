//! Kubernetes YAML as `lab` reads it: every document of every file in a
//! folder, each remembered with its file and line, so any later complaint
//! about an object can say where it was written.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One object from a manifest file.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub file: PathBuf,
    /// The line its document starts on (1-based).
    pub line: usize,
    pub value: Value,
}

impl Object {
    fn text(&self, key: &str) -> &str {
        self.value.get(key).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn api_version(&self) -> &str {
        self.text("apiVersion")
    }

    pub fn kind(&self) -> &str {
        self.text("kind")
    }

    pub fn name(&self) -> &str {
        self.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value.pointer("/metadata/namespace").and_then(Value::as_str)
    }

    /// `Deployment mayastor/mayastor-agent-core`, for messages and plans.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }

    /// `file:line`, where the object was written.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// A manifest problem, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Every problem found, so one run shows them all.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl std::error::Error for Problems {}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(Problem::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

/// The YAML files of a folder, sorted by name (their numbering is their order).
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, Problems> {
    let problem = |message: String| Problems(vec![Problem { file: dir.to_path_buf(), line: 0, message }]);
    let entries = std::fs::read_dir(dir).map_err(|e| problem(format!("cannot read the manifests folder: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(problem("no .yaml files in the manifests folder".into()));
    }
    Ok(files)
}

/// All objects of all YAML files in `dir`.
pub fn load_dir(dir: &Path) -> Result<Vec<Object>, Problems> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for file in files_in(dir)? {
        match std::fs::read_to_string(&file) {
            Ok(text) => match parse(&file, &text) {
                Ok(found) => objects.extend(found),
                Err(Problems(found)) => problems.extend(found),
            },
            Err(e) => problems.push(Problem { file: file.clone(), line: 0, message: format!("cannot read: {e}") }),
        }
    }
    if problems.is_empty() { Ok(objects) } else { Err(Problems(problems)) }
}

/// The documents of one file. Empty documents (comments only) are skipped;
/// each object must at least name its apiVersion, kind and name.
pub fn parse(file: &Path, text: &str) -> Result<Vec<Object>, Problems> {
    let mut objects = Vec::new();
    let mut problems = Vec::new();
    for (first_line, document) in documents(text) {
        let meaningful = document.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if !meaningful {
            continue;
        }
        let value: Value = match serde_saphyr::from_str(&document) {
            Ok(value) => value,
            Err(e) => {
                let (line, message) = locate_yaml_error(&e);
                problems.push(Problem { file: file.to_path_buf(), line: first_line + line.saturating_sub(1), message });
                continue;
            }
        };
        let object = Object { file: file.to_path_buf(), line: first_line, value };
        if !object.value.is_object() {
            problems.push(Problem {
                file: file.to_path_buf(),
                line: first_line,
                message: "a document must be a Kubernetes object (a mapping)".into(),
            });
            continue;
        }
        let missing: Vec<&str> =
            [("apiVersion", object.api_version()), ("kind", object.kind()), ("metadata.name", object.name())]
                .into_iter()
                .filter(|(_, v)| v.is_empty())
                .map(|(k, _)| k)
                .collect();
        if !missing.is_empty() {
            problems.push(Problem {
                file: file.to_path_buf(),
                line: first_line,
                message: format!("the object has no {}", missing.join(", ")),
            });
            continue;
        }
        objects.push(object);
    }
    if problems.is_empty() { Ok(objects) } else { Err(Problems(problems)) }
}

/// Split a multi-document stream at `---` lines, keeping each document's first line.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            out.push((start, std::mem::take(&mut current)));
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    out.push((start, current));
    out
}

/// serde-saphyr's line (relative to the document) and its message.
fn locate_yaml_error(e: &serde_saphyr::Error) -> (usize, String) {
    let line = e.location().map(|l| l.line() as usize).unwrap_or(1);
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let message = match message.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((_, m)) => m,
        None => message,
    };
    (line, format!("invalid YAML: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_file_and_first_line() {
        let text = "# a comment only\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n";
        let objects = parse(Path::new("x.yaml"), text).unwrap();
        let found: Vec<(usize, &str)> = objects.iter().map(|o| (o.line, o.name())).collect();
        assert_eq!(found, [(3, "a"), (8, "b")]);
        assert_eq!(objects[1].describe(), "Namespace b");
        assert_eq!(objects[1].location(), "x.yaml:8");
    }

    #[test]
    fn bad_documents_are_located_and_all_reported() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {}\n---\napiVersion: v1\nkind: [unclosed\n";
        let Problems(problems) = parse(Path::new("bad.yaml"), text).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!((problems[0].line, problems[0].message.as_str()), (1, "the object has no metadata.name"));
        assert_eq!(problems[1].line, 6, "{problems:?}");
        assert!(problems[1].message.starts_with("invalid YAML"), "{problems:?}");
    }
}
