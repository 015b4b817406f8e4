//! Test support (feature `testing`): a real Swift all-in-one (with its S3
//! API, the `s3api` middleware), and a real Keystone in front of it for the
//! v3 tests.

mod keystone;
mod swift_aio;

pub use keystone::{KeystoneAccount, KeystoneServer};
pub use swift_aio::{SwiftServer, KEY, MAX_FILE_SIZE, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY, USER};
