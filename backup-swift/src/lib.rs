#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod auth;
mod client;
mod config;
mod error;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{read_openrc, Credentials, Project, SwiftConfig};
pub use store::{SwiftStore, SwiftStoreBuilder};
