//! Detached OpenPGP signatures over manifests, in the shape GnuPG 2.2 reads.
//!
//! A backup's `manifest.json.sig` is an ASCII-armored detached signature over the
//! exact bytes of `manifest.json`, made on the backing-up host with a sign-only
//! key ([`ManifestSigner`]). Readers accept a manifest only when its signature
//! verifies against one of the public keys they were configured to trust
//! ([`TrustedSigners`]); `gpg --verify manifest.json.sig manifest.json` accepts
//! the same signatures, so disaster recovery does not depend on this crate.

use std::path::{Path, PathBuf};

use pgp::composed::{
    ArmorOptions, Deserializable, DetachedSignature, EncryptionCaps, KeyType, PublicOrSecret, SecretKeyParamsBuilder,
    SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{PublicKey, PublicSubkey, SecretKey, SecretSubkey, Signature, SignatureType, SubpacketData};
use pgp::types::{
    Fingerprint, KeyDetails, KeyId, KeyVersion, Password, S2kParams, SecretParams, SigningKey, StringToKey, Tag,
};
use rand::thread_rng;

use crate::error::{Error, Result};
use crate::openpgp::GeneratedKey;

/// Largest signature input [`TrustedSigners::verify`] parses. Signatures come from
/// an untrusted store; a real one is well under 2 KiB (RSA 4096 armored ≈ 900 B).
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// Most signature packets one signature input may hold. Each is tried against
/// every trusted key, so a crafted input of many tiny packets must not turn into
/// thousands of public-key operations.
const MAX_SIGNATURE_PACKETS: usize = 16;

/// Why a detached signature was not accepted.
///
/// Every variant means "do not trust the signed bytes"; the variants only differ
/// in what the operator is told.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The input is not a detached OpenPGP signature over data (garbage, too
    /// large, no signature packet, not a binary or text signature).
    #[error("not a valid detached OpenPGP signature: {reason}")]
    Malformed {
        /// What is wrong with the input.
        reason: String,
    },

    /// The signature is well formed but was made by no trusted key.
    #[error("signed by no trusted key (issuer: {}); trust the signer's public key if this backup is genuine", issuers_text(.issuers))]
    UnknownSigner {
        /// Upper-case hex fingerprints and key ids the signature names as issuer.
        issuers: Vec<String>,
    },

    /// A trusted key's signature that does not verify over these bytes: the data
    /// or the signature was altered.
    #[error("signature by trusted key {signer} does not match the signed bytes (altered or damaged): {reason}")]
    Invalid {
        /// Upper-case hex fingerprint of the trusted key's primary key.
        signer: String,
        /// The verification failure.
        reason: String,
    },

    /// The signature uses a hash algorithm that is not collision resistant.
    #[error("signature uses the weak hash algorithm {algorithm}; only SHA-2 and SHA-3 signatures are accepted")]
    WeakHash {
        /// The algorithm's name, e.g. `SHA1`.
        algorithm: String,
    },
}

fn issuers_text(issuers: &[String]) -> String {
    if issuers.is_empty() {
        "not named in the signature".to_owned()
    } else {
        issuers.join(", ")
    }
}

/// A key that may make data signatures: the primary key or a subkey of a
/// certificate. Kept as an enum because rpgp's packet types differ.
#[derive(Clone)]
enum DataKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl DataKey {
    fn fingerprint(&self) -> Fingerprint {
        match self {
            DataKey::Primary(k) => k.fingerprint(),
            DataKey::Subkey(k) => k.fingerprint(),
        }
    }

    fn key_id(&self) -> KeyId {
        match self {
            DataKey::Primary(k) => k.legacy_key_id(),
            DataKey::Subkey(k) => k.legacy_key_id(),
        }
    }

    fn verify(&self, sig: &Signature, data: &[u8]) -> pgp::errors::Result<()> {
        match self {
            DataKey::Primary(k) => sig.verify(k, data),
            DataKey::Subkey(k) => sig.verify(k, data),
        }
    }
}

/// One trusted signer public key: its primary key and the subkeys whose binding
/// signatures allow signing.
#[derive(Clone)]
pub struct SignerKey {
    /// Upper-case hex fingerprint of the primary key.
    fingerprint: String,
    /// The keys allowed to make data signatures, primary first, then subkeys.
    data_keys: Vec<DataKey>,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signing: Vec<String> = self
            .data_keys
            .iter()
            .map(|k| format!("{:X}", k.fingerprint()))
            .collect();
        f.debug_struct("SignerKey")
            .field("fingerprint", &self.fingerprint)
            .field("signing_keys", &signing)
            .finish()
    }
}

impl SignerKey {
    /// Reads every public key in `bytes` (armored as `gpg --export -a` writes
    /// them, several armor blocks in a row, or binary); `label` names the source
    /// in errors.
    ///
    /// # Errors
    /// [`Error::Key`] naming `label` when the bytes are not OpenPGP public keys,
    /// hold a secret key, hold no key, or a key has no valid self-signature or no
    /// signing-capable key.
    pub fn from_bytes(label: &Path, bytes: &[u8]) -> Result<Vec<SignerKey>> {
        let key_error = |reason: String| Error::Key {
            path: label.to_owned(),
            reason,
        };
        let mut keys = Vec::new();
        for item in parse_keys(bytes).map_err(|e| {
            key_error(format!(
                "not an OpenPGP public key ({e}); give an armored or binary public key, as `gpg --export -a KEYID` writes it"
            ))
        })? {
            match item {
                PublicOrSecret::Public(key) => keys.push(SignerKey::from_public(&key).map_err(&key_error)?),
                // Readers never need secret material; refusing keeps it out of
                // places that only verify.
                PublicOrSecret::Secret(_) => {
                    return Err(key_error(
                        "holds a secret key, but verifying needs only the public key: export it with \
                         `gpg --export -a KEYID` and use that file"
                            .into(),
                    ))
                }
            }
        }
        if keys.is_empty() {
            return Err(key_error(
                "holds no OpenPGP public key; export one with `gpg --export -a KEYID`".into(),
            ));
        }
        Ok(keys)
    }

    /// Checks a certificate's self-signatures and collects its signing keys.
    fn from_public(key: &SignedPublicKey) -> std::result::Result<SignerKey, String> {
        let fingerprint = format!("{:X}", key.fingerprint());
        let primary = &key.primary_key;
        let mut data_keys = Vec::new();
        match primary_may_sign(key) {
            Some(true) => data_keys.push(DataKey::Primary(primary.clone())),
            Some(false) => {}
            None => {
                return Err(format!(
                    "key {fingerprint} has no valid self-signature (damaged or incomplete export); \
                     export it again with `gpg --export -a {fingerprint}`"
                ))
            }
        }
        for sub in &key.public_subkeys {
            if !sub.key.algorithm().can_sign() {
                continue;
            }
            // The newest binding that verifies decides the subkey's flags, as in gpg.
            let binding = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .filter(|s| s.verify_subkey_binding(primary, &sub.key).is_ok())
                .max_by_key(|s| s.created());
            let Some(binding) = binding else { continue };
            if !binding.key_flags().sign() {
                continue;
            }
            // A signing subkey must also sign the primary (the "back signature");
            // without it anyone could attach their own subkey to a copy of the
            // certificate and sign in its name. gpg refuses such subkeys too.
            let cross_certified = binding
                .embedded_signature()
                .is_some_and(|back| back.verify_primary_key_binding(&sub.key, primary).is_ok());
            if cross_certified {
                data_keys.push(DataKey::Subkey(sub.key.clone()));
            }
        }
        if data_keys.is_empty() {
            return Err(format!(
                "key {fingerprint} has no signing-capable key (neither its primary key nor a subkey has the sign flag)"
            ));
        }
        Ok(SignerKey { fingerprint, data_keys })
    }

    /// Upper-case hex fingerprint of the primary key: what
    /// [`TrustedSigners::verify`] returns for this signer.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// Whether the primary key may make data signatures, by its newest valid
/// self-signature's key flags; a self-signature without a key-flags subpacket
/// (keys from before RFC 4880) allows what the algorithm can do. `None` when no
/// self-signature verifies.
fn primary_may_sign(key: &SignedPublicKey) -> Option<bool> {
    let primary = &key.primary_key;
    let certifications = key.details.users.iter().flat_map(|user| {
        user.signatures
            .iter()
            .filter(|s| {
                matches!(
                    s.typ(),
                    Some(
                        SignatureType::CertGeneric
                            | SignatureType::CertPersona
                            | SignatureType::CertCasual
                            | SignatureType::CertPositive
                    )
                )
            })
            // Third-party certifications fail here, which is what we want.
            .filter(move |s| s.verify_certification(primary, Tag::UserId, &user.id).is_ok())
    });
    let direct = key
        .details
        .direct_signatures
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::Key) && s.verify_key(primary).is_ok());
    let newest = certifications.chain(direct).max_by_key(|s| s.created())?;
    let has_flags = newest.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    });
    let flags_allow = !has_flags || newest.key_flags().sign();
    Some(primary.algorithm().can_sign() && flags_allow)
}

/// Parses every key in `bytes`. rpgp reads one armor block per call, so armored
/// input is split at each `-----BEGIN PGP` line: a file made by concatenating
/// two `gpg --export -a` outputs holds all of its keys.
fn parse_keys(bytes: &[u8]) -> pgp::errors::Result<Vec<PublicOrSecret>> {
    // rpgp's own rule: a set top bit in the first byte means binary packets.
    let armored = bytes.first().is_some_and(|b| b & 0x80 == 0);
    let starts: Vec<usize> = if armored {
        let marker = b"-----BEGIN PGP ";
        bytes
            .windows(marker.len())
            .enumerate()
            .filter(|(_, w)| *w == marker)
            .map(|(i, _)| i)
            .collect()
    } else {
        Vec::new()
    };
    let blocks: Vec<&[u8]> = if starts.len() <= 1 {
        vec![bytes]
    } else {
        let ends = starts.iter().skip(1).copied().chain(std::iter::once(bytes.len()));
        starts
            .iter()
            .zip(ends)
            .filter_map(|(&start, end)| bytes.get(start..end))
            .collect()
    };
    let mut out = Vec::new();
    for block in blocks {
        let (keys, _) = PublicOrSecret::from_reader_many(block)?;
        for key in keys {
            out.push(key?);
        }
    }
    Ok(out)
}

/// The set of trusted signers: a signature is accepted only when one of these
/// keys made it.
#[derive(Clone, Default)]
pub struct TrustedSigners {
    signers: Vec<SignerKey>,
}

impl std::fmt::Debug for TrustedSigners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedSigners")
            .field("signers", &self.fingerprints())
            .finish()
    }
}

impl TrustedSigners {
    /// Reads public keys, armored (`gpg --export -a`) or binary; a file may hold
    /// several keys. A key given twice is kept once. With no files the set is
    /// empty and [`TrustedSigners::verify`] accepts nothing.
    ///
    /// # Errors
    /// [`Error::Key`] naming the file when it cannot be read, is not an OpenPGP
    /// public key, holds a secret key, or a key in it has no valid self-signature
    /// or no signing-capable key.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self> {
        let mut keys = Vec::new();
        for path in paths {
            let bytes = std::fs::read(path).map_err(|e| Error::Key {
                path: path.clone(),
                reason: format!("cannot read the signer public key file ({e})"),
            })?;
            keys.extend(SignerKey::from_bytes(path, &bytes)?);
        }
        Ok(Self::from_keys(keys))
    }

    /// A set of the given keys; a key given twice is kept once.
    pub fn from_keys(keys: Vec<SignerKey>) -> Self {
        let mut signers: Vec<SignerKey> = Vec::with_capacity(keys.len());
        for key in keys {
            if !signers.iter().any(|k| k.fingerprint == key.fingerprint) {
                signers.push(key);
            }
        }
        TrustedSigners { signers }
    }

    /// Upper-case hex fingerprints of the trusted keys' primary keys.
    pub fn fingerprints(&self) -> Vec<String> {
        self.signers.iter().map(|k| k.fingerprint.clone()).collect()
    }

    /// Checks that `signature` (a detached signature, armored or binary) is a
    /// valid signature over exactly `data` by the primary key or a
    /// signing-capable subkey of one of the trusted keys. Signature types binary
    /// (0x00) and text (0x01) are accepted (a text signature, as OpenPGP
    /// defines it, does not notice a change between LF and CRLF line ends);
    /// when the input holds several signatures, one valid signature by a trusted
    /// key is enough. Key expiry and revocation are not checked: the trusted
    /// key files are the policy.
    ///
    /// Returns the upper-case hex fingerprint of the signer's primary key.
    ///
    /// # Errors
    /// - [`SignatureError::Malformed`]: more than [`MAX_SIGNATURE_BYTES`], not
    ///   OpenPGP, no signature packet, or not a signature over data;
    /// - [`SignatureError::WeakHash`]: MD5, SHA-1, RIPEMD-160 or another hash
    ///   that is not SHA-2/SHA-3;
    /// - [`SignatureError::UnknownSigner`]: made by no trusted key (also for a
    ///   signature that names no issuer and that no trusted key verifies);
    /// - [`SignatureError::Invalid`]: made by a trusted key, but it does not
    ///   verify over `data` (tampered data or signature).
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> std::result::Result<String, SignatureError> {
        let signatures = parse_signatures(signature)?;
        let mut worst: Option<SignatureError> = None;
        for sig in &signatures {
            match self.verify_one(data, sig) {
                Ok(fingerprint) => return Ok(fingerprint),
                // Report the failure that says most about the trusted keys:
                // a tampered signature by a trusted key beats a stranger's.
                Err(e) => {
                    if worst.as_ref().is_none_or(|w| rank(&e) > rank(w)) {
                        worst = Some(e);
                    }
                }
            }
        }
        Err(worst.unwrap_or_else(|| SignatureError::Malformed {
            reason: "no signature packet".into(),
        }))
    }

    fn verify_one(&self, data: &[u8], sig: &Signature) -> std::result::Result<String, SignatureError> {
        match sig.typ() {
            Some(SignatureType::Binary | SignatureType::Text) => {}
            Some(other) => {
                return Err(SignatureError::Malformed {
                    reason: format!(
                        "signature type {other:?} (0x{:02x}) is not a signature over data (binary or text)",
                        u8::from(other)
                    ),
                })
            }
            None => {
                return Err(SignatureError::Malformed {
                    reason: format!("unsupported signature version {:?}", sig.version()),
                })
            }
        }
        let hash = sig.hash_alg().ok_or_else(|| SignatureError::Malformed {
            reason: format!("unsupported signature version {:?}", sig.version()),
        })?;
        if !strong_hash(hash) {
            return Err(SignatureError::WeakHash {
                algorithm: hash.to_string(),
            });
        }
        let issuer_fps = sig.issuer_fingerprint();
        let issuer_ids = sig.issuer_key_id();
        // Without any issuer subpacket every trusted key is a candidate (gpg
        // could not tell either); otherwise only keys the signature names.
        let anonymous = issuer_fps.is_empty() && issuer_ids.is_empty();
        let mut tried: Option<(&SignerKey, String)> = None;
        for signer in &self.signers {
            for key in &signer.data_keys {
                let named = anonymous
                    || issuer_fps.iter().any(|fp| **fp == key.fingerprint())
                    || issuer_ids.contains(&&key.key_id());
                if !named {
                    continue;
                }
                match key.verify(sig, data) {
                    Ok(()) => return Ok(signer.fingerprint.clone()),
                    Err(e) => {
                        if tried.is_none() {
                            tried = Some((signer, e.to_string()));
                        }
                    }
                }
            }
        }
        match tried {
            Some((signer, reason)) if !anonymous => Err(SignatureError::Invalid {
                signer: signer.fingerprint.clone(),
                reason,
            }),
            _ => {
                let mut issuers: Vec<String> = issuer_fps.iter().map(|fp| format!("{fp:X}")).collect();
                issuers.extend(issuer_ids.iter().map(|id| hex::encode_upper(id.as_ref())));
                Err(SignatureError::UnknownSigner { issuers })
            }
        }
    }
}

/// Orders failures by how much they say about the trusted keys.
fn rank(e: &SignatureError) -> u8 {
    match e {
        SignatureError::Invalid { .. } => 3,
        SignatureError::WeakHash { .. } => 2,
        SignatureError::UnknownSigner { .. } => 1,
        _ => 0,
    }
}

/// SHA-2 and SHA-3 only: MD5, SHA-1 and RIPEMD-160 signatures can be forged by
/// collision, and unknown algorithms cannot be judged.
fn strong_hash(hash: HashAlgorithm) -> bool {
    matches!(
        hash,
        HashAlgorithm::Sha224
            | HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512
    )
}

/// Parses a detached signature, armored or binary (told apart by the top bit of
/// the first byte, as rpgp does), after checking its size.
fn parse_signatures(signature: &[u8]) -> std::result::Result<Vec<Signature>, SignatureError> {
    let malformed = |reason: String| SignatureError::Malformed { reason };
    if signature.len() > MAX_SIGNATURE_BYTES {
        return Err(malformed(format!(
            "{} bytes, more than the {MAX_SIGNATURE_BYTES} bytes a detached signature may have",
            signature.len()
        )));
    }
    if signature.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed("empty".into()));
    }
    let (parsed, _) = DetachedSignature::from_reader_many(signature).map_err(|e| malformed(e.to_string()))?;
    let mut out = Vec::new();
    for sig in parsed {
        let sig = sig.map_err(|e| malformed(e.to_string()))?;
        if out.len() == MAX_SIGNATURE_PACKETS {
            return Err(malformed(format!(
                "more than {MAX_SIGNATURE_PACKETS} signature packets"
            )));
        }
        out.push(sig.signature);
    }
    if out.is_empty() {
        return Err(malformed("no signature packet".into()));
    }
    Ok(out)
}

/// The unlocked secret key that makes signatures.
enum UnlockedKey {
    Primary(SecretKey),
    Subkey(SecretSubkey),
}

/// Signs manifests with a secret signing key. The key is unlocked once when it
/// is loaded, so the passphrase's S2K (deliberately slow) runs once, not per
/// signature.
pub struct ManifestSigner {
    key: UnlockedKey,
    hash: HashAlgorithm,
    fingerprint: String,
    public: SignerKey,
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
            key.remove_password(&password).map_err(unlock_error)?;
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
            key.remove_password(&password).map_err(unlock_error)?;
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
fn signing_hash(key: &impl SigningKey) -> HashAlgorithm {
    let recommended = key.hash_alg();
    if strong_hash(recommended) && recommended != HashAlgorithm::Sha224 {
        recommended
    } else {
        HashAlgorithm::Sha256
    }
}

/// True for a secret key packet without its secret (GnuPG's "gnu-dummy" S2K,
/// written by `--export-secret-subkeys` or for smartcard keys).
fn is_stub(params: &SecretParams) -> bool {
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

/// Generates a sign-only key pair: v4, an Ed25519Legacy primary key with only
/// the sign flag and no subkeys (nothing can be encrypted to it), armored and
/// importable by GnuPG 2.2.
///
/// # Errors
/// [`Error::Crypto`] when generation fails.
pub fn generate_signing_key(user_id: &str, passphrase: Option<&str>) -> Result<GeneratedKey> {
    let crypto = |reason: String| Error::Crypto {
        operation: "keygen",
        reason,
    };
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(false)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id(user_id.to_owned())
        .passphrase(passphrase.map(str::to_owned))
        .build()
        .map_err(|e| crypto(e.to_string()))?;
    let secret: SignedSecretKey = params.generate(thread_rng()).map_err(|e| crypto(e.to_string()))?;
    let public = SignedPublicKey::from(secret.clone());
    let armor = |r: pgp::errors::Result<String>| r.map_err(|e| crypto(e.to_string()));
    Ok(GeneratedKey {
        fingerprint: format!("{:X}", secret.fingerprint()),
        public_armored: armor(public.to_armored_string(Default::default()))?,
        secret_armored: armor(secret.to_armored_string(Default::default()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(passphrase: Option<&str>) -> (GeneratedKey, ManifestSigner) {
        let key = generate_signing_key("Signer <s@example.org>", passphrase).unwrap();
        let signer = ManifestSigner::from_bytes(
            Path::new("sign.sec"),
            key.secret_armored.as_bytes(),
            passphrase.unwrap_or(""),
        )
        .unwrap();
        (key, signer)
    }

    fn trusted(key: &GeneratedKey) -> TrustedSigners {
        TrustedSigners::from_keys(SignerKey::from_bytes(Path::new("sign.pub"), key.public_armored.as_bytes()).unwrap())
    }

    /// Strips the armor of an ASCII-armored signature (and its CRC line).
    fn dearmor(armored: &[u8]) -> Vec<u8> {
        let (sig, _) = DetachedSignature::from_armor_single(armored).unwrap();
        let mut out = Vec::new();
        pgp::ser::Serialize::to_writer(&sig, &mut out).unwrap();
        out
    }

    const MANIFEST: &[u8] = b"{\"format\":1,\"id\":\"20261126T020100Z-3f9a\"}\n";

    #[test]
    fn sign_and_verify_round_trip() {
        let (key, signer) = signer(Some("pw"));
        assert_eq!(signer.fingerprint(), key.fingerprint);
        assert_eq!(signer.public_key().fingerprint(), key.fingerprint);
        let sig = signer.sign(MANIFEST).unwrap();
        assert!(sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        let (parsed, _) = DetachedSignature::from_armor_single(&sig[..]).unwrap();
        assert_eq!(parsed.signature.typ(), Some(SignatureType::Binary));
        assert_eq!(parsed.signature.hash_alg(), Some(HashAlgorithm::Sha256));
        assert_eq!(parsed.signature.issuer_fingerprint().len(), 1);
        assert!(parsed.signature.created().is_some());
        assert_eq!(trusted(&key).verify(MANIFEST, &sig).unwrap(), key.fingerprint);
        // The signer's own public half verifies too (the default signer set).
        let own = TrustedSigners::from_keys(vec![signer.public_key()]);
        assert_eq!(own.verify(MANIFEST, &sig).unwrap(), key.fingerprint);
    }

    #[test]
    fn binary_signature_is_accepted() {
        let (key, signer) = signer(None);
        let binary = dearmor(&signer.sign(MANIFEST).unwrap());
        assert!(binary[0] & 0x80 != 0);
        assert_eq!(trusted(&key).verify(MANIFEST, &binary).unwrap(), key.fingerprint);
    }

    #[test]
    fn tampered_data_is_invalid() {
        let (key, signer) = signer(None);
        let sig = signer.sign(MANIFEST).unwrap();
        let mut altered = MANIFEST.to_vec();
        altered[3] ^= 1;
        match trusted(&key).verify(&altered, &sig) {
            Err(SignatureError::Invalid { signer, .. }) => assert_eq!(signer, key.fingerprint),
            other => panic!("expected Invalid, got {other:?}"),
        }
        let mut longer = MANIFEST.to_vec();
        longer.push(b' ');
        assert!(matches!(
            trusted(&key).verify(&longer, &sig),
            Err(SignatureError::Invalid { .. })
        ));
    }

    #[test]
    fn untrusted_signer_is_unknown() {
        let (_, signer) = signer(None);
        let (other, _) = self::signer(None);
        let sig = signer.sign(MANIFEST).unwrap();
        match trusted(&other).verify(MANIFEST, &sig) {
            Err(SignatureError::UnknownSigner { issuers }) => {
                assert!(issuers.contains(&signer.fingerprint().to_owned()), "{issuers:?}")
            }
            other => panic!("expected UnknownSigner, got {other:?}"),
        }
        // No trusted keys at all: nothing is accepted.
        assert!(matches!(
            TrustedSigners::default().verify(MANIFEST, &sig),
            Err(SignatureError::UnknownSigner { .. })
        ));
    }

    #[test]
    fn garbage_and_oversized_are_malformed() {
        let (key, signer) = signer(None);
        let trusted = trusted(&key);
        for input in [
            &b""[..],
            b"   \n",
            b"hello, not a signature",
            b"\x89\x01\x02garbage",
            key.public_armored.as_bytes(),
        ] {
            assert!(
                matches!(trusted.verify(MANIFEST, input), Err(SignatureError::Malformed { .. })),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let mut big = signer.sign(MANIFEST).unwrap();
        big.resize(MAX_SIGNATURE_BYTES + 1, b'\n');
        match trusted.verify(MANIFEST, &big) {
            Err(SignatureError::Malformed { reason }) => assert!(reason.contains("65536"), "{reason}"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn key_loading_errors_are_clear() {
        let (key, _) = signer(Some("pw"));
        let wrong = ManifestSigner::from_bytes(Path::new("sign.sec"), key.secret_armored.as_bytes(), "nope");
        assert!(matches!(wrong, Err(Error::WrongPassphrase { .. })), "{wrong:?}");
        let public = ManifestSigner::from_bytes(Path::new("sign.pub"), key.public_armored.as_bytes(), "pw");
        match public {
            Err(Error::Key { path, reason }) => {
                assert_eq!(path, Path::new("sign.pub"));
                assert!(reason.contains("is a public key"), "{reason}");
            }
            other => panic!("expected Key error, got {other:?}"),
        }
        let secret_as_signer = SignerKey::from_bytes(Path::new("s.asc"), key.secret_armored.as_bytes());
        assert!(matches!(secret_as_signer, Err(Error::Key { .. })));
        let missing = TrustedSigners::from_files(&[PathBuf::from("/nonexistent/signer.asc")]);
        assert!(matches!(missing, Err(Error::Key { .. })));
        let garbage = ManifestSigner::from_bytes(Path::new("junk"), b"not a key", "");
        assert!(matches!(garbage, Err(Error::Key { .. })));
        // The encryption key pair's primary may sign, so it can sign manifests too.
        let enc = crate::openpgp::generate_key("Enc <e@example.org>", None).unwrap();
        assert!(ManifestSigner::from_bytes(Path::new("enc.sec"), enc.secret_armored.as_bytes(), "").is_ok());
    }

    #[test]
    fn key_without_signing_key_is_refused() {
        use pgp::composed::SubkeyParamsBuilder;
        use pgp::crypto::ecc_curve::ECCCurve;
        let subkey = SubkeyParamsBuilder::default()
            .key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
            .can_encrypt(EncryptionCaps::All)
            .build()
            .unwrap();
        let secret = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(false)
            .primary_user_id("Certify only <c@example.org>".into())
            .subkeys(vec![subkey])
            .build()
            .unwrap()
            .generate(thread_rng())
            .unwrap();
        let armored = secret.to_armored_string(Default::default()).unwrap();
        match ManifestSigner::from_bytes(Path::new("c.sec"), armored.as_bytes(), "") {
            Err(Error::Key { reason, .. }) => assert!(reason.contains("no signing-capable key"), "{reason}"),
            other => panic!("expected Key error, got {other:?}"),
        }
        let public = SignedPublicKey::from(secret)
            .to_armored_string(Default::default())
            .unwrap();
        assert!(matches!(
            SignerKey::from_bytes(Path::new("c.pub"), public.as_bytes()),
            Err(Error::Key { .. })
        ));
    }

    /// A signature by `signer` over MANIFEST, re-labelled with another type or
    /// hash algorithm: rpgp refuses to make such signatures, and the policy
    /// checks run before any cryptography, so the label is what is tested.
    fn relabelled(signer: &ManifestSigner, typ: SignatureType, hash: HashAlgorithm) -> Vec<u8> {
        let (good, _) = DetachedSignature::from_armor_single(&signer.sign(MANIFEST).unwrap()[..]).unwrap();
        let mut config = good.signature.config().unwrap().clone();
        config.typ = typ;
        config.hash_alg = hash;
        let sig = Signature::from_config(
            config,
            good.signature.signed_hash_value().unwrap(),
            good.signature.signature().unwrap().clone(),
        )
        .unwrap();
        DetachedSignature::new(sig)
            .to_armored_bytes(ArmorOptions::default())
            .unwrap()
    }

    #[test]
    fn weak_hash_is_refused() {
        let (key, signer) = signer(None);
        for hash in [HashAlgorithm::Sha1, HashAlgorithm::Ripemd160, HashAlgorithm::Md5] {
            let sig = relabelled(&signer, SignatureType::Binary, hash);
            match trusted(&key).verify(MANIFEST, &sig) {
                Err(SignatureError::WeakHash { algorithm }) => assert_eq!(algorithm, hash.to_string()),
                other => panic!("expected WeakHash for {hash}, got {other:?}"),
            }
        }
        // The label alone changes the verdict: unchanged, the same bytes verify.
        let same = relabelled(&signer, SignatureType::Binary, HashAlgorithm::Sha256);
        assert!(trusted(&key).verify(MANIFEST, &same).is_ok());
    }

    #[test]
    fn only_binary_and_text_signatures_are_accepted() {
        let (key, signer) = signer(None);
        let UnlockedKey::Primary(secret) = &signer.key else {
            panic!("generated keys sign with the primary key")
        };
        let text = DetachedSignature::sign_text_data(
            thread_rng(),
            secret,
            &Password::empty(),
            HashAlgorithm::Sha512,
            MANIFEST,
        )
        .unwrap()
        .to_armored_bytes(ArmorOptions::default())
        .unwrap();
        assert!(trusted(&key).verify(MANIFEST, &text).is_ok());
        // A standalone signature (0x02) or a certification covers no data.
        for typ in [SignatureType::Standalone, SignatureType::CertPositive] {
            let sig = relabelled(&signer, typ, HashAlgorithm::Sha256);
            assert!(
                matches!(
                    trusted(&key).verify(MANIFEST, &sig),
                    Err(SignatureError::Malformed { .. })
                ),
                "{typ:?}"
            );
        }
    }

    #[test]
    fn several_keys_in_one_file() {
        let (a, sa) = signer(None);
        let (b, sb) = signer(None);
        let both = format!("{}\n{}", a.public_armored, b.public_armored);
        let keys = SignerKey::from_bytes(Path::new("both.asc"), both.as_bytes()).unwrap();
        let trusted = TrustedSigners::from_keys(keys);
        assert_eq!(
            trusted.fingerprints(),
            vec![a.fingerprint.clone(), b.fingerprint.clone()]
        );
        assert_eq!(
            trusted.verify(MANIFEST, &sa.sign(MANIFEST).unwrap()).unwrap(),
            a.fingerprint
        );
        assert_eq!(
            trusted.verify(MANIFEST, &sb.sign(MANIFEST).unwrap()).unwrap(),
            b.fingerprint
        );
        let twice = TrustedSigners::from_keys(vec![sa.public_key(), sa.public_key()]);
        assert_eq!(twice.fingerprints().len(), 1);
    }

    #[test]
    fn debug_shows_no_secret() {
        let (key, signer) = signer(Some("pw"));
        let shown = format!("{signer:?}");
        assert_eq!(
            shown,
            format!("ManifestSigner {{ fingerprint: {:?}, .. }}", key.fingerprint)
        );
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ManifestSigner>();
        send_sync::<TrustedSigners>();
    }
}
