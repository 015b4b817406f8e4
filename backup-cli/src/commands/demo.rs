//! `demo`: the whole job on embedded defaults, in a throwaway workspace.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::workspace::Workspace;

/// Scaffolds a demo workspace, backs up its sample folder, lists, verifies,
/// restores, compares the restored tree with the original, and says where
/// everything is.
///
/// # Errors
/// Any step's error; the workspace is kept for inspection.
pub async fn run(dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = match dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("backupapps-demo-")
            .tempdir()
            .context("cannot create a folder for the demo")?
            .keep(),
    };
    println!("== 1. workspace, key pair and sample data in {}", dir.display());
    super::init::scaffold(&dir, true)?;
    let ws = Workspace::load(&dir)?;
    let target = "sample/files".to_owned();
    let profile = ws.select(std::slice::from_ref(&target))?[0];

    println!("\n== 2. backup (tar → zstd → OpenPGP, chunked, manifest last)");
    let manifest = super::backup::backup_profile(&ws, profile, None, None).await?;
    println!(
        "backup {}: {} read, {} stored in {}",
        manifest.id,
        crate::output::human_size(manifest.plaintext_size),
        crate::output::human_size(manifest.stored_size),
        crate::output::count(manifest.chunks.len(), "chunk")
    );

    println!("\n== 3. list");
    super::list::run(&ws, std::slice::from_ref(&target), false, false).await?;

    println!("\n== 4. verify (signature, download, check SHA-256, decrypt, read the archive)");
    let code = super::verify::run(&ws, std::slice::from_ref(&target), false, false).await?;
    if code != ExitCode::SUCCESS {
        bail!("the demo backup did not verify");
    }

    println!("\n== 5. restore and compare");
    let restored = dir.join("restore/sample/files").join(&manifest.id);
    let dest = crate::kinds::Destination {
        to: Some(restored.clone()),
        to_db: None,
        replace: false,
        preserve_owners: false,
        db: Default::default(),
        to_command: false,
        files: Default::default(),
    };
    super::restore::run(&ws, &target, Some(&manifest.id), None, dest, false).await?;
    let original = dir.join("sample-data");
    let landed = restored.join(original.strip_prefix("/").unwrap_or(&original));
    let compared = compare_trees(&original, &landed)?;
    println!("restored tree equals the original: {compared} entries (content, modes, mtimes, symlinks); *.tmp excluded as configured");

    let folder = dir.join("store").join(profile.dest_prefix()).join(&manifest.id);
    println!("\n== where everything is");
    println!("  workspace   {}", dir.display());
    println!(
        "  config      {}/backupapps.toml, {}/apps/sample/files.toml",
        dir.display(),
        dir.display()
    );
    println!(
        "  keys        {}/secrets/ (backup.pub.asc, backup.sec.asc, backup.pass, signing.sec.asc, signing.pub.asc)",
        dir.display()
    );
    println!("  backup      {}", folder.display());
    println!("  restored    {}", landed.display());
    println!("\nwithout backupapps, with stock tools:");
    println!(
        "  gpg --import {}/secrets/signing.pub.asc {}/secrets/backup.sec.asc   # passphrase in secrets/backup.pass",
        dir.display(),
        dir.display()
    );
    println!(
        "  cd {} && gpg --verify manifest.json.sig manifest.json && sha256sum -c <(jq -r '.chunks[] | \"\\(.sha256)  \\(.name)\"' manifest.json)",
        folder.display()
    );
    println!(
        "  cd {} && for c in data-*.zst.gpg; do gpg --decrypt \"$c\"; done | zstd -d | tar -x -C /tmp/out",
        folder.display()
    );
    println!(
        "\ntry more: backupapps --home {} list | verify | restore sample/files --to DIR",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Compares two trees (content, mode, mtime, symlink targets), leaving out
/// `*.tmp` on the original side; returns how many entries matched.
fn compare_trees(original: &Path, restored: &Path) -> Result<usize> {
    let list = |root: &Path, skip_tmp: bool| -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
                let path = e.with_context(|| dir.display().to_string())?.path();
                if skip_tmp && path.extension().is_some_and(|x| x == "tmp") {
                    continue;
                }
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path.clone());
                }
                out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
        out.sort();
        Ok(out)
    };
    let (a, b) = (list(original, true)?, list(restored, false)?);
    if a != b {
        bail!("restored entries differ from the original: {a:?} vs {b:?}");
    }
    for rel in &a {
        let (pa, pb) = (original.join(rel), restored.join(rel));
        let (ma, mb) = (fs::symlink_metadata(&pa)?, fs::symlink_metadata(&pb)?);
        let same = ma.mode() == mb.mode()
            && (ma.is_dir() || (ma.mtime(), ma.mtime_nsec()) == (mb.mtime(), mb.mtime_nsec()))
            && if ma.is_symlink() {
                fs::read_link(&pa)? == fs::read_link(&pb)?
            } else if ma.is_file() {
                fs::read(&pa)? == fs::read(&pb)?
            } else {
                true
            };
        if !same {
            bail!("{} differs after restore", rel.display());
        }
    }
    Ok(a.len())
}
