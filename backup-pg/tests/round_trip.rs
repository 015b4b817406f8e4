//! PostgreSQL backups through the real pipeline against a throwaway cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backup_core::testing::test_keys;
use backup_core::{
    list_backups, restore_to_file, run_backup, BackupOptions, DynStore, Error, MemoryStore, PgpDecryptor, PgpEncryptor,
    Pick, ProfileRef, Store,
};
use backup_pg::testing::{Auth, TestCluster};
use backup_pg::{create_database, pg_restore, PgConfig, PgConn, PgSource, RestoreOptions};

const SCHEMA: &str = r#"
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE EXTENSION pgcrypto;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE everything (
    id serial PRIMARY KEY,
    b bytea, j json, jb jsonb, arr int[], tags text[], n numeric(30,10), ts timestamptz,
    d date, iv interval, u uuid, h hstore, ci citext, m mood, f double precision, ip inet, r int4range
);
INSERT INTO everything (b, j, jb, arr, tags, n, ts, d, iv, u, h, ci, m, f, ip, r)
SELECT decode(md5(i::text), 'hex'), json_build_object('i', i), jsonb_build_object('k', i, 'a', array[i, i+1]),
       array[i, i*2], array['t' || i, 'ü' || i], i * 1.0123456789, '2026-01-01 00:00:00+00'::timestamptz + i * interval '1 hour',
       '2026-01-01'::date + i, i * interval '1 minute', gen_random_uuid(), hstore('k' || i, 'v'), 'CaSe' || i,
       (array['sad','ok','happy'])[1 + i % 3]::mood, i / 7.0, ('10.0.' || (i % 255) || '.1')::inet, int4range(i, i + 10)
FROM generate_series(1, 3000) i;
CREATE TABLE filler AS SELECT g AS id, md5(g::text) || repeat(md5((g*7)::text), 8) AS payload FROM generate_series(1, 20000) g;
CREATE SEQUENCE invoice_no START 1000;
SELECT nextval('invoice_no') FROM generate_series(1, 42);
CREATE VIEW happy AS SELECT id, ci FROM everything WHERE m = 'happy';
CREATE FUNCTION double_it(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 2';
CREATE TABLE docs (id int PRIMARY KEY, blob oid);
INSERT INTO docs SELECT 1, lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8'));
"#;

/// Everything compared between the source and the restored database.
const FINGERPRINT: &str = r#"
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT 'everything ' || md5(string_agg(t::text, '|' ORDER BY t.id)) AS x FROM everything t
  UNION ALL SELECT 'filler ' || md5(string_agg(t::text, '|' ORDER BY t.id)) FROM filler t
  UNION ALL SELECT 'docs ' || md5(string_agg(md5(lo_get(blob)), '|' ORDER BY id)) FROM docs
  UNION ALL SELECT 'seq ' || last_value FROM invoice_no
  UNION ALL SELECT 'view ' || count(*) FROM happy
  UNION ALL SELECT 'fn ' || double_it(21)
  UNION ALL SELECT 'ext ' || string_agg(extname, ',' ORDER BY extname) FROM pg_extension
) s
"#;

fn keys() -> (Arc<PgpEncryptor>, Arc<PgpDecryptor>) {
    (test_keys().encryptor.clone(), test_keys().decryptor.clone())
}

fn conn(cluster: &TestCluster, db: &str, password: Option<&Path>) -> PgConn {
    let config = PgConfig {
        host: Some("127.0.0.1".into()),
        port: Some(cluster.port),
        user: Some(TestCluster::USER.into()),
        database: Some(db.into()),
        password_file: password.map(Path::to_path_buf),
        bin_dir: Some(cluster.bindir.clone()),
        ..Default::default()
    };
    PgConn::from_env(&config, Path::new("/")).unwrap()
}

async fn write_dump(store: DynStore, dec: Arc<PgpDecryptor>, m: &backup_core::Manifest, path: &Path) {
    let profile = ProfileRef::new(&m.app, &m.profile, &m.dest_prefix);
    let listing = list_backups(&store, &profile, &test_keys().trust).await.unwrap();
    let entry = listing.pick(Pick::Id(&m.id)).unwrap();
    restore_to_file(&store, dec, entry, "data", path, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_types_round_trip_table_by_table() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE shop");
    cluster.psql("shop", SCHEMA);
    let (enc, dec) = keys();
    let store: DynStore = Arc::new(MemoryStore::new());
    let source = PgSource::new(
        conn(&cluster, "shop", None),
        PgConfig {
            globals: true,
            ..Default::default()
        },
    );
    let mut options = BackupOptions::new("shop", "db", "shop/db");
    options.chunk_size = 512 * 1024;
    let m = run_backup(&store, &source, enc, &test_keys().signer, &options)
        .await
        .unwrap();
    assert!(m.stream_chunks("data").count() > 2);
    assert!(m.stream_chunks("globals").count() == 1);
    assert_eq!(m.source["database"], "shop");
    assert!(m.source["server_version"].as_str().unwrap().starts_with(
        &cluster
            .bindir
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    ));
    assert!(m.source["pg_dump_version"].is_string());

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shop.pgdump");
    write_dump(store.clone(), dec.clone(), &m, &dump).await;
    let admin = conn(&cluster, "postgres", None);
    create_database(&admin, "shop_restored", None).await.unwrap();
    pg_restore(
        &conn(&cluster, "shop_restored", None),
        &dump,
        &RestoreOptions {
            jobs: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let original = cluster.psql("shop", FINGERPRINT);
    assert!(original.contains("ext citext,hstore,pgcrypto,plpgsql"), "{original}");
    assert_eq!(cluster.psql("shop_restored", FINGERPRINT), original);
    // The restored database refuses a second create.
    let err = create_database(&admin, "shop_restored", None).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
}

/// A store whose puts are slow, so that a backup is surely mid-stream when
/// the test interferes with it.
#[derive(Debug, Default)]
struct SlowStore(MemoryStore);

#[async_trait::async_trait]
impl Store for SlowStore {
    async fn put(&self, key: &str, data: bytes::Bytes) -> backup_core::Result<()> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.0.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: bytes::Bytes) -> backup_core::Result<bool> {
        self.0.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> backup_core::Result<backup_core::ByteStream> {
        self.0.get(key).await
    }
    async fn head(&self, key: &str) -> backup_core::Result<backup_core::ObjectMeta> {
        self.0.head(key).await
    }
    async fn list(&self, prefix: &str) -> backup_core::Result<Vec<backup_core::ObjectMeta>> {
        self.0.list(prefix).await
    }
    async fn delete(&self, key: &str) -> backup_core::Result<()> {
        self.0.delete(key).await
    }
    async fn sweep(&self, p: &str, t: chrono::DateTime<chrono::Utc>) -> backup_core::Result<u64> {
        self.0.sweep(p, t).await
    }
    fn location(&self) -> String {
        "slow://".into()
    }
}

struct Fixture {
    cluster: TestCluster,
    store: DynStore,
    enc: Arc<PgpEncryptor>,
    options: BackupOptions,
}

/// A cluster with a database `big` and one good backup of it already stored.
async fn fixture(auth: Auth, password: Option<&Path>) -> Option<Fixture> {
    let cluster = TestCluster::start(auth)?;
    cluster.psql("postgres", "CREATE DATABASE big");
    cluster.psql(
        "big",
        "CREATE TABLE t AS SELECT g, md5(g::text) || md5((g+1)::text) AS p FROM generate_series(1, 200000) g",
    );
    let (enc, _) = keys();
    let store: DynStore = Arc::new(SlowStore::default());
    let mut options = BackupOptions::new("big", "db", "big/db");
    options.chunk_size = 256 * 1024;
    options.parallelism = 1;
    let source = PgSource::new(conn(&cluster, "big", password), PgConfig::default());
    run_backup(&store, &source, enc.clone(), &test_keys().signer, &options)
        .await
        .unwrap();
    Some(Fixture {
        cluster,
        store,
        enc,
        options,
    })
}

impl Fixture {
    async fn assert_only_the_good_backup(&self) {
        let profile = ProfileRef::new("big", "db", "big/db");
        let listing = list_backups(&self.store, &profile, &test_keys().trust).await.unwrap();
        assert_eq!(listing.trusted.len(), 1, "the earlier backup is intact and alone");
        assert!(listing.incomplete.is_empty(), "the failed run left chunks behind");
    }
}

/// Child processes of this test process named `name` that talk to `port`
/// (tests run in parallel in one process).
fn children_named(name: &str, port: u16) -> Vec<u32> {
    let me = std::process::id().to_string();
    let port_var = format!("PGPORT={port}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            comm.trim() == name
                && stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)) == Some(me.as_str())
                && environ.split(|b| *b == 0).any(|v| v == port_var.as_bytes())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_database_commits_nothing() {
    let Some(f) = fixture(Auth::Trust, None).await else {
        return;
    };
    let source = PgSource::new(conn(&f.cluster, "nope", None), PgConfig::default());
    let err = run_backup(&f.store, &source, f.enc.clone(), &test_keys().signer, &f.options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("database \"nope\" does not exist"), "{err}");
    f.assert_only_the_good_backup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_commits_nothing_and_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pass");
    std::fs::write(&good, format!("{}\n", TestCluster::PASSWORD)).unwrap();
    let Some(f) = fixture(Auth::Scram, Some(&good)).await else {
        return;
    };
    let bad = dir.path().join("bad.pass");
    std::fs::write(&bad, "wrong-password-xyz\n").unwrap();
    let source = PgSource::new(conn(&f.cluster, "big", Some(&bad)), PgConfig::default());
    let err = run_backup(&f.store, &source, f.enc.clone(), &test_keys().signer, &f.options)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("wrong-password-xyz") && !format!("{err:?}").contains("wrong-password-xyz"));
    f.assert_only_the_good_backup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_never_appears_in_any_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let pass: PathBuf = dir.path().join("pass");
    std::fs::write(&pass, TestCluster::PASSWORD).unwrap();
    let Some(f) = fixture(Auth::Scram, Some(&pass)).await else {
        return;
    };
    let source = PgSource::new(
        conn(&f.cluster, "big", Some(&pass)),
        PgConfig {
            globals: true,
            ..Default::default()
        },
    );
    let scan = std::thread::spawn(|| {
        let mut seen_pg_dump = false;
        for _ in 0..200 {
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                    let text = String::from_utf8_lossy(&cmdline);
                    assert!(
                        !text.contains(TestCluster::PASSWORD),
                        "password in argv of pid {:?}: {text}",
                        entry.file_name()
                    );
                    seen_pg_dump |= text.contains("pg_dump");
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen_pg_dump
    });
    run_backup(&f.store, &source, f.enc.clone(), &test_keys().signer, &f.options)
        .await
        .unwrap();
    assert!(scan.join().unwrap(), "the scan saw pg_dump running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_killed_mid_stream_commits_nothing() {
    let Some(f) = fixture(Auth::Trust, None).await else {
        return;
    };
    let source = PgSource::new(conn(&f.cluster, "big", None), PgConfig::default());
    let port = f.cluster.port;
    let killer = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let pids = children_named("pg_dump", port);
            if let Some(pid) = pids.first() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .unwrap();
                return true;
            }
        }
        false
    });
    let err = run_backup(&f.store, &source, f.enc.clone(), &test_keys().signer, &f.options)
        .await
        .unwrap_err();
    assert!(killer.await.unwrap(), "pg_dump was found and killed");
    assert!(
        err.to_string().contains("pg_dump: failed") && err.to_string().contains("signal"),
        "{err}"
    );
    f.assert_only_the_good_backup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_mid_backup_commits_nothing() {
    let Some(f) = fixture(Auth::Trust, None).await else {
        return;
    };
    let source = PgSource::new(conn(&f.cluster, "big", None), PgConfig::default());
    let backup = run_backup(&f.store, &source, f.enc.clone(), &test_keys().signer, &f.options);
    let stopper = async {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if !children_named("pg_dump", f.cluster.port).is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let cluster = &f.cluster;
                tokio::task::block_in_place(|| cluster.stop());
                return true;
            }
        }
        false
    };
    let (result, stopped) = tokio::join!(backup, stopper);
    assert!(stopped, "the server was stopped during the dump");
    let err = result.unwrap_err();
    assert!(err.to_string().contains("pg_dump: failed"), "{err}");
    f.assert_only_the_good_backup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_pg_dump_is_refused_up_front() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    // A fake pg_dump that claims version 9.6.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("pg_dump");
    std::fs::write(&fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&fake)
        .status()
        .unwrap();
    let mut c = conn(&cluster, "postgres", None);
    c.bin_dir = Some(dir.path().to_path_buf());
    let err = PgSource::new(c, PgConfig::default())
        .facts()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("pg_dump 9.6.24 is older than the server"), "{err}");
    assert!(err.contains("install postgresql-client-"), "{err}");
}
