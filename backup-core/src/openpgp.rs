//! OpenPGP sealing of chunks with rpgp, in the shape GnuPG 2.2 reads:
//! v4 keys, PKESK v3 + SEIPD v1 (MDC), AES-256, no compression packet.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use pgp::composed::{
    DecryptionOptions, Deserializable, EncryptionCaps, KeyType, Message, MessageBuilder, SecretKeyParamsBuilder,
    SignedPublicKey, SignedSecretKey, SubkeyParamsBuilder, TheRing,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::Signature;
use pgp::types::{KeyDetails, KeyVersion, Password, Seipdv1ReadMode};
use rand::thread_rng;

use crate::encrypt::{Decryptor, Encryptor};
use crate::error::{Error, Result};
use crate::keyring::{KeyIdentity, LockedKey};

/// Where a sealed chunk goes: one encryption key of one recipient.
enum Recipient {
    Primary(SignedPublicKey),
    Subkey(pgp::composed::SignedPublicSubKey),
}

/// Encrypts chunks to one or more recipients' public keys.
pub struct PgpEncryptor {
    recipients: Vec<Recipient>,
    fingerprints: Vec<String>,
}

impl std::fmt::Debug for PgpEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgpEncryptor")
            .field("recipients", &self.fingerprints)
            .finish()
    }
}

impl PgpEncryptor {
    /// Reads public keys (armored as `gpg --export -a` writes them, or binary),
    /// one per file.
    ///
    /// # Errors
    /// [`Error::Key`] naming the file when it is missing, not a public key, not a
    /// v4 key, or has no usable encryption key; [`Error::Config`] for no files.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::config(
                "recipients",
                "no recipient public key configured: add the path of an armored public key \
                 (e.g. from `gpg --export -a KEYID`)",
            ));
        }
        let mut keys = Vec::new();
        for path in paths {
            let bytes = read_key_file(path)?;
            keys.push((path.clone(), bytes));
        }
        Self::from_armored(keys.iter().map(|(p, b)| (p.as_path(), b.as_slice())))
    }

    /// Builds an encryptor from key bytes, each labelled with where it came from.
    ///
    /// # Errors
    /// As [`PgpEncryptor::from_files`].
    pub fn from_armored<'a>(keys: impl IntoIterator<Item = (&'a Path, &'a [u8])>) -> Result<Self> {
        let mut recipients = Vec::new();
        let mut fingerprints = Vec::new();
        for (path, bytes) in keys {
            let key_error = |reason: String| Error::Key {
                path: path.to_owned(),
                reason,
            };
            let (key, _) = SignedPublicKey::from_reader_single(bytes).map_err(|e| {
                key_error(format!(
                    "not an OpenPGP public key ({e}); export one with `gpg --export -a KEYID`"
                ))
            })?;
            key.verify_bindings()
                .map_err(|e| key_error(format!("self-signatures do not verify: {e}")))?;
            if key.version() != KeyVersion::V4 {
                return Err(key_error(
                    "is not a v4 key; GnuPG 2.2 cannot decrypt for v6 keys: use an RSA or \
                     Ed25519Legacy/Cv25519Legacy key"
                        .into(),
                ));
            }
            fingerprints.push(format!("{:X}", key.fingerprint()));
            recipients
                .push(encryption_key(key).ok_or_else(|| {
                    key_error("has no valid encryption key (no subkey with the encrypt flag)".into())
                })?);
        }
        Ok(PgpEncryptor {
            recipients,
            fingerprints,
        })
    }
}

/// Picks the newest subkey whose binding signature allows encryption; falls back
/// to the primary key when its self-signature allows encryption (old RSA keys).
fn encryption_key(key: SignedPublicKey) -> Option<Recipient> {
    let can_encrypt = |sigs: &[Signature]| {
        sigs.iter()
            .max_by_key(|s| s.created())
            .map(|s| s.key_flags().encrypt_comms() || s.key_flags().encrypt_storage())
            .unwrap_or(false)
    };
    let subkey = key
        .public_subkeys
        .iter()
        .filter(|sk| sk.key.algorithm().can_encrypt() && can_encrypt(&sk.signatures))
        .max_by_key(|sk| sk.key.created_at())
        .cloned();
    if let Some(sk) = subkey {
        return Some(Recipient::Subkey(sk));
    }
    let primary_ok =
        key.primary_key.algorithm().can_encrypt() && key.details.users.iter().any(|u| can_encrypt(&u.signatures));
    primary_ok.then_some(Recipient::Primary(key))
}

impl Encryptor for PgpEncryptor {
    fn encrypt(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<()> {
        let crypto = |e: pgp::errors::Error| Error::Crypto {
            operation: "encrypt",
            reason: e.to_string(),
        };
        let mut rng = thread_rng();
        let mut builder = MessageBuilder::from_reader("", input).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
        for recipient in &self.recipients {
            match recipient {
                Recipient::Primary(k) => builder.encrypt_to_key(&mut rng, k),
                Recipient::Subkey(k) => builder.encrypt_to_key(&mut rng, k),
            }
            .map_err(crypto)?;
        }
        builder.to_writer(&mut rng, output).map_err(crypto)
    }

    fn recipients(&self) -> Vec<String> {
        self.fingerprints.clone()
    }
}

/// Decrypts chunks with one secret key (several: [`crate::KeyRing`]).
pub struct PgpDecryptor {
    key: SignedSecretKey,
    passphrase: Password,
    identity: KeyIdentity,
}

impl std::fmt::Debug for PgpDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgpDecryptor")
            .field("key", &self.identity.fingerprint())
            .finish_non_exhaustive()
    }
}

impl PgpDecryptor {
    /// Reads an armored (`gpg --export-secret-key -a`) or binary secret key and
    /// checks the passphrase right away, so a wrong one is reported as such.
    ///
    /// # Errors
    /// [`Error::Key`] naming the file when it is missing or not a secret key;
    /// [`Error::WrongPassphrase`] when the passphrase does not unlock it.
    pub fn from_file(path: &Path, passphrase: &str) -> Result<Self> {
        LockedKey::from_file(path)?.unlock(passphrase)
    }

    /// As [`PgpDecryptor::from_file`], with the key's bytes; `path` labels errors.
    ///
    /// # Errors
    /// As [`PgpDecryptor::from_file`].
    pub fn from_armored(path: &Path, bytes: &[u8], passphrase: &str) -> Result<Self> {
        LockedKey::from_armored(path, bytes)?.unlock(passphrase)
    }

    /// A key whose decrypting parts [`LockedKey::unlock`] has unlocked.
    pub(crate) fn unlocked(key: SignedSecretKey) -> Self {
        PgpDecryptor {
            identity: KeyIdentity::of(&key),
            key,
            passphrase: Password::empty(),
        }
    }

    /// Upper-case hex fingerprint of the secret key's primary key.
    pub fn fingerprint(&self) -> &str {
        self.identity.fingerprint()
    }

    /// The key's fingerprint and key ids, for a [`crate::KeyRing`].
    pub fn identity(&self) -> &KeyIdentity {
        &self.identity
    }
}

impl Decryptor for PgpDecryptor {
    fn decrypt(&self, message: &[u8], out: &mut dyn Write) -> Result<()> {
        let crypto = |reason: String| Error::Crypto {
            operation: "decrypt",
            reason,
        };
        let msg = Message::from_bytes(message).map_err(|e| crypto(e.to_string()))?;
        // Streaming mode: rpgp would otherwise buffer (and regrow) a copy of the
        // whole message. Its MDC is still checked at the end, and the caller
        // keeps everything written to `out` private until this returns Ok.
        let ring = TheRing {
            secret_keys: vec![&self.key],
            key_passwords: vec![&self.passphrase],
            decrypt_options: DecryptionOptions::new().set_seipdv1_read_mode(Seipdv1ReadMode::Streaming),
            ..Default::default()
        };
        let (mut msg, _) = msg.decrypt_the_ring(ring, true).map_err(|e| match e {
            // The caller knows which chunk and which recipients: it fills them in.
            pgp::errors::Error::MissingKey => Error::WrongKey {
                key: String::new(),
                recipients: Vec::new(),
                have: vec![self.identity.fingerprint().to_owned()],
            },
            other => crypto(other.to_string()),
        })?;
        // Messages sealed by gpg carry a compression packet; ours do not.
        if msg.is_compressed() {
            msg = msg.decompress().map_err(|e| crypto(e.to_string()))?;
        }
        std::io::copy(&mut msg, out)
            .map(|_| ())
            .map_err(|e| crypto(e.to_string()))
    }
}

/// A freshly generated key pair, armored.
#[non_exhaustive]
pub struct GeneratedKey {
    /// `gpg --import`-able public key.
    pub public_armored: String,
    /// `gpg --import`-able secret key, protected by the passphrase when one was given.
    pub secret_armored: String,
    /// Upper-case hex fingerprint.
    pub fingerprint: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Generates an Ed25519Legacy signing primary with a Cv25519Legacy encryption
/// subkey: v4, readable by GnuPG 2.2, seconds to make.
///
/// # Errors
/// [`Error::Crypto`] when generation fails.
pub fn generate_key(user_id: &str, passphrase: Option<&str>) -> Result<GeneratedKey> {
    let crypto = |reason: String| Error::Crypto {
        operation: "keygen",
        reason,
    };
    let subkey = SubkeyParamsBuilder::default()
        .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
        .can_sign(false)
        .can_encrypt(EncryptionCaps::All)
        .can_authenticate(false)
        .passphrase(passphrase.map(str::to_owned))
        .build()
        .map_err(|e| crypto(e.to_string()))?;
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id(user_id.to_owned())
        .passphrase(passphrase.map(str::to_owned))
        .subkeys(vec![subkey])
        .build()
        .map_err(|e| crypto(e.to_string()))?;
    let secret = params.generate(thread_rng()).map_err(|e| crypto(e.to_string()))?;
    armored_pair(&secret)
}

/// A generated secret key and its public half, armored as gpg imports them.
pub(crate) fn armored_pair(secret: &SignedSecretKey) -> Result<GeneratedKey> {
    let armor = |r: pgp::errors::Result<String>| {
        r.map_err(|e| Error::Crypto {
            operation: "keygen",
            reason: e.to_string(),
        })
    };
    let public = SignedPublicKey::from(secret.clone());
    Ok(GeneratedKey {
        fingerprint: format!("{:X}", secret.fingerprint()),
        public_armored: armor(public.to_armored_string(Default::default()))?,
        secret_armored: armor(secret.to_armored_string(Default::default()))?,
    })
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Key {
        path: path.to_owned(),
        reason: format!("cannot read the key file ({e}); check the path in the configuration"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let key = generate_key("Test <t@example.org>", Some("pw")).unwrap();
        let enc = PgpEncryptor::from_armored([(Path::new("pub"), key.public_armored.as_bytes())]).unwrap();
        let mut sealed = Vec::new();
        enc.encrypt(&mut &b"hello chunk"[..], &mut sealed).unwrap();
        let dec = PgpDecryptor::from_armored(Path::new("sec"), key.secret_armored.as_bytes(), "pw").unwrap();
        let mut plain = Vec::new();
        dec.decrypt(&sealed, &mut plain).unwrap();
        assert_eq!(plain, b"hello chunk");
        let wrong = PgpDecryptor::from_armored(Path::new("sec"), key.secret_armored.as_bytes(), "no");
        assert!(matches!(wrong, Err(Error::WrongPassphrase { .. })));
    }

    #[test]
    fn tampered_message_is_refused() {
        let key = generate_key("Test <t@example.org>", None).unwrap();
        let enc = PgpEncryptor::from_armored([(Path::new("pub"), key.public_armored.as_bytes())]).unwrap();
        let mut sealed = Vec::new();
        enc.encrypt(&mut &[7u8; 4096][..], &mut sealed).unwrap();
        let n = sealed.len();
        sealed[n - 100] ^= 1;
        let dec = PgpDecryptor::from_armored(Path::new("sec"), key.secret_armored.as_bytes(), "").unwrap();
        assert!(dec.decrypt(&sealed, &mut Vec::new()).is_err());
    }
}
