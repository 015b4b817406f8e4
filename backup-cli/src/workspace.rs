//! The workspace on disk: `backupapps.toml`, `apps/<app>/<profile>.toml`,
//! `secrets/`, `data/`, `restore/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

use crate::settings::{Kind, ProfileSettings};

/// Name of the global configuration file.
pub const GLOBAL_FILE: &str = "backupapps.toml";

/// A loaded workspace.
#[derive(Debug)]
pub struct Workspace {
    /// The workspace folder (`--home`).
    pub home: PathBuf,
    /// Every profile, by `app/profile`.
    pub profiles: BTreeMap<String, Profile>,
    /// The settings as `backupapps.toml` (and the environment) set them,
    /// without any profile: the run's monitoring URLs, the default store.
    pub global: ProfileSettings,
}

/// One backup profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Application name: the folder under `apps/`.
    pub app: String,
    /// Profile name: the file name without `.toml`.
    pub name: String,
    /// The profile file.
    pub file: PathBuf,
    /// Layered settings.
    pub settings: ProfileSettings,
}

impl Profile {
    /// `app/profile`.
    pub fn target(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }

    /// The validated `dest_prefix`.
    pub fn dest_prefix(&self) -> &str {
        self.settings.dest_prefix.as_deref().unwrap_or_default()
    }

    /// The validated kind.
    pub fn kind(&self) -> Kind {
        self.settings.kind.unwrap_or(Kind::Files)
    }

    /// The profile as the library sees it: what its manifests must be bound to.
    pub fn profile_ref(&self) -> backup_core::ProfileRef {
        backup_core::ProfileRef::new(&self.app, &self.name, self.dest_prefix()).with_kind(self.kind().name())
    }

    /// Where this profile's plaintext work files go (`data/<app>/<profile>/`).
    pub fn data_dir(&self, ws: &Workspace) -> PathBuf {
        ws.home.join("data").join(&self.app).join(&self.name)
    }
}

/// Sections only postgres profiles read. A files profile refuses them in its
/// own file (a mistake there), but ignores them from `backupapps.toml` and
/// the environment: there they are defaults shared by the postgres profiles,
/// and `BACKUPAPPS_SOURCE__USER` must not break loading the files profiles.
const POSTGRES_SECTIONS: [&str; 3] = ["source", "mirror", "restore"];

/// Whether an environment key (`SOURCE__USER`, prefix stripped) sets a postgres-only section.
fn is_postgres_env(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    POSTGRES_SECTIONS
        .iter()
        .any(|s| key.strip_prefix(s).is_some_and(|rest| rest.starts_with("__")))
}

/// The kind as the files say: the environment cannot set it (it has no section).
fn file_kind(global: &Path, profile: &Path) -> Option<Kind> {
    #[derive(serde::Deserialize)]
    struct KindOnly {
        kind: Option<Kind>,
    }
    let mut figment = Figment::new();
    if global.exists() {
        figment = figment.merge(Toml::file_exact(global));
    }
    figment
        .merge(Toml::file_exact(profile))
        .extract::<KindOnly>()
        .ok()?
        .kind
}

/// Refuses postgres sections written in a files profile's own file, and drops
/// those that came from `backupapps.toml`.
fn drop_postgres_sections(profile: &mut Profile) -> Result<()> {
    let own: toml::Table = std::fs::read_to_string(&profile.file)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_default();
    if let Some(section) = POSTGRES_SECTIONS.iter().find(|s| own.contains_key(**s)) {
        bail!(
            "{}: [{section}] is for postgres profiles; a files profile lists `paths`",
            profile.file.display()
        );
    }
    let s = &mut profile.settings;
    (s.source, s.mirror, s.restore) = (None, None, None);
    Ok(())
}

/// `postgres`: whether the postgres-only sections are read from the environment.
fn layered(global: &Path, profile: Option<&Path>, postgres: bool) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(ProfileSettings::default()));
    if global.exists() {
        figment = figment.merge(Toml::file_exact(global));
    }
    if let Some(profile) = profile {
        figment = figment.merge(Toml::file_exact(profile));
    }
    // Only section-qualified variables (`BACKUPAPPS_STORE__URL`) are settings;
    // BACKUPAPPS_HOME, BACKUPAPPS_PASSPHRASE and the like are read elsewhere.
    figment.merge(
        Env::prefixed("BACKUPAPPS_")
            .filter(move |key| key.as_str().contains("__") && (postgres || !is_postgres_env(key.as_str())))
            .split("__"),
    )
}

impl Workspace {
    /// Loads and checks every configuration file under `home`.
    ///
    /// # Errors
    /// Names the file and key of the first problem: invalid TOML, an unknown
    /// key, a missing `kind`/`dest_prefix`, a duplicate `dest_prefix`.
    pub fn load(home: &Path) -> Result<Self> {
        let home = std::path::absolute(home).with_context(|| format!("workspace {}", home.display()))?;
        if !home.is_dir() {
            bail!(
                "workspace {} does not exist: create one with `backupapps init {}` or pass --home DIR",
                home.display(),
                home.display()
            );
        }
        let global_file = home.join(GLOBAL_FILE);
        // Without it every command would run on built-in defaults and find
        // nothing: `check` saying OK and `list` printing nothing, exit 0, in
        // the wrong folder. A mistake, so an error (exit 2).
        if !global_file.is_file() {
            return Err(ConfigError(format!(
                "not a workspace: {home} has no {GLOBAL_FILE} — run `backupapps init` to make one \
                 (`backupapps init {home}`), or pass --home DIR (or set BACKUPAPPS_HOME) to use an existing workspace",
                home = home.display(),
            ))
            .into());
        }
        // Checked on its own too, so that its mistakes are named even without profiles.
        let global = layered(&global_file, None, false)
            .extract::<ProfileSettings>()
            .map_err(|e| config_error(e, &home, &global_file, &[&global_file]))?;
        let mut profiles = BTreeMap::new();
        let apps = home.join("apps");
        for (app, file) in profile_files(&apps)? {
            let name = file.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let postgres = file_kind(&global_file, &file) != Some(Kind::Files);
            let settings: ProfileSettings = layered(&global_file, Some(&file), postgres)
                .extract()
                .map_err(|e| config_error(e, &home, &file, &[&global_file, &file]))?;
            let mut profile = Profile {
                app: app.clone(),
                name,
                file,
                settings,
            };
            if !postgres {
                drop_postgres_sections(&mut profile)?;
            }
            check_profile(&profile)?;
            profiles.insert(profile.target(), profile);
        }
        let mut prefixes: BTreeMap<&str, &Profile> = BTreeMap::new();
        for profile in profiles.values() {
            if let Some(other) = prefixes.insert(profile.dest_prefix(), profile) {
                bail!(
                    "{}: dest_prefix {:?} is also used by {}; every profile needs its own",
                    profile.file.display(),
                    profile.dest_prefix(),
                    other.file.display()
                );
            }
        }
        Ok(Workspace { home, profiles, global })
    }

    /// Resolves a path from the configuration against the workspace.
    pub fn path(&self, p: &Path) -> PathBuf {
        self.home.join(p)
    }

    /// The profiles named by `targets` (`app` or `app/profile`); all when empty.
    ///
    /// # Errors
    /// Names an unknown target and lists the known ones.
    pub fn select(&self, targets: &[String]) -> Result<Vec<&Profile>> {
        if targets.is_empty() {
            return Ok(self.profiles.values().collect());
        }
        let mut out: Vec<&Profile> = Vec::new();
        for target in targets {
            let target = target.trim_matches('/');
            let found: Vec<&Profile> = self
                .profiles
                .values()
                .filter(|p| p.target() == target || p.app == target)
                .collect();
            if found.is_empty() {
                let known: Vec<_> = self.profiles.keys().cloned().collect();
                bail!(
                    "no profile {target:?} in {}/apps; known: {}",
                    self.home.display(),
                    if known.is_empty() {
                        "none (add one from apps/templates/)".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
            for p in found {
                if !out.iter().any(|o| o.target() == p.target()) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }
}

/// A path given on the command line, made absolute from the current
/// directory (DESIGN §4): never resolved against the workspace, which only
/// paths in its configuration files are.
///
/// # Errors
/// When the current directory cannot be read.
pub fn cli_path(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// `apps/<app>/<profile>.toml`, skipping `apps/templates/`.
fn profile_files(apps: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(apps) else {
        return Ok(out);
    };
    for dir in dirs {
        let dir = dir.with_context(|| apps.display().to_string())?;
        let app = dir.file_name().to_string_lossy().into_owned();
        if app == "templates" || !dir.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir.path()).with_context(|| dir.path().display().to_string())? {
            let path = file.with_context(|| dir.path().display().to_string())?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                out.push((app.clone(), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn check_profile(profile: &Profile) -> Result<()> {
    let file = profile.file.display();
    let s = &profile.settings;
    match s.kind {
        Some(Kind::Files) => {
            if s.paths.is_empty() {
                bail!("{file}: kind = \"files\" needs `paths = [\"/folder\", ...]`");
            }
        }
        Some(Kind::Postgres) => {}
        Some(Kind::Command) => {
            if s.command.is_empty() {
                bail!("{file}: kind = \"command\" needs `command = [\"program\", \"arg\", ...]` (its stdout is backed up)");
            }
        }
        None => bail!("{file}: missing `kind = \"files\"`, `kind = \"postgres\"` or `kind = \"command\"`"),
    }
    match s.dest_prefix.as_deref() {
        None => bail!(
            "{file}: missing `dest_prefix` (the store folder for this profile, e.g. \"{}/{}\")",
            profile.app,
            profile.name
        ),
        Some(p) => backup_core::store::validate_key(p.trim_matches('/'))
            .with_context(|| format!("{file}: dest_prefix {p:?}"))?,
    }
    s.swift_config(&file.to_string())?;
    Ok(())
}

/// Figment's message names the key and, for file values, the file; add the
/// file for the cases it does not (a TOML syntax error names only the line),
/// and blame the file that holds the key when a whole section was refused
/// (figment names the first file of a merged section, not the one with the
/// bad key). `files` are the files layered, lowest precedence first.
fn config_error(e: figment::Error, home: &Path, file: &Path, files: &[&Path]) -> anyhow::Error {
    // Files as the workspace names them (`apps/app/db.toml`), wherever the
    // command was run from.
    let shown = |p: &Path| p.strip_prefix(home).unwrap_or(p).display().to_string();
    let hint = "fix it, or compare with apps/templates/";
    let mut lines = Vec::new();
    for error in e {
        // `[section] key`, as users write it; figment's profile name
        // (`default`) is its own business.
        let mut path: Vec<&str> = error
            .path
            .iter()
            .map(String::as_str)
            .filter(|p| *p != "default")
            .collect();
        let kind = error.kind.to_string();
        // The key a section's own check names first (`within: "3x" is …`).
        let named = match &error.kind {
            figment::error::Kind::Message(m) => m.split([':', ' ']).next().map(str::to_owned),
            _ => None,
        };
        let from_env = error.metadata.as_ref().is_some_and(|m| m.name.contains("environment"));
        // The environment wins over the files: a variable setting the key is to blame.
        let env_var = named.as_deref().map(|key| {
            let mut parts = path.clone();
            parts.push(key);
            format!("BACKUPAPPS_{}", parts.join("__").to_ascii_uppercase())
        });
        let env_var = env_var.filter(|v| std::env::var_os(v).is_some());
        let holder = match &env_var {
            Some(_) => None,
            None => named.as_deref().and_then(|key| holder(files, &path, key)),
        };
        let source = match (holder, error.metadata.as_ref()) {
            (_, _) if env_var.is_some() => format!("environment variable {}", env_var.unwrap_or_default()),
            (Some(h), _) => shown(h),
            (None, Some(m)) if m.source.is_some() => match m.source.as_ref() {
                Some(figment::Source::File(p)) => shown(p),
                other => other.map(|s| s.to_string()).unwrap_or_default(),
            },
            (None, _) if from_env => {
                let var = format!("BACKUPAPPS_{}", path.join("__").to_ascii_uppercase());
                // A section refused whole names only the section.
                let more = if path.len() < 2 { "__…" } else { "" };
                format!("environment variable {var}{more}")
            }
            _ => shown(file),
        };
        if let figment::error::Kind::UnknownField(field, expected) = &error.kind {
            // `unknown key retention.dayly in backupapps.toml`: the key as
            // written, without the config library's internal prefixes.
            if path.last() != Some(&field.as_str()) {
                path.push(field);
            }
            let expected = if expected.is_empty() {
                "this section has no keys".to_owned()
            } else {
                format!("known keys: {}", expected.join(", "))
            };
            lines.push(format!("unknown key {} in {source} ({expected})", path.join(".")));
            continue;
        }
        let key = path.pop().unwrap_or_default();
        const SECTIONS: [&str; 8] = [
            "store",
            "encryption",
            "retention",
            "backup",
            "source",
            "mirror",
            "restore",
            "monitoring",
        ];
        let place = match path.as_slice() {
            [] if key.is_empty() => String::new(),
            // A whole section refused by its own type (mirror, retention).
            [] if SECTIONS.contains(&key) => format!(" [{key}]"),
            [] => format!(" {key}"),
            sections => format!(" [{}] {key}", sections.join(".")),
        };
        lines.push(format!("{source}{place}: {}", kind.trim_end()).replace(" TOML file", ""));
    }
    anyhow::Error::new(ConfigError(format!("{}; {hint}", lines.join("; "))))
}

/// The file with the highest precedence among `files` whose table at
/// `section` sets `key`: the one whose value was used, so the one to fix.
fn holder<'f>(files: &[&'f Path], section: &[&str], key: &str) -> Option<&'f Path> {
    files.iter().rev().copied().find(|f| {
        let Some(table) = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
        else {
            return false;
        };
        let mut here = &table;
        for part in section {
            match here.get(*part).and_then(toml::Value::as_table) {
                Some(t) => here = t,
                None => return false,
            }
        }
        here.contains_key(key)
    })
}

/// A configuration problem (exit status 2).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}
