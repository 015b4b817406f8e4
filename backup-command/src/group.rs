//! A child's process group, killed when the run that started it is dropped.

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::Child;

/// Kills the whole process group on drop, unless disarmed: a cancelled run
/// (SIGINT, SIGTERM, a failed upload) must not leave a dump or a hook running.
#[derive(Debug)]
pub(crate) struct Group(Option<Pid>);

impl Group {
    /// The group of `child`, started with `process_group(0)`: its id is the child's pid.
    pub(crate) fn of(child: &Child) -> Self {
        Group(child.id().and_then(|id| Pid::from_raw(i32::try_from(id).ok()?)))
    }

    /// Asks every process of the group to end.
    pub(crate) fn terminate(&self) {
        if let Some(pid) = self.0 {
            let _ = kill_process_group(pid, Signal::TERM);
        }
    }

    /// Kills every process of the group now (once).
    pub(crate) fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }

    /// The program ended on its own: leave the group alone.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}
