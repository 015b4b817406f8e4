#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod auth;
mod client;
mod config;
mod error;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{read_openrc, Credentials, Project, SwiftConfig};
pub use store::SwiftStore;
