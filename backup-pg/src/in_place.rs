//! Replacing an empty database by restoring into it.
//!
//! `restore --to-db NAME --replace` builds a fresh copy in a temporary
//! database and swaps it in, so a failed restore leaves NAME as it was. When
//! NAME is an empty database — what `createdb NAME` makes, the habit of
//! `pg_restore -d NAME` users — there is nothing to keep: a single-transaction
//! `pg_restore` into it is all or nothing already (a failure rolls back to
//! the empty database), and creating, renaming and dropping databases around
//! it cost a third of a second of checkpoints for nothing. The database's
//! own settings and grants, which a swap would have dropped, stay.

use crate::conn::PgConn;
use crate::error::describe;
use backup_core::{Error, Result};

/// Why a database can be restored into in place: it exists, is owned by the
/// role a fresh copy would be owned by, has the encoding and locale a fresh
/// copy (from template0) would have, and holds no object of its own.
///
/// `owner` is the owner a fresh copy would get (`None`: the connecting role).
/// Returns `false` for anything else, including a database that does not
/// exist, so the caller takes the swap path.
///
/// # Errors
/// Connection errors other than the database being missing.
pub(crate) async fn is_empty_replaceable(target: &PgConn, owner: Option<&str>) -> Result<bool> {
    let client = match target.connect().await {
        Ok(client) => client,
        // Missing, or not ours to connect to: the swap path says why.
        Err(_) => return Ok(false),
    };
    let row = client
        .query_one(EMPTY_AND_LIKE_NEW, &[&owner])
        .await
        .map_err(|e| Error::source_failed(target.to_string(), describe(&e)))?;
    Ok(row.get::<_, bool>(0))
}

/// Objects made by users get OIDs from 16384 (`FirstNormalObjectId`) on;
/// anything from template0 or template1's defaults sits below. Every
/// per-database catalog a dump could clash with (or that would survive the
/// restore and make it differ from a fresh copy) is checked.
const EMPTY_AND_LIKE_NEW: &str = "\
SELECT pg_get_userbyid(d.datdba)::text = COALESCE($1::text, current_user::text)
   AND d.encoding = t.encoding AND d.datcollate = t.datcollate AND d.datctype = t.datctype
   AND NOT EXISTS (SELECT 1 FROM pg_class WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_type WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_language WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_collation WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_conversion WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_operator WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_opfamily WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_cast WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_ts_dict WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_foreign_data_wrapper WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_publication WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_default_acl)
   AND NOT EXISTS (SELECT 1 FROM pg_largeobject_metadata)
FROM pg_database d, pg_database t
WHERE d.datname = current_database() AND t.datname = 'template0'";
