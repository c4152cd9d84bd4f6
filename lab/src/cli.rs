//! The command line. Each subcommand's arguments become options for the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "lab", version, about = "A disposable Kubernetes storage test lab with one command")]
pub struct Cli {
    /// More diagnostic logging (-v debug, -vv trace); also RUST_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no progress lines.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the cluster and make its nodes usable.
    Up(UpArgs),
    /// Make the nodes ready (hugepages, modules, rshared, labels, CPU checks), verify, record for `down`.
    Prepare(UpArgs),
    /// Build the scenario's components into images tagged by a hash of their inputs.
    Build(ComponentArgs),
    /// Put the built images into every node, sending only what each lacks.
    Load(ComponentArgs),
    /// Apply the storage stack in order, wait until it is ready, create the pools.
    Deploy(DeployArgs),
    /// Run the scenario's Gherkin features (fio checks among them) and write reports.
    Test(TestArgs),
    /// `lab up`, then `lab test`, then `lab down` (kept when a test fails and --keep-on-failure is given).
    Run(TestArgs),
    /// Run a fio profile of the scenario on this host, record it, and judge it against the history.
    Fio(FioArgs),
    /// Check that every image the lab references is on every node or pullable.
    Images(ImagesArgs),
    /// Remove the cluster and everything lab created for it; restore host settings.
    Down(DownArgs),
    /// Show the lab's nodes as the provider sees them now.
    Status(StatusArgs),
    /// Print what `lab up` (or `lab down`) would do, changing nothing.
    Plan(PlanArgs),
    /// Check this machine for everything the scenario needs.
    Doctor(ScenarioArg),
    /// Open an interactive shell on a node.
    Shell(ShellArgs),
    /// The labs on this machine: name, provider, since when, up or not, state folder.
    List(ListArgs),
    /// Find the first commit of a component at which a test selection fails or a fio profile slows down.
    Bisect(BisectArgs),
    /// One tarball to replay this lab elsewhere: scenario, commits and uncommitted-change hashes, image IDs, host facts, artifacts, fio history.
    Bundle(BundleArgs),
    /// Run a bundle again here (up, its scenarios, down), saying first what differs from where it was made.
    Replay(ReplayArgs),
    /// Gather what a bug report needs (`lab export logs [DIR]`).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Print a completion script for a shell (`lab completions bash > /etc/bash_completion.d/lab`).
    Completions(CompletionsArgs),
    /// Every Gherkin step lab understands: its parameters, an example, where it is defined.
    Steps(StepsArgs),
}

#[derive(Args, Debug)]
pub struct StepsArgs {
    /// Only the steps whose text, parameters or domain contain this word (any case), e.g. fio or pod.
    pub word: Option<String>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// One JSON object on stdout (name, provider, state folder, kubeconfig, up, nodes) for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BisectArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// The component whose checkout's history is searched (its `source` must be a git checkout).
    #[arg(long)]
    pub component: String,
    /// A commit (or any revision) where the selection passes.
    #[arg(long)]
    pub good: String,
    /// A later commit where it fails.
    #[arg(long)]
    pub bad: String,
    /// Only scenarios matching this tag expression.
    #[arg(short, long, value_name = "TAG-EXPR")]
    pub tags: Option<String>,
    /// Only scenarios whose name matches this regular expression.
    #[arg(short, long, value_name = "REGEX", conflicts_with = "tags")]
    pub name: Option<String>,
    /// Judge by this fio profile instead of scenarios: a step is bad when it is slower than the
    /// good build, run interleaved with it (each deployed in turn).
    #[arg(long, value_name = "PROFILE", conflicts_with_all = ["tags", "name"], requires = "target")]
    pub fio: Option<String>,
    /// --fio: the file or block device fio works on.
    #[arg(long, requires = "fio")]
    pub target: Option<String>,
    /// --fio: let a writing profile overwrite a --target that holds something (see `lab fio --overwrite`).
    #[arg(long, requires = "fio")]
    pub overwrite: bool,
    /// --fio: run fio in this node's shell [default: on this host].
    #[arg(long, requires = "fio")]
    pub node: Option<String>,
    /// --fio: the metric that decides (default: the profile's read or write IOPS).
    #[arg(long, requires = "fio")]
    pub metric: Option<String>,
    /// --fio: interleaved pairs before the first verdict.
    #[arg(long, default_value_t = 10)]
    pub min_pairs: usize,
    /// --fio: interleaved pairs at most per step.
    #[arg(long, default_value_t = 40)]
    pub max_pairs: usize,
    /// --fio: seconds per step after which no new pair starts.
    #[arg(long, default_value_t = 300)]
    pub budget: u64,
    /// A new lab for every step (down, then up with the step's build) instead of one kept up.
    #[arg(long)]
    pub fresh: bool,
    /// Run a failing step again up to N times; a step that then passes is flaky and skipped.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// List the commits between good and bad and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct BundleArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// Also put each component's uncommitted diff in (`diffs/<component>.diff`); by default only its hash.
    #[arg(long)]
    pub diff: bool,
    /// The bundle's folder; the tarball is `<OUT>.tar.gz` [default: artifacts/<lab>/<UTC time>-bundle]
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// The scenarios `lab replay` runs: those matching this tag expression [default: every one].
    #[arg(short, long, value_name = "TAG-EXPR")]
    pub tags: Option<String>,
    /// The scenarios `lab replay` runs: those whose name matches this regular expression.
    #[arg(short, long, value_name = "REGEX", conflicts_with = "tags")]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The bundle: the `.tar.gz` `lab bundle` (or a failed `lab run`) printed, or its folder.
    pub bundle: PathBuf,
    /// This machine's copy of the bundle's scenario file (its features and manifests are read
    /// beside it) [default: the path it had where the bundle was made].
    #[arg(long, short)]
    pub scenario: Option<PathBuf>,
    /// Say what differs and what would run, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run a bundle whose scenario or code is not your own without asking (off a terminal,
    /// replay refuses such a bundle unless this is given).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Keep the lab when the replay fails, for a look (`lab down` removes it).
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Where failure artifacts go [default: artifacts/<lab>/<time>/ beside the scenario].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Node logs (kubelet, containerd or the local processes, dmesg), every pod's logs (and the
    /// previous container's), events, objects not Ready, lab's log; prints the folder.
    Logs(ExportLogsArgs),
}

#[derive(Args, Debug)]
pub struct ExportLogsArgs {
    /// Where to write [default: artifacts/<lab>/<UTC time>-logs beside the scenario]
    pub dir: Option<PathBuf>,
    /// Scenario file [default: ./lab.yaml, else scenarios/quickstart.yaml]
    #[arg(long, short = 's')]
    pub scenario: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// A JSON array on stdout, one object per lab.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ScenarioArg {
    /// Scenario file [default: ./lab.yaml, else scenarios/quickstart.yaml]
    pub scenario: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// Print the plan with its commands and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Also delete the objects `--adopt` took over (by default they stay, as they were not lab's).
    #[arg(long)]
    pub delete_adopted: bool,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Take over stack objects the cluster already has instead of refusing (`lab down` leaves them).
    #[arg(long)]
    pub adopt: bool,
    /// Have the API server check every object (`dryRun=All`) and store none
    /// but the CRDs and namespaces they need; every rejection is reported.
    #[arg(long)]
    pub server_dry_run: bool,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    /// When a step fails, keep what was made or changed, to look at it (`lab down` removes it).
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Take over stack objects the cluster already has instead of refusing (`lab down` leaves them).
    #[arg(long)]
    pub adopt: bool,
    /// Where the log of a failed run is kept [default: artifacts/<lab>/<time>/ beside the scenario].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ComponentArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Only this component (its `name` in the scenario).
    #[arg(long, short)]
    pub component: Option<String>,
}

#[derive(Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// Only scenarios matching this tag expression, e.g. `@perf and not @slow`.
    #[arg(short, long, value_name = "TAG-EXPR")]
    pub tags: Option<String>,
    /// Only scenarios whose name matches this regular expression.
    #[arg(short, long, value_name = "REGEX", conflicts_with = "tags")]
    pub name: Option<String>,
    /// Stop at the first failed scenario.
    #[arg(long)]
    pub fail_fast: bool,
    /// Scenarios run at once (tag one `@serial` to run it alone).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Write a JUnit XML report (one testcase per scenario).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a cucumber JSON report.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an HTML report with plots of the fio results.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Keep what a failed scenario made (its namespace; for `lab run`, the lab) for a look.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// A check the data cannot decide (too little history, an unsettled comparison) fails, not "not judged".
    #[arg(long)]
    pub strict: bool,
    /// Where failure artifacts go [default: artifacts/<lab>/<time>/ beside the scenario].
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// `lab run`: take over stack objects the cluster already has (see `lab up --adopt`).
    #[arg(long)]
    pub adopt: bool,
}

impl TestArgs {
    pub fn options(&self) -> crate::suite::TestOptions {
        crate::suite::TestOptions {
            tags: self.tags.clone(),
            name: self.name.clone(),
            fail_fast: self.fail_fast,
            concurrency: self.concurrency,
            junit: self.junit.clone(),
            json: self.json.clone(),
            html: self.html.clone(),
            keep_on_failure: self.keep_on_failure,
            artifacts: self.artifacts.clone(),
            strict: self.strict,
        }
    }
}

#[derive(Args, Debug)]
pub struct FioArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// The profile (its `name` under `fio.profiles`).
    #[arg(long, short)]
    pub profile: String,
    /// The file or block device fio works on.
    #[arg(long)]
    pub target: String,
    /// How many runs (the verdict needs at least 2).
    #[arg(long, default_value_t = 3, conflicts_with = "against")]
    pub repeat: usize,
    /// Labels these runs in the history (default: time and git commit).
    #[arg(long)]
    pub label: Option<String>,
    /// Compare with the runs of this label instead of the whole history.
    #[arg(long, conflicts_with = "against")]
    pub baseline: Option<String>,
    /// Compare with the same profile on this file or device, run interleaved
    /// with --target (A B, B A, …) until the verdict is settled: sound on a
    /// machine whose speed drifts, where a history is not.
    #[arg(long, value_name = "TARGET")]
    pub against: Option<String>,
    /// The metric --against decides on (default: the job's read or write IOPS).
    #[arg(long, requires = "against")]
    pub metric: Option<String>,
    /// Interleaved pairs before the first verdict.
    #[arg(long, default_value_t = 10, requires = "against")]
    pub min_pairs: usize,
    /// Interleaved pairs at most (6 or more: with fewer, the test can never find a change).
    #[arg(long, default_value_t = 40, requires = "against")]
    pub max_pairs: usize,
    /// Seconds after which no new pair starts.
    #[arg(long, default_value_t = 300, requires = "against")]
    pub budget: u64,
    /// A verdict the runs cannot decide (too little history, an unsettled comparison) fails (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Let a profile that writes overwrite a target that holds something: a block device with a
    /// filesystem, partition table or RAID/LVM signature, or another device on it, or a file lab did
    /// not make. A mounted device is refused always.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// Do not ask registries whether missing images could be pulled.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PlanFor {
    Up,
    Prepare,
    Build,
    Load,
    Deploy,
    Down,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub scenario: ScenarioArg,
    /// Which command's plan to show.
    #[arg(long = "for", value_enum, default_value = "up")]
    pub plan_for: PlanFor,
    /// Also print the files lab would write (kind config, node list).
    #[arg(long)]
    pub files: bool,
}

#[derive(Args, Debug)]
pub struct ShellArgs {
    /// Node name, as `lab status` lists it.
    pub node: String,
    #[command(flatten)]
    pub scenario: ScenarioArg,
}
