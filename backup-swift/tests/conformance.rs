//! The store conformance battery against a real Swift.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use backup_swift::testing::{SwiftServer, KEY, USER};
use backup_swift::{SwiftConfig, SwiftStore};

/// A store on the shared server; the server lives as long as any store does.
struct OnSwift {
    store: SwiftStore,
    _server: Arc<SwiftServer>,
}

impl std::ops::Deref for OnSwift {
    type Target = SwiftStore;
    fn deref(&self) -> &SwiftStore {
        &self.store
    }
}

fn v1_env(server: &SwiftServer) -> BTreeMap<String, String> {
    [
        ("ST_AUTH", server.auth_url()),
        ("ST_USER", USER.into()),
        ("ST_KEY", KEY.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn make() -> OnSwift {
    let server = tokio::task::spawn_blocking(SwiftServer::shared)
        .await
        .unwrap()
        .expect("Swift (skipped outside CI)");
    // Small segments, so that the large-object case goes up as an SLO.
    let config = SwiftConfig {
        segment_size: Some(4 << 20),
        ..Default::default()
    };
    let store = SwiftStore::new("swift://conformance", &config, Path::new("/"), &v1_env(&server)).unwrap();
    OnSwift { store, _server: server }
}

backup_core::store_conformance!(make());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_limits_lower_the_segment_size() {
    use backup_core::{Store, StoreExt};
    let server = tokio::task::spawn_blocking(SwiftServer::shared)
        .await
        .unwrap()
        .expect("Swift (skipped outside CI)");
    // Default segment size (1 GiB) above the cluster's max_file_size: /info lowers it,
    // so an object larger than max_file_size still goes up (as an SLO) instead of 413.
    let store = SwiftStore::new(
        "swift://limits",
        &SwiftConfig::default(),
        Path::new("/"),
        &v1_env(&server),
    )
    .unwrap();
    let data = bytes::Bytes::from(vec![7u8; (backup_swift::testing::MAX_FILE_SIZE * 2 + 10) as usize]);
    store.put("big/object", data.clone()).await.unwrap();
    assert_eq!(store.get_bytes("big/object", u64::MAX).await.unwrap(), data);
}
