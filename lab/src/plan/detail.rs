/// One thing a step may do, as `--dry-run` shows it.
#[derive(Clone, Debug)]
pub enum Detail {
    /// A command, with the condition under which it runs (`None`: always).
    Run { cmd: crate::shell::Cmd, when: Option<&'static str> },
    /// A Kubernetes API request.
    Api(String),
    /// Anything else worth showing: where a build happens, what a load skips.
    Note(String),
}

impl Detail {
    pub fn run(cmd: crate::shell::Cmd) -> Detail {
        Detail::Run { cmd, when: None }
    }
    pub fn when(cmd: crate::shell::Cmd, when: &'static str) -> Detail {
        Detail::Run { cmd, when: Some(when) }
    }
    pub fn api(text: impl Into<String>) -> Detail {
        Detail::Api(text.into())
    }
}
