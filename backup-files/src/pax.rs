//! PAX extended headers: sub-second mtimes that plain tar headers cannot hold.

use std::io::{self, Write};

use tar::{EntryType, Header};

/// Appends a PAX `x` header carrying `mtime=SECONDS.NANOS` for the next entry.
pub(crate) fn append_mtime<W: Write>(out: &mut tar::Builder<W>, seconds: i64, nanos: u32) -> io::Result<()> {
    let value = if nanos == 0 {
        seconds.to_string()
    } else {
        format!("{seconds}.{nanos:09}")
    };
    let record = record("mtime", &value);
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::XHeader);
    header.set_size(record.len() as u64);
    header.set_mode(0o644);
    header.set_path("././@PaxHeader")?;
    header.set_cksum();
    out.append(&header, record.as_bytes())
}

/// One PAX record, `"<len> <key>=<value>\n"`, where `len` counts the whole
/// record including its own digits.
fn record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

/// Reads `mtime` from an entry's PAX extensions: (seconds, nanoseconds).
pub(crate) fn mtime_of<R: io::Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<(i64, u32)>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(None);
    };
    for ext in extensions {
        let ext = ext?;
        if ext.key_bytes() == b"mtime" {
            let value = String::from_utf8_lossy(ext.value_bytes()).into_owned();
            let (secs, frac) = value.split_once('.').unwrap_or((&value, ""));
            let Ok(secs) = secs.parse::<i64>() else {
                return Ok(None);
            };
            let frac: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            return Ok(Some((secs, frac.parse().unwrap_or(0))));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn record_length_counts_itself() {
        let r = super::record("mtime", "1700000000.123456789");
        assert_eq!(r, "30 mtime=1700000000.123456789\n");
        assert_eq!(r.len(), 30);
        // 9-character body: "1 a=bcde\n" crosses into two digits.
        let r = super::record("a", "bcdefg");
        assert_eq!(r.len(), r.split(' ').next().unwrap().parse::<usize>().unwrap());
    }
}
