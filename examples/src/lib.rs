//! Examples of embedding backupapps; see `src/bin/`. Each is built and run by
//! this crate's tests. [`DirStore`] is a custom `Store` that passes the
//! conformance battery (`tests/custom_store.rs`).

mod dir_store;

pub use dir_store::DirStore;
