#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod conn;
mod error;
mod from_store;
mod in_place;
pub mod index;
mod leftovers;
mod mirror;
mod partial;
mod process;
mod restore;
mod rights;
mod source;
#[cfg(feature = "testing")]
pub mod testing;
mod toc;

pub use config::{PgConfig, RestoreConfig};
pub use conn::PgConn;
pub use from_store::{restore_database, write_dump_files, DatabaseRestore, DumpCheck, GLOBALS_STREAM, KIND};
pub use mirror::{mirror_backup, refresh_from_dump, Mirror, MirrorConfig, MirrorReport, Refresh};
pub use partial::{write_partial_sql, Selection};
pub use process::{run, stdout_stream};
pub use restore::{
    check_dump, create_database, database_exists, drop_database, pg_restore, pg_restore_stream, quote_ident,
    replace_database, temporary_name, RestoreOptions, Swap,
};
pub use rights::check_restore_rights;
pub use source::{PgSource, ServerFacts};
