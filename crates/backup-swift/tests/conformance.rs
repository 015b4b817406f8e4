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
