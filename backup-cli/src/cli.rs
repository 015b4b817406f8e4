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
    /// Machine-readable output (list, check, backup, verify, prune, mirror,
    /// restore, copy, db list, schedule list, ls, find, diff, info, dump);
    /// refused by the other commands.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log lines as text (default) or JSON objects, for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
// Parsed once per run: a large `restore` variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
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
        /// Make a sign-only key: the backing-up host signs every backup with it.
        #[arg(long)]
        signing: bool,
    },
    /// Validate the configuration; test keys, stores, folders and databases; name what is missing.
    Check {
        /// `app` or `app/profile`; none means all.
        targets: Vec<String>,
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
        /// Also show the keys each backup is encrypted to (which backups
        /// still need an old secret key after a key rotation).
        #[arg(long)]
        recipients: bool,
        /// Also the backups under store prefixes no profile names any more
        /// (a removed profile file, a changed dest_prefix).
        #[arg(long)]
        all: bool,
        /// List this store instead of `[store] url` (e.g. a `copy_to` store):
        /// file:///path, swift://…, s3://… or az://….
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// Restore a backup into a folder, (postgres) into a new database, or
    /// (command profiles) into `restore_command`.
    Restore {
        /// `app/profile`.
        target: String,
        /// Backup id (default: the newest).
        #[arg(long, conflicts_with = "at")]
        id: Option<String>,
        /// The newest backup at or before this time: `latest`; a day
        /// (YYYY-MM-DD: up to its end, in the retention timezone); or an exact
        /// time (RFC 3339, or YYYY-MM-DDTHH:MM[:SS] in UTC).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Target folder (default: restore/<app>/<profile>/<id> in the workspace);
        /// postgres backups are written there as <database>.pgdump, command
        /// backups as <profile>.out (or restore_file_name).
        #[arg(long, value_name = "DIR", conflicts_with = "to_db")]
        to: Option<PathBuf>,
        /// Postgres: restore into this new database on the profile's server.
        #[arg(long, value_name = "NAME")]
        to_db: Option<String>,
        /// With --to-db: replace an existing database, only once the restore succeeded
        /// (an empty one takes the restore directly, in one transaction).
        #[arg(long, requires = "to_db")]
        replace: bool,
        /// Files: keep the archive's owners and setuid/setgid bits (root only;
        /// by default both are dropped).
        #[arg(long, conflicts_with = "to_db")]
        preserve_owners: bool,
        /// Command profiles: feed the backup into the profile's
        /// `restore_command` (its stdin) instead of writing a file.
        #[arg(long, conflicts_with_all = ["to", "to_db", "preserve_owners"])]
        to_command: bool,
        #[command(flatten)]
        db: DbRestoreArgs,
        #[command(flatten)]
        files: FilesRestoreArgs,
    },
    /// Download, decrypt and check backups (checksums only without a secret key).
    Verify {
        /// `app` or `app/profile`; none means all.
        targets: Vec<String>,
        /// Every trusted backup, not only the newest (and name every untrusted one).
        #[arg(long)]
        all: bool,
        /// Restore drill: fully verify the newest trusted backup and one
        /// older trusted backup picked at random (needs the secret key);
        /// what `[verify] schedule` runs.
        #[arg(long, conflicts_with = "all")]
        drill: bool,
    },
    /// Refresh test databases from the newest backup, safely (postgres profiles with [mirror]).
    Mirror {
        /// `app` or `app/profile`; none means every profile with a [mirror].
        targets: Vec<String>,
        /// Mirror this backup instead of the newest.
        #[arg(long, value_name = "ID")]
        backup: Option<String>,
        /// Show the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the profiles' schedules, or print them as crontab lines.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Print shell completions for bash, zsh, fish, …
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff), or write every page with --out-dir.
    Man {
        /// The subcommand whose page to print (`db list`); none: the main page.
        subcommand: Vec<String>,
        /// Write backupapps.1 and backupapps-<subcommand>.1 for every
        /// subcommand (nested ones too) into DIR instead.
        #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
        out_dir: Option<PathBuf>,
    },
    /// Database utilities on the profiles' servers.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Copy trusted backups to a second store (an off-site copy): checked,
    /// idempotent (what is complete there is skipped), resumable.
    ///
    /// Default: every trusted backup of each selected profile, like `restic
    /// copy` — cheap when most are there already (one manifest read each).
    /// Untrusted or damaged backups are named and not copied (exit 1).
    Copy {
        /// `app` or `app/profile`; none means all.
        targets: Vec<String>,
        /// The destination: file:///path, swift://container[/prefix],
        /// s3://bucket[/prefix] or az://container[/prefix] (credentials from
        /// `[store.swift]`, `[store.s3]`, `[store.azure]` and the environment).
        #[arg(long, value_name = "URL")]
        to_store: String,
        /// Only this backup (id or unique prefix; give its app/profile as TARGET).
        #[arg(long, value_name = "ID", conflicts_with_all = ["all", "newest"])]
        id: Option<String>,
        /// Every trusted backup (the default).
        #[arg(long, conflicts_with = "newest")]
        all: bool,
        /// Only the newest N trusted backups of each profile.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        newest: Option<u32>,
        /// Objects copied at once (memory is about this many chunks).
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        parallelism: u32,
    },
    /// The entries of one backup, read from its index (like `restic ls -l`).
    Ls {
        /// `app/profile`.
        target: String,
        /// Only what is at or under PATH (e.g. /srv/app/media).
        path: Option<PathBuf>,
        /// Backup id or unique prefix (default: the newest).
        #[arg(long, conflicts_with = "at")]
        id: Option<String>,
        /// The newest backup at or before this time (as for restore).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Which backups hold entries matching a glob, newest first, with size and mtime.
    Find {
        /// `app/profile`.
        target: String,
        /// A glob: `*.jpg` matches names anywhere, `srv/app/**/x` whole paths.
        pattern: String,
        /// Every trusted backup (the default: `find` answers which backups
        /// hold a path); kept for the spelling `find T GLOB --all`.
        #[arg(long, hide = true)]
        all: bool,
        /// Only this backup (id or unique prefix).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
    /// Entries added, removed or changed (type, size, mtime, mode) between two backups.
    Diff {
        /// `app/profile`.
        target: String,
        /// The older backup (id or unique prefix).
        id1: String,
        /// The newer backup (id or unique prefix).
        id2: String,
    },
    /// One backup in full: times, sizes, chunks, source details, keys, signer, marks, retention.
    Info {
        /// `app/profile`.
        target: String,
        /// Backup id or unique prefix (default: the newest).
        #[arg(long, conflicts_with = "at")]
        id: Option<String>,
        /// The newest backup at or before this time (as for restore).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Write one file of a files backup to stdout, fetching only its chunks.
    Dump {
        /// `app/profile`.
        target: String,
        /// The file's path as it was backed up (e.g. /srv/app/config.yml).
        path: PathBuf,
        /// Backup id or unique prefix (default: the newest).
        #[arg(long, conflicts_with = "at")]
        id: Option<String>,
        /// The newest backup at or before this time (as for restore).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
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

/// Where and as whom `restore --to-db` connects, and who owns the result:
/// over the profile's `[restore]`, which defaults to its `[source]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DbRestoreArgs {
    /// With --to-db: server host (default: [restore] host, else [source] host).
    #[arg(long, value_name = "HOST", requires = "to_db")]
    pub host: Option<String>,
    /// With --to-db: server port.
    #[arg(long, value_name = "PORT", requires = "to_db")]
    pub port: Option<u16>,
    /// With --to-db: role that restores (needs CREATEDB; its password from
    /// PGPASSWORD or ~/.pgpass, or [restore] password_file).
    #[arg(long, value_name = "ROLE", requires = "to_db")]
    pub user: Option<String>,
    /// With --to-db: ROLE owns the new database and every restored object
    /// (the restoring role must be a member of ROLE).
    #[arg(long, value_name = "ROLE", requires = "to_db", conflicts_with = "no_owner")]
    pub owner: Option<String>,
    /// With --to-db: skip the dump's owners; objects belong to the restoring role.
    #[arg(long, requires = "to_db")]
    pub no_owner: bool,
    /// Postgres: restore only this table (exact name, any schema unless
    /// --schema is given too; definition and rows, as pg_restore -t); repeatable.
    #[arg(long, value_name = "TABLE", conflicts_with = "replace")]
    pub table: Vec<String>,
    /// Postgres: restore only the objects of this schema (pg_restore -n);
    /// with --table, only those tables of it; repeatable.
    #[arg(long, value_name = "SCHEMA", conflicts_with = "replace")]
    pub schema: Vec<String>,
}

/// Which entries of a files backup `restore` brings back.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilesRestoreArgs {
    /// Files: restore only entries matching GLOB (a folder brings its
    /// contents; `*.jpg` matches names anywhere, `srv/app/**/x` whole
    /// paths), fetching only the chunks that hold them; several globs may
    /// follow one --include, and it may be repeated.
    #[arg(long, value_name = "GLOB", num_args = 1.., conflicts_with_all = ["to_db", "to_command"])]
    pub include: Vec<std::ffi::OsString>,
    /// Files: leave out entries matching GLOB (and what is in such folders);
    /// several globs may follow one --exclude, and it may be repeated.
    #[arg(long, value_name = "GLOB", num_args = 1.., conflicts_with_all = ["to_db", "to_command"])]
    pub exclude: Vec<std::ffi::OsString>,
}

/// Which server of a postgres profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Server {
    /// The `[source]` server.
    Prod,
    /// The `[mirror]` server.
    Test,
}

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// List the databases on the server, with sizes.
    List {
        /// prod or test.
        server: Server,
        /// Which profile's server, when profiles use different ones.
        #[arg(long, value_name = "APP/PROFILE")]
        target: Option<String>,
    },
    /// Connect to DB and run SELECT 1.
    Ping {
        /// prod or test.
        server: Server,
        /// Database name.
        database: String,
        /// Which profile's server.
        #[arg(long, value_name = "APP/PROFILE")]
        target: Option<String>,
    },
    /// pg_dump -Fc of DB into FILE.
    Dump {
        /// prod or test.
        server: Server,
        /// Database name.
        database: String,
        /// Output file (must not exist).
        file: PathBuf,
        /// Which profile's server.
        #[arg(long, value_name = "APP/PROFILE")]
        target: Option<String>,
    },
    /// Restore a custom-format dump into the [mirror] test database, safely.
    RestoreToTest {
        /// A pg_dump -Fc file.
        file: PathBuf,
        /// Which profile's [mirror].
        #[arg(long, value_name = "APP/PROFILE")]
        target: Option<String>,
    },
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `schedule` subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Long-running scheduler: fires each profile's `schedule`, `[mirror] schedule` and
    /// `[verify] schedule`, at most `[schedule] max_concurrent` jobs at once.
    Run,
    /// Print crontab lines equivalent to the configuration.
    Crontab,
    /// The scheduled jobs (backup, mirror, verify drill) and their next fire times.
    List,
}
