//! Running a hook: a program with a timeout, its output handed to a sink.

use std::process::Stdio;
use std::time::Duration;

use crate::error::CommandError;
use crate::lines::{spawn_logged, suffix, LineSink, Logged};
use crate::spec::CommandSpec;

/// Time a program gets to end after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);
/// Time to finish reading output after the program ended (a background
/// process it left behind may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// Runs `spec` with no stdin, handing each line of its stdout and stderr to
/// `sink`. After `timeout` the program's process group gets SIGTERM, then
/// SIGKILL. Dropping the future kills the group.
///
/// # Errors
/// [`CommandError::Start`], [`CommandError::Failed`] (non-zero exit or a
/// signal, with the tail of its stderr), [`CommandError::TimedOut`].
pub async fn run_hook(spec: &CommandSpec, timeout: Duration, sink: LineSink) -> Result<(), CommandError> {
    let program = spec.program().to_owned();
    let Logged {
        mut child,
        mut group,
        out,
        err,
    } = spawn_logged(spec, Stdio::null(), sink)?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|source| CommandError::Io {
            program: program.clone(),
            what: "waiting for it",
            source,
        })?,
        Err(_) => {
            group.terminate();
            let _ = tokio::time::timeout(GRACE, child.wait()).await;
            drop(group); // SIGKILL to whatever is left
            out.abort();
            err.abort();
            return Err(CommandError::TimedOut { program, timeout });
        }
    };
    group.disarm();
    let _ = tokio::time::timeout(DRAIN, out).await;
    let tail = match tokio::time::timeout(DRAIN, err).await {
        Ok(Ok(tail)) => tail,
        _ => String::new(),
    };
    if status.success() {
        Ok(())
    } else {
        Err(CommandError::Failed {
            program,
            status: status.to_string(),
            stderr: suffix(tail),
        })
    }
}
