//! Pipeline throughput: backup (chunk → zstd → OpenPGP → SHA-256 → memory
//! store) and restore, on half-compressible data.

use std::path::Path;
use std::sync::Arc;

use backup_core::testing::BytesSource;
use backup_core::{
    generate_key, restore_stream, run_backup, BackupOptions, MemoryStore, PgpDecryptor, PgpEncryptor, Store,
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
        let mut options = BackupOptions::new("bench", "p", "bench/p");
        options.chunk_size = chunk_mib << 20;
        group.bench_with_input(
            BenchmarkId::new("backup", format!("{chunk_mib}MiB-chunks")),
            &options,
            |b, options| {
                b.to_async(&rt).iter(|| async {
                    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
                    let source = BytesSource {
                        data: data.clone(),
                        piece_sizes: vec![1 << 20],
                        fail_with: None,
                    };
                    run_backup(store, &source, enc.clone(), options).await.unwrap()
                })
            },
        );
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let source = BytesSource {
            data: data.clone(),
            piece_sizes: vec![1 << 20],
            fail_with: None,
        };
        let manifest = rt
            .block_on(run_backup(store.clone(), &source, enc.clone(), &options))
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new("restore", format!("{chunk_mib}MiB-chunks")),
            &manifest,
            |b, m| {
                b.to_async(&rt).iter(|| async {
                    restore_stream(store.clone(), dec.clone(), m, "data", 2)
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
