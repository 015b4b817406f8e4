//! What S3 and Azure stores share: how large objects go up, how a
//! conditional create is done, retries and timeouts.

use std::path::Path;
use std::time::Duration;

use backup_core::{Error, Result};
use serde::Deserialize;

/// Objects above this size go up in parts (multipart upload / block list).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 << 20;
/// Size of each part of a multipart upload; S3 wants at least 5 MiB.
pub const DEFAULT_PART_SIZE: u64 = 16 << 20;
/// Parts per upload at most: Swift's S3 API allows 1000 (AWS 10 000), so
/// larger objects get larger parts.
pub const MAX_PARTS: u64 = 1000;
/// Smallest part S3 accepts (but for the last).
const MIN_PART_SIZE: u64 = 5 << 20;

/// How [`Store::put_if_absent`](backup_core::Store::put_if_absent) (leases)
/// creates an object only when none is there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConditionalCreate {
    /// A conditional PUT (`If-None-Match: *`); when the service answers that it
    /// does not implement it (501, as Swift 2.30's S3 API does), the
    /// claim protocol instead, with a warning.
    #[default]
    Auto,
    /// Only the conditional PUT: a service without it is an error.
    Native,
    /// The claim protocol (see the crate docs): for services without
    /// conditional PUT whose listings show an object as soon as its PUT
    /// returned.
    Claims,
}

/// Tuning both stores share (fields of `S3Config` / `AzureConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub(crate) multipart_threshold: u64,
    pub(crate) part_size: u64,
    pub(crate) conditional: ConditionalCreate,
    pub(crate) retries: usize,
    pub(crate) timeout: Duration,
}

impl Tuning {
    pub(crate) fn new(
        multipart_threshold: Option<u64>,
        part_size: Option<u64>,
        conditional: Option<ConditionalCreate>,
        retries: Option<u32>,
        timeout_secs: Option<u64>,
    ) -> Result<Tuning> {
        let part_size = part_size.unwrap_or(DEFAULT_PART_SIZE);
        if part_size < MIN_PART_SIZE {
            return Err(Error::config(
                "part_size",
                format!("{part_size} bytes is below the 5 MiB ({MIN_PART_SIZE} bytes) services accept"),
            ));
        }
        Ok(Tuning {
            multipart_threshold: multipart_threshold.unwrap_or(DEFAULT_MULTIPART_THRESHOLD),
            part_size,
            conditional: conditional.unwrap_or_default(),
            retries: retries.unwrap_or(5) as usize,
            timeout: Duration::from_secs(timeout_secs.unwrap_or(120).max(1)),
        })
    }

    /// The part size for an object of `len` bytes: the configured one, or
    /// larger so that it takes at most [`MAX_PARTS`] parts.
    pub(crate) fn part_size_for(&self, len: u64) -> u64 {
        self.part_size.max(len.div_ceil(MAX_PARTS))
    }

    pub(crate) fn retry(&self, retries: usize) -> object_store::RetryConfig {
        object_store::RetryConfig {
            max_retries: retries,
            retry_timeout: Duration::from_secs(180),
            ..Default::default()
        }
    }

    pub(crate) fn client(&self, endpoint: Option<&str>) -> object_store::ClientOptions {
        object_store::ClientOptions::new()
            .with_timeout(self.timeout)
            .with_connect_timeout(Duration::from_secs(30))
            .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
    }
}

/// The first line of the secret file `file` (relative to `base`), read for
/// the setting `field`.
///
/// # Errors
/// [`Error::Config`] naming the setting and the file (never its content).
pub(crate) fn secret_file(base: &Path, file: &Path, field: &str) -> Result<String> {
    let path = base.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::config(field, format!("cannot read {}: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(Error::config(field, format!("{} is empty", path.display())));
    }
    Ok(secret)
}

/// Splits `scheme://NAME[/PREFIX]` into the bucket or container and the
/// prefix, checking both.
///
/// # Errors
/// [`Error::Config`] naming the URL.
pub(crate) fn split_url<'a>(url: &'a str, scheme: &str, what: &str) -> Result<(&'a str, String)> {
    let bad = |reason: String| Error::config(format!("store url {url:?}"), reason);
    let rest = url
        .strip_prefix(scheme)
        .ok_or_else(|| bad(format!("expected {scheme}{}[/PREFIX]", what.to_uppercase())))?;
    let rest = rest.trim_end_matches('/');
    let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid_name {
        return Err(bad(format!(
            "the {what} name {name:?} is empty or has characters other than letters, digits, '-', '.', '_'"
        )));
    }
    if !prefix.is_empty() {
        backup_core::store::validate_key(prefix).map_err(|_| {
            bad(format!(
                "the prefix {prefix:?} must be /-separated names without empty, '.' or '..' parts"
            ))
        })?;
    }
    Ok((name, prefix.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_are_checked() {
        assert_eq!(split_url("s3://b", "s3://", "bucket").unwrap(), ("b", String::new()));
        assert_eq!(
            split_url("s3://b/p/q/", "s3://", "bucket").unwrap(),
            ("b", "p/q".to_owned())
        );
        for bad in ["s3://", "s3:///p", "s3://b/../x", "s3://b//x", "az://b", "s3://b c"] {
            assert!(split_url(bad, "s3://", "bucket").is_err(), "{bad}");
        }
    }

    #[test]
    fn parts_grow_for_huge_objects() {
        let t = Tuning::new(None, Some(5 << 20), None, None, None).unwrap();
        assert_eq!(t.part_size_for(10 << 20), 5 << 20);
        assert_eq!(t.part_size_for(100 << 30), (100u64 << 30).div_ceil(MAX_PARTS));
        assert!(Tuning::new(None, Some(1 << 20), None, None, None).is_err());
    }
}
