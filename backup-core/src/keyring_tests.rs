use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::encrypt::Encryptor;
use crate::openpgp::{generate_key, GeneratedKey, PgpEncryptor};

fn seal(to: &[&GeneratedKey], plain: &[u8]) -> Vec<u8> {
    let enc = PgpEncryptor::from_armored(to.iter().map(|k| (Path::new("pub"), k.public_armored.as_bytes()))).unwrap();
    let mut sealed = Vec::new();
    enc.encrypt(&mut &plain[..], &mut sealed).unwrap();
    sealed
}

fn unlocked(key: &GeneratedKey) -> PgpDecryptor {
    PgpDecryptor::from_armored(Path::new("sec"), key.secret_armored.as_bytes(), "pw").unwrap()
}

/// Counts the messages handed to it; a key the ring must not touch.
#[derive(Debug, Default)]
struct Counting(AtomicUsize);

impl Decryptor for Counting {
    fn decrypt(&self, _: &[u8], _: &mut dyn Write) -> Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(Error::WrongPassphrase {
            path: "counting".into(),
        })
    }
}

#[test]
fn each_message_goes_to_the_key_it_is_encrypted_to() {
    let (old, new) = (
        generate_key("Old <o@x.org>", Some("pw")).unwrap(),
        generate_key("New <n@x.org>", Some("pw")).unwrap(),
    );
    let ring = KeyRing::from_unlocked(vec![unlocked(&new), unlocked(&old)]);
    assert_eq!(
        ring.fingerprints(),
        vec![new.fingerprint.clone(), old.fingerprint.clone()]
    );
    for (key, text) in [
        (&old, &b"made with the old key"[..]),
        (&new, &b"made with the new key"[..]),
    ] {
        let mut plain = Vec::new();
        ring.decrypt(&seal(&[key], text), &mut plain).unwrap();
        assert_eq!(plain, text);
    }
}

#[test]
fn a_key_is_used_only_for_the_messages_encrypted_to_it() {
    let (old, new) = (
        generate_key("Old <o@x.org>", None).unwrap(),
        generate_key("New <n@x.org>", None).unwrap(),
    );
    let locked_new = LockedKey::from_armored(Path::new("new"), new.secret_armored.as_bytes()).unwrap();
    let untouched = Arc::new(Counting::default());
    // The newest key comes first, yet an old message never reaches it: a
    // lazily unlocked key is not unlocked (or its wrong passphrase not
    // reported) for backups that do not need it.
    let ring = KeyRing::new(vec![
        (locked_new.identity().clone(), untouched.clone() as Arc<dyn Decryptor>),
        (unlocked(&old).identity().clone(), Arc::new(unlocked(&old))),
    ]);
    let mut plain = Vec::new();
    ring.decrypt(&seal(&[&old], b"old"), &mut plain).unwrap();
    assert_eq!(plain, b"old");
    assert_eq!(untouched.0.load(Ordering::SeqCst), 0);
    // And the key a message names gets it, with its own error.
    let err = ring.decrypt(&seal(&[&new], b"new"), &mut Vec::new()).unwrap_err();
    assert!(matches!(err, Error::WrongPassphrase { .. }), "{err}");
    assert_eq!(untouched.0.load(Ordering::SeqCst), 1);
}

#[test]
fn no_fitting_key_names_the_message_key_ids_and_every_key_held() {
    let (old, new, other) = (
        generate_key("Old <o@x.org>", Some("pw")).unwrap(),
        generate_key("New <n@x.org>", Some("pw")).unwrap(),
        generate_key("Other <x@x.org>", Some("pw")).unwrap(),
    );
    let ring = KeyRing::from_unlocked(vec![unlocked(&new), unlocked(&other)]);
    let mut out = Vec::new();
    match ring.decrypt(&seal(&[&old], b"secret"), &mut out) {
        Err(Error::WrongKey { recipients, have, .. }) => {
            assert_eq!(have, vec![new.fingerprint.clone(), other.fingerprint.clone()]);
            // The PKESK names the old key's encryption subkey by its key id.
            let locked = LockedKey::from_armored(Path::new("old"), old.secret_armored.as_bytes()).unwrap();
            let subkey_id = locked.identity().key_ids[1].to_string().to_uppercase();
            assert_eq!(recipients, vec![subkey_id]);
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    assert!(out.is_empty());
}

#[test]
fn a_message_to_several_keys_opens_with_any_of_them() {
    let (old, new) = (
        generate_key("Old <o@x.org>", Some("pw")).unwrap(),
        generate_key("New <n@x.org>", Some("pw")).unwrap(),
    );
    let both = seal(&[&old, &new], b"to both");
    for ring in [
        KeyRing::from_unlocked(vec![unlocked(&old)]),
        KeyRing::from_unlocked(vec![unlocked(&new)]),
    ] {
        let mut plain = Vec::new();
        ring.decrypt(&both, &mut plain).unwrap();
        assert_eq!(plain, b"to both");
    }
}

#[test]
fn not_a_message_is_a_crypto_error() {
    let key = generate_key("K <k@x.org>", Some("pw")).unwrap();
    let ring = KeyRing::from_unlocked(vec![unlocked(&key)]);
    let err = ring.decrypt(b"not a message", &mut Vec::new()).unwrap_err();
    assert!(matches!(err, Error::Crypto { .. }), "{err}");
}
