//! A custom `Source`: an application's export stream, backed up like any other.
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::{generate_key, generate_signing_key, run_backup, BackupOptions, DynStore, ManifestSigner};
use backup_core::{MemoryStore, PgpEncryptor, Result, Source, SourceDetails, SourceOutput};
use bytes::Bytes;
use futures::stream::{self, StreamExt};

/// Exports `rows` lines of CSV, as an application's own dump command would.
struct CsvExport {
    rows: u64,
}

#[async_trait]
impl Source for CsvExport {
    fn kind(&self) -> &str {
        "csv-export"
    }

    async fn open(&self) -> Result<SourceOutput> {
        let details = SourceDetails::default();
        details.set("rows", self.rows);
        let lines = stream::iter(0..self.rows).map(|i| Ok(Bytes::from(format!("{i},customer-{i},{}\n", i * 3))));
        Ok(SourceOutput::single(lines.boxed(), details))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let key = generate_key("Exports <exports@example.org>", None)?;
    let encryptor = Arc::new(PgpEncryptor::from_armored([(
        Path::new("pub"),
        key.public_armored.as_bytes(),
    )])?);
    let signing = generate_signing_key("Exports signer <exports@example.org>", None)?;
    let signer = ManifestSigner::from_bytes(Path::new("sign"), signing.secret_armored.as_bytes(), "")?;
    let store: DynStore = Arc::new(MemoryStore::new());
    let options = BackupOptions::new("crm", "export", "crm/export");
    let manifest = run_backup(&store, &CsvExport { rows: 50_000 }, encryptor, &signer, &options).await?;
    println!(
        "{} rows, {} bytes, stored as {} bytes",
        manifest.source["rows"], manifest.plaintext_size, manifest.stored_size
    );
    Ok(())
}
