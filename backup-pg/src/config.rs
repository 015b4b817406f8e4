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
