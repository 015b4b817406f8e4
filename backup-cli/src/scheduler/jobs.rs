//! The jobs the profiles ask for: `schedule` (backup), `[mirror] schedule`
//! (mirror), `[verify] schedule` (restore drill).

use anyhow::Result;
use chrono::{DateTime, Utc};
use croner::Cron;
use serde::Serialize;

use crate::workspace::Workspace;

/// What a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `backup app/profile` (with its prune).
    Backup,
    /// `mirror app/profile`.
    Mirror,
    /// `verify --drill app/profile`: the restore drill.
    Verify,
}

impl JobKind {
    /// `backup`, `mirror`, `verify`.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Mirror => "mirror",
            JobKind::Verify => "verify",
        }
    }

    /// The key that schedules it, for messages.
    fn key(self) -> &'static str {
        match self {
            JobKind::Backup => "schedule",
            JobKind::Mirror => "[mirror] schedule",
            JobKind::Verify => "[verify] schedule",
        }
    }
}

/// One scheduled job.
#[derive(Debug, Clone)]
pub struct Job {
    /// `backup app/profile`: the job's identity in logs and the queue.
    pub name: String,
    /// What it runs.
    pub kind: JobKind,
    /// `app/profile`.
    pub target: String,
    /// The cron expression as written.
    pub expression: String,
    cron: Cron,
}

impl Job {
    /// The `backupapps` arguments that run it.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![self.kind.name().to_owned()];
        if self.kind == JobKind::Verify {
            args.push("--drill".to_owned());
        }
        args.push(self.target.clone());
        args
    }

    /// The first fire time after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// The jobs of every profile, in profile order (a profile's backup before
/// its mirror and its drill).
///
/// # Errors
/// A bad cron expression, naming the profile file and key.
pub fn jobs(ws: &Workspace) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for profile in ws.profiles.values() {
        let s = &profile.settings;
        let wanted = [
            (JobKind::Backup, s.schedule.as_ref()),
            (JobKind::Mirror, s.mirror.as_ref().and_then(|m| m.schedule.as_ref())),
            (JobKind::Verify, s.verify.schedule.as_ref()),
        ];
        for (kind, expression) in wanted {
            let Some(expression) = expression else { continue };
            // Checked at load already; parsed again for the times.
            let cron = crate::validate::parse_cron(expression)
                .map_err(|e| anyhow::anyhow!("{} {}: {e}", profile.file.display(), kind.key()))?;
            jobs.push(Job {
                name: format!("{} {}", kind.name(), profile.target()),
                kind,
                target: profile.target(),
                expression: expression.clone(),
                cron,
            });
        }
    }
    Ok(jobs)
}

/// A job firing every minute, for unit tests.
#[cfg(test)]
pub fn testing_job(kind: JobKind, target: &str) -> Job {
    Job {
        name: format!("{} {target}", kind.name()),
        kind,
        target: target.to_owned(),
        expression: "* * * * *".to_owned(),
        cron: crate::validate::parse_cron("* * * * *").unwrap(),
    }
}
