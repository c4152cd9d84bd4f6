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

/// A dependency replaced by a local checkout: a Cargo `[patch]` entry or a Go `replace`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Override {
    Cargo(CargoOverride),
    Go(GoOverride),
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
            Override::Go(o) => &o.go,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Override::Cargo(o) => &o.path,
            Override::Go(o) => &o.path,
        }
    }

    /// Where the override's copy sits inside the isolated build context.
    pub fn dir_in_context(&self) -> String {
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
                ("cargo", |v| serde_json::from_value(v).map(Override::Cargo)),
                ("go", |v| serde_json::from_value(v).map(Override::Go)),
            ],
            "an override (`cargo: CRATE` or `go: MODULE`, with `path: DIR`)",
        )
    }
}

/// A relative path in a scenario is relative to the scenario file's folder;
/// `~/` starts at the user's home.
pub fn resolve(scenario_file: &Path, path: &str) -> PathBuf {
    if let (Some(rest), Some(home)) = (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        return tidy(&Path::new(&home).join(rest));
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    tidy(&scenario_file.parent().unwrap_or(Path::new(".")).join(path))
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
