//! Test support (feature `testing`): a real Swift all-in-one, and a real
//! Keystone in front of it for the v3 tests.

mod keystone;
mod swift_aio;

pub use keystone::{KeystoneAccount, KeystoneServer};
pub use swift_aio::{SwiftServer, KEY, MAX_FILE_SIZE, USER};
