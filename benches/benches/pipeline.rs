//! Pipeline throughput: backup (chunk → zstd → OpenPGP → SHA-256 → memory
//! store) and restore, on half-compressible data.

use std::path::Path;
use std::sync::Arc;

use backup_core::testing::{test_keys, BytesSource};
use backup_core::{
    generate_key, list_backups, restore_stream, run_backup, BackupOptions, DynStore, MemoryStore, PgpDecryptor,
    PgpEncryptor, Pick, ProfileRef,
};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::TryStreamExt;
use rand::{Rng, SeedableRng};

/// Half random bytes, half repetitive text: like an application folder.
fn sample(size: usize) -> Bytes {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut data = vec![0u8; size];
    rng.fill(&mut data[..size / 2]);
    let text = b"2026-11-27T02:01:00Z INFO request served path=/api/items status=200 ms=12\n";
    for (i, b) in data[size / 2..].iter_mut().enumerate() {
        *b = text[i % text.len()];
    }
    Bytes::from(data)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = generate_key("Bench <b@example.org>", None).unwrap();
    let enc = Arc::new(PgpEncryptor::from_armored([(Path::new("pub"), key.public_armored.as_bytes())]).unwrap());
    let dec = Arc::new(PgpDecryptor::from_armored(Path::new("sec"), key.secret_armored.as_bytes(), "").unwrap());
    let size = 64 << 20;
    let data = sample(size);
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(size as u64)).sample_size(10);
    for chunk_mib in [4usize, 16] {
        let options = BackupOptions::new("bench", "p", "bench/p").with_chunk_size(chunk_mib << 20);
        let signer = &test_keys().signer;
        group.bench_with_input(
            BenchmarkId::new("backup", format!("{chunk_mib}MiB-chunks")),
            &options,
            |b, options| {
                b.to_async(&rt).iter(|| async {
                    let store: DynStore = Arc::new(MemoryStore::new());
                    let source = BytesSource {
                        data: data.clone(),
                        piece_sizes: vec![1 << 20],
                        fail_with: None,
                    };
                    run_backup(&store, &source, enc.clone(), signer, options).await.unwrap()
                })
            },
        );
        let store: DynStore = Arc::new(MemoryStore::new());
        let source = BytesSource {
            data: data.clone(),
            piece_sizes: vec![1 << 20],
            fail_with: None,
        };
        rt.block_on(run_backup(&store, &source, enc.clone(), signer, &options))
            .unwrap();
        let listing = rt
            .block_on(list_backups(
                &store,
                &ProfileRef::new("bench", "p", "bench/p"),
                &test_keys().trust,
            ))
            .unwrap();
        let entry = listing.pick(Pick::Newest).unwrap().clone();
        group.bench_with_input(
            BenchmarkId::new("restore", format!("{chunk_mib}MiB-chunks")),
            &entry,
            |b, entry| {
                b.to_async(&rt).iter(|| async {
                    restore_stream(&store, dec.clone(), entry, "data", 2)
                        .unwrap()
                        .try_fold(0usize, |n, b| async move { Ok(n + b.len()) })
                        .await
                        .unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
