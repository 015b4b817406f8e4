//! Test support (feature `testing`): a real Azurite (the Azure Blob
//! emulator) on loopback. The S3 tests use Swift's own S3 API, from
//! `backup_swift::testing::SwiftServer`.

mod azurite;

pub use azurite::{AzuriteServer, ACCOUNT, ACCOUNT_KEY};
