//! Manifest signatures interoperate with real GnuPG both ways: `gpg --verify`
//! accepts ours, and `TrustedSigners` accepts gpg's `--detach-sign` output.
//!
//! Each test runs gpg in its own throwaway GNUPGHOME. Without gpg the tests skip
//! with a note, except under `CI=true`, where a missing gpg is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use backup_core::{generate_signing_key, Error, ManifestSigner, SignatureError, SignerKey, TrustedSigners};

const PASSPHRASE: &str = "correct horse";
const MANIFEST: &[u8] = b"{\"format\":1,\"id\":\"20261126T020100Z-3f9a\",\"chunks\":[]}\n";

/// A throwaway GNUPGHOME; its agent is stopped and the folder removed on drop.
struct Gpg {
    home: PathBuf,
}

impl Gpg {
    /// `None` (after printing why) when gpg is not installed, outside CI.
    fn new() -> Option<Gpg> {
        let found = Command::new("gpg")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("gpg is required for the signing interoperability tests under CI: apt-get install gnupg");
            }
            eprintln!("note: skipping the gpg interoperability test: gpg not found (apt-get install gnupg)");
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // Short path: gpg-agent's socket path must fit in a sockaddr_un.
        let home = std::env::temp_dir().join(format!(
            "bsig-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&home).unwrap();
        // gpg warns about (and some versions refuse) a home others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        Some(Gpg { home })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .arg("--homedir")
            .arg(&self.home)
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                PASSPHRASE,
            ])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs gpg and fails the test with its stderr when it fails.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Makes a key with `gpg --quick-gen-key UID ALGO USAGE` (passphrase-protected)
    /// and returns its primary fingerprint.
    fn gen_key(&self, uid: &str, algo: &str, usage: &str) -> String {
        self.ok(&["--quick-gen-key", uid, algo, usage, "never"]);
        self.fingerprints(uid).swap_remove(0)
    }

    /// Fingerprints of the key with `uid`: primary first, then its subkeys.
    fn fingerprints(&self, uid: &str) -> Vec<String> {
        let listing = String::from_utf8(self.ok(&["--with-colons", "--list-keys", uid])).unwrap();
        listing
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .map(|l| l.split(':').nth(9).unwrap().to_owned())
            .collect()
    }

    /// The capability field of the primary key's `pub` line, e.g. `scSC`.
    fn capabilities(&self, uid: &str) -> String {
        let listing = String::from_utf8(self.ok(&["--with-colons", "--list-keys", uid])).unwrap();
        let line = listing.lines().find(|l| l.starts_with("pub:")).unwrap();
        line.split(':').nth(11).unwrap().to_owned()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `gpg --verify sig data`, as the disaster-recovery instructions run it.
    fn verify(&self, sig: &Path, data: &Path) -> Output {
        self.cmd(&["--verify", sig.to_str().unwrap(), data.to_str().unwrap()])
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "gpg-agent"])
            .output();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn assert_gpg_accepts(gpg: &Gpg, signature: &[u8], name: &str) {
    let sig = gpg.write(&format!("{name}.sig"), signature);
    let data = gpg.write(&format!("{name}.json"), MANIFEST);
    let out = gpg.verify(&sig, &data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "gpg --verify refused our signature ({name}): {stderr}"
    );
    assert!(stderr.contains("Good signature"), "{stderr}");
    // The same signature over other bytes must fail in gpg too (the test can fail).
    let other = gpg.write(&format!("{name}.other"), b"other bytes");
    assert!(!gpg.verify(&sig, &other).status.success());
}

#[test]
fn gpg_verifies_signatures_by_a_generated_signing_key() {
    let Some(gpg) = Gpg::new() else { return };
    let key = generate_signing_key("Backup Signer <signer@example.org>", Some(PASSPHRASE)).unwrap();
    let public = gpg.write("signer.asc", key.public_armored.as_bytes());
    gpg.ok(&["--import", public.to_str().unwrap()]);
    // Sign-only: gpg must see no encryption capability on it.
    let caps = gpg.capabilities(&key.fingerprint);
    assert!(caps.contains('s') && !caps.contains('e'), "capabilities {caps}");
    assert_eq!(
        gpg.fingerprints(&key.fingerprint),
        vec![key.fingerprint.clone()],
        "no subkeys"
    );

    let signer =
        ManifestSigner::from_bytes(Path::new("signer.sec"), key.secret_armored.as_bytes(), PASSPHRASE).unwrap();
    assert_gpg_accepts(&gpg, &signer.sign(MANIFEST).unwrap(), "generated");

    // gpg also accepts the generated secret key (with its passphrase).
    let secret = gpg.write("signer.sec", key.secret_armored.as_bytes());
    gpg.ok(&["--import", secret.to_str().unwrap()]);
}

#[test]
fn gpg_verifies_signatures_by_gpg_made_secret_keys() {
    let Some(gpg) = Gpg::new() else { return };
    // RSA 2048 with a passphrase, as users make keys; then a key whose primary
    // only certifies and which signs with an Ed25519 subkey.
    let rsa = gpg.gen_key("RSA Signer <rsa@example.org>", "rsa2048", "sign");
    let cert_only = gpg.gen_key("Subkey Signer <sub@example.org>", "ed25519", "cert");
    gpg.ok(&["--quick-add-key", &cert_only, "ed25519", "sign", "never"]);
    let sub = gpg.fingerprints(&cert_only).swap_remove(1);

    for (fpr, signing_fpr) in [(&rsa, &rsa), (&cert_only, &sub)] {
        let secret = gpg.ok(&["--export-secret-keys", "-a", fpr]);
        let wrong = ManifestSigner::from_bytes(Path::new("k.sec"), &secret, "wrong");
        assert!(matches!(wrong, Err(Error::WrongPassphrase { .. })), "{wrong:?}");
        let signer = ManifestSigner::from_bytes(Path::new("k.sec"), &secret, PASSPHRASE).unwrap();
        assert_eq!(signer.fingerprint(), signing_fpr.as_str());
        assert_eq!(signer.public_key().fingerprint(), fpr.as_str());
        let sig = signer.sign(MANIFEST).unwrap();
        assert_gpg_accepts(&gpg, &sig, fpr);
        // And our own verifier with the public half.
        let trusted = TrustedSigners::from_keys(vec![signer.public_key()]);
        assert_eq!(trusted.verify(MANIFEST, &sig).unwrap(), *fpr);
        // gpg's own signature with the same key (by the subkey for `cert_only`).
        let data = gpg.write("data.json", MANIFEST);
        let gpg_sig = gpg.ok(&["-u", fpr, "--detach-sign", "-a", "-o", "-", data.to_str().unwrap()]);
        assert_eq!(trusted.verify(MANIFEST, &gpg_sig).unwrap(), *fpr);
    }
}

#[test]
fn gpg_detached_signatures_verify_with_trusted_signers() {
    let Some(gpg) = Gpg::new() else { return };
    let data = gpg.write("manifest.json", MANIFEST);
    let data = data.to_str().unwrap();
    let keys = [
        ("RSA <rsa@example.org>", "rsa2048", "sign"),
        ("Ed <ed@example.org>", "ed25519", "sign"),
        ("Default <default@example.org>", "default", "default"),
    ];
    let mut files = Vec::new();
    let mut signed = Vec::new();
    for (i, (uid, algo, usage)) in keys.iter().enumerate() {
        let fpr = gpg.gen_key(uid, algo, usage);
        // Armored for some keys, binary for others: both must load.
        let export = if i % 2 == 0 {
            gpg.ok(&["--export", "-a", &fpr])
        } else {
            gpg.ok(&["--export", &fpr])
        };
        files.push(gpg.write(&format!("signer{i}.pub"), &export));
        for armor in [true, false] {
            let out = gpg.path(&format!("sig{i}-{armor}"));
            let out = out.to_str().unwrap();
            let mut args = vec!["-u", fpr.as_str(), "--detach-sign", "-o", out];
            if armor {
                args.push("-a");
            }
            args.push(data);
            gpg.ok(&args);
            let sig = std::fs::read(out).unwrap();
            assert_eq!(sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"), armor);
            signed.push((fpr.clone(), sig));
        }
    }
    let trusted = TrustedSigners::from_files(&files).unwrap();
    assert_eq!(trusted.fingerprints().len(), keys.len());
    for (fpr, sig) in &signed {
        assert_eq!(trusted.verify(MANIFEST, sig).unwrap(), *fpr);
        // gpg's signature over other bytes: a trusted key's, but not of these.
        match trusted.verify(b"{\"format\":1,\"id\":\"forged\"}\n", sig) {
            Err(SignatureError::Invalid { signer, .. }) => assert_eq!(signer, *fpr),
            other => panic!("expected Invalid for {fpr}, got {other:?}"),
        }
    }

    // gpg still makes SHA-1 signatures when asked; they are refused.
    let rsa = &signed[0].0;
    let sha1 = gpg.ok(&["-u", rsa, "--digest-algo", "SHA1", "--detach-sign", "-o", "-", data]);
    match trusted.verify(MANIFEST, &sha1) {
        Err(SignatureError::WeakHash { algorithm }) => assert_eq!(algorithm, "SHA1"),
        other => panic!("expected WeakHash, got {other:?}"),
    }

    // A file holding all three keys (`gpg --export -a` of several) loads them all.
    let all = gpg.ok(&["--export", "-a"]);
    let keys_in_one = SignerKey::from_bytes(Path::new("all.asc"), &all).unwrap();
    assert_eq!(keys_in_one.len(), keys.len());

    // Signatures by a key nobody trusts name their issuer.
    let stranger = gpg.gen_key("Stranger <x@example.org>", "ed25519", "sign");
    let sig = gpg.ok(&["-u", &stranger, "--detach-sign", "-a", "-o", "-", data]);
    match trusted.verify(MANIFEST, &sig) {
        Err(SignatureError::UnknownSigner { issuers }) => assert!(issuers.contains(&stranger), "{issuers:?}"),
        other => panic!("expected UnknownSigner, got {other:?}"),
    }
}

#[test]
fn gpg_text_mode_signatures_verify() {
    let Some(gpg) = Gpg::new() else { return };
    let fpr = gpg.gen_key("Text <text@example.org>", "ed25519", "sign");
    let data = gpg.write("manifest.json", MANIFEST);
    let sig = gpg.ok(&[
        "-u",
        &fpr,
        "--textmode",
        "--detach-sign",
        "-a",
        "-o",
        "-",
        data.to_str().unwrap(),
    ]);
    let public = gpg.ok(&["--export", "-a", &fpr]);
    let trusted = TrustedSigners::from_keys(SignerKey::from_bytes(Path::new("t.asc"), &public).unwrap());
    assert_eq!(trusted.verify(MANIFEST, &sig).unwrap(), fpr);
}
