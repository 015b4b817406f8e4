//! The index of a PostgreSQL backup: the dump's table of contents as JSON
//! Lines (stream `index`), and the typed lines that `ls`/`info` read.
//!
//! Line 1 is an [`IndexHeader`]; every other line is one [`TocEntry`], in the
//! order `pg_restore --list` shows them. Names are exact (from the server's
//! catalog where the entry is a relation or schema), so a schema or table
//! name with spaces or quotes survives — unlike `pg_restore --list`'s own
//! text, where fields are separated by spaces.

use serde::{Deserialize, Serialize};

/// The stream name, header format and version, shared with every index
/// (`backup_core::index`).
pub use backup_core::index::{INDEX_FORMAT, INDEX_STREAM, INDEX_VERSION};

/// Line 1 of a postgres index: `backup_core::index::IndexHeader` plus the
/// `note` this crate adds when the entries are missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexHeader {
    /// Always [`INDEX_FORMAT`].
    pub format: String,
    /// [`INDEX_VERSION`].
    pub version: u32,
    /// `postgres` for these backups (`files` for folder backups).
    pub kind: String,
    /// Why the entries are missing or incomplete (the table of contents or
    /// the sizes could not be read at backup time); the backup itself is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl IndexHeader {
    /// The header of a postgres index.
    pub fn postgres(note: Option<String>) -> Self {
        IndexHeader {
            format: INDEX_FORMAT.to_owned(),
            version: INDEX_VERSION,
            kind: crate::KIND.to_owned(),
            note,
        }
    }

    /// Parses and checks a header line: the right format, version 1, kind `postgres`.
    ///
    /// # Errors
    /// [`IndexLineError`] naming what does not fit.
    pub fn parse(line: &str) -> Result<Self, IndexLineError> {
        let header: IndexHeader = serde_json::from_str(line).map_err(|e| IndexLineError::Json(e.to_string()))?;
        if header.format != INDEX_FORMAT || header.version != INDEX_VERSION || header.kind != crate::KIND {
            return Err(IndexLineError::Header(format!(
                "format {:?} version {} kind {:?}",
                header.format, header.version, header.kind
            )));
        }
        Ok(header)
    }
}

/// One entry of the dump's table of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    /// The entry's dump id (the number `pg_restore --list` starts a line with).
    pub toc_id: i64,
    /// What it is: `TABLE`, `TABLE DATA`, `SCHEMA`, `INDEX`, `SEQUENCE SET`, …
    pub desc: String,
    /// Its schema; absent for objects outside schemas (a schema, an extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Its name (pg_dump's tag: for a constraint `table name`, for a comment `TABLE t`).
    pub name: String,
    /// The owning role, when the dump records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `pg_total_relation_size` in bytes (table, indexes, TOAST) at backup
    /// start, on `TABLE`, `MATERIALIZED VIEW` and their data entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl TocEntry {
    /// Parses one entry line of a postgres index.
    ///
    /// # Errors
    /// [`IndexLineError::Json`] when the line is not such an object.
    pub fn parse(line: &str) -> Result<Self, IndexLineError> {
        serde_json::from_str(line).map_err(|e| IndexLineError::Json(e.to_string()))
    }

    /// Whether this entry is a table in `pg_restore -t`'s sense (a table,
    /// view, materialized view, sequence or foreign table): what `restore
    /// --table` selects by name.
    pub fn is_table(&self) -> bool {
        matches!(
            self.desc.as_str(),
            "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "SEQUENCE" | "FOREIGN TABLE"
        )
    }
}

/// A line of an index that is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexLineError {
    /// Not JSON, or not the expected object.
    #[error("not an index line: {0}")]
    Json(String),
    /// A header of another format, version or kind.
    #[error("not a postgres index header: {0}")]
    Header(String),
}

/// What the server's catalog says, to read `pg_restore --list` exactly.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    /// Relations by oid: schema, name, owner, size (tables and materialized views).
    pub(crate) relations: std::collections::HashMap<u32, Relation>,
    /// Schemas by oid.
    pub(crate) schemas: std::collections::HashMap<u32, String>,
    /// Every schema name, longest first.
    pub(crate) schema_names: Vec<String>,
    /// Every role name, longest first.
    pub(crate) roles: Vec<String>,
}

/// One relation of the catalog.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) owner: String,
    pub(crate) size: Option<u64>,
}

/// What pg_dump writes as an entry's `desc`, multi-word ones first: the
/// `--list` line separates fields by spaces, so the longest known desc wins.
const DESCS: &[&str] = &[
    "MATERIALIZED VIEW DATA",
    "PUBLICATION TABLES IN SCHEMA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH TEMPLATE",
    "TEXT SEARCH PARSER",
    "FOREIGN DATA WRAPPER",
    "PROCEDURAL LANGUAGE",
    "SUBSCRIPTION TABLE",
    "PUBLICATION TABLE",
    "SEQUENCE OWNED BY",
    "MATERIALIZED VIEW",
    "DATABASE PROPERTIES",
    "CHECK CONSTRAINT",
    "OPERATOR FAMILY",
    "OPERATOR CLASS",
    "STATISTICS DATA",
    "SECURITY LABEL",
    "ACCESS METHOD",
    "BLOB METADATA",
    "EVENT TRIGGER",
    "FOREIGN TABLE",
    "FK CONSTRAINT",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "USER MAPPING",
    "ROW SECURITY",
    "DEFAULT ACL",
    "SHELL TYPE",
    "TABLE DATA",
];

/// Reads one line of `pg_restore --list` (`ID; TABLEOID OID DESC SCHEMA NAME
/// OWNER`, comments start with `;`). Relations and schemas are named from
/// `catalog` by their oid; other entries are split with the catalog's schema
/// and role names, falling back to "schema and owner have no spaces".
pub(crate) fn parse_list_line(line: &str, catalog: &Catalog) -> Option<TocEntry> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.starts_with(';') || line.trim().is_empty() {
        return None;
    }
    let (id, rest) = line.split_once("; ")?;
    let toc_id: i64 = id.trim().parse().ok()?;
    let (_tableoid, rest) = rest.split_once(' ')?;
    let (oid, rest) = rest.split_once(' ')?;
    let oid: u32 = oid.parse().ok()?;
    let desc = DESCS
        .iter()
        .find(|d| rest.strip_prefix(**d).is_some_and(|r| r.starts_with(' ')))
        .map_or_else(|| rest.split(' ').next().unwrap_or_default(), |d| *d)
        .to_owned();
    let rest = rest.get(desc.len() + 1..).unwrap_or_default();
    let mut entry = TocEntry {
        toc_id,
        desc,
        schema: None,
        name: String::new(),
        owner: None,
        size: None,
    };
    let by_oid = match entry.desc.as_str() {
        "TABLE"
        | "TABLE DATA"
        | "MATERIALIZED VIEW"
        | "MATERIALIZED VIEW DATA"
        | "FOREIGN TABLE"
        | "VIEW"
        | "SEQUENCE"
        | "SEQUENCE SET" => catalog.relations.get(&oid),
        _ => None,
    };
    // pg_restore writes newlines in names as spaces: compare the same way.
    let shown = |s: &str| s.replace(['\r', '\n'], " ");
    if let Some(r) = by_oid.filter(|r| rest == format!("{} {} {}", shown(&r.schema), shown(&r.name), shown(&r.owner))) {
        entry.schema = Some(r.schema.clone());
        entry.name = r.name.clone();
        entry.owner = Some(r.owner.clone());
        entry.size = r.size;
        if matches!(entry.desc.as_str(), "VIEW" | "SEQUENCE" | "SEQUENCE SET") {
            entry.size = None;
        }
        return Some(entry);
    }
    if entry.desc == "SCHEMA" {
        if let Some(name) = catalog.schemas.get(&oid) {
            if let Some(owner) = rest
                .strip_prefix("- ")
                .and_then(|r| r.strip_prefix(shown(name).as_str()))
                .and_then(|r| r.strip_prefix(' '))
            {
                entry.name = name.clone();
                entry.owner = (!owner.is_empty()).then(|| owner.to_owned());
                return Some(entry);
            }
        }
    }
    let (schema, rest) = split_schema(rest, catalog);
    let (name, owner) = split_owner(rest, catalog);
    entry.schema = schema;
    entry.name = name.to_owned();
    entry.owner = owner;
    Some(entry)
}

/// `-` (no schema), a known schema name, or the first word.
fn split_schema<'a>(rest: &'a str, catalog: &Catalog) -> (Option<String>, &'a str) {
    if let Some(r) = rest.strip_prefix("- ") {
        return (None, r);
    }
    for s in &catalog.schema_names {
        if let Some(r) = rest.strip_prefix(s.as_str()).and_then(|r| r.strip_prefix(' ')) {
            return (Some(s.clone()), r);
        }
    }
    match rest.split_once(' ') {
        Some((s, r)) => (Some(s.to_owned()), r),
        None => (Some(rest.to_owned()), ""),
    }
}

/// The owner at the end: a known role, nothing (a trailing space), or the last word.
fn split_owner<'a>(rest: &'a str, catalog: &Catalog) -> (&'a str, Option<String>) {
    if let Some(name) = rest.strip_suffix(' ') {
        return (name, None);
    }
    for role in &catalog.roles {
        if let Some(name) = rest.strip_suffix(role.as_str()).and_then(|r| r.strip_suffix(' ')) {
            return (name, Some(role.clone()));
        }
    }
    match rest.rsplit_once(' ') {
        Some((name, owner)) => (name, Some(owner.to_owned())),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.relations.insert(
            16385,
            Relation {
                schema: "my schema".into(),
                name: "odd \"t\" x".into(),
                owner: "postgres".into(),
                size: Some(8192),
            },
        );
        c.schemas.insert(16384, "my schema".into());
        c.schema_names = vec!["my schema".into(), "public".into()];
        c.roles = vec!["app owner".into(), "postgres".into()];
        c
    }

    #[test]
    fn relations_and_schemas_are_named_from_the_catalog() {
        let c = catalog();
        let e = parse_list_line("3349; 0 16385 TABLE DATA my schema odd \"t\" x postgres", &c).unwrap();
        assert_eq!((e.toc_id, e.desc.as_str()), (3349, "TABLE DATA"));
        assert_eq!(e.schema.as_deref(), Some("my schema"));
        assert_eq!(e.name, "odd \"t\" x");
        assert_eq!((e.owner.as_deref(), e.size), (Some("postgres"), Some(8192)));
        let s = parse_list_line("6; 2615 16384 SCHEMA - my schema postgres", &c).unwrap();
        assert_eq!(
            (s.schema, s.name.as_str(), s.owner.as_deref()),
            (None, "my schema", Some("postgres"))
        );
    }

    #[test]
    fn other_entries_split_on_known_schemas_and_roles() {
        let c = catalog();
        let e = parse_list_line(
            "3206; 2606 16391 CONSTRAINT my schema odd \"t\" x odd \"t\" x_pkey postgres",
            &c,
        )
        .unwrap();
        assert_eq!(e.desc, "CONSTRAINT");
        assert_eq!(e.schema.as_deref(), Some("my schema"));
        assert_eq!(e.name, "odd \"t\" x odd \"t\" x_pkey");
        let e = parse_list_line("216; 1259 16392 TABLE public plain app owner", &c).unwrap();
        assert_eq!(
            (e.name.as_str(), e.owner.as_deref(), e.size),
            ("plain", Some("app owner"), None)
        );
        // Unknown to the catalog: schema and owner are one word each.
        let e = parse_list_line("9; 1259 1 FK CONSTRAINT other a b fk someone", &Catalog::default()).unwrap();
        assert_eq!(
            (
                e.desc.as_str(),
                e.schema.as_deref(),
                e.name.as_str(),
                e.owner.as_deref()
            ),
            ("FK CONSTRAINT", Some("other"), "a b fk", Some("someone"))
        );
    }

    #[test]
    fn comments_and_garbage_are_skipped() {
        let c = catalog();
        for line in [";", "; Archive created at x", "", "nonsense", "x; 1 2 TABLE a b c"] {
            assert!(parse_list_line(line, &c).is_none(), "{line:?}");
        }
    }

    #[test]
    fn index_lines_round_trip_and_headers_are_checked() {
        let e = TocEntry {
            toc_id: 7,
            desc: "TABLE".into(),
            schema: Some("s p".into()),
            name: "t".into(),
            owner: None,
            size: Some(1),
        };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(TocEntry::parse(&line).unwrap(), e);
        let header = serde_json::to_string(&IndexHeader::postgres(None)).unwrap();
        assert_eq!(header, r#"{"format":"backupapps-index","version":1,"kind":"postgres"}"#);
        assert!(IndexHeader::parse(&header).is_ok());
        assert!(IndexHeader::parse(r#"{"format":"backupapps-index","version":1,"kind":"files"}"#).is_err());
        assert!(TocEntry::parse("{\"toc_id\":\"x\"}").is_err());
    }
}
