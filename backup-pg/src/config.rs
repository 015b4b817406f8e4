use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[source]` of a `kind = "postgres"` profile (and `[mirror]`'s connection
/// keys). Anything not given comes from libpq's environment (`PGHOST`,
/// `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`) and `~/.pgpass`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PgConfig {
    /// Server host name, IP, or Unix socket folder.
    pub host: Option<String>,
    /// Server port (default 5432).
    pub port: Option<u16>,
    /// Role to connect as.
    pub user: Option<String>,
    /// Database to back up.
    pub database: Option<String>,
    /// File holding the password (first line). Never put a password in the TOML.
    pub password_file: Option<PathBuf>,
    /// libpq `sslmode`: `disable`, `prefer` (default), `require`, …
    pub sslmode: Option<String>,
    /// Tables left out of the dump (`pg_dump --exclude-table`), e.g. `"public.sessions"`.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Further `pg_dump` options, e.g. `["--no-comments"]`.
    #[serde(default)]
    pub pg_dump_options: Vec<String>,
    /// Also store roles and tablespaces (`pg_dumpall --globals-only`).
    #[serde(default)]
    pub globals: bool,
    /// Folder with `pg_dump`/`pg_restore`; default: the newest
    /// `/usr/lib/postgresql/*/bin`, else `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// Database to connect to for CREATE/DROP/RENAME DATABASE (default `postgres`).
    pub maintenance_db: Option<String>,
}

/// `[restore]` of a postgres profile: how `restore --to-db` connects and who
/// owns what it restores. Connection keys left out are taken from `[source]`,
/// so a profile without `[restore]` restores onto its own server as before;
/// naming another `user` is what lets backup and restore run as different,
/// least-privileged roles.
///
/// The keys repeat [`PgConfig`]'s on purpose (see `MirrorConfig`): a typo in
/// `[restore]` must be an error, not a silently ignored key.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// Server host (default: `[source] host`).
    pub host: Option<String>,
    /// Server port (default: `[source] port`).
    pub port: Option<u16>,
    /// Role that restores; needs CREATEDB, and membership of `owner`/`role`
    /// when they are given (default: `[source] user`).
    pub user: Option<String>,
    /// File with the password of `user`. Default: `[source] password_file`
    /// when `user` is `[source]`'s role, else libpq's `PGPASSWORD`/`~/.pgpass`:
    /// one role's password is never sent for another.
    pub password_file: Option<PathBuf>,
    /// libpq `sslmode` (default: `[source] sslmode`).
    pub sslmode: Option<String>,
    /// Database to connect to for CREATE/DROP DATABASE (default: `[source] maintenance_db`).
    pub maintenance_db: Option<String>,
    /// Role that owns the restored database and every object in it: the
    /// database is created `OWNER owner` and pg_restore runs `--no-owner
    /// --role=owner`.
    pub owner: Option<String>,
    /// Skip the dump's ownership: objects belong to `user` (or `role`).
    #[serde(default)]
    pub no_owner: bool,
    /// Role pg_restore switches to (`--role`) before restoring; default:
    /// `owner`. Without `owner`, the database is created owned by it and the
    /// dump's owners are kept (unless `no_owner`).
    pub role: Option<String>,
    /// pg_restore jobs. 1 (the default) streams the dump into one pg_restore
    /// as it downloads; more go through a private file and `pg_restore -j`.
    pub jobs: Option<usize>,
}

impl RestoreConfig {
    /// Restores as `user` (whose password then comes from libpq's
    /// environment unless a `password_file` is set afterwards).
    #[must_use]
    pub fn with_user(mut self, user: &str) -> Self {
        if self.user.as_deref() != Some(user) {
            self.user = Some(user.to_owned());
            self.password_file = None;
        }
        self
    }

    /// Connects to `host`.
    #[must_use]
    pub fn with_host(mut self, host: &str) -> Self {
        self.host = Some(host.to_owned());
        self
    }

    /// Connects on `port`.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Everything restored is owned by `owner`: replaces the ownership keys
    /// (`owner`, `no_owner`, `role`).
    #[must_use]
    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = Some(owner.to_owned());
        self.no_owner = false;
        self.role = None;
        self
    }

    /// Everything restored is owned by the restoring role: replaces the
    /// ownership keys (`owner`, `no_owner`, `role`).
    #[must_use]
    pub fn with_no_owner(mut self) -> Self {
        self.owner = None;
        self.no_owner = true;
        self.role = None;
        self
    }

    /// The connection: these keys over `source`'s. The password file goes
    /// with the role: `source`'s is used only when restoring as `source`'s role.
    pub fn connection(&self, source: &PgConfig) -> PgConfig {
        let same_role = self.user.is_none() || self.user == source.user;
        let inherited_password = if same_role { source.password_file.clone() } else { None };
        PgConfig {
            host: self.host.clone().or_else(|| source.host.clone()),
            port: self.port.or(source.port),
            user: self.user.clone().or_else(|| source.user.clone()),
            database: source.database.clone(),
            password_file: self.password_file.clone().or(inherited_password),
            sslmode: self.sslmode.clone().or_else(|| source.sslmode.clone()),
            bin_dir: source.bin_dir.clone(),
            maintenance_db: self.maintenance_db.clone().or_else(|| source.maintenance_db.clone()),
            ..Default::default()
        }
    }

    /// The pg_restore options these keys ask for.
    pub fn options(&self) -> crate::RestoreOptions {
        crate::RestoreOptions {
            jobs: self.jobs.unwrap_or(1),
            no_owner: self.no_owner,
            no_privileges: false,
            role: self.role.clone(),
            owner: self.owner.clone(),
            only: Default::default(),
        }
    }
}
