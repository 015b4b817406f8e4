//! Signing manifests with a secret key unlocked once at load.

use super::*;

/// The unlocked secret key that makes signatures.
pub(super) enum UnlockedKey {
    Primary(SecretKey),
    Subkey(SecretSubkey),
}

/// Signs manifests with a secret signing key. The key is unlocked once when it
/// is loaded, so the passphrase's S2K (deliberately slow) runs once, not per
/// signature.
pub struct ManifestSigner {
    pub(super) key: UnlockedKey,
    pub(super) hash: HashAlgorithm,
    pub(super) fingerprint: String,
    pub(super) public: SignerKey,
}

impl std::fmt::Debug for ManifestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestSigner")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl ManifestSigner {
    /// Reads an armored (`gpg --export-secret-keys -a`) or binary secret key and
    /// unlocks its signing key with `passphrase` (ignored for an unprotected key).
    ///
    /// The signing key is the newest subkey whose binding allows signing (as gpg
    /// chooses), else the primary key when its self-signature allows signing.
    ///
    /// # Errors
    /// [`Error::Key`] naming the file when it cannot be read, is not an OpenPGP
    /// secret key (a public key is called out as such), holds more than one key,
    /// is not a v4 key, or has no signing-capable key with secret material;
    /// [`Error::WrongPassphrase`] when the passphrase does not unlock it.
    pub fn from_file(path: &Path, passphrase: &str) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::Key {
            path: path.to_owned(),
            reason: format!("cannot read the signing key file ({e})"),
        })?;
        Self::from_bytes(path, &bytes, passphrase)
    }

    /// As [`ManifestSigner::from_file`], with the key's bytes; `label` names the
    /// key in errors.
    ///
    /// # Errors
    /// As [`ManifestSigner::from_file`].
    pub fn from_bytes(label: &Path, bytes: &[u8], passphrase: &str) -> Result<Self> {
        let key_error = |reason: String| Error::Key {
            path: label.to_owned(),
            reason,
        };
        let not_secret = |detail: String| {
            key_error(format!(
                "not an OpenPGP secret key ({detail}); export the signing key with \
                 `gpg --export-secret-keys -a KEYID`"
            ))
        };
        let mut secrets = Vec::new();
        let mut publics = 0usize;
        for item in parse_keys(bytes).map_err(|e| not_secret(e.to_string()))? {
            match item {
                PublicOrSecret::Secret(k) => secrets.push(k),
                PublicOrSecret::Public(_) => publics += 1,
            }
        }
        let secret = match (secrets.len(), publics) {
            (1, _) => secrets.pop().ok_or_else(|| not_secret("no key".into()))?,
            (0, 0) => return Err(not_secret("no key found".into())),
            (0, _) => {
                return Err(key_error(
                    "is a public key, but signing needs the secret key: export it with \
                     `gpg --export-secret-keys -a KEYID` and keep that file private"
                        .into(),
                ))
            }
            (n, _) => {
                return Err(key_error(format!(
                    "holds {n} secret keys; keep only the one that signs in this file"
                )))
            }
        };
        // gpg 2.2 verifies v4 signatures only; a v6 key would make backups that
        // cannot be checked without this tool.
        if secret.version() != KeyVersion::V4 {
            return Err(key_error(
                "is not a v4 key; GnuPG 2.2 cannot verify signatures of v6 keys: use an RSA or Ed25519Legacy key"
                    .into(),
            ));
        }
        let public = SignerKey::from_public(&SignedPublicKey::from(secret.clone())).map_err(&key_error)?;
        let password = Password::from(passphrase);
        // Prefer the newest signing subkey, like gpg; the primary last.
        let mut subkeys: Vec<&SecretSubkey> = secret
            .secret_subkeys
            .iter()
            .map(|s| &s.key)
            .filter(|k| {
                public
                    .data_keys
                    .iter()
                    .any(|d| matches!(d, DataKey::Subkey(p) if p.fingerprint() == k.fingerprint()))
            })
            .collect();
        subkeys.sort_by_key(|k| std::cmp::Reverse(k.created_at()));
        let unlock_error = |e: pgp::errors::Error| match e {
            pgp::errors::Error::Unsupported { .. } | pgp::errors::Error::Unimplemented { .. } => {
                key_error(format!("the secret key material cannot be unlocked: {e}"))
            }
            // A wrong passphrase shows up as a checksum or parse failure of the
            // decrypted key material, never as a dedicated error.
            _ => Error::WrongPassphrase { path: label.to_owned() },
        };
        for sub in subkeys {
            if is_stub(sub.secret_params()) {
                continue;
            }
            let mut key = sub.clone();
            crate::passphrase::unlock_subkey(&mut key, &password).map_err(unlock_error)?;
            return Ok(ManifestSigner {
                hash: signing_hash(&key),
                fingerprint: format!("{:X}", key.fingerprint()),
                key: UnlockedKey::Subkey(key),
                public,
            });
        }
        let primary_signs = public.data_keys.iter().any(|d| matches!(d, DataKey::Primary(_)));
        if primary_signs && !is_stub(secret.primary_key.secret_params()) {
            let mut key = secret.primary_key.clone();
            crate::passphrase::unlock_primary(&mut key, &password).map_err(unlock_error)?;
            return Ok(ManifestSigner {
                hash: signing_hash(&key),
                fingerprint: format!("{:X}", key.fingerprint()),
                key: UnlockedKey::Primary(key),
                public,
            });
        }
        Err(key_error(format!(
            "key {} has no signing-capable key with its secret part in this file (the signing key's \
             secret may be held elsewhere, e.g. on a smartcard); export a secret key that can sign",
            public.fingerprint
        )))
    }

    /// Upper-case hex fingerprint of the key that signs: a signing subkey's when
    /// one signs, else the primary key's. [`TrustedSigners::verify`] returns the
    /// primary's, which is [`SignerKey::fingerprint`] of
    /// [`ManifestSigner::public_key`].
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The public half of the signing key, to trust its signatures.
    pub fn public_key(&self) -> SignerKey {
        self.public.clone()
    }

    /// Makes an ASCII-armored detached signature over `data`: signature type
    /// binary (0x00), SHA-256 or stronger, with issuer fingerprint and creation
    /// time in the hashed area and the issuer key id in the unhashed one.
    ///
    /// # Errors
    /// [`Error::Crypto`] when signing or armoring fails.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        let crypto = |e: pgp::errors::Error| Error::Crypto {
            operation: "sign",
            reason: e.to_string(),
        };
        // The key was unlocked at load: no passphrase needed here.
        let pw = Password::empty();
        let sig = match &self.key {
            UnlockedKey::Primary(k) => DetachedSignature::sign_binary_data(thread_rng(), k, &pw, self.hash, data),
            UnlockedKey::Subkey(k) => DetachedSignature::sign_binary_data(thread_rng(), k, &pw, self.hash, data),
        }
        .map_err(crypto)?;
        sig.to_armored_bytes(ArmorOptions::default()).map_err(crypto)
    }
}

/// The key's own recommendation (larger for big ECDSA curves), never below SHA-256.
pub(super) fn signing_hash(key: &impl SigningKey) -> HashAlgorithm {
    let recommended = key.hash_alg();
    if strong_hash(recommended) && recommended != HashAlgorithm::Sha224 {
        recommended
    } else {
        HashAlgorithm::Sha256
    }
}

/// True for a secret key packet without its secret (GnuPG's "gnu-dummy" S2K,
/// written by `--export-secret-subkeys` or for smartcard keys).
pub(super) fn is_stub(params: &SecretParams) -> bool {
    let SecretParams::Encrypted(enc) = params else {
        return false;
    };
    match enc.string_to_key_params() {
        S2kParams::Cfb { s2k, .. } | S2kParams::MalleableCfb { s2k, .. } | S2kParams::Aead { s2k, .. } => {
            matches!(s2k, StringToKey::Private { .. })
        }
        S2kParams::Unprotected | S2kParams::LegacyCfb { .. } => false,
    }
}
