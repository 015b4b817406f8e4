use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What to do when a file cannot be read while it is archived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnreadable {
    /// Fail the backup (default): a backup that silently lacks files is worse
    /// than a failed one that someone looks at.
    #[default]
    Fail,
    /// Skip the file, log a warning, and record the count in the manifest.
    Warn,
}

/// Settings of a `kind = "files"` profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FilesConfig {
    /// Folders (or single files) to back up; absolute, or relative to the workspace.
    pub paths: Vec<PathBuf>,
    /// Glob patterns matched against each entry's full path and its file name:
    /// `*.tmp`, `/srv/app/cache`, `**/node_modules`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `fail` (default) or `warn`.
    #[serde(default)]
    pub on_unreadable: OnUnreadable,
}

impl FilesConfig {
    /// Back up `paths`, excluding nothing, failing on unreadable files.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        FilesConfig {
            paths,
            exclude: Vec::new(),
            on_unreadable: OnUnreadable::Fail,
        }
    }

    /// Leave out entries matching these globs.
    #[must_use]
    pub fn with_exclude(mut self, exclude: Vec<String>) -> Self {
        self.exclude = exclude;
        self
    }

    /// What to do with files that cannot be read.
    #[must_use]
    pub fn with_on_unreadable(mut self, on_unreadable: OnUnreadable) -> Self {
        self.on_unreadable = on_unreadable;
        self
    }
}
