//! `init [DIR] [--demo]`: scaffold a workspace.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::templates;
use crate::workspace::GLOBAL_FILE;

/// Creates the workspace folders, `backupapps.toml` and the templates; with
/// `demo`, also a key pair and a sample files profile over generated data.
///
/// # Errors
/// Refuses to overwrite an existing `backupapps.toml`; file errors name the path.
pub fn run(dir: &Path, demo: bool) -> Result<()> {
    scaffold(dir, demo)?;
    println!("initialised workspace {}", dir.display());
    // The hints are commands to paste: the folder quoted for the shell.
    let home = shell_quote(&dir.display().to_string());
    let under = |rel: &str| shell_quote(&dir.join(rel).display().to_string());
    if demo {
        println!(
            "  sample profile: apps/sample/files.toml (backs up {})",
            dir.join("sample-data").display()
        );
        println!("  try: backupapps --home {home} backup && backupapps --home {home} list");
    } else {
        println!(
            "  next: backupapps --home {home} keygen --name backup   (the backup key pair and, if none exists, the signing key; or put your own public key in secrets/)"
        );
        println!(
            "        mkdir -p {} && cp {} {}   (then edit it)",
            under("apps/myapp"),
            under("apps/templates/files.toml"),
            under("apps/myapp/files.toml")
        );
    }
    Ok(())
}

/// `text` as one shell word: unchanged when plain, else in single quotes.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ':' | '@' | ','));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Lays out the workspace (see [`run`]).
///
/// # Errors
/// As [`run`].
pub fn scaffold(dir: &Path, demo: bool) -> Result<()> {
    let global = dir.join(GLOBAL_FILE);
    if global.exists() {
        bail!(
            "{} exists already: this folder is a workspace; edit it instead of initialising again",
            global.display()
        );
    }
    let templates = dir.join("apps/templates");
    fs::create_dir_all(&templates).with_context(|| format!("cannot create {}", templates.display()))?;
    // Keys, local copies and restored data: their owner's only.
    for sub in ["secrets", "data", "restore"] {
        let path = dir.join(sub);
        crate::private::create_dirs(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    let abs = std::path::absolute(dir).with_context(|| dir.display().to_string())?;
    let store_url = format!("file://{}", abs.join("store").display());
    write(&global, &templates::GLOBAL.replace("__STORE_URL__", &store_url))?;
    write(&dir.join("apps/templates/files.toml"), templates::FILES)?;
    write(&dir.join("apps/templates/postgres.toml"), templates::POSTGRES)?;
    write(&dir.join("apps/templates/command.toml"), templates::COMMAND)?;
    if demo {
        // Makes secrets/signing.* too.
        super::keygen::run(dir, "backup", None, false, false)?;
        sample_data(&dir.join("sample-data"))?;
        write(
            &dir.join("apps/sample/files.toml"),
            "# A sample files profile made by `backupapps init --demo`.\n\
             kind = \"files\"\n\
             dest_prefix = \"sample/files\"\n\
             paths = [\"sample-data\"]\n\
             exclude = [\"*.tmp\"]\n",
        )?;
    }
    Ok(())
}

/// A small folder with the kinds of entries a real app folder has.
pub fn sample_data(root: &Path) -> Result<()> {
    let files: [(&str, Vec<u8>); 6] = [
        ("README.txt", b"Sample application data made by backupapps.\n".to_vec()),
        ("config/app.conf", b"listen = 127.0.0.1:8080\nworkers = 4\n".to_vec()),
        (
            "media/logo.bin",
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ),
        (
            "media/notes/2026-11.md",
            "# November\n\n- backups: encrypted, compressed, verified\n"
                .repeat(50)
                .into_bytes(),
        ),
        (
            "uploads/report.csv",
            (0..2000)
                .map(|i| format!("{i},{},{}\n", i * 7, i % 13))
                .collect::<String>()
                .into_bytes(),
        ),
        ("cache/session.tmp", b"excluded by the profile".to_vec()),
    ];
    for (name, data) in files {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap_or(root)).with_context(|| path.display().to_string())?;
        fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))?;
    }
    fs::create_dir_all(root.join("uploads/empty")).with_context(|| root.display().to_string())?;
    let link = root.join("current-notes");
    if !link.exists() {
        std::os::unix::fs::symlink("media/notes/2026-11.md", &link).with_context(|| link.display().to_string())?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn folders_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/srv/backupapps"), "/srv/backupapps");
        assert_eq!(shell_quote("my dir"), "'my dir'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
