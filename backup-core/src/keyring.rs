//! Several secret keys, newest first, for reading backups made across a key
//! rotation: each chunk goes to the key it is encrypted to.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgp::composed::{Deserializable, Esk, Message, SignedSecretKey};
use pgp::types::{KeyDetails, KeyId, Password, SecretParams};

use crate::encrypt::Decryptor;
use crate::error::{Error, Result};
use crate::openpgp::PgpDecryptor;

/// Who a secret key is: its fingerprint and the key ids a message's PKESK
/// packets name when they are encrypted to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    fingerprint: String,
    key_ids: Vec<KeyId>,
}

impl KeyIdentity {
    pub(crate) fn of(key: &SignedSecretKey) -> Self {
        // Every key id, not only those of encryption subkeys: rpgp tries any
        // (sub)key whose id a PKESK names, and so must the ring.
        let mut key_ids = vec![key.primary_key.legacy_key_id()];
        key_ids.extend(key.secret_subkeys.iter().map(|s| s.key.legacy_key_id()));
        KeyIdentity {
            fingerprint: format!("{:X}", key.fingerprint()),
            key_ids,
        }
    }

    /// Upper-case hex fingerprint of the primary key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// A secret key as read from its file, not unlocked yet: its identity is
/// known without the S2K, which [`LockedKey::unlock`] runs once.
pub struct LockedKey {
    path: PathBuf,
    key: SignedSecretKey,
    identity: KeyIdentity,
}

impl std::fmt::Debug for LockedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockedKey")
            .field("path", &self.path)
            .field("key", &self.identity.fingerprint)
            .finish_non_exhaustive()
    }
}

impl LockedKey {
    /// Reads an armored (`gpg --export-secret-key -a`) or binary secret key.
    ///
    /// # Errors
    /// [`Error::Key`] naming the file when it is missing or not a secret key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::Key {
            path: path.to_owned(),
            reason: format!("cannot read the key file ({e}); check the path in the configuration"),
        })?;
        Self::from_armored(path, &bytes)
    }

    /// As [`LockedKey::from_file`], with the key's bytes; `path` labels errors.
    ///
    /// # Errors
    /// As [`LockedKey::from_file`].
    pub fn from_armored(path: &Path, bytes: &[u8]) -> Result<Self> {
        let (key, _) = SignedSecretKey::from_reader_single(bytes).map_err(|e| Error::Key {
            path: path.to_owned(),
            reason: format!("not an OpenPGP secret key ({e}); export one with `gpg --export-secret-key -a KEYID`"),
        })?;
        Ok(LockedKey {
            path: path.to_owned(),
            identity: KeyIdentity::of(&key),
            key,
        })
    }

    /// The key's fingerprint and key ids.
    pub fn identity(&self) -> &KeyIdentity {
        &self.identity
    }

    /// The file the key came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unlocks the parts that decrypt, once.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] naming the file when the passphrase does not unlock it.
    pub fn unlock(self, passphrase: &str) -> Result<PgpDecryptor> {
        let passphrase = Password::from(passphrase);
        // Only the parts that decrypt: the S2K of a gpg-made key (tens of MB
        // of collision-checked SHA-1, on purpose) would otherwise run again
        // for every chunk, and once more for a primary key that only
        // certifies and signs.
        let LockedKey { path, mut key, .. } = self;
        let wrong = |_| Error::WrongPassphrase { path: path.clone() };
        for sub in &mut key.secret_subkeys {
            if sub.key.algorithm().can_encrypt() && matches!(sub.key.secret_params(), SecretParams::Encrypted(_)) {
                crate::passphrase::unlock_subkey(&mut sub.key, &passphrase).map_err(wrong)?;
            }
        }
        let subkey_decrypts = key.secret_subkeys.iter().any(|s| s.key.algorithm().can_encrypt());
        if !subkey_decrypts && matches!(key.primary_key.secret_params(), SecretParams::Encrypted(_)) {
            crate::passphrase::unlock_primary(&mut key.primary_key, &passphrase).map_err(wrong)?;
        }
        Ok(PgpDecryptor::unlocked(key))
    }
}

/// A [`Decryptor`] holding several secret keys, newest first.
///
/// It reads the key ids of a message's PKESK packets and hands the message to
/// the first key they name, so a key is used (and, if it unlocks lazily,
/// unlocked) only for the chunks encrypted to it. A chunk encrypted to none of
/// them fails with [`Error::WrongKey`] listing every key held.
pub struct KeyRing {
    keys: Vec<(KeyIdentity, Arc<dyn Decryptor>)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(id, _)| &id.fingerprint))
            .finish()
    }
}

impl KeyRing {
    /// A ring of keys, newest first: each identity with the decryptor that
    /// holds (or is unlocking) that key.
    pub fn new(keys: Vec<(KeyIdentity, Arc<dyn Decryptor>)>) -> Self {
        KeyRing { keys }
    }

    /// A ring of unlocked keys, newest first.
    pub fn from_unlocked(keys: Vec<PgpDecryptor>) -> Self {
        Self::new(
            keys.into_iter()
                .map(|k| (k.identity().clone(), Arc::new(k) as Arc<dyn Decryptor>))
                .collect(),
        )
    }

    /// Fingerprints of the keys held, newest first.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|(id, _)| id.fingerprint.clone()).collect()
    }

    fn wrong_key(&self, recipients: Vec<String>) -> Error {
        Error::WrongKey {
            key: String::new(),
            recipients,
            have: self.fingerprints(),
        }
    }
}

impl Decryptor for KeyRing {
    fn decrypt(&self, message: &[u8], out: &mut dyn Write) -> Result<()> {
        let named = pkesk_ids(message)?;
        // Keys a PKESK names first; an anonymous (wildcard) or v6 PKESK could
        // be for any of them, so then all are tried, newest first.
        let anyone = named.iter().any(|id| id.is_none_or(|id| id.is_wildcard()));
        let (exact, rest): (Vec<_>, Vec<_>) = self
            .keys
            .iter()
            .partition(|(identity, _)| named.iter().flatten().any(|id| identity.key_ids.contains(id)));
        let candidates = exact.into_iter().chain(rest.into_iter().filter(|_| anyone));
        for (_, key) in candidates {
            match key.decrypt(message, out) {
                // A key id can collide, and a wildcard names no one: try on.
                Err(Error::WrongKey { .. }) => continue,
                other => return other,
            }
        }
        let recipients = named
            .iter()
            .map(|id| id.map_or_else(|| "(v6 PKESK)".to_owned(), |id| id.to_string().to_uppercase()))
            .collect();
        Err(self.wrong_key(recipients))
    }
}

/// The key ids a message's PKESK packets name (`None` for a v6 PKESK).
fn pkesk_ids(message: &[u8]) -> Result<Vec<Option<KeyId>>> {
    let crypto = |reason: String| Error::Crypto {
        operation: "decrypt",
        reason,
    };
    match Message::from_bytes(message).map_err(|e| crypto(e.to_string()))? {
        Message::Encrypted { esk, .. } => Ok(esk
            .iter()
            .filter_map(|esk| match esk {
                Esk::PublicKeyEncryptedSessionKey(p) => Some(p.id().ok().copied()),
                _ => None,
            })
            .collect()),
        _ => Err(crypto("not an encrypted message".into())),
    }
}

#[cfg(test)]
#[path = "keyring_tests.rs"]
mod tests;
