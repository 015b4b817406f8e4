//! Builds the `index` stream of a PostgreSQL backup while the dump streams:
//! the start of pg_dump's output is also fed to `pg_restore --list` (which
//! reads the custom format's table of contents from the front and exits),
//! and the relation sizes are read from the server's catalog.
//!
//! The index never holds the backup back nor up: the tee hands pg_restore
//! shared pieces through a bounded queue without waiting, and gives up (the
//! index then carries a note) if pg_restore falls that far behind. A failed
//! `pg_restore --list` with a successful pg_dump means the tool, not the
//! dump, is at fault (pg_dump's own exit status decides whether the backup
//! fails), so it is logged and noted in the index instead of failing the run.

use std::process::Stdio;

use backup_core::{ByteStream, Error, Result, SourceDetails};
use bytes::Bytes;
use futures::{stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::conn::PgConn;
use crate::index::{parse_list_line, Catalog, IndexHeader, Relation};

/// Pieces of the dump (buffers of 256 KiB, often partly filled) pg_restore
/// may lag behind before the tee gives up: at most 32 MiB held, and far more
/// than it needs to read a TOC, which it does at startup.
const LAG_PIECES: usize = 128;
/// How long the index waits for `pg_restore --list` (and the sizes) once the dump ended.
const LIST_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
/// Most of `pg_restore --list`'s output kept: a TOC this long is noted as cut.
const LIST_CAP: usize = 64 * 1024 * 1024;

/// Reads the catalog facts the index needs on a task of its own, so that
/// the dump starts at once; the sizes are those at backup start.
pub(crate) fn spawn_read_catalog(conn: PgConn) -> JoinHandle<std::result::Result<Catalog, String>> {
    tokio::spawn(async move { read_catalog(&conn).await.map_err(|e| e.to_string()) })
}

/// The catalog facts the index needs.
async fn read_catalog(conn: &PgConn) -> Result<Catalog> {
    let client = conn.connect().await?;
    let failed = |e: tokio_postgres::Error| Error::source_failed(conn.to_string(), crate::error::describe(&e));
    let mut catalog = Catalog::default();
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, pg_get_userbyid(c.relowner)::text, \
             CASE WHEN c.relkind IN ('r','p','m') THEN pg_total_relation_size(c.oid) END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p','m','v','S','f') \
             AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'",
            &[],
        )
        .await
        .map_err(failed)?;
    for row in rows {
        let size: Option<i64> = row.get(4);
        catalog.relations.insert(
            row.get(0),
            Relation {
                schema: row.get(1),
                name: row.get(2),
                owner: row.get(3),
                size: size.and_then(|s| u64::try_from(s).ok()),
            },
        );
    }
    for row in client
        .query("SELECT oid, nspname::text FROM pg_namespace", &[])
        .await
        .map_err(failed)?
    {
        catalog.schemas.insert(row.get(0), row.get(1));
    }
    catalog.schema_names = catalog.schemas.values().cloned().collect();
    catalog.schema_names.sort_by_key(|s| std::cmp::Reverse(s.len()));
    catalog.roles = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .await
        .map_err(failed)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    catalog.roles.sort_by_key(|s| std::cmp::Reverse(s.len()));
    Ok(catalog)
}

/// Passes `dump` through unchanged, and its first pieces on to `pg_restore
/// --list` (`cmd`) until that exits. Returns the dump and the index stream,
/// which is to be read after the dump ended; it records `toc_entries` (and
/// `index_note` when something is missing) in `details`, for the manifest.
pub(crate) fn tee_index(
    dump: ByteStream,
    cmd: tokio::process::Command,
    catalog: JoinHandle<std::result::Result<Catalog, String>>,
    details: SourceDetails,
) -> (ByteStream, ByteStream) {
    let (tx, rx) = mpsc::channel::<Bytes>(LAG_PIECES);
    let lister: JoinHandle<std::result::Result<String, String>> = tokio::spawn(list_toc(cmd, rx));
    let lagged = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lagged_tee = std::sync::Arc::clone(&lagged);
    let data = stream::unfold((dump, Some(tx)), move |(mut dump, mut tx)| {
        let lagged = std::sync::Arc::clone(&lagged_tee);
        async move {
            let item = dump.next().await?;
            if let (Ok(piece), Some(sender)) = (&item, tx.as_ref()) {
                match sender.try_send(piece.clone()) {
                    Ok(()) => {}
                    // pg_restore read its TOC and left.
                    Err(mpsc::error::TrySendError::Closed(_)) => tx = None,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        lagged.store(true, std::sync::atomic::Ordering::Relaxed);
                        tx = None;
                    }
                }
            }
            Some((item, (dump, tx)))
        }
    })
    .boxed();
    let index = stream::once(async move {
        let mut lister = lister;
        // Read after the dump ended, by when pg_restore had long read the
        // TOC: one that hangs is stopped (killed on drop) instead of holding
        // the backup up.
        let listed = match tokio::time::timeout(LIST_WAIT, &mut lister).await {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => Err(format!("pg_restore --list did not finish: {e}")),
            Err(_) => {
                lister.abort();
                Err(format!(
                    "pg_restore --list did not finish within {} s after the dump",
                    LIST_WAIT.as_secs()
                ))
            }
        };
        // Stopped feeding it early, it failed if it had not read the whole TOC yet.
        let listed = listed.map_err(|e| {
            if lagged.load(std::sync::atomic::Ordering::Relaxed) {
                format!("pg_restore --list fell behind the dump and was stopped: {e}")
            } else {
                e
            }
        });
        let mut catalog = catalog;
        let catalog = match tokio::time::timeout(LIST_WAIT, &mut catalog).await {
            Ok(Ok(catalog)) => catalog,
            Ok(Err(e)) => Err(format!("reading the sizes did not finish: {e}")),
            Err(_) => {
                catalog.abort();
                Err(format!("reading the sizes took longer than {} s", LIST_WAIT.as_secs()))
            }
        };
        Ok(render(listed, catalog, &details))
    })
    .boxed();
    (data, index)
}

/// Runs `pg_restore --list` on the pieces arriving on `rx`; its output, or
/// why it failed. It needs no server: no password is passed on to it.
async fn list_toc(
    mut cmd: tokio::process::Command,
    mut rx: mpsc::Receiver<Bytes>,
) -> std::result::Result<String, String> {
    let mut child = cmd
        .env_remove("PGPASSWORD")
        .arg("--list")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start pg_restore: {e}"))?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("pg_restore has no pipes".to_owned());
    };
    let feed = async move {
        while let Some(piece) = rx.recv().await {
            // It exits once it has read the TOC: the rest is not for it.
            if stdin.write_all(&piece).await.is_err() {
                break;
            }
        }
        // Dropping `rx` tells the tee to stop copying.
    };
    let read = async move {
        let mut out = Vec::new();
        let cut = (&mut stdout).take(LIST_CAP as u64).read_to_end(&mut out).await.is_ok() && out.len() >= LIST_CAP;
        // Keep draining so that pg_restore is never blocked on a full pipe.
        let _ = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await;
        (out, cut)
    };
    let errors = async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(16 * 1024).read_to_end(&mut err).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        err
    };
    let ((out, cut), err, ()) = tokio::join!(read, errors, feed);
    let status = child
        .wait()
        .await
        .map_err(|e| format!("cannot wait for pg_restore: {e}"))?;
    if !status.success() {
        return Err(format!(
            "pg_restore --list failed ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        ));
    }
    if cut {
        return Err(format!(
            "the table of contents is longer than {LIST_CAP} bytes; not indexed"
        ));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The index's JSON Lines: header (with a note when something is missing), entries.
fn render(
    listed: std::result::Result<String, String>,
    catalog: std::result::Result<Catalog, String>,
    details: &SourceDetails,
) -> Bytes {
    let mut notes = Vec::new();
    let catalog = catalog.unwrap_or_else(|e| {
        notes.push(format!("sizes unknown: {e}"));
        Catalog::default()
    });
    let list = listed.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the backup is whole, but its index lists no table of contents");
        notes.push(e);
        String::new()
    });
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    if let Some(note) = &note {
        details.set("index_note", note.clone());
    }
    let mut out = serde_json::to_vec(&IndexHeader::postgres(note)).unwrap_or_default();
    out.push(b'\n');
    let mut count = 0u64;
    for entry in list.lines().filter_map(|l| parse_list_line(l, &catalog)) {
        if let Ok(line) = serde_json::to_vec(&entry) {
            out.extend_from_slice(&line);
            out.push(b'\n');
            count += 1;
        }
    }
    details.set("toc_entries", count);
    Bytes::from(out)
}
