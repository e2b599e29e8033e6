//! The work `/files` does, as a plain synchronous function: a fresh file in the data
//! directory written, fsynced when asked, read back, compared byte for byte and removed.
//!
//! The bytes are a pattern that differs from request to request (not zeros), so a read that
//! returned another file's data or a page of zeros fails the comparison instead of passing.
//! The file is removed on every path out, the failing ones included, so nothing is left behind
//! after a request.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Numbers the files of this process, so concurrent requests never share one.
static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// Timings of one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTrip {
    /// Bytes written and read back.
    pub bytes: u64,
    /// Time to create the file and write the bytes.
    pub write: Duration,
    /// Time `fsync` took (zero when not asked for).
    pub fsync: Duration,
    /// Time to read the bytes back and compare them.
    pub read: Duration,
    /// Time to remove the file.
    pub remove: Duration,
}

/// Why a round trip failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The service was started without a data directory.
    #[error(
        "no data directory is configured (start the server with --data-dir or ISOBENCH_DATA_DIR)"
    )]
    NoDataDir,
    /// The data directory has no room (ENOSPC, EDQUOT).
    #[error("the data directory is full: {0}")]
    Full(#[source] io::Error),
    /// The data directory cannot be written (EROFS, EACCES, EPERM).
    #[error("the data directory is read-only or not writable: {0}")]
    ReadOnly(#[source] io::Error),
    /// Any other I/O failure (a missing directory, an I/O error).
    #[error("the data directory failed: {0}")]
    Io(#[source] io::Error),
    /// The bytes read back are not those written.
    #[error("the file read back differs from what was written, first at byte {at}")]
    Corrupt {
        /// Offset of the first differing byte (the length read, when it was short).
        at: u64,
    },
}

impl FileError {
    /// Sorts an I/O error by what a client can do about it.
    fn from_io(error: io::Error) -> Self {
        match error.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => Self::Full(error),
            Some(libc::EROFS | libc::EACCES | libc::EPERM) => Self::ReadOnly(error),
            _ => Self::Io(error),
        }
    }
}

/// Removes the file when dropped, whichever way the round trip ends.
struct Scratch {
    path: PathBuf,
    removed: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.removed {
            // Best effort: the request has already failed for a reason worth reporting.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Byte `index` of the pattern written by file `seed`.
fn pattern_byte(seed: u64, index: usize) -> u8 {
    // A multiplier coprime to 256 makes every byte value appear and neighbours differ.
    (seed as usize).wrapping_add(index.wrapping_mul(167)) as u8
}

/// Bytes written and read per call: a multiple of the pattern's 256-byte period, so every
/// chunk is the same, and below glibc's default mmap threshold (128 KiB), so the buffers come
/// from the heap in every process. A buffer of the whole file would be mmapped or reused
/// depending on the allocator's adaptive threshold, which then sets the request's cost (a
/// fresh mapping faults in every page) rather than the file system does.
const CHUNK: usize = 64 * 1024;

/// One chunk of file `seed`'s pattern (one 256-byte block repeated, the pattern's period),
/// copied rather than computed byte by byte, so making it costs a memcpy.
fn pattern_chunk(seed: u64, bytes: usize) -> Vec<u8> {
    let block: Vec<u8> = (0..256).map(|i| pattern_byte(seed, i)).collect();
    let mut chunk = block.repeat(bytes.min(CHUNK).div_ceil(256));
    chunk.truncate(bytes.min(CHUNK));
    chunk
}

/// Writes `bytes` to a fresh file in `dir`, fsyncs it when `fsync`, reads it back, compares
/// and removes it.
pub fn round_trip(dir: &Path, bytes: usize, fsync: bool) -> Result<RoundTrip, FileError> {
    let seed = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
    let mut scratch = Scratch {
        path: dir.join(format!("isobench-files-{}-{seed}.tmp", std::process::id())),
        removed: false,
    };
    let chunk = pattern_chunk(seed, bytes);

    let started = Instant::now();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&scratch.path)
        .map_err(FileError::from_io)?;
    let mut left = bytes;
    while left > 0 {
        let now = left.min(CHUNK);
        file.write_all(&chunk[..now]).map_err(FileError::from_io)?;
        left -= now;
    }
    let write = started.elapsed();

    let started = Instant::now();
    if fsync {
        file.sync_all().map_err(FileError::from_io)?;
    }
    let fsync_time = started.elapsed();
    drop(file);

    let started = Instant::now();
    let mut file = File::open(&scratch.path).map_err(FileError::from_io)?;
    let mut read_back = vec![0u8; chunk.len().max(1)];
    let mut offset = 0;
    loop {
        let read = read_full(&mut file, &mut read_back).map_err(FileError::from_io)?;
        if read == 0 {
            break;
        }
        if offset + read > bytes {
            return Err(FileError::Corrupt { at: bytes as u64 });
        }
        // Every chunk but a short last one starts at a multiple of the pattern's period, so
        // each compares against the same chunk; memcmp first, the position only on a
        // difference.
        if read_back[..read] != chunk[..read] {
            let at = first_difference(&chunk[..read], &read_back[..read]).unwrap_or(0);
            return Err(FileError::Corrupt {
                at: (offset + at) as u64,
            });
        }
        offset += read;
        if read < read_back.len() {
            break;
        }
    }
    if offset < bytes {
        return Err(FileError::Corrupt { at: offset as u64 });
    }
    let read = started.elapsed();

    let started = Instant::now();
    std::fs::remove_file(&scratch.path).map_err(FileError::from_io)?;
    scratch.removed = true;
    Ok(RoundTrip {
        bytes: bytes as u64,
        write,
        fsync: fsync_time,
        read,
        remove: started.elapsed(),
    })
}

/// Reads into `buffer` until it is full or the file ends; how many bytes were read.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Where `read` first differs from `written`, including a short or long read.
fn first_difference(written: &[u8], read: &[u8]) -> Option<usize> {
    written
        .iter()
        .zip(read)
        .position(|(a, b)| a != b)
        .or_else(|| (written.len() != read.len()).then(|| written.len().min(read.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn a_round_trip_writes_reads_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for fsync in [false, true] {
            let trip = round_trip(dir.path(), 64 * 1024, fsync).unwrap();
            assert_eq!(trip.bytes, 64 * 1024);
            if !fsync {
                assert!(trip.fsync < Duration::from_millis(1), "{trip:?}");
            }
        }
        assert_eq!(entries(dir.path()), 0);
    }

    #[test]
    fn a_file_of_several_chunks_and_a_short_last_one_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = 3 * CHUNK + 100;
        assert_eq!(
            round_trip(dir.path(), bytes, false).unwrap().bytes,
            bytes as u64
        );
        assert_eq!(entries(dir.path()), 0);
    }

    #[test]
    fn an_empty_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(round_trip(dir.path(), 0, true).unwrap().bytes, 0);
        assert_eq!(entries(dir.path()), 0);
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        assert!(matches!(
            round_trip(&missing, 10, false),
            Err(FileError::Io(_))
        ));
    }

    #[test]
    fn an_unwritable_directory_is_read_only_and_left_clean() {
        let dir = tempfile::tempdir().unwrap();
        let mut permissions = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o555);
        std::fs::set_permissions(dir.path(), permissions).unwrap();
        let result = round_trip(dir.path(), 10, false);
        // root ignores directory permissions; everyone else must get ReadOnly.
        if !running_as_root() {
            assert!(matches!(result, Err(FileError::ReadOnly(_))), "{result:?}");
        } else {
            assert!(result.is_ok());
        }
        assert_eq!(entries(dir.path()), 0);
    }

    fn running_as_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_full_device_is_full() {
        // /dev/full answers every write with ENOSPC: the classification a full disk gets.
        let error = FileError::from_io(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(error, FileError::Full(_)));
        let error = FileError::from_io(io::Error::from_raw_os_error(libc::EROFS));
        assert!(matches!(error, FileError::ReadOnly(_)));
    }

    #[test]
    fn differences_are_found_where_they_are() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"ab"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
    }

    #[test]
    fn the_pattern_is_the_byte_formula_repeated() {
        let content = pattern_chunk(7, 1000);
        assert_eq!(content.len(), 1000);
        assert!(
            content
                .iter()
                .enumerate()
                .all(|(i, &b)| b == pattern_byte(7, i))
        );
    }

    #[test]
    fn patterns_differ_between_files() {
        let a: Vec<u8> = (0..16).map(|i| pattern_byte(1, i)).collect();
        let b: Vec<u8> = (0..16).map(|i| pattern_byte(2, i)).collect();
        assert_ne!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
