//! Keystone v3 against a real Keystone in front of the real Swift
//! (opt-in: BACKUPAPPS_TEST_KEYSTONE=1, which CI sets).

use std::collections::BTreeMap;
use std::path::Path;

use backup_core::testing;
use backup_swift::testing::{KeystoneServer, SwiftServer};
use backup_swift::{SwiftConfig, SwiftStore};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_password_and_application_credential() {
    let Some(keystone) = tokio::task::spawn_blocking(KeystoneServer::start).await.unwrap() else {
        return;
    };
    let (keystone, swift, account) = tokio::task::spawn_blocking(move || {
        let swift = SwiftServer::start_with(Some(&keystone)).expect("Swift");
        let account = keystone.provision(swift.port);
        (keystone, swift, account)
    })
    .await
    .unwrap();
    let url = keystone.url();
    let config = SwiftConfig::default();
    let password = env(&[
        ("OS_AUTH_URL", &url),
        ("OS_USERNAME", "backupper"),
        ("OS_PASSWORD", &account.password),
        ("OS_PROJECT_NAME", "backups"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", "RegionOne"),
    ]);
    let store = SwiftStore::new("swift://ks-password", &config, Path::new("/"), &password).unwrap();
    testing::put_get_round_trip(&store, &testing::fresh_prefix()).await;
    testing::list_is_recursive_sorted_and_scoped(&store, &testing::fresh_prefix()).await;
    testing::large_object_round_trip(&store, &testing::fresh_prefix()).await;

    // The internal endpoint, through an application credential.
    let app = env(&[
        ("OS_AUTH_URL", &url),
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_APPLICATION_CREDENTIAL_ID", &account.app_cred_id),
        ("OS_APPLICATION_CREDENTIAL_SECRET", &account.app_cred_secret),
        ("OS_INTERFACE", "internal"),
    ]);
    let store = SwiftStore::new("swift://ks-appcred", &config, Path::new("/"), &app).unwrap();
    testing::delete_is_idempotent(&store, &testing::fresh_prefix()).await;
    testing::get_missing_is_not_found(&store, &testing::fresh_prefix()).await;

    // A region without an object-store endpoint names the ones there are.
    let mut wrong = password.clone();
    wrong.insert("OS_REGION_NAME".into(), "Mars".into());
    let store = SwiftStore::new("swift://ks-wrong", &config, Path::new("/"), &wrong).unwrap();
    let err = backup_core::Store::list(&store, "x").await.unwrap_err().report();
    assert!(
        err.contains("no object-store endpoint in region Mars") && err.contains("RegionOne/public"),
        "{err}"
    );
    assert!(!err.contains(&account.password), "{err}");

    // Bad password: a clear authentication error.
    let mut bad = password.clone();
    bad.insert("OS_PASSWORD".into(), "nope".into());
    let store = SwiftStore::new("swift://ks-bad", &config, Path::new("/"), &bad).unwrap();
    let err = backup_core::Store::list(&store, "x").await.unwrap_err().report();
    assert!(
        err.contains("authentication") && err.contains("check the credentials"),
        "{err}"
    );
    drop(swift);
}
