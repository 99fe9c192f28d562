//! The snapshot cache as the commands use it: find it, restore from it
//! before loading, save to it after a full load.
//!
//! `--no-cache` turns it off; `EVSCOPE_CACHE_DIR` moves it. With
//! `EVSCOPE_DEBUG_CACHE=1` the headless commands say on stderr what the
//! cache did (restored, ignored and why, saved), which tests use to prove
//! the cache is really read. A save that fails only warns: the answer was
//! computed anyway.

use crate::image::MemoryImage;
use crate::image::snapshot::{Restore, SnapshotCache};
use crate::log::SourceSpec;
use crate::value::PVal;
use std::time::Instant;

/// Whether to say what the cache did (`EVSCOPE_DEBUG_CACHE=1`).
pub(crate) fn debug() -> bool {
    std::env::var_os("EVSCOPE_DEBUG_CACHE").is_some_and(|v| v == "1")
}

/// The cache of this log and reducer, unless it is turned off or there is
/// none (standard input, no cache directory).
pub(crate) fn open(
    spec: Option<&SourceSpec>,
    program: &str,
    init: &PVal,
    no_cache: bool,
) -> Option<SnapshotCache> {
    if no_cache {
        return None;
    }
    match SnapshotCache::new(spec?, program, init) {
        Ok(c) => Some(c),
        Err(why) => {
            if debug() {
                eprintln!("evscope: cache: none ({why})");
            }
            None
        }
    }
}

/// Restore `image` from the cache; returns how many events it now holds
/// when it did.
pub(crate) fn restore(cache: &SnapshotCache, image: &mut MemoryImage) -> Option<usize> {
    let started = Instant::now();
    match cache.restore(image) {
        Restore::Restored { events } => {
            if debug() {
                eprintln!(
                    "evscope: cache: restored {events} events from {} in {} ms",
                    cache.path().display(),
                    started.elapsed().as_millis()
                );
            }
            Some(events)
        }
        Restore::Missing => {
            if debug() {
                eprintln!("evscope: cache: no snapshot at {}", cache.path().display());
            }
            None
        }
        Restore::Ignored(why) => {
            if debug() {
                eprintln!("evscope: cache: ignored a snapshot: {why}");
            }
            None
        }
    }
}

/// Save the loaded image when it is worth it (see
/// [`SnapshotCache::should_save`]); a failure is a warning.
pub(crate) fn save(cache: &SnapshotCache, image: &mut MemoryImage, restored: Option<usize>) {
    if !cache.should_save(restored, image.len()) {
        return;
    }
    let started = Instant::now();
    match cache.save(image) {
        Ok(saved) => {
            if debug() {
                eprintln!(
                    "evscope: cache: saved {} events ({} bytes) to {} in {} ms",
                    saved.events,
                    saved.bytes,
                    cache.path().display(),
                    started.elapsed().as_millis()
                );
            }
        }
        Err(why) => eprintln!("evscope: warning: could not save the snapshot cache: {why}"),
    }
}
