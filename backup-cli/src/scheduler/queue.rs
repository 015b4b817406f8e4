//! Which scheduled job runs next: at most `max_concurrent` at once, the
//! others waiting first in, first out. A job fired while its previous run
//! is still queued or running is skipped. A mirror waits while a backup of
//! its profile runs or is queued (jobs behind it may pass it meanwhile); one
//! that waited longer than `mirror_wait` is given up, never run on the
//! previous night's backup.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::jobs::{Job, JobKind};

/// Why a fired job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its previous run is still waiting in the queue.
    StillQueued,
    /// Its previous run is still running.
    StillRunning,
}

impl Skip {
    /// For the metric's `reason` label and the log.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::StillQueued => "still_queued",
            Skip::StillRunning => "still_running",
        }
    }
}

/// What [`Queue::next`] decided.
#[derive(Debug)]
pub enum Next {
    /// Start this job now.
    Start(Job),
    /// This mirror waited too long for its profile's backup: drop it.
    GiveUp(Job),
}

/// The FIFO queue and the set of running jobs.
#[derive(Debug)]
pub struct Queue {
    max_concurrent: usize,
    mirror_wait: Duration,
    waiting: VecDeque<(Job, Instant)>,
    running: HashSet<String>,
}

impl Queue {
    /// An empty queue.
    pub fn new(max_concurrent: usize, mirror_wait: Duration) -> Self {
        Queue {
            max_concurrent: max_concurrent.max(1),
            mirror_wait,
            waiting: VecDeque::new(),
            running: HashSet::new(),
        }
    }

    /// New limits (after a reload); queued and running jobs stay.
    pub fn set_limits(&mut self, max_concurrent: usize, mirror_wait: Duration) {
        self.max_concurrent = max_concurrent.max(1);
        self.mirror_wait = mirror_wait;
    }

    /// A job's fire time came: queued at the end, or skipped.
    ///
    /// # Errors
    /// Why it was skipped.
    pub fn fire(&mut self, job: &Job, now: Instant) -> Result<(), Skip> {
        if self.waiting.iter().any(|(j, _)| j.name == job.name) {
            return Err(Skip::StillQueued);
        }
        if self.running.contains(&job.name) {
            return Err(Skip::StillRunning);
        }
        self.waiting.push_back((job.clone(), now));
        Ok(())
    }

    /// The next job to start (or to give up), if a slot is free.
    pub fn next(&mut self, now: Instant) -> Option<Next> {
        for i in 0..self.waiting.len() {
            let (job, since) = &self.waiting[i];
            if job.kind == JobKind::Mirror && self.backup_pending(&job.target, i) {
                if now.duration_since(*since) > self.mirror_wait {
                    let (job, _) = self.waiting.remove(i)?;
                    return Some(Next::GiveUp(job));
                }
                continue;
            }
            if self.running.len() >= self.max_concurrent {
                return None;
            }
            let (job, _) = self.waiting.remove(i)?;
            self.running.insert(job.name.clone());
            return Some(Next::Start(job));
        }
        None
    }

    /// A started job ended (or could not start).
    pub fn finished(&mut self, name: &str) {
        self.running.remove(name);
    }

    /// Jobs waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Whether a backup of `target` runs, or waits ahead of position `before`.
    fn backup_pending(&self, target: &str, before: usize) -> bool {
        let name = format!("{} {target}", JobKind::Backup.name());
        self.running.contains(&name) || self.waiting.iter().take(before).any(|(j, _)| j.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::jobs::testing_job as job;

    fn started(next: Option<Next>) -> String {
        match next {
            Some(Next::Start(j)) => j.name,
            other => panic!("expected a start, got {other:?}"),
        }
    }

    #[test]
    fn runs_at_most_max_concurrent_in_fifo_order() {
        let now = Instant::now();
        let mut q = Queue::new(2, Duration::from_secs(60));
        for t in ["a/1", "a/2", "a/3"] {
            q.fire(&job(JobKind::Backup, t), now).unwrap();
        }
        assert_eq!(started(q.next(now)), "backup a/1");
        assert_eq!(started(q.next(now)), "backup a/2");
        assert!(q.next(now).is_none(), "two running");
        assert_eq!(q.fire(&job(JobKind::Backup, "a/3"), now), Err(Skip::StillQueued));
        assert_eq!(q.fire(&job(JobKind::Backup, "a/1"), now), Err(Skip::StillRunning));
        q.finished("backup a/2");
        assert_eq!(started(q.next(now)), "backup a/3");
    }

    #[test]
    fn a_mirror_waits_for_its_backup_and_gives_up_after_mirror_wait() {
        let now = Instant::now();
        let mut q = Queue::new(2, Duration::from_secs(60));
        q.fire(&job(JobKind::Backup, "shop/db"), now).unwrap();
        q.fire(&job(JobKind::Mirror, "shop/db"), now).unwrap();
        q.fire(&job(JobKind::Backup, "b/x"), now).unwrap();
        assert_eq!(started(q.next(now)), "backup shop/db");
        // The mirror is passed over while the backup runs; b/x takes the slot.
        assert_eq!(started(q.next(now)), "backup b/x");
        q.finished("backup b/x");
        assert!(q.next(now).is_none(), "the mirror waits though a slot is free");
        q.finished("backup shop/db");
        assert_eq!(started(q.next(now)), "mirror shop/db");
        q.finished("mirror shop/db");

        q.fire(&job(JobKind::Backup, "shop/db"), now).unwrap();
        q.fire(&job(JobKind::Mirror, "shop/db"), now).unwrap();
        assert_eq!(started(q.next(now)), "backup shop/db");
        let later = now + Duration::from_secs(61);
        assert!(matches!(q.next(later), Some(Next::GiveUp(j)) if j.name == "mirror shop/db"));
    }
}
