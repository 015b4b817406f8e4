//! Backups on S3 (OpenStack Swift's own S3 API) and on Azure Blob storage
//! (Azurite), both real servers on loopback: through the binary (check,
//! backup, list, verify, restore), and back with stock tools after a plain
//! download of the objects.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use backup_files::testing::{sample_tree, snapshot};
use backup_object_store::testing::{AzuriteServer, ACCOUNT, ACCOUNT_KEY};
use backup_swift::testing::{SwiftServer, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY};
use rand::{Rng, SeedableRng};
use support::{require, stock_restore, text, Gpg, Ws};

/// A workspace whose `[store]` is `url`, with `section` after it, and the
/// secret `secret` in the 0600 file `secrets/store.secret`.
fn ws_on(url: &str, section: &str, secret: &str) -> Ws {
    let ws = Ws::new();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    let start = global.find("url = ").unwrap();
    let end = start + global[start..].find('\n').unwrap();
    ws.write(
        "backupapps.toml",
        &format!("{}url = \"{url}\"\n{section}{}", &global[..start], &global[end..]),
    );
    ws.write("secrets/store.secret", &format!("{secret}\n"));
    fs::set_permissions(ws.path("secrets/store.secret"), fs::Permissions::from_mode(0o600)).unwrap();
    ws
}

/// A tree with an incompressible file, backed up in 8 MiB chunks: larger
/// than the 5 MiB multipart threshold the stores are given, so chunks go up
/// in parts.
fn profile(ws: &Ws) -> std::path::PathBuf {
    let src = ws.path("source");
    sample_tree(&src, 1 << 20);
    let mut noise = vec![0u8; 11 << 20];
    rand::rngs::StdRng::seed_from_u64(7).fill(&mut noise[..]);
    fs::write(src.join("data/noise.bin"), noise).unwrap();
    ws.files_profile("app/files", &src, "");
    let text = fs::read_to_string(ws.path("apps/app/files.toml"))
        .unwrap()
        .replace("64KiB", "8MiB");
    ws.write("apps/app/files.toml", &text);
    src
}

fn same_tree(src: &Path, restored_root: &Path) {
    let mut want = snapshot(src);
    want.retain(|p, _| p.extension().is_none_or(|x| x != "tmp"));
    let got = snapshot(&restored_root.join(src.strip_prefix("/").unwrap()));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    assert!(got == want, "restored tree differs");
}

/// check → backup → list → verify → restore, byte-identical; returns the id.
fn round_trip(ws: &Ws, src: &Path) -> String {
    let checked = ws.ok(&["check", "app/files"]);
    assert!(checked.contains("reachable and writable"), "{checked}");
    ws.ok(&["backup", "app/files"]);
    let list = ws.list("app/files");
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0]["chunks"].as_u64().unwrap() >= 2, "{list:?}");
    ws.ok(&["verify", "app/files"]);
    let restored = ws.path("restored");
    ws.ok(&["restore", "app/files", "--to", restored.to_str().unwrap()]);
    same_tree(src, &restored);
    list[0]["id"].as_str().unwrap().to_owned()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn s3_on_swift_round_trip_and_stock_download() {
    if !(require("gpg", "gnupg") && require("zstd", "zstd") && require("jq", "jq")) {
        return;
    }
    let Some(server) = SwiftServer::start() else { return };
    let bucket = "s3backups";
    run(Command::new("swift")
        .args(server.cli_args())
        .args(["post", bucket])
        .env_remove("OS_AUTH_URL"));
    let section = format!(
        "[store.s3]\nendpoint = \"{}\"\nregion = \"{S3_REGION}\"\naccess_key_id = \"{S3_ACCESS_KEY_ID}\"\n\
         secret_access_key_file = \"secrets/store.secret\"\nmultipart_threshold = 5242880\npart_size = 5242880\n",
        server.s3_endpoint()
    );
    let ws = ws_on(&format!("s3://{bucket}/backups"), &section, S3_SECRET_ACCESS_KEY);
    let src = profile(&ws);
    let id = round_trip(&ws, &src);

    // A plain download with python-swiftclient: the S3 bucket is a Swift
    // container, the multipart chunks Static Large Objects that download whole.
    let (gpg, pass) = Gpg::with_key(&ws, "backup");
    let dl = ws.path("swift-download");
    fs::create_dir_all(&dl).unwrap();
    run(Command::new("swift")
        .args(server.cli_args())
        .args([
            "download",
            bucket,
            "--prefix",
            &format!("backups/app/files/{id}/"),
            "-D",
        ])
        .arg(&dl)
        .env_remove("OS_AUTH_URL"));
    let folder = dl.join(format!("backups/app/files/{id}"));
    stock_restore(&gpg, &pass, &folder, &ws.path("by-swift"));
    same_tree(&src, &ws.path("by-swift"));

    // And with the AWS CLI, where it is installed.
    if Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let dl = ws.path("aws-download");
        run(Command::new("aws")
            .args([
                "s3",
                "cp",
                "--recursive",
                "--only-show-errors",
                "--endpoint-url",
                &server.s3_endpoint(),
            ])
            .arg(format!("s3://{bucket}/backups/app/files/{id}/"))
            .arg(&dl)
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY)
            .env("AWS_DEFAULT_REGION", S3_REGION)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
            .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"));
        stock_restore(&gpg, &pass, &dl, &ws.path("by-aws"));
        same_tree(&src, &ws.path("by-aws"));
    } else {
        eprintln!("aws CLI not installed: the S3 download was checked with swift only");
    }

    // A wrong secret: check fails and names what to fix, never the secret.
    ws.write("secrets/store.secret", "not-the-secret-at-all\n");
    let out = ws.fails(&["check", "app/files"], 2);
    assert!(
        out.contains("secret_access_key_file") && out.contains("AWS_SECRET_ACCESS_KEY"),
        "{out}"
    );
    assert!(!out.contains("not-the-secret-at-all"), "{out}");
    // A secret file others may read is refused with the fix.
    fs::set_permissions(ws.path("secrets/store.secret"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = ws.fails(&["list", "app/files"], 2);
    assert!(
        out.contains("chmod 600") && out.contains("[store.s3] secret_access_key_file"),
        "{out}"
    );
}

/// Blob names under `prefix` in a publicly readable Azurite container,
/// listed with plain curl.
fn public_blobs(endpoint: &str, container: &str, prefix: &str) -> Vec<String> {
    let xml = run(Command::new("curl").args(["-sf"]).arg(format!(
        "{endpoint}/{container}?restype=container&comp=list&prefix={prefix}"
    )));
    xml.split("<Name>")
        .skip(1)
        .filter_map(|s| s.split_once("</Name>").map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn azure_on_azurite_round_trip_and_stock_download() {
    if !(require("gpg", "gnupg") && require("zstd", "zstd") && require("jq", "jq")) {
        return;
    }
    let Some(server) = AzuriteServer::start() else { return };
    let container = "azbackups";
    server.create_container_with(container, true);
    let section = format!(
        "[store.azure]\naccount = \"{ACCOUNT}\"\nendpoint = \"{}\"\naccess_key_file = \"secrets/store.secret\"\n\
         multipart_threshold = 5242880\npart_size = 5242880\n",
        server.endpoint()
    );
    let ws = ws_on(&format!("az://{container}/pre"), &section, ACCOUNT_KEY);
    let src = profile(&ws);
    let id = round_trip(&ws, &src);

    // A plain download with curl (the container is public for this test).
    let prefix = format!("pre/app/files/{id}/");
    let names = public_blobs(&server.endpoint(), container, &prefix);
    assert!(names.iter().any(|n| n.ends_with("/manifest.json.sig")), "{names:?}");
    let dl = ws.path("curl-download");
    for name in &names {
        let to = dl.join(name.strip_prefix(&prefix).unwrap());
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        run(Command::new("curl")
            .args(["-sf", "-o"])
            .arg(&to)
            .arg(format!("{}/{container}/{name}", server.endpoint())));
    }
    let (gpg, pass) = Gpg::with_key(&ws, "backup");
    stock_restore(&gpg, &pass, &dl, &ws.path("by-curl"));
    same_tree(&src, &ws.path("by-curl"));

    // A wrong key: check fails and names what to fix, never the key.
    ws.write("secrets/store.secret", "d3Jvbmcta2V5LXdyb25nLWtleQ==\n");
    let out = ws.fails(&["check", "app/files"], 2);
    assert!(
        out.contains("AZURE_STORAGE_ACCOUNT_KEY") && out.contains("access_key_file"),
        "{out}"
    );
    assert!(!out.contains("d3Jvbmcta2V5"), "{out}");
}
