//! The commented templates `init` writes (kept beside the crate so that they
//! are read, and tested, as real configuration).

/// `backupapps.toml`, with `__STORE_URL__` to fill in.
pub const GLOBAL: &str = include_str!("../templates/backupapps.toml");
/// `apps/templates/files.toml`.
pub const FILES: &str = include_str!("../templates/files.toml");
/// `apps/templates/postgres.toml`.
pub const POSTGRES: &str = include_str!("../templates/postgres.toml");
/// `apps/templates/command.toml`.
pub const COMMAND: &str = include_str!("../templates/command.toml");
