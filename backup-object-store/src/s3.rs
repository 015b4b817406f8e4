//! `s3://BUCKET[/PREFIX]`: settings and credentials, by the AWS conventions.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use backup_core::{Error, Result};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use serde::Deserialize;

use crate::config::{secret_file, ConditionalCreate, Tuning};

/// Settings of an S3 store. Each key left out comes from the usual AWS
/// variables, then the shared profile files (a key set here wins over the environment,
/// which wins over the profile files).
/// Secrets are read from files only; `Debug` shows no secret.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Service URL for S3-compatible servers (`https://s3.example.net`);
    /// default: AWS (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`).
    pub endpoint: Option<String>,
    /// Region the requests are signed for (`AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// the profile's `region`; default `us-east-1`).
    pub region: Option<String>,
    /// Access key id (`AWS_ACCESS_KEY_ID`, the profile's `aws_access_key_id`).
    pub access_key_id: Option<String>,
    /// File holding the secret access key (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key_file: Option<PathBuf>,
    /// File holding a session token (`AWS_SESSION_TOKEN`).
    pub session_token_file: Option<PathBuf>,
    /// Profile of `~/.aws/credentials` and `~/.aws/config` (`AWS_PROFILE`, default `default`).
    pub profile: Option<String>,
    /// Path-style addressing (`https://host/BUCKET/key`) instead of virtual
    /// hosts (`https://BUCKET.host/key`); default: on with a custom endpoint.
    pub path_style: Option<bool>,
    /// How conditional creates (leases) are done: `auto` (default), `native`, `claims`.
    pub conditional_create: Option<ConditionalCreate>,
    /// Objects larger than this many bytes go up as multipart uploads (default 64 MiB).
    pub multipart_threshold: Option<u64>,
    /// Bytes per part of a multipart upload, at least 5 MiB (default 16 MiB).
    pub part_size: Option<u64>,
    /// Attempts after a failed request that may pass on retry (default 5).
    pub retries: Option<u32>,
    /// Seconds per request before it counts as timed out (default 120).
    pub timeout_secs: Option<u64>,
}

/// Credentials, resolved; `Debug` shows the key id only.
#[derive(Clone)]
pub(crate) struct S3Credentials {
    pub(crate) key_id: String,
    pub(crate) secret: String,
    pub(crate) token: Option<String>,
    /// Where they came from, for messages: `AWS_ACCESS_KEY_ID`, `profile work`, …
    pub(crate) from: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "access key {} (from {})", self.key_id, self.from)
    }
}

/// An [`S3Config`] with every value looked up.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedS3 {
    pub(crate) endpoint: Option<String>,
    pub(crate) region: String,
    pub(crate) path_style: bool,
    pub(crate) credentials: S3Credentials,
    pub(crate) tuning: Tuning,
}

impl S3Config {
    /// Looks every value up: a key set here wins over the environment
    /// (`AWS_*`, as passed in `env`), which wins over the profile files.
    /// Secret files are relative to `base`.
    pub(crate) fn resolve(&self, base: &Path, env: &BTreeMap<String, String>) -> Result<ResolvedS3> {
        let var = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        let profile_name = self
            .profile
            .clone()
            .or_else(|| var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let (cred_file, config_file) = crate::aws_ini::paths(env);
        let profile = crate::aws_ini::profile(&cred_file, &config_file, &profile_name)?;
        if profile.is_none() && (self.profile.is_some() || var("AWS_PROFILE").is_some()) {
            return Err(Error::config(
                "profile",
                format!(
                    "profile {profile_name:?} is in neither {} nor {}",
                    cred_file.display(),
                    config_file.display()
                ),
            ));
        }
        let profile = profile.unwrap_or_default();
        let from_profile = |key: &str| profile.get(key).filter(|v| !v.is_empty()).cloned();

        let credentials = self.credentials(base, &var, &from_profile, &profile_name)?;
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| var("AWS_ENDPOINT_URL_S3"))
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| from_profile("endpoint_url"))
            .map(|e| e.trim_end_matches('/').to_owned());
        if let Some(e) = &endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return Err(Error::config(
                    "endpoint",
                    format!("{e:?} is not an http:// or https:// URL"),
                ));
            }
        }
        let region = self
            .region
            .clone()
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .or_else(|| from_profile("region"))
            .unwrap_or_else(|| "us-east-1".into());
        Ok(ResolvedS3 {
            path_style: self.path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            region,
            credentials,
            tuning: Tuning::new(
                self.multipart_threshold,
                self.part_size,
                self.conditional_create,
                self.retries,
                self.timeout_secs,
            )?,
        })
    }

    /// Keys set here, else `AWS_ACCESS_KEY_ID` & co, else the profile: each
    /// source as a whole, so that a key id never pairs with another's secret.
    fn credentials(
        &self,
        base: &Path,
        var: &dyn Fn(&str) -> Option<String>,
        from_profile: &dyn Fn(&str) -> Option<String>,
        profile_name: &str,
    ) -> Result<S3Credentials> {
        let token_file = |file: &Option<PathBuf>| -> Result<Option<String>> {
            file.as_ref()
                .map(|f| secret_file(base, f, "session_token_file"))
                .transpose()
        };
        if let Some(key_id) = &self.access_key_id {
            let secret = match &self.secret_access_key_file {
                Some(file) => secret_file(base, file, "secret_access_key_file")?,
                None => var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
                    Error::config(
                        "secret_access_key_file",
                        "access_key_id is set but no secret: give secret_access_key_file or AWS_SECRET_ACCESS_KEY",
                    )
                })?,
            };
            let token = token_file(&self.session_token_file)?.or_else(|| var("AWS_SESSION_TOKEN"));
            return Ok(S3Credentials {
                key_id: key_id.clone(),
                secret,
                token,
                from: "access_key_id".into(),
            });
        }
        if self.secret_access_key_file.is_some() {
            return Err(Error::config(
                "access_key_id",
                "secret_access_key_file is set but no access_key_id",
            ));
        }
        if let Some(key_id) = var("AWS_ACCESS_KEY_ID") {
            let secret = var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
                Error::config(
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
                )
            })?;
            let token = token_file(&self.session_token_file)?.or_else(|| var("AWS_SESSION_TOKEN"));
            return Ok(S3Credentials {
                key_id,
                secret,
                token,
                from: "AWS_ACCESS_KEY_ID".into(),
            });
        }
        if let (Some(key_id), Some(secret)) = (from_profile("aws_access_key_id"), from_profile("aws_secret_access_key"))
        {
            let token = token_file(&self.session_token_file)?.or_else(|| from_profile("aws_session_token"));
            return Ok(S3Credentials {
                key_id,
                secret,
                token,
                from: format!("AWS profile {profile_name}"),
            });
        }
        Err(Error::config(
            "credentials",
            format!(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE \
                 (profile {profile_name:?} has no aws_access_key_id / aws_secret_access_key), \
                 or access_key_id and secret_access_key_file"
            ),
        ))
    }
}

impl ResolvedS3 {
    /// The object_store client for `bucket`, retrying `retries` times.
    pub(crate) fn builder(&self, bucket: &str, retries: usize) -> AmazonS3Builder {
        let c = &self.credentials;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&self.region)
            .with_access_key_id(&c.key_id)
            .with_secret_access_key(&c.secret)
            .with_virtual_hosted_style_request(!self.path_style)
            // Ordinary signed bodies: no aws-chunked streaming signatures,
            // which Swift's S3 API (2.30) rejects, and no checksum trailers.
            .with_unsigned_payload(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(self.tuning.retry(retries))
            .with_client_options(self.tuning.client(self.endpoint.as_deref()));
        if let Some(token) = &c.token {
            b = b.with_token(token);
        }
        if let Some(endpoint) = &self.endpoint {
            // With virtual hosts object_store wants the bucket in the endpoint.
            let endpoint = if self.path_style {
                endpoint.clone()
            } else {
                let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", endpoint));
                format!("{scheme}://{bucket}.{host}")
            };
            b = b.with_endpoint(endpoint);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn explicit_keys_win_over_the_environment_over_profiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            "[p]\naws_access_key_id = AKPROFILE\naws_secret_access_key = sp\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("config"), "[profile p]\nregion = eu-north-1\n").unwrap();
        let files = [
            ("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("credentials")),
            ("AWS_CONFIG_FILE", dir.path().join("config")),
        ];
        let mut vars = env(&[
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
            ("AWS_PROFILE", "p"),
        ]);
        vars.extend(files.iter().map(|(k, v)| (k.to_string(), v.display().to_string())));

        let explicit = S3Config {
            access_key_id: Some("AKCONF".into()),
            secret_access_key_file: Some("secret".into()),
            region: Some("r1".into()),
            ..Default::default()
        };
        let r = explicit.resolve(dir.path(), &vars).unwrap();
        assert_eq!(
            (r.credentials.key_id.as_str(), r.credentials.secret.as_str()),
            ("AKCONF", "from-file")
        );
        assert_eq!(r.region, "r1");

        let r = S3Config::default().resolve(dir.path(), &vars).unwrap();
        assert_eq!(
            (r.credentials.key_id.as_str(), r.credentials.secret.as_str()),
            ("AKENV", "senv")
        );
        assert_eq!(r.region, "eu-north-1", "region from the profile");
        assert!(!r.path_style, "AWS proper: virtual hosts");

        vars.remove("AWS_ACCESS_KEY_ID");
        vars.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9000/".into());
        let r = S3Config::default().resolve(dir.path(), &vars).unwrap();
        assert_eq!(r.credentials.key_id, "AKPROFILE");
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(r.path_style, "custom endpoint: path style");
        let shown = format!("{r:?}");
        assert!(!shown.contains("\"sp\""), "{shown}");
    }

    #[test]
    fn missing_credentials_name_the_variables() {
        let dir = tempfile::tempdir().unwrap();
        let vars = env(&[("HOME", dir.path().to_str().unwrap())]);
        let e = S3Config::default().resolve(dir.path(), &vars).unwrap_err().to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID") && e.contains("AWS_PROFILE"), "{e}");
        let vars = env(&[("HOME", dir.path().to_str().unwrap()), ("AWS_PROFILE", "nope")]);
        let e = S3Config::default().resolve(dir.path(), &vars).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let secret_in_env = env(&[("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "hush-hush")]);
        let r = S3Config::default().resolve(dir.path(), &secret_in_env).unwrap();
        assert!(!format!("{r:?}").contains("hush-hush"));
    }
}
