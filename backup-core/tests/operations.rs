//! The library operations a program embeds, without any CLI: restore to a
//! writer or a file, verify and record it, prune.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use backup_core::prune;
use backup_core::reexports::async_trait;
use backup_core::testing::{test_keys, BytesSource};
use backup_core::{
    generate_key, list_backups, restore_stream, restore_to_file, restore_to_writer, run_backup, verify_backup,
    BackupOptions, ByteStream, CatalogEntry, DynStore, Error, KeepPolicy, Listing, Manifest, MemoryStore, PgpDecryptor,
    Pick, ProfileRef, Source, SourceDetails, SourceOutput, StoreExt, StreamCheck, VerifyMode,
};
use bytes::Bytes;
use chrono::{Duration, Utc};
use futures::{StreamExt, TryStreamExt};

const DEST: &str = "app/db";

fn profile() -> ProfileRef {
    ProfileRef::new("app", "db", DEST)
}

fn new_store() -> DynStore {
    Arc::new(MemoryStore::new())
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|n| ((n * 7 + seed) % 253) as u8).collect()
}

async fn backup_at(store: &DynStore, time: &str, data: &[u8], chunk_size: usize) -> Manifest {
    let options = BackupOptions::new("app", "db", DEST)
        .with_time(time.parse().expect("backup time"))
        .with_chunk_size(chunk_size);
    run_backup(
        store,
        &BytesSource::new(data.to_vec()),
        test_keys().encryptor.clone(),
        &test_keys().signer,
        &options,
    )
    .await
    .expect("backup")
}

async fn listing(store: &DynStore) -> Listing {
    list_backups(store, &profile(), &test_keys().trust)
        .await
        .expect("listing")
}

fn entry<'a>(listing: &'a Listing, id: &str) -> &'a CatalogEntry {
    listing.pick(Pick::Id(id)).expect("backup is trusted")
}

/// Flips one byte in the middle of a stored object.
async fn tamper(store: &DynStore, key: &str) {
    let mut bytes = store.get_bytes(key, u64::MAX).await.expect("read chunk").to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    store.put(key, Bytes::from(bytes)).await.expect("write tampered chunk");
}

/// A fresh private folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "backup-core-{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in the folder, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read temporary folder")
            .map(|e| e.expect("folder entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn restore_to_writer_gives_the_original_bytes() {
    let store = new_store();
    let original = data(4500, 1);
    let m = backup_at(&store, "2026-01-01T00:00:00Z", &original, 1000).await;
    assert_eq!(m.chunks.len(), 5);
    let listing = listing(&store).await;
    let mut out = Vec::new();
    let n = restore_to_writer(
        &store,
        test_keys().decryptor.clone(),
        entry(&listing, &m.id),
        "data",
        &mut out,
        Path::new("out"),
    )
    .await
    .expect("restore");
    assert_eq!(n, 4500);
    assert!(out == original, "restored bytes differ");
}

#[tokio::test]
async fn restore_to_file_is_private_and_never_replaces() {
    let store = new_store();
    let original = data(4500, 2);
    let m = backup_at(&store, "2026-01-01T00:00:00Z", &original, 1000).await;
    let listing = listing(&store).await;
    let e = entry(&listing, &m.id);
    let dir = TempDir::new("restore");
    let target = dir.path("dump");

    let n = restore_to_file(&store, test_keys().decryptor.clone(), e, "data", &target, true)
        .await
        .expect("restore to file");
    assert_eq!(n, 4500);
    assert!(std::fs::read(&target).expect("read restored file") == original);
    let mode = std::fs::metadata(&target).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert_eq!(dir.names(), vec!["dump"], "no .partial left");

    // An existing path is refused and left as it was.
    std::fs::write(&target, b"keep me").expect("write");
    match restore_to_file(&store, test_keys().decryptor.clone(), e, "data", &target, false).await {
        Err(Error::Target { path, .. }) => assert_eq!(path, target),
        other => panic!("restore over an existing file gave {other:?}"),
    }
    assert_eq!(std::fs::read(&target).expect("read"), b"keep me");
    assert_eq!(dir.names(), vec!["dump"]);

    // Also a dangling symlink counts as existing.
    let link = dir.path("link");
    std::os::unix::fs::symlink(dir.path("nowhere"), &link).expect("symlink");
    assert!(matches!(
        restore_to_file(&store, test_keys().decryptor.clone(), e, "data", &link, false).await,
        Err(Error::Target { .. })
    ));
    assert!(!dir.path("nowhere").exists(), "restore wrote through a symlink");
}

#[tokio::test]
async fn failed_restore_to_file_leaves_nothing() {
    let store = new_store();
    let m = backup_at(&store, "2026-01-01T00:00:00Z", &data(4500, 3), 1000).await;
    let bad = format!("{DEST}/{}/{}", m.id, m.chunks[3].name);
    tamper(&store, &bad).await;
    let listing = listing(&store).await;
    let dir = TempDir::new("failed");
    let target = dir.path("dump");
    match restore_to_file(
        &store,
        test_keys().decryptor.clone(),
        entry(&listing, &m.id),
        "data",
        &target,
        true,
    )
    .await
    {
        Err(Error::Integrity { key, .. }) => assert_eq!(key, bad),
        other => panic!("restore of a tampered chunk gave {other:?}"),
    }
    assert!(dir.names().is_empty(), "left behind: {:?}", dir.names());
}

#[tokio::test]
async fn unknown_stream_is_an_error_not_an_empty_restore() {
    let store = new_store();
    let m = backup_at(&store, "2026-01-01T00:00:00Z", &data(100, 4), 1000).await;
    let listing = listing(&store).await;
    let e = entry(&listing, &m.id);
    let check = |result: backup_core::Result<u64>, what: &str| match result {
        Err(Error::UnknownStream { id, stream, available }) => {
            assert_eq!(id, m.id);
            assert_eq!(stream, "globals");
            assert_eq!(available, vec!["data".to_owned()]);
        }
        other => panic!("{what}: restore of an unknown stream gave {other:?}"),
    };
    let mut out = Vec::new();
    let result = restore_to_writer(
        &store,
        test_keys().decryptor.clone(),
        e,
        "globals",
        &mut out,
        Path::new("o"),
    )
    .await;
    check(result, "restore_to_writer");
    assert!(out.is_empty());
    let dir = TempDir::new("unknown");
    let result = restore_to_file(
        &store,
        test_keys().decryptor.clone(),
        e,
        "globals",
        &dir.path("g"),
        false,
    )
    .await;
    check(result, "restore_to_file");
    assert!(dir.names().is_empty(), "left behind: {:?}", dir.names());
    assert!(matches!(
        restore_stream(&store, test_keys().decryptor.clone(), e, "globals", 2),
        Err(Error::UnknownStream { .. })
    ));
}

/// A source with two streams, `data` and `globals`.
struct TwoStreams {
    data: Vec<u8>,
    globals: Vec<u8>,
}

#[async_trait]
impl Source for TwoStreams {
    fn kind(&self) -> &str {
        "two"
    }

    async fn open(&self) -> backup_core::Result<SourceOutput> {
        let stream =
            |bytes: &[u8]| -> ByteStream { futures::stream::iter(vec![Ok(Bytes::from(bytes.to_vec()))]).boxed() };
        let mut output = SourceOutput::single(stream(&self.data), SourceDetails::default());
        output.streams.push(("globals".into(), stream(&self.globals)));
        Ok(output)
    }
}

/// Counts the bytes of the data stream.
#[derive(Default)]
struct CountBytes {
    calls: AtomicUsize,
}

#[async_trait]
impl StreamCheck for CountBytes {
    async fn check(&self, data: ByteStream, _entry: &CatalogEntry) -> backup_core::Result<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let n = data
            .try_fold(0u64, |n, b| async move { Ok(n + b.len() as u64) })
            .await?;
        Ok(format!("{n} bytes"))
    }
}

#[tokio::test]
async fn verify_checksums_then_full_and_record_it() {
    let store = new_store();
    let source = TwoStreams {
        data: data(4500, 5),
        globals: data(1500, 6),
    };
    let options = BackupOptions::new("app", "db", DEST).with_chunk_size(1000);
    let m = run_backup(
        &store,
        &source,
        test_keys().encryptor.clone(),
        &test_keys().signer,
        &options,
    )
    .await
    .expect("backup");
    assert_eq!(m.streams(), vec!["data".to_owned(), "globals".to_owned()]);
    assert_eq!(m.chunks.len(), 7);
    let listed = listing(&store).await;
    let e = entry(&listed, &m.id);
    assert!(e.marks.is_empty());

    let report = verify_backup(&store, e, None, None).await.expect("checksums");
    assert_eq!(report.mode, VerifyMode::Checksums);
    assert_eq!(report.id, m.id);
    assert_eq!(report.chunks, 7);
    assert_eq!(report.plaintext_bytes, None);
    assert_eq!(report.structure, None);

    let check = CountBytes::default();
    let report = verify_backup(&store, e, Some(test_keys().decryptor.clone()), Some(&check))
        .await
        .expect("full verify");
    assert_eq!(report.mode, VerifyMode::Full);
    assert_eq!(report.chunks, 7);
    assert_eq!(report.plaintext_bytes, Some(6000), "both streams are read");
    assert_eq!(
        report.structure.as_deref(),
        Some("4500 bytes"),
        "the check reads the data stream"
    );
    assert_eq!(check.calls.load(Ordering::SeqCst), 1);

    let mut globals = Vec::new();
    restore_to_writer(
        &store,
        test_keys().decryptor.clone(),
        e,
        "globals",
        &mut globals,
        Path::new("g"),
    )
    .await
    .expect("restore globals");
    assert!(globals == source.globals);

    backup_core::verify::record_verified(&store, e, &report)
        .await
        .expect("record");
    assert!(store
        .exists(&format!("{DEST}/{}/marks/verified.json", m.id))
        .await
        .expect("exists"));
    let after = listing(&store).await;
    let mark = &entry(&after, &m.id).marks["verified"];
    assert_eq!(mark["mode"], "full");
    assert_eq!(mark["chunks"], 7);
    assert_eq!(mark["plaintext_bytes"], 6000);
    assert_eq!(mark["detail"], "4500 bytes");
    assert!(mark["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{mark}");
    // A mark is not part of the backup's identity.
    assert_eq!(entry(&after, &m.id).manifest, m);
}

#[tokio::test]
async fn verify_names_the_tampered_chunk() {
    let store = new_store();
    let m = backup_at(&store, "2026-01-01T00:00:00Z", &data(4500, 7), 1000).await;
    let bad = format!("{DEST}/{}/{}", m.id, m.chunks[2].name);
    tamper(&store, &bad).await;
    let listing = listing(&store).await;
    let e = entry(&listing, &m.id);
    match verify_backup(&store, e, None, None).await {
        Err(Error::Integrity { key, reason }) => {
            assert_eq!(key, bad);
            assert!(reason.contains("SHA-256"), "{reason}");
        }
        other => panic!("checksum verify of a tampered chunk gave {other:?}"),
    }
    match verify_backup(
        &store,
        e,
        Some(test_keys().decryptor.clone()),
        Some(&CountBytes::default()),
    )
    .await
    {
        Err(Error::Integrity { key, .. }) => assert_eq!(key, bad),
        other => panic!("full verify of a tampered chunk gave {other:?}"),
    }
    // A missing chunk too.
    store.delete(&bad).await.expect("delete chunk");
    match verify_backup(&store, e, None, None).await {
        Err(Error::Integrity { key, reason }) => {
            assert_eq!(key, bad);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("checksum verify of a missing chunk gave {other:?}"),
    }
}

#[tokio::test]
async fn wrong_secret_key_is_wrong_key_not_integrity() {
    let store = new_store();
    let m = backup_at(&store, "2026-01-01T00:00:00Z", &data(2500, 8), 1000).await;
    let listing = listing(&store).await;
    let e = entry(&listing, &m.id);
    let other = generate_key("Other <other@example.org>", None).expect("other key");
    let wrong: Arc<PgpDecryptor> = Arc::new(
        PgpDecryptor::from_armored(Path::new("other.sec"), other.secret_armored.as_bytes(), "").expect("decryptor"),
    );
    let first = format!("{DEST}/{}/{}", m.id, m.chunks[0].name);
    let expect_wrong_key = |result: backup_core::Error, what: &str| match result {
        Error::WrongKey { key, recipients, have } => {
            assert_eq!(key, first, "{what}");
            assert!(!recipients.is_empty());
            assert_eq!(recipients, m.recipients, "{what}");
            assert_eq!(have, vec![other.fingerprint.clone()], "{what}");
            let text = Error::WrongKey { key, recipients, have }.to_string();
            assert!(text.contains(&m.recipients[0]), "{text}");
        }
        other => panic!("{what}: expected WrongKey, got {other:?}"),
    };
    let mut out = Vec::new();
    let err = restore_to_writer(&store, wrong.clone(), e, "data", &mut out, Path::new("o"))
        .await
        .expect_err("restore with the wrong key");
    expect_wrong_key(err, "restore");
    assert!(out.is_empty(), "plaintext written with the wrong key");
    let err = verify_backup(&store, e, Some(wrong), None)
        .await
        .expect_err("verify with the wrong key");
    expect_wrong_key(err, "verify");
}

fn keep_last(n: u32) -> KeepPolicy {
    KeepPolicy {
        last: n,
        ..KeepPolicy::default()
    }
}

async fn keys_under(store: &DynStore, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test]
async fn prune_removes_exactly_the_plan() {
    let store = new_store();
    let mut ids = Vec::new();
    for day in 1..=5 {
        let m = backup_at(&store, &format!("2026-01-{day:02}T03:00:00Z"), &data(1500, day), 1000).await;
        ids.push(m.id);
    }
    // A run that died after its first chunk: no manifest.
    let dead = "20260106T030000Z-dead";
    store
        .put(
            &format!("{DEST}/{dead}/data-000001.zst.gpg"),
            Bytes::from_static(b"partial"),
        )
        .await
        .expect("store chunk");
    // Another profile sharing the store.
    let other_options = BackupOptions::new("app", "other", "app/other");
    run_backup(
        &store,
        &BytesSource::new(b"other".to_vec()),
        test_keys().encryptor.clone(),
        &test_keys().signer,
        &other_options,
    )
    .await
    .expect("other profile's backup");
    let other_before = keys_under(&store, "app/other").await;

    let grace = Duration::hours(1);
    let now = Utc::now();
    let listed = listing(&store).await;
    assert_eq!(listed.trusted.len(), 5);
    assert_eq!(
        listed.incomplete.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        vec![dead]
    );
    let plan = prune::plan(&listed, DEST, &keep_last(2), now, grace);
    let kept: Vec<&str> = plan.keep.iter().map(|k| k.id.as_str()).collect();
    let removed: Vec<&str> = plan.remove.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(kept, vec![ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(removed, vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    assert!(
        plan.incomplete.is_empty(),
        "an incomplete folder younger than the grace is kept"
    );
    assert!(plan.untrusted.is_empty());
    assert!(plan.keep.iter().all(|k| !k.reasons.is_empty()), "{:?}", plan.keep);

    let before = keys_under(&store, DEST).await;
    let applied = prune::apply(&store, &plan, now, grace).await.expect("apply");
    assert_eq!(applied.folders, 3);
    let after = keys_under(&store, DEST).await;
    let expected: Vec<String> = before
        .iter()
        .filter(|k| !removed.iter().any(|id| k.starts_with(&format!("{DEST}/{id}/"))))
        .cloned()
        .collect();
    assert_eq!(after, expected, "apply removed other objects than the plan's");
    assert!(after.len() < before.len());
    assert!(after.iter().any(|k| k.starts_with(&format!("{DEST}/{dead}/"))));
    assert_eq!(
        keys_under(&store, "app/other").await,
        other_before,
        "another profile was touched"
    );

    let listed = listing(&store).await;
    let trusted: Vec<&str> = listed.trusted.iter().map(|e| e.manifest.id.as_str()).collect();
    assert_eq!(trusted, vec![ids[3].as_str(), ids[4].as_str()]);
    let again = prune::plan(&listed, DEST, &keep_last(2), now, grace);
    assert!(
        again.remove.is_empty(),
        "{:?}",
        again.remove.iter().map(|r| &r.id).collect::<Vec<_>>()
    );
    assert!(again.incomplete.is_empty());
    assert_eq!(again.keep.len(), 2);

    // Once the grace has passed, the dead run goes too — and only it.
    let later = now + Duration::hours(2);
    let plan = prune::plan(&listed, DEST, &keep_last(2), later, grace);
    assert!(plan.remove.is_empty());
    assert_eq!(
        plan.incomplete.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![dead]
    );
    let before = keys_under(&store, DEST).await;
    prune::apply(&store, &plan, later, grace).await.expect("apply");
    let after = keys_under(&store, DEST).await;
    let expected: Vec<String> = before
        .into_iter()
        .filter(|k| !k.starts_with(&format!("{DEST}/{dead}/")))
        .collect();
    assert_eq!(after, expected);
    let listed = listing(&store).await;
    let final_plan = prune::plan(&listed, DEST, &keep_last(2), later, grace);
    assert!(final_plan.remove.is_empty() && final_plan.incomplete.is_empty() && final_plan.untrusted.is_empty());
    assert_eq!(listed.trusted.len(), 2);
}

#[tokio::test]
async fn prune_always_keeps_the_newest_even_with_rules_that_keep_nothing_newer() {
    let store = new_store();
    let mut ids = Vec::new();
    for (i, time) in ["2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z", "2026-03-01T00:00:00Z"]
        .into_iter()
        .enumerate()
    {
        ids.push(backup_at(&store, time, &data(10, i as u32), 1000).await.id);
    }
    let listed = listing(&store).await;
    let monthly = KeepPolicy {
        monthly: 1,
        ..KeepPolicy::default()
    };
    let plan = prune::plan(&listed, DEST, &monthly, Utc::now(), Duration::hours(1));
    let kept: Vec<&str> = plan.keep.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(kept, vec![ids[2].as_str()]);
    let removed: Vec<&str> = plan.remove.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(removed, vec![ids[1].as_str(), ids[0].as_str()]);
}
