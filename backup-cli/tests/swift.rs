//! Backups on a real OpenStack Swift: through the binary, read back with
//! python-swiftclient and gpg, and through a proxy that injects faults.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use backup_files::testing::{sample_tree, snapshot};
use backup_swift::testing::{SwiftServer, KEY, USER};
use rand::{Rng, SeedableRng};
use support::{require, stock_restore, text, Gpg, Ws};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A workspace whose store is `swift://CONTAINER/backups` on `server`, with `extra` in `[store.swift]`.
fn swift_ws(server: &SwiftServer, container: &str, extra: &str) -> Ws {
    let ws = Ws::new();
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    let start = global.find("url = ").unwrap();
    let end = start + global[start..].find('\n').unwrap();
    let global = format!(
        "{}url = \"swift://{container}/backups\"\n[store.swift]\nauth_url = \"{}\"\nauth_version = \"1\"\nusername = \"{USER}\"\npassword_file = \"secrets/swift.key\"\n{extra}{}",
        &global[..start],
        server.auth_url(),
        &global[end..]
    );
    ws.write("backupapps.toml", &global);
    ws.write("secrets/swift.key", &format!("{KEY}\n"));
    fs::set_permissions(
        ws.path("secrets/swift.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    ws
}

fn swift_cli(server: &SwiftServer, args: &[&str], cwd: &Path) -> String {
    let out = Command::new("swift")
        .args(server.cli_args())
        .args(args)
        .current_dir(cwd)
        .env_remove("OS_AUTH_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "swift {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn same_tree(src: &Path, restored_root: &Path) {
    let mut want = snapshot(src);
    want.retain(|p, _| p.extension().is_none_or(|x| x != "tmp"));
    let got = snapshot(&restored_root.join(src.strip_prefix("/").unwrap()));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    assert!(got == want, "restored tree differs");
}

#[test]
fn backups_on_swift_read_back_by_swiftclient_and_gpg() {
    if !(require("gpg", "gnupg") && require("zstd", "zstd")) {
        return;
    }
    let Some(server) = SwiftServer::start() else { return };
    // 1 MiB segments under 4 MiB chunks: every full chunk is a Static Large Object.
    let ws = swift_ws(&server, "interop", "segment_size = 1048576\n");
    let src = ws.path("source");
    sample_tree(&src, 1 << 20);
    let mut noise = vec![0u8; 9 << 20];
    rand::rngs::StdRng::seed_from_u64(5).fill(&mut noise[..]);
    fs::write(src.join("data/noise.bin"), noise).unwrap();
    ws.files_profile("app/files", &src, "");
    let profile = fs::read_to_string(ws.path("apps/app/files.toml"))
        .unwrap()
        .replace("64KiB", "4MiB");
    ws.write("apps/app/files.toml", &profile);
    ws.ok(&["backup", "app/files"]);
    ws.ok(&["verify", "app/files"]);
    let list = ws.list("app/files");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(list[0]["chunks"].as_u64().unwrap() >= 3);

    // python-swiftclient sees the objects and downloads them whole.
    let listing = swift_cli(
        &server,
        &["list", "interop", "--prefix", &format!("backups/app/files/{id}/")],
        ws.home(),
    );
    assert!(
        listing.contains("manifest.json") && listing.contains("data-000001.zst.gpg"),
        "{listing}"
    );
    let dl = ws.path("downloaded");
    fs::create_dir_all(&dl).unwrap();
    swift_cli(
        &server,
        &[
            "download",
            "interop",
            "--prefix",
            &format!("backups/app/files/{id}/"),
            "-D",
            dl.to_str().unwrap(),
        ],
        ws.home(),
    );
    let folder = dl.join(format!("backups/app/files/{id}"));
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    let first = &manifest["chunks"][0];
    let chunk = fs::read(folder.join(first["name"].as_str().unwrap())).unwrap();
    assert_eq!(
        chunk.len() as u64,
        first["size"].as_u64().unwrap(),
        "the SLO downloads whole"
    );
    assert!(chunk.len() > 1 << 20, "the first chunk is larger than a segment");

    // ... and the downloaded chunks decrypt with gpg into the same tree.
    let (gpg, pass) = Gpg::with_key(&ws, "backup");
    let by_stock = ws.path("by-stock");
    stock_restore(&gpg, &pass, &folder, &by_stock);
    same_tree(&src, &by_stock);
    let by_tool = ws.path("by-tool");
    ws.ok(&["restore", "app/files", "--to", by_tool.to_str().unwrap()]);
    same_tree(&src, &by_tool);

    // Prune deletes SLO segments with their manifests.
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &global
            .replace("last = 0", "last = 1")
            .replace("daily = 7", "daily = 0")
            .replace("weekly = 4", "weekly = 0")
            .replace("monthly = 12", "monthly = 0"),
    );
    ws.ok(&["backup", "app/files"]);
    assert_eq!(ws.list("app/files").len(), 1);
    let segments = swift_cli(
        &server,
        &[
            "list",
            "interop_segments",
            "--prefix",
            &format!("backups/app/files/{id}/"),
        ],
        ws.home(),
    );
    assert!(
        segments.trim().is_empty(),
        "segments of the pruned backup are gone: {segments}"
    );
}

#[test]
fn check_says_what_is_wrong_with_swift() {
    let Some(server) = SwiftServer::start() else { return };
    let ws = swift_ws(&server, "checked", "");
    ws.files_profile("app/files", &ws.path("secrets"), "");
    let out = ws.ok(&["check"]);
    assert!(out.contains("swift://checked/backups reachable and writable"), "{out}");
    ws.write("secrets/swift.key", "wrong-key\n");
    let out = ws.fails(&["check"], 2);
    assert!(out.contains("FAIL") && out.contains("credentials"), "{out}");
    assert!(!out.contains("wrong-key"), "{out}");
    ws.write("secrets/swift.key", &format!("{KEY}\n"));
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write(
        "backupapps.toml",
        &global.replace("swift://checked/", "swift://missing/").replacen(
            "[store.swift]\n",
            "[store.swift]\ncreate_container = false\n",
            1,
        ),
    );
    let out = ws.fails(&["check"], 2);
    assert!(out.contains("container missing does not exist"), "{out}");
}

/// A loopback HTTP proxy in front of Swift that answers 503, resets
/// connections, and spoils tokens (Swift then answers 401), at random.
async fn fault_proxy(upstream: u16, seed: u64, faults: Arc<AtomicUsize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rng = Arc::new(std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)));
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let (rng, faults) = (rng.clone(), faults.clone());
            tokio::spawn(async move {
                let roll: f64 = rng.lock().unwrap().gen();
                let _ = relay(client, upstream, roll, &faults).await;
            });
        }
    });
    port
}

async fn relay(mut client: TcpStream, upstream: u16, roll: f64, faults: &AtomicUsize) -> std::io::Result<()> {
    // Read the request head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let length: usize = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let is_auth = text.starts_with("GET /auth");
    if !is_auth && roll < 0.08 {
        faults.fetch_add(1, Ordering::Relaxed);
        return Ok(()); // reset: drop the connection without an answer
    }
    let mut body = vec![0u8; length];
    client.read_exact(&mut body).await?;
    if !is_auth && roll < 0.16 {
        faults.fetch_add(1, Ordering::Relaxed);
        client
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    // One request per connection keeps the relay simple.
    let mut lines: Vec<String> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(str::to_owned)
        .collect();
    if !is_auth && roll < 0.22 {
        faults.fetch_add(1, Ordering::Relaxed);
        for l in &mut lines {
            if l.to_ascii_lowercase().starts_with("x-auth-token:") {
                *l = "X-Auth-Token: AUTH_tkexpired".into();
            }
        }
    }
    lines.push("Connection: close".into());
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream)).await?;
    upstream
        .write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())
        .await?;
    upstream.write_all(&body).await?;
    tokio::io::copy(&mut upstream, &mut client).await?;
    client.shutdown().await
}

#[test]
fn backup_through_injected_faults_succeeds_and_leaves_no_strays() {
    let Some(server) = SwiftServer::start() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let faults = Arc::new(AtomicUsize::new(0));
    let proxy = runtime.block_on(fault_proxy(server.port, 42, faults.clone()));
    let ws = swift_ws(
        &server,
        "faulty",
        &format!("storage_url = \"http://127.0.0.1:{proxy}/v1/AUTH_test\"\nsegment_size = 262144\nretries = 8\n"),
    );
    let src = ws.path("source");
    sample_tree(&src, 3 << 20);
    ws.files_profile("app/files", &src, "");
    let profile = fs::read_to_string(ws.path("apps/app/files.toml"))
        .unwrap()
        .replace("64KiB", "512KiB");
    ws.write("apps/app/files.toml", &profile);
    ws.ok(&["backup", "app/files"]);
    let restored = ws.path("restored");
    ws.ok(&["restore", "app/files", "--to", restored.to_str().unwrap()]);
    same_tree(&src, &restored);
    assert!(
        faults.load(Ordering::Relaxed) > 5,
        "faults were injected: {}",
        faults.load(Ordering::Relaxed)
    );

    // No stray objects: exactly the manifest's chunks, the manifest and the restore mark.
    let id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    let listing = swift_cli(&server, &["list", "faulty", "--prefix", "backups/"], ws.home());
    let manifest: serde_json::Value = serde_json::from_str(&swift_cli(
        &server,
        &[
            "download",
            "faulty",
            &format!("backups/app/files/{id}/manifest.json"),
            "-o",
            "-",
        ],
        ws.home(),
    ))
    .unwrap();
    let mut expected: Vec<String> = manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("backups/app/files/{id}/{}", c["name"].as_str().unwrap()))
        .collect();
    expected.push(format!("backups/app/files/{id}/manifest.json"));
    expected.push(format!("backups/app/files/{id}/manifest.json.sig"));
    expected.push(format!("backups/app/files/{id}/marks/restored.json"));
    expected.sort();
    let mut got: Vec<String> = listing.lines().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, expected);
    runtime.shutdown_background();
}
