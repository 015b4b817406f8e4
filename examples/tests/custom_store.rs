//! The custom `DirStore` passes the store conformance battery, case by case
//! and through `run_all`.

use backup_examples::DirStore;

backup_core::store_conformance!(async {
    let dir = tempfile::tempdir().expect("temp dir");
    Guard {
        store: DirStore::new(dir.path()),
        _dir: dir,
    }
});

/// Keeps the temporary folder alive as long as the store.
struct Guard {
    store: DirStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Guard {
    type Target = DirStore;
    fn deref(&self) -> &DirStore {
        &self.store
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    backup_core::testing::run_all(&DirStore::new(dir.path())).await;
}
