//! The library operations on PostgreSQL backups, without the CLI: restore a
//! trusted backup into a database, and the whole mirror (lease, pick,
//! download, restore, sanitize, check, swap, mark) against a throwaway cluster.

use std::sync::Arc;
use std::time::Duration;

use backup_core::catalog::RESTORED_MARK;
use backup_core::lease::{self, MIRROR_LEASE};
use backup_core::testing::test_keys;
use backup_core::{list_backups, run_backup, BackupOptions, DynStore, Error, MemoryStore, Pick, ProfileRef, StoreExt};
use backup_pg::testing::{Auth, TestCluster};
use backup_pg::{
    mirror_backup, restore_database, DatabaseRestore, Mirror, MirrorConfig, PgConn, PgSource, RestoreOptions,
};

fn conn(cluster: &TestCluster, db: &str) -> PgConn {
    PgConn::new("127.0.0.1", cluster.port, TestCluster::USER, db).with_bin_dir(cluster.bindir.clone())
}

fn profile() -> ProfileRef {
    ProfileRef::new("shop", "db", "shop/db").with_kind(backup_pg::KIND)
}

/// A cluster with `shop` (two tables) backed up once into a memory store.
async fn backed_up() -> Option<(TestCluster, DynStore)> {
    let cluster = TestCluster::start(Auth::Trust)?;
    cluster.psql("postgres", "CREATE DATABASE shop");
    cluster.psql(
        "shop",
        "CREATE TABLE customers AS SELECT g AS id, 'c' || g AS name FROM generate_series(1, 500) g; \
         CREATE TABLE orders AS SELECT g AS id, g % 50 AS customer FROM generate_series(1, 2000) g",
    );
    let store: DynStore = Arc::new(MemoryStore::new());
    let source = PgSource::new(conn(&cluster, "shop"), Default::default());
    let keys = test_keys();
    let options = BackupOptions::new("shop", "db", "shop/db").with_chunk_size(64 * 1024);
    run_backup(&store, &source, keys.encryptor.clone(), &keys.signer, &options)
        .await
        .expect("backup");
    Some((cluster, store))
}

const CONTENT: &str = "SELECT (SELECT count(*) FROM customers) || '/' || (SELECT sum(customer) FROM orders)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_database_creates_refuses_and_replaces() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let work = tempfile::tempdir().expect("work dir");
    let admin = conn(&cluster, "postgres");

    let swap = restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "copy",
        work.path(),
        &DatabaseRestore::new(),
    )
    .await
    .expect("restore");
    assert!(swap.is_none(), "a new database, nothing swapped");
    assert_eq!(cluster.psql("copy", CONTENT), cluster.psql("shop", CONTENT));
    assert_eq!(
        std::fs::read_dir(work.path()).expect("work dir").count(),
        0,
        "no plaintext left"
    );

    cluster.psql("copy", "DELETE FROM orders");
    let err = restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "copy",
        work.path(),
        &DatabaseRestore::new(),
    )
    .await
    .expect_err("an existing database is refused");
    assert!(matches!(err, Error::Target { .. }), "{err}");
    assert_eq!(
        cluster.psql("copy", "SELECT count(*) FROM orders"),
        "0",
        "left as it was"
    );

    let options = DatabaseRestore::new().with_replace(true);
    let swap = restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "copy",
        work.path(),
        &options,
    )
    .await
    .expect("replace");
    assert!(swap.is_some_and(|s| s.replaced));
    assert_eq!(cluster.psql("copy", CONTENT), cluster.psql("shop", CONTENT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_job_restore_streams_and_a_damaged_chunk_leaves_no_database() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    let keys = test_keys();
    // Small chunks, so that pg_restore is mid-stream when the damage shows.
    let source = PgSource::new(conn(&cluster, "shop"), Default::default());
    let options = BackupOptions::new("shop", "db", "shop/db")
        .with_chunk_size(4096)
        .with_time(chrono::Utc::now() + chrono::Duration::seconds(1));
    run_backup(&store, &source, keys.encryptor.clone(), &keys.signer, &options)
        .await
        .expect("backup in small chunks");
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let work = tempfile::tempdir().expect("work dir");
    let admin = conn(&cluster, "postgres");
    let single = || {
        DatabaseRestore::new().with_pg_restore(RestoreOptions {
            jobs: 1,
            ..Default::default()
        })
    };

    restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "streamed",
        work.path(),
        &single(),
    )
    .await
    .expect("streamed restore");
    assert_eq!(cluster.psql("streamed", CONTENT), cluster.psql("shop", CONTENT));
    assert_eq!(
        std::fs::read_dir(work.path()).expect("work dir").count(),
        0,
        "a streamed restore writes no dump file"
    );

    // The dump's last chunk damaged: pg_restore has already read the first ones.
    let data: Vec<_> = entry
        .manifest
        .chunks
        .iter()
        .filter(|c| c.stream == backup_core::DATA_STREAM)
        .collect();
    let last = data.last().expect("a chunk");
    assert!(data.len() > 1, "the dump spans several chunks");
    let key = entry.folder().chunk_key(&last.name).expect("chunk key");
    let mut bytes = store.get_bytes(&key, 1 << 30).await.expect("read chunk").to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    store.put(&key, bytes.into()).await.expect("damage chunk");

    let err = restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "broken",
        work.path(),
        &single(),
    )
    .await
    .expect_err("a damaged chunk fails the restore");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert_eq!(
        cluster.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = 'broken'"),
        "0",
        "the half-restored database is dropped"
    );
    let replace = single().with_replace(true);
    restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "streamed",
        work.path(),
        &replace,
    )
    .await
    .expect_err("a damaged chunk fails the replacing restore");
    assert_eq!(
        cluster.psql("streamed", CONTENT),
        cluster.psql("shop", CONTENT),
        "the database is left as it was"
    );
}

/// `--replace` of an empty database restores into it in one transaction:
/// the database keeps its identity, a failed restore leaves it empty, and a
/// database with objects, settings or sessions of its own is swapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_an_empty_database_restores_into_it_all_or_nothing() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let work = tempfile::tempdir().expect("work dir");
    let admin = conn(&cluster, "postgres");
    let replace = DatabaseRestore::new().with_replace(true);
    let oid = |db: &str| {
        cluster.psql(
            "postgres",
            &format!("SELECT oid FROM pg_database WHERE datname = '{db}'"),
        )
    };
    let own_objects = "SELECT count(*) FROM pg_class WHERE oid >= 16384";

    cluster.psql("postgres", "CREATE DATABASE blank");
    let before = oid("blank");

    // The dump's last chunk damaged: the single transaction rolls back.
    let last = entry
        .manifest
        .chunks
        .iter()
        .rfind(|c| c.stream == backup_core::DATA_STREAM)
        .expect("chunk");
    let key = entry.folder().chunk_key(&last.name).expect("chunk key");
    let good = store.get_bytes(&key, 1 << 30).await.expect("read chunk");
    let mut bad = good.to_vec();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x55;
    store.put(&key, bad.into()).await.expect("damage chunk");
    let err = restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "blank",
        work.path(),
        &replace,
    )
    .await
    .expect_err("a damaged chunk fails the restore");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert_eq!(oid("blank"), before, "the empty database is still there");
    assert_eq!(cluster.psql("blank", own_objects), "0", "and still empty");
    store.put(&key, good).await.expect("repair chunk");

    let swap = restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "blank",
        work.path(),
        &replace,
    )
    .await
    .expect("replace the empty database");
    assert!(swap.is_some_and(|s| s.replaced && s.kept_previous.is_none()));
    assert_eq!(cluster.psql("blank", CONTENT), cluster.psql("shop", CONTENT));
    assert_eq!(oid("blank"), before, "restored in place, not swapped");

    // Now it has objects: the next replace builds a copy and swaps it in.
    cluster.psql("blank", "CREATE TABLE stale AS SELECT 1 AS x");
    restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &admin,
        "blank",
        work.path(),
        &replace,
    )
    .await
    .expect("replace a database with objects");
    assert_ne!(oid("blank"), before, "swapped");
    assert_eq!(
        cluster.psql("blank", "SELECT count(*) FROM pg_class WHERE relname = 'stale'"),
        "0"
    );
    assert_eq!(cluster.psql("blank", CONTENT), cluster.psql("shop", CONTENT));

    // Empty, but with a setting of its own (a swap would drop it), or with
    // another session connected (which could add objects meanwhile): swapped.
    cluster.psql("postgres", "CREATE DATABASE tuned");
    cluster.psql("postgres", "ALTER DATABASE tuned SET work_mem = '7MB'");
    cluster.psql("postgres", "CREATE DATABASE busy");
    let session = conn(&cluster, "busy").connect().await.expect("a session on busy");
    for db in ["tuned", "busy"] {
        let before = oid(db);
        restore_database(&store, keys.decryptor.clone(), entry, &admin, db, work.path(), &replace)
            .await
            .expect("replace");
        assert_ne!(oid(db), before, "{db} is swapped, not restored into");
        assert_eq!(cluster.psql(db, CONTENT), cluster.psql("shop", CONTENT));
    }
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_swaps_in_a_sanitized_copy_and_marks_the_backup() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE shop_test");
    cluster.psql("shop_test", "CREATE TABLE stale AS SELECT 1 AS x");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("scrub.sql"), "UPDATE customers SET name = 'anon';").expect("sanitize file");
    let config: MirrorConfig =
        toml::from_str("sanitize = [\"scrub.sql\"]\ncheck_sql = \"SELECT count(*) = 500 FROM customers\"")
            .expect("mirror config");
    let keys = test_keys();
    let test = conn(&cluster, "shop_test");
    let profile = profile();
    let mirror = Mirror {
        store: &store,
        profile: &profile,
        trust: &keys.trust,
        decryptor: keys.decryptor.clone(),
        test: &test,
        config: &config,
        base: dir.path(),
        work_dir: &dir.path().join("work"),
        lease_ttl: Duration::from_secs(60),
    };

    // Another mirror of the profile holds the lease: nothing happens.
    let held = lease::acquire(&store, "shop/db", MIRROR_LEASE, Duration::from_secs(60))
        .await
        .expect("lease");
    let err = mirror_backup(&mirror, Pick::Newest).await.expect_err("busy");
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert_eq!(cluster.psql("shop_test", "SELECT count(*) FROM stale"), "1");
    held.release().await;

    let report = mirror_backup(&mirror, Pick::Newest).await.expect("mirror");
    assert_eq!(report.refresh.tables, 2);
    assert_eq!(
        cluster.psql("shop_test", "SELECT count(DISTINCT name) FROM customers"),
        "1"
    );
    assert_eq!(cluster.psql("shop_test", CONTENT), cluster.psql("shop", CONTENT));
    let listing = list_backups(&store, &profile, &keys.trust).await.expect("list");
    assert!(
        listing.trusted[0].marks.contains_key(RESTORED_MARK),
        "marked restore-verified"
    );
    // A one-job mirror streams the dump and writes no file at all.
    let work = dir.path().join("work");
    assert!(
        !work.exists() || std::fs::read_dir(&work).expect("work").next().is_none(),
        "no plaintext left"
    );

    // A failing check leaves the test database exactly as it was.
    let failing: MirrorConfig = toml::from_str("check_sql = \"SELECT false\"").expect("config");
    let before = cluster.psql("postgres", "SELECT oid FROM pg_database WHERE datname = 'shop_test'");
    let mirror = Mirror {
        config: &failing,
        ..mirror
    };
    let err = mirror_backup(&mirror, Pick::Newest).await.expect_err("check fails");
    assert!(err.to_string().contains("check"), "{err}");
    assert_eq!(
        cluster.psql("postgres", "SELECT oid FROM pg_database WHERE datname = 'shop_test'"),
        before
    );
    assert!(
        lease::acquire(&store, "shop/db", MIRROR_LEASE, Duration::from_secs(60))
            .await
            .is_ok(),
        "lease released"
    );
}
