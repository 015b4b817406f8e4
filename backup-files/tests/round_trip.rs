//! Folder backups through the real pipeline and back, compared exactly.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::testing::test_keys;
use backup_core::{
    list_backups, run_backup, BackupOptions, DynStore, Error, Manifest, MemoryStore, Pick, ProfileRef, StoreExt,
};
use backup_files::testing::{sample_tree, snapshot};
use backup_files::{restore_folder, FilesConfig, FilesSource, OnUnreadable};
use bytes::Bytes;

struct Fixture {
    store: DynStore,
}

fn fixture() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new()),
    }
}

fn config(paths: Vec<PathBuf>, exclude: &[&str]) -> FilesConfig {
    FilesConfig::new(paths).with_exclude(exclude.iter().map(|s| s.to_string()).collect())
}

impl Fixture {
    async fn backup(&self, config: &FilesConfig) -> Result<Manifest, Error> {
        let source = FilesSource::new(config, Path::new("/"))?;
        // Many chunks, and entries across chunk boundaries.
        let options = BackupOptions::new("app", "files", "app/files").with_chunk_size(64 * 1024);
        self.run(&source, &options).await
    }

    async fn run(&self, source: &FilesSource, options: &BackupOptions) -> Result<Manifest, Error> {
        let keys = test_keys();
        run_backup(&self.store, source, keys.encryptor.clone(), &keys.signer, options).await
    }

    async fn restore(&self, manifest: &Manifest, target: &Path) -> Result<backup_files::ArchiveSummary, Error> {
        let keys = test_keys();
        let profile = ProfileRef::new("app", "files", "app/files").with_kind(backup_files::KIND);
        let listing = list_backups(&self.store, &profile, &keys.trust).await?;
        let entry = listing.pick(Pick::Id(&manifest.id))?;
        restore_folder(&self.store, keys.decryptor.clone(), entry, target, None).await
    }
}

/// Where a source path lands under a restore target: its absolute path minus `/`.
fn landed(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_keeps_everything_exactly() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app");
    sample_tree(&src, 300_000);
    let manifest = f.backup(&config(vec![src.clone()], &["*.tmp"])).await.unwrap();
    assert!(manifest.chunks.len() > 3, "expected several chunks");
    assert_eq!(manifest.source["file_count"], 9);

    let target = dir.path().join("restored");
    let summary = f.restore(&manifest, &target).await.unwrap();
    assert_eq!(summary.files, 9);

    let mut expected = snapshot(&src);
    expected.retain(|p, _| p.extension().is_none_or(|e| e != "tmp"));
    let got = snapshot(&landed(&target, &src));
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (path, snap) in &expected {
        assert_eq!(&got[path], snap, "{} differs", path.display());
    }
    assert!(!fs::read_dir(&target).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".backupapps")));
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_refuses_to_overwrite_and_leaves_target_alone() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app");
    sample_tree(&src, 1000);
    let manifest = f.backup(&config(vec![src.clone()], &[])).await.unwrap();
    let target = dir.path().join("restored");
    f.restore(&manifest, &target).await.unwrap();
    let before = snapshot(&target);
    let err = f.restore(&manifest, &target).await.unwrap_err();
    assert!(matches!(err, Error::Target { .. }), "{err}");
    assert!(err.to_string().contains("exists already"), "{err}");
    assert_eq!(snapshot(&target), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_chunk_leaves_target_untouched() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app");
    sample_tree(&src, 400_000);
    let manifest = f.backup(&config(vec![src.clone()], &[])).await.unwrap();
    // The last chunk of the data stream (the index stream comes after it).
    let last = manifest.stream_chunks("data").last().unwrap();
    let key = format!("app/files/{}/{}", manifest.id, last.name);
    let mut sealed = f.store.get_bytes(&key, u64::MAX).await.unwrap().to_vec();
    let n = sealed.len();
    sealed[n - 30] ^= 1;
    f.store.put(&key, Bytes::from(sealed)).await.unwrap();

    let target = dir.path().join("existing");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("keep.txt"), b"mine").unwrap();
    let before = snapshot(&target);
    let err = f.restore(&manifest, &target).await.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(err.to_string().contains(&last.name), "{err}");
    assert_eq!(snapshot(&target), before, "nothing was moved into the target");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_file_fails_by_default_and_is_skipped_on_warn() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok.txt"), b"fine").unwrap();
    // A dangling path given directly disappears between configuration and backup.
    let gone = src.join("gone.txt");
    fs::write(&gone, b"soon gone").unwrap();
    let cfg = config(vec![src.clone(), gone.clone()], &[]);
    let source = FilesSource::new(&cfg, Path::new("/")).unwrap();
    fs::remove_file(&gone).unwrap();
    let options = BackupOptions::new("app", "files", "app/files");
    let err = f.run(&source, &options).await.unwrap_err();
    assert!(err.to_string().contains("gone.txt"), "{err}");
    assert!(f.store.list("app/files").await.unwrap().is_empty(), "nothing committed");

    let cfg = cfg.with_on_unreadable(OnUnreadable::Warn);
    fs::write(&gone, b"back").unwrap();
    let source = FilesSource::new(&cfg, Path::new("/")).unwrap();
    fs::remove_file(&gone).unwrap();
    let m = f.run(&source, &options).await.unwrap();
    assert_eq!(m.source["skipped"], 1);
    assert_eq!(m.source["file_count"], 1, "only ok.txt");
}
