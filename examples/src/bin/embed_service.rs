//! A service backs up a folder, verifies it without the secret key, applies
//! retention and restores it — through the library API alone.
use std::{path::Path, sync::Arc};

use backup_core::{generate_key, generate_signing_key, list_backups, prune, verify_backup};
use backup_core::{run_backup, BackupOptions, DynStore, KeepPolicy, Pick, ProfileRef, Trust, TrustedSigners};
use backup_core::{ManifestSigner, PgpDecryptor, PgpEncryptor};
use backup_files::{restore_folder, FilesConfig, FilesSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("uploads");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("invoice.pdf"), b"%PDF-1.7 ...")?;

    let key = generate_key("My Service <ops@example.org>", Some("s3cret"))?;
    let encryptor = Arc::new(PgpEncryptor::from_armored([(
        Path::new("pub"),
        key.public_armored.as_bytes(),
    )])?);
    let signing = generate_signing_key("My Service signer <ops@example.org>", None)?;
    let signer = ManifestSigner::from_bytes(Path::new("sign"), signing.secret_armored.as_bytes(), "")?;
    let trust = Trust::new(TrustedSigners::from_keys(vec![signer.public_key()]));
    let store: DynStore = Arc::new(backup_fs::FsStore::new(dir.path().join("store"))?);
    let profile = ProfileRef::new("myservice", "uploads", "myservice/uploads");

    let config = FilesConfig::new(vec![data]);
    let source = FilesSource::new(&config, dir.path())?;
    let options = BackupOptions::new("myservice", "uploads", "myservice/uploads");
    let manifest = run_backup(&store, &source, encryptor, &signer, &options).await?;
    println!("backed up {} bytes as {}", manifest.plaintext_size, manifest.id);

    let listing = list_backups(&store, &profile, &trust).await?;
    let newest = listing.pick(Pick::Newest)?;
    let report = verify_backup(&store, newest, None, None).await?;
    println!("verified {} chunks without the secret key", report.chunks);

    let policy = KeepPolicy::standard();
    let plan = prune::plan(
        &listing,
        "myservice/uploads",
        &policy,
        chrono_now(),
        policy.incomplete_grace,
    );
    prune::apply(&store, &plan, chrono_now(), policy.incomplete_grace).await?;
    println!("retention keeps {}, removes {}", plan.keep.len(), plan.remove.len());

    let secret = key.secret_armored.as_bytes();
    let decryptor = Arc::new(PgpDecryptor::from_armored(Path::new("sec"), secret, "s3cret")?);
    let target = dir.path().join("restored");
    let summary = restore_folder(&store, decryptor, newest, &target, None).await?;
    println!("restored {} file(s) into {}", summary.files, target.display());
    Ok(())
}

fn chrono_now() -> backup_core::reexports::chrono::DateTime<backup_core::reexports::chrono::Utc> {
    backup_core::reexports::chrono::Utc::now()
}
