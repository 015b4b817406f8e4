#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod error;
mod store;

pub use config::FsConfig;
pub use store::FsStore;
