//! What an extraction keeps of an entry's mode and owner.

use std::path::Path;

use backup_core::{Error, Result};
use tar::Header;

use crate::nofollow::Owner;

/// How an archive is extracted.
///
/// By default the restored entries belong to the user running the restore
/// and lose their setuid and setgid bits (and the sticky bit on files): a
/// restore must not plant privileged programs, even when run as root.
/// [`ExtractOptions::with_preserve_owners`] keeps the archive's numeric
/// owners and every mode bit, for restoring a system as it was; it needs
/// root.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    preserve_owners: bool,
}

impl ExtractOptions {
    /// The defaults: owners not applied, setuid/setgid bits dropped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the archive's numeric owners (uid, gid) and setuid, setgid and
    /// sticky bits. Extraction then refuses to start unless running as root.
    #[must_use]
    pub fn with_preserve_owners(mut self, preserve: bool) -> Self {
        self.preserve_owners = preserve;
        self
    }

    /// Whether the archive's owners and special mode bits are kept.
    pub fn preserve_owners(&self) -> bool {
        self.preserve_owners
    }

    /// Checks that this process can honour the options: keeping owners
    /// needs root. Extraction checks this itself before reading anything.
    ///
    /// # Errors
    /// [`Error::Config`] naming `preserve_owners` when the effective user is
    /// not root.
    pub fn check(&self) -> Result<()> {
        if self.preserve_owners && !rustix::process::geteuid().is_root() {
            return Err(Error::config(
                "preserve_owners",
                "keeping the archive's owners needs root (effective uid 0)",
            ));
        }
        Ok(())
    }

    /// The mode bits to apply to an entry whose archived mode is `mode`.
    pub(crate) fn kept_mode(&self, mode: u32, is_dir: bool) -> u32 {
        if self.preserve_owners {
            mode & 0o7777
        } else if is_dir {
            // Sticky on a folder only restricts deleting; setgid would hand
            // the archive's group to every new file.
            mode & 0o1777
        } else {
            mode & 0o777
        }
    }

    /// The owner to give the entry `rel`, when owners are kept.
    pub(crate) fn owner_of(&self, header: &Header, rel: &Path) -> Result<Option<Owner>> {
        if !self.preserve_owners {
            return Ok(None);
        }
        // -1 means "leave unchanged" to chown(2): never a real id.
        let id = |value: std::io::Result<u64>, what: &str| {
            value
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| Error::Target {
                    path: rel.to_owned(),
                    reason: format!("archive entry has an invalid {what}; refused"),
                })
        };
        Ok(Some(Owner {
            uid: id(header.uid(), "uid")?,
            gid: id(header.gid(), "gid")?,
        }))
    }
}
