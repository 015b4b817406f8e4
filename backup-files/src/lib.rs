#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod config;
mod error;
mod extract;
mod nofollow;
mod options;
mod pax;
mod pipe;
mod restore;
mod source;
mod staging;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{FilesConfig, OnUnreadable};
pub use extract::{check_archive, check_stream, extract_archive, restore_to_dir, ArchiveSummary};
pub use options::ExtractOptions;

pub use restore::{restore_folder, restore_folder_with, TarCheck, KIND};
pub use source::FilesSource;
