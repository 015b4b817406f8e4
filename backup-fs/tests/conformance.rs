//! The store conformance battery against a real folder.

use backup_fs::FsStore;

struct TempStore {
    store: FsStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TempStore {
    type Target = FsStore;
    fn deref(&self) -> &FsStore {
        &self.store
    }
}

/// Each case gets a fresh folder, removed when the case ends.
async fn make() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path().join("store")).unwrap();
    TempStore { store, _dir: dir }
}

backup_core::store_conformance!(make());

#[tokio::test]
async fn interrupted_put_leaves_nothing_visible() {
    use backup_core::{Store, StoreExt};
    let store = make().await;
    // A staged upload left by a killed process is named `<key>#<n>`: it must
    // not show up as an object.
    let dir = store.root().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data-000001.zst.gpg#1"), b"half").unwrap();
    assert!(store.list("p").await.unwrap().is_empty());
    assert!(!store.exists("p/data-000001.zst.gpg").await.unwrap());
    store
        .put("p/data-000001.zst.gpg", bytes::Bytes::from_static(b"whole"))
        .await
        .unwrap();
    assert_eq!(store.list("p").await.unwrap().len(), 1);
}

#[test]
fn unusable_root_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = FsStore::new(file.join("store")).unwrap_err();
    // The message names the folder; the cause chain keeps the OS's reason.
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(
        text.contains("a-file/store") && text.contains("Not a directory"),
        "{text}"
    );
}
