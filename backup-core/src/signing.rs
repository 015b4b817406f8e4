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

mod keys;
mod signer;
mod verify;

// The parts see each other through these (`use super::*` in each).
pub use keys::SignerKey;
#[allow(unused_imports)]
use keys::*;
pub use signer::ManifestSigner;
#[allow(unused_imports)]
use signer::*;
pub use verify::TrustedSigners;
#[allow(unused_imports)]
use verify::*;

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
    crate::openpgp::armored_pair(&secret)
}

#[cfg(test)]
#[path = "signing/tests.rs"]
mod tests;
