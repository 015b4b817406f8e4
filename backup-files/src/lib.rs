#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod error;
mod extract;
mod pax;
mod pipe;
mod source;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{FilesConfig, OnUnreadable};
pub use extract::{check_archive, check_stream, extract_archive, restore_to_dir, ArchiveSummary};
pub use pipe::{FailureSlot, StreamReader};
pub use source::FilesSource;
