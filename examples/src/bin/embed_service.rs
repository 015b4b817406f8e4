//! A service backs up a folder to a file store and restores it, from code.
use std::{path::Path, sync::Arc};

use backup_core::{generate_key, list_backups, restore_stream, run_backup, BackupOptions};
use backup_core::{PgpDecryptor, PgpEncryptor, Store};
use backup_files::{restore_to_dir, FilesConfig, FilesSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("uploads");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("invoice.pdf"), b"%PDF-1.7 ...")?;

    let key = generate_key("My Service <ops@example.org>", Some("s3cret"))?;
    let public = [(Path::new("pub"), key.public_armored.as_bytes())];
    let encryptor = Arc::new(PgpEncryptor::from_armored(public)?);
    let store: Arc<dyn Store> = Arc::new(backup_fs::FsStore::new(dir.path().join("store"))?);
    let config = FilesConfig {
        paths: vec![data],
        exclude: vec![],
        on_unreadable: Default::default(),
    };
    let source = FilesSource::new(&config, dir.path())?;
    let options = BackupOptions::new("myservice", "uploads", "myservice/uploads");
    let manifest = run_backup(store.clone(), &source, encryptor, &options).await?;
    println!("backed up {} bytes as {}", manifest.plaintext_size, manifest.id);

    let listing = list_backups(&store, "myservice/uploads").await?;
    let newest = &listing.newest().ok_or("no backup listed")?.manifest;
    let secret = key.secret_armored.as_bytes();
    let decryptor = Arc::new(PgpDecryptor::from_armored(Path::new("sec"), secret, "s3cret")?);
    let target = dir.path().join("restored");
    let stream = restore_stream(store, decryptor, newest, "data", 2);
    let summary = restore_to_dir(stream, &target, &newest.id).await?;
    println!("restored {} file(s) into {}", summary.files, target.display());
    Ok(())
}
