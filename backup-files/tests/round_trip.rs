//! Folder backups through the real pipeline and back, compared exactly.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::{
    generate_key, restore_stream, run_backup, BackupOptions, Error, Manifest, MemoryStore, PgpDecryptor, PgpEncryptor,
    Store, StoreExt,
};
use backup_files::testing::{sample_tree, snapshot};
use backup_files::{restore_to_dir, FilesConfig, FilesSource, OnUnreadable};
use bytes::Bytes;

struct Fixture {
    store: Arc<dyn Store>,
    enc: Arc<PgpEncryptor>,
    dec: Arc<PgpDecryptor>,
}

fn fixture() -> Fixture {
    let key = generate_key("Files Test <f@example.org>", None).unwrap();
    Fixture {
        store: Arc::new(MemoryStore::new()),
        enc: Arc::new(PgpEncryptor::from_armored([(Path::new("pub"), key.public_armored.as_bytes())]).unwrap()),
        dec: Arc::new(PgpDecryptor::from_armored(Path::new("sec"), key.secret_armored.as_bytes(), "").unwrap()),
    }
}

fn config(paths: Vec<PathBuf>, exclude: &[&str]) -> FilesConfig {
    FilesConfig {
        paths,
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
        on_unreadable: OnUnreadable::Fail,
    }
}

impl Fixture {
    async fn backup(&self, config: &FilesConfig) -> Result<Manifest, Error> {
        let source = FilesSource::new(config, Path::new("/"))?;
        let mut options = BackupOptions::new("app", "files", "app/files");
        options.chunk_size = 64 * 1024; // many chunks, and entries across chunk boundaries
        run_backup(self.store.clone(), &source, self.enc.clone(), &options).await
    }

    async fn restore(&self, manifest: &Manifest, target: &Path) -> Result<backup_files::ArchiveSummary, Error> {
        let stream = restore_stream(self.store.clone(), self.dec.clone(), manifest, "data", 2);
        restore_to_dir(stream, target, "test").await
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
    let last = manifest.chunks.last().unwrap();
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
    let err = run_backup(f.store.clone(), &source, f.enc.clone(), &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("gone.txt"), "{err}");
    assert!(err.to_string().contains("on_unreadable"), "{err}");
    assert!(f.store.list("app/files").await.unwrap().is_empty(), "nothing committed");

    let mut cfg = cfg;
    cfg.on_unreadable = OnUnreadable::Warn;
    fs::write(&gone, b"back").unwrap();
    let source = FilesSource::new(&cfg, Path::new("/")).unwrap();
    fs::remove_file(&gone).unwrap();
    let m = run_backup(f.store.clone(), &source, f.enc.clone(), &options)
        .await
        .unwrap();
    assert_eq!(m.source["skipped"], 1);
    assert_eq!(m.source["file_count"], 1, "only ok.txt");
}
