//! PostgreSQL profiles through the binary, against a throwaway cluster.

mod support;

use std::fs;
use std::process::Command;

use backup_pg::testing::Auth;
use support::{backup_folder, require, text, Gpg, PgWs, FINGERPRINT};

#[test]
fn backup_verify_and_restore_into_a_new_database() {
    let Some(p) = PgWs::new(Auth::Trust, "") else { return };
    let ws = &p.ws;
    ws.ok(&["backup", "shop/db"]);
    let list = ws.list("shop/db");
    assert_eq!(list[0]["kind"], "postgres");
    assert!(list[0]["chunks"].as_u64().unwrap() > 1);
    let out = ws.ok(&["verify", "shop/db"]);
    assert!(out.contains("pg_restore --list read"), "{out}");

    ws.ok(&["restore", "shop/db", "--to-db", "shop_copy"]);
    let original = p.prod.psql("shop", FINGERPRINT);
    assert_eq!(p.prod.psql("shop_copy", FINGERPRINT), original);

    // Never touches an existing database without --replace.
    p.prod
        .psql("shop_copy", "INSERT INTO customers (name) VALUES ('added later')");
    let changed = p.prod.psql("shop_copy", FINGERPRINT);
    let out = ws.fails(&["restore", "shop/db", "--to-db", "shop_copy"], 2);
    assert!(out.contains("exists already") && out.contains("--replace"), "{out}");
    assert_eq!(p.prod.psql("shop_copy", FINGERPRINT), changed);
    ws.ok(&["restore", "shop/db", "--to-db", "shop_copy", "--replace"]);
    assert_eq!(p.prod.psql("shop_copy", FINGERPRINT), original);
    assert!(ws.list("shop/db")[0]["restored"].is_string());
}

#[test]
fn restore_to_a_folder_and_with_stock_tools() {
    if !(require("gpg", "gnupg") && require("zstd", "zstd") && require("jq", "jq")) {
        return;
    }
    let Some(p) = PgWs::new(Auth::Trust, "globals = true\n") else {
        return;
    };
    let ws = &p.ws;
    ws.ok(&["backup", "shop/db"]);
    let id = ws.list("shop/db")[0]["id"].as_str().unwrap().to_owned();
    let dir = ws.path("dumps");
    ws.ok(&["restore", "shop/db", "--to", dir.to_str().unwrap()]);
    assert!(dir.join("shop.pgdump").is_file());
    assert!(fs::read_to_string(dir.join("globals.sql"))
        .unwrap()
        .contains("CREATE ROLE"));

    // gpg --verify, sha256sum -c, then gpg --decrypt | zstd -d | pg_restore -d NEWDB, as the README says.
    let (gpg, pass) = Gpg::with_key(ws, "backup");
    p.prod.psql("postgres", "CREATE DATABASE shop_dr");
    let script = format!(
        "set -euo pipefail; cd '{}'; export GNUPGHOME='{}'; gpg --batch --quiet --verify manifest.json.sig manifest.json; jq -r '.chunks[] | \"\\(.sha256)  \\(.name)\"' manifest.json | sha256sum --quiet -c; for c in data-*.zst.gpg; do gpg --batch --quiet --pinentry-mode loopback --passphrase '{pass}' --decrypt \"$c\"; done | zstd -d -q | '{}' --no-password -d shop_dr",
        backup_folder(ws, "shop/db", &id).display(),
        gpg.home.path().display(),
        p.prod.bindir.join("pg_restore").display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .envs(p.prod.env())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(p.prod.psql("shop_dr", FINGERPRINT), p.prod.psql("shop", FINGERPRINT));
}

#[test]
fn password_stays_out_of_logs_and_errors() {
    let Some(p) = PgWs::new(Auth::Scram, "") else { return };
    let ws = &p.ws;
    let out = ws.cmd(&["-vv", "backup", "shop/db"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(backup_pg::testing::TestCluster::PASSWORD));
    // A wrong password: a clear error, nothing committed, the password not shown.
    ws.write("secrets/prod-db.pass", "not-the-password-42\n");
    let out = ws.fails(&["-vv", "backup", "shop/db"], 1);
    assert!(out.contains("password authentication failed"), "{out}");
    assert!(!out.contains("not-the-password-42"), "{out}");
    assert_eq!(ws.list("shop/db").len(), 1);
}

#[test]
fn database_utilities() {
    let Some(p) = PgWs::new(Auth::Trust, "") else { return };
    let ws = &p.ws;
    let out = ws.ok(&["db", "list", "prod"]);
    assert!(out.contains("shop") && out.contains("postgres"), "{out}");
    let out = ws.ok(&["db", "ping", "prod", "shop"]);
    assert!(out.contains("OK"), "{out}");
    let out = ws.fails(&["db", "ping", "prod", "nope"], 1);
    assert!(out.contains("database \"nope\" does not exist"), "{out}");
    let file = ws.path("shop.dump");
    ws.ok(&["db", "dump", "prod", "shop", file.to_str().unwrap()]);
    assert!(fs::read(&file).unwrap().starts_with(b"PGDMP"));
    let out = ws.fails(&["db", "dump", "prod", "shop", file.to_str().unwrap()], 2);
    assert!(out.contains("exists already"), "{out}");
    let out = ws.fails(&["db", "list", "test"], 2);
    assert!(out.contains("[mirror]"), "{out}");
}

#[test]
fn check_tests_the_database_and_libpq_environment_is_honoured() {
    let Some(p) = PgWs::new(Auth::Scram, "") else { return };
    let ws = &p.ws;
    let out = ws.ok(&["check", "shop/db"]);
    assert!(out.contains("PostgreSQL 1") && out.contains("pg_dump"), "{out}");

    // No host, port or password in the profile: PGHOST, PGPORT and a pgpass file.
    let profile = fs::read_to_string(ws.path("apps/shop/db.toml")).unwrap();
    let stripped: String = profile
        .lines()
        .filter(|l| !l.starts_with("host") && !l.starts_with("port") && !l.starts_with("password_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    ws.write("apps/shop/db.toml", &stripped);
    let pgpass = ws.path("pgpass");
    fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:*:postgres:{}\n",
            p.prod.port,
            backup_pg::testing::TestCluster::PASSWORD
        ),
    )
    .unwrap();
    fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = ws
        .cmd(&["backup", "shop/db"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", p.prod.port.to_string())
        .env("PGPASSFILE", &pgpass)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // An unreachable server is a FAIL naming it.
    ws.write(
        "apps/shop/db.toml",
        &profile.replace(&format!("port = {}", p.prod.port), "port = 1"),
    );
    let out = ws.fails(&["check", "shop/db"], 2);
    assert!(out.contains("FAIL") && out.contains("127.0.0.1:1"), "{out}");
}
