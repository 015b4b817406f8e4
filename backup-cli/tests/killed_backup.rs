//! Killing a backup at any moment leaves no listed backup and a store on which
//! the next backup succeeds; prune later removes the leftovers.

mod support;

use std::fs;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::Ws;

#[test]
fn kill_at_any_moment_leaves_a_consistent_store() {
    let ws = Ws::new();
    let src = ws.path("source");
    fs::create_dir_all(&src).unwrap();
    // Incompressible data so that every chunk costs real work.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..12 {
        let mut data = vec![0u8; 2 << 20];
        rng.fill(&mut data[..]);
        fs::write(src.join(format!("blob-{i}.bin")), data).unwrap();
    }
    ws.files_profile("app/files", &src, "");
    ws.ok(&["backup", "app/files", "--no-prune"]);
    assert_eq!(ws.list("app/files").len(), 1);

    for delay_ms in [5, 30, 80, 160, 320, 640] {
        let mut child = ws.cmd(&["backup", "app/files", "--no-prune"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL: no cleanup runs
        child.wait().unwrap();
        // Whatever was listed is complete: it verifies.
        for entry in ws.list("app/files") {
            assert!(entry["chunks"].as_u64().unwrap() > 0);
        }
        ws.ok(&["verify", "app/files", "--all"]);
    }
    let listed_before = ws.list("app/files").len();
    ws.ok(&["backup", "app/files", "--no-prune"]);
    assert_eq!(
        ws.list("app/files").len(),
        listed_before + 1,
        "the next backup succeeds"
    );

    // Leftovers of killed runs are never listed; prune removes them after the grace period.
    std::thread::sleep(Duration::from_millis(1100));
    let out = ws
        .cmd(&["prune", "app/files"])
        .env("BACKUPAPPS_RETENTION__INCOMPLETE_GRACE", "1s")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::text(&out));
    for backup in fs::read_dir(ws.path("store/app/files")).unwrap() {
        let backup = backup.unwrap().path();
        assert!(
            backup.join("manifest.json").exists(),
            "incomplete {} left after prune",
            backup.display()
        );
    }
    ws.ok(&["verify", "app/files", "--all"]);
}
