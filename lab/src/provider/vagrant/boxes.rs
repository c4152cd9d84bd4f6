//! The box the VMs boot from: a file the scenario names, added to lab's own
//! Vagrant home when missing or older than the file.

use super::Vagrant;
use crate::plan::{Step, Target};

impl Vagrant {
    /// Adds the scenario's box file to lab's Vagrant home when the box is
    /// missing there or older than the file (a rebuilt box).
    pub(super) fn add_box_step(&self, file: &std::path::Path) -> Step {
        let name = &self.options.box_name;
        let added = format!(
            "{}/boxes/{}/0/{}/metadata.json",
            Self::vagrant_home(),
            name.replace('/', "-VAGRANTSLASH-"),
            self.options.provider.as_str()
        );
        let add = self.vagrant().args(["box", "add", "--force", "--name", name]).arg(file.display().to_string());
        // The `vagrant box add` command's words follow the parameters, its environment first.
        let script = super::script!("add-box.sh")
            .args([file.display().to_string(), Self::vagrant_home(), added, name.clone()])
            .arg("env")
            .args(add.env.iter().map(|(k, v)| format!("{k}={v}")))
            .args(add.argv());
        Step::run(
            format!("add box {name} from {} (when missing or older)", self.box_file_shown()),
            Target::Host,
            script,
        )
    }

    fn box_file_shown(&self) -> String {
        self.box_file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()
    }

    /// The kernel the domain probe boots: the box's own when it has one.
    pub(super) fn box_kernel(&self) -> String {
        format!(
            "{}/boxes/{}/0/libvirt/vmlinuz",
            Self::vagrant_home(),
            self.options.box_name.replace('/', "-VAGRANTSLASH-")
        )
    }
}
