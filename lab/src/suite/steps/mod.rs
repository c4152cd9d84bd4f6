//! Step definitions, one module per domain.

pub mod fio;
pub mod host;
