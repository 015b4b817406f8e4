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
