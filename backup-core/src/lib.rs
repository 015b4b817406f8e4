#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod bigbuf;
pub mod catalog;
mod chunker;
pub mod cleanup;
pub mod copy;
mod encrypt;
mod error;
pub mod index;
mod keyring;
pub mod layout;
pub mod lease;
pub mod local_copy;
pub mod manifest;
mod memory;
mod openpgp;
mod passphrase;
mod pipeline;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod signing;
mod source;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verify;

pub use bigbuf::BigBuf;
pub use catalog::{list_backups, CatalogEntry, Listing, Mark, MarkResult, Pick, Signed, Trust};
pub use copy::{copy_backups, CopyOptions, CopyOutcome, CopyReport, CopyStatus, Selection};
pub use encrypt::{Decryptor, Encryptor};
pub use error::{BoxError, Error, Result};
pub use keyring::{KeyIdentity, KeyRing, LockedKey};
pub use manifest::{ChunkRecord, Manifest, ProfileRef};
pub use memory::MemoryStore;
pub use openpgp::{generate_key, GeneratedKey, PgpDecryptor, PgpEncryptor};
pub use pipeline::{default_parallelism, run_backup, BackupOptions, DEFAULT_CHUNK_SIZE, DEFAULT_ZSTD_LEVEL};
pub use restore::{create_private_dirs, restore_stream, restore_to_file, restore_to_writer, DATA_STREAM};
pub use retention::{KeepPolicy, RetentionPolicy};
pub use signing::{generate_signing_key, ManifestSigner, SignatureError, SignerKey, TrustedSigners};
pub use source::{Source, SourceDetails, SourceOutput};
pub use store::{ByteStream, DynStore, ObjectMeta, Store, StoreExt};
pub use verify::{verify_backup, StreamCheck, VerifyMode, VerifyReport};

/// Crates whose types appear in this crate's API, re-exported so that an
/// embedder needs no extra dependencies (and gets matching versions).
pub mod reexports {
    pub use async_trait::async_trait;
    pub use bytes;
    pub use chrono;
    pub use chrono_tz;
    pub use futures;
    pub use serde_json;
}
