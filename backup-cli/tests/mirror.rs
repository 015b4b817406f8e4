//! Mirror prod (DESIGN §7): the test database becomes a sanitized copy of the
//! newest backup, or stays exactly as it was.

mod support;

use std::fs;
use std::time::Duration;

use backup_pg::testing::{Auth, TestCluster};
use support::{backup_folder, PgWs, FINGERPRINT};

struct Mirror {
    p: PgWs,
    test: TestCluster,
}

/// Prod with database `shop` backed up once; a test server whose `shop_test`
/// holds an old copy; `[mirror]` with a sanitize script and a check.
fn mirror(extra_mirror: &str) -> Option<Mirror> {
    let test = TestCluster::start(Auth::Trust)?;
    test.psql("postgres", "CREATE DATABASE shop_test");
    test.psql(
        "shop_test",
        "CREATE TABLE customers (id int, email text); INSERT INTO customers VALUES (1, 'old@copy')",
    );
    let section = format!(
        "[mirror]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\ndatabase = \"shop_test\"\nbin_dir = \"{}\"\nsanitize = [\"apps/shop/scrub.sql\"]\ncheck_sql = \"SELECT count(*) = 0 FROM customers WHERE email LIKE '%@example.org'\"\n{extra_mirror}",
        test.port,
        test.bindir.display()
    );
    let p = PgWs::new(Auth::Trust, &section)?;
    p.ws.write(
        "apps/shop/scrub.sql",
        "UPDATE customers SET email = 'user' || id || '@invalid';\n",
    );
    p.ws.ok(&["backup", "shop/db"]);
    Some(Mirror { p, test })
}

impl Mirror {
    /// What must not change when a mirror fails: the database's identity and contents.
    fn test_state(&self) -> (String, String, String) {
        (
            self.test
                .psql("postgres", "SELECT oid FROM pg_database WHERE datname = 'shop_test'"),
            self.test.psql(
                "shop_test",
                "SELECT string_agg(id || ':' || email, ',' ORDER BY id) FROM customers",
            ),
            self.test.psql(
                "postgres",
                "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
            ),
        )
    }

    fn assert_fails_and_keeps_test_db(&self, args: &[&str], expect: &str) {
        let before = self.test_state();
        let out = self.p.ws.run(args);
        let text = support::text(&out);
        assert!(!out.status.success(), "mirror succeeded:\n{text}");
        assert!(text.contains(expect), "expected {expect:?} in:\n{text}");
        assert_eq!(self.test_state(), before, "the test database changed:\n{text}");
        assert!(
            self.p.ws.list("shop/db").iter().all(|b| b["restored"].is_null()),
            "no restore-verified mark"
        );
    }
}

#[test]
fn mirror_makes_a_sanitized_copy_and_marks_the_backup() {
    let Some(m) = mirror("") else { return };
    // A session sits in the test database: it must not block the swap.
    let mut idle = std::process::Command::new(m.test.bindir.join("psql"))
        .args(["-X", "-d", "shop_test", "-c", "SELECT pg_sleep(60)"])
        .envs(m.test.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = m.p.ws.ok(&["mirror", "shop/db"]);
    assert!(out.contains("restore-verified"), "{out}");
    let _ = idle.kill();
    let _ = idle.wait();
    // Equal to prod once prod gets the same sanitizing.
    m.p.prod.psql("postgres", "CREATE DATABASE shop_expected TEMPLATE shop");
    m.p.prod.psql(
        "shop_expected",
        &fs::read_to_string(m.p.ws.path("apps/shop/scrub.sql")).unwrap(),
    );
    assert_eq!(
        m.test.psql("shop_test", FINGERPRINT),
        m.p.prod.psql("shop_expected", FINGERPRINT)
    );
    assert_eq!(
        m.test.psql("shop_test", "SELECT email FROM customers WHERE id = 7"),
        "user7@invalid"
    );
    assert_eq!(
        m.test.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop_test\\_\\_%'"
        ),
        "0"
    );
    let list = m.p.ws.list("shop/db");
    assert!(list[0]["restored"].is_string(), "{:?}", list[0]);
    assert_eq!(list[0]["marks"]["restored"]["mode"], "restored", "{:?}", list[0]);
    assert_eq!(list[0]["marks"]["restored"]["result"], "ok", "{:?}", list[0]);
    let id = list[0]["id"].as_str().unwrap();
    let mark = fs::read_to_string(backup_folder(&m.p.ws, "shop/db", id).join("marks/restored.json")).unwrap();
    assert!(
        mark.contains("\"kind\": \"mirror\"")
            && mark.contains("\"tables\": 3")
            && mark.contains("\"mode\": \"restored\"")
            && mark.contains("\"result\": \"ok\""),
        "{mark}"
    );
}

#[test]
fn mirror_of_an_older_backup_and_dry_run() {
    let Some(m) = mirror("") else { return };
    let first = m.p.ws.list("shop/db")[0]["id"].as_str().unwrap().to_owned();
    m.p.prod.psql(
        "shop",
        "INSERT INTO customers (name, email) VALUES ('newer', 'n@example.org')",
    );
    m.p.ws.ok(&["backup", "shop/db"]);
    let before = m.test_state();
    let out = m.p.ws.ok(&["mirror", "shop/db", "--dry-run"]);
    assert!(
        out.contains("would mirror backup") && out.contains("scrub.sql"),
        "{out}"
    );
    assert_eq!(m.test_state(), before, "dry run changes nothing");
    m.p.ws.ok(&["mirror", "shop/db", "--backup", &first]);
    assert_eq!(m.test.psql("shop_test", "SELECT count(*) FROM customers"), "2000");
}

#[test]
fn tampered_chunk_leaves_the_test_database() {
    let Some(m) = mirror("") else { return };
    let id = m.p.ws.list("shop/db")[0]["id"].as_str().unwrap().to_owned();
    let chunk = backup_folder(&m.p.ws, "shop/db", &id).join("data-000002.zst.gpg");
    let mut bytes = fs::read(&chunk).unwrap();
    bytes[100] ^= 0x10;
    fs::write(&chunk, bytes).unwrap();
    m.assert_fails_and_keeps_test_db(&["mirror", "shop/db"], "data-000002.zst.gpg");
}

#[test]
fn failing_sanitize_leaves_the_test_database() {
    let Some(m) = mirror("") else { return };
    m.p.ws.write(
        "apps/shop/scrub.sql",
        "UPDATE customers SET email = 'x';\nUPDATE no_such_table SET a = 1;\n",
    );
    m.assert_fails_and_keeps_test_db(&["mirror", "shop/db"], "sanitize apps/shop/scrub.sql");
}

#[test]
fn failing_check_leaves_the_test_database() {
    let Some(m) = mirror("") else { return };
    m.p.ws.write("apps/shop/scrub.sql", "SELECT 1;\n"); // scrubs nothing: the check must catch it
    m.assert_fails_and_keeps_test_db(&["mirror", "shop/db"], "returned false");
}

#[test]
fn missing_role_on_the_test_server_fails_unless_no_owner() {
    let Some(m) = mirror("") else { return };
    m.p.prod.psql(
        "shop",
        "CREATE ROLE shop_owner; ALTER TABLE customers OWNER TO shop_owner",
    );
    m.p.ws.ok(&["backup", "shop/db"]);
    m.assert_fails_and_keeps_test_db(&["mirror", "shop/db"], "role \"shop_owner\" does not exist");
    let profile = fs::read_to_string(m.p.ws.path("apps/shop/db.toml")).unwrap();
    m.p.ws
        .write("apps/shop/db.toml", &format!("{profile}no_owner = true\n"));
    m.p.ws.ok(&["mirror", "shop/db"]);
    assert_eq!(m.test.psql("shop_test", "SELECT count(*) FROM customers"), "2000");
}

#[test]
fn no_backup_yet_leaves_the_test_database() {
    let Some(m) = mirror("") else { return };
    fs::remove_dir_all(m.p.ws.path("store/shop/db")).unwrap();
    m.assert_fails_and_keeps_test_db(&["mirror", "shop/db"], "no trusted backup yet");
}

#[test]
fn test_server_stopped_mid_restore_leaves_the_test_database() {
    let Some(m) = mirror("") else { return };
    m.p.prod.psql(
        "shop",
        "CREATE TABLE bulk AS SELECT g, md5(g::text) || md5((g * 3)::text) AS p FROM generate_series(1, 600000) g",
    );
    m.p.ws.ok(&["backup", "shop/db"]);
    let before = m.test_state();
    let mut child = m.p.ws.cmd(&["mirror", "shop/db"]).spawn().unwrap();
    let port = format!("PGPORT={}", m.test.port);
    let mut stopped = false;
    for _ in 0..300 {
        std::thread::sleep(Duration::from_millis(50));
        let restoring = fs::read_dir("/proc").unwrap().flatten().any(|e| {
            let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let environ = fs::read(e.path().join("environ")).unwrap_or_default();
            comm.trim() == "pg_restore" && environ.split(|b| *b == 0).any(|v| v == port.as_bytes())
        });
        if restoring {
            m.test.stop();
            stopped = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(stopped, "pg_restore was seen running");
    assert!(!status.success());
    m.test.start_server();
    let after = m.test_state();
    assert_eq!(
        (&after.0, &after.1),
        (&before.0, &before.1),
        "the test database is as it was"
    );
    // The next run cleans the leftover temporary copy and succeeds.
    m.p.ws.ok(&["mirror", "shop/db"]);
    assert_eq!(
        m.test.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'shop_test\\_\\_%'"
        ),
        "0"
    );
}

#[test]
fn concurrent_mirror_is_refused_and_restore_to_test_is_safe() {
    let Some(m) = mirror("") else { return };
    let lock_dir = m.p.ws.path("data/locks");
    fs::create_dir_all(&lock_dir).unwrap();
    let held = fs::File::create(lock_dir.join("mirror-shop-db.lock")).unwrap();
    held.lock().unwrap();
    m.assert_fails_and_keeps_test_db(&["mirror", "shop/db"], "already running");
    drop(held);

    // db restore-to-test takes the same safe path: a failing sanitize keeps the test db.
    let dump = m.p.ws.path("shop.dump");
    m.p.ws.ok(&["db", "dump", "prod", "shop", dump.to_str().unwrap()]);
    m.p.ws.write("apps/shop/scrub.sql", "UPDATE no_such_table SET a = 1;\n");
    m.assert_fails_and_keeps_test_db(&["db", "restore-to-test", dump.to_str().unwrap()], "sanitize");
    m.p.ws.write(
        "apps/shop/scrub.sql",
        "UPDATE customers SET email = 'user' || id || '@invalid';\n",
    );
    m.p.ws.ok(&["db", "restore-to-test", dump.to_str().unwrap()]);
    assert_eq!(m.test.psql("shop_test", "SELECT count(*) FROM customers"), "2000");
}
