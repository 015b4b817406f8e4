#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod browse;
mod config;
mod entry;
mod error;
mod extract;
mod nofollow;
mod options;
mod partial;
mod pax;
mod pipe;
mod restore;
mod select;
mod source;
mod spool;
mod staging;
#[cfg(feature = "testing")]
pub mod testing;

pub use browse::{find_file_in_archive, list_entries, read_file, scan_archive, with_ends, Entries};
pub use config::{FilesConfig, OnUnreadable};
pub use entry::{EntryKind, FileEntry};
pub use extract::{check_archive, check_stream, extract_archive, restore_to_dir, ArchiveSummary};
pub use options::ExtractOptions;
pub use partial::{restore_selection, SelectedRestore};
pub use select::Selection;

pub use restore::{restore_folder, restore_folder_with, TarCheck, KIND};
pub use source::FilesSource;
