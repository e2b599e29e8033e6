//! The work the endpoints do, as plain synchronous functions: counting primes by trial
//! division (`/cpu`, `/parallel`), touching memory page by page (`/memory`) and cheap system
//! calls (`/syscalls`).
//!
//! Trial division rather than a sieve on purpose: it is pure integer arithmetic on a few
//! registers, so `/cpu` measures the CPU and not the memory system, and its cost grows
//! smoothly (about N·√N / ln N divisions); the README's "The service" gives its timings.

use std::collections::TryReserveError;
use std::time::{Duration, Instant};

/// Number of primes below `n` (π(n − 1)), by trial division with odd divisors.
pub fn count_primes_below(n: u64) -> u64 {
    if n <= 2 {
        return 0;
    }
    // 2 is the one even prime; only odd candidates are tried after it.
    let odd_primes = (3..n).step_by(2).filter(|&c| is_odd_prime(c)).count() as u64;
    1 + odd_primes
}

/// Makes `n` `getppid` system calls (see `endpoints::syscalls` for why that call) and
/// returns the last answer, so the calls cannot be optimised away.
pub fn getppid_calls(n: u64) -> u32 {
    let mut parent = 0;
    for _ in 0..n {
        parent = std::hint::black_box(std::os::unix::process::parent_id());
    }
    parent
}

/// Whether odd `candidate` ≥ 3 is prime.
fn is_odd_prime(candidate: u64) -> bool {
    let mut divisor = 3;
    // `divisor <= candidate / divisor` rather than `divisor * divisor <= candidate`: never
    // overflows, whatever cap is configured.
    while divisor <= candidate / divisor {
        if candidate.is_multiple_of(divisor) {
            return false;
        }
        divisor += 2;
    }
    true
}

/// Timings of one memory exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryTouch {
    /// Pages written and verified.
    pub pages_touched: u64,
    /// Time to reserve the address space.
    pub alloc: Duration,
    /// Time to write every page (this is where the page faults happen).
    pub write: Duration,
    /// Time to read every page back and compare.
    pub verify: Duration,
    /// Time to give the memory back.
    pub free: Duration,
}

/// Why a memory exercise failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The allocator refused the request (address space or overcommit limit).
    #[error("could not allocate {bytes} bytes: {source}")]
    Alloc {
        /// Bytes requested.
        bytes: usize,
        /// The allocator's refusal.
        source: TryReserveError,
    },
    /// A page did not read back what was written: memory corruption, never expected.
    #[error("page {page} did not read back what was written")]
    Corrupt {
        /// Index of the first bad page.
        page: usize,
    },
}

/// Allocates `bytes`, writes every page of `page_bytes`, reads all of it back and frees
/// it. A refused allocation is an error, not an abort.
///
/// Each page gets a fill byte and, in its first eight bytes, its own index, so a page
/// mapped twice or never written cannot pass verification. Writing and checking go through
/// `memcpy`/`memcmp` of a template page, so the cost is the memory system's (page faults
/// and bandwidth), not a byte loop's.
pub fn touch_memory(bytes: usize, page_bytes: usize) -> Result<MemoryTouch, MemoryError> {
    let page_bytes = page_bytes.max(1);
    let template = vec![FILL; page_bytes];
    let started = Instant::now();
    let mut buffer: Vec<u8> = Vec::new();
    buffer
        .try_reserve_exact(bytes)
        .map_err(|source| MemoryError::Alloc { bytes, source })?;
    let alloc = started.elapsed();

    let started = Instant::now();
    let pages = bytes.div_ceil(page_bytes);
    for page in 0..pages {
        let start = buffer.len();
        let len = page_bytes.min(bytes - start);
        // Within the reserved capacity, so this never reallocates.
        buffer.extend_from_slice(&template[..len]);
        let stamp = stamp(page);
        let stamped = len.min(stamp.len());
        buffer[start..start + stamped].copy_from_slice(&stamp[..stamped]);
    }
    let write = started.elapsed();

    let started = Instant::now();
    // black_box keeps the compiler from reasoning the writes and the check away.
    let buffer = std::hint::black_box(buffer);
    if let Some(page) = first_bad_page(&buffer, &template) {
        return Err(MemoryError::Corrupt { page });
    }
    let verify = started.elapsed();

    let started = Instant::now();
    drop(buffer);
    let free = started.elapsed();
    Ok(MemoryTouch {
        pages_touched: pages as u64,
        alloc,
        write,
        verify,
        free,
    })
}

/// The first page of `buffer` whose content is not what [`touch_memory`] wrote, if any;
/// `template` is one page of fill bytes.
fn first_bad_page(buffer: &[u8], template: &[u8]) -> Option<usize> {
    buffer
        .chunks(template.len())
        .enumerate()
        .position(|(page, chunk)| {
            let stamp = stamp(page);
            let stamped = chunk.len().min(stamp.len());
            chunk[..stamped] != stamp[..stamped]
                || chunk[stamped..] != template[stamped..chunk.len()]
        })
}

/// The byte every page is filled with: not zero, so a page the kernel handed out zeroed
/// but that was never written cannot pass verification.
const FILL: u8 = 0xA5;

/// `bytes` bytes, every one written (none left a zero page the kernel could share), to hold
/// for as long as the caller keeps it.
pub fn written_buffer(bytes: usize) -> Result<Vec<u8>, MemoryError> {
    let mut buffer: Vec<u8> = Vec::new();
    buffer
        .try_reserve_exact(bytes)
        .map_err(|source| MemoryError::Alloc { bytes, source })?;
    buffer.resize(bytes, FILL);
    Ok(std::hint::black_box(buffer))
}

/// What page `page` starts with: its index, so each page's content is unique.
fn stamp(page: usize) -> [u8; 8] {
    (page as u64).to_le_bytes()
}

/// The system's memory page size in bytes.
pub fn page_bytes() -> usize {
    // SAFETY: sysconf only reads a system constant; it has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// π(x) for powers of ten, from the literature (OEIS A006880).
    const PI_OF_POWERS_OF_TEN: [(u64, u64); 6] = [
        (10, 4),
        (100, 25),
        (1_000, 168),
        (10_000, 1_229),
        (100_000, 9_592),
        (1_000_000, 78_498),
    ];

    #[test]
    fn prime_counts_match_known_values() {
        for (n, expected) in PI_OF_POWERS_OF_TEN {
            assert_eq!(count_primes_below(n), expected, "n = {n}");
        }
    }

    #[test]
    fn prime_count_edges() {
        assert_eq!(count_primes_below(0), 0);
        assert_eq!(count_primes_below(1), 0);
        assert_eq!(count_primes_below(2), 0);
        assert_eq!(count_primes_below(3), 1);
        assert_eq!(count_primes_below(4), 2);
        // "Below": 7 itself does not count, 11 does not count below 11.
        assert_eq!(count_primes_below(7), 3);
        assert_eq!(count_primes_below(11), 4);
        assert_eq!(count_primes_below(12), 5);
        // 49 = 7², 121 = 11²: squares of primes must be rejected.
        assert_eq!(count_primes_below(50), 15);
        assert_eq!(count_primes_below(122), 30);
    }

    #[test]
    fn memory_touch_counts_pages_including_a_partial_one() {
        let touch = touch_memory(3 * 4096 + 10, 4096).unwrap();
        assert_eq!(touch.pages_touched, 4);
        let touch = touch_memory(1 << 20, page_bytes()).unwrap();
        assert_eq!(touch.pages_touched as usize, (1 << 20) / page_bytes());
    }

    #[test]
    fn verification_finds_a_corrupted_or_swapped_page() {
        let template = vec![FILL; 64];
        let mut buffer: Vec<u8> = (0..4)
            .flat_map(|page| {
                let mut content = template.clone();
                content[..8].copy_from_slice(&stamp(page));
                content
            })
            .collect();
        assert_eq!(first_bad_page(&buffer, &template), None);
        buffer[2 * 64 + 30] = 0;
        assert_eq!(first_bad_page(&buffer, &template), Some(2));
        buffer[2 * 64 + 30] = FILL;
        // Page 1 holding page 3's stamp: a page mapped twice.
        buffer[64..72].copy_from_slice(&stamp(3));
        assert_eq!(first_bad_page(&buffer, &template), Some(1));
    }

    #[test]
    fn impossible_allocation_is_an_error_not_an_abort() {
        let error = touch_memory(usize::MAX / 2, 4096).unwrap_err();
        assert!(matches!(error, MemoryError::Alloc { .. }), "{error}");
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_bytes().is_power_of_two());
    }
}
