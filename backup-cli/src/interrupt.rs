//! SIGINT and SIGTERM during `backup`, `restore`, `verify`, `mirror` and
//! `prune` (DESIGN §7): the work is stopped by dropping its future — the
//! libraries' `Drop` guards remove staging folders, partial files and dumps
//! at once and defer what needs the network (store leases, temporary
//! databases) to `backup_core::cleanup`, which is awaited here — then the
//! command reports the failure and the process exits 130 or 143. A second
//! signal exits at once.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Longest wait for deferred cleanups before exiting anyway: a lease expires
/// by itself and a leftover temporary database is dropped by the next run.
const CLEANUP_LIMIT: Duration = Duration::from_secs(30);

/// The signal that cut a run short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, systemd, the scheduler).
    Terminate,
}

impl Signal {
    /// 128 + the signal number, as shells report a run killed by it.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// The error a run stopped by a signal ends with; the exit status is the
/// signal's ([`Signal::exit_code`]).
#[derive(Debug)]
pub struct Interrupted(pub Signal);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}", self.0.name())
    }
}

impl std::error::Error for Interrupted {}

/// The signal `error` comes from, if it is an interruption.
pub fn signal_of(error: &anyhow::Error) -> Option<Signal> {
    error.chain().find_map(|c| c.downcast_ref::<Interrupted>()).map(|i| i.0)
}

static RECEIVED: OnceLock<watch::Receiver<Option<Signal>>> = OnceLock::new();

/// Starts listening for SIGINT and SIGTERM (instead of dying at once). Only
/// the commands that clean up call it; the others keep the default.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn install() -> Result<()> {
    if RECEIVED.get().is_some() {
        return Ok(());
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                _ = interrupt.recv() => Signal::Interrupt,
                _ = terminate.recv() => Signal::Terminate,
            };
            if tx.borrow().is_some() {
                // The operator insists: no more cleaning up.
                eprintln!("{} again: exiting at once", received.name());
                std::process::exit(received.exit_code().into());
            }
            let _ = tx.send(Some(received));
        }
    });
    let _ = RECEIVED.set(rx);
    Ok(())
}

/// Runs `work` until it ends or a signal comes. On a signal the work is
/// dropped, the cleanups it deferred are awaited, one line naming `what`
/// is logged, and the result is [`Interrupted`]. Without [`install`], just
/// `work`.
///
/// # Errors
/// Those of `work`, or [`Interrupted`].
pub async fn cancellable<T>(what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    let Some(mut received) = RECEIVED.get().cloned() else {
        return work.await;
    };
    let signal = tokio::select! {
        // A signal that came before the work started wins as well.
        biased;
        Ok(signal) = received.wait_for(Option::is_some) => *signal,
        result = work => return result,
    };
    let signal = signal.unwrap_or(Signal::Terminate);
    let left = backup_core::cleanup::finish(CLEANUP_LIMIT).await;
    if left.is_empty() {
        tracing::error!(
            signal = signal.name(),
            "{what} interrupted: stopped, and removed what it had started"
        );
    } else {
        tracing::error!(
            signal = signal.name(),
            unfinished = %left.join("; "),
            "{what} interrupted: stopped, but not every cleanup finished"
        );
    }
    Err(Interrupted(signal).into())
}
