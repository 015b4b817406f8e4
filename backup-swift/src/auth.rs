//! Getting a token and the storage URL: v1 (tempauth) or Keystone v3.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{Credentials, Project};
use crate::error::SwiftError;

/// A token and where to use it.
#[derive(Clone)]
pub(crate) struct Session {
    pub storage_url: String,
    pub token: String,
    /// Renew after this instant (a margin before the token expires).
    pub renew_after: Instant,
}

/// Authenticates once.
pub(crate) async fn authenticate(http: &reqwest::Client, creds: &Credentials) -> Result<Session, SwiftError> {
    match creds {
        Credentials::V1 { auth_url, user, key } => v1(http, auth_url, user, key).await,
        Credentials::V3Password {
            auth_url,
            username,
            password,
            user_domain,
            project,
            region,
            interface,
        } => {
            let scope = match project {
                Project::Id(id) => json!({"project": {"id": id}}),
                Project::Name { name, domain } => json!({"project": {"name": name, "domain": {"name": domain}}}),
            };
            let body = json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": username, "domain": {"name": user_domain}, "password": password}}},
                "scope": scope}});
            v3(http, auth_url, body, region.as_deref(), interface).await
        }
        Credentials::V3AppCredential {
            auth_url,
            id,
            secret,
            region,
            interface,
        } => {
            let body = json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": id, "secret": secret}}}});
            v3(http, auth_url, body, region.as_deref(), interface).await
        }
    }
}

async fn v1(http: &reqwest::Client, auth_url: &str, user: &str, key: &str) -> Result<Session, SwiftError> {
    let fail = |reason: String| SwiftError::Auth {
        auth_url: auth_url.to_owned(),
        reason,
    };
    let resp = http
        .get(auth_url)
        .header("X-Auth-User", user)
        .header("X-Auth-Key", key)
        .send()
        .await
        .map_err(|e| fail(format!("cannot reach it: {e}")))?;
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        return Err(fail(crate::error::hint(status, "")));
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let storage_url = header("X-Storage-Url").ok_or_else(|| fail("no X-Storage-Url in the answer".into()))?;
    let token = header("X-Auth-Token").ok_or_else(|| fail("no X-Auth-Token in the answer".into()))?;
    let lifetime = header("X-Auth-Token-Expires")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(3600);
    Ok(Session {
        storage_url,
        token,
        renew_after: renew_after(lifetime),
    })
}

async fn v3(
    http: &reqwest::Client,
    auth_url: &str,
    body: Value,
    region: Option<&str>,
    interface: &str,
) -> Result<Session, SwiftError> {
    let fail = |reason: String| SwiftError::Auth {
        auth_url: auth_url.to_owned(),
        reason,
    };
    let resp = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .map_err(|e| fail(format!("cannot reach Keystone: {e}")))?;
    let status = resp.status().as_u16();
    let token = resp
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.map_err(|e| fail(e.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(fail(crate::error::hint(status, "")));
    }
    let token = token.ok_or_else(|| fail("no X-Subject-Token in the answer".into()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| fail(format!("unreadable answer: {e}")))?;
    let lifetime = doc["token"]["expires_at"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (t.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64)
        .unwrap_or(3600);
    let storage_url = endpoint(&doc, region, interface).map_err(fail)?;
    Ok(Session {
        storage_url,
        token,
        renew_after: renew_after(lifetime),
    })
}

/// The object-store endpoint of the catalog for `region` and `interface`.
fn endpoint(doc: &Value, region: Option<&str>, interface: &str) -> Result<String, String> {
    let empty = Vec::new();
    let catalog = doc["token"]["catalog"].as_array().unwrap_or(&empty);
    let endpoints: Vec<&Value> = catalog
        .iter()
        .filter(|s| s["type"] == "object-store")
        .flat_map(|s| s["endpoints"].as_array().unwrap_or(&empty))
        .collect();
    if endpoints.is_empty() {
        return Err("the catalog has no object-store service: is Swift registered in this Keystone?".into());
    }
    let found = endpoints
        .iter()
        .find(|e| e["interface"] == interface && region.is_none_or(|r| e["region"] == r || e["region_id"] == r));
    match found {
        Some(e) => e["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "endpoint without url".into()),
        None => {
            let available: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["region"].as_str().unwrap_or("?"),
                        e["interface"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            Err(format!(
                "no object-store endpoint in region {} with interface {interface}; available: {}",
                region.unwrap_or("(any)"),
                available.join(", ")
            ))
        }
    }
}

/// Renew a minute before expiry (or at half the lifetime of short tokens).
fn renew_after(lifetime_secs: u64) -> Instant {
    let margin = 60.min(lifetime_secs / 2);
    Instant::now() + Duration::from_secs(lifetime_secs.saturating_sub(margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_chosen_by_region_and_interface() {
        let doc = json!({"token": {"catalog": [
            {"type": "identity", "endpoints": []},
            {"type": "object-store", "endpoints": [
                {"interface": "public", "region": "A", "url": "https://a-pub"},
                {"interface": "internal", "region": "A", "url": "https://a-int"},
                {"interface": "public", "region": "B", "url": "https://b-pub"}]}]}});
        assert_eq!(endpoint(&doc, Some("B"), "public").unwrap(), "https://b-pub");
        assert_eq!(endpoint(&doc, Some("A"), "internal").unwrap(), "https://a-int");
        let err = endpoint(&doc, Some("C"), "public").unwrap_err();
        assert!(
            err.contains("region C") && err.contains("A/public") && err.contains("B/public"),
            "{err}"
        );
    }
}
