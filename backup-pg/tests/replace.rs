//! replace_database: the old database survives any failure untouched, and
//! open sessions do not block a successful swap.

use std::path::Path;
use std::time::Duration;

use backup_core::Error;
use backup_pg::testing::{Auth, TestCluster};
use backup_pg::{database_exists, replace_database, PgConfig, PgConn};

fn admin(cluster: &TestCluster) -> PgConn {
    let config = PgConfig {
        host: Some("127.0.0.1".into()),
        port: Some(cluster.port),
        user: Some(TestCluster::USER.into()),
        database: Some("postgres".into()),
        bin_dir: Some(cluster.bindir.clone()),
        ..Default::default()
    };
    PgConn::from_env(&config, Path::new("/")).unwrap()
}

fn databases(cluster: &TestCluster) -> String {
    cluster.psql(
        "postgres",
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE NOT datistemplate",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fill_leaves_the_target_as_it_was() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE app_test");
    cluster.psql("app_test", "CREATE TABLE t AS SELECT 'old' AS v");
    let before = databases(&cluster);
    let admin = admin(&cluster);
    let err = replace_database(&admin, "app_test", None, false, |temp| {
        let conn = admin.with_database(&temp);
        async move {
            let client = conn.connect().await?;
            conn.execute(&client, "CREATE TABLE t AS SELECT 'new' AS v").await?;
            Err(Error::source_failed("fill", "restore failed halfway"))
        }
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("restore failed halfway"));
    assert_eq!(databases(&cluster), before, "the temporary database is gone");
    assert_eq!(cluster.psql("app_test", "SELECT v FROM t"), "old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sessions_do_not_block_the_swap() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE app_test");
    cluster.psql("app_test", "CREATE TABLE t AS SELECT 'old' AS v");
    // A session that sits in the test database, as an app server would.
    let mut idle = std::process::Command::new(cluster.bindir.join("psql"))
        .args(["-X", "-d", "app_test", "-c", "SELECT pg_sleep(60)"])
        .envs(cluster.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let admin = admin(&cluster);
    let swap = replace_database(&admin, "app_test", None, false, |temp| {
        let conn = admin.with_database(&temp);
        async move {
            let client = conn.connect().await?;
            conn.execute(&client, "CREATE TABLE t AS SELECT 'new' AS v").await
        }
    })
    .await
    .unwrap();
    assert!(swap.replaced && swap.kept_previous.is_none());
    assert_eq!(cluster.psql("app_test", "SELECT v FROM t"), "new");
    assert_eq!(
        databases(&cluster),
        "app_test,postgres",
        "old copy dropped, nothing left over"
    );
    let _ = idle.kill();
    let _ = idle.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_previous_keeps_one_old_copy_and_a_missing_target_is_created() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    let admin = admin(&cluster);
    let fill = |v: &'static str| {
        let admin = admin.clone();
        move |temp: String| async move {
            let conn = admin.with_database(&temp);
            let client = conn.connect().await?;
            conn.execute(&client, &format!("CREATE TABLE t AS SELECT '{v}' AS v"))
                .await
        }
    };
    let first = replace_database(&admin, "fresh", None, true, fill("one"))
        .await
        .unwrap();
    assert!(!first.replaced);
    let second = replace_database(&admin, "fresh", None, true, fill("two"))
        .await
        .unwrap();
    let aside = second.kept_previous.unwrap();
    assert!(database_exists(&admin, &aside).await.unwrap());
    assert_eq!(cluster.psql("fresh", "SELECT v FROM t"), "two");
    assert_eq!(cluster.psql(&aside, "SELECT v FROM t"), "one");
    let third = replace_database(&admin, "fresh", None, true, fill("three"))
        .await
        .unwrap();
    assert!(
        !database_exists(&admin, &aside).await.unwrap(),
        "only one previous copy is kept"
    );
    assert_eq!(cluster.psql(&third.kept_previous.unwrap(), "SELECT v FROM t"), "two");
}
