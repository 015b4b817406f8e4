//! Man pages, generated from the clap definitions (so a new command gets its
//! page without anyone writing one): `backupapps(1)` and
//! `backupapps-<sub>(1)` for every subcommand, nested ones included
//! (`backupapps-db-list(1)`), each with EXIT STATUS, ENVIRONMENT and FILES.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// The command tree as the pages see it. Without clap's `help` subcommand:
/// its page would be one more to generate, and `--help` says it all.
fn root() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Sets each subcommand's display name (`backupapps-db-list`), which
    // names its page and the references to it.
    cmd.build();
    cmd
}

/// Every page: (file name, roff), the main page first.
///
/// # Errors
/// When rendering fails (it writes to memory only).
pub fn pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    collect(&root(), None, &mut out)?;
    Ok(out)
}

fn collect(cmd: &clap::Command, parent: Option<&str>, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    out.push((format!("{}.1", page_name(cmd)), render(cmd, parent)?));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, Some(&page_name(cmd)), out)?;
    }
    Ok(())
}

fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name()).to_owned()
}

/// The page of the command at `path` (`[]`: the main page; `["db", "list"]`).
///
/// # Errors
/// An unknown subcommand, naming the known ones.
pub fn page(path: &[String]) -> Result<Vec<u8>> {
    let root = root();
    let mut cmd = &root;
    let mut parent = None;
    for name in path {
        let known: Vec<&str> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name())
            .collect();
        let Some(sub) = cmd.find_subcommand(name).filter(|s| !s.is_hide_set()) else {
            return Err(crate::workspace::ConfigError(format!(
                "no man page for `{} {name}`: `{}` has the subcommands {}",
                cmd.get_bin_name().unwrap_or("backupapps"),
                cmd.get_bin_name().unwrap_or("backupapps"),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
            .into());
        };
        parent = Some(page_name(cmd));
        cmd = sub;
    }
    render(cmd, parent.as_deref())
}

/// Writes every page into `dir` (created if missing); returns how many.
///
/// # Errors
/// When the folder or a page cannot be written, naming it.
pub fn write_all(dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pages = pages()?;
    for (name, text) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(pages.len())
}

fn render(cmd: &clap::Command, parent: Option<&str>) -> Result<Vec<u8>> {
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .source(format!("backupapps {}", env!("CARGO_PKG_VERSION")))
        .manual("backupapps manual")
        .render(&mut text)?;
    let mut extra = String::new();
    section(&mut extra, "EXIT STATUS", EXIT_STATUS);
    section(&mut extra, "ENVIRONMENT", ENVIRONMENT);
    section(&mut extra, "FILES", FILES);
    // References only to pages that exist: the parent and the main page
    // (the subcommands are listed by clap's own section above).
    let mut see_also: Vec<String> = Vec::new();
    if let Some(parent) = parent {
        see_also.push(format!("{parent}(1)"));
        if parent != "backupapps" {
            see_also.push("backupapps(1)".to_owned());
        }
    }
    see_also.extend(["gpg(1)".to_owned(), "zstd(1)".to_owned(), "pg_restore(1)".to_owned()]);
    extra.push_str(".SH \"SEE ALSO\"\n");
    extra.push_str(&escape(&see_also.join(", ")));
    extra.push('\n');
    text.extend_from_slice(extra.as_bytes());
    Ok(text)
}

/// A section of (term, description) pairs, or one paragraph when the term is empty.
fn section(out: &mut String, title: &str, items: &[(&str, &str)]) {
    out.push_str(&format!(".SH \"{title}\"\n"));
    for (term, description) in items {
        if term.is_empty() {
            out.push_str(&format!(".PP\n{}\n", escape(description)));
        } else {
            out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", escape(term), escape(description)));
        }
    }
}

/// Text as roff reads it literally: backslashes and hyphens escaped, and no
/// line taken for a request.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Success (for runs over several profiles: every profile succeeded).",
    ),
    (
        "1",
        "A backup, restore, verify, prune or mirror failed on the way (a run over several profiles goes on past a \
         failing one and reports each), or another run holds the profile's lock.",
    ),
    (
        "2",
        "Usage or configuration error: a bad argument, no workspace, a bad key in a configuration file, a missing \
         or wrong key; a backup asked for by id that is untrusted or damaged (verify reports those with 1).",
    ),
    ("130", "Interrupted by SIGINT; what the run started was cleaned up."),
    ("143", "Terminated by SIGTERM; what the run started was cleaned up."),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "BACKUPAPPS_HOME",
        "The workspace folder (as --home; default: the current directory).",
    ),
    (
        "BACKUPAPPS_PASSPHRASE",
        "Passphrase of the secret key(s); wins over [encryption] passphrase_file.",
    ),
    (
        "BACKUPAPPS_SIGNING_PASSPHRASE",
        "Passphrase of the signing key; wins over [encryption] signing_passphrase_file.",
    ),
    (
        "BACKUPAPPS_<SECTION>__<KEY>",
        "Any setting, over the files: e.g. BACKUPAPPS_STORE__URL, BACKUPAPPS_RETENTION__DAILY, \
         BACKUPAPPS_SOURCE__HOST (two underscores between section and key).",
    ),
    (
        "BACKUPAPPS_LOG",
        "Log filter in tracing's syntax (e.g. debug), over -v and -q.",
    ),
    (
        "NO_COLOR",
        "When set and not empty: no colour in the logs (colour is only used on a terminal anyway).",
    ),
    (
        "OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME, \
         OS_REGION_NAME, OS_INTERFACE, OS_AUTH_TYPE, OS_APPLICATION_CREDENTIAL_ID, OS_APPLICATION_CREDENTIAL_SECRET",
        "OpenStack credentials for swift:// stores (or [store] openrc); ST_AUTH, ST_USER, ST_KEY for Swift v1 auth.",
    ),
    (
        "PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGPASSFILE",
        "libpq defaults for PostgreSQL profiles (and ~/.pgpass).",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "backupapps.toml",
        "The workspace's global configuration: store, encryption, retention, monitoring.",
    ),
    (
        "apps/<app>/<profile>.toml",
        "One backup profile each (kind = \"files\" or \"postgres\").",
    ),
    ("apps/templates/", "Commented templates to copy profiles from."),
    (
        "secrets/",
        "Public and secret keys, passphrase files, OpenStack RC files (owner only).",
    ),
    (
        "data/",
        "Local copies of the newest backups, lock files, work files (owner only).",
    ),
    (
        "restore/",
        "Default restore target: restore/<app>/<profile>/<id>/ (owner only).",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_page_and_every_reference_exists() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for expected in [
            "backupapps.1",
            "backupapps-init.1",
            "backupapps-db.1",
            "backupapps-db-list.1",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        for (name, text) in &pages {
            let text = String::from_utf8(text.clone()).unwrap();
            for section in ["EXIT STATUS", "ENVIRONMENT", "FILES"] {
                assert!(text.contains(&format!(".SH \"{section}\"")), "{name} has {section}");
            }
            // Every backupapps(-…)(1) reference is a generated page.
            for (i, _) in text.match_indices("(1)") {
                let start = text[..i]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\'))
                    .map_or(0, |s| s + 1);
                let page = text[start..i].replace("\\-", "-");
                if page.starts_with("backupapps") {
                    assert!(
                        names.contains(&format!("{page}.1").as_str()),
                        "{name} refers to {page}(1)"
                    );
                }
            }
        }
    }

    #[test]
    fn escaping_keeps_text_literal() {
        assert_eq!(escape(".start\n'quote"), "\\&.start\n\\&'quote");
        assert_eq!(escape("a-b\\c"), "a\\-b\\ec");
    }
}
