//! `db list|ping|dump|restore-to-test`: the database utilities of the old
//! system, on the servers the postgres profiles name.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use backup_pg::PgConn;

use crate::cli::{DbCommand, Server};
use crate::workspace::{Profile, Workspace};
use crate::{lock, wiring};

/// Runs one `db` subcommand.
///
/// # Errors
/// Connection, tool or configuration errors, naming the server.
pub async fn run(ws: &Workspace, command: DbCommand, json: bool) -> Result<ExitCode> {
    match command {
        DbCommand::List { server, target } => {
            let (_, conn) = server_of(ws, server, target.as_deref())?;
            let admin = conn.with_database(&conn.maintenance_db);
            let client = admin.connect().await?;
            let rows = client
                .query(
                    "SELECT datname, pg_database_size(datname) FROM pg_database WHERE NOT datistemplate ORDER BY datname",
                    &[],
                )
                .await
                .with_context(|| admin.to_string())?;
            let databases: Vec<(&str, u64)> = rows
                .iter()
                .map(|row| (row.get::<_, &str>(0), row.get::<_, i64>(1).max(0) as u64))
                .collect();
            if json {
                let rows: Vec<_> = databases
                    .iter()
                    .map(|(name, bytes)| serde_json::json!({"database": name, "size_bytes": bytes}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for (name, bytes) in databases {
                    println!("{name:<40} {:>12}", crate::output::human_size(bytes));
                }
            }
        }
        DbCommand::Ping {
            server,
            database,
            target,
        } => {
            let (_, conn) = server_of(ws, server, target.as_deref())?;
            let conn = conn.with_database(&database);
            let client = conn.connect().await?;
            let row = client
                .query_one("SELECT 1", &[])
                .await
                .with_context(|| conn.to_string())?;
            let one: i32 = row.get(0);
            println!("{conn}: OK (SELECT 1 = {one})");
        }
        DbCommand::Dump {
            server,
            database,
            file,
            target,
        } => {
            let (_, conn) = server_of(ws, server, target.as_deref())?;
            let conn = conn.with_database(&database);
            // A path on the command line is the user's, from where they are
            // (DESIGN §4), not from the workspace.
            dump(&conn, &crate::workspace::cli_path(&file)?).await?;
        }
        DbCommand::RestoreToTest { file, target } => {
            let (profile, _) = server_of(ws, Server::Test, target.as_deref())?;
            let Some((test, config)) = wiring::mirror(ws, profile)? else {
                bail!("{} has no [mirror] section", profile.file.display());
            };
            let _lock = lock::acquire(ws, &format!("mirror-{}-{}", profile.app, profile.name))?;
            let file = crate::workspace::cli_path(&file)?;
            if !file.is_file() {
                bail!("{}: no such dump file", file.display());
            }
            let refresh = backup_pg::refresh_from_dump(&test, &config, &file, &ws.home).await?;
            println!("restored {} into {test}: {} tables", file.display(), refresh.tables);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pg_dump -Fc` of `conn`'s database into `file` (via `file.partial`).
async fn dump(conn: &PgConn, file: &Path) -> Result<()> {
    if file.exists() {
        bail!("{} exists already; choose another file", file.display());
    }
    let partial = file.with_extension("partial");
    // The dump is plaintext: made 0600 here, pg_dump then writes into it
    // (it keeps the mode); a partial file of a killed run is replaced.
    let _ = std::fs::remove_file(&partial);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut cmd = conn.tool("pg_dump");
    cmd.args(["--format=custom", "--no-password", "--file"]).arg(&partial);
    let result = backup_pg::run(cmd, &format!("pg_dump of {conn}")).await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    std::fs::rename(&partial, file).with_context(|| file.display().to_string())?;
    println!("{conn}: dumped to {}", file.display());
    Ok(())
}

/// The postgres profile whose prod ([source]) or test ([mirror]) server is
/// meant: `--target`, or the only one, or the one server all profiles share.
fn server_of<'a>(ws: &'a Workspace, server: Server, target: Option<&str>) -> Result<(&'a Profile, PgConn)> {
    let mut candidates: Vec<&Profile> = match target {
        Some(t) => ws.select(&[t.to_owned()])?,
        None => ws.profiles.values().collect(),
    };
    candidates.retain(|p| {
        p.kind() == crate::settings::Kind::Postgres && (server == Server::Prod || p.settings.mirror.is_some())
    });
    let mut resolved = Vec::new();
    for p in candidates {
        let conn = match server {
            Server::Prod => wiring::pg_conn(ws, p)?.0,
            Server::Test => match wiring::mirror(ws, p)? {
                Some((conn, _)) => conn,
                None => continue,
            },
        };
        resolved.push((p, conn));
    }
    let what = if server == Server::Prod { "[source]" } else { "[mirror]" };
    let Some((first, conn)) = resolved.first().cloned() else {
        bail!(
            "no postgres profile with a {what} section{}",
            target.map(|t| format!(" in {t}")).unwrap_or_default()
        );
    };
    let same = |a: &PgConn, b: &PgConn| {
        (a.host.as_str(), a.port, a.user.as_str()) == (b.host.as_str(), b.port, b.user.as_str())
    };
    if resolved.iter().any(|(_, c)| !same(c, &conn)) {
        let names: Vec<String> = resolved
            .iter()
            .map(|(p, c)| format!("{} ({}:{})", p.target(), c.host, c.port))
            .collect();
        bail!(
            "several {what} servers: {}; choose one with --target APP/PROFILE",
            names.join(", ")
        );
    }
    Ok((first, conn))
}
