//! Removing a secret key's passphrase, quickly for gpg's own protection.
//!
//! gpg protects secret keys with the iterated-and-salted S2K over SHA-1
//! (usage octet 254, tens of megabytes hashed on purpose). rpgp hashes them
//! with collision-detecting SHA-1, which is several times slower than the
//! SHA-1 instructions of the CPU; the profile of a restore or a backup with a
//! gpg-made key put a sixth of the run's CPU there, on its critical path (no
//! chunk can be decrypted or manifest signed before it). Collision detection
//! protects signatures over attacker-chosen data; a KDF over a salt and the
//! operator's passphrase gains nothing from it, so this module derives that
//! one kind of key with plain SHA-1 and otherwise does what rpgp does: decrypt
//! with CFB, check the SHA-1 of the key material, parse it.
//!
//! Anything else (other S2K kinds, hashes or usages, a wrong passphrase,
//! damaged key material) goes to rpgp's own `remove_password`, so errors and
//! the less common protections behave exactly as rpgp makes them.

use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::{SecretKey, SecretSubkey};
use pgp::types::{KeyDetails, KeyVersion, Password, PlainSecretParams, S2kParams, SecretParams, StringToKey};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

/// Removes the passphrase of a secret subkey (no-op when it has none).
pub(crate) fn unlock_subkey(key: &mut SecretSubkey, passphrase: &Password) -> pgp::errors::Result<()> {
    match unlock_fast(key.secret_params(), passphrase, key.public_key()) {
        Some(plain) => *key = SecretSubkey::new(key.public_key().clone(), SecretParams::Plain(plain))?,
        None => key.remove_password(passphrase)?,
    }
    Ok(())
}

/// Removes the passphrase of a primary secret key (no-op when it has none).
pub(crate) fn unlock_primary(key: &mut SecretKey, passphrase: &Password) -> pgp::errors::Result<()> {
    match unlock_fast(key.secret_params(), passphrase, key.public_key()) {
        Some(plain) => *key = SecretKey::new(key.public_key().clone(), SecretParams::Plain(plain))?,
        None => key.remove_password(passphrase)?,
    }
    Ok(())
}

/// The key material of gpg's usual protection, or `None` for anything this
/// fast path does not handle or cannot unlock (left to rpgp to do or refuse).
fn unlock_fast(params: &SecretParams, passphrase: &Password, public: &impl KeyDetails) -> Option<PlainSecretParams> {
    let SecretParams::Encrypted(enc) = params else {
        return None;
    };
    // v6 keys have rules of their own (no SHA-1 in an S2K); rpgp enforces them.
    if public.version() != KeyVersion::V4 {
        return None;
    }
    let S2kParams::Cfb { sym_alg, s2k, iv } = enc.string_to_key_params() else {
        return None;
    };
    let StringToKey::IteratedAndSalted {
        hash_alg: HashAlgorithm::Sha1,
        salt,
        count,
    } = s2k
    else {
        return None;
    };
    if *sym_alg == SymmetricKeyAlgorithm::Plaintext {
        return None;
    }
    let key = iterated_salted_sha1(salt, &passphrase.read(), *count, sym_alg.key_size());
    let mut plaintext = Zeroizing::new(enc.data().to_vec());
    sym_alg.decrypt_with_iv_regular(&key, iv, &mut plaintext).ok()?;
    // The last 20 octets are the SHA-1 of the key material (usage 254): a
    // wrong passphrase fails here.
    let material_len = plaintext.len().checked_sub(20)?;
    let (material, checksum) = plaintext.split_at(material_len);
    if Sha1::digest(material).as_slice() != checksum {
        return None;
    }
    PlainSecretParams::try_from_reader_no_checksum(material, KeyVersion::V4, public.algorithm(), public.public_params())
        .ok()
}

/// RFC 4880 §3.7.1.3: `key_size` octets of SHA-1 over `coded_count` octets of
/// salt and passphrase repeated, one more leading zero octet per 20 octets
/// of key.
fn iterated_salted_sha1(salt: &[u8; 8], passphrase: &[u8], coded_count: u8, key_size: usize) -> Zeroizing<Vec<u8>> {
    let count = (16usize + usize::from(coded_count & 15)) << (usize::from(coded_count >> 4) + 6);
    let mut unit = Zeroizing::new(Vec::with_capacity(salt.len() + passphrase.len()));
    unit.extend_from_slice(salt);
    unit.extend_from_slice(passphrase);
    // At least one whole salt-and-passphrase, however small the count.
    let count = count.max(unit.len());
    // Hash whole units in large slices: one call per few KiB, not per unit.
    // At least one unit (never empty: the salt is 8 octets), however long
    // the passphrase.
    let mut block = Zeroizing::new(Vec::with_capacity(64 * 1024 + unit.len()));
    loop {
        block.extend_from_slice(&unit);
        if block.len() + unit.len() > 64 * 1024 {
            break;
        }
    }
    let mut key = Zeroizing::new(Vec::with_capacity(key_size + 20));
    let mut round = 0;
    while key.len() < key_size {
        let mut hasher = Sha1::new();
        hasher.update(vec![0u8; round]);
        let mut left = count;
        while left > 0 {
            let take = left.min(block.len());
            hasher.update(&block[..take]);
            left -= take;
        }
        key.extend_from_slice(&hasher.finalize());
        round += 1;
    }
    key.truncate(key_size);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivation agrees with rpgp's for every shape that matters: counts
    /// below one unit, counts that end inside a unit, keys longer than one
    /// SHA-1 (AES-256 needs two rounds).
    #[test]
    fn derivation_matches_rpgp() {
        let cases: &[(&[u8; 8], &[u8], u8, SymmetricKeyAlgorithm)] = &[
            (b"saltsalt", b"correct horse", 96, SymmetricKeyAlgorithm::AES128),
            (b"saltsalt", b"correct horse", 255, SymmetricKeyAlgorithm::AES256),
            (
                b"\x00\x01\x02\x03\x04\x05\x06\x07",
                b"",
                0,
                SymmetricKeyAlgorithm::AES192,
            ),
            (b"12345678", &[0x41; 3000], 0, SymmetricKeyAlgorithm::AES256),
            (b"abcdefgh", "pässwörd".as_bytes(), 17, SymmetricKeyAlgorithm::CAST5),
            // Longer than the 64 KiB slices hashed at once.
            (b"abcdefgh", &[0x61; 70_000], 255, SymmetricKeyAlgorithm::AES128),
        ];
        for &(salt, passphrase, count, alg) in cases {
            let s2k = StringToKey::IteratedAndSalted {
                hash_alg: HashAlgorithm::Sha1,
                salt: *salt,
                count,
            };
            let theirs = s2k.derive_key(passphrase, alg.key_size()).unwrap();
            let ours = iterated_salted_sha1(salt, passphrase, count, alg.key_size());
            assert_eq!(theirs.as_ref(), &ours[..], "count {count}, {alg:?}");
        }
    }

    /// A key made and protected by gpg 2.2 (`--quick-gen-key … ed25519`,
    /// `--quick-add-key … cv25519`, passphrase "pw", gpg's default S2K:
    /// iterated and salted SHA-1, count 65011712, AES-128 CFB, usage 254).
    const GPG_MADE_SECRET: &str = include_str!("testdata/gpg-made-secret.asc");

    /// Both of its keys take the fast path and end with the key material rpgp
    /// finds; a wrong passphrase is left to rpgp, which refuses it.
    #[test]
    fn gpg_protection_unlocks_fast_and_like_rpgp() {
        use pgp::composed::{Deserializable, SignedSecretKey};
        let (secret, _) = SignedSecretKey::from_string(GPG_MADE_SECRET).unwrap();
        let pw = Password::from("pw");
        let wrong = Password::from("wrong");

        let primary = &secret.primary_key;
        assert!(
            matches!(primary.secret_params(), SecretParams::Encrypted(_)),
            "fixture not protected"
        );
        let fast = unlock_fast(primary.secret_params(), &pw, primary.public_key());
        let mut slow = primary.clone();
        slow.remove_password(&pw).unwrap();
        assert_eq!(
            fast.map(SecretParams::Plain).as_ref(),
            Some(slow.secret_params()),
            "primary: not fast or differs"
        );
        assert!(unlock_fast(primary.secret_params(), &wrong, primary.public_key()).is_none());
        let mut ours = primary.clone();
        unlock_primary(&mut ours, &pw).unwrap();
        assert_eq!(ours.secret_params(), slow.secret_params());
        assert_eq!(ours.fingerprint(), primary.fingerprint());
        assert!(unlock_primary(&mut primary.clone(), &wrong).is_err());

        let sub = &secret.secret_subkeys[0].key;
        assert!(
            matches!(sub.secret_params(), SecretParams::Encrypted(_)),
            "fixture not protected"
        );
        let fast = unlock_fast(sub.secret_params(), &pw, sub.public_key());
        let mut slow = sub.clone();
        slow.remove_password(&pw).unwrap();
        assert_eq!(
            fast.map(SecretParams::Plain).as_ref(),
            Some(slow.secret_params()),
            "subkey: not fast or differs"
        );
        assert!(unlock_fast(sub.secret_params(), &wrong, sub.public_key()).is_none());
        let mut ours = sub.clone();
        unlock_subkey(&mut ours, &pw).unwrap();
        assert_eq!(ours.secret_params(), slow.secret_params());
        assert!(unlock_subkey(&mut sub.clone(), &wrong).is_err());
    }
}
