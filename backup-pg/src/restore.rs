//! Restoring a dump into a database, and replacing a database only once a
//! restore into a fresh copy fully succeeded.

use std::future::Future;
use std::path::Path;

use backup_core::{ByteStream, Error, Result};
use rand::Rng;

use crate::conn::PgConn;
use crate::leftovers::DropCopiesIfCancelled;
use crate::process::{run, run_with_stdin};

/// Options of `pg_restore`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Parallel jobs (`-j`); 0 or 1 means one.
    pub jobs: usize,
    /// Skip ownership (`--no-owner`): objects belong to the connecting role
    /// (or to `role`).
    pub no_owner: bool,
    /// Skip privileges (`--no-privileges`).
    pub no_privileges: bool,
    /// Role pg_restore switches to (`--role`) before restoring; default:
    /// `owner`. Without `owner` the database is created owned by it, since on
    /// PostgreSQL ≥ 15 only the database owner may create in `public`.
    pub role: Option<String>,
    /// Role that owns the restored database and its objects: the database is
    /// created `OWNER owner` (on PostgreSQL ≥ 15 only the database's owner may
    /// create in its `public` schema) and pg_restore runs `--no-owner
    /// --role=owner`, so the dump's own owners need not exist.
    pub owner: Option<String>,
    /// Only these tables / schemas (`-t` / `-n`); empty: everything.
    pub only: crate::partial::Selection,
}

impl RestoreOptions {
    /// The role pg_restore switches to: `role`, else `owner`.
    pub fn set_role(&self) -> Option<&str> {
        self.role.as_deref().or(self.owner.as_deref())
    }

    /// The role the restored database is created for: `owner`, else `role`.
    pub fn database_owner(&self) -> Option<&str> {
        self.owner.as_deref().or(self.role.as_deref())
    }
}

/// Quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether `name` exists on the server of `admin`.
///
/// # Errors
/// Connection or query errors.
pub async fn database_exists(admin: &PgConn, name: &str) -> Result<bool> {
    let client = admin.connect().await?;
    let row = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| Error::source_failed(admin.to_string(), crate::error::describe(&e)))?;
    Ok(row.is_some())
}

/// `CREATE DATABASE name TEMPLATE template0`, owned by `owner` when given.
///
/// # Errors
/// [`Error::Target`] when it exists; connection or permission errors.
pub async fn create_database(admin: &PgConn, name: &str, owner: Option<&str>) -> Result<()> {
    if database_exists(admin, name).await? {
        return Err(Error::Target {
            path: name.into(),
            reason: format!("database exists already on {}", admin),
        });
    }
    let client = admin.connect().await?;
    let mut sql = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name));
    if let Some(owner) = owner {
        sql.push_str(&format!(" OWNER {}", quote_ident(owner)));
    }
    admin.execute(&client, &sql).await
}

/// Drops `name`, ending its sessions (PostgreSQL ≥ 13).
///
/// # Errors
/// Connection or permission errors.
pub async fn drop_database(admin: &PgConn, name: &str) -> Result<()> {
    let client = admin.connect().await?;
    admin
        .execute(
            &client,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
        )
        .await
}

/// Runs `pg_restore` of `dump` into the database `target` points at.
///
/// # Errors
/// [`Error::Source`] with pg_restore's stderr when it reports any error.
pub async fn pg_restore(target: &PgConn, dump: &Path, options: &RestoreOptions) -> Result<()> {
    let mut cmd = restore_command(target, options, options.jobs);
    cmd.arg(dump);
    run(cmd, &format!("pg_restore into {target}")).await.map(|_| ())
}

/// Runs a single-job `pg_restore` reading the dump from `dump` as it
/// arrives, so downloading and decrypting overlap with restoring (a parallel
/// restore needs the whole dump in a seekable file first).
///
/// # Errors
/// `dump`'s own error (a chunk that did not authenticate) as it is;
/// [`Error::Source`] with pg_restore's stderr when it reports any error.
pub async fn pg_restore_stream(target: &PgConn, dump: ByteStream, options: &RestoreOptions) -> Result<()> {
    let cmd = restore_command(target, options, 1);
    run_with_stdin(
        cmd,
        &format!("pg_restore into {target}"),
        dump,
        std::process::Stdio::null(),
    )
    .await
}

fn restore_command(target: &PgConn, options: &RestoreOptions, jobs: usize) -> tokio::process::Command {
    let mut cmd = target.tool("pg_restore");
    if jobs > 1 {
        // --single-transaction cannot go with -j: parallel restore commits per job.
        cmd.args(["--no-password", "--exit-on-error", &format!("--jobs={jobs}")]);
    } else {
        cmd.args(["--no-password", "--exit-on-error", "--single-transaction"]);
    }
    // With an owner the dump's owners are dropped: restoring them would need
    // membership of every one of them, which is what a superuser has.
    if options.no_owner || options.owner.is_some() {
        cmd.arg("--no-owner");
    }
    if options.no_privileges {
        cmd.arg("--no-privileges");
    }
    if let Some(role) = options.set_role() {
        cmd.arg(format!("--role={role}"));
    }
    // Names are separate arguments after -t/-n, checked not to start with '-'.
    cmd.args(options.only.args());
    cmd.arg(format!("--dbname={}", target.database));
    cmd
}

/// A temporary database name next to `target`, within PostgreSQL's 63 bytes:
/// `<target>__<tag>_<6 hex>`.
pub fn temporary_name(target: &str, tag: &str) -> String {
    format!(
        "{}{:06x}",
        tag_prefix(target, tag),
        rand::thread_rng().gen::<u32>() & 0xff_ffff
    )
}

fn tag_prefix(target: &str, tag: &str) -> String {
    let suffix = format!("__{tag}_");
    let mut base: String = target.to_owned();
    while base.len() + suffix.len() + 6 > 63 {
        base.pop();
    }
    format!("{base}{suffix}")
}

fn old_prefix(target: &str) -> String {
    tag_prefix(target, "old")
}

/// What [`replace_database`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Swap {
    /// The database that now has the target's name.
    pub target: String,
    /// Where the previous copy went: kept under this name, or `None` (dropped or none).
    pub kept_previous: Option<String>,
    /// Whether a previous database existed.
    pub replaced: bool,
}

/// Builds a new copy of `target` in a temporary database (created `OWNER
/// owner` when given) with `fill`, and only when `fill` succeeded swaps it in: sessions on the old database are ended,
/// the old one is renamed aside, the new one takes the name, and the old one
/// is dropped (or kept when `keep_previous`). On any failure before the swap
/// the temporary database is dropped and `target` is left exactly as it was;
/// a temporary copy that an interrupted run left behind is dropped first.
/// Runs on one target must not overlap (the CLI holds a per-profile lock).
///
/// # Errors
/// The error of `fill` (after cleaning up), or of the swap itself (after
/// putting the old database back).
pub async fn replace_database<F, Fut>(
    admin: &PgConn,
    target: &str,
    owner: Option<&str>,
    keep_previous: bool,
    fill: F,
) -> Result<Swap>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    drop_leftovers(admin, target).await?;
    let temp = temporary_name(target, "new");
    // Cancelled anywhere until the swap — creating the copy included — the
    // copies are dropped in the background.
    let guard = DropCopiesIfCancelled(Some((admin.clone(), target.to_owned())));
    create_database(admin, &temp, owner).await?;
    if let Err(e) = fill(temp.clone()).await {
        if let Err(cleanup) = drop_database(admin, &temp).await {
            tracing::warn!(database = %temp, error = %cleanup, "could not drop the temporary database");
        }
        guard.disarm();
        return Err(e);
    }
    guard.disarm();
    let result = swap_in(admin, target, &temp, keep_previous).await;
    if result.is_err() {
        let _ = drop_database(admin, &temp).await;
    }
    result
}

/// Drops temporary copies that an interrupted earlier run left (the server
/// stopped, the process was killed). Callers serialize runs on one target
/// (the CLI holds a lock), so no other run is filling them.
async fn drop_leftovers(admin: &PgConn, target: &str) -> Result<()> {
    let client = admin.connect().await?;
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&tag_prefix(target, "new")],
        )
        .await
        .map_err(|e| Error::source_failed(admin.to_string(), crate::error::describe(&e)))?;
    for row in rows {
        let name: &str = row.get(0);
        tracing::warn!(database = name, "dropping a temporary copy left by an interrupted run");
        drop_database(admin, name).await?;
    }
    Ok(())
}

/// `ALTER DATABASE name WITH ALLOW_CONNECTIONS allow`.
async fn allow_connections(admin: &PgConn, client: &tokio_postgres::Client, name: &str, allow: bool) -> Result<()> {
    admin
        .execute(
            client,
            &format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}", quote_ident(name)),
        )
        .await
}

async fn swap_in(admin: &PgConn, target: &str, temp: &str, keep_previous: bool) -> Result<Swap> {
    let client = admin.connect().await?;
    let exists = database_exists(admin, target).await?;
    if !exists {
        admin
            .execute(
                &client,
                &format!("ALTER DATABASE {} RENAME TO {}", quote_ident(temp), quote_ident(target)),
            )
            .await?;
        return Ok(Swap {
            target: target.to_owned(),
            kept_previous: None,
            replaced: false,
        });
    }
    let aside = temporary_name(target, "old");
    // No new sessions, end the current ones, then rename: a rename needs the
    // database to be idle. Retried, since a client may reconnect in between.
    allow_connections(admin, &client, target, false).await?;
    let mut renamed = Err(Error::source_failed(admin.to_string(), "rename not attempted"));
    for _ in 0..10 {
        let _ = client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&target],
            )
            .await;
        renamed = admin
            .execute(
                &client,
                &format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(target),
                    quote_ident(&aside)
                ),
            )
            .await;
        if renamed.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    if let Err(e) = renamed {
        let _ = allow_connections(admin, &client, target, true).await;
        return Err(e);
    }
    if let Err(e) = admin
        .execute(
            &client,
            &format!("ALTER DATABASE {} RENAME TO {}", quote_ident(temp), quote_ident(target)),
        )
        .await
    {
        // Put the old database back under its name.
        let _ = admin
            .execute(
                &client,
                &format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(&aside),
                    quote_ident(target)
                ),
            )
            .await;
        let _ = allow_connections(admin, &client, target, true).await;
        return Err(e);
    }
    if keep_previous {
        allow_connections(admin, &client, &aside, true).await?;
        // Keep one previous copy: the one just set aside.
        let older = client
            .query(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname <> $2",
                &[&old_prefix(target), &aside],
            )
            .await
            .map_err(|e| Error::source_failed(admin.to_string(), crate::error::describe(&e)))?;
        for row in older {
            drop_database(admin, row.get::<_, &str>(0)).await?;
        }
        Ok(Swap {
            target: target.to_owned(),
            kept_previous: Some(aside),
            replaced: true,
        })
    } else {
        drop_database(admin, &aside).await?;
        Ok(Swap {
            target: target.to_owned(),
            kept_previous: None,
            replaced: true,
        })
    }
}

/// Reads a custom-format dump from `stream` with `pg_restore --list` and
/// returns the number of entries in its table of contents: the structure
/// check of `verify`, with no database needed.
///
/// # Errors
/// The stream's own error (a chunk that failed authentication), or
/// [`Error::Format`] when pg_restore cannot read the archive.
pub async fn check_dump(mut stream: backup_core::ByteStream, bin_dir: Option<&Path>, label: &str) -> Result<usize> {
    use futures::TryStreamExt;
    use tokio::io::AsyncWriteExt;
    let program = bin_dir.map_or_else(|| "pg_restore".into(), |d| d.join("pg_restore"));
    let mut child = tokio::process::Command::new(program)
        .arg("--list")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::source_failed(
                "pg_restore",
                format!("cannot start pg_restore: {e}; the PostgreSQL client tools are needed (postgresql-client)"),
            )
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::source_failed("pg_restore", "no stdin"))?;
    let feed = async {
        while let Some(piece) = stream.try_next().await? {
            // pg_restore may stop reading early on a damaged archive; its exit status says why.
            if stdin.write_all(&piece).await.is_err() {
                break;
            }
        }
        drop(stdin);
        Ok::<(), Error>(())
    };
    let (fed, out) = tokio::join!(feed, child.wait_with_output());
    fed?;
    let out = out.map_err(|e| Error::source_failed("pg_restore", e.to_string()))?;
    if !out.status.success() {
        return Err(Error::Format {
            id: label.to_owned(),
            reason: format!(
                "pg_restore --list cannot read the dump: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count())
}
