//! The command source, restore into a program and the hook runner, with
//! real programs (`sh`, `seq`, `sleep`) through the real pipeline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backup_command::{
    restore_into_command, run_hook, CommandError, CommandSource, CommandSpec, DrainCheck, Line, LineSink, OutputStream,
};
use backup_core::testing::test_keys;
use backup_core::{
    list_backups, run_backup, verify_backup, BackupOptions, DynStore, Manifest, MemoryStore, Pick, ProfileRef, Source,
};
use futures::StreamExt;

fn sh(script: &str) -> CommandSpec {
    CommandSpec::new(vec!["sh".into(), "-c".into(), script.into()]).unwrap()
}

fn profile() -> ProfileRef {
    ProfileRef::new("app", "dump", "app/dump").with_kind(backup_command::KIND)
}

async fn backup(store: &DynStore, source: &CommandSource) -> backup_core::Result<Manifest> {
    let keys = test_keys();
    let options = BackupOptions::new("app", "dump", "app/dump").with_chunk_size(64 * 1024);
    run_backup(store, source, keys.encryptor.clone(), &keys.signer, &options).await
}

/// Lines a sink received: (stream, text).
type Lines = Arc<Mutex<Vec<(OutputStream, String)>>>;

/// A sink collecting lines.
fn collector() -> (LineSink, Lines) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = lines.clone();
    let sink: LineSink = Arc::new(move |l: Line<'_>| seen.lock().unwrap().push((l.stream, l.text.to_owned())));
    (sink, lines)
}

#[tokio::test(flavor = "multi_thread")]
async fn output_round_trips_through_the_pipeline_and_into_a_program() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let (sink, stderr) = collector();
    let source = CommandSource::new(sh("seq 1 100000; echo a warning >&2")).with_stderr_sink(sink);
    let m = backup(&store, &source).await.unwrap();
    assert!(m.chunks.len() > 1, "several chunks");
    assert!(stderr
        .lock()
        .unwrap()
        .iter()
        .any(|(s, t)| *s == OutputStream::Stderr && t == "a warning"));

    let keys = test_keys();
    let listing = list_backups(&store, &profile(), &keys.trust).await.unwrap();
    let entry = listing.pick(Pick::Newest).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fed.txt");
    let spec = sh(&format!("cat > {}", out.display()));
    let (sink, _) = collector();
    let fed = restore_into_command(&store, keys.decryptor.clone(), entry, &spec, sink)
        .await
        .unwrap();
    let expected: String = (1..=100000).map(|n| format!("{n}\n")).collect();
    assert_eq!(fed, expected.len() as u64);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);

    let report = verify_backup(&store, entry, Some(keys.decryptor.clone()), Some(&DrainCheck))
        .await
        .unwrap();
    assert_eq!(report.plaintext_bytes, Some(expected.len() as u64));

    // A restore program that fails is an error naming it and its stderr.
    let (sink, _) = collector();
    let e = restore_into_command(
        &store,
        keys.decryptor.clone(),
        entry,
        &sh("cat >/dev/null; echo nope >&2; exit 5"),
        sink,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("exit status: 5") && e.contains("nope"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_program_ends_the_stream_with_an_error_and_no_backup() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let source = CommandSource::new(sh("head -c 200000 /dev/zero; echo gave up >&2; exit 1"));
    let e = backup(&store, &source).await.unwrap_err().to_string();
    assert!(e.contains("exit status: 1") && e.contains("gave up"), "{e}");
    let listing = list_backups(&store, &profile(), &test_keys().trust).await.unwrap();
    assert!(listing.trusted.is_empty());

    // The stream itself: data, then an error — never a clean end.
    let out = CommandSource::new(sh("echo some; exit 3")).open().await.unwrap();
    let (_, mut stream) = out.streams.into_iter().next().unwrap();
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item.is_ok());
    }
    assert_eq!(items.last(), Some(&false), "ends in an error: {items:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_program_fails_at_once_even_when_its_children_hold_the_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let script = format!("echo $$ > {}; echo data; sleep 30; echo never", pid.display());
    let out = CommandSource::new(sh(&script)).open().await.unwrap();
    let (_, mut stream) = out.streams.into_iter().next().unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    let shell = std::fs::read_to_string(&pid).unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", shell.trim()])
        .status()
        .unwrap();
    let started = Instant::now();
    let e = loop {
        match stream.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e.to_string(),
            None => panic!("a clean end after a kill"),
        }
    };
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not waiting for the orphaned sleep"
    );
    assert!(e.contains("signal: 9"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_output_of_a_successful_program_is_a_backup() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = backup(&store, &CommandSource::new(sh("true"))).await.unwrap();
    assert_eq!(m.plaintext_size, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_with_a_timeout_and_their_output_goes_to_the_sink() {
    let (sink, lines) = collector();
    run_hook(
        &sh("echo out; echo err >&2; echo $MY_VAR").with_env("MY_VAR", "set"),
        Duration::from_secs(10),
        sink,
    )
    .await
    .unwrap();
    let lines = lines.lock().unwrap().clone();
    assert!(lines.contains(&(OutputStream::Stdout, "out".into())), "{lines:?}");
    assert!(lines.contains(&(OutputStream::Stderr, "err".into())), "{lines:?}");
    assert!(lines.contains(&(OutputStream::Stdout, "set".into())), "{lines:?}");

    let (sink, _) = collector();
    let started = Instant::now();
    let e = run_hook(&sh("sleep 30"), Duration::from_millis(300), sink)
        .await
        .unwrap_err();
    assert!(matches!(e, CommandError::TimedOut { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let (sink, _) = collector();
    let e = run_hook(&sh("echo why >&2; exit 2"), Duration::from_secs(10), sink)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("exit status: 2") && e.to_string().contains("why"),
        "{e}"
    );

    let (sink, _) = collector();
    let e = run_hook(
        &CommandSpec::new(vec!["/no/such/program".into()]).unwrap(),
        Duration::from_secs(1),
        sink,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, CommandError::Start { .. }), "{e}");
    assert!(matches!(CommandSpec::new(vec![]), Err(CommandError::Empty)));

    // A long output is bounded: at most 1000 lines and a count of the rest.
    let (sink, lines) = collector();
    run_hook(&sh("seq 1 5000"), Duration::from_secs(10), sink)
        .await
        .unwrap();
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1001);
    assert!(lines[1000].1.contains("4000 more lines"), "{:?}", lines[1000]);
}
