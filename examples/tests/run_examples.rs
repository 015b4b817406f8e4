//! Builds and runs each example; they must succeed and say what they did.

use std::process::Command;

fn run(bin: &str) -> String {
    let out = Command::new(bin).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{bin} failed:\n{text}");
    text
}

#[test]
fn embed_service_backs_up_and_restores() {
    let out = run(env!("CARGO_BIN_EXE_embed_service"));
    assert!(out.contains("backed up") && out.contains("restored 1 file(s)"), "{out}");
    // One data chunk and one index chunk.
    assert!(out.contains("verified 2 chunks without the secret key"), "{out}");
    assert!(out.contains("retention keeps 1, removes 0"), "{out}");
}

#[test]
fn custom_source_is_backed_up() {
    let out = run(env!("CARGO_BIN_EXE_custom_source"));
    assert!(out.contains("50000 rows"), "{out}");
}
