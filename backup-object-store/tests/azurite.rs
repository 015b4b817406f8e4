//! The store conformance battery against a real Azure Blob API: Azurite,
//! started on loopback.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use backup_core::{Store, StoreExt};
use backup_object_store::testing::{AzuriteServer, ACCOUNT, ACCOUNT_KEY};
use backup_object_store::{AzureConfig, CloudStore, ConditionalCreate};
use bytes::Bytes;

const CONTAINER: &str = "conformance";

struct OnAzurite {
    store: CloudStore,
    _server: Arc<AzuriteServer>,
}

impl std::ops::Deref for OnAzurite {
    type Target = CloudStore;
    fn deref(&self) -> &CloudStore {
        &self.store
    }
}

async fn server() -> Arc<AzuriteServer> {
    let server = tokio::task::spawn_blocking(AzuriteServer::shared)
        .await
        .unwrap()
        .expect("Azurite (skipped outside CI)");
    server.create_container(CONTAINER);
    server
}

fn config(server: &AzuriteServer, conditional: ConditionalCreate) -> AzureConfig {
    AzureConfig {
        account: Some(ACCOUNT.into()),
        endpoint: Some(server.endpoint()),
        multipart_threshold: Some(5 << 20),
        part_size: Some(5 << 20),
        conditional_create: Some(conditional),
        ..Default::default()
    }
}

fn env() -> BTreeMap<String, String> {
    [("AZURE_STORAGE_ACCOUNT_KEY".to_owned(), ACCOUNT_KEY.to_owned())].into()
}

async fn make_with(conditional: ConditionalCreate) -> OnAzurite {
    let server = server().await;
    let url = format!("az://{CONTAINER}/some/prefix");
    let store = CloudStore::azure(&url, &config(&server, conditional), Path::new("/"), &env()).unwrap();
    OnAzurite { store, _server: server }
}

async fn make() -> OnAzurite {
    make_with(ConditionalCreate::Auto).await
}

backup_core::store_conformance!(make());

/// Azure Blob storage honours `If-None-Match: *`: the conditional create is
/// native, never the claim protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_create_is_native() {
    let store = make_with(ConditionalCreate::Native).await;
    backup_core::testing::put_if_absent_creates_once(&*store, &backup_core::testing::fresh_prefix()).await;
    assert!(!store.uses_claims());
}

/// A connection string alone (`AZURE_STORAGE_CONNECTION_STRING`) is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_string_is_enough() {
    let server = server().await;
    let env: BTreeMap<String, String> =
        [("AZURE_STORAGE_CONNECTION_STRING".to_owned(), server.connection_string())].into();
    let store = CloudStore::azure(
        &format!("az://{CONTAINER}"),
        &AzureConfig::default(),
        Path::new("/"),
        &env,
    )
    .unwrap();
    let key = format!("{}/x", backup_core::testing::fresh_prefix());
    store.put(&key, Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(store.get_bytes(&key, 10).await.unwrap(), "hello");
    assert!(!format!("{store:?}").contains(ACCOUNT_KEY));
}

/// A wrong key is an error naming the store, never showing the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_named_not_shown() {
    let server = server().await;
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleQ==";
    let env: BTreeMap<String, String> = [("AZURE_STORAGE_ACCOUNT_KEY".to_owned(), wrong.to_owned())].into();
    let store = CloudStore::azure(
        &format!("az://{CONTAINER}"),
        &config(&server, ConditionalCreate::Auto),
        Path::new("/"),
        &env,
    )
    .unwrap();
    let text = store.list("p").await.unwrap_err().report();
    assert!(text.contains(CONTAINER) && !text.contains(wrong), "{text}");
}
