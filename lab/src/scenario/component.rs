//! `components:` — images `lab` builds from source checkouts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One image-producing piece of the stack, built from a checkout.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Component {
    pub name: String,
    pub source: Source,
    /// Local checkouts of dependencies to build against instead of the published ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
    pub build: BuildRecipe,
    /// Further trees the build reads (a dependency's checkout, lab's build
    /// scripts): hashed into the tag, and given to a build command, read only,
    /// as `LAB_INPUT_<NAME>` (upper case, `-` as `_`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// The image name(s) the build produces, without a tag: `lab` tags them.
    pub image: Images,
    /// Names the build cache (cargo target dir, ccache); defaults to the
    /// checkout's branch, or the git ref. Caches are never shared between releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged, expecting = "expected a checkout path, or `{git: URL, ref: BRANCH-TAG-OR-COMMIT}`")]
pub enum Source {
    Path(String),
    Git(GitSource),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    pub git: String,
    #[serde(rename = "ref")]
    pub reference: String,
}

/// A dependency replaced by a local checkout (a Cargo `[patch]` entry, a
/// Go `replace`, or a folder of the checkout such as a submodule that path
/// dependencies point into), or a crate moved to another published version
/// in the copy's Cargo.lock (what a newer compiler can need of an old lock).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Override {
    Cargo(CargoOverride),
    CargoVersion(CargoVersionOverride),
    Go(GoOverride),
    Tree(TreeOverride),
}

/// `{tree: utils/dependencies, path: ../mayastor-dependencies}`: the copy's
/// folder replaced by the local checkout, for dependencies a workspace takes
/// by path (git submodules), which Cargo's `[patch]` cannot replace.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TreeOverride {
    pub tree: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CargoVersionOverride {
    pub cargo: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CargoOverride {
    pub cargo: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoOverride {
    pub go: String,
    pub path: String,
}

impl Override {
    /// The crate or module being replaced.
    pub fn target(&self) -> &str {
        match self {
            Override::Cargo(o) => &o.cargo,
            Override::CargoVersion(o) => &o.cargo,
            Override::Go(o) => &o.go,
            Override::Tree(o) => &o.tree,
        }
    }

    /// The local checkout put in, for the overrides that have one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Override::Cargo(o) => Some(&o.path),
            Override::CargoVersion(_) => None,
            Override::Go(o) => Some(&o.path),
            Override::Tree(o) => Some(&o.path),
        }
    }

    /// What the override does to the copy, as the tag's recipe records it:
    /// not the checkout's path (moving a checkout changes nothing built).
    pub fn recipe(&self) -> serde_json::Value {
        match self {
            Override::CargoVersion(o) => serde_json::json!(format!("cargo {} = {}", o.cargo, o.version)),
            Override::Tree(o) => serde_json::json!(format!("tree {}", o.tree)),
            // The shape tags were hashed with before version overrides: kept so caches stay valid.
            _ => serde_json::json!((self.target(), self.dir_in_context())),
        }
    }

    /// Where the override's copy sits inside the isolated build context.
    pub fn dir_in_context(&self) -> String {
        if let Override::Tree(o) = self {
            return o.tree.trim_end_matches('/').to_string();
        }
        let safe: String =
            self.target().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        format!(".lab-overrides/{safe}")
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BuildRecipe {
    Dockerfile(DockerfileBuild),
    Command(CommandBuild),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerfileBuild {
    /// Relative to the checkout, which is the build context.
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// A stage of a multi-stage Dockerfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBuild {
    /// Run with `sh -c` in the (isolated) checkout; `{tag}` and `{registry}`
    /// are replaced, and the command must leave `IMAGE:{tag}` in Docker.
    pub command: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged, expecting = "expected an image name, or a list of them")]
pub enum Images {
    One(String),
    Many(Vec<String>),
}

impl Images {
    pub fn names(&self) -> Vec<String> {
        match self {
            Images::One(name) => vec![name.clone()],
            Images::Many(names) => names.clone(),
        }
    }
}

/// Reads one variant from the map's value.
type ParseVariant<T> = fn(serde_json::Value) -> Result<T, serde_json::Error>;

/// Which variant a map is, chosen by the key that names it, so a typo is
/// reported as the unknown field it is rather than as "no variant matched".
fn by_key<'de, D, T>(deserializer: D, choices: &[(&str, ParseVariant<T>)], what: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    for (key, parse) in choices {
        if map.contains_key(*key) {
            return parse(serde_json::Value::Object(map)).map_err(D::Error::custom);
        }
    }
    let wanted: Vec<String> = choices.iter().map(|(k, _)| format!("`{k}`")).collect();
    Err(D::Error::custom(format!(
        "{what} needs one of {}; found {}",
        wanted.join(" or "),
        if keys.is_empty() { "nothing".into() } else { keys.join(", ") }
    )))
}

impl<'de> Deserialize<'de> for BuildRecipe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        by_key(
            deserializer,
            &[
                ("dockerfile", |v| serde_json::from_value(v).map(BuildRecipe::Dockerfile)),
                ("command", |v| serde_json::from_value(v).map(BuildRecipe::Command)),
            ],
            "a build (`dockerfile:` built through the Docker API, or `command:` run in the checkout)",
        )
    }
}

impl<'de> Deserialize<'de> for Override {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        by_key(
            deserializer,
            &[
                ("version", |v| serde_json::from_value(v).map(Override::CargoVersion)),
                ("cargo", |v| serde_json::from_value(v).map(Override::Cargo)),
                ("go", |v| serde_json::from_value(v).map(Override::Go)),
                ("tree", |v| serde_json::from_value(v).map(Override::Tree)),
            ],
            "an override (`cargo: CRATE`, `go: MODULE` or `tree: FOLDER` with `path: DIR`, or `cargo: CRATE` with `version: X.Y.Z`)",
        )
    }
}

/// A relative path in a scenario is relative to the scenario file's folder;
/// `~/` starts at the user's home; `${NAME}` is the environment variable's
/// value (the scenario check refuses one that is unset, see `unset_variables`).
pub fn resolve(scenario_file: &Path, path: &str) -> PathBuf {
    let expanded = expand_variables(path);
    let path = expanded.as_str();
    if let (Some(rest), Some(home)) = (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        return tidy(&Path::new(&home).join(rest));
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    tidy(&scenario_file.parent().unwrap_or(Path::new(".")).join(path))
}

/// `${NAME}` replaced by the variable's value; an unset one is left as written.
fn expand_variables(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match std::env::var(name) {
                    Ok(value) if !name.is_empty() => out.push_str(&value),
                    _ => out.push_str(&rest[start..start + 3 + end]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `${NAME}`s in a written path whose variable is unset (or not Unicode).
pub fn unset_variables(path: &str) -> Vec<String> {
    let mut unset = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if name.is_empty() || std::env::var(name).is_err() {
            unset.push(name.to_string());
        }
        rest = &after[end + 1..];
    }
    unset
}

/// `scenarios/../manifests` is `manifests`: `..` after a plain folder name is
/// dropped with it (lexically, as messages should show it).
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() { PathBuf::from(".") } else { out.iter().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_expand_variables_home_and_the_scenario_folder() {
        // SAFETY: this test alone uses these variables' names.
        unsafe {
            std::env::set_var("LAB_TEST_SOURCES", "/srv/src");
            std::env::remove_var("LAB_TEST_UNSET");
        }
        let scenario = Path::new("/work/scenarios/x.yaml");
        assert_eq!(resolve(scenario, "${LAB_TEST_SOURCES}/mayastor"), PathBuf::from("/srv/src/mayastor"));
        assert_eq!(resolve(scenario, "../src/a"), PathBuf::from("/work/src/a"));
        assert_eq!(unset_variables("${LAB_TEST_SOURCES}/a/${LAB_TEST_UNSET}/${}"), ["LAB_TEST_UNSET", ""]);
        assert_eq!(expand_variables("${LAB_TEST_UNSET}/a${"), "${LAB_TEST_UNSET}/a${");
    }
}
