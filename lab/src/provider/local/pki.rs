//! The cluster's PKI, made in-process: one CA, the apiserver's serving
//! certificate, a client certificate per component, the kubelet's serving
//! certificate and the service-account key pair. Keys are ECDSA P-256.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate lab makes: its file name, subject and names.
pub struct Leaf {
    pub file: &'static str,
    pub common_name: String,
    pub organization: Option<&'static str>,
    pub server: bool,
    pub client: bool,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Leaf {
    pub fn client(file: &'static str, common_name: &str, organization: Option<&'static str>) -> Leaf {
        let common_name = common_name.to_string();
        Leaf { file, common_name, organization, server: false, client: true, dns: vec![], ips: vec![] }
    }

    /// Usable as a client too (etcd's peers present their serving certificate).
    pub fn also_client(mut self) -> Leaf {
        self.client = true;
        self
    }

    /// A serving certificate for these names and addresses.
    pub fn server(file: &'static str, common_name: &str, dns: &[&str], ips: Vec<IpAddr>) -> Leaf {
        let dns = dns.iter().map(|d| d.to_string()).collect();
        Leaf { file, common_name: common_name.to_string(), organization: None, server: true, client: false, dns, ips }
    }
}

/// Write `ca.crt`/`ca.key`, `<leaf>.crt`/`<leaf>.key` for each leaf, and
/// `sa.key`/`sa.pub` into `dir`; keys are readable by root alone.
pub fn write(dir: &Path, leaves: &[Leaf]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("lab-local-ca", None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("making the cluster CA")?;
    save(dir, "ca.crt", &ca.pem(), false)?;
    save(dir, "ca.key", &ca_key_pem, true)?;
    for leaf in leaves {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&leaf.common_name, leaf.organization);
        params.subject_alt_names = leaf
            .dns
            .iter()
            .map(|d| SanType::DnsName(d.clone().try_into().expect("lab's DNS names are valid")))
            .chain(leaf.ips.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = [
            leaf.server.then_some(ExtendedKeyUsagePurpose::ServerAuth),
            leaf.client.then_some(ExtendedKeyUsagePurpose::ClientAuth),
        ]
        .into_iter()
        .flatten()
        .collect();
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca).with_context(|| format!("making the certificate {}", leaf.file))?;
        save(dir, &format!("{}.crt", leaf.file), &cert.pem(), false)?;
        save(dir, &format!("{}.key", leaf.file), &key.serialize_pem(), true)?;
    }
    let service_accounts = KeyPair::generate()?;
    save(dir, "sa.key", &service_accounts.serialize_pem(), true)?;
    save(dir, "sa.pub", &service_accounts.public_key_pem(), false)?;
    Ok(())
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

fn save(dir: &Path, file: &str, text: &str, secret: bool) -> anyhow::Result<()> {
    crate::state::write_new(&dir.join(file), text, if secret { 0o600 } else { 0o644 })
}
