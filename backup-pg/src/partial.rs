//! Partial restores: only some tables (`pg_restore -t`) or schemas
//! (`pg_restore -n`) of a backup, into a new database or as an SQL script.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::{
    create_private_dirs, default_parallelism, restore_stream, CatalogEntry, Decryptor, DynStore, Error, Result,
};

use crate::conn::PgConn;
use crate::index::{TocEntry, INDEX_STREAM};
use crate::restore::{quote_ident, RestoreOptions};

/// PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1).
const NAME_MAX: usize = 63;

/// Which objects of a dump to restore: tables by exact name (`pg_restore -t`,
/// in any schema unless schemas are given too) and schemas (`pg_restore -n`).
/// Empty means everything. Names go to pg_restore as separate arguments
/// after `-t`/`-n`, and a name starting with `-` is refused outright.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    tables: Vec<String>,
    schemas: Vec<String>,
}

impl Selection {
    /// Checks the names: not empty, at most 63 bytes, no NUL, not starting with `-`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad name.
    pub fn new(tables: Vec<String>, schemas: Vec<String>) -> Result<Self> {
        for (what, names) in [("table", &tables), ("schema", &schemas)] {
            for name in names {
                check_name(what, name)?;
            }
        }
        Ok(Selection { tables, schemas })
    }

    /// Whether the whole dump is restored.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.schemas.is_empty()
    }

    /// The table names.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// The schema names.
    pub fn schemas(&self) -> &[String] {
        &self.schemas
    }

    /// pg_restore's arguments: `-n S` for each schema, `-t T` for each table.
    pub(crate) fn args(&self) -> Vec<&str> {
        let mut args = Vec::new();
        for s in &self.schemas {
            args.extend(["-n", s.as_str()]);
        }
        for t in &self.tables {
            args.extend(["-t", t.as_str()]);
        }
        args
    }

    /// Whether a TOC `TABLE` entry is one this selection names.
    fn selects_table(&self, entry: &TocEntry) -> bool {
        entry.is_table()
            && self.tables.contains(&entry.name)
            && (self.schemas.is_empty() || entry.schema.as_ref().is_some_and(|s| self.schemas.contains(s)))
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.starts_with('-') {
        "starts with '-' (it would read as an option of pg_restore)"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else if name.len() > NAME_MAX {
        "is longer than PostgreSQL's 63 bytes"
    } else {
        return Ok(());
    };
    Err(Error::config(
        format!("{what} name {name:?}"),
        format!("refused: it {problem}"),
    ))
}

/// What the index says about a selection: the schemas its tables live in.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Schemas to create in the new database before pg_restore (which does
    /// not create a schema for `-t`/`-n`).
    pub(crate) schemas: Vec<String>,
}

impl Plan {
    /// Reads the backup's index (when it has one) to find the schemas of the
    /// selected tables, and refuses tables the dump does not hold. Without an
    /// index only the named schemas are known.
    ///
    /// # Errors
    /// [`Error::Config`] for a table that is not in the backup; integrity
    /// and decryption errors of the index; [`Error::Format`] for a damaged index.
    pub(crate) async fn read(
        store: &DynStore,
        decryptor: Arc<dyn Decryptor>,
        entry: &CatalogEntry,
        only: &Selection,
    ) -> Result<Plan> {
        let mut schemas = only.schemas.clone();
        if only.tables.is_empty() || !entry.manifest.has_stream(INDEX_STREAM) {
            return Ok(Plan { schemas });
        }
        let mut index = backup_core::index::open_index(store, decryptor, entry).await?;
        if index.header().kind != crate::KIND {
            return Err(Error::Format {
                id: entry.manifest.id.clone(),
                reason: format!(
                    "its index lists {:?} entries, not a PostgreSQL dump's",
                    index.header().kind
                ),
            });
        }
        let (mut found, mut entries) = (Vec::new(), 0u64);
        while let Some(e) = index.next_entry::<TocEntry>().await? {
            entries += 1;
            if only.selects_table(&e) {
                found.push(e);
            }
        }
        if entries == 0 {
            if let Some(note) = entry.manifest.source.get("index_note") {
                // No table of contents to check against: pg_restore decides.
                tracing::warn!(%note, "the backup's index lists no table of contents; the tables are not checked before restoring");
                return Ok(Plan { schemas });
            }
        }
        let missing: Vec<&str> = only
            .tables
            .iter()
            .filter(|t| !found.iter().any(|e| &e.name == *t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Error::config(
                "table",
                format!(
                    "backup {} holds no table {}{}",
                    entry.manifest.id,
                    missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
                    if only.schemas.is_empty() {
                        String::new()
                    } else {
                        format!(" in schema {}", only.schemas.join(", "))
                    }
                ),
            ));
        }
        for e in found {
            if let Some(s) = e.schema {
                if !schemas.contains(&s) {
                    schemas.push(s);
                }
            }
        }
        Ok(Plan { schemas })
    }

    /// Creates the schemas in `target` (as the role pg_restore switches to),
    /// so that their objects have somewhere to go.
    pub(crate) async fn create_schemas(&self, target: &PgConn, options: &RestoreOptions) -> Result<()> {
        if self.schemas.is_empty() {
            return Ok(());
        }
        let client = target.connect().await?;
        if let Some(role) = options.set_role() {
            target
                .execute(&client, &format!("SET ROLE {}", quote_ident(role)))
                .await?;
        }
        for schema in &self.schemas {
            target
                .execute(&client, &format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)))
                .await?;
        }
        Ok(())
    }
}

/// Writes the SQL script of just the selected objects of a trusted
/// PostgreSQL backup (`pg_restore -t/-n` output) as `<database>.sql` (0600)
/// in `dir`, refusing to overwrite; the dump streams into pg_restore as it
/// downloads. pg_restore comes from `bin_dir`, or from `PATH`.
///
/// # Errors
/// [`Error::Config`] for an empty selection or a table not in the backup;
/// [`Error::Target`] when the file exists; integrity, decryption and
/// pg_restore errors (the partial file is removed).
pub async fn write_partial_sql(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    dir: &Path,
    only: &Selection,
    bin_dir: Option<&Path>,
) -> Result<PathBuf> {
    if only.is_empty() {
        return Err(Error::config("selection", "name at least one table or schema"));
    }
    Plan::read(store, Arc::clone(&decryptor), entry, only).await?;
    let database = crate::from_store::dump_base_name(entry);
    create_private_dirs(dir)?;
    let path = dir.join(format!("{database}.sql"));
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(exists(&path));
    }
    // Written as `.partial` first, like a whole dump, so that a cancelled
    // run leaves no script that looks complete.
    let partial = dir.join(format!("{database}.sql.partial"));
    let file = open_new_private(&partial)?;
    let _remove = RemoveOnDrop(&partial);
    let mut cmd = tokio::process::Command::new(bin_dir.map_or_else(|| "pg_restore".into(), |d| d.join("pg_restore")));
    // `-f -`: to stdout, which is the private file opened above.
    cmd.args(["--exit-on-error", "--file=-"])
        .args(only.args())
        .kill_on_drop(true);
    let dump = restore_stream(store, decryptor, entry, backup_core::DATA_STREAM, default_parallelism())?;
    crate::process::run_with_stdin(cmd, "pg_restore", dump, file.into()).await?;
    // A hard link fails when something appeared at `path` meanwhile, where
    // a rename would replace it.
    std::fs::hard_link(&partial, &path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists(&path)
        } else {
            Error::io(&path, e)
        }
    })?;
    Ok(path)
}

fn exists(path: &Path) -> Error {
    Error::Target {
        path: path.to_owned(),
        reason: "exists already; not overwritten".into(),
    }
}

/// Removes a file when dropped (the run ended, well or not, or was cancelled).
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// Creates `path` (0600), refusing an existing one: `create_new` (O_EXCL)
/// refuses a symlink there too.
fn open_new_private(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_read_as_options_are_refused() {
        for bad in ["-evil", "--file=/tmp/x", "", "a\0b", &"x".repeat(64)] {
            assert!(Selection::new(vec![bad.to_owned()], vec![]).is_err(), "{bad:?}");
            assert!(Selection::new(vec![], vec![bad.to_owned()]).is_err(), "{bad:?}");
        }
        let ok = Selection::new(vec!["odd \"t\" x".into()], vec!["my schema".into()]).unwrap();
        assert_eq!(ok.args(), ["-n", "my schema", "-t", "odd \"t\" x"]);
        assert!(Selection::default().is_empty());
    }
}
