//! Which entries a partial restore or a search picks: globs over archive names.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use backup_core::{Error, Result};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Globs matched against archive names (`srv/app/media/a.jpg`: the source
/// path without its leading `/`; a leading `/` in a pattern is ignored).
///
/// A pattern with a `/` matches whole names, `*` staying within one name
/// component and `**` crossing them; a pattern without `/` matches any single
/// component (`*.jpg`, `media`). An entry is *selected* when it or one of its
/// parent folders matches an include pattern — so a folder brings its
/// contents — and neither it nor a parent matches an exclude pattern.
#[derive(Debug, Clone)]
pub struct Selection {
    include: Patterns,
    exclude: Patterns,
}

#[derive(Debug, Clone)]
struct Patterns {
    whole: GlobSet,
    component: GlobSet,
    /// Exact names (no glob): how names that are not UTF-8 are given.
    literals: Vec<Vec<u8>>,
    empty: bool,
}

impl Patterns {
    fn new(patterns: &[String], field: &str) -> Result<Self> {
        let mut whole = GlobSetBuilder::new();
        let mut component = GlobSetBuilder::new();
        for pattern in patterns {
            let trimmed = pattern.trim_start_matches('/').trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(Error::config(field, format!("pattern {pattern:?} names nothing")));
            }
            let glob = GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::config(field, format!("pattern {pattern:?}: {e}")))?;
            if trimmed.contains('/') {
                whole.add(glob);
            } else {
                component.add(glob);
            }
        }
        let build = |set: GlobSetBuilder| {
            set.build()
                .map_err(|e| Error::config(field, format!("patterns {}: {e}", patterns.join(", "))))
        };
        Ok(Patterns {
            whole: build(whole)?,
            component: build(component)?,
            literals: Vec::new(),
            empty: patterns.is_empty(),
        })
    }

    /// Adds exact names; an empty one is refused like an empty pattern.
    fn add_literals(&mut self, names: &[Vec<u8>], field: &str) -> Result<()> {
        for name in names {
            let trimmed = trim(name);
            if trimmed.is_empty() {
                return Err(Error::config(field, "an empty name names nothing"));
            }
            self.literals.push(trimmed.to_vec());
            self.empty = false;
        }
        Ok(())
    }

    /// Whether `name` itself matches.
    fn matches(&self, name: &[u8]) -> bool {
        let path = Path::new(OsStr::from_bytes(name));
        self.literals.iter().any(|l| l == name)
            || self.whole.is_match(path)
            || path
                .file_name()
                .is_some_and(|last| self.component.is_match(Path::new(last)))
    }

    /// Whether `name` or one of its parents matches.
    fn matches_or_parent(&self, name: &[u8]) -> bool {
        let mut end = name.len();
        loop {
            if self.matches(&name[..end]) {
                return true;
            }
            match name[..end].iter().rposition(|b| *b == b'/') {
                Some(slash) => end = slash,
                None => return false,
            }
        }
    }
}

impl Selection {
    /// A selection of the entries matching `include` (none: everything) and
    /// not `exclude`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `include` or `exclude` for a pattern that is
    /// not a valid glob.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Selection {
            include: Patterns::new(include, "include")?,
            exclude: Patterns::new(exclude, "exclude")?,
        })
    }

    /// Adds exact names to include and exclude, as bytes: names that are not
    /// UTF-8 (which no glob can spell) are selected this way.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty name.
    pub fn with_exact_names(mut self, include: &[Vec<u8>], exclude: &[Vec<u8>]) -> Result<Self> {
        self.include.add_literals(include, "include")?;
        self.exclude.add_literals(exclude, "exclude")?;
        Ok(self)
    }

    /// Whether the entry named `name` is selected (it, or a parent folder,
    /// is included, and neither is excluded).
    pub fn selects(&self, name: &[u8]) -> bool {
        let name = trim(name);
        (self.include.empty || self.include.matches_or_parent(name)) && !self.exclude.matches_or_parent(name)
    }

    /// Whether `name` itself matches an include pattern and no exclude one
    /// (no parent rule: what a search reports).
    pub fn matches(&self, name: &[u8]) -> bool {
        let name = trim(name);
        (self.include.empty || self.include.matches(name)) && !self.exclude.matches(name)
    }
}

fn trim(name: &[u8]) -> &[u8] {
    let start = name.iter().position(|b| *b != b'/').unwrap_or(name.len());
    let end = name.iter().rposition(|b| *b != b'/').map_or(start, |i| i + 1);
    &name[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::Selection;

    fn sel(include: &[&str], exclude: &[&str]) -> Selection {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Selection::new(&v(include), &v(exclude)).unwrap()
    }

    #[test]
    fn exact_names_select_what_no_glob_can_spell() {
        let s = sel(&[], &[])
            .with_exact_names(&[b"/srv/caf\xe9".to_vec()], &[])
            .unwrap();
        assert!(s.selects(b"srv/caf\xe9"));
        assert!(s.selects(b"srv/caf\xe9/inside"));
        assert!(!s.selects(b"srv/cafe"));
        assert!(!s.selects(b"srv/caf\xe9x"));
        let s = sel(&["srv"], &[])
            .with_exact_names(&[], &[b"srv/caf\xe9".to_vec()])
            .unwrap();
        assert!(s.selects(b"srv/other") && !s.selects(b"srv/caf\xe9/x"));
        assert!(sel(&[], &[]).with_exact_names(&[b"/".to_vec()], &[]).is_err());
    }

    #[test]
    fn folders_bring_their_contents() {
        let s = sel(&["srv/app/media"], &[]);
        assert!(s.selects(b"srv/app/media"));
        assert!(s.selects(b"srv/app/media/a/b.jpg"));
        assert!(!s.selects(b"srv/app/mediax"));
        assert!(!s.selects(b"srv/app"));
        assert!(!s.matches(b"srv/app/media/a"));
    }

    #[test]
    fn patterns_without_slash_match_a_component() {
        let s = sel(&["*.jpg"], &["tmp"]);
        assert!(s.selects(b"srv/a/x.jpg"));
        assert!(!s.selects(b"srv/tmp/x.jpg"));
        assert!(!s.selects(b"srv/a/x.png"));
        let s = sel(&["/srv/*/x.jpg"], &[]);
        assert!(s.selects(b"srv/a/x.jpg"));
        assert!(!s.selects(b"srv/a/b/x.jpg"), "* stays within a component");
        let s = sel(&["srv/**/x.jpg"], &[]);
        assert!(s.selects(b"srv/a/b/x.jpg"));
    }

    #[test]
    fn non_utf8_names_match() {
        let s = sel(&["srv/*"], &[]);
        assert!(s.selects(b"srv/\xff\xfe"));
        assert!(Selection::new(&["[".into()], &[]).is_err());
    }
}
