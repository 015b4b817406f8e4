//! The backup and restore pipelines over the in-memory store.

use std::sync::Arc;

use backup_core::testing::{test_keys, BytesSource, TestKeys};
use backup_core::{
    list_backups, restore_stream, run_backup, BackupOptions, DynStore, Encryptor, Error, Manifest, MemoryStore, Pick,
    ProfileRef, Store, StoreExt,
};
use bytes::Bytes;
use futures::TryStreamExt;
use proptest::prelude::*;

fn keys() -> &'static TestKeys {
    test_keys()
}

fn profile() -> ProfileRef {
    ProfileRef::new("app", "profile", "app/profile")
}

async fn listing(store: &DynStore) -> backup_core::Listing {
    list_backups(store, &profile(), &keys().trust).await.unwrap()
}

async fn backup(store: &DynStore, source: &BytesSource, chunk_size: usize) -> backup_core::Result<Manifest> {
    run_backup(
        store,
        source,
        keys().encryptor.clone(),
        &keys().signer,
        &options(chunk_size),
    )
    .await
}

fn options(chunk_size: usize) -> BackupOptions {
    BackupOptions::new("app", "profile", "app/profile").with_chunk_size(chunk_size)
}

async fn round_trip(data: Vec<u8>, chunk_size: usize, pieces: Vec<usize>) -> Vec<u8> {
    let store: DynStore = Arc::new(MemoryStore::new());
    let source = BytesSource {
        data: Bytes::from(data),
        piece_sizes: pieces,
        fail_with: None,
    };
    backup(&store, &source, chunk_size).await.unwrap();
    let listing = listing(&store).await;
    let entry = listing.pick(Pick::Newest).unwrap();
    let restored: Vec<Bytes> = restore_stream(&store, keys().decryptor.clone(), entry, "data", 3)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    restored.concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn decrypt_of_encrypt_is_identity(
        data in proptest::collection::vec(any::<u8>(), 0..20_000),
        chunk_size in 1usize..5_000,
        pieces in proptest::collection::vec(1usize..3_000, 0..4),
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let restored = rt.block_on(round_trip(data.clone(), chunk_size, pieces));
        prop_assert_eq!(restored, data);
    }
}

#[tokio::test]
async fn manifest_records_every_chunk_and_is_listed() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let data = Bytes::from(vec![42u8; 10_000]);
    let source = BytesSource {
        data,
        piece_sizes: vec![777],
        fail_with: None,
    };
    let m = backup(&store, &source, 4096).await.unwrap();
    assert_eq!(m.chunks.len(), 3);
    assert_eq!(m.plaintext_size, 10_000);
    assert_eq!(m.chunks[0].name, "data-000001.zst.gpg");
    assert_eq!(m.source["length"], 10_000);
    assert_eq!(m.recipients, keys().encryptor.recipients());
    let listing = listing(&store).await;
    assert_eq!(listing.trusted.len(), 1);
    assert_eq!(listing.trusted[0].manifest, m);
}

#[tokio::test]
async fn failing_source_commits_nothing() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let good = BytesSource {
        data: Bytes::from_static(b"first"),
        piece_sizes: vec![],
        fail_with: None,
    };
    backup(&store, &good, 4).await.unwrap();
    let bad = BytesSource {
        data: Bytes::from(vec![1u8; 100]),
        piece_sizes: vec![10],
        fail_with: Some("disk vanished".into()),
    };
    let err = backup(&store, &bad, 8).await.unwrap_err();
    assert!(err.to_string().contains("disk vanished"), "{err}");
    let listing = listing(&store).await;
    assert_eq!(listing.trusted.len(), 1, "the earlier backup stays listed");
    assert!(listing.incomplete.is_empty(), "the failed run removed its chunks");
    assert_eq!(
        store.list("app/profile").await.unwrap().len(),
        4,
        "two chunks, signature, manifest"
    );
}

#[tokio::test]
async fn tampered_chunk_is_refused_before_its_plaintext_is_used() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let source = BytesSource {
        data: Bytes::from(vec![5u8; 3000]),
        piece_sizes: vec![],
        fail_with: None,
    };
    let m = backup(&store, &source, 1000).await.unwrap();
    let key = format!("app/profile/{}/data-000002.zst.gpg", m.id);
    let mut bytes = store.get_bytes(&key, u64::MAX).await.unwrap().to_vec();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    store.put(&key, Bytes::from(bytes)).await.unwrap();
    let listing = listing(&store).await;
    let mut stream = restore_stream(&store, keys().decryptor.clone(), &listing.trusted[0], "data", 1).unwrap();
    assert_eq!(stream.try_next().await.unwrap().unwrap().len(), 1000);
    match stream.try_next().await {
        Err(Error::Integrity { key: k, .. }) => assert_eq!(k, key),
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

/// Records the order of deletes, to check that a removal starts with the manifest.
#[derive(Debug, Default)]
struct RecordingStore {
    inner: MemoryStore,
    deleted: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Store for RecordingStore {
    async fn put(&self, key: &str, data: Bytes) -> backup_core::Result<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> backup_core::Result<bool> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> backup_core::Result<backup_core::ByteStream> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> backup_core::Result<backup_core::ObjectMeta> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> backup_core::Result<Vec<backup_core::ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> backup_core::Result<()> {
        self.deleted.lock().unwrap().push(key.to_owned());
        self.inner.delete(key).await
    }
    async fn sweep(&self, prefix: &str, older_than: chrono::DateTime<chrono::Utc>) -> backup_core::Result<u64> {
        self.inner.sweep(prefix, older_than).await
    }
    fn location(&self) -> String {
        "recording://".into()
    }
}

#[tokio::test]
async fn removing_a_backup_deletes_its_manifest_first() {
    let recording = Arc::new(RecordingStore::default());
    let store: DynStore = recording.clone();
    let source = BytesSource {
        data: Bytes::from(vec![9u8; 5000]),
        piece_sizes: vec![],
        fail_with: None,
    };
    let m = backup(&store, &source, 1000).await.unwrap();
    let listing = listing(&store).await;
    let entry = &listing.trusted[0];
    backup_core::catalog::remove_backup(&store, entry.folder(), &entry.objects)
        .await
        .unwrap();
    let deleted = recording.deleted.lock().unwrap().clone();
    assert_eq!(deleted[0], format!("app/profile/{}/manifest.json", m.id));
    assert_eq!(deleted.len(), 7, "manifest, signature and five chunks");
    assert!(store.list("app/profile").await.unwrap().is_empty());
}

/// A source whose stream yields a piece, then panics (a bug in a source, or
/// in the chunker): the backup must fail, not be committed truncated.
struct PanickingSource;

#[async_trait::async_trait]
impl backup_core::Source for PanickingSource {
    fn kind(&self) -> &str {
        "bytes"
    }

    async fn open(&self) -> backup_core::Result<backup_core::SourceOutput> {
        let mut sent = false;
        let stream = futures::stream::poll_fn(move |_| {
            assert!(!sent, "the source broke down");
            sent = true;
            std::task::Poll::Ready(Some(Ok(Bytes::from_static(b"first piece"))))
        });
        Ok(backup_core::SourceOutput::single(
            Box::pin(stream),
            backup_core::SourceDetails::default(),
        ))
    }
}

#[tokio::test]
async fn a_source_that_panics_commits_nothing() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let result = run_backup(
        &store,
        &PanickingSource,
        keys().encryptor.clone(),
        &keys().signer,
        &options(4),
    )
    .await;
    assert!(result.is_err(), "a truncated backup was committed: {result:?}");
    assert!(listing(&store).await.trusted.is_empty());
}

/// A store whose reads take a while once `started` is counting (all but the
/// first of them), counting the reads that finished.
#[derive(Debug)]
struct SlowReads {
    inner: MemoryStore,
    started: Arc<std::sync::atomic::AtomicUsize>,
    finished: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl Store for SlowReads {
    async fn put(&self, key: &str, data: Bytes) -> backup_core::Result<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> backup_core::Result<bool> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> backup_core::Result<backup_core::ByteStream> {
        use futures::StreamExt;
        let inner = self.inner.get(key).await?;
        let finished = Arc::clone(&self.finished);
        let delay = match self.started.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            1..=1000 => 100,
            _ => 0,
        };
        let slow = futures::stream::once(async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            let all: Vec<Bytes> = inner.try_collect().await?;
            finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Bytes::from(all.concat()))
        });
        Ok(slow.boxed())
    }
    async fn head(&self, key: &str) -> backup_core::Result<backup_core::ObjectMeta> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> backup_core::Result<Vec<backup_core::ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> backup_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn sweep(&self, prefix: &str, older_than: chrono::DateTime<chrono::Utc>) -> backup_core::Result<u64> {
        self.inner.sweep(prefix, older_than).await
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

/// Chunks are fetched and decrypted while the consumer is busy with the one
/// before (pg_restore waited for every chunk when they were not), and no
/// more than `parallelism` of them are taken ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_works_ahead_of_a_busy_consumer_but_not_further() {
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Not counting yet (every read quick) while backing up and listing.
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX / 2));
    let store: DynStore = Arc::new(SlowReads {
        inner: MemoryStore::new(),
        started: Arc::clone(&started),
        finished: Arc::clone(&finished),
    });
    let data: Vec<u8> = (0..40_000u32).flat_map(|i| i.to_le_bytes()).collect();
    backup(&store, &BytesSource::new(data.clone()), 16 * 1024)
        .await
        .unwrap();
    let listing = listing(&store).await;
    let entry = listing.pick(Pick::Newest).unwrap();
    assert!(entry.manifest.chunks.len() >= 6, "several chunks");
    let before = finished.load(std::sync::atomic::Ordering::SeqCst);
    // The first chunk comes at once, the others take 100 ms each.
    started.store(0, std::sync::atomic::Ordering::SeqCst);

    let mut stream = restore_stream(&store, keys().decryptor.clone(), entry, "data", 2).unwrap();
    let first = stream.try_next().await.unwrap().unwrap();
    // Busy elsewhere, not polling the stream.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let fetched = finished.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(fetched, 2, "the next chunk is fetched meanwhile, and no further one");

    let mut restored = first.to_vec();
    while let Some(piece) = stream.try_next().await.unwrap() {
        restored.extend_from_slice(&piece);
    }
    assert_eq!(restored, data);
}
