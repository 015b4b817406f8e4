//! What the restoring role must be allowed to do, checked on the server
//! before anything is downloaded: a restore that can only fail at
//! `CREATE DATABASE` or at the first `SET ROLE` should not first fetch and
//! decrypt the whole dump.

use backup_core::{Error, Result};

use crate::conn::PgConn;
use crate::error::{describe, PgError};
use crate::restore::{quote_ident, RestoreOptions};

/// Checks, as the role `admin` connects with, that a restore into `database`
/// can succeed: the database does not exist (unless `replace`, where the
/// role must own it, directly or through membership, to rename and drop it),
/// the role may create databases, and it may act as `options.owner` and
/// `options.role` (`CREATE DATABASE … OWNER` and `pg_restore --role` need that).
///
/// # Errors
/// [`Error::Target`] when the database exists and `replace` is off;
/// [`Error::Config`] naming the role, the missing right and the statement
/// that grants it; connection errors.
pub async fn check_restore_rights(
    admin: &PgConn,
    database: &str,
    options: &RestoreOptions,
    replace: bool,
) -> Result<()> {
    let client = admin.connect().await?;
    let me = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolcreatedb, current_setting('server_version_num')::int \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::source_failed(admin.to_string(), describe(&e)))?;
    let (role, superuser, createdb, version): (String, bool, bool, i32) = (me.get(0), me.get(1), me.get(2), me.get(3));
    let server = format!("{}:{}", admin.host, admin.port);
    let refuse = |missing: String, fix: String| -> Error {
        PgError::Rights {
            role: role.clone(),
            server: server.clone(),
            missing,
            fix,
        }
        .into()
    };
    let existing = client
        .query_opt(
            "SELECT pg_get_userbyid(datdba)::text, pg_has_role(current_user, datdba, 'USAGE') \
             FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|e| Error::source_failed(admin.to_string(), describe(&e)))?;
    match existing {
        Some(_) if !replace => {
            return Err(Error::Target {
                path: database.into(),
                reason: format!("database exists already on {admin}"),
            })
        }
        Some(row) if !row.get::<_, bool>(1) => {
            let owner: String = row.get(0);
            return Err(refuse(
                format!("cannot replace database {database:?}: it is owned by {owner:?}"),
                format!(
                    "as a superuser run: GRANT {} TO {} (or ALTER DATABASE {} OWNER TO {})",
                    quote_ident(&owner),
                    quote_ident(&role),
                    quote_ident(database),
                    quote_ident(&role)
                ),
            ));
        }
        _ => {}
    }
    if !superuser && !createdb {
        return Err(refuse(
            "cannot create databases (it has neither CREATEDB nor SUPERUSER)".into(),
            format!("as a superuser run: ALTER ROLE {} CREATEDB", quote_ident(&role)),
        ));
    }
    // PostgreSQL 16 split membership into options: CREATE DATABASE … OWNER
    // and SET ROLE need the SET option, which MEMBER does not imply. A
    // superuser passes pg_has_role, but a missing role still fails here.
    let right = if version >= 160_000 { "SET" } else { "MEMBER" };
    let wanted = [("owner", options.owner.as_deref()), ("role", options.role.as_deref())];
    for (what, name) in wanted {
        let Some(name) = name else { continue };
        let row = client
            .query_opt(
                "SELECT pg_has_role(current_user, oid, $2) FROM pg_roles WHERE rolname = $1",
                &[&name, &right],
            )
            .await
            .map_err(|e| Error::source_failed(admin.to_string(), describe(&e)))?;
        match row.map(|r| r.get::<_, bool>(0)) {
            None => {
                return Err(Error::config(
                    what,
                    format!(
                        "role {name:?} does not exist on {server}; create it (CREATE ROLE {}) or name an existing one",
                        quote_ident(name)
                    ),
                ))
            }
            Some(false) => {
                return Err(refuse(
                    format!("is not a member of {name:?} (the {what}), so it cannot restore as it"),
                    format!(
                        "as a superuser run: GRANT {} TO {}",
                        quote_ident(name),
                        quote_ident(&role)
                    ),
                ))
            }
            Some(true) => {}
        }
    }
    Ok(())
}
