//! The AWS shared files, `~/.aws/credentials` and `~/.aws/config`: just
//! enough INI to read one profile's keys, region and endpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use backup_core::{Error, Result};

/// One profile's settings, credentials file over config file.
pub(crate) type Profile = BTreeMap<String, String>;

/// Sections of an INI text: `[name]` → lower-case key → value. Comments
/// (`#`, `;`) and nested blocks (indented lines under `s3 =`) are skipped.
fn sections(text: &str) -> BTreeMap<String, Profile> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut nested = false;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
            nested = false;
            continue;
        }
        if nested && raw.starts_with(char::is_whitespace) {
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        nested = value.is_empty();
        if !nested {
            out.entry(section.clone()).or_default().insert(key, value.to_owned());
        }
    }
    out
}

/// Reads `path` when it exists; a missing file is no profile at all.
fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The profile `name` from the credentials file and the config file (where
/// it is `[profile NAME]`, or `[default]`); keys of the credentials file win.
/// `None` when neither file has it.
///
/// # Errors
/// [`Error::Io`] naming a file that exists but cannot be read.
pub(crate) fn profile(credentials: &Path, config: &Path, name: &str) -> Result<Option<Profile>> {
    let mut found: Option<Profile> = None;
    if let Some(text) = read(config)? {
        let mut all = sections(&text);
        let section = if name == "default" {
            all.remove("default").or_else(|| all.remove("profile default"))
        } else {
            all.remove(&format!("profile {name}"))
        };
        found = section;
    }
    if let Some(text) = read(credentials)? {
        if let Some(keys) = sections(&text).remove(name) {
            found.get_or_insert_with(Profile::new).extend(keys);
        }
    }
    Ok(found)
}

/// Where the shared files are: `AWS_SHARED_CREDENTIALS_FILE` /
/// `AWS_CONFIG_FILE`, else under `~/.aws/`.
pub(crate) fn paths(env: &BTreeMap<String, String>) -> (PathBuf, PathBuf) {
    let home = env.get("HOME").map(PathBuf::from).unwrap_or_default();
    let pick = |var: &str, file: &str| {
        env.get(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(file))
    };
    (
        pick("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        pick("AWS_CONFIG_FILE", "config"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_come_from_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (creds, config) = (dir.path().join("credentials"), dir.path().join("config"));
        std::fs::write(
            &creds,
            "# comment\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key=s1\n\n[work]\naws_access_key_id = AKWORK\naws_secret_access_key = s2\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile work]\nregion = eu-central-1\ns3 =\n  addressing_style = path\nendpoint_url = https://s3.example\n",
        )
        .unwrap();
        let work = profile(&creds, &config, "work").unwrap().unwrap();
        assert_eq!(work["aws_access_key_id"], "AKWORK");
        assert_eq!(work["region"], "eu-central-1");
        assert_eq!(work["endpoint_url"], "https://s3.example");
        assert!(!work.contains_key("addressing_style"));
        let default = profile(&creds, &config, "default").unwrap().unwrap();
        assert_eq!(
            (default["aws_secret_access_key"].as_str(), default["region"].as_str()),
            ("s1", "eu-west-1")
        );
        assert!(profile(&creds, &config, "missing").unwrap().is_none());
        assert!(profile(&dir.path().join("no"), &dir.path().join("no2"), "default")
            .unwrap()
            .is_none());
    }
}
