//! Replacing an empty database by restoring into it.
//!
//! `restore --to-db NAME --replace` builds a fresh copy in a temporary
//! database and swaps it in, so a failed restore leaves NAME as it was. When
//! NAME is an empty database — what `createdb NAME` makes, the habit of
//! `pg_restore -d NAME` users — there is nothing to keep: a single-transaction
//! `pg_restore` into it is all or nothing already (a failure rolls back to
//! the empty database), and creating, renaming and dropping databases around
//! it cost a third of a second of checkpoints for nothing.
//!
//! "Empty" is strict, so that the result is the one a swap would give: no
//! object of its own, no settings, grants or comment on the database, the
//! owner, encoding, locale and tablespace a fresh copy from template0 would
//! get, no subscription or replication slot on it, and no other session
//! connected (one that could add objects while the restore starts).

use crate::conn::PgConn;
use crate::error::describe;
use backup_core::{Error, Result};

/// Whether a database can be restored into in place (see the module).
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
/// anything from template0's defaults sits below (and template1's additions,
/// which `createdb` copies, above). Every per-database catalog a dump could
/// clash with, or that would make the result differ from a fresh copy, is
/// checked. Locale columns differ between versions (`datlocprovider` from
/// 15, `daticulocale` 15-16, `datlocale` 17, `daticurules` 16): compared
/// through `to_jsonb`, a column a version lacks is NULL on both sides.
const EMPTY_AND_LIKE_NEW: &str = "\
SELECT pg_get_userbyid(d.datdba)::text = COALESCE($1::text, current_user::text)
   AND d.encoding = t.encoding AND d.datcollate = t.datcollate AND d.datctype = t.datctype
   AND d.dattablespace = t.dattablespace
   AND (to_jsonb(d)->>'datlocprovider') IS NOT DISTINCT FROM (to_jsonb(t)->>'datlocprovider')
   AND (to_jsonb(d)->>'daticulocale') IS NOT DISTINCT FROM (to_jsonb(t)->>'daticulocale')
   AND (to_jsonb(d)->>'datlocale') IS NOT DISTINCT FROM (to_jsonb(t)->>'datlocale')
   AND (to_jsonb(d)->>'daticurules') IS NOT DISTINCT FROM (to_jsonb(t)->>'daticurules')
   AND d.datacl IS NULL
   AND NOT EXISTS (SELECT 1 FROM pg_db_role_setting WHERE setdatabase = d.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_shdescription WHERE objoid = d.oid AND classoid = 'pg_database'::regclass)
   AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datid = d.oid AND pid <> pg_backend_pid())
   AND NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE database = d.datname)
   AND NOT EXISTS (SELECT 1 FROM pg_subscription WHERE subdbid = d.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_class WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_type WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_language WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_am WHERE oid >= 16384)
   AND NOT EXISTS (SELECT 1 FROM pg_transform WHERE oid >= 16384)
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
