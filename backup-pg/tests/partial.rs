//! The index of a PostgreSQL backup (the dump's table of contents with
//! sizes) and partial restores (`-t` / `-n`) against a throwaway cluster.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use backup_core::testing::test_keys;
use backup_core::{
    list_backups, restore_stream, run_backup, BackupOptions, CatalogEntry, DynStore, Error, MemoryStore, Pick,
    ProfileRef, StoreExt,
};
use backup_pg::index::{IndexHeader, TocEntry, INDEX_STREAM};
use backup_pg::testing::{Auth, TestCluster};
use backup_pg::{restore_database, write_partial_sql, DatabaseRestore, PgConn, PgSource, RestoreOptions, Selection};
use futures::TryStreamExt;

const ODD: &str = "odd \"t\" x";
const SCHEMA: &str = "my schema";

fn conn(cluster: &TestCluster, db: &str) -> PgConn {
    PgConn::new("127.0.0.1", cluster.port, TestCluster::USER, db).with_bin_dir(cluster.bindir.clone())
}

fn profile() -> ProfileRef {
    ProfileRef::new("shop", "db", "shop/db").with_kind(backup_pg::KIND)
}

/// `shop` with two public tables and a second schema whose names need quoting.
async fn backed_up() -> Option<(TestCluster, DynStore)> {
    let cluster = TestCluster::start(Auth::Trust)?;
    cluster.psql("postgres", "CREATE DATABASE shop");
    cluster.psql(
        "shop",
        r#"CREATE ROLE "app owner";
           CREATE TABLE customers AS SELECT g AS id, 'c' || g AS name FROM generate_series(1, 500) g;
           CREATE TABLE orders (id int PRIMARY KEY, customer int);
           INSERT INTO orders SELECT g, g % 50 FROM generate_series(1, 2000) g;
           ALTER TABLE orders OWNER TO "app owner";
           CREATE SCHEMA "my schema";
           CREATE TABLE "my schema"."odd ""t"" x" (id int PRIMARY KEY, v text);
           INSERT INTO "my schema"."odd ""t"" x" SELECT g, repeat('v', 200) FROM generate_series(1, 3000) g;
           CREATE TABLE "my schema".second AS SELECT g AS id FROM generate_series(1, 7) g"#,
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

async fn read_stream(store: &DynStore, entry: &CatalogEntry, stream: &str) -> Vec<u8> {
    let keys = test_keys();
    let pieces: Vec<bytes::Bytes> = restore_stream(store, keys.decryptor.clone(), entry, stream, 2)
        .expect("stream")
        .try_collect()
        .await
        .expect("read");
    pieces.concat()
}

/// Tables of a database outside the system schemas, as `schema.name` lines.
const TABLES: &str =
    "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname, tablename) FROM pg_tables \
                      WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_lists_the_dumps_table_of_contents_with_sizes() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    assert!(entry.manifest.has_stream(INDEX_STREAM));
    let index = String::from_utf8(read_stream(&store, entry, INDEX_STREAM).await).expect("UTF-8");
    let mut lines = index.lines();
    let header = IndexHeader::parse(lines.next().expect("header")).expect("a postgres header");
    assert_eq!(header.note, None, "{index}");
    let entries: Vec<TocEntry> = lines.map(|l| TocEntry::parse(l).expect("entry")).collect();

    // The same entries as pg_restore --list of the stored dump.
    let dump = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(dump.path(), read_stream(&store, entry, backup_core::DATA_STREAM).await).expect("dump");
    let listed = std::process::Command::new(cluster.bindir.join("pg_restore"))
        .arg("--list")
        .arg(dump.path())
        .output()
        .expect("pg_restore");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let ids: Vec<i64> = listed
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split(';').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(entries.iter().map(|e| e.toc_id).collect::<Vec<_>>(), ids, "{listed}");

    assert_eq!(entry.manifest.source["toc_entries"], entries.len() as u64);
    assert!(entry.manifest.source.get("index_note").is_none());
    let find = |desc: &str, schema: &str, name: &str| {
        entries
            .iter()
            .find(|e| e.desc == desc && e.schema.as_deref() == Some(schema) && e.name == name)
            .unwrap_or_else(|| panic!("no {desc} {schema}.{name} in {index}"))
    };
    let odd = find("TABLE", SCHEMA, ODD);
    let size: u64 = cluster
        .psql("shop", r#"SELECT pg_total_relation_size('"my schema"."odd ""t"" x"')"#)
        .parse()
        .unwrap();
    assert_eq!(odd.size, Some(size));
    assert!(size > 600_000, "{size}");
    assert_eq!(find("TABLE DATA", SCHEMA, ODD).size, Some(size));
    assert_eq!(find("TABLE", "public", "orders").owner.as_deref(), Some("app owner"));
    assert!(find("TABLE", "public", "customers").size.is_some_and(|s| s > 0));
    assert!(entries
        .iter()
        .any(|e| e.desc == "SCHEMA" && e.schema.is_none() && e.name == SCHEMA));
}

async fn restore(store: &DynStore, cluster: &TestCluster, db: &str, only: Selection) -> backup_core::Result<()> {
    let keys = test_keys();
    let listing = list_backups(store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let work = tempfile::tempdir().expect("work dir");
    let options = DatabaseRestore::new().with_pg_restore(RestoreOptions {
        jobs: 1,
        only,
        ..Default::default()
    });
    restore_database(
        store,
        keys.decryptor.clone(),
        entry,
        &conn(cluster, "postgres"),
        db,
        work.path(),
        &options,
    )
    .await
    .map(|_| ())
}

fn exists(cluster: &TestCluster, db: &str) -> bool {
    cluster.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_or_a_schema_is_restored_alone() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    let odd_rows = r#"SELECT count(*) || '/' || md5(string_agg(v, '' ORDER BY id)) FROM "my schema"."odd ""t"" x""#;

    restore(
        &store,
        &cluster,
        "one_table",
        Selection::new(vec![ODD.into()], vec![]).unwrap(),
    )
    .await
    .expect("--table");
    assert_eq!(cluster.psql("one_table", TABLES), format!("{SCHEMA}.{ODD}"));
    assert_eq!(cluster.psql("one_table", odd_rows), cluster.psql("shop", odd_rows));

    let only_orders = Selection::new(vec!["orders".into()], vec!["public".into()]).unwrap();
    restore(&store, &cluster, "orders_only", only_orders)
        .await
        .expect("--table --schema");
    assert_eq!(cluster.psql("orders_only", TABLES), "public.orders");
    assert_eq!(
        cluster.psql("orders_only", "SELECT sum(customer) FROM orders"),
        cluster.psql("shop", "SELECT sum(customer) FROM orders")
    );

    restore(
        &store,
        &cluster,
        "one_schema",
        Selection::new(vec![], vec![SCHEMA.into()]).unwrap(),
    )
    .await
    .expect("--schema");
    assert_eq!(
        cluster.psql("one_schema", TABLES),
        format!("{SCHEMA}.{ODD},{SCHEMA}.second")
    );
    assert_eq!(cluster.psql("one_schema", odd_rows), cluster.psql("shop", odd_rows));
    assert_eq!(
        cluster.psql("one_schema", r#"SELECT count(*) FROM "my schema".second"#),
        "7"
    );

    // A table the backup does not hold: refused before a database is made.
    let err = restore(
        &store,
        &cluster,
        "nothing",
        Selection::new(vec!["nope".into()], vec![]).unwrap(),
    )
    .await
    .expect_err("unknown table");
    assert!(
        matches!(&err, Error::Config { reason, .. } if reason.contains("\"nope\"")),
        "{err}"
    );
    // The right name in the wrong schema is not that table either.
    let wrong = Selection::new(vec![ODD.into()], vec!["public".into()]).unwrap();
    restore(&store, &cluster, "nothing", wrong)
        .await
        .expect_err("wrong schema");
    assert!(!exists(&cluster, "nothing"));

    // The whole restore still restores everything.
    restore(&store, &cluster, "whole", Selection::default())
        .await
        .expect("full");
    assert_eq!(cluster.psql("whole", TABLES), cluster.psql("shop", TABLES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_with_part_of_a_backup_and_option_like_names_are_refused() {
    for name in ["-evil", "--file=/tmp/x", ""] {
        let err = Selection::new(vec![name.into()], vec![]).expect_err("refused");
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(Selection::new(vec![], vec![name.into()]).is_err());
    }
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE kept");
    cluster.psql("kept", "CREATE TABLE mine (a int); INSERT INTO mine VALUES (1)");
    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let work = tempfile::tempdir().expect("work dir");
    let options = DatabaseRestore::new()
        .with_replace(true)
        .with_pg_restore(RestoreOptions {
            jobs: 1,
            only: Selection::new(vec!["orders".into()], vec![]).unwrap(),
            ..Default::default()
        });
    let err = restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &conn(&cluster, "postgres"),
        "kept",
        work.path(),
        &options,
    )
    .await
    .expect_err("replace refused");
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert_eq!(cluster.psql("kept", "SELECT count(*) FROM mine"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_of_one_table_is_written_privately() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out");
    let only = Selection::new(vec![ODD.into()], vec![SCHEMA.into()]).unwrap();
    let bindir = Some(cluster.bindir.as_path());
    let path = write_partial_sql(&store, keys.decryptor.clone(), entry, &out, &only, bindir)
        .await
        .expect("sql");
    assert_eq!(path, out.join("shop.sql"));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let sql = std::fs::read_to_string(&path).unwrap();
    assert!(sql.contains(r#"CREATE TABLE "my schema"."odd ""t"" x""#), "{sql}");
    assert!(sql.contains(r#"COPY "my schema"."odd ""t"" x""#), "{sql}");
    assert!(!sql.contains("customers") && !sql.contains("orders"), "{sql}");
    // The script applies: into a database that has the schema.
    cluster.psql("postgres", "CREATE DATABASE from_sql");
    cluster.psql("from_sql", r#"CREATE SCHEMA "my schema""#);
    let applied = std::process::Command::new(cluster.bindir.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "from_sql", "-f"])
        .arg(&path)
        .envs(cluster.env())
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    assert_eq!(
        cluster.psql("from_sql", r#"SELECT count(*) FROM "my schema"."odd ""t"" x""#),
        "3000"
    );

    let err = write_partial_sql(&store, keys.decryptor.clone(), entry, &out, &only, bindir)
        .await
        .expect_err("exists");
    assert!(matches!(err, Error::Target { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), sql, "not overwritten");
    let unknown = Selection::new(vec!["nope".into()], vec![]).unwrap();
    let other = dir.path().join("other");
    write_partial_sql(&store, keys.decryptor.clone(), entry, &other, &unknown, bindir)
        .await
        .expect_err("unknown table");
    assert!(!other.join("shop.sql").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pg_restore_list_leaves_a_whole_backup_with_a_noted_index() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE shop");
    cluster.psql(
        "shop",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g",
    );
    // pg_dump as it is; a pg_restore that cannot read anything.
    let tools = tempfile::tempdir().expect("bin dir");
    for tool in ["pg_dump", "pg_dumpall"] {
        std::os::unix::fs::symlink(cluster.bindir.join(tool), tools.path().join(tool)).unwrap();
    }
    let fake = tools.path().join("pg_restore");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'pg_restore: error: broken on purpose' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let source_conn = PgConn::new("127.0.0.1", cluster.port, TestCluster::USER, "shop").with_bin_dir(tools.path());
    let store: DynStore = Arc::new(MemoryStore::new());
    let keys = test_keys();
    let options = BackupOptions::new("shop", "db", "shop/db").with_chunk_size(64 * 1024);
    run_backup(
        &store,
        &PgSource::new(source_conn, Default::default()),
        keys.encryptor.clone(),
        &keys.signer,
        &options,
    )
    .await
    .expect("the backup does not depend on its index");
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let index = String::from_utf8(read_stream(&store, entry, INDEX_STREAM).await).unwrap();
    let header = IndexHeader::parse(index.lines().next().unwrap()).unwrap();
    let note = header.note.expect("a note");
    assert!(note.contains("broken on purpose"), "{note}");
    assert_eq!(index.lines().count(), 1, "no entries: {index}");
    let recorded = entry.manifest.source["index_note"]
        .as_str()
        .expect("noted in the manifest");
    assert!(recorded.contains("broken on purpose"), "{recorded}");

    // The dump is whole, and a table restore still works (pg_restore decides).
    restore(
        &store,
        &cluster,
        "copy",
        Selection::new(vec!["t".into()], vec![]).unwrap(),
    )
    .await
    .expect("restore");
    assert_eq!(cluster.psql("copy", "SELECT count(*) FROM t"), "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_index_is_refused_like_a_tampered_chunk() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let chunk = entry
        .manifest
        .chunks
        .iter()
        .find(|c| c.stream == INDEX_STREAM)
        .expect("an index chunk");
    let key = entry.folder().chunk_key(&chunk.name).expect("chunk key");
    let mut bytes = store.get_bytes(&key, 1 << 30).await.expect("read").to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    store.put(&key, bytes.into()).await.expect("tamper");

    let only = Selection::new(vec![ODD.into()], vec![]).unwrap();
    let err = restore(&store, &cluster, "from_tampered", only.clone())
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(!exists(&cluster, "from_tampered"));
    let dir = tempfile::tempdir().expect("dir");
    let bindir = Some(cluster.bindir.as_path());
    let err = write_partial_sql(&store, keys.decryptor.clone(), entry, dir.path(), &only, bindir)
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    // The whole restore reads the dump alone.
    restore(&store, &cluster, "whole", Selection::default())
        .await
        .expect("full");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privileged_role_restores_a_schema_owned_by_the_owner() {
    let Some((cluster, store)) = backed_up().await else {
        return;
    };
    cluster.psql(
        "postgres",
        "CREATE ROLE restorer LOGIN CREATEDB; CREATE ROLE app NOLOGIN; GRANT app TO restorer",
    );
    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.expect("list");
    let entry = listing.pick(Pick::Newest).expect("newest");
    let work = tempfile::tempdir().expect("work dir");
    let restorer = PgConn::new("127.0.0.1", cluster.port, "restorer", "postgres").with_bin_dir(cluster.bindir.clone());
    let options = DatabaseRestore::new().with_pg_restore(RestoreOptions {
        jobs: 1,
        owner: Some("app".into()),
        only: Selection::new(vec![ODD.into()], vec![]).unwrap(),
        ..Default::default()
    });
    restore_database(
        &store,
        keys.decryptor.clone(),
        entry,
        &restorer,
        "by_app",
        work.path(),
        &options,
    )
    .await
    .expect("restore as restorer, owned by app");
    assert_eq!(cluster.psql("by_app", TABLES), format!("{SCHEMA}.{ODD}"));
    let owners = "SELECT (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'my schema') || ',' || \
                  (SELECT tableowner FROM pg_tables WHERE schemaname = 'my schema')";
    assert_eq!(cluster.psql("by_app", owners), "app,app");
}
