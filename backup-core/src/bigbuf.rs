//! Chunk-sized buffers in their own anonymous memory maps.
//!
//! glibc serves a freed multi-MiB block from its arenas afterwards (its mmap
//! threshold rises to the largest block freed) and keeps the pages: peak RSS
//! rose by a third in the benchmarks. A buffer of its own map is returned to
//! the system the moment it is dropped, and pages never written cost nothing.

use std::io::{self, Write};

use bytes::Bytes;
use memmap2::MmapMut;

/// A growable byte buffer backed by an anonymous memory map.
pub struct BigBuf {
    map: Option<MmapMut>,
    len: usize,
}

impl std::fmt::Debug for BigBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigBuf").field("len", &self.len).finish_non_exhaustive()
    }
}

impl BigBuf {
    /// A buffer that holds `capacity` bytes before it has to grow. Nothing is
    /// mapped for a capacity of 0.
    ///
    /// # Errors
    /// The system's error when it cannot map the memory.
    pub fn with_capacity(capacity: usize) -> io::Result<Self> {
        let map = if capacity == 0 {
            None
        } else {
            Some(MmapMut::map_anon(capacity)?)
        };
        Ok(BigBuf { map, len: 0 })
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// Appends `data`, growing (doubling) the map when it is full.
    ///
    /// # Errors
    /// The system's error when it cannot map more memory.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> io::Result<()> {
        let needed = self.len + data.len();
        if needed > self.capacity() {
            let mut bigger = MmapMut::map_anon(needed.max(self.capacity() * 2))?;
            if let Some(old) = &self.map {
                bigger[..self.len].copy_from_slice(&old[..self.len]);
            }
            self.map = Some(bigger);
        }
        if let Some(map) = &mut self.map {
            map[self.len..needed].copy_from_slice(data);
        }
        self.len = needed;
        Ok(())
    }

    /// The written bytes as `Bytes`, without copying; the map goes away when
    /// the last clone is dropped.
    pub fn freeze(self) -> Bytes {
        match self.map {
            Some(map) if self.len > 0 => Bytes::from_owner(Frozen { map, len: self.len }),
            _ => Bytes::new(),
        }
    }
}

impl Write for BigBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.extend_from_slice(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Frozen {
    map: MmapMut,
    len: usize,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_freezes() {
        let mut b = BigBuf::with_capacity(4).unwrap();
        b.extend_from_slice(b"abc").unwrap();
        b.write_all(b"defgh").unwrap();
        assert_eq!(b.len(), 8);
        assert_eq!(&b.freeze()[..], b"abcdefgh");
        assert!(BigBuf::with_capacity(0).unwrap().freeze().is_empty());
        let mut e = BigBuf::with_capacity(0).unwrap();
        e.extend_from_slice(b"x").unwrap();
        assert_eq!(&e.freeze()[..], b"x");
    }
}
