//! The command `Source`: a program's standard output is the backup.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::{ByteStream, Source, SourceDetails, SourceOutput};
use bytes::BytesMut;
use futures::stream;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout};
use tokio::task::JoinHandle;

use crate::error::CommandError;
use crate::group::Group;
use crate::lines::{forward, suffix, Line, LineSink, OutputStream};
use crate::spec::CommandSpec;

/// Bytes read from the program at once.
const PIECE: usize = 256 * 1024;

/// Backs up what a program writes to its standard output.
///
/// The stream ends with an error — never a clean end — when the program
/// exits non-zero, is killed by a signal, or its output cannot be read, so a
/// truncated dump never becomes a backup. An empty output of a program that
/// exited 0 is a (small) backup: the exit status is the program's verdict.
/// Each line of its standard error is logged (`warn`), bounded.
#[derive(Clone)]
pub struct CommandSource {
    spec: CommandSpec,
    stderr: LineSink,
}

impl std::fmt::Debug for CommandSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSource")
            .field("program", &self.spec.program())
            .finish()
    }
}

impl CommandSource {
    /// A source running `spec`.
    pub fn new(spec: CommandSpec) -> Self {
        CommandSource {
            spec,
            stderr: Arc::new(|line: Line<'_>| {
                tracing::warn!(program = line.program, stream = line.stream.name(), "{}", line.text);
            }),
        }
    }

    /// Hands the program's stderr lines to `sink` instead of logging them.
    #[must_use]
    pub fn with_stderr_sink(mut self, sink: LineSink) -> Self {
        self.stderr = sink;
        self
    }
}

#[async_trait]
impl Source for CommandSource {
    fn kind(&self) -> &str {
        crate::KIND
    }

    async fn open(&self) -> backup_core::Result<SourceOutput> {
        let program = self.spec.program().to_owned();
        let mut child = self
            .spec
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spec.start_error(e))?;
        let group = Group::of(&child);
        let stdout = child.stdout.take().ok_or_else(|| CommandError::Io {
            program: program.clone(),
            what: "reading its output",
            source: std::io::Error::other("no stdout pipe"),
        })?;
        let stderr = forward(child.stderr.take(), &program, OutputStream::Stderr, self.stderr.clone());
        let details = SourceDetails::default();
        details.set("program", program.clone());
        let state = State {
            child,
            group,
            stdout,
            stderr: Some(stderr),
            program,
            total: 0,
            details: details.clone(),
            status: None,
            done: false,
        };
        Ok(SourceOutput::single(output_stream(state), details))
    }
}

struct State {
    child: Child,
    // Dropped with the stream: a backup cut short kills the program.
    group: Group,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    program: String,
    total: u64,
    details: SourceDetails,
    /// The program's exit status, once it exited.
    status: Option<ExitStatus>,
    done: bool,
}

fn output_stream(state: State) -> ByteStream {
    Box::pin(stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mut buf = BytesMut::with_capacity(PIECE);
        loop {
            let read = if st.status.is_some() {
                st.stdout.read_buf(&mut buf).await
            } else {
                // Watch the program too: killed or failed, it ends the backup
                // at once, even while a process it started holds the pipe open.
                tokio::select! {
                    read = st.stdout.read_buf(&mut buf) => read,
                    status = st.child.wait() => {
                        match status {
                            Ok(status) => st.status = Some(status),
                            Err(source) => {
                                let e = CommandError::Io {
                                    program: st.program.clone(),
                                    what: "waiting for it",
                                    source,
                                };
                                return fail(st, e);
                            }
                        }
                        if st.status.is_some_and(|s| !s.success()) {
                            return finish(&mut st).await.err().and_then(|e| fail(st, e));
                        }
                        continue;
                    }
                }
            };
            return match read {
                Ok(0) => finish(&mut st).await.err().and_then(|e| fail(st, e)),
                Ok(n) => {
                    st.total += n as u64;
                    Some((Ok(buf.freeze()), st))
                }
                Err(source) => {
                    let e = CommandError::Io {
                        program: st.program.clone(),
                        what: "reading its output",
                        source,
                    };
                    fail(st, e)
                }
            };
        }
    }))
}

/// Ends the stream with `e`, stopping what is left of the program.
fn fail(mut st: State, e: CommandError) -> Option<(backup_core::Result<bytes::Bytes>, State)> {
    st.done = true;
    st.group.kill();
    Some((Err(e.into()), st))
}

/// The output ended (or the program exited non-zero): its exit status decides.
async fn finish(st: &mut State) -> Result<(), CommandError> {
    st.done = true;
    let status = match st.status {
        Some(status) => status,
        None => st.child.wait().await.map_err(|source| CommandError::Io {
            program: st.program.clone(),
            what: "waiting for it",
            source,
        })?,
    };
    if !status.success() {
        // Whatever it started goes with it; its stderr pipe may stay open.
        st.group.kill();
        let tail = match st.stderr.take() {
            Some(h) => tokio::time::timeout(std::time::Duration::from_secs(2), h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        return Err(CommandError::Failed {
            program: st.program.clone(),
            status: status.to_string(),
            stderr: suffix(tail),
        });
    }
    st.group.disarm();
    if let Some(h) = st.stderr.take() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), h).await;
    }
    st.details.set("output_bytes", st.total);
    Ok(())
}
