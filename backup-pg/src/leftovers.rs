//! Temporary copies of a database left by a cancelled replace.

use std::time::Duration;

use backup_core::{Error, Result};

use crate::conn::PgConn;
use crate::restore::{drop_database, temporary_name};

/// Drops the temporary copies of a target (`<target>__new_…`) when dropped
/// armed: the future of [`replace_database`] was dropped (a
/// signal) while it was creating or filling one. Runs on one target are
/// serialized (the CLI holds a lock), so every such copy is this run's.
/// Dropping needs the server: handed to [`backup_core::cleanup::defer`].
pub(crate) struct DropCopiesIfCancelled(pub(crate) Option<(PgConn, String)>);

impl DropCopiesIfCancelled {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for DropCopiesIfCancelled {
    fn drop(&mut self) {
        let Some((admin, target)) = self.0.take() else { return };
        // The names' shape belongs to `temporary_name`: its prefix, without the random end.
        let name = temporary_name(&target, "new");
        let prefix = name[..name.len() - 6].to_owned();
        backup_core::cleanup::defer(format!("drop the temporary copies of {target}"), async move {
            if let Err(e) = drop_copies(&admin, &prefix).await {
                tracing::warn!(database = %target, error = %e.report(), "could not drop the temporary copy");
            }
        });
    }
}

async fn drop_copies(admin: &PgConn, prefix: &str) -> Result<()> {
    let client = admin.connect().await?;
    let failed = |e: tokio_postgres::Error| Error::source_failed(admin.to_string(), crate::error::describe(&e));
    // A dropped client does not stop its statement on the server: a
    // `CREATE DATABASE` of a copy may still be running, and would commit
    // after the copies were dropped. End it first (a role may end its own
    // sessions), and wait until it is gone.
    for _ in 0..50 {
        let running = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND state = 'active' \
                 AND query ILIKE 'CREATE DATABASE%' AND position($1 in query) > 0",
                &[&prefix],
            )
            .await
            .map_err(failed)?;
        if running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .await
        .map_err(failed)?;
    for row in rows {
        drop_database(admin, row.get::<_, &str>(0)).await?;
    }
    Ok(())
}
