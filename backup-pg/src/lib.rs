#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod conn;
mod error;
mod mirror;
mod process;
mod restore;
mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::PgConfig;
pub use conn::PgConn;
pub use mirror::{refresh_from_dump, MirrorConfig, Refresh};
pub use process::{run, stdout_stream};
pub use restore::{
    check_dump, create_database, database_exists, drop_database, pg_restore, quote_ident, replace_database,
    temporary_name, RestoreOptions, Swap,
};
pub use source::{PgSource, ServerFacts};
