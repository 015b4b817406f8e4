//! The store conformance battery against a real S3 API: OpenStack Swift's own
//! (`s3api` middleware; SigV4, path style), started on loopback.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use backup_core::{Store, StoreExt};
use backup_object_store::{CloudStore, ConditionalCreate, S3Config};
use backup_swift::testing::{SwiftServer, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY};
use bytes::Bytes;

const BUCKET: &str = "s3conformance";

/// A store on the shared server; the server lives as long as any store does.
struct OnS3 {
    store: CloudStore,
    _server: Arc<SwiftServer>,
}

impl std::ops::Deref for OnS3 {
    type Target = CloudStore;
    fn deref(&self) -> &CloudStore {
        &self.store
    }
}

fn env() -> BTreeMap<String, String> {
    // HOME elsewhere: no profile files of the machine running the tests.
    [
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET_ACCESS_KEY),
        ("HOME", "/nonexistent"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn config(server: &SwiftServer, conditional: ConditionalCreate) -> S3Config {
    S3Config {
        endpoint: Some(server.s3_endpoint()),
        region: Some(S3_REGION.into()),
        access_key_id: Some(S3_ACCESS_KEY_ID.into()),
        // The test Swift takes objects up to 5 MiB: larger ones go up in 5 MiB parts.
        multipart_threshold: Some(5 << 20),
        part_size: Some(5 << 20),
        conditional_create: Some(conditional),
        ..Default::default()
    }
}

async fn server() -> Arc<SwiftServer> {
    let server = tokio::task::spawn_blocking(SwiftServer::shared)
        .await
        .unwrap()
        .expect("Swift (skipped outside CI)");
    // A bucket is a container of the tempauth account.
    let out = std::process::Command::new("swift")
        .args(server.cli_args())
        .args(["post", BUCKET])
        .env_remove("OS_AUTH_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server
}

async fn make_with(conditional: ConditionalCreate, url: &str) -> OnS3 {
    let server = server().await;
    let store = CloudStore::s3(url, &config(&server, conditional), Path::new("/"), &env()).unwrap();
    OnS3 { store, _server: server }
}

async fn make() -> OnS3 {
    make_with(ConditionalCreate::Auto, &format!("s3://{BUCKET}/under/a/prefix")).await
}

backup_core::store_conformance!(make());

/// Swift 2.30's S3 API answers a conditional PUT (`If-None-Match: *`) with 501
/// Not Implemented: with `conditional_create = native` that is a clear error,
/// and nothing is written or overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swift_s3api_refuses_conditional_put_and_native_mode_says_so() {
    let store = make_with(ConditionalCreate::Native, &format!("s3://{BUCKET}/native")).await;
    let key = format!("{}/lease", backup_core::testing::fresh_prefix());
    let err = store.put_if_absent(&key, Bytes::from_static(b"new")).await.unwrap_err();
    let text = err.report();
    assert!(text.contains("conditional PUT") && text.contains("501"), "{text}");
    assert!(!store.exists(&key).await.unwrap(), "the refused create wrote something");
    store.put(&key, Bytes::from_static(b"old")).await.unwrap();
    assert!(store.put_if_absent(&key, Bytes::from_static(b"new")).await.is_err());
    assert_eq!(store.get_bytes(&key, 100).await.unwrap(), "old", "overwritten");
    assert!(!store.uses_claims());
}

/// With the claim protocol, of many writers racing for one key exactly one
/// creates it, and no claim is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_by_claims_make_exactly_one_winner() {
    let store = Arc::new(make_with(ConditionalCreate::Claims, &format!("s3://{BUCKET}/claims")).await);
    let prefix = backup_core::testing::fresh_prefix();
    let key = format!("{prefix}/locks/profile.json");
    let racers = (0..6u8).map(|i| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.put_if_absent(&key, Bytes::from(vec![i; 10])).await })
    });
    let results: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(winners, 1, "{results:?}");
    let stored = store.get_bytes(&key, 100).await.unwrap();
    let winner = results.iter().position(|r| matches!(r, Ok(true))).unwrap() as u8;
    assert_eq!(stored, vec![winner; 10]);
    let left: Vec<String> = store.list(&prefix).await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(left, vec![key], "claims left behind");
}

/// A claim left by a killed writer is swept, and ignored once it is old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_of_dead_writers_are_swept() {
    let store = make_with(ConditionalCreate::Claims, &format!("s3://{BUCKET}/claims")).await;
    let prefix = backup_core::testing::fresh_prefix();
    let stale = format!("{prefix}/locks/profile.json.claims/00000000deadbeef");
    store.put(&stale, Bytes::new()).await.unwrap();
    let swept = store
        .sweep(&prefix, chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(swept, 1);
    assert!(store.list(&prefix).await.unwrap().is_empty());
}

/// A wrong secret is an error that names the store and never shows the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_named_not_shown() {
    let server = server().await;
    let mut env = env();
    env.insert("AWS_SECRET_ACCESS_KEY".into(), "not-the-secret-42".into());
    let store = CloudStore::s3(
        &format!("s3://{BUCKET}/x"),
        &config(&server, ConditionalCreate::Auto),
        Path::new("/"),
        &env,
    )
    .unwrap();
    assert!(!format!("{store:?}").contains("not-the-secret-42"));
    let err = store.list("p").await.unwrap_err();
    let text = err.report();
    assert!(text.contains(BUCKET) && !text.contains("not-the-secret-42"), "{text}");
    assert!(!err.is_retryable(), "a refused signature is not worth retrying: {text}");
}

/// An object whose name is no valid key (`a//b`), planted by whoever can
/// write to the bucket, makes the listing fail with an error naming the store
/// and the object — never a panic, never a silently shortened listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_object_with_an_invalid_name_is_named() {
    let store = make_with(ConditionalCreate::Auto, &format!("s3://{BUCKET}/forged")).await;
    let prefix = backup_core::testing::fresh_prefix();
    store
        .put(&format!("{prefix}/ok"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    // Planted through Swift's own API, which takes any name.
    let auth = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .args(["-H", &format!("X-Auth-User: {}", backup_swift::testing::USER)])
        .args(["-H", &format!("X-Auth-Key: {}", backup_swift::testing::KEY)])
        .arg(store._server.auth_url())
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&auth.stdout).to_string();
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap()
    };
    let (url, token) = (header("X-Storage-Url"), header("X-Auth-Token"));
    let planted = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "--data-binary",
            "evil",
        ])
        .args(["-H", &format!("X-Auth-Token: {token}")])
        .arg(format!("{url}/{BUCKET}/forged/{prefix}/p//evil"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&planted.stdout), "201");
    let err = store.list(&prefix).await.unwrap_err();
    let text = err.report();
    assert!(text.contains(BUCKET) && text.contains("p//evil"), "{text}");
    // What lies beside it stays readable.
    assert_eq!(store.get_bytes(&format!("{prefix}/ok"), 10).await.unwrap(), "x");
}
