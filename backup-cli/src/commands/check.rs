//! `check [TARGET..] [--json]`: validate the configuration and test every
//! store, key, folder and database a run would need, naming what is missing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use backup_core::list_backups;
use serde_json::{json, Value};

use crate::settings::Kind;
use crate::wiring;
use crate::workspace::{Profile, Workspace};

struct Report {
    items: Vec<Value>,
}

impl Report {
    fn add(&mut self, target: &str, check: &str, result: Result<String>) {
        let (ok, detail) = match result {
            Ok(detail) => (true, detail),
            Err(e) => (false, format!("{e:#}")),
        };
        self.items
            .push(json!({"target": target, "check": check, "ok": ok, "detail": detail}));
    }

    /// A check whose failure does not stop runs (the exit status stays 0):
    /// `ok` false with `"warning": true`, shown as WARN.
    fn warn(&mut self, target: &str, check: &str, result: Result<String>) {
        self.add(target, check, result);
        if let Some(item) = self.items.last_mut().filter(|i| i["ok"] == false) {
            item["warning"] = json!(true);
        }
    }
}

/// Runs every check of each selected profile; exit status 2 when any failed.
///
/// # Errors
/// Bad arguments only: each problem is a FAIL line.
pub async fn run(ws: &Workspace, targets: &[String], json_output: bool) -> Result<ExitCode> {
    let mut report = Report { items: Vec::new() };
    report.add(
        "workspace",
        "configuration",
        Ok(format!(
            "{} in {}",
            crate::output::count(ws.profiles.len(), "profile"),
            ws.home.display()
        )),
    );
    for profile in ws.select(targets)? {
        check_profile(ws, profile, &mut report).await;
    }
    let failed = report
        .items
        .iter()
        .filter(|i| i["ok"] == false && i["warning"] != true)
        .count();
    if json_output {
        println!("{}", serde_json::to_string_pretty(&Value::Array(report.items))?);
    } else {
        for item in &report.items {
            let mark = match (item["ok"] == true, item["warning"] == true) {
                (true, _) => "OK  ",
                (false, true) => "WARN",
                (false, false) => "FAIL",
            };
            println!(
                "{mark} {:<20} {:<18} {}",
                item["target"].as_str().unwrap_or_default(),
                item["check"].as_str().unwrap_or_default(),
                item["detail"].as_str().unwrap_or_default()
            );
        }
        println!("{} checks, {failed} failed", report.items.len());
    }
    Ok(ExitCode::from(if failed > 0 { 2 } else { 0 }))
}

async fn check_profile(ws: &Workspace, profile: &Profile, report: &mut Report) {
    let target = profile.target();
    let s = &profile.settings;
    let origin = profile.file.display().to_string();
    report.add(
        &target,
        "store",
        async {
            let store = wiring::store(ws, s, &origin)?;
            let trust = wiring::trust(ws, s)?;
            let listing = list_backups(&store, &profile.profile_ref(), &trust).await?;
            // A backup needs to write and to take leases: prove both.
            probe_store(&store, profile.dest_prefix()).await?;
            if !listing.untrusted.is_empty() {
                anyhow::bail!(
                    "{} reachable and writable, {}, but {} NOT trusted: {}; see `backupapps list`",
                    store.location(),
                    crate::output::count(listing.trusted.len(), "trusted backup"),
                    listing.untrusted.len(),
                    listing
                        .untrusted
                        .iter()
                        .map(|u| format!("{} ({})", u.id, u.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            Ok(format!(
                "{} reachable and writable, {}",
                store.location(),
                crate::output::count(listing.trusted.len(), "trusted backup")
            ))
        }
        .await
        .map_err(|e| store_hint(e, s.store.url.as_deref().unwrap_or_default())),
    );
    for url in s.store.copy_stores() {
        let checked = async {
            let store = wiring::store_at(ws, s, url, &origin)?;
            probe_store(&store, profile.dest_prefix()).await?;
            Ok(format!("{} reachable and writable", store.location()))
        }
        .await;
        report.add(&target, "copy store", checked.map_err(|e| store_hint(e, url)));
    }
    report.add(
        &target,
        "public keys",
        wiring::encryptor(ws, s).map(|e| format!("encrypts to {}", e.recipients().join(", "))),
    );
    report.add(
        &target,
        "signing key",
        wiring::signer(ws, s).map(|signer| format!("signs as {}", signer.fingerprint())),
    );
    report.add(
        &target,
        "signers",
        wiring::trust(ws, s).map(|t| {
            let mut text = format!("trusts backups signed by {}", t.signers().fingerprints().join(", "));
            if s.encryption.allow_unsigned {
                text.push_str("; UNSAFE: allow_unsigned = true also reads unsigned backups");
            }
            text
        }),
    );
    let needs_secret = s.mirror.is_some();
    report.add(
        &target,
        "secret key",
        match (&s.encryption.secret_key, needs_secret) {
            (Some(_), _) => wiring::decryptor(ws, s).map(|_| "unlocks with the configured passphrase".to_owned()),
            (None, true) => Err(anyhow::anyhow!(
                "[mirror] needs [encryption] secret_key and its passphrase on this host"
            )),
            (None, false) => Ok("not configured: fine for backing up; restore and full verify need it".to_owned()),
        },
    );
    report.add(&target, "secret files", secret_permissions(ws, profile));
    if let Some(found) = crate::hooks::check_programs(ws, profile) {
        report.warn(&target, "hooks", found);
    }
    match profile.kind() {
        Kind::Files => {
            let missing: Vec<String> = s
                .paths
                .iter()
                .map(|p| ws.path(p))
                .filter(|p| !p.exists())
                .map(|p| p.display().to_string())
                .collect();
            report.add(
                &target,
                "paths",
                if missing.is_empty() {
                    Ok(format!("{} present", crate::output::count(s.paths.len(), "path")))
                } else {
                    Err(anyhow::anyhow!(
                        "missing: {} (is the volume mounted?)",
                        missing.join(", ")
                    ))
                },
            );
        }
        Kind::Command => {
            report.add(&target, "command", crate::kinds::program_on_path(ws, &s.command));
            if !s.restore_command.is_empty() {
                report.warn(
                    &target,
                    "restore command",
                    crate::kinds::program_on_path(ws, &s.restore_command),
                );
            }
        }
        Kind::Postgres => {
            report.add(
                &target,
                "database",
                async {
                    let (conn, config) = wiring::pg_conn(ws, profile)?;
                    let facts = backup_pg::PgSource::new(conn.clone(), config).facts().await?;
                    Ok(format!(
                        "{conn}: PostgreSQL {}, pg_dump {}, {}",
                        facts.server_version,
                        facts.pg_dump_version,
                        crate::output::human_size(facts.database_size.max(0) as u64)
                    ))
                }
                .await,
            );
            report.warn(&target, "restore role", restore_rights(ws, profile).await);
            if s.mirror.is_some() {
                report.add(
                    &target,
                    "mirror server",
                    async {
                        let Some((test, config)) = wiring::mirror(ws, profile)? else {
                            unreachable!("checked above")
                        };
                        let admin = test.with_database(&test.maintenance_db);
                        admin.connect().await?;
                        let missing: Vec<String> = config
                            .sanitize
                            .iter()
                            .map(|f| ws.path(f))
                            .filter(|f| !f.is_file())
                            .map(|f| f.display().to_string())
                            .collect();
                        if !missing.is_empty() {
                            anyhow::bail!("sanitize file(s) missing: {}", missing.join(", "));
                        }
                        Ok(format!("{admin} reachable; replaces {}", test.database))
                    }
                    .await,
                );
            }
        }
    }
}

/// Whether `restore --to-db` with the profile's `[restore]` settings could
/// create and fill a new database: probed with a name that does not exist.
/// Backups work without it, hence a warning.
async fn restore_rights(ws: &Workspace, profile: &Profile) -> Result<String> {
    let (conn, options) = wiring::restore_conn(ws, profile, &Default::default())?;
    let admin = conn.with_database(&conn.maintenance_db);
    let probe = format!("backupapps_check_{:08x}", rand::random::<u32>());
    backup_pg::check_restore_rights(&admin, &probe, &options, false)
        .await
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "restore --to-db as {} would fail (or set another role in [restore] user)",
                admin.user
            ))
        })?;
    Ok(format!("{admin} may create databases and restore as configured"))
}

/// Secret keys and password files readable by group or others are a FAIL
/// (`backup`, `restore`, `verify`, `mirror` refuse such keys and passphrase
/// files when they read them; this names them all at once).
fn secret_permissions(ws: &Workspace, profile: &Profile) -> Result<String> {
    let s = &profile.settings;
    let e = &s.encryption;
    let mut files: Vec<PathBuf> = e.secret_key.as_ref().map(|k| k.paths()).unwrap_or_default();
    files.extend(e.passphrase_file.as_ref().map(|f| f.paths()).unwrap_or_default());
    files.extend(
        [
            &e.signing_key,
            &e.signing_passphrase_file,
            &s.source.as_ref().and_then(|c| c.password_file.clone()),
            &s.mirror.as_ref().and_then(|m| m.config.password_file.clone()),
        ]
        .into_iter()
        .flatten()
        .cloned(),
    );
    let files: Vec<PathBuf> = files.iter().map(|p| ws.path(p)).collect();
    let open: Vec<String> = files
        .iter()
        .filter(|f| crate::private::open_to_others(f))
        .map(|f| f.display().to_string())
        .collect();
    if open.is_empty() {
        Ok(format!(
            "{}, none readable by others",
            crate::output::count(files.len(), "secret file")
        ))
    } else {
        anyhow::bail!(
            "readable by group or others: {}; run chmod 600 on them",
            open.join(", ")
        )
    }
}

/// Writes, conditionally creates (what leases need) and lists under
/// `prefix`, removing what it wrote.
async fn probe_store(store: &backup_core::DynStore, prefix: &str) -> Result<()> {
    let probe = format!("{prefix}/.check-{:08x}", rand::random::<u32>());
    let body = bytes::Bytes::from_static(b"backupapps check");
    store.put(&probe, body.clone()).await?;
    store.delete(&probe).await?;
    let lease = format!("{probe}-lease");
    let created = store.put_if_absent(&lease, body.clone()).await?;
    let again = store.put_if_absent(&lease, body).await;
    store.delete(&lease).await?;
    if !created || again? {
        anyhow::bail!(
            "{}: creating an object only when absent (for leases) did not work",
            store.location()
        );
    }
    store.list(prefix).await?;
    Ok(())
}

/// Names the variables and keys that reach the store at `url`.
fn store_hint(e: anyhow::Error, url: &str) -> anyhow::Error {
    let hint = if url.starts_with("s3://") {
        "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or [store.s3] \
         access_key_id and secret_access_key_file), the endpoint and region ([store.s3] endpoint, region, \
         path_style; AWS_ENDPOINT_URL, AWS_REGION), that the bucket exists, and for a service without \
         conditional PUT [store.s3] conditional_create = \"auto\""
    } else if url.starts_with("az://") {
        "check the credentials (AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY, \
         AZURE_STORAGE_CONNECTION_STRING, or [store.azure] account, access_key_file, connection_string_file), \
         [store.azure] endpoint, and that the container exists"
    } else if url.starts_with("swift://") {
        "check the OS_* (or ST_*) variables, [store.swift] and the openrc file"
    } else {
        return e;
    };
    e.context(format!("{url}: {hint}"))
}
