//! Local-source dependency overrides, applied to an isolated copy of a
//! checkout: a Cargo `[patch]` entry, a Go `replace` (what `go mod edit
//! -replace` writes), a folder (a submodule) replaced, a lock moved. The
//! overrides' sources are copied into the copy, so they are inside the
//! Docker build context.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::scenario::Override;

/// The `[patch.<source>]` table a crate is patched under: the source Cargo.lock
/// records for it (a git URL, or crates.io).
pub fn cargo_patch_source(lock: Option<&str>, krate: &str) -> anyhow::Result<String> {
    let Some(lock) = lock else { return Ok("crates-io".into()) };
    let doc: toml_edit::DocumentMut = lock.parse().context("Cargo.lock is not valid TOML")?;
    let packages = doc.get("package").and_then(|p| p.as_array_of_tables());
    let mut sources = Vec::new();
    for package in packages.into_iter().flatten() {
        if package.get("name").and_then(|n| n.as_str()) != Some(krate) {
            continue;
        }
        match package.get("source").and_then(|s| s.as_str()) {
            None => bail!("`{krate}` is already a path dependency of the checkout; there is nothing to override"),
            Some(source) => sources.push(source.to_string()),
        }
    }
    let Some(source) = sources.first() else { return Ok("crates-io".into()) };
    if let Some(git) = source.strip_prefix("git+") {
        // `git+https://github.com/x/y?branch=main#commit` is patched as `[patch."https://github.com/x/y"]`.
        let end = git.find(['?', '#']).unwrap_or(git.len());
        return Ok(git[..end].to_string());
    }
    if source.contains("crates.io-index") {
        return Ok("crates-io".into());
    }
    // Another registry: Cargo patches it by URL.
    Ok(source.split_once('+').map(|(_, url)| url).unwrap_or(source).to_string())
}

/// Add `[patch.<source>] <crate> = { path = "<dir>" }` to a manifest, keeping the rest as written.
pub fn add_cargo_patch(manifest: &str, source: &str, krate: &str, dir: &str) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = manifest.parse().context("Cargo.toml is not valid TOML")?;
    let patch = doc.entry("patch").or_insert_with(|| {
        let mut table = toml_edit::Table::new();
        table.set_implicit(true);
        toml_edit::Item::Table(table)
    });
    let Some(patch) = patch.as_table_mut() else { bail!("`patch` in Cargo.toml is not a table") };
    let by_source = patch.entry(source).or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    let Some(by_source) = by_source.as_table_like_mut() else { bail!("`patch.{source}` in Cargo.toml is not a table") };
    let mut entry = toml_edit::InlineTable::new();
    entry.insert("path", dir.into());
    by_source.insert(krate, toml_edit::Item::Value(toml_edit::Value::InlineTable(entry)));
    Ok(doc.to_string())
}

/// Replace `module` by `dir` in a go.mod, dropping any earlier replacement of it.
pub fn add_go_replace(go_mod: &str, module: &str, dir: &str) -> String {
    let replaces = |spec: &str| {
        let first = spec.split_whitespace().next().unwrap_or_default();
        first == module
    };
    let mut out = Vec::new();
    let mut in_block = false;
    for line in go_mod.lines() {
        let trimmed = line.trim();
        if in_block {
            if trimmed == ")" {
                in_block = false;
            } else if replaces(trimmed) {
                continue;
            }
        } else if trimmed.starts_with("replace") && trimmed.ends_with('(') {
            in_block = true;
        } else if let Some(spec) = trimmed.strip_prefix("replace ")
            && replaces(spec)
        {
            continue;
        }
        out.push(line.to_string());
    }
    let mut text = out.join("\n");
    text.push_str(&format!("\n\nreplace {module} => {dir}\n"));
    text
}

/// Copy each local override into `copy/.lab-overrides/…` and point the
/// copy's manifest at it; then move the locked versions asked for.
pub fn apply(copy: &Path, overrides: &[(Override, Option<std::path::PathBuf>)]) -> anyhow::Result<()> {
    for (o, source_dir) in overrides {
        let inside = o.dir_in_context();
        if let Some(source_dir) = source_dir {
            let target = copy.join(&inside);
            // A tree override replaces the folder whole: nothing of the checkout's version stays.
            if matches!(o, Override::Tree(_)) && target.exists() {
                std::fs::remove_dir_all(&target).with_context(|| format!("cannot empty {}", target.display()))?;
            }
            super::tree::copy(source_dir, &target, super::tree::Git::Skip)?;
        }
        match o {
            Override::CargoVersion(_) | Override::Tree(_) => {}
            Override::Cargo(c) => {
                let manifest_path = copy.join("Cargo.toml");
                let manifest = read(&manifest_path)?;
                let lock = std::fs::read_to_string(copy.join("Cargo.lock")).ok();
                let source = cargo_patch_source(lock.as_deref(), &c.cargo)
                    .with_context(|| format!("overriding crate `{}`", c.cargo))?;
                let patched = add_cargo_patch(&manifest, &source, &c.cargo, &inside)
                    .with_context(|| format!("patching {}", manifest_path.display()))?;
                write(&manifest_path, &patched)?;
            }
            Override::Go(g) => {
                let go_mod_path = copy.join("go.mod");
                let go_mod = read(&go_mod_path)?;
                write(&go_mod_path, &add_go_replace(&go_mod, &g.go, &format!("./{inside}")))?;
            }
        }
    }
    for (o, _) in overrides {
        if let Override::CargoVersion(v) = o {
            lock_version(copy, &v.cargo, &v.version)?;
        }
    }
    Ok(())
}

/// `cargo update -p CRATE --precise VERSION` in the copy: only its
/// Cargo.lock changes (the registry's index is read for the version).
fn lock_version(copy: &Path, krate: &str, version: &str) -> anyhow::Result<()> {
    let output = std::process::Command::new("cargo")
        .args(["update", "--quiet", "-p", krate, "--precise", version])
        .current_dir(copy)
        .output()
        .with_context(|| format!("cannot run cargo update in {}", copy.display()))?;
    if !output.status.success() {
        bail!(
            "`cargo update -p {krate} --precise {version}` in {} failed: {}",
            copy.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_source_comes_from_the_lock_file() {
        let lock = r#"
version = 3

[[package]]
name = "spdk-rs"
version = "0.2.0"
source = "git+https://github.com/openebs/spdk-rs?branch=release/2.8#0123abcd"

[[package]]
name = "serde"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "io-engine"
version = "1.0.0"
"#;
        assert_eq!(cargo_patch_source(Some(lock), "spdk-rs").unwrap(), "https://github.com/openebs/spdk-rs");
        assert_eq!(cargo_patch_source(Some(lock), "serde").unwrap(), "crates-io");
        assert_eq!(cargo_patch_source(Some(lock), "not-locked").unwrap(), "crates-io");
        assert_eq!(cargo_patch_source(None, "anything").unwrap(), "crates-io");
        let err = cargo_patch_source(Some(lock), "io-engine").unwrap_err().to_string();
        assert!(err.contains("already a path dependency"), "{err}");
    }

    #[test]
    fn a_cargo_patch_joins_an_existing_patch_table() {
        let manifest = "[package]\nname = \"app\"\n\n[patch.crates-io]\nlog = { path = \"../log\" }\n";
        let patched = add_cargo_patch(manifest, "crates-io", "serde", ".lab-overrides/serde").unwrap();
        assert_eq!(
            patched,
            "[package]\nname = \"app\"\n\n[patch.crates-io]\nlog = { path = \"../log\" }\nserde = { path = \".lab-overrides/serde\" }\n"
        );
        let fresh = add_cargo_patch("[package]\nname = \"app\"\n", "https://github.com/x/y", "y", "d").unwrap();
        assert!(fresh.ends_with("[patch.\"https://github.com/x/y\"]\ny = { path = \"d\" }\n"), "{fresh}");
    }

    #[test]
    fn a_go_replace_supersedes_earlier_ones() {
        let go_mod = "module example.com/app\n\ngo 1.22\n\nrequire example.com/lib v1.0.0\n\nreplace example.com/lib => ../old\n\nreplace (\n\texample.com/lib v1.0.0 => ../older\n\texample.com/other => ../other\n)\n";
        let replaced = add_go_replace(go_mod, "example.com/lib", "./.lab-overrides/example_com_lib");
        assert!(!replaced.contains("../old"), "{replaced}");
        assert!(replaced.contains("\texample.com/other => ../other"), "{replaced}");
        assert!(replaced.ends_with("replace example.com/lib => ./.lab-overrides/example_com_lib\n"), "{replaced}");
    }
}
