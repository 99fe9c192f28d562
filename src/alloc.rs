//! A global allocator that counts live heap bytes, so the memory image can
//! keep to a memory budget by what it really holds (RSS lags behind frees
//! and includes fragmentation). The binary installs it; a library user that
//! does not gets RSS from /proc instead.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use tikv_jemallocator::Jemalloc;

/// Live bytes, counted in slots of their own cache line: each thread adds
/// to one slot (threads take slots in turn), so threads allocating and
/// freeing at once (folding, making deltas, freeing checkpoints) do not
/// pass one counter's cache line between cores on every allocation. A
/// slot goes below zero when its threads free what others allocated; the
/// sum is what is live.
static LIVE: [Slot; SLOTS] = [const { Slot(AtomicIsize::new(0)) }; SLOTS];
const SLOTS: usize = 16;
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

#[repr(align(128))]
struct Slot(AtomicIsize);

thread_local! {
    /// This thread's slot; `usize::MAX` until it first allocates. (A
    /// `Cell` of a number: no destructor, so no allocation to set up.)
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The counter of the calling thread.
fn live() -> &'static AtomicIsize {
    let i = MY_SLOT
        .try_with(|slot| {
            if slot.get() == usize::MAX {
                slot.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS);
            }
            slot.get()
        })
        .unwrap_or(0);
    &LIVE[i].0
}

/// Count `n` bytes allocated (`n` < 0: freed).
fn count(n: isize) {
    live().fetch_add(n, Ordering::Relaxed);
}

/// jemalloc, counting live bytes. jemalloc rather than the C library's
/// allocator: persistent states allocate and free many small nodes from
/// several threads (folding, reading, freeing dropped checkpoints), and
/// glibc's arenas then spend much of a seek in lock waits and consolidation
/// (on the 1M benchmark, before deltas: seek p50/p99 39/106 ms with glibc,
/// 25/61 ms with jemalloc, and folding 163k against 177k events/s). Its
/// size classes hold about 5% more resident memory for the same live
/// bytes, which the image's budget allows for.
pub struct CountingAlloc;

// SAFETY: every method forwards to `Jemalloc` with the same arguments and
// only adds bookkeeping on atomic counters (through a thread-local that
// never allocates).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { Jemalloc.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { Jemalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { Jemalloc.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        let p = unsafe { Jemalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

impl CountingAlloc {
    /// Say that this allocator is the global one (call once from `main`).
    pub fn mark_installed() {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Bytes the process holds: live heap bytes when the counting allocator is
/// installed, else the resident set size.
pub fn used_bytes() -> usize {
    if INSTALLED.load(Ordering::Relaxed) {
        let live: isize = LIVE.iter().map(|s| s.0.load(Ordering::Relaxed)).sum();
        live.max(0) as usize
    } else {
        rss_bytes().unwrap_or(0)
    }
}

/// Give the pages of freed memory back to the system now rather than when
/// jemalloc's decay timers would. The event index grows in large whole
/// chunks that come from fresh pages: without this, memory freed by
/// thinning checkpoints stays resident beside the growing index and the
/// resident set creeps past the budget though live bytes keep to it.
pub fn release_free_memory() {
    // `arena.<MALLCTL_ARENAS_ALL>.purge`: every arena's unused dirty pages.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: a "void" mallctl: no old or new value is read or written, and
    // the name is a NUL-terminated string.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// The resident set size, from /proc/self/statm (Linux).
pub fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Parse a size such as `1G`, `512M`, `1.5G`, `800000K` or a plain number
/// of bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_uppercase();
            let mult: f64 = match unit.trim_end_matches('B').trim_end_matches('I') {
                "" => 1.0,
                "K" => 1024.0,
                "M" => 1024.0 * 1024.0,
                "G" => 1024.0 * 1024.0 * 1024.0,
                "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
                _ => return Err(format!("{text:?}: unknown unit (use K, M, G or T)")),
            };
            (&t[..i], mult)
        }
        None => (t, 1.0),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 512M, 2G)"))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{text:?}: a size must be positive"));
    }
    Ok((n * mult) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("3X").is_err());
    }
}
