//! A child process's stdout as a stream that fails — never ends cleanly —
//! when the process fails, is killed, or says nothing.

use std::process::Stdio;

use backup_core::{ByteStream, Error, Result};
use bytes::BytesMut;
use futures::{stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::error::PgError;

/// Bytes read from the child at once.
const PIECE: usize = 256 * 1024;
/// Keep this much of the child's stderr for the error message.
const STDERR_KEEP: usize = 16 * 1024;

/// Starts `cmd` and streams its stdout. The stream ends with an error naming
/// `tool`, its exit status and its stderr when the process did not exit 0 or
/// wrote nothing.
///
/// # Errors
/// [`Error::Source`] when the program cannot be started (not installed).
pub fn stdout_stream(mut cmd: Command, tool: &str) -> Result<ByteStream> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        Error::source_failed(tool, format!("cannot start {tool}: {e}; the PostgreSQL client tools are needed (postgresql-client), or a bin_dir where they are"))
    })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::source_failed(tool, "no stdout"))?;
    let stderr = collect_stderr(child.stderr.take());
    struct State {
        child: Child,
        stdout: ChildStdout,
        stderr: Option<JoinHandle<String>>,
        total: u64,
        tool: String,
        done: bool,
    }
    let state = State {
        child,
        stdout,
        stderr: Some(stderr),
        total: 0,
        tool: tool.to_owned(),
        done: false,
    };
    Ok(Box::pin(stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mut buf = BytesMut::with_capacity(PIECE);
        match st.stdout.read_buf(&mut buf).await {
            Ok(0) => {
                st.done = true;
                let status = st.child.wait().await;
                let stderr = match st.stderr.take() {
                    Some(h) => h.await.unwrap_or_default(),
                    None => String::new(),
                };
                match status {
                    Ok(s) if s.success() && st.total > 0 => None,
                    Ok(s) => {
                        let status = if s.success() {
                            " (it wrote nothing)".to_owned()
                        } else {
                            format!(" ({s})")
                        };
                        Some((
                            Err(PgError::Tool {
                                tool: st.tool.clone(),
                                status,
                                stderr,
                            }
                            .into()),
                            st,
                        ))
                    }
                    Err(e) => Some((
                        Err(Error::source_failed(&st.tool, format!("cannot wait for it: {e}"))),
                        st,
                    )),
                }
            }
            Ok(_) => {
                st.total += buf.len() as u64;
                Some((Ok(buf.freeze()), st))
            }
            Err(e) => {
                st.done = true;
                let _ = st.child.kill().await;
                Some((
                    Err(Error::source_failed(
                        &st.tool,
                        format!("reading its output failed: {e}"),
                    )),
                    st,
                ))
            }
        }
    })))
}

/// Runs `cmd` to completion, returning stdout.
///
/// # Errors
/// [`Error::Source`] with the exit status and stderr when it fails.
pub async fn run(mut cmd: Command, tool: &str) -> Result<String> {
    // Cancelled (a signal), the tool is stopped too rather than left running.
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            Error::source_failed(
                tool,
                format!("cannot start {tool}: {e}; install the PostgreSQL client or set bin_dir"),
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail = &stderr[stderr.len().saturating_sub(STDERR_KEEP)..];
        return Err(PgError::Tool {
            tool: tool.to_owned(),
            status: format!(" ({})", out.status),
            stderr: tail.trim().to_owned(),
        }
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with `input` written to its stdin and its output to `stdout`
/// (a file, or null), to completion. A failure of
/// `input` itself (a chunk that did not authenticate) stops the tool and is
/// returned as it is; the tool is killed when this future is dropped.
///
/// # Errors
/// `input`'s error; [`Error::Source`] with the exit status and stderr when
/// the tool fails.
pub(crate) async fn run_with_stdin(mut cmd: Command, tool: &str, mut input: ByteStream, stdout: Stdio) -> Result<()> {
    let start_error = |e: std::io::Error| {
        Error::source_failed(
            tool,
            format!("cannot start {tool}: {e}; install the PostgreSQL client or set bin_dir"),
        )
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(start_error)?;
    let stderr = collect_stderr(child.stderr.take());
    let mut stdin = child.stdin.take();
    #[cfg(target_os = "linux")]
    if let Some(pipe) = &stdin {
        // A 1 MiB pipe instead of 64 KiB: fewer hand-offs between our writer
        // and the tool's small reads, and more slack before the tool waits
        // for the next chunk. Best effort: a lower pipe-max-size keeps the
        // default.
        let _ = rustix::pipe::fcntl_setpipe_size(pipe, 1 << 20);
    }
    let mut fed = Ok(());
    while let Some(item) = input.next().await {
        match item {
            Ok(piece) => {
                // A write fails when the tool gave up early: its own error,
                // from its exit status and stderr below, says why.
                let Some(pipe) = stdin.as_mut() else { break };
                if pipe.write_all(&piece).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                fed = Err(e);
                break;
            }
        }
    }
    if let Err(e) = fed {
        // Kill before closing stdin: pg_restore seeing end-of-input could
        // commit what it got of a stream that failed its checks.
        let _ = child.kill().await;
        drop(stdin);
        return Err(e);
    }
    drop(stdin);
    let status = child.wait().await.map_err(start_error)?;
    let stderr = stderr.await.unwrap_or_default();
    if !status.success() {
        return Err(PgError::Tool {
            tool: tool.to_owned(),
            status: format!(" ({status})"),
            stderr,
        }
        .into());
    }
    Ok(())
}

fn collect_stderr(stderr: Option<impl AsyncRead + Unpin + Send + 'static>) -> JoinHandle<String> {
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else {
            return String::new();
        };
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > STDERR_KEEP {
                kept.drain(..kept.len() - STDERR_KEEP);
            }
        }
        String::from_utf8_lossy(&kept).trim().to_owned()
    })
}
