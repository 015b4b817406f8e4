#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bigbuf;
pub mod catalog;
pub mod chunker;
pub mod encrypt;
pub mod error;
pub mod manifest;
pub mod memory;
pub mod openpgp;
pub mod pipeline;
pub mod restore;
pub mod retention;
pub mod source;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use catalog::{list_backups, CatalogEntry, Listing};
pub use encrypt::{Decryptor, Encryptor};
pub use error::{Error, Result};
pub use manifest::{ChunkRecord, Manifest};
pub use memory::MemoryStore;
pub use openpgp::{generate_key, PgpDecryptor, PgpEncryptor};
pub use pipeline::{run_backup, BackupOptions};
pub use restore::restore_stream;
pub use retention::{KeepPolicy, RetentionPolicy};
pub use source::{Source, SourceDetails, SourceOutput};
pub use store::{ByteStream, ObjectMeta, Store, StoreExt};
