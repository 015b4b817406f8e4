//! Test support: a workspace in a temp dir, the real binary, the real gpg.
#![allow(dead_code)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_backupapps");

/// A component the tests need. Outside CI a missing one skips the test with a
/// message; under CI=true it fails with how to install it.
pub fn require(tool: &str, package: &str) -> bool {
    if Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    let msg = format!("`{tool}` is not installed: run `apt-get install -y {package}` (scripts/test-all.sh does)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED (not under CI): {msg}");
    false
}

/// A workspace made by `backupapps init` in a temp dir.
pub struct Ws {
    pub dir: tempfile::TempDir,
}

impl Ws {
    /// `init` plus a key pair made by `keygen --name backup`, which also
    /// makes the signing key `secrets/signing.*` the template expects.
    pub fn new() -> Ws {
        let ws = Ws {
            dir: tempfile::tempdir().unwrap(),
        };
        ws.ok(&["init", ws.home().to_str().unwrap()]);
        ws.ok(&["keygen", "--name", "backup"]);
        assert!(
            ws.path("secrets/signing.sec.asc").is_file(),
            "keygen made the signing key"
        );
        ws
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home().join(rel)
    }

    /// Writes a file in the workspace, creating folders.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// A files profile `app/files` over `folder`, with small chunks so that
    /// every backup has several.
    pub fn files_profile(&self, target: &str, folder: &Path, extra: &str) {
        self.write(
            &format!("apps/{target}.toml"),
            &format!(
                "kind = \"files\"\ndest_prefix = \"{target}\"\npaths = [\"{}\"]\nexclude = [\"*.tmp\"]\n{extra}\n[backup]\nchunk_size = \"64KiB\"\n",
                folder.display()
            ),
        );
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--home").arg(self.home()).args(args);
        c.env_remove("BACKUPAPPS_PASSPHRASE")
            .env_remove("BACKUPAPPS_SIGNING_PASSPHRASE")
            .env_remove("BACKUPAPPS_HOME");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "backupapps {args:?} failed:\n{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and asserts the exit code; returns stdout + stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "backupapps {args:?}:\n{}", text(&out));
        text(&out)
    }

    /// `list --json` parsed.
    pub fn list(&self, target: &str) -> Vec<serde_json::Value> {
        let out = self.ok(&["list", target, "--json"]);
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A private GnuPG home for one test.
pub struct Gpg {
    pub home: tempfile::TempDir,
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::tempdir().unwrap();
        Gpg { home }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--quiet", "--pinentry-mode", "loopback"]);
        c
    }

    /// A GnuPG home holding the workspace's secret key `secrets/NAME.sec.asc`,
    /// and that key's passphrase.
    /// A gpg home with the secret key `secrets/NAME.sec.asc` and the
    /// workspace's signing public key (`secrets/signing.pub.asc`) imported.
    pub fn with_key(ws: &Ws, name: &str) -> (Gpg, String) {
        let pass = std::fs::read_to_string(ws.path(&format!("secrets/{name}.pass")))
            .unwrap()
            .trim()
            .to_owned();
        let gpg = Gpg::new();
        let key = ws.path(&format!("secrets/{name}.sec.asc"));
        gpg.run(&["--passphrase", &pass, "--import", key.to_str().unwrap()]);
        gpg.import_signer(ws);
        (gpg, pass)
    }

    /// Imports the workspace's signing public key, as the DR recipe does.
    pub fn import_signer(&self, ws: &Ws) {
        let signer = ws.path("secrets/signing.pub.asc");
        self.run(&["--import", signer.to_str().unwrap()]);
    }

    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cmd().args(args).output().unwrap();
        assert!(out.status.success(), "gpg {args:?} failed:\n{}", text(&out));
        out.stdout
    }
}

/// The README's disaster-recovery recipe with stock tools: `gpg --verify` the
/// manifest's signature (the signer's public key imported into `gpg`), check
/// every chunk's SHA-256 against the manifest with `jq | sha256sum -c`, then
/// decrypt the chunks with gpg in name order and `zstd -d | tar -x` into `into`.
pub fn stock_restore(gpg: &Gpg, passphrase: &str, backup_folder: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let script = format!(
        "set -euo pipefail; cd '{folder}'; gpg --homedir '{home}' --batch --quiet --verify manifest.json.sig manifest.json; jq -r '.chunks[] | \"\\(.sha256)  \\(.name)\"' manifest.json | sha256sum --quiet -c; for c in data-*.zst.gpg; do gpg --homedir '{home}' --batch --quiet --pinentry-mode loopback --passphrase '{passphrase}' --decrypt \"$c\"; done | zstd -d -q | tar -x -C '{into}'",
        folder = backup_folder.display(),
        home = gpg.home.path().display(),
        into = into.display(),
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "stock restore failed:\n{}", text(&out));
}

/// The folder of backup `id` of `target` in the workspace's file store.
pub fn backup_folder(ws: &Ws, target: &str, id: &str) -> PathBuf {
    ws.path("store").join(target).join(id)
}

/// A workspace with a postgres profile `shop/db` backing up database `shop`
/// on `prod`, optionally mirrored into `shop_test` on `test`.
pub struct PgWs {
    pub ws: Ws,
    pub prod: backup_pg::testing::TestCluster,
}

/// Tables, sequences, views, functions and large objects, as one comparable text.
pub const FINGERPRINT: &str = r#"
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT 'customers ' || md5(string_agg(t::text, '|' ORDER BY t.id)) AS x FROM customers t
  UNION ALL SELECT 'orders ' || md5(string_agg(t::text, '|' ORDER BY t.id)) FROM orders t
  UNION ALL SELECT 'seq ' || last_value FROM invoice_no
  UNION ALL SELECT 'fn ' || total_for(1)
  UNION ALL SELECT 'lo ' || md5(string_agg(md5(lo_get(blob)), '|' ORDER BY id)) FROM docs
) s
"#;

pub const SHOP: &str = r#"
CREATE TABLE customers (id serial PRIMARY KEY, name text, email text, data jsonb, photo bytea);
INSERT INTO customers (name, email, data, photo)
  SELECT 'customer ' || g, 'c' || g || '@example.org', jsonb_build_object('n', g), decode(md5(g::text), 'hex')
  FROM generate_series(1, 2000) g;
CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, amount numeric(12,2), at timestamptz);
INSERT INTO orders (customer, amount, at)
  SELECT 1 + g % 2000, g * 1.25, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 20000) g;
CREATE SEQUENCE invoice_no START 500; SELECT nextval('invoice_no');
CREATE FUNCTION total_for(c int) RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM orders WHERE customer = c';
CREATE TABLE docs (id int PRIMARY KEY, blob oid);
INSERT INTO docs VALUES (1, lo_from_bytea(0, 'a large object'::bytea));
"#;

impl PgWs {
    /// Starts `prod`, fills database `shop`, and writes `apps/shop/db.toml`
    /// with `extra` appended (e.g. a `[mirror]` section).
    pub fn new(auth: backup_pg::testing::Auth, extra: &str) -> Option<PgWs> {
        let prod = backup_pg::testing::TestCluster::start(auth)?;
        prod.psql("postgres", "CREATE DATABASE shop");
        prod.psql("shop", SHOP);
        let ws = Ws::new();
        let password = if auth == backup_pg::testing::Auth::Scram {
            ws.write(
                "secrets/prod-db.pass",
                &format!("{}\n", backup_pg::testing::TestCluster::PASSWORD),
            );
            let file = ws.path("secrets/prod-db.pass");
            std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            "password_file = \"secrets/prod-db.pass\"\n"
        } else {
            ""
        };
        ws.write(
            "apps/shop/db.toml",
            &format!(
                "kind = \"postgres\"\ndest_prefix = \"shop/db\"\n[backup]\nchunk_size = \"256KiB\"\n[source]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"shop\"\nbin_dir = \"{}\"\n{password}{extra}",
                prod.port,
                prod.bindir.display()
            ),
        );
        Some(PgWs { ws, prod })
    }
}
