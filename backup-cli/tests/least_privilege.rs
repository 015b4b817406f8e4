//! Backups, restores and mirrors with least privilege (DESIGN §7, issue 13):
//! every role here is an ordinary one made by the bootstrap superuser; the
//! backup role only has pg_read_all_data and CONNECT, the restore and mirror
//! roles CREATEDB and membership of the owner `myapp`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use backup_pg::testing::{Auth, TestCluster};
use support::{text, Ws};

/// The roles of the template, their passwords, and one without CREATEDB.
const ROLES: &str = r#"
CREATE ROLE myapp;
CREATE ROLE backup LOGIN PASSWORD 'backup-pw';
GRANT pg_read_all_data TO backup;
CREATE ROLE restore LOGIN CREATEDB PASSWORD 'restore-pw';
GRANT myapp TO restore;
CREATE ROLE mirror LOGIN CREATEDB PASSWORD 'mirror-pw';
GRANT myapp TO mirror;
CREATE ROLE weak LOGIN PASSWORD 'weak-pw';
CREATE ROLE stranger;
"#;

/// Made as `myapp`, so that `myapp` owns everything, as in production.
const DATA: &str = r#"
SET ROLE myapp;
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);
INSERT INTO users (email) SELECT 'u' || g || '@example.org' FROM generate_series(1, 500) g;
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users, amount numeric(10,2));
INSERT INTO orders (user_id, amount) SELECT 1 + g % 500, g * 0.5 FROM generate_series(1, 3000) g;
CREATE SEQUENCE invoice_no START 100; SELECT nextval('invoice_no');
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
CREATE FUNCTION total_for(u int) RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM orders WHERE user_id = u';
"#;

const FINGERPRINT: &str = r#"
SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM users t
UNION ALL SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM orders t
UNION ALL SELECT last_value::text FROM invoice_no
UNION ALL SELECT count(*)::text FROM big_orders
UNION ALL SELECT total_for(7)::text
"#;

/// `db=OWNER objects=OWNER[,OWNER]`: who owns the database and what is in `public`.
const OWNERS: &str = r#"
SELECT 'db=' || pg_get_userbyid(d.datdba) || ' objects=' || (
  SELECT string_agg(DISTINCT o, ',') FROM (
    SELECT pg_get_userbyid(relowner) AS o FROM pg_class WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
  ) x)
FROM pg_database d WHERE d.datname = current_database()
"#;

/// A cluster with the roles and the database `myapp` (owned by `myapp`,
/// CONNECT only for `backup`), and a workspace whose secrets hold the
/// roles' passwords (0600).
fn setup() -> Option<(TestCluster, Ws)> {
    let pg = TestCluster::start(Auth::Scram)?;
    pg.psql("postgres", ROLES);
    pg.psql("postgres", "CREATE DATABASE myapp OWNER myapp");
    pg.psql(
        "postgres",
        "REVOKE CONNECT ON DATABASE myapp FROM PUBLIC; GRANT CONNECT ON DATABASE myapp TO backup",
    );
    pg.psql("myapp", DATA);
    let ws = Ws::new();
    for (file, password) in [
        ("myapp-db.pass", "backup-pw"),
        ("restore-db.pass", "restore-pw"),
        ("test-db.pass", "mirror-pw"),
    ] {
        let path = format!("secrets/{file}");
        ws.write(&path, &format!("{password}\n"));
        fs::set_permissions(ws.path(&path), fs::Permissions::from_mode(0o600)).unwrap();
    }
    Some((pg, ws))
}

/// The template's `# key = value` lines in `sections` made live (with
/// `[source] password_file`), pointed at the test cluster.
fn from_template(ws: &Ws, pg: &TestCluster, sections: &[&str]) -> String {
    let template = fs::read_to_string(ws.path("apps/templates/postgres.toml")).unwrap();
    let mut section = String::new();
    let mut out = String::new();
    for line in template.lines() {
        let live = line.strip_prefix("# ").unwrap_or(line);
        if live.starts_with('[') {
            section = live.trim_matches(['[', ']']).to_owned();
        }
        let is_key = live.split_once(" = ").is_some_and(|(k, _)| !k.contains(' '));
        let wanted = sections.contains(&section.as_str()) || (section == "source" && live.starts_with("password_file"));
        if line.starts_with("# ") && wanted && (live.starts_with('[') || is_key) {
            out.push_str(live);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.replace("test-db.internal", "127.0.0.1")
        .replace("db.internal", "127.0.0.1")
        .replace("port = 5432", &format!("port = {}", pg.port))
        .replace("/usr/lib/postgresql/15/bin", &pg.bindir.display().to_string())
}

/// A profile with only `[source]` (the backup role) and `extra`.
fn source_only(ws: &Ws, pg: &TestCluster, extra: &str) {
    ws.write(
        "apps/myapp/db.toml",
        &format!(
            "kind = \"postgres\"\ndest_prefix = \"myapp/db\"\n[source]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"backup\"\ndatabase = \"myapp\"\npassword_file = \"secrets/myapp-db.pass\"\nbin_dir = \"{}\"\n{extra}",
            pg.port,
            pg.bindir.display()
        ),
    );
}

fn exists(pg: &TestCluster, db: &str) -> bool {
    pg.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

#[test]
fn template_roles_back_up_restore_and_mirror_without_a_superuser() {
    let Some((pg, ws)) = setup() else { return };
    ws.write("apps/myapp/db.toml", &from_template(&ws, &pg, &["restore", "mirror"]));
    ws.write(
        "apps/myapp/scrub.sql",
        "UPDATE users SET email = 'user' || id || '@invalid';\n",
    );
    pg.psql("postgres", "CREATE DATABASE myapp_test OWNER myapp");
    pg.psql(
        "myapp_test",
        "SET ROLE myapp; CREATE TABLE users (id int, email text); INSERT INTO users VALUES (1, 'old@copy')",
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = 'backup'"
        ),
        "f"
    );

    ws.ok(&["backup", "myapp/db"]);
    let original = pg.psql("myapp", FINGERPRINT);

    // [restore]: user = "restore", owner = "myapp", its own password file.
    let out = ws.ok(&["restore", "myapp/db", "--to-db", "myapp_copy"]);
    assert!(out.contains("restore@127.0.0.1"), "{out}");
    assert_eq!(pg.psql("myapp_copy", FINGERPRINT), original);
    assert_eq!(pg.psql("myapp_copy", OWNERS), "db=myapp objects=myapp");

    // --no-owner on the command line wins over [restore] owner.
    ws.ok(&["restore", "myapp/db", "--to-db", "myapp_mine", "--no-owner"]);
    assert_eq!(pg.psql("myapp_mine", FINGERPRINT), original);
    assert_eq!(pg.psql("myapp_mine", OWNERS), "db=restore objects=restore");

    // The template's [mirror]: owner = "myapp", user = "mirror".
    let out = ws.ok(&["mirror", "myapp/db"]);
    assert!(out.contains("restore-verified"), "{out}");
    assert_eq!(pg.psql("myapp_test", OWNERS), "db=myapp objects=myapp");
    assert_eq!(
        pg.psql("myapp_test", "SELECT email FROM users WHERE id = 7"),
        "user7@invalid"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'myapp_test\\_\\_%'"
        ),
        "0"
    );
    // A second run replaces the copy it made (owned through membership of myapp).
    ws.ok(&["mirror", "myapp/db"]);
    assert_eq!(pg.psql("myapp_test", OWNERS), "db=myapp objects=myapp");
}

#[test]
fn restore_flags_name_the_server_role_and_owner() {
    let Some((pg, ws)) = setup() else { return };
    // [restore] points at a closed port: the flags and the environment must win.
    source_only(&ws, &pg, "[restore]\nport = 1\n");
    ws.ok(&["backup", "myapp/db"]);
    let original = pg.psql("myapp", FINGERPRINT);
    let port = pg.port.to_string();
    let restore = |db: &str, extra: &[&str]| {
        let mut args = vec![
            "restore",
            "myapp/db",
            "--to-db",
            db,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
        ];
        args.extend_from_slice(extra);
        ws.cmd(&args).env("PGPASSWORD", "restore-pw").output().unwrap()
    };

    let out = restore("by_owner", &["--user", "restore", "--owner", "myapp"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg.psql("by_owner", FINGERPRINT), original);
    assert_eq!(pg.psql("by_owner", OWNERS), "db=myapp objects=myapp");

    let out = restore("by_restorer", &["--user", "restore", "--no-owner"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg.psql("by_restorer", FINGERPRINT), original);
    assert_eq!(pg.psql("by_restorer", OWNERS), "db=restore objects=restore");

    // Keeping the dump's owners needs membership of each of them and rights
    // on `public`: it fails, says what to do, and leaves no database behind.
    let out = restore("as_dumped", &["--user", "restore"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("--owner ROLE") && said.contains("--no-owner"), "{said}");
    assert!(!exists(&pg, "as_dumped"), "{said}");

    // Without the flags, [restore] port = 1 is used: proof that it is read.
    let out = ws.cmd(&["restore", "myapp/db", "--to-db", "x"]).output().unwrap();
    assert!(text(&out).contains("127.0.0.1:1/"), "{}", text(&out));
    // The environment overrides [restore] like any other section.
    let out = ws
        .cmd(&["restore", "myapp/db", "--to-db", "by_env"])
        .env("BACKUPAPPS_RESTORE__PORT", &port)
        .env("BACKUPAPPS_RESTORE__USER", "restore")
        .env("BACKUPAPPS_RESTORE__OWNER", "myapp")
        .env("PGPASSWORD", "restore-pw")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(pg.psql("by_env", OWNERS), "db=myapp objects=myapp");
    // The flags are for --to-db only.
    let said = ws.fails(&["restore", "myapp/db", "--owner", "myapp"], 2);
    assert!(said.contains("--to-db"), "{said}");
}

/// A rights problem is found before the dump is downloaded: the stored
/// chunks are damaged first, so any download would fail on them instead.
#[test]
fn missing_rights_are_refused_before_downloading() {
    let Some((pg, ws)) = setup() else { return };
    let mirror = format!(
        "[restore]\nuser = \"weak\"\n[mirror]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"weak\"\ndatabase = \"myapp_test\"\nowner = \"myapp\"\n",
        pg.port
    );
    source_only(&ws, &pg, &mirror);
    ws.ok(&["backup", "myapp/db"]);
    let id = ws.list("myapp/db")[0]["id"].as_str().unwrap().to_owned();
    let folder = support::backup_folder(&ws, "myapp/db", &id);
    for chunk in fs::read_dir(&folder).unwrap() {
        let path = chunk.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("data-") {
            let mut bytes = fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            fs::write(&path, bytes).unwrap();
        }
    }
    let port = pg.port.to_string();
    let run = |args: &[&str], password: &str| {
        let out = ws.cmd(args).env("PGPASSWORD", password).output().unwrap();
        (out.status.code(), text(&out))
    };

    // No CREATEDB.
    let (code, said) = run(&["restore", "myapp/db", "--to-db", "nope", "--port", &port], "weak-pw");
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("role \"weak\"") && said.contains("CREATEDB") && said.contains("ALTER ROLE \"weak\" CREATEDB"),
        "{said}"
    );
    assert!(!said.contains("integrity"), "downloaded before checking: {said}");
    assert!(!exists(&pg, "nope"));

    // CREATEDB but not a member of the owner.
    let (code, said) = run(
        &[
            "restore", "myapp/db", "--to-db", "nope", "--user", "restore", "--owner", "stranger",
        ],
        "restore-pw",
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("GRANT \"stranger\" TO \"restore\""), "{said}");
    assert!(!exists(&pg, "nope"));

    // An owner that does not exist.
    let (code, said) = run(
        &[
            "restore", "myapp/db", "--to-db", "nope", "--user", "restore", "--owner", "ghost",
        ],
        "restore-pw",
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("\"ghost\" does not exist"), "{said}");

    // An existing database, as before.
    let (code, said) = run(
        &[
            "restore",
            "myapp/db",
            "--to-db",
            "myapp",
            "--user",
            "restore",
            "--no-owner",
        ],
        "restore-pw",
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("exists already"), "{said}");

    // The mirror's role, checked the same way before its download.
    let (code, said) = run(&["mirror", "myapp/db"], "weak-pw");
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("ALTER ROLE \"weak\" CREATEDB"), "{said}");
    assert!(!said.contains("integrity"), "{said}");

    // The checks passed, the download is what fails: the damage was real.
    let (code, said) = run(
        &[
            "restore",
            "myapp/db",
            "--to-db",
            "nope",
            "--user",
            "restore",
            "--no-owner",
        ],
        "restore-pw",
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("integrity"), "{said}");
    assert!(!exists(&pg, "nope"));
    // Nothing left in the work folder either.
    let leftovers: Vec<_> = fs::read_dir(ws.path("data/myapp/db"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `BACKUPAPPS_SOURCE__*`, `…_RESTORE__*`, `…_MIRROR__*` configure postgres
/// profiles; files profiles ignore them (and the same sections in
/// backupapps.toml), but refuse them in their own file.
#[test]
fn postgres_only_environment_leaves_files_profiles_alone() {
    let ws = Ws::new();
    let folder = ws.path("data-src");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("a.txt"), "a").unwrap();
    ws.files_profile("web/media", &folder, "");
    let global = fs::read_to_string(ws.path("backupapps.toml")).unwrap();
    ws.write("backupapps.toml", &format!("{global}\n[restore]\nowner = \"myapp\"\n"));
    let out = ws
        .cmd(&["backup", "web/media"])
        .env("BACKUPAPPS_SOURCE__USER", "backup")
        .env("BACKUPAPPS_SOURCE__PORT", "not-a-port")
        .env("BACKUPAPPS_RESTORE__OWNER", "myapp")
        .env("BACKUPAPPS_MIRROR__DATABASE", "x_test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    ws.files_profile("web/media", &folder, "[restore]\nowner = \"myapp\"\n");
    let said = ws.fails(&["list"], 2);
    assert!(
        said.contains("web/media.toml") && said.contains("[restore] is for postgres profiles"),
        "{said}"
    );
}

#[test]
fn check_warns_when_the_restore_role_cannot_restore() {
    let Some((pg, ws)) = setup() else { return };
    source_only(&ws, &pg, "[restore]\nuser = \"weak\"\n");
    let out = ws
        .cmd(&["check", "myapp/db"])
        .env("PGPASSWORD", "weak-pw")
        .output()
        .unwrap();
    let said = text(&out);
    // Backups still work: a warning, not a failure.
    assert_eq!(out.status.code(), Some(0), "{said}");
    let line = said.lines().find(|l| l.contains("restore role")).unwrap_or_default();
    assert!(
        line.starts_with("WARN") && line.contains("ALTER ROLE \"weak\" CREATEDB"),
        "{said}"
    );

    source_only(&ws, &pg, "[restore]\nuser = \"restore\"\nowner = \"myapp\"\n");
    let out = ws
        .cmd(&["check", "myapp/db"])
        .env("PGPASSWORD", "restore-pw")
        .output()
        .unwrap();
    let said = text(&out);
    let line = said.lines().find(|l| l.contains("restore role")).unwrap_or_default();
    assert!(
        line.starts_with("OK") && line.contains("may create databases"),
        "{said}"
    );
    assert!(
        !said.contains("backupapps_check_"),
        "the probe name is never created nor shown: {said}"
    );
}
