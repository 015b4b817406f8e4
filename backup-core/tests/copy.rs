//! `copy_backups`: trusted backups from one store to another, checked,
//! idempotent, resumable; nothing untrusted or tampered with lands.

use std::sync::Arc;
use std::time::Duration;

use backup_core::lease::{self, PROFILE_LEASE};
use backup_core::testing::{test_keys, BytesSource};
use backup_core::{
    copy_backups, generate_signing_key, list_backups, restore_to_writer, run_backup, BackupOptions, CopyOptions,
    CopyStatus, DynStore, Error, Listing, ManifestSigner, MemoryStore, Pick, ProfileRef, Selection, StoreExt,
    DATA_STREAM,
};
use bytes::Bytes;

const DEST: &str = "app/db";

fn profile() -> ProfileRef {
    ProfileRef::new("app", "db", DEST)
}

fn data(day: u8) -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8 ^ day).collect()
}

/// Three backups of app/db (several chunks each) in a memory store.
async fn timeline() -> DynStore {
    let store: DynStore = Arc::new(MemoryStore::new());
    for day in 1..=3u8 {
        let time = format!("2026-11-0{day}T02:00:00Z").parse().unwrap();
        backup(&store, &test_keys().signer, day, time).await;
    }
    store
}

async fn backup(store: &DynStore, signer: &ManifestSigner, day: u8, time: chrono::DateTime<chrono::Utc>) -> String {
    let options = BackupOptions::new("app", "db", DEST)
        .with_time(time)
        .with_chunk_size(64 * 1024);
    let source = BytesSource::new(data(day));
    run_backup(store, &source, test_keys().encryptor.clone(), signer, &options)
        .await
        .unwrap()
        .id
}

async fn listing(store: &DynStore) -> Listing {
    list_backups(store, &profile(), &test_keys().trust).await.unwrap()
}

async fn copy(from: &DynStore, to: &DynStore, selection: Selection<'_>) -> backup_core::CopyReport {
    let listing = listing(from).await;
    copy_backups(
        from,
        to,
        &listing,
        DEST,
        &test_keys().trust,
        selection,
        &CopyOptions::new().with_parallelism(2),
    )
    .await
    .unwrap()
}

/// Every object of the profile's backups (leases excluded), with its bytes.
async fn objects(store: &DynStore) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for o in store.list(DEST).await.unwrap() {
        if !o.key.contains("/locks/") {
            out.push((o.key.clone(), store.get_bytes(&o.key, 1 << 30).await.unwrap()));
        }
    }
    out
}

async fn restored(store: &DynStore, id: &str) -> Vec<u8> {
    let listing = listing(store).await;
    let entry = listing.pick(Pick::Id(id)).unwrap();
    let mut out = Vec::new();
    restore_to_writer(
        store,
        test_keys().decryptor.clone(),
        entry,
        DATA_STREAM,
        &mut out,
        "out".as_ref(),
    )
    .await
    .unwrap();
    out
}

#[tokio::test]
async fn a_timeline_is_copied_byte_for_byte_and_a_rerun_sends_nothing() {
    let from = timeline().await;
    let to: DynStore = Arc::new(MemoryStore::new());
    let report = copy(&from, &to, Selection::All).await;
    assert_eq!(report.backups.len(), 3);
    assert!(
        report.backups.iter().all(|b| b.status == CopyStatus::Copied),
        "{report:?}"
    );
    assert!(report.backups.iter().all(|b| b.bytes_sent > 0 && b.objects_sent > 2));
    assert_eq!(
        objects(&from).await,
        objects(&to).await,
        "identical objects, nothing else"
    );
    assert!(!to.exists("app/db/locks/profile.json").await.unwrap(), "lease released");
    let copied = listing(&to).await;
    assert_eq!(copied.trusted.len(), 3);
    assert!(copied.untrusted.is_empty() && copied.incomplete.is_empty());
    for (day, entry) in (1..=3u8).zip(&copied.trusted) {
        assert_eq!(restored(&to, &entry.manifest.id).await, data(day));
    }

    let again = copy(&from, &to, Selection::All).await;
    assert!(
        again
            .backups
            .iter()
            .all(|b| b.status == CopyStatus::Skipped && b.bytes_sent == 0 && b.objects_sent == 0),
        "{again:?}"
    );
}

#[tokio::test]
async fn an_interrupted_copy_resumes_and_replaces_a_damaged_leftover() {
    let from = timeline().await;
    let to: DynStore = Arc::new(MemoryStore::new());
    let newest = listing(&from).await.newest().unwrap().manifest.clone();
    let folder = format!("{DEST}/{}", newest.id);
    // What a killed copy leaves: some chunks, no manifest; one of them has
    // the right size but wrong bytes.
    let first = &newest.chunks[0];
    let key = format!("{folder}/{}", first.name);
    to.put(&key, from.get_bytes(&key, 1 << 30).await.unwrap())
        .await
        .unwrap();
    let second = &newest.chunks[1];
    let key2 = format!("{folder}/{}", second.name);
    to.put(&key2, Bytes::from(vec![0u8; second.size as usize]))
        .await
        .unwrap();
    assert!(listing(&to).await.trusted.is_empty());

    let report = copy(&from, &to, Selection::Newest(1)).await;
    let outcome = &report.backups[0];
    assert_eq!(
        (outcome.status, outcome.objects_present),
        (CopyStatus::Copied, 1),
        "{report:?}"
    );
    assert_eq!(outcome.objects_sent, newest.chunks.len() - 1 + 2);
    assert_eq!(
        to.get_bytes(&key2, 1 << 30).await.unwrap(),
        from.get_bytes(&key2, 1 << 30).await.unwrap()
    );
    assert_eq!(restored(&to, &newest.id).await, data(3));
}

#[tokio::test]
async fn tampered_and_forged_backups_are_not_copied() {
    let from = timeline().await;
    let to: DynStore = Arc::new(MemoryStore::new());
    let entries = listing(&from).await.trusted;
    // The middle backup: a chunk replaced by bytes of the same size.
    let tampered = &entries[1].manifest;
    let last = tampered.chunks.last().unwrap();
    let key = format!("{DEST}/{}/{}", tampered.id, last.name);
    to_garbage(&from, &key, last.size).await;
    // A backup signed by a key nobody trusts.
    let mallory = generate_signing_key("Mallory <m@example.org>", None).unwrap();
    let mallory = ManifestSigner::from_bytes("m".as_ref(), mallory.secret_armored.as_bytes(), "").unwrap();
    let forged = backup(&from, &mallory, 9, "2026-11-04T02:00:00Z".parse().unwrap()).await;

    let report = copy(&from, &to, Selection::All).await;
    let status: Vec<(&str, CopyStatus)> = report.backups.iter().map(|b| (b.id.as_str(), b.status)).collect();
    assert_eq!(
        status,
        [
            (entries[0].manifest.id.as_str(), CopyStatus::Copied),
            (tampered.id.as_str(), CopyStatus::Failed),
            (entries[2].manifest.id.as_str(), CopyStatus::Copied),
            (forged.as_str(), CopyStatus::Failed),
        ]
    );
    assert!(report.has_failures());
    let why = |id: &str| {
        report
            .backups
            .iter()
            .find(|b| b.id == id)
            .unwrap()
            .reason
            .clone()
            .unwrap()
    };
    assert!(why(&tampered.id).contains(&last.name), "{}", why(&tampered.id));
    assert!(why(&forged).contains("not trusted"), "{}", why(&forged));
    // Nothing of either is at the destination: the partial copy of the
    // tampered one was removed again.
    for o in to.list(DEST).await.unwrap() {
        assert!(
            !o.key.contains(&tampered.id) && !o.key.contains(&forged),
            "{} left at the destination",
            o.key
        );
    }
    let copied = listing(&to).await;
    assert_eq!(copied.trusted.len(), 2);
    assert!(copied.incomplete.is_empty() && copied.untrusted.is_empty());
}

async fn to_garbage(store: &DynStore, key: &str, size: u64) {
    store.put(key, Bytes::from(vec![7u8; size as usize])).await.unwrap();
}

#[tokio::test]
async fn a_different_manifest_at_the_destination_is_left_alone() {
    let from = timeline().await;
    let to: DynStore = Arc::new(MemoryStore::new());
    let newest = listing(&from).await.newest().unwrap().manifest.id.clone();
    let key = format!("{DEST}/{newest}/manifest.json");
    to.put(&key, Bytes::from_static(b"{\"forged\": true}")).await.unwrap();
    let report = copy(&from, &to, Selection::Id(&newest[..18])).await;
    assert_eq!(report.backups.len(), 1);
    assert_eq!(report.backups[0].status, CopyStatus::Failed);
    assert!(report.backups[0]
        .reason
        .as_ref()
        .unwrap()
        .contains("different manifest.json"));
    assert_eq!(
        to.get_bytes(&key, 1024).await.unwrap(),
        Bytes::from_static(b"{\"forged\": true}")
    );
}

#[tokio::test]
async fn a_held_destination_lease_stops_the_copy() {
    let from = timeline().await;
    let to: DynStore = Arc::new(MemoryStore::new());
    let held = lease::acquire(&to, DEST, PROFILE_LEASE, Duration::from_secs(60))
        .await
        .unwrap();
    let listing = listing(&from).await;
    let err = copy_backups(
        &from,
        &to,
        &listing,
        DEST,
        &test_keys().trust,
        Selection::All,
        &CopyOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert!(
        listing_of(&to).await.is_empty(),
        "nothing copied under someone else's lease"
    );
    held.release().await;
}

async fn listing_of(store: &DynStore) -> Vec<String> {
    store
        .list(DEST)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .filter(|k| !k.contains("/locks/"))
        .collect()
}

#[tokio::test]
async fn an_unknown_id_is_an_error() {
    let from = timeline().await;
    let to: DynStore = Arc::new(MemoryStore::new());
    let listing = listing(&from).await;
    let err = copy_backups(
        &from,
        &to,
        &listing,
        DEST,
        &test_keys().trust,
        Selection::Id("20991231T000000Z-0000"),
        &CopyOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NoBackup { .. }), "{err}");
}

/// A source with a second stream beside `data`, as files backups store their index.
#[derive(Debug)]
struct TwoStreams;

#[backup_core::reexports::async_trait]
impl backup_core::Source for TwoStreams {
    fn kind(&self) -> &str {
        "bytes"
    }

    async fn open(&self) -> backup_core::Result<backup_core::SourceOutput> {
        use futures::StreamExt;
        let stream = |bytes: Vec<u8>| futures::stream::iter([Ok(Bytes::from(bytes))]).boxed();
        let mut output = backup_core::SourceOutput::single(stream(data(1)), Default::default());
        output.streams.push(("index".to_owned(), stream(data(2))));
        Ok(output)
    }
}

#[tokio::test]
async fn every_stream_of_the_manifest_is_copied() {
    let from: DynStore = Arc::new(MemoryStore::new());
    let options = BackupOptions::new("app", "db", DEST).with_chunk_size(64 * 1024);
    run_backup(
        &from,
        &TwoStreams,
        test_keys().encryptor.clone(),
        &test_keys().signer,
        &options,
    )
    .await
    .unwrap();
    let to: DynStore = Arc::new(MemoryStore::new());
    let report = copy(&from, &to, Selection::All).await;
    assert_eq!(report.backups[0].status, CopyStatus::Copied, "{report:?}");
    assert_eq!(objects(&from).await, objects(&to).await);
    let listing = listing(&to).await;
    let entry = listing.newest().unwrap();
    assert_eq!(entry.manifest.streams(), ["data", "index"]);
    let mut index = Vec::new();
    restore_to_writer(
        &to,
        test_keys().decryptor.clone(),
        entry,
        "index",
        &mut index,
        "index".as_ref(),
    )
    .await
    .unwrap();
    assert_eq!(index, data(2));
}

#[tokio::test]
async fn a_manifest_swapped_after_the_listing_is_not_copied() {
    let from = timeline().await;
    let to: DynStore = Arc::new(MemoryStore::new());
    let listing = listing(&from).await;
    // Between the listing and the copy, a store writer re-pretties the
    // newest manifest: same content, other bytes, signature no longer valid.
    let newest = listing.newest().unwrap().manifest.id.clone();
    let key = format!("{DEST}/{newest}/manifest.json");
    let mut bytes = from.get_bytes(&key, 1 << 20).await.unwrap().to_vec();
    bytes.push(b'\n');
    from.put(&key, Bytes::from(bytes)).await.unwrap();
    let report = copy_backups(
        &from,
        &to,
        &listing,
        DEST,
        &test_keys().trust,
        Selection::Newest(1),
        &CopyOptions::new(),
    )
    .await
    .unwrap();
    let outcome = &report.backups[0];
    assert_eq!(outcome.status, CopyStatus::Failed, "{report:?}");
    assert!(
        outcome.reason.as_ref().unwrap().contains("changed in the source store"),
        "{report:?}"
    );
    assert!(listing_of(&to).await.is_empty(), "nothing of it was written");
}
