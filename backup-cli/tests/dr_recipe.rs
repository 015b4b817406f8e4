//! The README's disaster-recovery recipe, run verbatim: its marked code
//! blocks (`<!-- dr-recipe: NAME -->` before each) are taken from README.md
//! and run with bash, without a terminal (`setsid`, stdin closed), for a files
//! backup and for a PostgreSQL backup, and the result is compared with the
//! source. What the recipe says must be what works.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use backup_files::testing::snapshot;
use support::{backup_folder, require, PgWs, Ws, FINGERPRINT};

/// The code block after `<!-- dr-recipe: NAME` in README.md.
fn block(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let marker = format!("<!-- dr-recipe: {name}");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker:?} block"));
    let rest = &readme[at..];
    let open = rest.find("```sh\n").expect("a ```sh block after the marker") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    rest[open..open + close].to_owned()
}

fn tools_present() -> bool {
    require("gpg", "gnupg") && require("zstd", "zstd") && require("jq", "jq") && require("setsid", "util-linux")
}

/// Runs the common block and `kind`'s block with bash in a new session
/// (no controlling terminal), with the recipe's variables set.
fn run_recipe(ws: &Ws, folder: &Path, kind: &str, vars: &[(&str, String)], path_dirs: &[&Path]) {
    let script = format!("{}{}", block("common"), block(kind));
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    for dir in path_dirs {
        let mut with = dir.as_os_str().to_owned();
        with.push(":");
        with.push(&path);
        path = with;
    }
    let out = Command::new("setsid")
        .args(["-w", "bash", "-c", &script])
        .env("BACKUP", folder)
        .env("KEYS", ws.path("secrets"))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", path)
        .env_remove("GNUPGHOME")
        .env_remove("GPG_TTY")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the README's recipe failed:\n{script}\n{}",
        support::text(&out)
    );
}

#[test]
fn files_backup_comes_back_with_the_recipe() {
    if !tools_present() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    backup_files::testing::sample_tree(&src, 300_000);
    ws.files_profile("app/files", &src, "");
    ws.ok(&["backup", "app/files"]);
    let id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    let into = ws.path("recovered");
    run_recipe(
        &ws,
        &backup_folder(&ws, "app/files", &id),
        "files",
        &[("INTO", into.display().to_string())],
        &[],
    );
    let mut want = snapshot(&src);
    want.retain(|p, _| p.extension().is_none_or(|x| x != "tmp"));
    let got = snapshot(&into.join(src.strip_prefix("/").unwrap()));
    assert_eq!(got, want);
}

#[test]
fn a_tampered_chunk_stops_the_recipe_before_tar() {
    if !tools_present() {
        return;
    }
    let ws = Ws::new();
    let src = ws.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "x".repeat(100_000)).unwrap();
    ws.files_profile("app/files", &src, "");
    ws.ok(&["backup", "app/files"]);
    let id = ws.list("app/files")[0]["id"].as_str().unwrap().to_owned();
    let folder = backup_folder(&ws, "app/files", &id);
    let chunk = folder.join("data-000001.zst.gpg");
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&chunk, bytes).unwrap();
    let into = ws.path("recovered");
    let script = format!("{}{}", block("common"), block("files"));
    let out = Command::new("setsid")
        .args(["-w", "bash", "-c", &script])
        .env("BACKUP", &folder)
        .env("KEYS", ws.path("secrets"))
        .env("INTO", &into)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", support::text(&out));
    assert!(!into.exists(), "nothing unpacked");
}

#[test]
fn postgres_backup_comes_back_with_the_recipe() {
    if !tools_present() {
        return;
    }
    let Some(p) = PgWs::new(backup_pg::testing::Auth::Trust, "") else {
        return;
    };
    p.ws.ok(&["backup", "shop/db"]);
    let id = p.ws.list("shop/db")[0]["id"].as_str().unwrap().to_owned();
    // libpq's variables say which server, as the README says; the cluster's
    // own client tools (createdb, pg_restore) come first on PATH.
    let mut vars: Vec<(&str, String)> = p.prod.env().into_iter().map(|(k, v)| (leak(k), v)).collect();
    vars.push(("NEWDB", "shop_recovered".to_owned()));
    run_recipe(
        &p.ws,
        &backup_folder(&p.ws, "shop/db", &id),
        "postgres",
        &vars,
        &[&p.prod.bindir],
    );
    assert_eq!(
        p.prod.psql("shop_recovered", FINGERPRINT),
        p.prod.psql("shop", FINGERPRINT)
    );
}

/// `env()` hands out owned names; the recipe's variables are `&str`.
fn leak(k: String) -> &'static str {
    Box::leak(k.into_boxed_str())
}
