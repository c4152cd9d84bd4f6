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
#[serde(untagged, expecting = "a checkout path, or `{git: URL, ref: BRANCH-TAG-OR-COMMIT}`")]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged, expecting = "`{cargo: CRATE, path: DIR}` or `{go: MODULE, path: DIR}`")]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged, expecting = "`{dockerfile: PATH, args: {...}}` or `{command: \"... {tag} ...\"}`")]
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
#[serde(untagged, expecting = "an image name, or a list of them")]
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

/// A relative path in a scenario is relative to the scenario file's folder.
pub fn resolve(scenario_file: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    scenario_file.parent().unwrap_or(Path::new(".")).join(path)
}
