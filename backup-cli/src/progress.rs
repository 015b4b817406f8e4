//! A one-line progress display on an interactive terminal; nothing at all
//! under cron, in pipes, or with `-q`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::output::human_size;

/// A running display; [`Progress::finish`] clears it.
pub struct Progress {
    /// Bytes done so far; the work adds to it.
    pub counter: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a display labelled `label` when stderr is a terminal and output
    /// is not quieted; otherwise a counter nobody shows.
    pub fn start(label: &str) -> Progress {
        let counter = Arc::new(AtomicU64::new(0));
        let task = (!crate::output::quiet() && std::io::stderr().is_terminal()).then(|| {
            let (counter, label) = (counter.clone(), label.to_owned());
            tokio::spawn(async move {
                let started = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let done = counter.load(Ordering::Relaxed);
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                    eprint!("\r\x1b[2K{label}: {} ({}/s)", human_size(done), human_size(rate as u64));
                    let _ = std::io::stderr().flush();
                }
            })
        });
        Progress { counter, task }
    }

    /// Stops and clears the display (dropping it does the same).
    pub fn finish(self) {}
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}
