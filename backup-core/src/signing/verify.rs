//! Verifying detached signatures against the trusted signers.

use super::*;

/// The set of trusted signers: a signature is accepted only when one of these
/// keys made it.
#[derive(Clone, Default)]
pub struct TrustedSigners {
    pub(super) signers: Vec<SignerKey>,
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

    pub(super) fn verify_one(&self, data: &[u8], sig: &Signature) -> std::result::Result<String, SignatureError> {
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
pub(super) fn rank(e: &SignatureError) -> u8 {
    match e {
        SignatureError::Invalid { .. } => 3,
        SignatureError::WeakHash { .. } => 2,
        SignatureError::UnknownSigner { .. } => 1,
        _ => 0,
    }
}

/// SHA-2 and SHA-3 only: MD5, SHA-1 and RIPEMD-160 signatures can be forged by
/// collision, and unknown algorithms cannot be judged.
pub(super) fn strong_hash(hash: HashAlgorithm) -> bool {
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
pub(super) fn parse_signatures(signature: &[u8]) -> std::result::Result<Vec<Signature>, SignatureError> {
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
