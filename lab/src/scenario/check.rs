//! Checks a parsed scenario for combinations that cannot work. Each finding is
//! a field path and a message that says what to do; the caller locates it.

use std::path::Path;

use super::{
    API_VERSION, BuildRecipe, IO_ENGINE_LABEL, KIND, NodeGroup, Override, ProviderKind, Role, Scenario, Source,
    component,
};

/// Pages io-engine insists on (it exits at start with fewer free).
pub const IO_ENGINE_MIN_HUGEPAGES: u64 = 1024;
/// io-engine's default core list `1,2` needs cores 0..=2.
pub const IO_ENGINE_MIN_CPUS: u32 = 3;
/// Leaves room for `lab-<name>-control-plane2` within a 63-character hostname.
const MAX_NAME_LEN: usize = 40;

type Finding = (String, String);

pub fn check(s: &Scenario) -> Vec<Finding> {
    let mut out = Vec::new();
    if s.api_version != API_VERSION {
        out.push((
            "apiVersion".into(),
            format!("unsupported apiVersion `{}`: this lab reads `{API_VERSION}`", s.api_version),
        ));
    }
    if s.kind != KIND {
        out.push(("kind".into(), format!("kind must be `{KIND}`, not `{}`", s.kind)));
    }
    check_name(&s.metadata.name, &mut out);
    check_provider_sections(s, &mut out);
    // Counts first: every later check walks the nodes, and a huge count must not hang them.
    if !check_count_bounds(s, &mut out) {
        return out;
    }
    check_node_counts(s, &mut out);
    for (i, group) in s.cluster.nodes.iter().enumerate() {
        check_group(s, i, group, &mut out);
    }
    if s.cluster.provider == ProviderKind::Kind {
        check_one_kernel(s, &mut out);
    }
    check_components(s, &mut out);
    check_images(s, &mut out);
    check_stack(s, &mut out);
    check_tests(s, &mut out);
    out
}

fn check_tests(s: &Scenario, out: &mut Vec<Finding>) {
    if matches!(&s.features, Some(super::Features::Many(paths)) if paths.is_empty()) {
        out.push(("features".into(), "the list is empty: name a feature file or folder".into()));
    }
    for path in s.feature_paths().iter().filter(|p| !p.exists()) {
        out.push((
            "features".into(),
            format!("`{}` does not exist (relative paths start at the scenario's folder)", path.display()),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, job) in s.fio.profiles.iter().enumerate() {
        if let Err(e) = job.check() {
            out.push((format!("fio.profiles[{i}]"), e));
        }
        if !names.insert(job.name.as_str()) {
            out.push((format!("fio.profiles[{i}].name"), format!("profile `{}` is defined twice", job.name)));
        }
    }
    if !(0.0..1.0).contains(&s.fio.noise_threshold) {
        out.push((
            "fio.noiseThreshold".into(),
            format!("{} is not a fraction: write e.g. 0.03 for 3%", s.fio.noise_threshold),
        ));
    }
}

fn check_stack(s: &Scenario, out: &mut Vec<Finding>) {
    let Some(stack) = &s.stack else { return };
    if s.cluster.provider == ProviderKind::Host {
        out.push(("stack".into(), "the host alone has no Kubernetes to deploy a stack on: remove `stack`".into()));
    }
    if stack.layers.is_empty() {
        out.push(("stack.layers".into(), "list at least one layer: `{manifests: DIR}` or a chart".into()));
    }
    for (i, layer) in stack.layers.iter().enumerate() {
        if let super::Layer::Manifests(m) = layer
            && !s.path_of(&m.manifests).is_dir()
        {
            out.push((
                format!("stack.layers[{i}].manifests"),
                format!(
                    "`{}` is not a folder (relative paths start at the scenario's folder)",
                    s.path_of(&m.manifests).display()
                ),
            ));
        }
    }
    let t = &stack.timeouts;
    for (key, value) in [("crds", &t.crds), ("ready", &t.ready), ("pools", &t.pools), ("teardown", &t.teardown)] {
        if parse_duration_secs(value).is_none() {
            out.push((
                format!("stack.timeouts.{key}"),
                format!("`{value}` is not a duration: write e.g. 90s, 10m or 1h"),
            ));
        }
    }
}

fn check_images(s: &Scenario, out: &mut Vec<Finding>) {
    let options = &s.images;
    for (i, reference) in options.preload.iter().enumerate() {
        let last = reference.rsplit('/').next().unwrap_or_default();
        if !last.contains(':') && !reference.contains('@') {
            out.push((
                format!("images.preload[{i}]"),
                format!("`{reference}` has no tag: pin one, e.g. `{reference}:1.36`"),
            ));
        }
        if s.cluster.provider == ProviderKind::Host {
            out.push((format!("images.preload[{i}]"), "the host alone has no nodes to preload into".into()));
        }
    }
    if options.load == super::LoadMode::Registry && s.cluster.provider == ProviderKind::Host {
        out.push(("images.load".into(), "the host alone has no nodes to load into: remove `load: registry`".into()));
    }
    let off_host = matches!(s.cluster.provider, ProviderKind::Vagrant | ProviderKind::Existing);
    let endpoint = options.registry.as_ref().and_then(|r| r.endpoint.as_ref());
    if options.load == super::LoadMode::Registry && off_host && endpoint.is_none() {
        out.push((
            "images.load".into(),
            format!(
                "{} nodes cannot reach a registry on this host's loopback: set `images.registry.endpoint` to the URL they reach it at (e.g. http://192.168.56.1:5001)",
                s.cluster.provider
            ),
        ));
    }
    if let Some(registry) = &options.registry {
        let port_ok = registry
            .address
            .rsplit_once(':')
            .is_some_and(|(host, port)| is_host_name(host) && port.parse::<u16>().is_ok());
        if !port_ok {
            out.push((
                "images.registry.address".into(),
                format!("`{}` is not host:port, e.g. localhost:5001", registry.address),
            ));
        }
        if let Some(endpoint) = &registry.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            out.push(("images.registry.endpoint".into(), format!("`{endpoint}` is not a URL: write http://host:port")));
        }
        if options.load != super::LoadMode::Registry {
            out.push((
                "images.registry".into(),
                "a registry is set but `load` is not `registry`: add `load: registry` or remove it".into(),
            ));
        }
    }
}

fn check_components(s: &Scenario, out: &mut Vec<Finding>) {
    let mut names = std::collections::BTreeSet::new();
    let mut images = std::collections::BTreeMap::new();
    for (i, c) in s.components.iter().enumerate() {
        let at = |field: &str| format!("components[{i}].{field}");
        let valid_name = !c.name.is_empty()
            && c.name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && !c.name.starts_with('-');
        if !valid_name {
            out.push((
                at("name"),
                format!("`{}` is not a valid component name: use lowercase letters, digits and '-'", c.name),
            ));
        } else if !names.insert(c.name.as_str()) {
            out.push((at("name"), format!("component `{}` is defined twice: names must be unique", c.name)));
        }
        let image_names = c.image.names();
        if image_names.is_empty() {
            out.push((at("image"), "name at least one image the build produces".into()));
        }
        for image in &image_names {
            if let Err(why) = check_image_name(image) {
                out.push((at("image"), why));
            } else if let Some(other) = images.insert(image.clone(), c.name.clone()) {
                out.push((at("image"), format!("`{image}` is also produced by component `{other}`")));
            }
        }
        let unset = |field: String, path: &str, out: &mut Vec<Finding>| {
            let names = component::unset_variables(path);
            for name in &names {
                out.push((field.clone(), format!("`${{{name}}}` in `{path}` is not set: export {name} with the folder it names, or write the path itself")));
            }
            !names.is_empty()
        };
        let checkout = match &c.source {
            Source::Path(path) if unset(at("source"), path, out) => None,
            Source::Path(path) => {
                let dir = s.path_of(path);
                if !dir.is_dir() {
                    out.push((at("source"), format!("checkout `{}` is not a directory: clone it there or fix the path (relative paths start at the scenario's folder)", dir.display())));
                    None
                } else {
                    Some(dir)
                }
            }
            Source::Git(git) => {
                if git.git.trim().is_empty() {
                    out.push((at("source.git"), "the git URL is empty".into()));
                }
                if git.reference.trim().is_empty() {
                    out.push((at("source.ref"), "name a branch, tag or commit to check out".into()));
                } else if git.reference.starts_with('-') || git.reference.chars().any(|c| c.is_whitespace()) {
                    out.push((
                        at("source.ref"),
                        format!("`{}` is not a git ref: refs start with no '-' and hold no spaces", git.reference),
                    ));
                }
                if git.git.starts_with('-') {
                    out.push((at("source.git"), format!("`{}` is not a git URL: it starts with '-'", git.git)));
                }
                None
            }
        };
        match &c.build {
            BuildRecipe::Dockerfile(build) => {
                if Path::new(&build.dockerfile).is_absolute() || build.dockerfile.split('/').any(|p| p == "..") {
                    out.push((
                        at("build.dockerfile"),
                        format!("`{}` must be a path inside the checkout (it is the build context)", build.dockerfile),
                    ));
                } else if let Some(dir) = &checkout
                    && !dir.join(&build.dockerfile).is_file()
                {
                    out.push((
                        at("build.dockerfile"),
                        format!("no Dockerfile at `{}`", dir.join(&build.dockerfile).display()),
                    ));
                }
            }
            BuildRecipe::Command(build) => {
                if build.command.trim().is_empty() {
                    out.push((at("build.command"), "the build command is empty".into()));
                }
            }
        }
        for (name, path) in &c.inputs {
            let field = format!("components[{i}].inputs.{name}");
            let valid =
                !name.is_empty() && name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
            if !valid {
                out.push((field, format!("`{name}` is not a valid input name: use lowercase letters, digits and '-' (the build finds it as $LAB_INPUT_NAME)")));
            } else if !unset(field.clone(), path, out) && !s.path_of(path).is_dir() {
                out.push((
                    field,
                    format!("`{}` is not a directory: an input is a folder the build reads", s.path_of(path).display()),
                ));
            }
        }
        for (j, o) in c.overrides.iter().enumerate() {
            let (manifest, what) = match o {
                Override::Cargo(_) => ("Cargo.toml", "a Cargo [patch]"),
                Override::CargoVersion(_) => ("Cargo.lock", "a Cargo.lock version"),
                Override::Go(_) => ("go.mod", "a Go replace"),
                Override::Tree(t) => {
                    let inside = Path::new(&t.tree);
                    let stays_inside = inside.is_relative()
                        && inside.components().all(|c| matches!(c, std::path::Component::Normal(_)));
                    if !stays_inside {
                        out.push((
                            format!("components[{i}].overrides[{j}].tree"),
                            format!("`{}` is not a folder inside the checkout: write it relative, without `..` (e.g. utils/dependencies)", t.tree),
                        ));
                    }
                    if !unset(format!("components[{i}].overrides[{j}].path"), &t.path, out)
                        && !s.path_of(&t.path).is_dir()
                    {
                        out.push((
                            format!("components[{i}].overrides[{j}].path"),
                            format!(
                                "`{}` is not a directory: point it at your checkout of {}",
                                s.path_of(&t.path).display(),
                                t.tree
                            ),
                        ));
                    }
                    continue;
                }
            };
            if let Override::CargoVersion(v) = o {
                let looks_like_version = !v.version.is_empty()
                    && v.version.split('.').count() == 3
                    && v.version.split(['.', '-', '+']).next().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
                if !looks_like_version || v.version.starts_with('-') {
                    out.push((
                        format!("components[{i}].overrides[{j}].version"),
                        format!("`{}` is not a crate version: write it whole, as `0.3.36`", v.version),
                    ));
                }
            }
            let Some(path) = o.path() else {
                if let Some(checkout) = &checkout
                    && !checkout.join(manifest).is_file()
                {
                    out.push((
                        format!("components[{i}].overrides[{j}]"),
                        format!("{what} needs {manifest} at the checkout's top, and `{}` has none", checkout.display()),
                    ));
                }
                continue;
            };
            if unset(format!("components[{i}].overrides[{j}].path"), path, out) {
                continue;
            }
            let dir = s.path_of(path);
            if !dir.join(manifest).is_file() {
                out.push((
                    format!("components[{i}].overrides[{j}].path"),
                    format!("`{}` has no {manifest}: point it at the checkout of `{}`", dir.display(), o.target()),
                ));
            }
            if let Some(checkout) = &checkout
                && !checkout.join(manifest).is_file()
            {
                out.push((
                    format!("components[{i}].overrides[{j}]"),
                    format!("{what} needs {manifest} at the checkout's top, and `{}` has none", checkout.display()),
                ));
            }
        }
    }
}

/// A Docker repository name without tag or digest: `lab` adds the tag.
fn check_image_name(image: &str) -> Result<(), String> {
    let last = image.rsplit('/').next().unwrap_or_default();
    if image.contains('@') || last.contains(':') {
        return Err(format!(
            "`{image}`: give the image without a tag or digest; lab tags it with a hash of its inputs"
        ));
    }
    let path = match image.split_once('/') {
        // A registry host (with a dot, a port or `localhost`) may use upper case and ':'.
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            let (name, port) = host.split_once(':').unwrap_or((host, "1"));
            if !is_host_name(name) || port.parse::<u16>().is_err() {
                return Err(format!(
                    "`{image}`: its registry part `{host}` is not host or host:port (letters, digits, '.', '-'; no '..')"
                ));
            }
            rest
        }
        _ => image,
    };
    let valid = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && part.starts_with(|c: char| c.is_ascii_alphanumeric())
        });
    if valid {
        Ok(())
    } else {
        Err(format!("`{image}` is not a valid image name: use lowercase letters, digits, '.', '_', '-' and '/'"))
    }
}

/// A host name or IPv4 address as registries and URLs carry it: letters,
/// digits, '.' and '-', no empty label (so no `..`), none starting with '-'.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty() && !label.starts_with('-') && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A Vagrant box name (`lab/debian-12`, `generic/debian12`): at most one
/// '/', each part of letters, digits, '.', '_' and '-', not starting with
/// '.' or '-' (so no `..`, no option, no path).
fn is_box_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|part| {
            !part.is_empty()
                && !part.starts_with(['.', '-'])
                && part.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

fn check_name(name: &str, out: &mut Vec<Finding>) {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        out.push((
            "metadata.name".into(),
            format!(
                "`{name}` is not a valid lab name: use 1 to {MAX_NAME_LEN} lowercase letters, digits and '-', starting and ending with a letter or digit"
            ),
        ));
    }
}

fn check_provider_sections(s: &Scenario, out: &mut Vec<Finding>) {
    let c = &s.cluster;
    let sections = [
        ("kind", c.kind.is_some(), ProviderKind::Kind),
        ("vagrant", c.vagrant.is_some(), ProviderKind::Vagrant),
        ("existing", c.existing.is_some(), ProviderKind::Existing),
        ("local", c.local.is_some(), ProviderKind::Local),
    ];
    for (key, present, provider) in sections {
        if present && c.provider != provider {
            out.push((
                format!("cluster.{key}"),
                format!(
                    "`{key}` options are set but the provider is `{}`: remove them or set `provider: {key}`",
                    c.provider
                ),
            ));
        }
    }
    if let Some(kind) = &c.kind
        && parse_duration_secs(&kind.wait).is_none()
    {
        out.push(("cluster.kind.wait".into(), format!("`{}` is not a duration: write e.g. 300s, 5m or 1h", kind.wait)));
    }
    if let Some(vagrant) = &c.vagrant {
        if !is_box_name(&vagrant.box_name) {
            out.push((
                "cluster.vagrant.box".into(),
                format!(
                    "`{}` is not a box name: write NAME or ORG/NAME of letters, digits, '.', '_' and '-' (e.g. lab/debian-12)",
                    vagrant.box_name
                ),
            ));
        }
        let octets: Vec<&str> = vagrant.network.split('.').collect();
        if octets.len() != 3 || octets.iter().any(|o| o.parse::<u8>().is_err()) {
            out.push((
                "cluster.vagrant.network".into(),
                format!("`{}` is not the first three octets of a network: write e.g. 192.168.56", vagrant.network),
            ));
        }
    }
}

/// The most nodes one scenario may ask for: more is a typo, not a lab.
pub const MAX_NODES: u64 = 64;

/// Whether the node counts are within [`MAX_NODES`]; each group over it is named.
fn check_count_bounds(s: &Scenario, out: &mut Vec<Finding>) -> bool {
    let before = out.len();
    for (i, g) in s.cluster.nodes.iter().enumerate() {
        if u64::from(g.count) > MAX_NODES {
            out.push((
                format!("cluster.nodes[{i}].count"),
                format!("{} nodes is more than lab runs in one scenario ({MAX_NODES} at most)", g.count),
            ));
        }
    }
    let total: u64 = s.cluster.nodes.iter().map(|g| u64::from(g.count)).sum();
    if out.len() == before && total > MAX_NODES {
        out.push((
            "cluster.nodes".into(),
            format!("{total} nodes in all is more than lab runs in one scenario ({MAX_NODES} at most)"),
        ));
    }
    out.len() == before
}

fn check_node_counts(s: &Scenario, out: &mut Vec<Finding>) {
    let nodes = &s.cluster.nodes;
    let total: u32 = nodes.iter().map(|g| g.count).sum();
    let control_planes: u32 = nodes.iter().filter(|g| g.role == Role::ControlPlane).map(|g| g.count).sum();
    match s.cluster.provider {
        ProviderKind::Kind | ProviderKind::Vagrant if control_planes != 1 => out.push((
            "cluster.nodes".into(),
            format!(
                "a {} cluster needs exactly one control-plane node, this one has {control_planes}: add `- role: control-plane` (or remove the extra ones)",
                s.cluster.provider
            ),
        )),
        ProviderKind::Host if total > 1 => out.push((
            "cluster.nodes".into(),
            format!("the host provider has one node, the local machine; this scenario asks for {total}"),
        )),
        ProviderKind::Local if total != 1 => out.push((
            "cluster.nodes".into(),
            format!(
                "the local provider runs one node on this machine (control plane and workloads together); this scenario asks for {total}: list one node"
            ),
        )),
        _ => {}
    }
}

fn check_group(s: &Scenario, i: usize, g: &NodeGroup, out: &mut Vec<Finding>) {
    let at = |field: &str| format!("cluster.nodes[{i}].{field}");
    let provider = s.cluster.provider;
    if g.count == 0 {
        out.push((at("count"), "count must be at least 1 (remove the entry for no nodes)".into()));
    }
    match (&g.name, provider) {
        (None, ProviderKind::Existing) => out.push((
            at("role"),
            "nodes of an existing cluster are named: add `name: <node name as kubectl get nodes shows it>`".into(),
        )),
        (Some(_), ProviderKind::Existing) if g.count != 1 => {
            out.push((at("count"), "a named node is one node: remove `count`".into()))
        }
        (Some(_), p) if p != ProviderKind::Existing => out.push((
            at("name"),
            format!("`name` selects a node of an existing cluster; {p} names its nodes itself: remove it"),
        )),
        _ => {}
    }
    for (key, value) in &g.labels {
        if let Err(why) = check_label(key, value) {
            out.push((format!("cluster.nodes[{i}].labels.{key}"), why));
        }
    }
    for (m, module) in g.modules.iter().flatten().enumerate() {
        if !is_module_name(module) {
            out.push((
                format!("cluster.nodes[{i}].modules[{m}]"),
                format!("`{module}` is not a kernel module name (e.g. nvme_tcp)"),
            ));
        }
    }
    if let Some(pool) = &g.pool
        && pool.size.bytes() < 64 << 20
    {
        out.push((at("pool.size"), format!("a pool of {} is too small: give at least 64MiB", pool.size)));
    }
    if let Some(pool) = &g.pool {
        check_pool_device(provider, pool, &at, out);
    }
    if let Some(list) = &g.io_engine_core_list
        && parse_core_list(list).is_none()
    {
        out.push((
            at("ioEngineCoreList"),
            format!("`{list}` is not a core list: write cores and ranges such as 1 or 1,2 or 1-3"),
        ));
    }
    let is_vm = provider == ProviderKind::Vagrant;
    if !is_vm && (g.cpus.is_some() || g.memory.is_some()) {
        let field = if g.cpus.is_some() { "cpus" } else { "memory" };
        out.push((
            at(field),
            format!(
                "`{field}` sizes a VM and applies only to provider vagrant; {provider} nodes use what the machine has"
            ),
        ));
    }
    if g.runs_io_engine() {
        check_io_engine_node(s, i, g, out);
    }
}

/// Where nodes share this host's `/dev` (kind, local, host) a pool device is
/// a disk of this machine: a loop device this lab made, unless
/// `allowHostDevice` says otherwise. What is on it is probed before `up`
/// changes anything ([`crate::stack::pool`]).
fn check_pool_device(
    provider: ProviderKind,
    pool: &super::PoolSpec,
    at: &dyn Fn(&str) -> String,
    out: &mut Vec<Finding>,
) {
    for (set, field) in [(pool.allow_host_device, "allowHostDevice"), (pool.overwrite, "overwrite")] {
        if set && !provider.shares_host_dev() {
            out.push((
                at(&format!("pool.{field}")),
                format!("{field} is for providers whose nodes share this host's /dev (kind, local, host); a {provider} node's device is one of its own disks: remove it"),
            ));
        }
    }
    let Some(device) = &pool.device else {
        for (set, field) in [(pool.allow_host_device, "allowHostDevice"), (pool.overwrite, "overwrite")] {
            if set {
                out.push((at(&format!("pool.{field}")), "there is no `device` to allow: remove it".into()));
            }
        }
        return;
    };
    if !device.starts_with("/dev/") || device.contains("..") || device.chars().any(|c| c.is_whitespace()) {
        out.push((at("pool.device"), format!("`{device}` is not a device path: write e.g. /dev/loop7")));
        return;
    }
    if provider.shares_host_dev() && !pool.allow_host_device && !is_loop_device(device) {
        out.push((
            at("pool.device"),
            format!(
                "{device} is a disk of this host ({provider} nodes share its /dev), and a pool overwrites it: use a loop device lab made (`losetup -f --show <file in the lab's state folder>`), or add `allowHostDevice: true` if you mean it"
            ),
        ));
    }
    if pool.overwrite && !pool.allow_host_device {
        out.push((
            at("pool.overwrite"),
            "overwrite is the second consent, after `allowHostDevice: true`: give both, or remove it".into(),
        ));
    }
}

/// A kernel module's name as lab writes it into `modprobe`: letters, digits,
/// `_` and `-`, never first a `-` (it would be read as an option).
pub fn is_module_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// `/dev/loopN`.
pub fn is_loop_device(device: &str) -> bool {
    device.strip_prefix("/dev/loop").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// What Mayastor's io-engine needs of a node labelled for it (MAYASTOR.md).
fn check_io_engine_node(s: &Scenario, i: usize, g: &NodeGroup, out: &mut Vec<Finding>) {
    let at = |field: &str| format!("cluster.nodes[{i}].{field}");
    let label = format!("{}={}", IO_ENGINE_LABEL.0, IO_ENGINE_LABEL.1);
    match g.hugepages2_mi {
        None => out.push((
            at("labels"),
            format!("a node labelled {label} runs io-engine, which needs at least {IO_ENGINE_MIN_HUGEPAGES} 2 MiB hugepages: add `hugepages2Mi: {IO_ENGINE_MIN_HUGEPAGES}`"),
        )),
        Some(pages) if pages < IO_ENGINE_MIN_HUGEPAGES => out.push((
            at("hugepages2Mi"),
            format!("io-engine refuses to start with fewer than {IO_ENGINE_MIN_HUGEPAGES} free 2 MiB hugepages; {pages} is too few"),
        )),
        _ => {}
    }
    if s.cluster.provider == ProviderKind::Vagrant {
        let vagrant = s.cluster.vagrant.clone().unwrap_or_default();
        let cpus = g.cpus.unwrap_or(vagrant.cpus);
        if cpus < IO_ENGINE_MIN_CPUS && g.io_engine_core_list.is_none() {
            let field = if g.cpus.is_some() { "cpus" } else { "labels" };
            out.push((
                at(field),
                format!(
                    "io-engine's default core list 1,2 needs {IO_ENGINE_MIN_CPUS} CPUs and this VM has {cpus} (it would fail with \"EAL: invalid core list\"): give `cpus: {IO_ENGINE_MIN_CPUS}` or set `ioEngineCoreList: \"1\"`"
                ),
            ));
        }
        let memory = g.memory.unwrap_or(vagrant.memory);
        let pages_bytes = g.hugepages2_mi.unwrap_or(0) * (2 << 20);
        if memory.bytes() < pages_bytes + (1 << 30) {
            let field = if g.memory.is_some() { "memory" } else { "hugepages2Mi" };
            out.push((
                at(field),
                format!(
                    "the VM has {memory} but its hugepages alone take {}: give it at least 1GiB more than that",
                    super::ByteSize(pages_bytes)
                ),
            ));
        }
    }
}

/// kind nodes share the host kernel, so they share one hugepage count.
fn check_one_kernel(s: &Scenario, out: &mut Vec<Finding>) {
    let mut first: Option<(usize, u64)> = None;
    for (i, g) in s.cluster.nodes.iter().enumerate() {
        let Some(pages) = g.hugepages2_mi else { continue };
        match first {
            None => first = Some((i, pages)),
            Some((j, want)) if want != pages => out.push((
                format!("cluster.nodes[{i}].hugepages2Mi"),
                format!(
                    "kind nodes share the host's kernel and so its hugepages: nodes[{j}] asks for {want} and this one for {pages}; give them the same count"
                ),
            )),
            _ => {}
        }
    }
}

fn check_label(key: &str, value: &str) -> Result<(), String> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok =
        prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(|part| name_ok(part) && !part.contains('_')));
    if !prefix_ok || !name_ok(name) {
        return Err(format!(
            "`{key}` is not a valid Kubernetes label key (optional DNS prefix, '/', then up to 63 of [A-Za-z0-9-_.])"
        ));
    }
    if !value.is_empty() && !name_ok(value) {
        return Err(format!(
            "`{value}` is not a valid label value (up to 63 of [A-Za-z0-9-_.], alphanumeric at both ends)"
        ));
    }
    Ok(())
}

/// `1,2` or `1-3,5` → the core ids; None when it is not a core list.
pub fn parse_core_list(list: &str) -> Option<Vec<u32>> {
    let mut cores = Vec::new();
    for part in list.split(',') {
        match part.trim().split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
                if a > b || b - a > 4096 {
                    return None;
                }
                cores.extend(a..=b);
            }
            None => cores.push(part.trim().parse().ok()?),
        }
    }
    Some(cores)
}

/// `300s`, `5m`, `1h` → seconds.
pub fn parse_duration_secs(text: &str) -> Option<u64> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules_follow_kubernetes() {
        assert!(check_label("openebs.io/engine", "mayastor").is_ok());
        assert!(check_label("tier", "").is_ok());
        assert!(check_label("bad key", "x").is_err());
        assert!(check_label("a/b/c", "x").is_err());
        assert!(check_label("ok", "-starts-with-dash").is_err());
    }

    #[test]
    fn hosts_boxes_and_registry_parts() {
        assert!(is_host_name("localhost") && is_host_name("registry.example.com") && is_host_name("192.168.56.1"));
        assert!(!is_host_name("a..b") && !is_host_name("../x") && !is_host_name("-x") && !is_host_name("a;b"));
        assert!(is_box_name("debian/bookworm64") && is_box_name("lab-debian_12.1"));
        assert!(!is_box_name("../x") && !is_box_name("a/b/c") && !is_box_name("-x") && !is_box_name("a b"));
        assert!(check_image_name("localhost:5001/lab/app").is_ok());
        assert!(check_image_name("reg.example:http/app").is_err());
    }

    #[test]
    fn core_lists_and_durations() {
        assert_eq!(parse_core_list("1"), Some(vec![1]));
        assert_eq!(parse_core_list("1,2"), Some(vec![1, 2]));
        assert_eq!(parse_core_list("1-3,5"), Some(vec![1, 2, 3, 5]));
        assert_eq!(parse_core_list("3-1"), None);
        assert_eq!(parse_core_list("a"), None);
        assert_eq!(parse_duration_secs("5m"), Some(300));
        assert_eq!(parse_duration_secs("90s"), Some(90));
        assert_eq!(parse_duration_secs("5"), None);
        assert_eq!(parse_duration_secs("m"), None);
    }
}
