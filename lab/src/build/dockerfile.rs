//! A Dockerfile build through the Docker API: the context is tarred on a
//! blocking thread and streamed to the daemon, never held whole in memory.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, TagImageOptionsBuilder};
use bytes::Bytes;
use futures_util::StreamExt as _;
use indicatif::ProgressBar;

use super::{Build, LastLines};
use crate::scenario::component::DockerfileBuild;

pub async fn build(
    docker: &Docker,
    component: &Build,
    context: &Path,
    recipe: &DockerfileBuild,
    refs: &[String],
    spinner: Option<&ProgressBar>,
) -> anyhow::Result<()> {
    let name = component.name();
    let dockerfile = context.join(&recipe.dockerfile);
    if !dockerfile.is_file() {
        bail!("component {name}: no Dockerfile at {}", dockerfile.display());
    }
    let log_path = component.log_path();
    let mut log = std::fs::File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
    let args: HashMap<String, String> = recipe.args.clone().into_iter().collect();
    let mut options = BuildImageOptionsBuilder::new().dockerfile(&recipe.dockerfile).t(&refs[0]).rm(true).forcerm(true);
    if !args.is_empty() {
        options = options.buildargs(&args);
    }
    if let Some(target) = &recipe.target {
        options = options.target(target);
    }
    let body = bollard::body_try_stream(context_stream(context.to_path_buf()));
    let mut stream = docker.build_image(options.build(), None, Some(body));
    let mut tail = LastLines::new(15);
    let mut current_step = String::new();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => bail!(
                "component {name}: the Docker build failed{}: {e}\n{}\n(full output in {})",
                at_step(&current_step),
                tail.render(),
                log_path.display()
            ),
        };
        if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
            for line in text.lines() {
                if line.starts_with("Step ") || line.starts_with("#") {
                    current_step = line.trim().to_string();
                }
                tail.push(line, &mut log, spinner);
            }
        }
        if let Some(detail) = info.error_detail {
            let message = detail.message.unwrap_or_default();
            tail.push(&message, &mut log, None);
            bail!(
                "component {name}: the Docker build failed{}:\n{}\n(full output in {})",
                at_step(&current_step),
                tail.render(),
                log_path.display()
            );
        }
    }
    for extra in &refs[1..] {
        let (repo, tag) = extra.rsplit_once(':').unwrap_or((extra, "latest"));
        docker
            .tag_image(&refs[0], Some(TagImageOptionsBuilder::new().repo(repo).tag(tag).build()))
            .await
            .with_context(|| format!("component {name}: tagging {} as {extra}", refs[0]))?;
    }
    Ok(())
}

fn at_step(step: &str) -> String {
    if step.is_empty() { String::new() } else { format!(" at {step}") }
}

/// The build context as a tar stream, written by a blocking thread.
fn context_stream(root: std::path::PathBuf) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter { tx: tx.clone(), buffer: Vec::with_capacity(CHUNK) };
        let mut builder = tar::Builder::new(writer);
        let result = super::tree::append_to_tar(&mut builder, &root, Path::new(""), super::tree::Git::Keep)
            .and_then(|()| builder.into_inner().map_err(anyhow::Error::from))
            .and_then(|mut writer| std::io::Write::flush(&mut writer).map_err(anyhow::Error::from));
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
        }
    });
    tokio_stream_from(rx)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

const CHUNK: usize = 256 * 1024;

/// `Write` into a channel in chunks, for a blocking producer feeding an async consumer.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::other("the Docker daemon stopped reading the build context"))
    }
}
