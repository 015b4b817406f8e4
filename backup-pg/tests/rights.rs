//! check_restore_rights and owned restores, as ordinary (non-superuser) roles.

use backup_core::Error;
use backup_pg::testing::{Auth, TestCluster};
use backup_pg::{
    check_restore_rights, create_database, drop_database, replace_database, PgConn, RestoreConfig, RestoreOptions,
};

fn as_role(cluster: &TestCluster, user: &str) -> PgConn {
    PgConn::new("127.0.0.1", cluster.port, user, "postgres").with_bin_dir(&cluster.bindir)
}

fn owned(owner: &str) -> RestoreOptions {
    RestoreOptions {
        owner: Some(owner.into()),
        ..Default::default()
    }
}

fn reason(e: Error) -> String {
    match e {
        Error::Config { field, reason } => format!("{field}: {reason}"),
        other => panic!("expected a configuration error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_are_named_with_the_statement_that_grants_them() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    cluster.psql(
        "postgres",
        "CREATE ROLE app; CREATE ROLE other; CREATE ROLE restorer LOGIN CREATEDB; GRANT app TO restorer; \
         CREATE ROLE weak LOGIN",
    );
    cluster.psql("postgres", "CREATE DATABASE taken OWNER other");
    let restorer = as_role(&cluster, "restorer");
    let weak = as_role(&cluster, "weak");
    let superuser = as_role(&cluster, TestCluster::USER);

    check_restore_rights(&restorer, "fresh", &owned("app"), false)
        .await
        .unwrap();
    check_restore_rights(&restorer, "fresh", &RestoreOptions::default(), false)
        .await
        .unwrap();
    check_restore_rights(&superuser, "fresh", &owned("other"), false)
        .await
        .unwrap();

    let e = check_restore_rights(&weak, "fresh", &RestoreOptions::default(), false)
        .await
        .unwrap_err();
    let said = reason(e);
    assert!(
        said.contains("\"weak\"") && said.contains("CREATEDB") && said.contains("ALTER ROLE \"weak\" CREATEDB"),
        "{said}"
    );

    let said = reason(
        check_restore_rights(&restorer, "fresh", &owned("other"), false)
            .await
            .unwrap_err(),
    );
    assert!(said.contains("GRANT \"other\" TO \"restorer\""), "{said}");
    let role = RestoreOptions {
        role: Some("other".into()),
        ..Default::default()
    };
    let said = reason(
        check_restore_rights(&restorer, "fresh", &role, false)
            .await
            .unwrap_err(),
    );
    assert!(said.contains("member of \"other\" (the role)"), "{said}");

    // Also for a superuser: CREATE DATABASE would fail only after the download.
    for who in [&restorer, &superuser] {
        let e = check_restore_rights(who, "fresh", &owned("ghost"), false)
            .await
            .unwrap_err();
        let said = reason(e);
        assert!(said.contains("\"ghost\" does not exist"), "{said}");
    }

    let e = check_restore_rights(&restorer, "taken", &owned("app"), false)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Target { .. }), "{e}");
    let said = reason(
        check_restore_rights(&restorer, "taken", &owned("app"), true)
            .await
            .unwrap_err(),
    );
    assert!(
        said.contains("owned by \"other\"") && said.contains("GRANT \"other\" TO \"restorer\""),
        "{said}"
    );
}

/// The fix of issue 13: a database created for an owner by a non-superuser
/// member of it takes objects created with `SET ROLE owner` on PostgreSQL ≥ 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owned_copy_is_writable_by_its_owner_role() {
    let Some(cluster) = TestCluster::start(Auth::Trust) else {
        return;
    };
    cluster.psql(
        "postgres",
        "CREATE ROLE app; CREATE ROLE restorer LOGIN CREATEDB; GRANT app TO restorer",
    );
    let restorer = as_role(&cluster, "restorer");
    let swap = replace_database(&restorer, "app_test", Some("app"), false, |temp| {
        let conn = restorer.with_database(&temp);
        async move {
            let client = conn.connect().await?;
            conn.execute(&client, "SET ROLE app; CREATE TABLE t (v int)").await
        }
    })
    .await
    .unwrap();
    assert_eq!(swap.target, "app_test");
    assert_eq!(
        cluster.psql(
            "app_test",
            "SELECT pg_get_userbyid(datdba) || ' ' || (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 't') FROM pg_database WHERE datname = 'app_test'"
        ),
        "app app"
    );
    // Without the owner the same SET ROLE cannot create in `public`.
    create_database(&restorer, "unowned", None).await.unwrap();
    let conn = restorer.with_database("unowned");
    let client = conn.connect().await.unwrap();
    let e = conn
        .execute(&client, "SET ROLE app; CREATE TABLE t (v int)")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied for schema public"), "{e}");
    drop(client);
    drop_database(&restorer, "unowned").await.unwrap();
}

#[test]
fn restore_settings_default_to_the_source_and_keep_passwords_with_their_role() {
    let source = backup_pg::PgConfig {
        host: Some("db".into()),
        port: Some(5433),
        user: Some("backup".into()),
        database: Some("app".into()),
        password_file: Some("secrets/backup.pass".into()),
        maintenance_db: Some("maint".into()),
        ..Default::default()
    };
    let same = RestoreConfig::default().connection(&source);
    assert_eq!(
        (same.host.as_deref(), same.port, same.user.as_deref()),
        (Some("db"), Some(5433), Some("backup"))
    );
    assert_eq!(same.password_file, source.password_file);
    assert_eq!(same.maintenance_db.as_deref(), Some("maint"));

    let other = RestoreConfig::default().with_user("restorer").with_port(6000);
    let conn = other.connection(&source);
    assert_eq!((conn.user.as_deref(), conn.port), (Some("restorer"), Some(6000)));
    assert_eq!(
        conn.password_file, None,
        "the backup role's password is not sent for another role"
    );

    let options = RestoreConfig::default().with_owner("app").options();
    assert_eq!(options.set_role(), Some("app"));
    let mut config = RestoreConfig::default().with_owner("app");
    config.role = Some("app".into());
    let options = config.with_no_owner().options();
    assert_eq!((options.set_role(), options.no_owner), (None, true));
    let role_only = RestoreOptions {
        role: Some("app".into()),
        ..Default::default()
    };
    assert_eq!(role_only.database_owner(), Some("app"));
}
