//! Per-profile hooks: `before_backup`, `after_backup`, `on_error` — argv
//! arrays (or lists of them) run in the workspace folder with a timeout,
//! their output logged, never printed on stdout.
//!
//! Environment of every hook (besides this process's, minus the
//! passphrase variables): `BACKUPAPPS_TARGET` (`app/profile`),
//! `BACKUPAPPS_APP`, `BACKUPAPPS_PROFILE`, `BACKUPAPPS_HOME` (the
//! workspace), `BACKUPAPPS_HOOK` (which hook); `after_backup` also gets
//! `BACKUPAPPS_BACKUP_ID` and `BACKUPAPPS_STATUS=ok`; `on_error` gets
//! `BACKUPAPPS_STATUS=failed` and `BACKUPAPPS_ERROR` (the error's text).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use backup_command::{run_hook, CommandSpec, Line, LineSink};
use serde::{Deserialize, Deserializer, Serialize};

use crate::workspace::{Profile, Workspace};

/// `hook_timeout` when not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Environment variables hooks, command sources and restore commands never
/// inherit: key passphrases and the store's credentials (whoever holds those
/// can write to the store). Database variables (`PG*`) stay: dump programs
/// such as `pg_dumpall` need them.
pub const SECRET_ENV: [&str; 11] = [
    "BACKUPAPPS_PASSPHRASE",
    "BACKUPAPPS_SIGNING_PASSPHRASE",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "OS_PASSWORD",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_AUTH_TOKEN",
    "ST_KEY",
];

/// One argv (`["pg_dumpall", "-g", "-f", "data/g.sql"]`) or several, run in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HookCommands {
    /// One program and its arguments.
    One(Vec<String>),
    /// Several, run in order; the first failure stops the rest.
    Many(Vec<Vec<String>>),
}

impl HookCommands {
    /// The argvs, in order.
    pub fn argvs(&self) -> Vec<Vec<String>> {
        match self {
            HookCommands::One(argv) => vec![argv.clone()],
            HookCommands::Many(argvs) => argvs.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for HookCommands {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(Vec<String>),
            Many(Vec<Vec<String>>),
        }
        let hooks = match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected an argv array such as [\"pg_dumpall\", \"--globals-only\", \"-f\", \"data/globals.sql\"], or a list of them",
            )
        })? {
            Raw::One(argv) => HookCommands::One(argv),
            Raw::Many(argvs) => HookCommands::Many(argvs),
        };
        if hooks
            .argvs()
            .iter()
            .any(|a| a.first().is_none_or(|p| p.trim().is_empty()))
        {
            return Err(serde::de::Error::custom(
                "an empty command: give the program first, e.g. [\"/usr/local/bin/prepare\", \"--quick\"]",
            ));
        }
        Ok(hooks)
    }
}

/// `deserialize_with` for `hook_timeout`: a duration such as `"5m"`, `"90s"`.
pub fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    if let Some(t) = &text {
        parse_timeout(t).map_err(serde::de::Error::custom)?;
    }
    Ok(text)
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{text:?} is not a duration such as \"5m\", \"90s\" or \"1h\"")),
    }
}

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Before the backup starts; failing fails the backup.
    BeforeBackup,
    /// After a backup was stored.
    AfterBackup,
    /// After a backup (or its `before_backup`) failed.
    OnError,
}

impl Hook {
    /// The key in the profile.
    pub fn key(self) -> &'static str {
        match self {
            Hook::BeforeBackup => "before_backup",
            Hook::AfterBackup => "after_backup",
            Hook::OnError => "on_error",
        }
    }
}

/// What a hook is told besides the profile.
#[derive(Debug, Default)]
pub struct HookEnv<'a> {
    /// The stored backup (`after_backup`).
    pub backup_id: Option<&'a str>,
    /// The failure (`on_error`).
    pub error: Option<&'a str>,
}

/// Runs `profile`'s `hook`, if configured: each argv in order, each with
/// `hook_timeout`, stopping at the first failure.
///
/// # Errors
/// A hook that could not start, exited non-zero, or timed out, naming the
/// profile file and the key.
pub async fn run(ws: &Workspace, profile: &Profile, hook: Hook, env: &HookEnv<'_>) -> Result<()> {
    let s = &profile.settings;
    let commands = match hook {
        Hook::BeforeBackup => &s.before_backup,
        Hook::AfterBackup => &s.after_backup,
        Hook::OnError => &s.on_error,
    };
    let Some(commands) = commands else { return Ok(()) };
    let limit = match &s.hook_timeout {
        Some(t) => parse_timeout(t).map_err(anyhow::Error::msg)?,
        None => DEFAULT_TIMEOUT,
    };
    let target = profile.target();
    for argv in commands.argvs() {
        let mut spec = CommandSpec::new(argv)?
            .with_dir(&ws.home)
            .with_env("BACKUPAPPS_TARGET", &target)
            .with_env("BACKUPAPPS_APP", &profile.app)
            .with_env("BACKUPAPPS_PROFILE", &profile.name)
            .with_env("BACKUPAPPS_HOME", ws.home.display().to_string())
            .with_env("BACKUPAPPS_HOOK", hook.key());
        for key in SECRET_ENV {
            spec = spec.without_env(key);
        }
        match hook {
            Hook::BeforeBackup => {}
            Hook::AfterBackup => spec = spec.with_env("BACKUPAPPS_STATUS", "ok"),
            Hook::OnError => spec = spec.with_env("BACKUPAPPS_STATUS", "failed"),
        }
        if let Some(id) = env.backup_id {
            spec = spec.with_env("BACKUPAPPS_BACKUP_ID", id);
        }
        if let Some(error) = env.error {
            spec = spec.with_env("BACKUPAPPS_ERROR", error);
        }
        tracing::info!(target_profile = %target, hook = hook.key(), program = spec.program(), "running hook");
        // As the library's source error: a failed run (exit status 1), not a configuration error.
        let ran = run_hook(&spec, limit, sink(&target, hook))
            .await
            .map_err(backup_core::Error::from);
        ran.with_context(|| {
            format!(
                "{}: {} hook {}",
                profile.file.display(),
                hook.key(),
                if hook == Hook::BeforeBackup {
                    "failed, so the backup did not start"
                } else {
                    "failed"
                }
            )
        })?;
    }
    Ok(())
}

/// `check`: whether every hook's program is found (on `PATH`, or at its
/// path in the workspace); `None` without hooks.
pub fn check_programs(ws: &Workspace, profile: &Profile) -> Option<Result<String>> {
    let s = &profile.settings;
    let hooks = [
        (Hook::BeforeBackup, &s.before_backup),
        (Hook::AfterBackup, &s.after_backup),
        (Hook::OnError, &s.on_error),
    ];
    let mut found = 0;
    let mut missing = Vec::new();
    for (hook, commands) in hooks {
        for argv in commands.iter().flat_map(HookCommands::argvs) {
            let program = argv.first().cloned().unwrap_or_default();
            match backup_command::find_program(&program, &ws.home) {
                Some(_) => found += 1,
                None => missing.push(format!("{} {program}", hook.key())),
            }
        }
    }
    if found == 0 && missing.is_empty() {
        return None;
    }
    Some(if missing.is_empty() {
        Ok(format!("{found} hook program(s) found"))
    } else {
        Err(anyhow::anyhow!(
            "not found on PATH: {} (install it, or give its full path)",
            missing.join(", ")
        ))
    })
}

/// Hook output as log events (stderr), never stdout: `-q` and `--json` keep it off the terminal's results.
fn sink(target: &str, hook: Hook) -> LineSink {
    let target = target.to_owned();
    Arc::new(move |line: Line<'_>| {
        tracing::info!(
            target_profile = %target,
            hook = hook.key(),
            program = line.program,
            stream = line.stream.name(),
            "hook: {}",
            line.text
        );
    })
}

/// Runs one backup (`work`) between the profile's hooks: `before_backup`
/// first — when it fails the backup does not start (no manifest, nothing
/// stored) and the run fails —, then `after_backup` with the stored backup's
/// id, or `on_error` with the error. An `after_backup` or `on_error` that
/// fails is logged; the backup's own result stands (a stored backup stays
/// listed). Runs inside the caller's `interrupt::cancellable`, so a signal
/// kills whichever hook is running.
///
/// # Errors
/// `before_backup`'s failure, or `work`'s.
pub async fn around_backup(
    ws: &Workspace,
    profile: &Profile,
    work: impl std::future::Future<Output = Result<backup_core::Manifest>>,
) -> Result<backup_core::Manifest> {
    let result = match run(ws, profile, Hook::BeforeBackup, &HookEnv::default()).await {
        Ok(()) => work.await,
        Err(e) => Err(e),
    };
    match &result {
        Ok(m) => {
            let env = HookEnv {
                backup_id: Some(&m.id),
                error: None,
            };
            if let Err(e) = run(ws, profile, Hook::AfterBackup, &env).await {
                tracing::error!(target_profile = %profile.target(), error = %format!("{e:#}"), "backup {} stored, but its after_backup hook failed", m.id);
            }
        }
        Err(e) => {
            let text = format!("{e:#}");
            let env = HookEnv {
                backup_id: None,
                error: Some(&text),
            };
            if let Err(he) = run(ws, profile, Hook::OnError, &env).await {
                tracing::error!(target_profile = %profile.target(), error = %format!("{he:#}"), "on_error hook failed");
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_take_one_argv_or_a_list() {
        #[derive(Deserialize)]
        struct T {
            h: HookCommands,
        }
        let one: T = toml::from_str("h = [\"a\", \"b\"]").unwrap();
        assert_eq!(one.h.argvs(), vec![vec!["a".to_owned(), "b".to_owned()]]);
        let many: T = toml::from_str("h = [[\"a\"], [\"b\", \"c\"]]").unwrap();
        assert_eq!(many.h.argvs().len(), 2);
        assert!(toml::from_str::<T>("h = []").is_err());
        assert!(toml::from_str::<T>("h = \"a b\"").is_err());
        assert!(toml::from_str::<T>("h = [[]]").is_err());
    }

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_timeout("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
