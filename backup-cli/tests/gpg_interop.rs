//! Round trips through the tool and through stock gpg + zstd + tar, with a key
//! made by `gpg --generate-key` (RSA 2048, passphrase) and one made by `keygen`.

mod support;

use std::fs;
use std::path::Path;

use backup_files::testing::{sample_tree, snapshot};
use support::{backup_folder, require, stock_restore, Gpg, Ws};

fn tools_present() -> bool {
    require("gpg", "gnupg") && require("zstd", "zstd") && require("jq", "jq")
}

/// The source tree as it must come back: `*.tmp` is excluded by the profile.
fn expected(src: &Path) -> std::collections::BTreeMap<std::path::PathBuf, backup_files::testing::Snap> {
    let mut e = snapshot(src);
    e.retain(|p, _| p.extension().is_none_or(|x| x != "tmp"));
    e
}

fn assert_same_tree(src: &Path, restored_root: &Path) {
    let got = snapshot(&restored_root.join(src.strip_prefix("/").unwrap()));
    let want = expected(src);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (path, snap) in &want {
        assert_eq!(&got[path], snap, "{} differs", path.display());
    }
}

/// Backs up a sample tree, then restores it through the tool and through the
/// stock tools, comparing both with the original.
fn round_trip(ws: &Ws, gpg: &Gpg, passphrase: &str) {
    let src = ws.path("source-data");
    sample_tree(&src, 700_000);
    ws.files_profile("app/files", &src, "");
    ws.ok(&["backup", "app/files"]);
    let list = ws.list("app/files");
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(list[0]["chunks"].as_u64().unwrap() > 3, "several chunks expected");

    let by_tool = ws.path("by-tool");
    ws.ok(&["restore", "app/files", "--to", by_tool.to_str().unwrap()]);
    assert_same_tree(&src, &by_tool);

    let by_stock = ws.path("by-stock");
    stock_restore(gpg, passphrase, &backup_folder(ws, "app/files", &id), &by_stock);
    assert_same_tree(&src, &by_stock);
}

#[test]
fn gpg_generated_rsa_key_round_trips_both_ways() {
    if !tools_present() {
        return;
    }
    let gpg = Gpg::new();
    let passphrase = "correct horse battery staple";
    let spec = format!(
        "Key-Type: RSA\nKey-Length: 2048\nSubkey-Type: RSA\nSubkey-Length: 2048\nName-Real: Backup Ops\nName-Email: ops@example.org\nExpire-Date: 0\nPassphrase: {passphrase}\n%commit\n"
    );
    let spec_file = gpg.home.path().join("spec");
    fs::write(&spec_file, spec).unwrap();
    gpg.run(&["--generate-key", spec_file.to_str().unwrap()]);

    let ws = Ws::new();
    ws.write(
        "secrets/ops.pub.asc",
        &String::from_utf8(gpg.run(&["--export", "-a", "ops@example.org"])).unwrap(),
    );
    ws.write(
        "secrets/ops.sec.asc",
        &String::from_utf8(gpg.run(&[
            "--passphrase",
            passphrase,
            "--export-secret-keys",
            "-a",
            "ops@example.org",
        ]))
        .unwrap(),
    );
    ws.write("secrets/ops.pass", &format!("{passphrase}\n"));
    // The signing key too is made by gpg, as an operator would: RSA, sign only.
    gpg.run(&[
        "--passphrase",
        passphrase,
        "--quick-gen-key",
        "Backup Signer <signer@example.org>",
        "rsa2048",
        "sign",
        "never",
    ]);
    ws.write(
        "secrets/gpg-signing.sec.asc",
        &String::from_utf8(gpg.run(&[
            "--passphrase",
            passphrase,
            "--export-secret-keys",
            "-a",
            "signer@example.org",
        ]))
        .unwrap(),
    );
    ws.write(
        "secrets/gpg-signing.pub.asc",
        &String::from_utf8(gpg.run(&["--export", "-a", "signer@example.org"])).unwrap(),
    );
    ws.write(
        "backupapps.toml",
        &format!(
            "[store]\nurl = \"file://{}/store\"\n[encryption]\nrecipients = [\"secrets/ops.pub.asc\"]\nsecret_key = \"secrets/ops.sec.asc\"\npassphrase_file = \"secrets/ops.pass\"\nsigning_key = \"secrets/gpg-signing.sec.asc\"\nsigning_passphrase_file = \"secrets/ops.pass\"\nsigners = [\"secrets/gpg-signing.pub.asc\"]\n",
            ws.home().display()
        ),
    );
    // `gpg --export-secret-keys > file` leaves the file as the umask says;
    // backupapps refuses secrets others may read: as the README says, chmod 600.
    for secret in ["ops.sec.asc", "ops.pass", "gpg-signing.sec.asc"] {
        let path = ws.path(&format!("secrets/{secret}"));
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    round_trip(&ws, &gpg, passphrase);
}

#[test]
fn keygen_key_round_trips_both_ways() {
    if !tools_present() {
        return;
    }
    let ws = Ws::new(); // keygen --name backup, as init's config expects
    let (gpg, passphrase) = Gpg::with_key(&ws, "backup");
    round_trip(&ws, &gpg, &passphrase);
}

#[test]
fn two_recipients_can_each_decrypt() {
    if !tools_present() {
        return;
    }
    let ws = Ws::new();
    ws.ok(&["keygen", "--name", "second"]);
    let config = fs::read_to_string(ws.path("backupapps.toml")).unwrap().replace(
        "recipients = [\"secrets/backup.pub.asc\"]",
        "recipients = [\"secrets/backup.pub.asc\", \"secrets/second.pub.asc\"]",
    );
    ws.write("backupapps.toml", &config);
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), b"for two").unwrap();
    ws.files_profile("app/files", &src, "");
    ws.ok(&["backup", "app/files"]);
    let id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(backup_folder(&ws, "app/files", &id).join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["recipients"].as_array().unwrap().len(), 2);
    // The second key alone restores it.
    let (gpg, pass) = Gpg::with_key(&ws, "second");
    let out = ws.path("out");
    stock_restore(&gpg, &pass, &backup_folder(&ws, "app/files", &id), &out);
    assert_eq!(
        fs::read(out.join(src.strip_prefix("/").unwrap()).join("f.txt")).unwrap(),
        b"for two"
    );
}

#[test]
fn local_copies_in_data_folder() {
    if !tools_present() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), b"kept locally").unwrap();
    ws.files_profile("app/files", &src, "local_copy = \"compressed\"");
    ws.ok(&["backup", "app/files"]);
    let copy = ws.path("data/app/files/latest.tar.zst");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("zstd -d -q -c '{}' | tar -t", copy.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("source/f.txt"),
        "{}",
        support::text(&out)
    );

    ws.files_profile("app/files", &src, "local_copy = \"encrypted\"");
    ws.ok(&["backup", "app/files"]);
    let latest = ws.path("data/app/files/latest");
    assert!(latest.join("manifest.json").is_file());
    let (gpg, pass) = Gpg::with_key(&ws, "backup");
    let out = ws.path("out");
    stock_restore(&gpg, &pass, &latest, &out);
    assert_eq!(
        fs::read(out.join(src.strip_prefix("/").unwrap()).join("f.txt")).unwrap(),
        b"kept locally"
    );
}
