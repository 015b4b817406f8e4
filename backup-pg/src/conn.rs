//! Where a database is and how to reach it: one place that resolves the
//! settings, for both tokio-postgres (control) and libpq tools (data).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backup_core::{Error, Result};
use tokio_postgres::{Client, NoTls};

use crate::config::PgConfig;
use crate::error::{describe, PgError};

/// A resolved connection: settings, then libpq's environment, then defaults.
#[derive(Clone)]
pub struct PgConn {
    /// Host name, IP, or Unix socket folder.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Database.
    pub database: String,
    /// `sslmode`.
    pub sslmode: String,
    /// Folder of the client tools (`None`: `PATH`).
    pub bin_dir: Option<PathBuf>,
    /// Database for CREATE/DROP/RENAME DATABASE.
    pub maintenance_db: String,
    password: Option<String>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn")
            .field("server", &self.to_string())
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PgConn {
    /// `user@host:port/database` — never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl PgConn {
    /// A connection from explicit values only: no environment, no
    /// `~/.pgpass`, no password until [`PgConn::with_password`].
    pub fn new(host: &str, port: u16, user: &str, database: &str) -> Self {
        PgConn {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            database: database.to_owned(),
            sslmode: "prefer".into(),
            bin_dir: None,
            maintenance_db: "postgres".into(),
            password: None,
        }
    }

    /// The password to connect with (handed to libpq tools in their
    /// environment, never on a command line).
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// libpq `sslmode`.
    #[must_use]
    pub fn with_sslmode(mut self, sslmode: &str) -> Self {
        self.sslmode = sslmode.to_owned();
        self
    }

    /// Folder of the client tools (`pg_dump`, `pg_restore`, `psql`).
    #[must_use]
    pub fn with_bin_dir(mut self, bin_dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(bin_dir.into());
        self
    }

    /// Database to connect to for CREATE/DROP/RENAME DATABASE.
    #[must_use]
    pub fn with_maintenance_db(mut self, database: &str) -> Self {
        self.maintenance_db = database.to_owned();
        self
    }

    /// Resolves `config` the way libpq does: its values, else libpq's
    /// environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`,
    /// `PGSSLMODE`), else `~/.pgpass` for the password, else defaults.
    /// Relative paths are taken relative to `base`.
    ///
    /// # Errors
    /// [`Error::Config`] when no database is given anywhere, or the password
    /// file cannot be read.
    pub fn from_env(config: &PgConfig, base: &Path) -> Result<Self> {
        let host = config.host.clone().or_else(|| env("PGHOST")).unwrap_or_else(|| {
            if Path::new("/var/run/postgresql").is_dir() {
                "/var/run/postgresql".into()
            } else {
                "localhost".into()
            }
        });
        let port = match config.port {
            Some(p) => p,
            None => env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432),
        };
        let user = config
            .user
            .clone()
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        let database = config
            .database
            .clone()
            .or_else(|| env("PGDATABASE"))
            .ok_or_else(|| Error::config("database", "no database given (nor PGDATABASE)"))?;
        let password = match &config.password_file {
            Some(file) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::config("password_file", format!("cannot read {}: {e}", path.display())))?;
                Some(text.lines().next().unwrap_or_default().to_owned())
            }
            None => env("PGPASSWORD"),
        };
        let mut conn = PgConn::new(&host, port, &user, &database)
            .with_sslmode(
                &config
                    .sslmode
                    .clone()
                    .or_else(|| env("PGSSLMODE"))
                    .unwrap_or_else(|| "prefer".into()),
            )
            .with_maintenance_db(config.maintenance_db.as_deref().unwrap_or("postgres"));
        conn.bin_dir = config.bin_dir.as_ref().map(|b| base.join(b)).or_else(default_bin_dir);
        conn.password = password.or_else(|| pgpass_lookup(&conn));
        Ok(conn)
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Self {
        PgConn {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// Connects with tokio-postgres.
    ///
    /// # Errors
    /// [`Error::Source`] with the server's own message (wrong password, no
    /// such database, refused).
    pub async fn connect(&self) -> Result<Client> {
        if matches!(self.sslmode.as_str(), "require" | "verify-ca" | "verify-full") {
            return Err(Error::config(
                "sslmode",
                format!(
                    "{}: sslmode={} is not supported for backupapps' own connection yet; use prefer or disable",
                    self, self.sslmode
                ),
            ));
        }
        let mut config = tokio_postgres::Config::new();
        if self.host.starts_with('/') {
            config.host_path(&self.host);
        } else {
            config.host(&self.host);
        }
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name("backupapps")
            .connect_timeout(Duration::from_secs(15));
        if let Some(p) = &self.password {
            config.password(p);
        }
        let (client, connection) = config.connect(NoTls).await.map_err(|e| PgError::Connect {
            server: self.to_string(),
            reason: describe(&e),
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// A client tool (`pg_dump`, `pg_restore`, `psql`) set up to reach this
    /// database through libpq's environment: the password never appears in argv.
    pub fn tool(&self, name: &str) -> tokio::process::Command {
        let program = match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.database)
            .env("PGSSLMODE", &self.sslmode)
            .env("PGAPPNAME", "backupapps")
            .env("PGCONNECT_TIMEOUT", "15")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match &self.password {
            Some(p) => cmd.env("PGPASSWORD", p),
            None => cmd.env_remove("PGPASSWORD"),
        };
        cmd
    }

    /// Runs one statement on this database.
    ///
    /// # Errors
    /// [`Error::Source`] naming the server and statement.
    pub async fn execute(&self, client: &Client, statement: &str) -> Result<()> {
        client.batch_execute(statement).await.map_err(|e| {
            PgError::Statement {
                server: self.to_string(),
                statement: statement.to_owned(),
                reason: describe(&e),
            }
            .into()
        })
    }
}

/// The newest `/usr/lib/postgresql/*/bin`: Debian's pg_dump wrapper in PATH
/// picks a version by cluster, which a backup host may not have.
fn default_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_dump").exists().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

/// `~/.pgpass` (or `PGPASSFILE`): `host:port:database:user:password`, `*`
/// matching anything, `\:` and `\\` escaped.
fn pgpass_lookup(conn: &PgConn) -> Option<String> {
    let path = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let port = conn.port.to_string();
    let host = if conn.host.starts_with('/') {
        "localhost"
    } else {
        conn.host.as_str()
    };
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let fields = split_pgpass(line);
        let [h, p, d, u, pw] = fields.as_slice() else {
            return None;
        };
        let m = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        (m(h, host) && m(p, &port) && m(d, &conn.database) && m(u, &conn.user)).then(|| pw.clone())
    })
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap_or(&mut String::new()).push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_split_with_escapes() {
        assert_eq!(
            split_pgpass(r"db.internal:5432:*:backup:pa\:ss\\w"),
            vec!["db.internal", "5432", "*", "backup", r"pa:ss\w"]
        );
    }

    #[test]
    fn display_never_shows_the_password() {
        let config = PgConfig {
            host: Some("h".into()),
            port: Some(1),
            user: Some("u".into()),
            database: Some("d".into()),
            ..Default::default()
        };
        let mut conn = PgConn::from_env(&config, Path::new("/")).unwrap();
        conn.password = Some("hunter2".into());
        assert_eq!(conn.to_string(), "u@h:1/d");
        assert!(!format!("{conn:?}").contains("hunter2"));
    }
}
