//! Trusted signer public keys: which keys of a certificate may make data signatures.

use super::*;

/// A key that may make data signatures: the primary key or a subkey of a
/// certificate. Kept as an enum because rpgp's packet types differ.
#[derive(Clone)]
pub(super) enum DataKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl DataKey {
    pub(super) fn fingerprint(&self) -> Fingerprint {
        match self {
            DataKey::Primary(k) => k.fingerprint(),
            DataKey::Subkey(k) => k.fingerprint(),
        }
    }

    pub(super) fn key_id(&self) -> KeyId {
        match self {
            DataKey::Primary(k) => k.legacy_key_id(),
            DataKey::Subkey(k) => k.legacy_key_id(),
        }
    }

    pub(super) fn verify(&self, sig: &Signature, data: &[u8]) -> pgp::errors::Result<()> {
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
    pub(super) fingerprint: String,
    /// The keys allowed to make data signatures, primary first, then subkeys.
    pub(super) data_keys: Vec<DataKey>,
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
    pub(super) fn from_public(key: &SignedPublicKey) -> std::result::Result<SignerKey, String> {
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
pub(super) fn primary_may_sign(key: &SignedPublicKey) -> Option<bool> {
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
pub(super) fn parse_keys(bytes: &[u8]) -> pgp::errors::Result<Vec<PublicOrSecret>> {
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
