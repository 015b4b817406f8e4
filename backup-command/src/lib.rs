#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod error;
mod group;
mod hook;
mod lines;
mod restore;
mod source;
mod spec;

pub use error::CommandError;
pub use hook::run_hook;
pub use lines::{Line, LineSink, OutputStream};
pub use restore::{restore_into_command, DrainCheck};
pub use source::CommandSource;
pub use spec::{find_program, CommandSpec};

/// The profile kind of command backups, as stored in manifests.
pub const KIND: &str = "command";
