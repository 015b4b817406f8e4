//! Credentials and settings, from `[store.swift]`, an OpenStack RC file and
//! the environment (`OS_*`, v1 `ST_*`), in that order of increasing weight
//! for each key given.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use backup_core::{Error, Result};
use serde::Deserialize;

/// `[store.swift]`. Every key may also come from `OS_*`/`ST_*` variables or
/// the `openrc` file.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwiftConfig {
    /// Keystone (`https://keystone:5000/v3`) or v1 auth URL (`.../auth/v1.0`).
    pub auth_url: Option<String>,
    /// `1` or `3` (default: guessed from the URL).
    pub auth_version: Option<String>,
    /// User name (v3) or `account:user` (v1).
    pub username: Option<String>,
    /// Password (v3) or key (v1). Prefer `password_file` or the environment.
    pub password: Option<String>,
    /// File holding the password or key.
    pub password_file: Option<PathBuf>,
    /// Project (tenant) name.
    pub project_name: Option<String>,
    /// Project id (instead of a name).
    pub project_id: Option<String>,
    /// User domain (default `Default`).
    pub user_domain_name: Option<String>,
    /// Project domain (default `Default`).
    pub project_domain_name: Option<String>,
    /// Region of the object-store endpoint.
    pub region: Option<String>,
    /// `public` (default), `internal` or `admin`.
    pub interface: Option<String>,
    /// Application credential id (`OS_AUTH_TYPE=v3applicationcredential`).
    pub application_credential_id: Option<String>,
    /// Application credential secret.
    pub application_credential_secret: Option<String>,
    /// An OpenStack RC file (`export OS_…=…` lines).
    pub openrc: Option<PathBuf>,
    /// Objects larger than this go up as Static Large Objects (default 1 GiB).
    pub segment_size: Option<u64>,
    /// Create the container when it is missing (default true).
    pub create_container: Option<bool>,
    /// Attempts per request for retryable failures (default 5).
    pub retries: Option<u32>,
    /// Seconds per request before it counts as timed out (default 120).
    pub timeout_secs: Option<u64>,
    /// Storage URL to use instead of the catalog's (rarely needed).
    pub storage_url: Option<String>,
}

impl fmt::Debug for SwiftConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwiftConfig")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("project_name", &self.project_name)
            .field("region", &self.region)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field(
                "application_credential_secret",
                &self.application_credential_secret.as_ref().map(|_| "<hidden>"),
            )
            .finish_non_exhaustive()
    }
}

/// How to authenticate, resolved.
#[derive(Clone)]
pub enum Credentials {
    /// tempauth / swauth: `X-Auth-User` + `X-Auth-Key`.
    V1 {
        /// Auth URL.
        auth_url: String,
        /// `account:user`.
        user: String,
        /// Key.
        key: String,
    },
    /// Keystone v3 password.
    V3Password {
        /// Keystone URL ending in `/v3`.
        auth_url: String,
        /// User.
        username: String,
        /// Password.
        password: String,
        /// User's domain.
        user_domain: String,
        /// Project name or id.
        project: Project,
        /// Endpoint region.
        region: Option<String>,
        /// Endpoint interface.
        interface: String,
    },
    /// Keystone v3 application credential.
    V3AppCredential {
        /// Keystone URL ending in `/v3`.
        auth_url: String,
        /// Credential id.
        id: String,
        /// Credential secret.
        secret: String,
        /// Endpoint region.
        region: Option<String>,
        /// Endpoint interface.
        interface: String,
    },
}

/// A Keystone project.
#[derive(Clone, Debug)]
pub enum Project {
    /// By name, in a domain.
    Name {
        /// Name.
        name: String,
        /// Domain name.
        domain: String,
    },
    /// By id.
    Id(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::V1 { auth_url, user, .. } => write!(f, "v1 {user} at {auth_url}"),
            Credentials::V3Password {
                auth_url,
                username,
                project,
                ..
            } => {
                write!(f, "v3 password {username} ({project:?}) at {auth_url}")
            }
            Credentials::V3AppCredential { auth_url, id, .. } => {
                write!(f, "v3 application credential {id} at {auth_url}")
            }
        }
    }
}

/// Parses `export KEY=value` / `KEY="value"` lines of an OpenStack RC file.
///
/// # Errors
/// [`Error::Config`] naming the file when it cannot be read.
pub fn read_openrc(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("[store.swift] openrc {}", path.display()), e.to_string()))?;
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.is_empty() {
                let value = value.trim().trim_matches('"').trim_matches('\'');
                vars.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    Ok(vars)
}

impl SwiftConfig {
    /// Resolves credentials: configuration keys, then the RC file, then the
    /// process environment (each later source fills what earlier ones left empty,
    /// except that the environment wins, as with the `openstack` CLI).
    ///
    /// # Errors
    /// [`Error::Config`] naming what is missing.
    pub fn credentials(&self, base: &Path, env: &BTreeMap<String, String>) -> Result<Credentials> {
        let mut vars = match &self.openrc {
            Some(rc) => read_openrc(&base.join(rc))?,
            None => BTreeMap::new(),
        };
        vars.extend(
            env.iter()
                .filter(|(k, _)| k.starts_with("OS_") || k.starts_with("ST_"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let pick =
            |own: &Option<String>, var: &str| vars.get(var).cloned().or_else(|| own.clone()).filter(|v| !v.is_empty());
        let password = match &self.password_file {
            Some(file) => Some(
                std::fs::read_to_string(base.join(file))
                    .map_err(|e| {
                        Error::config(
                            "[store.swift] password_file",
                            format!("{}: {e}", base.join(file).display()),
                        )
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => None,
        };
        let missing = |what: &str, var: &str| {
            Error::config(
                format!("[store.swift] {what}"),
                format!("not set: set it in [store.swift], the openrc file, or {var}"),
            )
        };
        if let (Some(auth_url), Some(user)) = (vars.get("ST_AUTH"), vars.get("ST_USER")) {
            return Ok(Credentials::V1 {
                auth_url: auth_url.clone(),
                user: user.clone(),
                key: vars
                    .get("ST_KEY")
                    .cloned()
                    .or(password)
                    .ok_or_else(|| missing("password", "ST_KEY"))?,
            });
        }
        let auth_url = pick(&self.auth_url, "OS_AUTH_URL").ok_or_else(|| missing("auth_url", "OS_AUTH_URL"))?;
        let version = pick(&self.auth_version, "OS_IDENTITY_API_VERSION").unwrap_or_else(|| {
            if auth_url.contains("/v1") {
                "1".into()
            } else {
                "3".into()
            }
        });
        let region = pick(&self.region, "OS_REGION_NAME");
        let interface = pick(&self.interface, "OS_INTERFACE")
            .unwrap_or_else(|| "public".into())
            .replace("URL", "");
        let password = vars
            .get("OS_PASSWORD")
            .cloned()
            .or(password)
            .or_else(|| self.password.clone());
        if version.starts_with('1') {
            return Ok(Credentials::V1 {
                auth_url,
                user: pick(&self.username, "OS_USERNAME").ok_or_else(|| missing("username", "OS_USERNAME"))?,
                key: password.ok_or_else(|| missing("password", "OS_PASSWORD"))?,
            });
        }
        let auth_url = auth_url.trim_end_matches('/').to_owned();
        let auth_url = if auth_url.ends_with("/v3") {
            auth_url
        } else {
            format!("{auth_url}/v3")
        };
        let app_cred = vars.get("OS_AUTH_TYPE").is_some_and(|t| t == "v3applicationcredential")
            || self.application_credential_id.is_some();
        if app_cred {
            return Ok(Credentials::V3AppCredential {
                auth_url,
                id: pick(&self.application_credential_id, "OS_APPLICATION_CREDENTIAL_ID")
                    .ok_or_else(|| missing("application_credential_id", "OS_APPLICATION_CREDENTIAL_ID"))?,
                secret: pick(&self.application_credential_secret, "OS_APPLICATION_CREDENTIAL_SECRET")
                    .ok_or_else(|| missing("application_credential_secret", "OS_APPLICATION_CREDENTIAL_SECRET"))?,
                region,
                interface,
            });
        }
        let project = match (
            pick(&self.project_id, "OS_PROJECT_ID"),
            pick(&self.project_name, "OS_PROJECT_NAME"),
        ) {
            (Some(id), _) => Project::Id(id),
            (None, Some(name)) => Project::Name {
                name,
                domain: pick(&self.project_domain_name, "OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            },
            (None, None) => return Err(missing("project_name", "OS_PROJECT_NAME")),
        };
        Ok(Credentials::V3Password {
            auth_url,
            username: pick(&self.username, "OS_USERNAME").ok_or_else(|| missing("username", "OS_USERNAME"))?,
            password: password.ok_or_else(|| missing("password", "OS_PASSWORD"))?,
            user_domain: pick(&self.user_domain_name, "OS_USER_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
            project,
            region,
            interface,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn v1_from_st_variables() {
        let c = SwiftConfig::default()
            .credentials(
                Path::new("/"),
                &env(&[("ST_AUTH", "http://h/auth/v1.0"), ("ST_USER", "a:u"), ("ST_KEY", "k")]),
            )
            .unwrap();
        assert!(matches!(c, Credentials::V1 { ref user, .. } if user == "a:u"));
    }

    #[test]
    fn v3_password_and_app_credential_from_os_variables() {
        let base = [
            ("OS_AUTH_URL", "https://ks:5000"),
            ("OS_USERNAME", "u"),
            ("OS_PASSWORD", "p"),
            ("OS_PROJECT_NAME", "pr"),
        ];
        let c = SwiftConfig::default().credentials(Path::new("/"), &env(&base)).unwrap();
        match c {
            Credentials::V3Password {
                auth_url, interface, ..
            } => {
                assert_eq!(auth_url, "https://ks:5000/v3");
                assert_eq!(interface, "public");
            }
            other => panic!("{other:?}"),
        }
        let app = [
            ("OS_AUTH_URL", "https://ks:5000/v3"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_ID", "id1"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
        ];
        let c = SwiftConfig::default().credentials(Path::new("/"), &env(&app)).unwrap();
        assert!(matches!(c, Credentials::V3AppCredential { ref id, .. } if id == "id1"));
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn missing_values_are_named() {
        let err = SwiftConfig::default()
            .credentials(Path::new("/"), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth_url") && err.contains("OS_AUTH_URL"), "{err}");
    }

    #[test]
    fn openrc_lines_parse() {
        let dir = std::env::temp_dir().join(format!("openrc-{}", std::process::id()));
        std::fs::write(
            &dir,
            "# comment\nexport OS_AUTH_URL=https://ks/v3\nexport OS_PASSWORD=\"p w\"\nOS_USERNAME='me'\n",
        )
        .unwrap();
        let vars = read_openrc(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(vars["OS_PASSWORD"], "p w");
        assert_eq!(vars["OS_USERNAME"], "me");
    }
}
