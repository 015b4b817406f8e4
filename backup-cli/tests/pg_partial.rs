//! PostgreSQL partial restores through the binary: `restore --to-db NAME
//! --table T | --schema S` and `--to DIR --table T`, against a throwaway
//! cluster; the index stream is an extra object the whole restore ignores.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use backup_pg::testing::Auth;
use support::{backup_folder, PgWs, FINGERPRINT};

/// Tables outside the system schemas, as `schema.name,…`.
const TABLES: &str =
    "SELECT coalesce(string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname, tablename), '') \
                      FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
const ODD_ROWS: &str = r#"SELECT count(*) || '/' || md5(string_agg(v, '' ORDER BY id)) FROM "my schema"."odd ""t"" x""#;
const ORDERS: &str = "SELECT count(*) || '/' || sum(amount) FROM orders";

/// `shop` (see support) plus a second schema whose names need quoting, backed up once.
fn backed_up() -> Option<PgWs> {
    let p = PgWs::new(Auth::Trust, "")?;
    p.prod.psql(
        "shop",
        r#"CREATE SCHEMA "my schema";
           CREATE TABLE "my schema"."odd ""t"" x" (id int PRIMARY KEY, v text);
           INSERT INTO "my schema"."odd ""t"" x" SELECT g, md5(g::text) FROM generate_series(1, 1500) g;
           CREATE TABLE "my schema".second AS SELECT 1 AS one"#,
    );
    p.ws.ok(&["backup", "shop/db"]);
    Some(p)
}

fn exists(p: &PgWs, db: &str) -> bool {
    p.prod.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

#[test]
fn one_table_or_one_schema_into_a_new_database() {
    let Some(p) = backed_up() else { return };
    let ws = &p.ws;

    ws.ok(&["restore", "shop/db", "--to-db", "only_orders", "--table", "orders"]);
    assert_eq!(p.prod.psql("only_orders", TABLES), "public.orders");
    assert_eq!(p.prod.psql("only_orders", ORDERS), p.prod.psql("shop", ORDERS));

    ws.ok(&["restore", "shop/db", "--to-db", "odd", "--table", "odd \"t\" x"]);
    assert_eq!(p.prod.psql("odd", TABLES), "my schema.odd \"t\" x");
    assert_eq!(p.prod.psql("odd", ODD_ROWS), p.prod.psql("shop", ODD_ROWS));

    ws.ok(&["restore", "shop/db", "--to-db", "one_schema", "--schema", "my schema"]);
    assert_eq!(
        p.prod.psql("one_schema", TABLES),
        "my schema.odd \"t\" x,my schema.second"
    );
    assert_eq!(p.prod.psql("one_schema", ODD_ROWS), p.prod.psql("shop", ODD_ROWS));

    // Two tables at once, restricted to a schema.
    let out = ws.ok(&[
        "restore",
        "shop/db",
        "--to-db",
        "two",
        "--schema",
        "public",
        "--table",
        "orders",
        "--table",
        "customers",
    ]);
    assert!(out.contains("restored backup"), "{out}");
    assert_eq!(p.prod.psql("two", TABLES), "public.customers,public.orders");

    // A sequence is a table to pg_restore -t: its value comes back.
    ws.ok(&["restore", "shop/db", "--to-db", "seq", "--table", "invoice_no"]);
    let value = "SELECT last_value FROM invoice_no";
    assert_eq!(p.prod.psql("seq", value), p.prod.psql("shop", value));
    assert_eq!(p.prod.psql("seq", TABLES), "");

    // A table the backup does not hold: refused, nothing created.
    let out = ws.fails(&["restore", "shop/db", "--to-db", "none", "--table", "nope"], 2);
    assert!(out.contains("nope"), "{out}");
    assert!(!exists(&p, "none"));

    // The whole restore is unchanged.
    ws.ok(&["restore", "shop/db", "--to-db", "whole"]);
    assert_eq!(p.prod.psql("whole", FINGERPRINT), p.prod.psql("shop", FINGERPRINT));
    assert_eq!(p.prod.psql("whole", TABLES), p.prod.psql("shop", TABLES));
}

#[test]
fn option_like_names_replace_and_files_profiles_are_refused() {
    let Some(p) = backed_up() else { return };
    let ws = &p.ws;
    let dir = ws.path("dir");
    for args in [
        vec!["--to-db", "evil", "--table=-evil"],
        vec!["--to-db", "evil", "--schema=--file=/tmp/x"],
        vec!["--to", dir.to_str().unwrap(), "--table=-f"],
    ] {
        let mut all = vec!["restore", "shop/db"];
        all.extend(args);
        let out = ws.fails(&all, 2);
        assert!(out.contains("starts with '-'"), "{out}");
    }
    assert!(!exists(&p, "evil"));
    assert!(!dir.exists());

    // Files profiles have no tables.
    let folder = ws.path("folder");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("a.txt"), "a").unwrap();
    ws.files_profile("app/files", &folder, "");
    ws.ok(&["backup", "app/files"]);
    let out = ws.fails(
        &["restore", "app/files", "--to", dir.to_str().unwrap(), "--table", "t"],
        2,
    );
    assert!(out.contains("for postgres profiles"), "{out}");

    // Replacing a whole database with part of a backup is refused by the CLI.
    p.prod.psql("postgres", "CREATE DATABASE kept");
    let out = ws.fails(
        &[
            "restore",
            "shop/db",
            "--to-db",
            "kept",
            "--replace",
            "--table",
            "orders",
        ],
        2,
    );
    assert!(out.contains("--replace") || out.contains("replace"), "{out}");
}

#[test]
fn the_sql_of_one_table_goes_to_a_private_file() {
    let Some(p) = backed_up() else { return };
    let ws = &p.ws;
    let dir = ws.path("sql");
    let out = ws.ok(&[
        "restore",
        "shop/db",
        "--to",
        dir.to_str().unwrap(),
        "--schema",
        "my schema",
        "--table",
        "odd \"t\" x",
    ]);
    let script = dir.join("shop.sql");
    assert!(out.contains(script.to_str().unwrap()), "{out}");
    assert_eq!(fs::metadata(&script).unwrap().permissions().mode() & 0o777, 0o600);
    let sql = fs::read_to_string(&script).unwrap();
    assert!(sql.contains(r#"CREATE TABLE "my schema"."odd ""t"" x""#), "{sql}");
    assert!(!sql.contains("customers") && !sql.contains("second"), "{sql}");
    assert!(!dir.join("shop.pgdump").exists(), "just the script");
    // Not overwritten.
    ws.fails(
        &["restore", "shop/db", "--to", dir.to_str().unwrap(), "--table", "orders"],
        2,
    );
    assert_eq!(fs::read_to_string(&script).unwrap(), sql);

    // The index is an extra object next to the dump's chunks; a whole
    // restore --to DIR writes the dump alone, as before.
    let id = ws.list("shop/db")[0]["id"].as_str().unwrap().to_owned();
    let names: Vec<String> = fs::read_dir(backup_folder(ws, "shop/db", &id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("index-")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("data-")), "{names:?}");
    let whole = ws.path("whole");
    ws.ok(&["restore", "shop/db", "--to", whole.to_str().unwrap()]);
    let written: Vec<String> = fs::read_dir(&whole)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, ["shop.pgdump"]);
}

#[test]
fn ls_and_info_show_the_table_of_contents_with_sizes() {
    let Some(p) = backed_up() else { return };
    let ws = &p.ws;
    let out = ws.ok(&["ls", "shop/db"]);
    let line = out
        .lines()
        .find(|l| l.contains("TABLE ") && !l.contains("TABLE DATA") && l.contains("my schema.odd \"t\" x"))
        .unwrap_or_else(|| panic!("no table line in {out}"));
    assert!(line.contains("KiB") || line.contains("MiB"), "a size: {line}");
    let listed: serde_json::Value = serde_json::from_str(&ws.ok(&["--json", "ls", "shop/db"])).unwrap();
    let entries = listed["entries"].as_array().expect("entries");
    let size: u64 = p
        .prod
        .psql("shop", r#"SELECT pg_total_relation_size('"my schema"."odd ""t"" x"')"#)
        .parse()
        .unwrap();
    let odd = entries
        .iter()
        .find(|e| e["desc"] == "TABLE" && e["schema"] == "my schema" && e["name"] == "odd \"t\" x")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(odd["size"], size);
    // Every entry reads as a backup_pg::index::TocEntry.
    for e in entries {
        backup_pg::index::TocEntry::parse(&e.to_string()).expect("a TOC entry");
    }
    let info = ws.ok(&["info", "shop/db"]);
    assert!(info.contains("toc_entries"), "{info}");
}
