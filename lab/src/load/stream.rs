//! One `docker save` stream, rewritten on the fly into an OCI image layout
//! and fanned out to every node's `ctr images import -` at once. Each node
//! gets only the layers its content store lacks: containerd stores blobs by
//! the digest of what arrives, so a layer already there need not be sent
//! again, and the manifest `lab` writes at the end refers to it all the same.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// What Docker says about an image before it is exported.
#[derive(Clone, Debug)]
pub struct ImageFacts {
    /// The name containerd gets: `docker.io/library/x:tag`.
    pub containerd_ref: String,
    /// The config digest (Docker's image ID), `sha256:…`.
    pub id: String,
    /// Uncompressed layer digests, base first.
    pub diff_ids: Vec<String>,
    pub architecture: String,
    pub os: String,
}

/// One node's side of the fan-out.
pub struct Receiver {
    pub node: String,
    /// Blob digests the node already holds.
    pub has: HashSet<String>,
    pub tx: mpsc::Sender<Bytes>,
}

/// What each node was sent; `None` when its import stopped reading.
pub type Sent = BTreeMap<String, Option<u64>>;

/// Docker ≤ 24 names layers in `docker save` by a v1 id derived from the layer
/// chain; the digest is only known once the layer has been read. `lab`
/// remembers the pairs (content-derived, so never stale), which lets a later
/// load skip a layer before reading it.
#[derive(Default)]
pub struct LayerNames {
    path: Option<PathBuf>,
    digests: BTreeMap<String, String>,
}

impl LayerNames {
    pub fn load(path: PathBuf) -> LayerNames {
        let digests =
            std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        LayerNames { path: Some(path), digests }
    }

    pub fn save(&self) {
        if let Some(path) = &self.path {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let tmp = path.with_extension("tmp");
            if let Ok(text) = serde_json::to_string(&self.digests)
                && std::fs::write(&tmp, text).is_ok()
            {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    }
}

/// Read `export` (a `docker save` tar), send each receiver an OCI layout with
/// the blobs it lacks, then close their inputs.
pub async fn fan_out<S, E>(
    export: S,
    image: &ImageFacts,
    mut receivers: Vec<Receiver>,
    names: &mut LayerNames,
) -> anyhow::Result<Sent>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut input = TarInput { stream: export, buffer: BytesMut::new() };
    let mut sent: Sent = receivers.iter().map(|r| (r.node.clone(), Some(0))).collect();
    let config_names = [format!("{}.json", hex(&image.id)), format!("blobs/sha256/{}", hex(&image.id))];
    let mut sizes: HashMap<String, u64> = HashMap::new();
    let mut config: Option<Bytes> = None;
    let mut long_name: Option<String> = None;
    let mut blob_number = 0;
    while let Some(header) = input.header().await? {
        let name = long_name.take().unwrap_or_else(|| header.name.clone());
        let size = header.size;
        match header.kind {
            // PAX and GNU long names: the next entry's real name.
            b'x' | b'L' => {
                let data = input.data(size).await?;
                long_name = if header.kind == b'L' {
                    Some(String::from_utf8_lossy(&data).trim_end_matches('\0').to_string())
                } else {
                    pax_path(&data)
                };
                continue;
            }
            b'0' | b'\0' => {}
            _ => {
                input.skip(size).await?;
                continue;
            }
        }
        if config_names.contains(&name) {
            let data = input.data(size).await?;
            config = Some(data);
            continue;
        }
        let known_digest = if let Some(dir) = name.strip_suffix("/layer.tar") {
            names.digests.get(dir).cloned()
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            Some(format!("sha256:{hex}"))
        } else {
            // VERSION, v1 json, manifest.json, repositories, index.json: lab writes its own.
            input.skip(size).await?;
            continue;
        };
        // Which receivers need this blob: all, unless its digest is known and they hold it.
        let wanted: Vec<usize> = (0..receivers.len())
            .filter(|&i| known_digest.as_ref().is_none_or(|d| !receivers[i].has.contains(d)))
            .collect();
        blob_number += 1;
        let entry_name = format!("blobs/sha256/lab-{blob_number}");
        send_all(&mut receivers, &wanted, tar_header(&entry_name, size), &mut sent).await;
        // A layer whose digest is known needs no hashing: containerd checks
        // what it is sent against the manifest anyway.
        let mut digest = match &known_digest {
            Some(known) => LayerDigest::Known(known.clone()),
            None => LayerDigest::Hashing(Sha256::new()),
        };
        let mut left = size;
        while left > 0 {
            let chunk = input.chunk(left).await?;
            left -= chunk.len() as u64;
            if let LayerDigest::Hashing(hasher) = &mut digest {
                hasher.update(&chunk);
            }
            send_all(&mut receivers, &wanted, chunk, &mut sent).await;
        }
        input.skip_padding(size).await?;
        send_all(&mut receivers, &wanted, padding(size), &mut sent).await;
        let digest = match digest {
            LayerDigest::Known(known) => known,
            LayerDigest::Hashing(hasher) => format!("sha256:{:x}", hasher.finalize()),
        };
        if let Some(dir) = name.strip_suffix("/layer.tar") {
            names.digests.insert(dir.to_string(), digest.clone());
        }
        sizes.insert(digest, size);
    }
    let Some(config) = config else {
        bail!("the export of {} has no image config {}", image.containerd_ref, image.id);
    };
    let everyone: Vec<usize> = (0..receivers.len()).collect();
    for (name, data) in layout(image, &config, &sizes)? {
        send_all(&mut receivers, &everyone, tar_header(&name, data.len() as u64), &mut sent).await;
        let size = data.len() as u64;
        send_all(&mut receivers, &everyone, data, &mut sent).await;
        send_all(&mut receivers, &everyone, padding(size), &mut sent).await;
    }
    send_all(&mut receivers, &everyone, Bytes::from(vec![0u8; 1024]), &mut sent).await;
    Ok(sent)
}

/// The files that make the blobs an image: config, manifest, index.
fn layout(image: &ImageFacts, config: &Bytes, sizes: &HashMap<String, u64>) -> anyhow::Result<Vec<(String, Bytes)>> {
    let mut layers = Vec::new();
    for diff_id in &image.diff_ids {
        let Some(size) = sizes.get(diff_id) else {
            bail!("the export of {} lacks layer {diff_id}", image.containerd_ref);
        };
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": diff_id,
            "size": size,
        }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": image.id,
            "size": config.len(),
        },
        "layers": layers,
    })
    .to_string();
    let tag = image.containerd_ref.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{:x}", Sha256::digest(manifest.as_bytes())),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": image.containerd_ref,
                "org.opencontainers.image.ref.name": tag,
            },
            "platform": { "architecture": image.architecture, "os": image.os },
        }],
    })
    .to_string();
    Ok(vec![
        ("oci-layout".into(), Bytes::from_static(br#"{"imageLayoutVersion":"1.0.0"}"#)),
        (format!("blobs/sha256/{}", hex(&image.id)), config.clone()),
        ("blobs/sha256/lab-manifest".into(), Bytes::from(manifest)),
        ("index.json".into(), Bytes::from(index)),
    ])
}

/// Send to the receivers in `to`; one whose import stopped reading is dropped.
async fn send_all(receivers: &mut [Receiver], to: &[usize], data: Bytes, sent: &mut Sent) {
    if data.is_empty() {
        return;
    }
    for &i in to {
        let receiver = &receivers[i];
        let Some(Some(count)) = sent.get_mut(&receiver.node) else { continue };
        if receiver.tx.send(data.clone()).await.is_ok() {
            *count += data.len() as u64;
        } else {
            sent.insert(receiver.node.clone(), None);
        }
    }
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn tar_header(name: &str, size: u64) -> Bytes {
    let mut header = tar::Header::new_ustar();
    // Names lab writes are short ASCII; set_path cannot fail on them.
    let _ = header.set_path(name);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Bytes::copy_from_slice(header.as_bytes())
}

fn padding(size: u64) -> Bytes {
    let rest = (512 - size % 512) % 512;
    Bytes::from(vec![0u8; rest as usize])
}

/// The `path` record of a PAX extended header.
fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.lines().find_map(|record| {
        let (_, kv) = record.split_once(' ')?;
        kv.strip_prefix("path=").map(str::to_string)
    })
}

enum LayerDigest {
    Known(String),
    Hashing(Sha256),
}

/// How much of a layer is sent at once.
const PIECE: usize = 1 << 20;

struct Header {
    name: String,
    size: u64,
    kind: u8,
}

/// Reads a tar archive from a byte stream, header by header.
struct TarInput<S> {
    stream: S,
    buffer: BytesMut,
}

impl<S, E> TarInput<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    async fn fill(&mut self, at_least: usize) -> anyhow::Result<bool> {
        while self.buffer.len() < at_least {
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => bail!("reading the image export from Docker: {e}"),
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The next entry's header; `None` at the end-of-archive block or the stream's end.
    async fn header(&mut self) -> anyhow::Result<Option<Header>> {
        if !self.fill(512).await? {
            return Ok(None);
        }
        let block = self.buffer.split_to(512);
        if block.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let field = |range: std::ops::Range<usize>| {
            let raw = &block[range];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        };
        let mut name = field(0..100);
        if &block[257..262] == b"ustar" {
            let prefix = field(345..500);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let size_field = field(124..136);
        let size = u64::from_str_radix(size_field.trim(), 8)
            .with_context(|| format!("tar entry {name}: bad size field {size_field:?}"))?;
        Ok(Some(Header { name: name.trim_start_matches("./").to_string(), size, kind: block[156] }))
    }

    /// The next piece of the current entry, at most `left` bytes: gathered
    /// into large pieces, as every piece costs a wake-up on every node.
    async fn chunk(&mut self, left: u64) -> anyhow::Result<Bytes> {
        let want = left.min(PIECE as u64) as usize;
        if !self.fill(want).await? && self.buffer.is_empty() {
            bail!("the image export ended in the middle of an entry");
        }
        let n = self.buffer.len().min(want);
        Ok(self.buffer.split_to(n).freeze())
    }

    /// A whole (small) entry and its padding.
    async fn data(&mut self, size: u64) -> anyhow::Result<Bytes> {
        if !self.fill(size as usize).await? {
            bail!("the image export ended in the middle of an entry");
        }
        let data = self.buffer.split_to(size as usize).freeze();
        self.skip_padding(size).await?;
        Ok(data)
    }

    async fn skip(&mut self, size: u64) -> anyhow::Result<()> {
        let mut left = size;
        while left > 0 {
            left -= self.chunk(left).await?.len() as u64;
        }
        self.skip_padding(size).await
    }

    async fn skip_padding(&mut self, size: u64) -> anyhow::Result<()> {
        let rest = ((512 - size % 512) % 512) as usize;
        if rest > 0 {
            if !self.fill(rest).await? {
                bail!("the image export ended in the middle of an entry");
            }
            let _ = self.buffer.split_to(rest);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A docker-save-shaped archive: two layers in v1 folders, the config, manifest.json.
    fn legacy_archive(layers: &[&[u8]], config: &[u8], id: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_path(name).unwrap();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        };
        for (i, layer) in layers.iter().enumerate() {
            add(&format!("v1dir{i}/VERSION"), b"1.0");
            add(&format!("v1dir{i}/layer.tar"), layer);
        }
        add(&format!("{}.json", hex(id)), config);
        add("manifest.json", b"[]");
        builder.into_inner().unwrap()
    }

    fn digest(data: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(data))
    }

    /// Blob digests of the entries an OCI archive holds, and its index.
    fn read_layout(data: &[u8]) -> (Vec<String>, serde_json::Value) {
        let mut archive = tar::Archive::new(data);
        let mut blobs = Vec::new();
        let mut index = serde_json::Value::Null;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            if name == "index.json" {
                index = serde_json::from_slice(&content).unwrap();
            } else if name.starts_with("blobs/") {
                blobs.push(digest(&content));
            }
        }
        (blobs, index)
    }

    async fn run(
        archive: Vec<u8>,
        image: &ImageFacts,
        has: Vec<HashSet<String>>,
        names: &mut LayerNames,
    ) -> (Sent, Vec<Vec<u8>>) {
        let export = futures_util::stream::iter(
            archive.chunks(700).map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c))).collect::<Vec<_>>(),
        );
        let mut receivers = Vec::new();
        let mut collectors = Vec::new();
        for (i, has) in has.into_iter().enumerate() {
            let (tx, mut rx) = mpsc::channel::<Bytes>(4);
            receivers.push(Receiver { node: format!("node{i}"), has, tx });
            collectors.push(tokio::spawn(async move {
                let mut all = Vec::new();
                while let Some(chunk) = rx.recv().await {
                    all.extend_from_slice(&chunk);
                }
                all
            }));
        }
        let sent = fan_out(export, image, receivers, names).await.unwrap();
        let mut outputs = Vec::new();
        for c in collectors {
            outputs.push(c.await.unwrap());
        }
        (sent, outputs)
    }

    #[tokio::test]
    async fn nodes_get_a_layout_with_only_the_layers_they_lack() {
        let (base, top) = (vec![1u8; 3000], vec![2u8; 100]);
        let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
        let image = ImageFacts {
            containerd_ref: "docker.io/library/app:lab-1".into(),
            id: digest(&config),
            diff_ids: vec![digest(&base), digest(&top)],
            architecture: "amd64".into(),
            os: "linux".into(),
        };
        let archive = legacy_archive(&[&base, &top], &config, &image.id);
        let mut names = LayerNames::default();

        // First load: the v1 folder names are unknown, so every node gets every layer.
        let has_base: HashSet<String> = [digest(&base)].into();
        let (sent, outputs) = run(archive.clone(), &image, vec![HashSet::new(), has_base.clone()], &mut names).await;
        for out in &outputs {
            let (blobs, index) = read_layout(out);
            assert!(blobs.contains(&digest(&base)) && blobs.contains(&digest(&top)) && blobs.contains(&image.id));
            assert_eq!(index["manifests"][0]["annotations"]["io.containerd.image.name"], "docker.io/library/app:lab-1");
        }
        assert_eq!(sent["node0"], sent["node1"]);

        // Now the names are known: the node holding the base layer is not sent it.
        let (sent, outputs) = run(archive, &image, vec![HashSet::new(), has_base], &mut names).await;
        let (blobs, _) = read_layout(&outputs[1]);
        assert!(!blobs.contains(&digest(&base)) && blobs.contains(&digest(&top)), "{blobs:?}");
        let saved = sent["node0"].unwrap() - sent["node1"].unwrap();
        assert_eq!(saved, 512 + 3072, "the base layer's header and padded data");
    }

    #[tokio::test]
    async fn an_export_without_a_layer_the_image_lists_is_an_error() {
        let config = b"{}".to_vec();
        let image = ImageFacts {
            containerd_ref: "docker.io/library/app:lab-1".into(),
            id: digest(&config),
            diff_ids: vec![digest(b"missing")],
            architecture: "amd64".into(),
            os: "linux".into(),
        };
        let archive = legacy_archive(&[], &config, &image.id);
        let export = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(archive))]);
        let (tx, _rx) = mpsc::channel(64);
        let receivers = vec![Receiver { node: "n".into(), has: HashSet::new(), tx }];
        let err = fan_out(export, &image, receivers, &mut LayerNames::default()).await.unwrap_err();
        assert!(err.to_string().contains("lacks layer"), "{err}");
    }
}
