//! The index and partial reads through the real pipeline, on a real
//! filesystem store wrapped to count what is fetched.
//!
//! Scale: 64 MiB of incompressible data in 1 MiB chunks (the 2 GiB /
//! 16 MiB-chunk figure is measured in benches/, not in CI).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backup_core::index::{open_index, INDEX_STREAM};
use backup_core::testing::test_keys;
use backup_core::{
    list_backups, run_backup, BackupOptions, ByteStream, CatalogEntry, DynStore, Error, ObjectMeta, Pick, ProfileRef,
    Result, Store, StoreExt,
};
use backup_files::{
    list_entries, read_file, restore_selection, with_ends, EntryKind, ExtractOptions, FileEntry, FilesConfig,
    FilesSource, Selection,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use rand::RngCore;

const MIB: usize = 1024 * 1024;

/// A store that counts the chunk objects fetched, by stream.
#[derive(Debug)]
struct Counting {
    inner: DynStore,
    gets: Mutex<Vec<String>>,
    data_gets: AtomicUsize,
}

#[async_trait]
impl Store for Counting {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<bool> {
        self.inner.put_if_absent(key, data).await
    }
    async fn get(&self, key: &str) -> Result<ByteStream> {
        if key.rsplit('/').next().is_some_and(|n| n.starts_with("data-")) {
            self.data_gets.fetch_add(1, Ordering::SeqCst);
        }
        self.gets.lock().unwrap().push(key.to_owned());
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn sweep(&self, prefix: &str, older_than: DateTime<Utc>) -> Result<u64> {
        self.inner.sweep(prefix, older_than).await
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    counting: Arc<Counting>,
    store: DynStore,
}

fn profile() -> ProfileRef {
    ProfileRef::new("app", "files", "app/files").with_kind(backup_files::KIND)
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fs_store: DynStore = Arc::new(backup_fs::FsStore::new(dir.path().join("store")).unwrap());
        let counting = Arc::new(Counting {
            inner: fs_store,
            gets: Mutex::new(Vec::new()),
            data_gets: AtomicUsize::new(0),
        });
        let store: DynStore = counting.clone();
        let root = dir.path().join("src");
        Fixture {
            _dir: dir,
            root,
            counting,
            store,
        }
    }

    async fn backup(&self, chunk_size: usize) -> CatalogEntry {
        let keys = test_keys();
        let source = FilesSource::new(&FilesConfig::new(vec![self.root.clone()]), Path::new("/")).unwrap();
        let options = BackupOptions::new("app", "files", "app/files").with_chunk_size(chunk_size);
        let m = run_backup(&self.store, &source, keys.encryptor.clone(), &keys.signer, &options)
            .await
            .unwrap();
        let listing = list_backups(&self.store, &profile(), &keys.trust).await.unwrap();
        listing.pick(Pick::Id(&m.id)).unwrap().clone()
    }

    fn reset(&self) {
        self.counting.gets.lock().unwrap().clear();
        self.counting.data_gets.store(0, Ordering::SeqCst);
    }
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// Archive name of a source path.
fn name(p: &Path) -> Vec<u8> {
    p.to_str().unwrap().trim_start_matches('/').as_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_file_of_a_multi_chunk_backup_fetches_at_most_two_chunks() {
    let f = Fixture::new();
    // 62 incompressible files of 1 MiB + 1 byte around the one we want, so
    // that entries straddle chunk borders.
    for i in 0..62 {
        let p = f.root.join(format!("bulk/f{i:02}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, random(MIB + 1)).unwrap();
    }
    let wanted = f.root.join("bulk/f31");
    let content = std::fs::read(&wanted).unwrap();
    let entry = f.backup(MIB).await;
    let data_chunks = entry.manifest.stream_chunks("data").count();
    assert!(data_chunks >= 63, "{data_chunks} data chunks");
    assert!(entry.manifest.has_stream(INDEX_STREAM));
    let keys = test_keys();

    // The whole index is read, no data chunk.
    f.reset();
    let listed = list_entries(&f.store, keys.decryptor.clone(), &entry).await.unwrap();
    assert!(listed.indexed);
    let all: Vec<FileEntry> = listed.stream.try_collect().await.unwrap();
    assert_eq!(f.counting.data_gets.load(Ordering::SeqCst), 0);
    assert_eq!(all.iter().filter(|e| e.kind == EntryKind::File).count(), 62);

    // Partial restore of one file: at most the 2 chunks that hold it.
    f.reset();
    let target = f._dir.path().join("restored");
    let selection = Selection::new(&[wanted.display().to_string()], &[]).unwrap();
    let done = restore_selection(
        &f.store,
        keys.decryptor.clone(),
        &entry,
        &selection,
        &target,
        None,
        &ExtractOptions::new(),
    )
    .await
    .unwrap();
    let fetched = f.counting.data_gets.load(Ordering::SeqCst);
    assert!(
        fetched <= 2,
        "fetched {fetched} data chunks: {:?}",
        f.counting.gets.lock().unwrap()
    );
    assert!(fetched >= 1);
    assert_eq!((done.summary.files, done.selected, done.indexed), (1, 1, true));
    let restored = target.join(wanted.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(&restored).unwrap(), content);
    let (a, b) = (
        std::fs::metadata(&wanted).unwrap(),
        std::fs::metadata(&restored).unwrap(),
    );
    assert_eq!(
        (a.mode(), a.mtime(), a.mtime_nsec()),
        (b.mode(), b.mtime(), b.mtime_nsec())
    );
    // Nothing else came back: only the file and the folders above it.
    assert_eq!(std::fs::read_dir(restored.parent().unwrap()).unwrap().count(), 1);

    // One entry as a stream, for embedders.
    f.reset();
    let mut spans = with_ends(
        list_entries(&f.store, keys.decryptor.clone(), &entry)
            .await
            .unwrap()
            .stream,
        backup_core::index::stream_size(&entry, "data"),
    );
    let mut found = None;
    while let Some((e, end)) = spans.try_next().await.unwrap() {
        if e.path == name(&wanted) {
            found = Some((e, end));
        }
    }
    let (file, end) = found.unwrap();
    let before = f.counting.data_gets.load(Ordering::SeqCst);
    let bytes: Vec<Bytes> = read_file(&f.store, keys.decryptor.clone(), &entry, &file, end)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(bytes.concat(), content);
    assert!(f.counting.data_gets.load(Ordering::SeqCst) - before <= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn index_lists_what_the_archive_holds_and_folders_bring_their_contents() {
    let f = Fixture::new();
    backup_files::testing::sample_tree(&f.root, 200_000);
    let long = f.root.join("x".repeat(120)).join("y".repeat(60));
    std::fs::create_dir_all(long.parent().unwrap()).unwrap();
    std::fs::write(&long, b"long").unwrap();
    let entry = f.backup(64 * 1024).await;
    let keys = test_keys();

    // The index equals what a scan of the tar headers finds.
    let indexed: Vec<FileEntry> = list_entries(&f.store, keys.decryptor.clone(), &entry)
        .await
        .unwrap()
        .stream
        .try_collect()
        .await
        .unwrap();
    let data = backup_core::restore_stream(&f.store, keys.decryptor.clone(), &entry, "data", 2).unwrap();
    let scanned: Vec<FileEntry> = backup_files::scan_archive(data, "t").try_collect().await.unwrap();
    assert_eq!(indexed.len(), scanned.len());
    for (i, s) in indexed.iter().zip(&scanned) {
        let strip = |e: &FileEntry| {
            let mut e = e.clone();
            e.offset = 0;
            e
        };
        assert_eq!(strip(i), strip(s));
        assert!(i.offset <= s.offset, "index offsets point at the first header");
    }
    assert!(indexed.iter().any(|e| e.path == name(&long)));

    // A folder brings its contents, and only them.
    let target = f._dir.path().join("docs-only");
    let docs = f.root.join("docs");
    let selection = Selection::new(&[docs.display().to_string()], &[]).unwrap();
    let done = restore_selection(
        &f.store,
        keys.decryptor.clone(),
        &entry,
        &selection,
        &target,
        None,
        &ExtractOptions::new(),
    )
    .await
    .unwrap();
    let want = backup_files::testing::snapshot(&docs);
    let got = backup_files::testing::snapshot(&target.join(docs.strip_prefix("/").unwrap()));
    assert_eq!(got, want);
    assert_eq!(done.summary.files as usize, want.len() - 2, "{want:?}");

    // Nothing selected is an error, and leaves no target behind.
    let none = Selection::new(&["no-such-name".into()], &[]).unwrap();
    let target = f._dir.path().join("none");
    let err = restore_selection(
        &f.store,
        keys.decryptor.clone(),
        &entry,
        &none,
        &target,
        None,
        &ExtractOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(!target.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_index_chunk_is_refused() {
    let f = Fixture::new();
    backup_files::testing::sample_tree(&f.root, 1000);
    let entry = f.backup(64 * 1024).await;
    let keys = test_keys();
    let key = entry
        .folder()
        .chunk_key(&entry.manifest.stream_chunks(INDEX_STREAM).next().unwrap().name)
        .unwrap();
    // Same length, one byte flipped near the end (the encrypted payload).
    let mut bytes = f.store.get_bytes(&key, 1 << 20).await.unwrap().to_vec();
    let at = bytes.len() - 10;
    bytes[at] ^= 1;
    f.store.put(&key, Bytes::from(bytes)).await.unwrap();
    let err = open_index(&f.store, keys.decryptor.clone(), &entry).await.unwrap_err();
    assert!(matches!(&err, Error::Integrity { key: k, .. } if *k == key), "{err}");
    let err = list_entries(&f.store, keys.decryptor.clone(), &entry)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
}
