//! One entry of a files backup's index, and its JSON Lines form.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of an archive entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    Hardlink,
    /// Anything else (devices, FIFOs: never restored).
    Other,
}

impl EntryKind {
    /// The `ls -l` type letter.
    pub fn letter(self) -> char {
        match self {
            EntryKind::File => '-',
            EntryKind::Dir => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::Hardlink => 'h',
            EntryKind::Other => '?',
        }
    }

    /// The kind of a tar entry type.
    pub(crate) fn of(kind: tar::EntryType) -> Self {
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => EntryKind::Hardlink,
            _ => EntryKind::Other,
        }
    }
}

/// One entry of a files backup: what `tar -tv` shows, plus where its first
/// header block (a PAX or GNU long-name header when there is one) starts in
/// the backup's plaintext `data` stream.
///
/// Its JSON form (one index line) is
/// `{"path":"srv/app/a.txt","type":"file","size":5,"mode":420,"uid":1000,"gid":1000,"mtime":1700000000,"mtime_nsec":5,"offset":1536}`;
/// a name that is not UTF-8 is `path_b64` (standard base64 of its bytes)
/// instead of `path`, likewise `link`/`link_b64` for a link's target;
/// `mtime_nsec` is left out when 0, `link` when there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileEntry {
    /// The archive name: the absolute source path without its leading `/`.
    pub path: Vec<u8>,
    /// File, directory, symlink, …
    pub kind: EntryKind,
    /// Content bytes (0 for anything but files).
    pub size: u64,
    /// Permission bits, with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
    /// A link's target.
    pub link: Option<Vec<u8>>,
    /// Byte offset of the entry's first header block in the `data` stream.
    pub offset: u64,
}

impl FileEntry {
    /// An entry named `path` of `kind`, everything else zero (for callers
    /// building entries by hand; the source and the index fill them in).
    pub fn new(path: Vec<u8>, kind: EntryKind) -> Self {
        FileEntry {
            path,
            kind,
            size: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            link: None,
            offset: 0,
        }
    }

    /// The archive name as a path.
    pub fn path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.path))
    }

    /// `ls -l`-style mode text, e.g. `drwxr-xr-x`.
    pub fn mode_text(&self) -> String {
        let mut text = String::with_capacity(10);
        text.push(self.kind.letter());
        let bits = [
            (0o400, 'r'),
            (0o200, 'w'),
            (0o100, 'x'),
            (0o040, 'r'),
            (0o020, 'w'),
            (0o010, 'x'),
            (0o004, 'r'),
            (0o002, 'w'),
            (0o001, 'x'),
        ];
        for (i, (bit, c)) in bits.iter().enumerate() {
            let special = match i {
                2 => self.mode & 0o4000 != 0,
                5 => self.mode & 0o2000 != 0,
                8 => self.mode & 0o1000 != 0,
                _ => false,
            };
            let set = self.mode & bit != 0;
            text.push(match (special, set, i) {
                (true, true, 8) => 't',
                (true, false, 8) => 'T',
                (true, true, _) => 's',
                (true, false, _) => 'S',
                (false, true, _) => *c,
                (false, false, _) => '-',
            });
        }
        text
    }
}

/// The JSON shape of an index line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    path_b64: Option<String>,
    #[serde(rename = "type")]
    kind: EntryKind,
    size: u64,
    mode: u32,
    #[serde(default)]
    uid: u64,
    #[serde(default)]
    gid: u64,
    mtime: i64,
    #[serde(skip_serializing_if = "is_zero", default)]
    mtime_nsec: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    link_b64: Option<String>,
    offset: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `(text, None)` for UTF-8 bytes, `(None, base64)` otherwise.
fn split_text(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_owned()), None),
        Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(bytes))),
    }
}

fn join_text<E: serde::de::Error>(text: Option<String>, b64: Option<String>, what: &str) -> Result<Option<Vec<u8>>, E> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(E::custom(format!("both {what} and {what}_b64 are given"))),
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Some)
            .map_err(|e| E::custom(format!("{what}_b64 is not base64: {e}"))),
        (None, None) => Ok(None),
    }
}

impl Serialize for FileEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (path, path_b64) = split_text(&self.path);
        let (link, link_b64) = self.link.as_deref().map(split_text).unwrap_or((None, None));
        Line {
            path,
            path_b64,
            kind: self.kind,
            size: self.size,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            mtime_nsec: self.mtime_nsec,
            link,
            link_b64,
            offset: self.offset,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FileEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let line = Line::deserialize(deserializer)?;
        let path = join_text::<D::Error>(line.path, line.path_b64, "path")?
            .filter(|p| !p.is_empty())
            .ok_or_else(|| D::Error::custom("the entry has no path"))?;
        if line.mtime_nsec >= 1_000_000_000 {
            return Err(D::Error::custom("mtime_nsec is not below one second"));
        }
        Ok(FileEntry {
            path,
            kind: line.kind,
            size: line.size,
            mode: line.mode & 0o7777,
            uid: line.uid,
            gid: line.gid,
            mtime: line.mtime,
            mtime_nsec: line.mtime_nsec,
            link: join_text::<D::Error>(line.link, line.link_b64, "link")?,
            offset: line.offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &[u8]) -> FileEntry {
        FileEntry {
            path: path.to_vec(),
            kind: EntryKind::File,
            size: 5,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime: 1_700_000_000,
            mtime_nsec: 0,
            link: None,
            offset: 1536,
        }
    }

    #[test]
    fn json_round_trip_with_non_utf8_names() {
        for path in [&b"srv/a b.txt"[..], b"srv/\xff\xfe"] {
            let e = entry(path);
            let line = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<FileEntry>(&line).unwrap(), e);
        }
        let line = serde_json::to_string(&entry(b"a")).unwrap();
        assert_eq!(
            line,
            r#"{"path":"a","type":"file","size":5,"mode":420,"uid":1,"gid":2,"mtime":1700000000,"offset":1536}"#
        );
        assert!(serde_json::to_string(&entry(b"\xff"))
            .unwrap()
            .contains("\"path_b64\":\"/w==\""));
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            r#"{"type":"file","size":1,"mode":1,"mtime":1,"offset":0}"#,
            r#"{"path":"a","path_b64":"YQ==","type":"file","size":1,"mode":1,"mtime":1,"offset":0}"#,
            r#"{"path":"a","type":"sock","size":1,"mode":1,"mtime":1,"offset":0}"#,
            r#"{"path":"a","type":"file","size":-1,"mode":1,"mtime":1,"offset":0}"#,
            r#"{"path_b64":"!!","type":"file","size":1,"mode":1,"mtime":1,"offset":0}"#,
        ] {
            assert!(serde_json::from_str::<FileEntry>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mode_text_is_like_ls() {
        let mut e = entry(b"a");
        assert_eq!(e.mode_text(), "-rw-r--r--");
        e.kind = EntryKind::Dir;
        e.mode = 0o1777;
        assert_eq!(e.mode_text(), "drwxrwxrwt");
    }
}
