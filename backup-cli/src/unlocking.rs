//! A secret key unlocked on another thread while the run goes on.
//!
//! A gpg-made key's S2K is slow on purpose (a fifth of a second of
//! collision-checked SHA-1 here). Unlocked up front it delays every restore by
//! that much; unlocked beside the listing, the database checks and the first
//! downloads, it costs no wall time. The first chunk to decrypt waits for it,
//! and a wrong passphrase still fails the run before any plaintext exists.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use backup_core::{Decryptor, Error, PgpDecryptor, Result};

/// A [`Decryptor`] whose key is being unlocked on its own thread.
pub struct Unlocking {
    path: PathBuf,
    state: Mutex<State>,
}

enum State {
    Pending(JoinHandle<Result<PgpDecryptor>>),
    Ready(Arc<PgpDecryptor>),
    /// The error went to the first chunk; the others are told it failed.
    Failed,
}

impl std::fmt::Debug for Unlocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocking")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Unlocking {
    /// Starts unlocking the secret key at `path` with `passphrase`.
    pub fn start(path: PathBuf, passphrase: String) -> Self {
        let key = path.clone();
        let thread = std::thread::spawn(move || PgpDecryptor::from_file(&key, &passphrase));
        Unlocking {
            path,
            state: Mutex::new(State::Pending(thread)),
        }
    }

    /// The unlocked key, waiting for it the first time.
    fn key(&self) -> Result<Arc<PgpDecryptor>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pending = match std::mem::replace(&mut *state, State::Failed) {
            State::Ready(key) => {
                *state = State::Ready(Arc::clone(&key));
                return Ok(key);
            }
            State::Failed => {
                return Err(Error::Key {
                    path: self.path.clone(),
                    reason: "could not be unlocked (see the first error)".into(),
                })
            }
            State::Pending(thread) => thread,
        };
        let key = pending.join().map_err(|_| Error::Key {
            path: self.path.clone(),
            reason: "the thread unlocking it panicked".into(),
        })??;
        let key = Arc::new(key);
        *state = State::Ready(Arc::clone(&key));
        Ok(key)
    }
}

impl Decryptor for Unlocking {
    fn decrypt(&self, message: &[u8], out: &mut dyn std::io::Write) -> Result<()> {
        self.key()?.decrypt(message, out)
    }
}
