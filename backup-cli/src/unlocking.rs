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

use backup_core::{Decryptor, Error, LockedKey, PgpDecryptor, Result};

/// A [`Decryptor`] whose key is being unlocked on its own thread.
pub struct Unlocking {
    path: PathBuf,
    state: Mutex<State>,
}

enum State {
    Pending(JoinHandle<Result<PgpDecryptor>>),
    Ready(Arc<PgpDecryptor>),
    /// Why unlocking failed, kept to give every chunk the same error: the
    /// workers race, and whichever chunk comes first in order is reported.
    Failed(Failure),
}

#[derive(Clone)]
enum Failure {
    WrongPassphrase,
    Key(String),
}

impl std::fmt::Debug for Unlocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocking")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Unlocking {
    /// Starts unlocking `key` (already read, so its identity is known and a
    /// missing file already said) with `passphrase`.
    pub fn start(key: LockedKey, passphrase: String) -> Self {
        let path = key.path().to_owned();
        let thread = std::thread::spawn(move || key.unlock(&passphrase));
        Unlocking {
            path,
            state: Mutex::new(State::Pending(thread)),
        }
    }

    /// The unlocked key, waiting for it the first time.
    fn key(&self) -> Result<Arc<PgpDecryptor>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let failure = match &*state {
            State::Ready(key) => return Ok(Arc::clone(key)),
            State::Failed(failure) => failure.clone(),
            State::Pending(_) => {
                let State::Pending(thread) = std::mem::replace(&mut *state, State::Failed(Failure::WrongPassphrase))
                else {
                    unreachable!("matched just above")
                };
                match thread.join() {
                    Ok(Ok(key)) => {
                        let key = Arc::new(key);
                        *state = State::Ready(Arc::clone(&key));
                        return Ok(key);
                    }
                    Ok(Err(Error::WrongPassphrase { .. })) => Failure::WrongPassphrase,
                    Ok(Err(Error::Key { reason, .. })) => Failure::Key(reason),
                    Ok(Err(other)) => Failure::Key(other.report()),
                    Err(_) => Failure::Key("the thread unlocking it panicked".into()),
                }
            }
        };
        *state = State::Failed(failure.clone());
        Err(match failure {
            Failure::WrongPassphrase => Error::WrongPassphrase {
                path: self.path.clone(),
            },
            Failure::Key(reason) => Error::Key {
                path: self.path.clone(),
                reason,
            },
        })
    }
}

impl Decryptor for Unlocking {
    fn decrypt(&self, message: &[u8], out: &mut dyn std::io::Write) -> Result<()> {
        self.key()?.decrypt(message, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_hears_the_same_wrong_passphrase() {
        let key = backup_core::generate_key("T <t@example.org>", Some("right")).expect("key");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("k.sec.asc");
        std::fs::write(&path, key.secret_armored).expect("write key");
        let locked = LockedKey::from_file(&path).expect("read key");
        let unlocking = Arc::new(Unlocking::start(locked, "wrong".into()));
        // Workers decrypting chunks in parallel race for the key: whichever
        // chunk comes first must say what went wrong, not "see above".
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let u = Arc::clone(&unlocking);
                std::thread::spawn(move || u.decrypt(b"not a message", &mut Vec::new()))
            })
            .collect();
        for worker in workers {
            let err = worker.join().expect("worker").expect_err("wrong passphrase");
            assert!(matches!(err, Error::WrongPassphrase { .. }), "{err}");
        }
    }
}
