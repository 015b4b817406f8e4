//! The index reader and range reads over the real pipeline (in-memory store):
//! a second stream made only after the first ended, headers and lines checked,
//! ranges equal to slices of the whole stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use backup_core::index::{open_index, read_range, read_ranges, stream_size, IndexHeader, INDEX_STREAM};
use backup_core::testing::test_keys;
use backup_core::{
    list_backups, run_backup, BackupOptions, ByteStream, CatalogEntry, DynStore, Error, MemoryStore, Pick, ProfileRef,
    Source, SourceDetails, SourceOutput, DATA_STREAM,
};
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};

/// `data` then `index`; the index stream checks it is polled only after the
/// data stream ended.
struct TwoStreams {
    data: Bytes,
    index: Bytes,
}

#[async_trait::async_trait]
impl Source for TwoStreams {
    fn kind(&self) -> &str {
        "bytes"
    }

    async fn open(&self) -> backup_core::Result<SourceOutput> {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let pieces: Vec<_> = self.data.chunks(1000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let data: ByteStream = stream::iter(pieces)
            .chain(stream::once(async move {
                flag.store(true, Ordering::SeqCst);
                Ok(Bytes::new())
            }))
            .boxed();
        let index = self.index.clone();
        let index: ByteStream = stream::once(async move {
            assert!(ended.load(Ordering::SeqCst), "index read before the data ended");
            Ok(index)
        })
        .boxed();
        Ok(SourceOutput {
            streams: vec![(DATA_STREAM.into(), data), (INDEX_STREAM.into(), index)],
            details: SourceDetails::default(),
        })
    }
}

async fn backup(data: &[u8], index: &[u8]) -> (DynStore, CatalogEntry) {
    let store: DynStore = Arc::new(MemoryStore::new());
    let keys = test_keys();
    let source = TwoStreams {
        data: Bytes::copy_from_slice(data),
        index: Bytes::copy_from_slice(index),
    };
    let options = BackupOptions::new("app", "p", "app/p").with_chunk_size(4096);
    let m = run_backup(&store, &source, keys.encryptor.clone(), &keys.signer, &options)
        .await
        .unwrap();
    let listing = list_backups(&store, &ProfileRef::new("app", "p", "app/p"), &keys.trust)
        .await
        .unwrap();
    let entry = listing.pick(Pick::Id(&m.id)).unwrap().clone();
    (store, entry)
}

fn sample(n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect()
}

#[tokio::test]
async fn index_lines_are_read_after_the_header() {
    let mut index = IndexHeader::new("bytes").to_line();
    for i in 0..3000 {
        index.extend_from_slice(format!("{{\"n\":{i}}}\n").as_bytes());
    }
    let (store, entry) = backup(&sample(20_000), &index).await;
    assert!(
        entry.manifest.stream_chunks(INDEX_STREAM).count() > 1,
        "several index chunks"
    );
    let reader = open_index(&store, test_keys().decryptor.clone(), &entry).await.unwrap();
    assert_eq!(reader.header(), &IndexHeader::new("bytes"));
    let lines: Vec<serde_json::Value> = reader.entries().try_collect().await.unwrap();
    assert_eq!(lines.len(), 3000);
    assert_eq!(lines[2999]["n"], 2999);
}

#[tokio::test]
async fn malformed_indexes_are_refused() {
    let long = format!(
        "{}{}\n",
        String::from_utf8(IndexHeader::new("x").to_line()).unwrap(),
        "a".repeat(1 << 21)
    );
    let cases: [(&[u8], &str); 5] = [
        (b"", "header line is missing"),
        (b"not json\n", "not an index header"),
        (br#"{"format":"other","version":1,"kind":"x"}"#, "index format"),
        (
            br#"{"format":"backupapps-index","version":99,"kind":"x"}"#,
            "version 99",
        ),
        (long.as_bytes(), "longer than"),
    ];
    for (index, says) in cases {
        let (store, entry) = backup(b"data", index).await;
        let result = async {
            let mut reader = open_index(&store, test_keys().decryptor.clone(), &entry).await?;
            while reader.next_line().await?.is_some() {}
            Ok::<_, Error>(())
        }
        .await;
        let err = result.expect_err(says);
        assert!(
            matches!(&err, Error::Format { .. }) && err.to_string().contains(says),
            "{says}: {err}"
        );
    }
    // A bad entry line names its number.
    let mut index = IndexHeader::new("x").to_line();
    index.extend_from_slice(b"{\"n\":1}\n[\n");
    let (store, entry) = backup(b"data", &index).await;
    let mut reader = open_index(&store, test_keys().decryptor.clone(), &entry).await.unwrap();
    assert!(reader.next_entry::<serde_json::Value>().await.unwrap().is_some());
    let err = reader.next_entry::<serde_json::Value>().await.unwrap_err();
    assert!(err.to_string().contains("index line 3"), "{err}");
}

#[tokio::test]
async fn ranges_are_slices_of_the_stream() {
    let data = sample(50_000);
    let (store, entry) = backup(&data, &IndexHeader::new("bytes").to_line()).await;
    let d = test_keys().decryptor.clone();
    assert_eq!(stream_size(&entry, DATA_STREAM), 50_000);
    let read = |s: ByteStream| async move { s.try_collect::<Vec<Bytes>>().await.unwrap().concat() };
    for (offset, len) in [(0, 1), (4095, 2), (4096, 4096), (100, 20_000), (49_999, 1), (7, 0)] {
        let got = read(read_range(&store, d.clone(), &entry, DATA_STREAM, offset, Some(len), 2).unwrap()).await;
        assert_eq!(got, &data[offset as usize..(offset + len) as usize], "{offset}+{len}");
    }
    let got = read(read_range(&store, d.clone(), &entry, DATA_STREAM, 45_000, None, 2).unwrap()).await;
    assert_eq!(got, &data[45_000..]);
    let ranges = [10..20, 20..30, 5000..5001, 40_000..41_000];
    let got = read(read_ranges(&store, d.clone(), &entry, DATA_STREAM, &ranges, 2).unwrap()).await;
    let want: Vec<u8> = ranges
        .iter()
        .flat_map(|r| data[r.start as usize..r.end as usize].to_vec())
        .collect();
    assert_eq!(got, want);
    assert!(matches!(
        read_range(&store, d.clone(), &entry, DATA_STREAM, 49_000, Some(2000), 2),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        read_range(&store, d, &entry, "nope", 0, None, 2),
        Err(Error::UnknownStream { .. })
    ));
}
