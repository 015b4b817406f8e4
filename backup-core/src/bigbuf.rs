//! Chunk-sized buffers in their own anonymous memory maps, reused.
//!
//! glibc serves a freed multi-MiB block from its arenas afterwards (its mmap
//! threshold rises to the largest block freed) and keeps the pages: peak RSS
//! rose by a third in the benchmarks. A buffer of its own map is returned to
//! the system when the pool does not keep it, and pages never written cost
//! nothing.
//!
//! A fresh map costs a page fault and a zeroed page for every 4 KiB written
//! (a tenth of a restore's CPU in `perf`), so dropped maps go back to a small
//! process-wide pool, bounded in bytes, and the next chunk reuses them.

use std::io::{self, Write};
use std::sync::Mutex;

use bytes::Bytes;
use memmap2::MmapMut;

/// Idle maps kept for reuse: the chunk buffers of a pipeline are all about
/// one size, so a few idle maps serve every next chunk. Each holds at most
/// the pages of the largest chunk written into it; more idle maps would
/// only raise peak RSS.
const POOL_MAPS: usize = 4;

/// Maps smaller than this are neither pooled nor rounded up.
const POOL_MIN: usize = 1024 * 1024;

static POOL: Mutex<Vec<MmapMut>> = Mutex::new(Vec::new());

/// A map of at least `capacity` bytes: the smallest idle one that fits, or a
/// new one. Sizes are rounded up to whole MiB so that a chunk's plaintext,
/// compressed and sealed buffers can take each other's maps.
fn take_map(capacity: usize) -> io::Result<MmapMut> {
    if capacity < POOL_MIN {
        return MmapMut::map_anon(capacity);
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let best = pool
        .iter()
        .enumerate()
        .filter(|(_, m)| m.len() >= capacity)
        .min_by_key(|(_, m)| m.len())
        .map(|(i, _)| i);
    if let Some(i) = best {
        return Ok(pool.swap_remove(i));
    }
    drop(pool);
    MmapMut::map_anon(capacity.div_ceil(POOL_MIN).saturating_mul(POOL_MIN))
}

/// Gives a map back to the pool; when the pool is full the smallest map goes
/// back to the system.
fn give_back(map: MmapMut) {
    if map.len() < POOL_MIN {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    pool.push(map);
    if pool.len() > POOL_MAPS {
        if let Some(i) = pool.iter().enumerate().min_by_key(|(_, m)| m.len()).map(|(i, _)| i) {
            let smallest = pool.swap_remove(i);
            drop(pool);
            drop(smallest);
        }
    }
}

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

impl Drop for BigBuf {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            give_back(map);
        }
    }
}

impl BigBuf {
    /// A buffer that holds `capacity` bytes before it has to grow. Nothing is
    /// mapped for a capacity of 0.
    ///
    /// # Errors
    /// The system's error when it cannot map the memory.
    pub fn with_capacity(capacity: usize) -> io::Result<Self> {
        let map = if capacity == 0 { None } else { Some(take_map(capacity)?) };
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

    /// Bytes it holds before it has to grow.
    pub fn capacity(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// The written bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| &m[..self.len])
    }

    /// The unwritten part of the buffer, to fill in place; then
    /// [`BigBuf::advance`] by what was written.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        let len = self.len;
        self.map.as_mut().map_or(&mut [], |m| &mut m[len..])
    }

    /// Counts `n` more bytes of [`BigBuf::spare`] as written.
    ///
    /// # Panics
    /// When `n` is more than the spare room: a caller's bug.
    pub(crate) fn advance(&mut self, n: usize) {
        assert!(self.len + n <= self.capacity(), "advanced past the buffer");
        self.len += n;
    }

    /// Appends `data`, growing (doubling) the map when it is full.
    ///
    /// # Errors
    /// The system's error when it cannot map more memory.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> io::Result<()> {
        let needed = self.len + data.len();
        if needed > self.capacity() {
            let mut bigger = take_map(needed.max(self.capacity() * 2))?;
            if let Some(old) = self.map.take() {
                bigger[..self.len].copy_from_slice(&old[..self.len]);
                give_back(old);
            }
            self.map = Some(bigger);
        }
        if let Some(map) = &mut self.map {
            map[self.len..needed].copy_from_slice(data);
        }
        self.len = needed;
        Ok(())
    }

    /// The written bytes as `Bytes`, without copying; the map goes back to the
    /// pool when the last clone is dropped.
    pub fn freeze(mut self) -> Bytes {
        match self.map.take() {
            Some(map) if self.len > 0 => Bytes::from_owner(Frozen {
                map: Some(map),
                len: self.len,
            }),
            Some(map) => {
                give_back(map);
                Bytes::new()
            }
            None => Bytes::new(),
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
    map: Option<MmapMut>,
    len: usize,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        self.map.as_ref().map_or(&[], |m| &m[..self.len])
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            give_back(map);
        }
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

    #[test]
    fn fills_in_place() {
        let mut b = BigBuf::with_capacity(8).unwrap();
        b.spare()[..3].copy_from_slice(b"xyz");
        b.advance(3);
        assert_eq!(b.as_slice(), b"xyz");
        assert_eq!(b.spare().len(), b.capacity() - 3);
    }

    #[test]
    fn reused_maps_hold_only_what_is_written_anew() {
        let size = POOL_MIN * 2;
        let mut first = BigBuf::with_capacity(size).unwrap();
        first.extend_from_slice(&vec![7u8; size]).unwrap();
        drop(first.freeze());
        // Another test may take the map first; either way the new buffer
        // reads back exactly what was written into it.
        let mut second = BigBuf::with_capacity(size).unwrap();
        second.extend_from_slice(b"new").unwrap();
        assert_eq!(&second.freeze()[..], b"new");
    }
}
