//! Running a command somewhere: the host, a node container, a VM, a node of an
//! existing cluster. Every failure carries the pasteable command, where it ran
//! and what it printed.

use std::fmt;

use async_trait::async_trait;

/// A command line: program, arguments and extra environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub env: Vec<(String, String)>,
    pub program: String,
    pub args: Vec<String>,
    /// Its output carries a secret (a join token): never logged, nor put
    /// in errors or artifacts.
    pub secret_output: bool,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd { env: Vec::new(), program: program.into(), args: Vec::new(), secret_output: false }
    }

    /// See [`Cmd::secret_output`].
    pub fn secret_output(mut self) -> Self {
        self.secret_output = true;
        self
    }

    /// A command that needs a shell (pipes, redirections, `||`): `sh -c SCRIPT`.
    pub fn sh(script: impl Into<String>) -> Self {
        Cmd::new("sh").arg("-c").arg(script)
    }

    /// One of lab's script files, compiled in: `sh -c TEXT NAME`, its
    /// parameters added as arguments (`$1`…), never spliced into its text.
    /// The file's leading comment block stays in the file.
    pub fn script(name: &str, text: &str) -> Self {
        let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with('#')).collect();
        Cmd::sh(body.join("\n").trim_start().to_string()).arg(name)
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Program and arguments, without the environment.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone()).chain(self.args.iter().cloned()).collect()
    }
}

impl fmt::Display for Cmd {
    /// Shell-quoted, so the line can be pasted into a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
        words.extend(self.argv().iter().map(|w| quote(w)));
        f.write_str(&words.join(" "))
    }
}

/// POSIX shell quoting: words made only of safe characters stay bare, all
/// others are single-quoted.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a finished command returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub status: i64,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A command that could not run, or ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{place}: could not run `{command}`: {reason}")]
    Spawn { place: String, command: String, reason: String },
    #[error("{place}: `{command}` exited with status {}{}", .output.status, tail(output))]
    Failed { place: String, command: String, output: Output },
}

impl RunError {
    pub fn output(&self) -> Option<&Output> {
        match self {
            RunError::Failed { output, .. } => Some(output),
            RunError::Spawn { .. } => None,
        }
    }
}

/// The last lines a failed command printed, stderr first, for error messages.
fn tail(output: &Output) -> String {
    let text = if output.stderr.trim().is_empty() { &output.stdout } else { &output.stderr };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(20);
    let shown: Vec<String> = lines[start..].iter().map(|l| format!("  | {l}")).collect();
    format!(":\n{}", shown.join("\n"))
}

/// Runs commands in one place. `run` fails on a non-zero exit status.
#[async_trait]
pub trait Shell: Send + Sync {
    /// Where commands run, for messages: "host", "node lab-q-worker".
    fn place(&self) -> String;

    /// The pasteable host command that runs `cmd` there (what `--dry-run` prints).
    fn display(&self, cmd: &Cmd) -> String;

    /// Run to completion; `stdin` is fed to the command when given.
    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError>;

    /// Run with stdin fed from `input` as chunks arrive (large transfers such
    /// as image imports). This default gathers the input first; shells that
    /// can stream override it.
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        mut input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        let mut data = Vec::new();
        while let Some(chunk) = input.recv().await {
            data.extend_from_slice(&chunk);
        }
        self.exec(cmd, Some(&data)).await
    }

    /// Run and require exit status 0.
    async fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        self.run_with_input(cmd, None).await
    }

    /// Run with `stdin` fed to the command, and require exit status 0.
    async fn run_with_input(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        let output = self.exec(cmd, stdin).await?;
        if output.success() {
            Ok(output)
        } else {
            Err(RunError::Failed { place: self.place(), command: self.display(cmd), output })
        }
    }
}

/// The local machine.
pub struct LocalShell;

#[async_trait]
impl Shell for LocalShell {
    fn place(&self) -> String {
        "host".into()
    }

    fn display(&self, cmd: &Cmd) -> String {
        cmd.to_string()
    }

    async fn exec(&self, cmd: &Cmd, stdin: Option<&[u8]>) -> Result<Output, RunError> {
        use tokio::io::AsyncWriteExt;
        let mut child = spawn_local(cmd, stdin.is_some())?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its input is not an error here.
            let _ = pipe.write_all(data).await;
        }
        finish_local(cmd, child.wait_with_output().await)
    }

    /// Input is written as it arrives while the output is read, so a large
    /// transfer never sits whole in memory.
    async fn exec_streamed(
        &self,
        cmd: &Cmd,
        mut input: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> Result<Output, RunError> {
        use tokio::io::AsyncWriteExt;
        let mut child = spawn_local(cmd, true)?;
        let pipe = child.stdin.take();
        let writer = async move {
            if let Some(mut pipe) = pipe {
                while let Some(chunk) = input.recv().await {
                    if pipe.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        };
        let ((), output) = tokio::join!(writer, child.wait_with_output());
        finish_local(cmd, output)
    }
}

fn local_spawn_error(cmd: &Cmd, e: std::io::Error) -> RunError {
    RunError::Spawn {
        place: "host".into(),
        command: cmd.to_string(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => format!("`{}` is not installed or not on PATH", cmd.program),
            _ => e.to_string(),
        },
    }
}

fn spawn_local(cmd: &Cmd, with_stdin: bool) -> Result<tokio::process::Child, RunError> {
    tracing::debug!(place = "host", command = %cmd, "run");
    tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(if with_stdin { std::process::Stdio::piped() } else { std::process::Stdio::null() })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| local_spawn_error(cmd, e))
}

fn finish_local(cmd: &Cmd, output: std::io::Result<std::process::Output>) -> Result<Output, RunError> {
    let out = output.map_err(|e| local_spawn_error(cmd, e))?;
    Ok(Output {
        status: out.status.code().map(i64::from).unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_protects_the_rest() {
        let cases = [
            ("kind", "kind"),
            ("/var/local/mayastor", "/var/local/mayastor"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", r"'it'\''s'"),
            ("$HOME", "'$HOME'"),
            ("a;rm -rf /", "'a;rm -rf /'"),
        ];
        for (word, want) in cases {
            assert_eq!(quote(word), want, "quoting {word:?}");
        }
    }

    #[test]
    fn display_shows_environment_then_quoted_argv() {
        let cmd = Cmd::new("vagrant").arg("up").env("VAGRANT_CWD", "/tmp/x y");
        assert_eq!(cmd.to_string(), "VAGRANT_CWD='/tmp/x y' vagrant up");
    }

    #[tokio::test]
    async fn local_shell_reports_status_output_and_the_command() {
        let ok = LocalShell.run(&Cmd::sh("echo out; echo err >&2")).await.unwrap();
        assert_eq!((ok.stdout.as_str(), ok.stderr.as_str()), ("out\n", "err\n"));

        let err = LocalShell.run(&Cmd::sh("echo broken >&2; exit 3")).await.unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("host: `sh -c 'echo broken >&2; exit 3'` exited with status 3"), "{text}");
        assert!(text.contains("| broken"), "{text}");

        let missing = LocalShell.run(&Cmd::new("lab-no-such-program")).await.unwrap_err();
        assert!(missing.to_string().contains("`lab-no-such-program` is not installed"), "{missing}");
    }

    #[tokio::test]
    async fn local_shell_feeds_stdin() {
        let out = LocalShell.exec(&Cmd::new("cat"), Some(b"hello")).await.unwrap();
        assert_eq!(out.stdout, "hello");
    }

    #[tokio::test]
    async fn local_shell_streams_stdin_as_it_arrives() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let feeder = tokio::spawn(async move {
            for piece in ["one ", "two ", "three"] {
                tx.send(bytes::Bytes::from(piece)).await.unwrap();
            }
        });
        let out = LocalShell.exec_streamed(&Cmd::new("cat"), rx).await.unwrap();
        feeder.await.unwrap();
        assert_eq!(out.stdout, "one two three");
        // A command that stops reading ends the stream instead of stalling it.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let feeder = tokio::spawn(async move {
            let mut sent = 0;
            while tx.send(bytes::Bytes::from(vec![0u8; 65536])).await.is_ok() {
                sent += 1;
            }
            sent
        });
        let out = LocalShell.exec_streamed(&Cmd::new("true"), rx).await.unwrap();
        assert!(out.success());
        assert!(feeder.await.unwrap() < 1000, "the input kept flowing into a finished command");
    }
}
