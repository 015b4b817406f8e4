use std::path::PathBuf;

use serde::Deserialize;

/// Settings of a filesystem store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConfig {
    /// Root folder of the store; created when missing.
    pub root: PathBuf,
}
