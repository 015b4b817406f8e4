//! The conformance battery every [`Store`] passes (feature `testing`).
//!
//! Each case is a plain `async fn(store, prefix)`; [`crate::store_conformance!`]
//! makes one `#[tokio::test]` per case so that each failure has its own name.
//! Every case works under a fresh random `prefix`, so the battery can run
//! against a shared, long-lived store without wiping it.

use bytes::Bytes;
use futures::TryStreamExt;
use rand::Rng;

use crate::error::Error;
use crate::store::{Store, StoreExt};

/// A fresh random prefix for one test run: `conformance-1a2b3c4d`.
pub fn fresh_prefix() -> String {
    format!("conformance-{:08x}", rand::thread_rng().gen::<u32>())
}

/// `put` then `get` gives the same bytes, also for an empty object.
pub async fn put_get_round_trip(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/a/data-000001.zst.gpg");
    let data = Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    store.put(&key, data.clone()).await.unwrap();
    assert_eq!(store.get_bytes(&key, u64::MAX).await.unwrap(), data);
    let empty = format!("{prefix}/a/empty");
    store.put(&empty, Bytes::new()).await.unwrap();
    assert_eq!(store.get_bytes(&empty, u64::MAX).await.unwrap(), Bytes::new());
}

/// `put_if_absent` creates once and leaves an existing object alone.
pub async fn put_if_absent_creates_once(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/lease");
    assert!(store.put_if_absent(&key, Bytes::from_static(b"first")).await.unwrap());
    assert!(!store.put_if_absent(&key, Bytes::from_static(b"second")).await.unwrap());
    assert_eq!(
        store.get_bytes(&key, u64::MAX).await.unwrap(),
        Bytes::from_static(b"first")
    );
    store.delete(&key).await.unwrap();
    assert!(store.put_if_absent(&key, Bytes::from_static(b"third")).await.unwrap());
}

/// `put` replaces an existing object whole.
pub async fn put_replaces(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/replace");
    store
        .put(&key, Bytes::from_static(b"first, longer value"))
        .await
        .unwrap();
    store.put(&key, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(
        store.get_bytes(&key, u64::MAX).await.unwrap(),
        Bytes::from_static(b"second")
    );
}

/// `get` of a missing key is `NotFound` naming the key.
pub async fn get_missing_is_not_found(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/missing");
    match store.get(&key).await {
        Err(Error::NotFound { key: k }) => assert!(k.contains("missing"), "{k}"),
        Err(other) => panic!("expected NotFound, got {other}"),
        Ok(_) => panic!("expected NotFound, got an object"),
    }
    assert!(!store.exists(&key).await.unwrap());
}

/// `list` is recursive, sorted, limited to the folder, with sizes.
pub async fn list_is_recursive_sorted_and_scoped(store: &dyn Store, prefix: &str) {
    for key in ["b/2", "a/1", "a/x/3", "ab/4"] {
        store
            .put(&format!("{prefix}/{key}"), Bytes::from(key.to_owned()))
            .await
            .unwrap();
    }
    let keys = |objects: Vec<crate::store::ObjectMeta>| {
        objects
            .into_iter()
            .map(|o| (o.key[prefix.len() + 1..].to_owned(), o.size))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.list(prefix).await.unwrap()),
        vec![
            ("a/1".into(), 3),
            ("a/x/3".into(), 5),
            ("ab/4".into(), 4),
            ("b/2".into(), 3)
        ]
    );
    // `a` is a folder: `ab/4` is not under it.
    assert_eq!(
        keys(store.list(&format!("{prefix}/a")).await.unwrap()),
        vec![("a/1".into(), 3), ("a/x/3".into(), 5)]
    );
    assert!(store.list(&format!("{prefix}/nothing")).await.unwrap().is_empty());
}

/// `list` returns every object, past any page size a backend uses.
pub async fn list_is_complete_for_many_objects(store: &dyn Store, prefix: &str) {
    let n = 1_050;
    futures::stream::iter(0..n)
        .map(|i| async move {
            store
                .put(&format!("{prefix}/many/{i:05}"), Bytes::from_static(b"x"))
                .await
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let listed = store.list(&format!("{prefix}/many")).await.unwrap();
    assert_eq!(listed.len(), n);
    assert!(listed.windows(2).all(|w| w[0].key < w[1].key));
}

/// `delete` removes; deleting a missing key is `Ok`.
pub async fn delete_is_idempotent(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/gone");
    store.put(&key, Bytes::from_static(b"x")).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(!store.exists(&key).await.unwrap());
    store.delete(&key).await.unwrap();
    assert!(store.list(prefix).await.unwrap().is_empty());
}

/// `sweep` keeps every complete object.
pub async fn sweep_keeps_objects(store: &dyn Store, prefix: &str) {
    store
        .put(&format!("{prefix}/id/data-000001.zst.gpg"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    store
        .put(&format!("{prefix}/id/manifest.json"), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    store.sweep(prefix, future).await.unwrap();
    assert_eq!(store.list(prefix).await.unwrap().len(), 2);
}

/// Malformed keys are refused, never written somewhere unexpected.
pub async fn bad_keys_are_refused(store: &dyn Store, prefix: &str) {
    for bad in [
        format!("{prefix}/../escape"),
        format!("/{prefix}/abs"),
        format!("{prefix}//x"),
    ] {
        assert!(
            store.put(&bad, Bytes::from_static(b"x")).await.is_err(),
            "{bad} accepted"
        );
    }
}

/// `head` reports an object's size without reading it; a missing one is NotFound.
pub async fn head_reports_size(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/h/data-000001.zst.gpg");
    store.put(&key, Bytes::from_static(b"12345")).await.unwrap();
    let meta = store.head(&key).await.unwrap();
    assert_eq!((meta.key.as_str(), meta.size), (key.as_str(), 5));
    assert!(store.exists(&key).await.unwrap());
    let missing = format!("{prefix}/h/missing");
    assert!(matches!(store.head(&missing).await, Err(Error::NotFound { .. })));
    assert!(!store.exists(&missing).await.unwrap());
}

/// A put cancelled part-way (its future dropped, as when a run is killed
/// between polls) leaves either nothing or the whole object at the key — never
/// a partial one — and a later sweep removes whatever debris it left while
/// the previous object at the key stays intact.
pub async fn interrupted_put_leaves_no_partial_object(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/i/data-000001.zst.gpg");
    store.put(&key, Bytes::from_static(b"previous")).await.unwrap();
    let mut data = vec![0u8; 8 * 1024 * 1024];
    rand::thread_rng().fill(&mut data[..]);
    let data = Bytes::from(data);
    for polls in [1usize, 2, 5, 20] {
        let mut put = store.put(&key, data.clone());
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        for _ in 0..polls {
            if put.as_mut().poll(&mut cx).is_ready() {
                break;
            }
        }
        drop(put);
        let got = store.get_bytes(&key, u64::MAX).await.unwrap();
        assert!(
            got == Bytes::from_static(b"previous") || got == data,
            "a cancelled put left {} bytes at the key",
            got.len()
        );
    }
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    store.sweep(prefix, future).await.unwrap();
    let listed: Vec<String> = store.list(prefix).await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(listed, vec![key.clone()], "sweep left debris or removed the object");
}

/// A large object (several MiB) round-trips intact.
pub async fn large_object_round_trip(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}/large");
    let mut data = vec![0u8; 12 * 1024 * 1024 + 17];
    rand::thread_rng().fill(&mut data[..]);
    let data = Bytes::from(data);
    store.put(&key, data.clone()).await.unwrap();
    let got = store.get_bytes(&key, u64::MAX).await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "large object differs after round trip");
}

use futures::StreamExt;

/// Runs every case against `store`, each under its own fresh prefix: for
/// checking a live backend from a service's own test or health check.
pub async fn run_all(store: &dyn Store) {
    put_get_round_trip(store, &fresh_prefix()).await;
    put_replaces(store, &fresh_prefix()).await;
    put_if_absent_creates_once(store, &fresh_prefix()).await;
    get_missing_is_not_found(store, &fresh_prefix()).await;
    head_reports_size(store, &fresh_prefix()).await;
    list_is_recursive_sorted_and_scoped(store, &fresh_prefix()).await;
    list_is_complete_for_many_objects(store, &fresh_prefix()).await;
    delete_is_idempotent(store, &fresh_prefix()).await;
    sweep_keeps_objects(store, &fresh_prefix()).await;
    bad_keys_are_refused(store, &fresh_prefix()).await;
    large_object_round_trip(store, &fresh_prefix()).await;
    interrupted_put_leaves_no_partial_object(store, &fresh_prefix()).await;
}

/// Makes one `#[tokio::test]` per conformance case. `$make` is an async
/// expression, evaluated anew for each case, returning something that derefs to
/// a `Store` (a `Box`, or a guard that also owns the store's temporary folder or
/// server).
///
/// ```text
/// backup_core::store_conformance!(async { Box::new(MemoryStore::new()) });
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            put_get_round_trip, put_replaces, put_if_absent_creates_once, get_missing_is_not_found,
            list_is_recursive_sorted_and_scoped, list_is_complete_for_many_objects,
            delete_is_idempotent, sweep_keeps_objects, bad_keys_are_refused, large_object_round_trip,
            head_reports_size, interrupted_put_leaves_no_partial_object);
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                let prefix = $crate::testing::fresh_prefix();
                $crate::testing::$case(&*store, &prefix).await;
            }
        )*
    };
}

/// A [`crate::Source`] that yields given bytes in pieces of given sizes, and
/// optionally fails after them — for pipeline tests.
#[derive(Debug, Clone)]
pub struct BytesSource {
    /// The plaintext.
    pub data: Bytes,
    /// Sizes of the pieces the stream yields (cycled); empty means one piece.
    pub piece_sizes: Vec<usize>,
    /// Fail with this message after the data instead of ending cleanly.
    pub fail_with: Option<String>,
}

impl BytesSource {
    /// A source of `data` in one piece.
    pub fn new(data: impl Into<Bytes>) -> Self {
        BytesSource {
            data: data.into(),
            piece_sizes: Vec::new(),
            fail_with: None,
        }
    }
}

#[async_trait::async_trait]
impl crate::Source for BytesSource {
    fn kind(&self) -> &str {
        "bytes"
    }

    async fn open(&self) -> crate::Result<crate::SourceOutput> {
        let mut pieces = Vec::new();
        let mut rest = self.data.clone();
        let sizes = if self.piece_sizes.is_empty() {
            vec![rest.len().max(1)]
        } else {
            self.piece_sizes.clone()
        };
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            pieces.push(Ok(rest.split_to((*size).clamp(1, rest.len()))));
        }
        if let Some(reason) = &self.fail_with {
            pieces.push(Err(Error::source_failed("bytes", reason.clone())));
        }
        let details = crate::SourceDetails::default();
        details.set("length", self.data.len() as u64);
        Ok(crate::SourceOutput::single(
            futures::stream::iter(pieces).boxed(),
            details,
        ))
    }
}

/// Keys for tests and examples, generated once per process: an encryption
/// key pair (passphrase `secret`) and a signing key, with the matching trust.
#[derive(Debug)]
pub struct TestKeys {
    /// Encrypts to the test key.
    pub encryptor: std::sync::Arc<crate::PgpEncryptor>,
    /// Decrypts with the test key.
    pub decryptor: std::sync::Arc<crate::PgpDecryptor>,
    /// Signs manifests.
    pub signer: crate::ManifestSigner,
    /// Trusts the signer only.
    pub trust: crate::Trust,
    /// The encryption key pair, armored.
    pub key: crate::GeneratedKey,
    /// The signing key pair, armored.
    pub signing_key: crate::GeneratedKey,
}

/// The process-wide [`TestKeys`].
///
/// # Panics
/// When key generation fails (a test failure).
pub fn test_keys() -> &'static TestKeys {
    static KEYS: std::sync::OnceLock<TestKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let label = std::path::Path::new("test-key");
        let key = crate::generate_key("Test <test@example.org>", Some("secret")).expect("generate key");
        let signing_key = crate::generate_signing_key("Test signer <test@example.org>", None).expect("signing key");
        let signer =
            crate::ManifestSigner::from_bytes(label, signing_key.secret_armored.as_bytes(), "").expect("signer");
        TestKeys {
            encryptor: std::sync::Arc::new(
                crate::PgpEncryptor::from_armored([(label, key.public_armored.as_bytes())]).expect("encryptor"),
            ),
            decryptor: std::sync::Arc::new(
                crate::PgpDecryptor::from_armored(label, key.secret_armored.as_bytes(), "secret").expect("decryptor"),
            ),
            trust: crate::Trust::new(crate::TrustedSigners::from_keys(vec![signer.public_key()])),
            signer,
            key,
            signing_key,
        }
    })
}
