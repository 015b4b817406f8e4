#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod aws_ini;
mod azure;
mod claims;
mod config;
mod error;
mod s3;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use azure::AzureConfig;
pub use config::{ConditionalCreate, DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, MAX_PARTS};
pub use s3::S3Config;
pub use store::CloudStore;
