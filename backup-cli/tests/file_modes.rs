//! Modes of what the tool creates (DESIGN §7): no plaintext or secret is
//! readable by group or others. Every command runs under umask 022, as from
//! a login shell or cron, so that a private mode is the tool's doing; the
//! workspace and restore targets' parents are 0755, as /srv/backupapps is.
//! Restored files keep their archived modes, so a files restore's tree is
//! listed but not judged; its staging, the dumps and the local copies are.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use backup_pg::testing::Auth;
use support::{text, PgWs, Ws, BIN};

/// Runs `backupapps --home HOME ARGS` under umask 022 and asserts success.
fn run(home: &Path, args: &[&str]) -> String {
    let out = Command::new("sh")
        .args(["-c", "umask 022 && exec \"$@\"", "sh", BIN, "--home"])
        .arg(home)
        .args(args)
        .env_remove("BACKUPAPPS_PASSPHRASE")
        .env_remove("BACKUPAPPS_SIGNING_PASSPHRASE")
        .env_remove("BACKUPAPPS_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "backupapps {args:?} failed:\n{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A folder as a real installation has it: 0755.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Every path below `root` (not `root` itself), parents first.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// Configuration, templates, public keys and the store (encrypted, signed,
/// and untrusted by design) may be readable by others.
fn is_public(rel: &Path) -> bool {
    rel == Path::new("backupapps.toml")
        || rel.starts_with("apps")
        || rel.starts_with("store")
        || rel.to_string_lossy().ends_with(".pub.asc")
}

/// Lists the mode of every path below `root` and fails on any that others
/// can reach: neither it nor a folder between it and `root` is private.
/// `unjudged` subtrees (restored files) are listed only.
fn assert_private(root: &Path, unjudged: &[PathBuf]) {
    let mut listing = String::new();
    let mut exposed = Vec::new();
    for path in walk(root) {
        let rel = path.strip_prefix(root).unwrap();
        let m = mode(&path);
        listing.push_str(&format!("{m:04o} {}\n", rel.display()));
        if is_public(rel) || unjudged.iter().any(|u| path.starts_with(u)) {
            continue;
        }
        let guarded = path
            .ancestors()
            .take_while(|a| *a != root)
            .any(|a| mode(a) & 0o077 == 0);
        if !guarded {
            exposed.push(format!("{m:04o} {}", rel.display()));
        }
    }
    eprintln!("{}:\n{listing}", root.display());
    assert!(
        exposed.is_empty(),
        "readable by group or others under {}:\n{}\n\nall:\n{listing}",
        root.display(),
        exposed.join("\n")
    );
}

fn no_leftovers(root: &Path) {
    for path in walk(root) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".backupapps-") && !name.ends_with(".partial"),
            "left behind: {}",
            path.display()
        );
    }
}

#[test]
fn keygen_without_init_makes_a_private_secrets_folder() {
    let home = open_dir();
    run(home.path(), &["keygen", "--name", "solo"]);
    assert_eq!(mode(&home.path().join("secrets")), 0o700);
    for secret in ["solo.sec.asc", "solo.pass", "signing.sec.asc", "signing.pass"] {
        assert_eq!(mode(&home.path().join("secrets").join(secret)), 0o600, "{secret}");
    }
    assert_private(home.path(), &[]);
}

#[test]
fn files_backups_local_copies_and_restores_are_private() {
    let home = open_dir();
    let ws = Ws { dir: home };
    run(ws.home(), &["init", ws.home().to_str().unwrap()]);
    run(ws.home(), &["keygen", "--name", "backup"]);
    let source = tempfile::tempdir().unwrap();
    fs::write(source.path().join("customers.csv"), b"alice,secret\n").unwrap();
    for copy in ["compressed", "encrypted"] {
        ws.write(
            &format!("apps/app/{copy}.toml"),
            &format!(
                "kind = \"files\"\ndest_prefix = \"app/{copy}\"\npaths = [\"{}\"]\nlocal_copy = \"{copy}\"\n",
                source.path().display()
            ),
        );
    }
    // Twice: the second run replaces the copies.
    run(ws.home(), &["backup"]);
    run(ws.home(), &["backup"]);
    assert_eq!(mode(&ws.path("data/app/compressed/latest.tar.zst")), 0o600);
    assert_eq!(mode(&ws.path("data/app/encrypted/latest")), 0o700);
    for dir in ["data", "data/app", "data/app/compressed", "restore", "secrets"] {
        assert_eq!(mode(&ws.path(dir)), 0o700, "{dir}");
    }
    run(ws.home(), &["verify", "--all"]);
    // The default target (restore/app/compressed/ID) and a new folder.
    run(ws.home(), &["restore", "app/compressed"]);
    let targets = open_dir();
    let out = targets.path().join("out");
    run(ws.home(), &["restore", "app/compressed", "--to", out.to_str().unwrap()]);
    assert_eq!(
        fs::read(out.join(source.path().strip_prefix("/").unwrap()).join("customers.csv")).unwrap(),
        b"alice,secret\n"
    );
    let restored: Vec<PathBuf> = fs::read_dir(ws.path("restore/app/compressed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(restored.len(), 1);
    assert_eq!(mode(&ws.path("restore/app")), 0o700);
    assert_private(ws.home(), &restored);
    assert_private(targets.path(), &[out]);
    no_leftovers(ws.home());
    no_leftovers(targets.path());
}

#[test]
fn postgres_local_copy_dumps_restores_and_mirror_are_private() {
    let Some(p) = PgWs::new(Auth::Trust, "") else { return };
    let ws = &p.ws;
    fs::set_permissions(ws.home(), fs::Permissions::from_mode(0o755)).unwrap();
    p.prod.psql("postgres", "CREATE DATABASE shop_test");
    let profile = fs::read_to_string(ws.path("apps/shop/db.toml")).unwrap();
    ws.write(
        "apps/shop/db.toml",
        &format!(
            "local_copy = \"compressed\"\n{profile}\n[mirror]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"shop_test\"\nbin_dir = \"{}\"\nno_owner = true\n",
            p.prod.port,
            p.prod.bindir.display()
        ),
    );
    run(ws.home(), &["backup", "shop/db"]);
    assert_eq!(mode(&ws.path("data/shop/db/latest.pgdump.zst")), 0o600);
    run(ws.home(), &["mirror", "shop/db"]);
    run(ws.home(), &["restore", "shop/db"]);
    let targets = open_dir();
    let dumps = targets.path().join("dumps");
    run(ws.home(), &["restore", "shop/db", "--to", dumps.to_str().unwrap()]);
    assert_eq!(mode(&dumps), 0o700);
    assert_eq!(mode(&dumps.join("shop.pgdump")), 0o600);
    let adhoc = targets.path().join("adhoc.pgdump");
    run(ws.home(), &["db", "dump", "prod", "shop", adhoc.to_str().unwrap()]);
    assert_eq!(mode(&adhoc), 0o600);
    // Dumps are judged whole: nothing of a database restore keeps archived modes.
    assert_private(ws.home(), &[]);
    assert_private(targets.path(), &[]);
    no_leftovers(ws.home());
    no_leftovers(targets.path());
}
