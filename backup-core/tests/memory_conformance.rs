//! The store conformance battery against the in-memory store.

use backup_core::MemoryStore;

backup_core::store_conformance!(async { Box::new(MemoryStore::new()) });
