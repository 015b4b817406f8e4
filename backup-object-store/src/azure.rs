//! `az://CONTAINER[/PREFIX]`: settings and credentials, by the Azure
//! Storage conventions (account name and key, or a connection string).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use backup_core::{Error, Result};
use object_store::azure::MicrosoftAzureBuilder;
use serde::Deserialize;

use crate::config::{secret_file, ConditionalCreate, Tuning};

/// Azurite's well-known development account (public, documented by Microsoft).
pub(crate) const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key.
pub(crate) const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Settings of an Azure Blob store. Each key left out comes from
/// `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` or
/// `AZURE_STORAGE_CONNECTION_STRING`. Secrets are read from files only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// Storage account name (`AZURE_STORAGE_ACCOUNT_NAME`).
    pub account: Option<String>,
    /// File holding the account key (`AZURE_STORAGE_ACCOUNT_KEY`).
    pub access_key_file: Option<PathBuf>,
    /// File holding a connection string (`AZURE_STORAGE_CONNECTION_STRING`):
    /// `AccountName=…;AccountKey=…;BlobEndpoint=…` or `UseDevelopmentStorage=true`.
    pub connection_string_file: Option<PathBuf>,
    /// Blob service URL, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`
    /// (default `https://ACCOUNT.blob.core.windows.net`).
    pub endpoint: Option<String>,
    /// How conditional creates (leases) are done: `auto` (default), `native`, `claims`.
    pub conditional_create: Option<ConditionalCreate>,
    /// Objects larger than this many bytes go up as blocks (default 64 MiB).
    pub multipart_threshold: Option<u64>,
    /// Bytes per block, at least 5 MiB (default 16 MiB).
    pub part_size: Option<u64>,
    /// Attempts after a failed request that may pass on retry (default 5).
    pub retries: Option<u32>,
    /// Seconds per request before it counts as timed out (default 120).
    pub timeout_secs: Option<u64>,
}

/// An [`AzureConfig`] with every value looked up; `Debug` hides the key.
#[derive(Clone)]
pub(crate) struct ResolvedAzure {
    pub(crate) account: String,
    key: String,
    pub(crate) endpoint: String,
    pub(crate) tuning: Tuning,
}

impl fmt::Debug for ResolvedAzure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedAzure")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The parts of a connection string this store uses.
#[derive(Default)]
struct Connection {
    account: Option<String>,
    key: Option<String>,
    endpoint: Option<String>,
}

/// Parses `Key=Value;…` (values may hold `=`, as base64 keys do).
fn parse_connection_string(text: &str, field: &str) -> Result<Connection> {
    let mut parts: BTreeMap<String, String> = BTreeMap::new();
    for part in text.trim().split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| Error::config(field, "a connection string is Key=Value pairs separated by ';'"))?;
        parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    if parts.contains_key("sharedaccesssignature") {
        return Err(Error::config(
            field,
            "shared access signatures are not supported: use a connection string with AccountKey",
        ));
    }
    if parts
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(Connection {
            account: Some(DEV_ACCOUNT.into()),
            key: Some(DEV_KEY.into()),
            endpoint: Some(format!("http://127.0.0.1:10000/{DEV_ACCOUNT}")),
        });
    }
    let account = parts.remove("accountname");
    let endpoint = parts.remove("blobendpoint").or_else(|| {
        let suffix = parts.get("endpointsuffix")?;
        let protocol = parts.get("defaultendpointsprotocol").map_or("https", String::as_str);
        Some(format!("{protocol}://{}.blob.{suffix}", account.as_deref()?))
    });
    Ok(Connection {
        account,
        key: parts.remove("accountkey"),
        endpoint,
    })
}

impl AzureConfig {
    /// Looks every value up: a key set here wins over the environment, a
    /// connection string fills what is still missing. Files are relative to `base`.
    pub(crate) fn resolve(&self, base: &Path, env: &BTreeMap<String, String>) -> Result<ResolvedAzure> {
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        let connection = match (&self.connection_string_file, var("AZURE_STORAGE_CONNECTION_STRING")) {
            (Some(file), _) => parse_connection_string(
                &secret_file(base, file, "connection_string_file")?,
                "connection_string_file",
            )?,
            (None, Some(text)) => parse_connection_string(&text, "AZURE_STORAGE_CONNECTION_STRING")?,
            (None, None) => Connection::default(),
        };
        let explicit_key = self
            .access_key_file
            .as_ref()
            .map(|f| secret_file(base, f, "access_key_file"))
            .transpose()?;
        let account = self
            .account
            .clone()
            .or_else(|| var("AZURE_STORAGE_ACCOUNT_NAME"))
            .or_else(|| var("AZURE_STORAGE_ACCOUNT"))
            .or(connection.account)
            .ok_or_else(|| {
                Error::config(
                    "account",
                    "no storage account: set AZURE_STORAGE_ACCOUNT_NAME or AZURE_STORAGE_CONNECTION_STRING, or account",
                )
            })?;
        let key = explicit_key
            .or_else(|| var("AZURE_STORAGE_ACCOUNT_KEY"))
            .or_else(|| var("AZURE_STORAGE_KEY"))
            .or(connection.key)
            .ok_or_else(|| {
                Error::config(
                    "access_key_file",
                    format!(
                        "no key for storage account {account}: set AZURE_STORAGE_ACCOUNT_KEY or \
                         AZURE_STORAGE_CONNECTION_STRING, or access_key_file"
                    ),
                )
            })?;
        let endpoint = self
            .endpoint
            .clone()
            .or(connection.endpoint)
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"))
            .trim_end_matches('/')
            .to_owned();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(Error::config(
                "endpoint",
                format!("{endpoint:?} is not an http:// or https:// URL"),
            ));
        }
        Ok(ResolvedAzure {
            account,
            key,
            endpoint,
            tuning: Tuning::new(
                self.multipart_threshold,
                self.part_size,
                self.conditional_create,
                self.retries,
                self.timeout_secs,
            )?,
        })
    }
}

impl ResolvedAzure {
    /// The object_store client for `container`, retrying `retries` times.
    pub(crate) fn builder(&self, container: &str, retries: usize) -> MicrosoftAzureBuilder {
        MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_access_key(&self.key)
            .with_container_name(container)
            .with_endpoint(self.endpoint.clone())
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_retry(self.tuning.retry(retries))
            .with_client_options(self.tuning.client(Some(&self.endpoint)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let env: BTreeMap<String, String> = [(
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        )]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let r = AzureConfig::default().resolve(dir.path(), &env).unwrap();
        assert_eq!((r.account.as_str(), r.key.as_str()), ("acct", "a2V5=="));
        assert_eq!(r.endpoint, "https://acct.blob.core.windows.net");
        assert!(!format!("{r:?}").contains("a2V5"));

        std::fs::write(dir.path().join("key"), "b3RoZXI=\n").unwrap();
        let explicit = AzureConfig {
            account: Some("mine".into()),
            access_key_file: Some("key".into()),
            endpoint: Some("http://127.0.0.1:10000/mine/".into()),
            ..Default::default()
        };
        let r = explicit.resolve(dir.path(), &env).unwrap();
        assert_eq!((r.account.as_str(), r.key.as_str()), ("mine", "b3RoZXI="));
        assert_eq!(r.endpoint, "http://127.0.0.1:10000/mine");

        let dev = parse_connection_string("UseDevelopmentStorage=true", "x").unwrap();
        assert_eq!(dev.account.as_deref(), Some(DEV_ACCOUNT));
        let sas = parse_connection_string("BlobEndpoint=https://a;SharedAccessSignature=sv=1&sig=2", "x");
        assert!(sas.is_err());
        let none = AzureConfig::default()
            .resolve(dir.path(), &BTreeMap::new())
            .unwrap_err();
        assert!(none.to_string().contains("AZURE_STORAGE_ACCOUNT_NAME"), "{none}");
    }
}
