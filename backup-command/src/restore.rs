//! Restoring a command backup: into a program's standard input, and the
//! `verify` reader for command backups (no structure to check).

use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use backup_core::{restore_stream, ByteStream, CatalogEntry, Decryptor, DynStore, StreamCheck, DATA_STREAM};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::error::CommandError;
use crate::lines::{spawn_logged, suffix, LineSink, Logged};
use crate::spec::CommandSpec;

/// Feeds the data stream of a trusted backup into `spec`'s standard input
/// (e.g. `mysql shop`) and returns the bytes fed. Each chunk is
/// authenticated before any of its bytes reach the program. The program's
/// output goes to `sink`. A chunk that fails its checks stops the program
/// (killed, so it cannot commit a half-fed input on end-of-file).
///
/// # Errors
/// The restore's integrity or store error; [`CommandError`] (as
/// [`backup_core::Error::Source`]) when the program fails or cannot start.
pub async fn restore_into_command(
    store: &DynStore,
    decryptor: Arc<dyn Decryptor>,
    entry: &CatalogEntry,
    spec: &CommandSpec,
    sink: LineSink,
) -> backup_core::Result<u64> {
    let mut input = restore_stream(store, decryptor, entry, DATA_STREAM, backup_core::default_parallelism())?;
    let program = spec.program().to_owned();
    let Logged {
        mut child,
        mut group,
        out,
        err,
    } = spawn_logged(spec, Stdio::piped(), sink)?;
    let mut stdin = child.stdin.take();
    let mut fed = 0u64;
    let mut stopped_reading = false;
    while let Some(piece) = input.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(e) => {
                // Kill before `stdin` drops: a program seeing end-of-input
                // could commit the truncated, unauthenticated-to-the-end input.
                group.kill();
                return Err(e);
            }
        };
        let Some(pipe) = stdin.as_mut() else { break };
        // A write fails when the program gave up: its exit status says why.
        if pipe.write_all(&piece).await.is_err() {
            stdin = None;
            stopped_reading = true;
            break;
        }
        fed += piece.len() as u64;
    }
    drop(stdin);
    let status = child.wait().await.map_err(|source| CommandError::Io {
        program: program.clone(),
        what: "waiting for it",
        source,
    })?;
    group.disarm();
    let _ = out.await;
    let tail = err.await.unwrap_or_default();
    if !status.success() {
        return Err(CommandError::Failed {
            program,
            status: status.to_string(),
            stderr: suffix(tail),
        }
        .into());
    }
    if stopped_reading {
        // Exit 0 after closing its input early (e.g. `true`, or a client
        // that quit): the whole backup did not reach it.
        return Err(CommandError::StoppedReading { program, fed }.into());
    }
    Ok(fed)
}

/// The `verify` reader of command backups: the output has no structure this
/// crate could check, so the stream is read to its end (every chunk
/// decrypted and authenticated) and its size reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainCheck;

#[async_trait]
impl StreamCheck for DrainCheck {
    async fn check(&self, data: ByteStream, _entry: &CatalogEntry) -> backup_core::Result<String> {
        let bytes = data
            .try_fold(0u64, |n, piece| async move { Ok(n + piece.len() as u64) })
            .await?;
        Ok(format!("{bytes} bytes of command output, no structure check"))
    }
}
