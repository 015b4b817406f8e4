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
    let text = err.report();
    assert!(
        text.contains("a-file/store") && text.contains("Not a directory"),
        "{text}"
    );
}

#[tokio::test]
async fn links_in_the_store_never_lead_outside_it() {
    use backup_core::Store;
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious.txt"), b"not the store's").unwrap();
    let store = FsStore::new(dir.path().join("store")).unwrap();
    store
        .put(
            "app/db/20260101T000000Z-0001/data-000001.zst.gpg",
            bytes::Bytes::from_static(b"x"),
        )
        .await
        .unwrap();
    // A store writer points a backup folder, and a marks folder, at another directory.
    std::fs::create_dir_all(dir.path().join("store/app/db")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("store/app/db/20200101T000000Z-0000")).unwrap();
    std::os::unix::fs::symlink(
        outside.path(),
        dir.path().join("store/app/db/20260101T000000Z-0001/marks"),
    )
    .unwrap();

    let keys: Vec<String> = store.list("app/db").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(
        keys,
        ["app/db/20260101T000000Z-0001/data-000001.zst.gpg"],
        "nothing behind the links is listed"
    );
    assert!(store.delete("app/db/20200101T000000Z-0000/precious.txt").await.is_err());
    assert!(store.get("app/db/20200101T000000Z-0000/precious.txt").await.is_err());
    let mark = "app/db/20260101T000000Z-0001/marks/verified.json";
    assert!(store.put(mark, bytes::Bytes::from_static(b"{}")).await.is_err());
    assert_eq!(
        std::fs::read(outside.path().join("precious.txt")).unwrap(),
        b"not the store's"
    );
    assert!(
        !outside.path().join("verified.json").exists(),
        "a mark was written outside the store"
    );
    store
        .sweep("app/db", chrono::Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert!(outside.path().join("precious.txt").exists(), "sweep followed the link");
}

/// Whoever can write into the store can plant a FIFO where a manifest or a
/// chunk is expected: opening it for reading would wait for a writer forever,
/// hanging every list, restore, verify and prune. It is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_fifo_is_refused_not_waited_for() {
    use backup_core::{Error, Store, StoreExt};
    let store = make().await;
    store.put("app/db/b/data-000001.zst.gpg", "x".into()).await.unwrap();
    let fifo = store.root().join("app/db/b/manifest.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.get_bytes("app/db/b/manifest.json", 1 << 20),
    )
    .await;
    if got.is_err() {
        // Let the blocked reader go, so that the runtime can shut down.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000) // O_NONBLOCK
            .open(&fifo);
        panic!("reading a FIFO in the store hung");
    }
    let err = got.unwrap().unwrap_err();
    assert!(!matches!(err, Error::NotFound { .. }), "{err}");
    let report = err.report();
    assert!(
        report.contains("manifest.json") && report.contains("not a regular file"),
        "{report}"
    );
    assert_eq!(store.get_bytes("app/db/b/data-000001.zst.gpg", 10).await.unwrap(), "x");
}
