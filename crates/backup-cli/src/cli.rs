//! The command line (DESIGN §4).

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

/// Encrypted, compressed, full backups of PostgreSQL databases and folders.
#[derive(Debug, Parser)]
#[command(name = "backupapps", version, about, propagate_version = true)]
pub struct Cli {
    /// Workspace folder (default: the current directory).
    #[arg(long, global = true, env = "BACKUPAPPS_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Machine-readable output (list, check, prune --dry-run).
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a workspace (with commented templates); --demo adds a runnable sample app.
    Init {
        /// Folder to create (default: --home or the current directory).
        dir: Option<PathBuf>,
        /// Also generate a key and a sample files profile, ready for `backup`.
        #[arg(long)]
        demo: bool,
    },
    /// End-to-end demo on embedded defaults: throwaway key, file store, sample data.
    Demo {
        /// Where to put the demo workspace (default: a new folder under the temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Generate a new OpenPGP key pair into secrets/ (importable by gpg).
    Keygen {
        /// Name for the key's user id and its file names (secrets/NAME.pub.asc).
        #[arg(long)]
        name: String,
        /// E-mail address for the user id.
        #[arg(long)]
        email: Option<String>,
        /// Leave the secret key without passphrase (not recommended).
        #[arg(long)]
        no_passphrase: bool,
    },
    /// Back up now (all profiles, an app, or app/profile), then prune.
    Backup {
        /// `app` or `app/profile`; none means all.
        targets: Vec<String>,
        /// Record this time for the backup (RFC 3339, or YYYY-MM-DD[THH:MM:SS] in UTC).
        #[arg(long, value_name = "TIME")]
        time: Option<String>,
        /// Do not apply retention after this backup.
        #[arg(long)]
        no_prune: bool,
    },
    /// Backups in the store: id, time, size, kept-by reasons, verified/restored marks.
    List {
        /// `app` or `app/profile`; none means all.
        targets: Vec<String>,
    },
    /// Restore a backup into a folder.
    Restore {
        /// `app/profile`.
        target: String,
        /// Backup id (default: the newest).
        #[arg(long, conflicts_with = "at")]
        id: Option<String>,
        /// The newest backup at or before this time.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Target folder (default: restore/<app>/<profile>/<id> in the workspace).
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// Download, decrypt and check backups (checksums only without a secret key).
    Verify {
        /// `app` or `app/profile`; none means all.
        targets: Vec<String>,
        /// Every complete backup, not only the newest.
        #[arg(long)]
        all: bool,
    },
    /// Apply retention: remove backups no rule keeps, and stale incomplete ones.
    Prune {
        /// `app` or `app/profile`; none means all.
        targets: Vec<String>,
        /// Show the plan, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
