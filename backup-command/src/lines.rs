//! A program's output, line by line, handed to a sink (the caller logs it),
//! bounded in line length and count; the tail is kept for error messages.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

/// Longest line handed on; the rest of a longer line is cut.
const MAX_LINE: usize = 2000;
/// Lines handed on per stream; after that they are counted only.
const MAX_LINES: usize = 1000;
/// Bytes of the end of the output kept for an error message.
const TAIL: usize = 4096;

/// Which output of the program a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `stdout` or `stderr`.
    pub fn name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// One line of a program's output.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The program (argv\[0\]).
    pub program: &'a str,
    /// Which output.
    pub stream: OutputStream,
    /// The text, without its newline, lossily decoded, at most 2000 bytes.
    pub text: &'a str,
}

/// Where output lines go (typically a `tracing` event).
pub type LineSink = Arc<dyn Fn(Line<'_>) + Send + Sync>;

/// A started program in its own process group, its stdout and stderr
/// lines going to a sink (see [`spawn_logged`]).
pub(crate) struct Logged {
    pub(crate) child: tokio::process::Child,
    pub(crate) group: crate::group::Group,
    pub(crate) out: JoinHandle<String>,
    pub(crate) err: JoinHandle<String>,
}

/// Starts `spec` with `stdin`, handing each line of its stdout and stderr
/// to `sink`: what hooks and restore commands share.
pub(crate) fn spawn_logged(
    spec: &crate::spec::CommandSpec,
    stdin: std::process::Stdio,
    sink: LineSink,
) -> Result<Logged, crate::error::CommandError> {
    let mut child = spec
        .command()
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| spec.start_error(e))?;
    let group = crate::group::Group::of(&child);
    let program = spec.program();
    let out = forward(child.stdout.take(), program, OutputStream::Stdout, sink.clone());
    let err = forward(child.stderr.take(), program, OutputStream::Stderr, sink);
    Ok(Logged { child, group, out, err })
}

/// Reads `reader` to its end, handing each line to `sink`; returns the
/// output's last few KiB (for an error message).
pub(crate) fn forward<R>(reader: Option<R>, program: &str, stream: OutputStream, sink: LineSink) -> JoinHandle<String>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let program = program.to_owned();
    tokio::spawn(async move {
        let Some(mut reader) = reader else {
            return String::new();
        };
        let mut state = State::default();
        let mut buf = vec![0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for &b in &buf[..n] {
                        state.byte(b, &program, stream, &sink);
                    }
                }
            }
        }
        state.flush(&program, stream, &sink);
        if state.dropped > 0 {
            let text = format!("({} more lines not logged)", state.dropped);
            sink(Line {
                program: &program,
                stream,
                text: &text,
            });
        }
        let tail: Vec<u8> = state.tail.into_iter().collect();
        String::from_utf8_lossy(&tail).trim().to_owned()
    })
}

#[derive(Default)]
struct State {
    line: Vec<u8>,
    lines: usize,
    dropped: usize,
    tail: std::collections::VecDeque<u8>,
}

impl State {
    fn byte(&mut self, b: u8, program: &str, stream: OutputStream, sink: &LineSink) {
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(b);
        if b == b'\n' {
            self.flush(program, stream, sink);
        } else if self.line.len() < MAX_LINE {
            self.line.push(b);
        }
    }

    fn flush(&mut self, program: &str, stream: OutputStream, sink: &LineSink) {
        if self.line.is_empty() {
            return;
        }
        if self.lines < MAX_LINES {
            let text = String::from_utf8_lossy(&self.line);
            sink(Line {
                program,
                stream,
                text: text.trim_end_matches('\r'),
            });
            self.lines += 1;
        } else {
            self.dropped += 1;
        }
        self.line.clear();
    }
}

/// `: tail` for an error message, or nothing.
pub(crate) fn suffix(tail: String) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}
