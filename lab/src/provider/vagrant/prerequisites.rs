//! What Vagrant VMs need of this machine, for `lab doctor` and `lab up`:
//! vagrant, its provider plugin, and for libvirt a daemon that answers, the
//! box and how the guests will run.

use crate::findings::{Finding, Machine, Tool};
use crate::scenario::{DomainType, Scenario, VagrantProvider};
use crate::shell::Cmd;

/// Vagrant's provider plugin, and what libvirt VMs need of this host.
pub async fn prerequisites(scenario: &Scenario, machine: &Machine<'_>) -> Vec<Finding> {
    let mut findings = vec![vagrant_provider(machine, scenario).await];
    findings.extend(vagrant_libvirt_host(machine, scenario).await);
    findings
}

/// vagrant boots the VMs; kubectl reaches their cluster.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "vagrant",
            version: &["--version"],
            required: true,
            why: "boots the VMs",
            install: "apt-get install vagrant",
        },
        super::super::kubectl_tool(true),
    ]
}

async fn vagrant_provider(machine: &Machine<'_>, scenario: &Scenario) -> Finding {
    let provider = scenario.cluster.vagrant.clone().unwrap_or_default().provider;
    match provider {
        VagrantProvider::Libvirt => {
            let plugins = machine.version(Cmd::sh("vagrant plugin list | grep vagrant-libvirt")).await;
            match plugins {
                Some(line) => Finding::ok("vagrant-libvirt", line),
                None => Finding::missing(
                    "vagrant-libvirt",
                    "the libvirt provider plugin is not installed",
                    "apt-get install vagrant-libvirt libvirt-daemon-system",
                ),
            }
        }
        VagrantProvider::Virtualbox => match machine.version(Cmd::new("VBoxManage").arg("--version")).await {
            Some(version) => Finding::ok("virtualbox", version),
            None => {
                Finding::missing("virtualbox", "VBoxManage not found", "install VirtualBox, or use provider: libvirt")
            }
        },
    }
}

/// What lab's libvirt VMs need of this host: a libvirtd that answers, the
/// offline box file, and how the guests will run (KVM or emulation).
async fn vagrant_libvirt_host(machine: &Machine<'_>, scenario: &Scenario) -> Vec<Finding> {
    let options = scenario.cluster.vagrant.clone().unwrap_or_default();
    if options.provider != VagrantProvider::Libvirt {
        return Vec::new();
    }
    let mut findings = Vec::new();
    findings.push(match machine.version(Cmd::new("virsh").args(["-c", "qemu:///system", "version"])).await {
        Some(_) => Finding::ok("libvirtd", "answers on qemu:///system"),
        None => Finding::missing(
            "libvirtd",
            "nothing answers on qemu:///system",
            "start it: `systemctl start libvirtd`, or `virtlogd -d && libvirtd -d` where no init system runs",
        ),
    });
    findings.push(match &options.box_file {
        Some(file) => {
            let path = scenario.path_of(file);
            if path.is_file() {
                Finding::ok("vagrant box file", path.display().to_string())
            } else {
                Finding::missing(
                    "vagrant box file",
                    format!("{} does not exist", path.display()),
                    "`bash .ci/vm/box` in lab's repository assembles it offline",
                )
            }
        }
        None => Finding::warn(
            "vagrant box",
            format!("{} comes from Vagrant Cloud and the nodes install Kubernetes from the internet", options.box_name),
            "set cluster.vagrant.boxFile to lab's offline box (`bash .ci/vm/box`) where there is no internet",
        ),
    });
    let kvm_usable = machine.root.join("dev/kvm").exists();
    findings.push(match (options.driver, kvm_usable) {
        (DomainType::Qemu, _) => {
            Finding::ok("VM acceleration", "driver: qemu, software emulation (several times slower)")
        }
        (_, true) => Finding::ok(
            "VM acceleration",
            "/dev/kvm is present; `lab up` checks that a kernel really boots under KVM before using it",
        ),
        (DomainType::Kvm, false) => Finding::missing(
            "VM acceleration",
            "driver: kvm, but this host has no /dev/kvm",
            "set cluster.vagrant.driver: auto (or qemu) to run the VMs under emulation",
        ),
        (DomainType::Auto, false) => Finding::warn(
            "VM acceleration",
            "no /dev/kvm: the VMs run under software emulation, several times slower",
            "enable KVM (nested virtualisation on a VM host) for faster VMs",
        ),
    });
    findings
}
