//! The `Encryptor` and `Decryptor` traits: how chunks are sealed and opened.

use std::io::{Read, Write};

use crate::error::Result;

/// Seals one chunk of (already compressed) bytes for the configured recipients.
///
/// Synchronous by design: the pipeline runs it on a blocking thread, one chunk
/// per core. Backing up needs only an `Encryptor`, built from public keys.
pub trait Encryptor: Send + Sync + std::fmt::Debug {
    /// Reads `input` to its end and writes one sealed message to `output`.
    ///
    /// # Errors
    /// [`crate::Error::Crypto`] when encryption fails, or the reader's I/O error.
    fn encrypt(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<()>;

    /// Fingerprints (upper-case hex) of the keys each message is sealed to.
    fn recipients(&self) -> Vec<String>;
}

/// Opens chunks sealed by an [`Encryptor`]; needs the secret key.
pub trait Decryptor: Send + Sync + std::fmt::Debug {
    /// Authenticates and opens one whole message into `out`. What is written to
    /// `out` may be used only when this returns `Ok`: the authentication (for
    /// OpenPGP, the MDC) completes at the end of the message.
    ///
    /// # Errors
    /// [`crate::Error::Crypto`] when the message is not for this key or fails
    /// authentication, or `out` fails.
    fn decrypt(&self, message: &[u8], out: &mut dyn Write) -> Result<()>;
}
