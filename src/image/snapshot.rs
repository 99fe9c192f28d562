//! The snapshot cache: a folded image saved on disk, so reopening a big log
//! does not fold it again from the start.
//!
//! A snapshot holds the log index (every [`Entry`]), the state after the
//! last event, a few checkpoints near the end, and where the source
//! stopped reading. Restoring one puts those back and resumes the source
//! there; the next `load` folds only what was appended since.
//!
//! Checkpoints: all of them would be many states. The explorer opens at
//! the end of the log (showing the last event's diff, which needs the state
//! before it) and steps back from there, so the snapshot keeps the image's
//! last eight checkpoints and then ever sparser ones further back, each
//! stored as the changes from the next later one, within a budget of a
//! sixteenth of the entries' size. Elsewhere the restored image rebuilds
//! checkpoints where the user seeks (as after thinning), crossing the
//! intervals by the deltas saved after the payload (see below), which it
//! reads from the snapshot file as it needs them.
//!
//! It is only a cache, so nothing in it is trusted:
//! - the file is named by a key that hashes the log's canonical path and
//!   kind, the field/column mapping, the reducer's text and initial state,
//!   and the engine version with this format's number and the build (the
//!   executable's size and time): another reducer or another evscope never
//!   finds it;
//! - the header repeats the full key, and a BLAKE3 hash of the payload
//!   catches a truncated, flipped or garbage file;
//! - the log must still be the same up to the saved position: the source
//!   recomputes its [`LogIdentity`] there (JSONL: device, inode and hashes
//!   of the first and last 4 KiB before the position and of samples
//!   between; SQLite: device, inode, the table, and a hash of the row count
//!   and of the rows at both ends up to the last row read) and it must
//!   equal the saved one.
//!
//! Any mismatch means the snapshot is ignored (and deleted); the log is
//! folded from the start as if there were no cache, and the next save
//! replaces it. Saving writes a temporary file in the cache directory and
//! renames it into place, so readers see an old file or a whole new one.
//!
//! Format (version [`FORMAT_VERSION`]): a fixed header (magic, format
//! version, flags, key, payload length, payload hash), then the payload:
//! the engine version, the source's display name, the resume position and
//! identity, counts, the checkpoint spacing, the name and message tables,
//! what the index keeps beside its columns (the time form, times and places
//! that did not pack, statuses), the last state, the stored checkpoints, a
//! chunk index and the index's chunks of 2^16 entries as they are packed in
//! memory (see [`Index`]): seven columns of fixed-width bit fields, about 8
//! bytes an event on the benchmark logs. Reading them back is a copy, not
//! the parsing and packing of ten million entries again (states are read
//! on a second thread meanwhile).
//!
//! After the payload, outside its hash, come the image's deltas (one an
//! interval, about 30 bytes an event), then their table and a trailer (see
//! [`write_deltas`]). The table's hash covers the payload's hash, and each
//! delta is checked against the table when it is read: a damaged delta is
//! replayed over like a missing one, and a damaged table only means the
//! restored image has no deltas. Only the header and the payload are read
//! into memory.

pub(super) mod codec;

use super::delta::{Check, Delta, Far, Spill, check_of};
use super::{Index, MemoryImage, Status};
use crate::log::{Invalid, Loc, LogIdentity, ResumePos, RowKey, SourceKind, SourceSpec};
use crate::value::PVal;
use crate::value::Text;
use codec::{
    ArcTable, Corrupt, ReadTable, Reader, TextTable, get_ref, get_table, get_value, put_bytes, put_table,
    put_value, put_varint, put_zigzag,
};
use std::borrow::Cow;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The snapshot format. Any change to what is written, or to what a fold
/// produces for the same input, must bump it.
pub const FORMAT_VERSION: u32 = 6;
/// Logs with fewer events are not saved: refolding them is about as fast
/// as reading a snapshot. `EVSCOPE_CACHE_MIN_EVENTS` overrides it.
pub const DEFAULT_MIN_EVENTS: usize = 100_000;
/// When the snapshots in the cache directory take more than this, the
/// least recently used ones are deleted after a save.
/// `EVSCOPE_CACHE_MAX_BYTES` overrides it.
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 4 << 30;

const MAGIC: &[u8; 8] = b"EVSCSNAP";
/// Starts the trailer after the deltas (see [`write_deltas`]).
const DELTA_MAGIC: &[u8; 8] = b"EVSCDLTA";
/// The trailer: magic, the table's length, the table's hash.
const TRAILER_LEN: usize = 8 + 8 + 32;
/// magic, format version, flags (0), key, payload length, payload hash.
const HEADER_LEN: usize = 8 + 4 + 4 + 32 + 8 + 32;
const EXTENSION: &str = "evsnap";
const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this were left by a process that died while
/// saving; they are removed.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Checkpoints stored at most (see `checkpoints_to_store`).
const MAX_STORED: usize = 40;

// A status's tag (see `put_status`).
const ST_OK: u8 = 0;
const ST_INVALID: u8 = 1;
const ST_ERROR: u8 = 2;

/// The engine version a snapshot must have been written by: a new evscope
/// may fold differently (a fixed native, another jaq), so its snapshots are
/// not shared.
pub fn engine_version() -> String {
    format!("evscope {} snapshot {FORMAT_VERSION}", env!("CARGO_PKG_VERSION"))
}

/// The default cache directory: `$EVSCOPE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/evscope` (when absolute, as the XDG spec asks), else
/// `~/.cache/evscope`.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("EVSCOPE_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("evscope"));
    }
    var("HOME").map(|h| h.join(".cache").join("evscope"))
}

/// Which build of evscope this is: the size and modification time of the
/// running executable. Builds from a checkout keep one version number while
/// the fold changes under it; a rebuilt binary must not trust the
/// snapshots of the one before. (A reinstalled identical binary only costs
/// one refold.)
fn build_identity() -> Vec<u8> {
    let meta = std::env::current_exe().and_then(std::fs::metadata);
    match meta {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            [m.len().to_le_bytes().as_slice(), &mtime.to_le_bytes()].concat()
        }
        Err(_) => b"unknown".to_vec(),
    }
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// A hash of a reducer: its program text and its resolved initial state.
pub fn reducer_identity(program: &str, init: &PVal) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"evscope reducer 1\0");
    hash_field(&mut h, program.as_bytes());
    hash_field(&mut h, init.to_json().as_bytes());
    *h.finalize().as_bytes()
}

/// Length-prefixed, so fields cannot run into each other.
fn hash_field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The snapshot file of one log folded by one reducer.
#[derive(Clone, Debug)]
pub struct SnapshotCache {
    dir: PathBuf,
    file: PathBuf,
    key: [u8; 32],
    /// How the source is named in messages now (invalid records' places
    /// start with it; a snapshot saved under another name is renamed).
    display: String,
    min_events: usize,
    max_bytes: u64,
}

/// Runs the function it is given on the image (taking and releasing
/// whatever lock guards it).
pub type WithImage<'a> = dyn FnMut(&mut dyn FnMut(&mut MemoryImage)) + 'a;

/// (entries folded, the state after them), latest first.
type Checkpoints = Vec<(usize, PVal)>;

/// What a restore found.
#[derive(Debug)]
pub enum Restore {
    /// No snapshot for this log and reducer.
    Missing,
    /// The image now holds this many events from the snapshot.
    Restored { events: usize },
    /// There was one but it could not be used (why); it was deleted.
    Ignored(String),
}

/// What a save wrote.
#[derive(Debug)]
pub struct Saved {
    pub events: usize,
    pub bytes: u64,
}

/// A snapshot read and checked (header, hash, format), not yet validated
/// against the log.
pub struct Snapshot {
    pos: ResumePos,
    identity: LogIdentity,
    entries: Index,
    last: PVal,
    /// Checkpoints near the end of the log.
    checkpoints: Checkpoints,
    /// The checkpoint spacing of the image saved.
    interval: usize,
    ascending: bool,
    invalid: usize,
    errors: usize,
    /// The deltas saved after the payload: the file they are in and, for
    /// each interval, where its delta is and its check.
    deltas: Option<SavedDeltas>,
}

/// Where a delta or a far state is in the snapshot file: offset, length,
/// check.
type Place = (u64, u32, Check);

/// What a snapshot saved after its payload: the file, open; for each
/// interval where its delta is, if it has one; and where the far states
/// are, by checkpoint.
struct SavedDeltas {
    file: Arc<Spill>,
    deltas: Vec<Option<Place>>,
    far: Vec<(usize, Place)>,
}

/// The far states in the scratch file saved: those at multiples of this
/// many intervals, every other one. All of them made the snapshot of the
/// 10M benchmark log 2.9 GB (600 far states of 4.3 MB); a restored image
/// seeks from a saved one, read whole and checked, far less often than
/// the session that folded the log.
const SAVE_FAR_EVERY: usize = 2 * super::FAR_EVERY;

/// Far checkpoints saved at most (see [`MemoryImage::far_states_to_save`]).
const MAX_FAR: usize = 16;

impl Snapshot {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl SnapshotCache {
    /// The cache of the log `spec` folded by `program` from `init`, in
    /// [`cache_dir`]. An error when there is no cache directory or the log
    /// cannot be found.
    pub fn new(spec: &SourceSpec, program: &str, init: &PVal) -> Result<SnapshotCache, String> {
        let dir = cache_dir().ok_or("no cache directory (set EVSCOPE_CACHE_DIR, XDG_CACHE_HOME or HOME)")?;
        SnapshotCache::in_dir(dir, spec, program, init)
    }

    /// Like [`SnapshotCache::new`] in a given directory.
    pub fn in_dir(
        dir: PathBuf,
        spec: &SourceSpec,
        program: &str,
        init: &PVal,
    ) -> Result<SnapshotCache, String> {
        // The canonical path: `./a.jsonl`, `a.jsonl` and a symlink to it
        // are one log.
        let path = std::fs::canonicalize(&spec.path).map_err(|e| format!("{}: {e}", spec.display))?;
        let mut h = blake3::Hasher::new();
        h.update(b"evscope snapshot key 1\0");
        hash_field(&mut h, engine_version().as_bytes());
        hash_field(&mut h, &build_identity());
        hash_field(&mut h, path.as_os_str().as_encoded_bytes());
        h.update(&[match spec.kind {
            SourceKind::Jsonl => 1,
            SourceKind::Sqlite => 2,
        }]);
        let m = &spec.mapping;
        for field in [&m.table, &m.id, &m.ty, &m.data, &m.stream, &m.time, &m.meta] {
            match field {
                None => {
                    h.update(&[0]);
                }
                Some(name) => {
                    h.update(&[1]);
                    hash_field(&mut h, name.as_bytes());
                }
            }
        }
        h.update(&reducer_identity(program, init));
        let key = *h.finalize().as_bytes();
        let name: String = key[..16].iter().map(|b| format!("{b:02x}")).collect();
        Ok(SnapshotCache {
            file: dir.join(format!("{name}.{EXTENSION}")),
            dir,
            key,
            display: spec.display.clone(),
            min_events: env_number("EVSCOPE_CACHE_MIN_EVENTS").unwrap_or(DEFAULT_MIN_EVENTS),
            max_bytes: env_number("EVSCOPE_CACHE_MAX_BYTES").unwrap_or(DEFAULT_MAX_CACHE_BYTES),
        })
    }

    /// The snapshot file's path.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Whether to save after a load: the log is big enough, and either
    /// nothing was restored or much was folded since (so appends to a big
    /// log do not rewrite its snapshot on every open).
    pub fn should_save(&self, restored: Option<usize>, len: usize) -> bool {
        len >= self.min_events
            && match restored {
                None => true,
                Some(n) => len.saturating_sub(n) >= self.min_events.max(n / 10),
            }
    }

    /// Restore `image` (nothing loaded yet) from its snapshot, if there is
    /// a valid one.
    pub fn restore(&self, image: &mut MemoryImage) -> Restore {
        match self.read() {
            Ok(None) => Restore::Missing,
            Ok(Some(snap)) => self.install(image, snap),
            Err(why) => Restore::Ignored(why),
        }
    }

    /// Read and check the snapshot file (the slow part of a restore, which
    /// needs no image). `Ok(None)` when there is none. A corrupt or
    /// mismatched file is deleted.
    pub fn read(&self) -> Result<Option<Snapshot>, String> {
        let file = match std::fs::File::open(&self.file) {
            Ok(f) => f,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", self.file.display())),
        };
        let read = read_head(&file).and_then(|bytes| {
            let mut snap = decode(&bytes, &self.key, &self.display)?;
            let payload_hash: [u8; 32] = bytes[HEADER_LEN - 32..HEADER_LEN].try_into().unwrap_or([0; 32]);
            // Deltas that do not check out are only not used.
            snap.deltas = read_deltas(file, bytes.len() as u64, &payload_hash);
            Ok(snap)
        });
        match read {
            Ok(snap) => Ok(Some(snap)),
            Err(Corrupt(why)) => {
                self.discard();
                Err(format!("{}: {why}", self.file.display()))
            }
        }
    }

    /// Check `snap` against the log as it is now and, when it still
    /// matches, put it into `image` (which must not have loaded anything).
    pub fn install(&self, image: &mut MemoryImage, snap: Snapshot) -> Restore {
        match image.restore_snapshot(snap) {
            Ok(events) => {
                // Mark it recently used, for the size limit's eviction.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&self.file)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Restore::Restored { events }
            }
            Err(why) => {
                self.discard();
                Restore::Ignored(why)
            }
        }
    }

    /// Delete the snapshot file (it is stale or corrupt).
    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.file);
    }

    /// Save `image` (all loaded) in one go.
    pub fn save(&self, image: &mut MemoryImage) -> Result<Saved, String> {
        let saved = self.writer(image).and_then(|mut w| {
            while !image.snapshot_entries(&mut w, usize::MAX)? {}
            self.write(w)
        });
        image.set_aside(0);
        saved
    }

    /// Save the image, reaching it only through `with` and in short steps
    /// (about 100k entries each), so a caller that shares the image behind
    /// a lock (the explorer) can release it between steps. The image must
    /// not be reset meanwhile; one that shrank is noticed and not saved.
    pub fn save_in_steps(&self, with: &mut WithImage<'_>) -> Result<Saved, String> {
        const STEP: usize = 100_000;
        let mut writer = Err(String::new());
        with(&mut |image| writer = self.writer(image));
        let saved = writer.and_then(|mut w| {
            loop {
                let mut step = Ok(false);
                with(&mut |image| step = image.snapshot_entries(&mut w, STEP));
                if step? {
                    break;
                }
            }
            self.write(w)
        });
        with(&mut |image| image.set_aside(0));
        saved
    }

    /// Create the cache directory (private: snapshots hold data from the
    /// user's logs).
    fn make_dir(&self) -> Result<(), String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| format!("{}: {e}", self.dir.display()))
    }

    /// A writer for `image` whose entries go to an unnamed temporary file
    /// in the cache directory as they are written.
    fn writer(&self, image: &mut MemoryImage) -> Result<SnapshotWriter, String> {
        // The writer's own memory (the last state and some checkpoints
        // encoded, string tables, buffers) comes out of the budget: the
        // image thins to leave room for it until the save is done.
        image.set_aside(SAVE_ROOM);
        let mut w = image.snapshot_writer(&self.display)?;
        self.make_dir()?;
        let spill = tempfile::tempfile_in(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        w.spill_into(spill);
        Ok(w)
    }

    /// Finish the payload and write the file atomically, then keep the
    /// cache directory under its size limit.
    fn write(&self, w: SnapshotWriter) -> Result<Saved, String> {
        let events = w.total;
        let payload = w.finish()?;
        let len = payload.len();
        let err = |e: std::io::Error| format!("{}: {e}", self.dir.display());
        // The directory was made with the writer (see `writer`).
        // tempfile creates it with mode 0600, in the cache directory (never
        // next to the log), and removes it if anything below fails.
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(&format!(".{EXTENSION}-part"))
            .tempfile_in(&self.dir)
            .map_err(err)?;
        // The header holds the payload's hash: written last, over a
        // placeholder, once the payload has streamed through the hasher.
        let header = |hash: &[u8; 32]| {
            let mut header = Vec::with_capacity(HEADER_LEN);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            header.extend_from_slice(&self.key);
            header.extend_from_slice(&(len as u64).to_le_bytes());
            header.extend_from_slice(hash);
            header
        };
        tmp.write_all(&header(&[0; 32])).map_err(err)?;
        let mut hash = blake3::Hasher::new();
        let mut payload = payload;
        let deltas = {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            payload.write_to(&mut out, &mut hash).map_err(err)?;
            let after = (&payload.deltas[..], &payload.far[..]);
            let deltas = write_deltas(&mut out, after, hash.finalize().as_bytes()).map_err(err)?;
            out.flush().map_err(err)?;
            deltas
        };
        {
            use std::io::Seek;
            let file = tmp.as_file_mut();
            file.seek(std::io::SeekFrom::Start(0)).map_err(err)?;
            file.write_all(&header(hash.finalize().as_bytes())).map_err(err)?;
        }
        // No fsync: after a crash a torn file fails its hash and is ignored.
        tmp.persist(&self.file).map_err(|e| err(e.error))?;
        self.evict();
        Ok(Saved {
            events,
            bytes: (HEADER_LEN + len) as u64 + deltas,
        })
    }

    /// Delete the least recently used snapshots past the size limit (never
    /// this one), and temporary files left by crashed saves. Best effort.
    fn evict(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut snaps = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(now);
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) {
                if now.duration_since(modified).is_ok_and(|age| age > STALE_TEMP) {
                    let _ = std::fs::remove_file(&path);
                }
            } else if meta.is_file() && path.extension().is_some_and(|e| e == EXTENSION) {
                snaps.push((modified, meta.len(), path));
            }
        }
        let mut total: u64 = snaps.iter().map(|s| s.1).sum();
        snaps.sort();
        for (_, len, path) in snaps {
            if total <= self.max_bytes {
                break;
            }
            if path != self.file && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// Memory kept free for writing a snapshot (measured on the 10M benchmark
/// log: about 50 MB live).
const SAVE_ROOM: usize = 64 << 20;

/// A snapshot being written: the index's chunks so far, and what goes
/// before them.
pub struct SnapshotWriter {
    /// Engine version, display name, position, identity and counts.
    prefix: Vec<u8>,
    /// The entries' bytes, chunk after chunk (those not spilled yet).
    entries: Vec<u8>,
    /// Where entries go once `entries` holds `spill_at` bytes, so a big
    /// log's snapshot does not sit in memory beside the image; and how many
    /// bytes went there.
    spill: Option<std::fs::File>,
    spill_at: usize,
    spilled: usize,
    /// (entries, bytes) of each chunk written.
    chunks: Vec<(usize, usize)>,
    /// Reducer error messages, by content (a reducer failing the same way
    /// on many events makes equal messages in separate allocations).
    messages: ArcTable,
    /// Once every chunk is written: the names, and what the index keeps
    /// beside its columns (see [`Index::put_side`]).
    side: Option<(Vec<Text>, Vec<u8>)>,
    display: String,
    /// Entries written so far / to write.
    next: usize,
    total: usize,
    last: PVal,
    /// Checkpoints to store, latest first: (entries folded, state).
    checkpoints: Vec<(usize, PVal)>,
    /// The image's deltas, one an interval, written after the payload.
    deltas: Vec<Option<Delta>>,
    /// Far checkpoints to save after the deltas: kept ones still to
    /// encode (each while the entries are written, a step at a time), and
    /// those encoded (the scratch file's, and the kept ones done).
    far_todo: Vec<(usize, PVal)>,
    far: Vec<(usize, Far)>,
}

impl SnapshotWriter {
    /// Write the entries to `file` (an unnamed temporary file) as they
    /// come, keeping at most about a megabyte of them in memory.
    pub fn spill_into(&mut self, file: std::fs::File) {
        self.spill = Some(file);
        self.spill_at = 1 << 20;
        self.entries = Vec::with_capacity(self.spill_at + 4096);
    }

    /// Bytes of entries written so far.
    fn entries_len(&self) -> usize {
        self.spilled + self.entries.len()
    }

    /// Move the entries held in memory to the spill file, if there is one
    /// and they are enough.
    fn spill(&mut self) -> Result<(), String> {
        let Some(file) = &mut self.spill else {
            return Ok(());
        };
        if self.entries.len() >= self.spill_at {
            file.write_all(&self.entries)
                .map_err(|e| format!("writing the snapshot: {e}"))?;
            self.spilled += self.entries.len();
            self.entries.clear();
        }
        Ok(())
    }

    /// The finished payload: the prefix; the tables, the index's side
    /// tables, the last state, the checkpoints and the chunk index; the
    /// chunks (those spilled, then the rest).
    fn finish(mut self) -> Result<Payload, String> {
        let Some((names, side)) = self.side.take().filter(|_| self.next == self.total) else {
            return Err("not every entry was written".into());
        };
        let mut mid = Vec::new();
        put_table(&mut mid, &names);
        put_table(&mut mid, self.messages.strings());
        mid.extend_from_slice(&side);
        let mut state = Vec::new();
        put_value(&mut state, &mut TextTable::default(), &self.last)?;
        put_bytes(&mut mid, &state);
        // Checkpoints, each as the changes that turn the next later one
        // (the first: the last state) into it: small near the end, where
        // neighbouring states share most of their nodes. Within a budget,
        // a sixteenth of the entries' size.
        let budget = (self.entries_len() / 16).max(1 << 20);
        let mut stored: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut used = 0;
        let mut later = &self.last;
        for (count, state) in &self.checkpoints {
            let changes = crate::diff::diff(later, state);
            let mut bytes = Vec::new();
            codec::put_changes(&mut bytes, &mut TextTable::default(), &changes, false)?;
            used += bytes.len();
            if used > budget {
                break;
            }
            stored.push((*count, bytes));
            later = state;
        }
        put_varint(&mut mid, stored.len() as u64);
        for (count, bytes) in &stored {
            put_varint(&mut mid, *count as u64);
            put_bytes(&mut mid, bytes);
        }
        put_varint(&mut mid, self.chunks.len() as u64);
        for (n, bytes) in &self.chunks {
            put_varint(&mut mid, *n as u64);
            put_varint(&mut mid, *bytes as u64);
        }
        Ok(Payload {
            head: vec![self.prefix, mid],
            spilled: self.spill.map(|f| (f, self.spilled)),
            tail: self.entries,
            deltas: self.deltas,
            far: self.far,
        })
    }
}

/// A finished snapshot payload: `head`, then the entries spilled to a
/// file (the file and how many bytes), then `tail`.
struct Payload {
    head: Vec<Vec<u8>>,
    spilled: Option<(std::fs::File, usize)>,
    tail: Vec<u8>,
    /// Written after the payload, outside its hash (see [`write_deltas`]).
    deltas: Vec<Option<Delta>>,
    far: Vec<(usize, Far)>,
}

impl Payload {
    fn len(&self) -> usize {
        let head: usize = self.head.iter().map(Vec::len).sum();
        head + self.spilled.as_ref().map_or(0, |s| s.1) + self.tail.len()
    }

    /// Write the payload to `out` in order, and hash it as it goes.
    fn write_to(&mut self, out: &mut impl Write, hash: &mut blake3::Hasher) -> std::io::Result<()> {
        let mut put = |bytes: &[u8]| {
            hash.update(bytes);
            out.write_all(bytes)
        };
        for part in &self.head {
            put(part)?;
        }
        if let Some((file, len)) = &mut self.spilled {
            use std::io::{Read, Seek};
            file.seek(std::io::SeekFrom::Start(0))?;
            let mut left = *len;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let n = file.read(&mut buf[..left.min(1 << 20)])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                put(&buf[..n])?;
                left -= n;
            }
        }
        put(&self.tail)
    }

    /// The whole payload in memory (for tests).
    #[cfg(test)]
    fn concat(mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out, &mut blake3::Hasher::new()).unwrap();
        out
    }
}

fn put_pos(out: &mut Vec<u8>, pos: &ResumePos) {
    match pos {
        ResumePos::Line {
            offset,
            line,
            partial,
        } => {
            out.push(1);
            put_varint(out, *offset);
            put_varint(out, *line);
            out.push(u8::from(*partial));
        }
        ResumePos::Row { last } => {
            out.push(2);
            match last {
                None => out.push(0),
                Some((key, rowid)) => {
                    out.push(1);
                    match key {
                        RowKey::Null => out.push(0),
                        RowKey::Int(i) => {
                            out.push(1);
                            put_zigzag(out, *i);
                        }
                        RowKey::Real(f) => {
                            out.push(2);
                            out.extend_from_slice(&f.to_bits().to_le_bytes());
                        }
                        RowKey::Text(t) => {
                            out.push(3);
                            put_bytes(out, t);
                        }
                        RowKey::Blob(b) => {
                            out.push(4);
                            put_bytes(out, b);
                        }
                    }
                    put_zigzag(out, *rowid);
                }
            }
        }
    }
}

fn get_pos(r: &mut Reader<'_>) -> Result<ResumePos, Corrupt> {
    let bad = || Corrupt::new("bad position");
    Ok(match r.u8()? {
        1 => ResumePos::Line {
            offset: r.varint()?,
            line: r.varint()?,
            partial: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(bad()),
            },
        },
        2 => ResumePos::Row {
            last: match r.u8()? {
                0 => None,
                1 => {
                    let key = match r.u8()? {
                        0 => RowKey::Null,
                        1 => RowKey::Int(r.zigzag()?),
                        2 => RowKey::Real(f64::from_bits(r.u64_le()?)),
                        3 => RowKey::Text(r.bytes()?.to_vec()),
                        4 => RowKey::Blob(r.bytes()?.to_vec()),
                        _ => return Err(bad()),
                    };
                    Some((key, r.zigzag()?))
                }
                _ => return Err(bad()),
            },
        },
        _ => return Err(bad()),
    })
}

/// The header and payload of a snapshot file (not the deltas after them).
fn read_head(mut file: &std::fs::File) -> Result<Vec<u8>, Corrupt> {
    use std::io::Read;
    let io = |e: std::io::Error| Corrupt(format!("reading it: {e}"));
    let size = file.metadata().map_err(io)?.len();
    let mut bytes = vec![0; HEADER_LEN];
    if size < HEADER_LEN as u64 {
        return Err(Corrupt::new("not a snapshot file"));
    }
    file.read_exact(&mut bytes).map_err(io)?;
    let len = u64::from_le_bytes(
        bytes[HEADER_LEN - 40..HEADER_LEN - 32]
            .try_into()
            .unwrap_or([0xff; 8]),
    );
    if len > size - HEADER_LEN as u64 {
        return Err(Corrupt::new("truncated"));
    }
    let len = usize::try_from(len).map_err(|_| Corrupt::new("truncated"))?;
    bytes.resize(HEADER_LEN + len, 0);
    file.read_exact(&mut bytes[HEADER_LEN..]).map_err(io)?;
    Ok(bytes)
}

/// The hash that ties a delta table to the payload it was saved with.
fn table_hash(payload_hash: &[u8; 32], table: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"evscope deltas 1\0");
    h.update(payload_hash);
    h.update(table);
    *h.finalize().as_bytes()
}

/// Write the image's deltas after the payload, then the far states: their
/// bytes one after the other, then a table (the number of intervals, then
/// for each the length of its delta, 0 for none, and its check; then the
/// number of far states and for each its checkpoint, length and check),
/// then the trailer: a magic, the table's length, and a hash of the
/// payload's hash and the table (so a table never passes with another
/// save's payload). Each is checked as it is read back: the file is a
/// cache, trusted in nothing. Returns the bytes written.
fn write_deltas(
    out: &mut impl Write,
    (deltas, far): (&[Option<Delta>], &[(usize, Far)]),
    payload_hash: &[u8; 32],
) -> std::io::Result<u64> {
    let mut table = Vec::new();
    let mut written = 0;
    let mut put =
        |table: &mut Vec<u8>, packed: Option<Result<Cow<'_, [u8]>, String>>| -> std::io::Result<()> {
            // One that cannot be read back is saved as missing.
            match packed.and_then(Result::ok) {
                Some(bytes) => {
                    out.write_all(&bytes)?;
                    written += bytes.len() as u64;
                    put_varint(table, bytes.len() as u64);
                    table.extend_from_slice(&check_of(&bytes));
                }
                None => put_varint(table, 0),
            }
            Ok(())
        };
    put_varint(&mut table, deltas.len() as u64);
    for d in deltas {
        put(&mut table, d.as_ref().map(Delta::packed))?;
    }
    put_varint(&mut table, far.len() as u64);
    for (c, d) in far {
        put_varint(&mut table, *c as u64);
        put(&mut table, Some(d.packed()))?;
    }
    out.write_all(&table)?;
    out.write_all(DELTA_MAGIC)?;
    out.write_all(&(table.len() as u64).to_le_bytes())?;
    out.write_all(&table_hash(payload_hash, &table))?;
    Ok(written + (table.len() + TRAILER_LEN) as u64)
}

/// The deltas saved after a payload of `start` bytes (header included) in
/// `file`, when their table is whole and belongs to that payload; `None`
/// otherwise (the snapshot is still good, only its deltas are not).
fn read_deltas(file: std::fs::File, start: u64, payload_hash: &[u8; 32]) -> Option<SavedDeltas> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata().ok()?.len();
    let trailer_at = size.checked_sub(TRAILER_LEN as u64).filter(|&t| t >= start)?;
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer, trailer_at).ok()?;
    if &trailer[..8] != DELTA_MAGIC {
        return None;
    }
    // About 20 bytes an interval: 64 MiB is billions of events; a damaged
    // length must not make us read a gigabyte first.
    let table_len = u64::from_le_bytes(trailer[8..16].try_into().ok()?).min(64 << 20);
    let table_at = trailer_at.checked_sub(table_len).filter(|&t| t >= start)?;
    let mut table = vec![0; usize::try_from(table_len).ok()?];
    file.read_exact_at(&mut table, table_at).ok()?;
    if table_hash(payload_hash, &table) != trailer[16..] {
        return None;
    }
    let mut r = Reader::new(&table);
    let mut at = start;
    let mut place = |r: &mut Reader<'_>| -> Option<Option<Place>> {
        let len = u32::try_from(r.varint().ok()?).ok()?;
        if len == 0 {
            return Some(None);
        }
        let check: Check = r.take(16).ok()?.try_into().ok()?;
        let here = at;
        at += u64::from(len);
        Some(Some((here, len, check)))
    };
    let n = usize::try_from(r.varint().ok()?).ok()?;
    let mut deltas = Vec::with_capacity(n.min(table.len()));
    for _ in 0..n {
        deltas.push(place(&mut r)?);
    }
    let m = usize::try_from(r.varint().ok()?).ok()?;
    let mut far = Vec::with_capacity(m.min(table.len()));
    for _ in 0..m {
        let c = usize::try_from(r.varint().ok()?).ok()?;
        if let Some(p) = place(&mut r)? {
            far.push((c, p));
        }
    }
    (at == table_at && r.remaining() == 0).then(|| SavedDeltas {
        file: Spill::of_file(file),
        deltas,
        far,
    })
}

/// Check the header and hash of a snapshot file and decode its payload.
fn decode(bytes: &[u8], key: &[u8; 32], display: &str) -> Result<Snapshot, Corrupt> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(Corrupt::new("not a snapshot file"));
    }
    let mut h = Reader::new(&bytes[8..HEADER_LEN]);
    if h.take(4)? != FORMAT_VERSION.to_le_bytes() {
        return Err(Corrupt::new("another snapshot format version"));
    }
    if h.take(4)? != [0; 4] {
        return Err(Corrupt::new("unknown flags"));
    }
    if h.take(32)? != key {
        return Err(Corrupt::new("made for another log or reducer"));
    }
    let len = h.u64_le()?;
    let hash = h.take(32)?;
    let payload = &bytes[HEADER_LEN..];
    if len != payload.len() as u64 {
        return Err(Corrupt::new("truncated or extended"));
    }
    if blake3::hash(payload).as_bytes() != hash {
        return Err(Corrupt::new("its contents do not match their hash"));
    }
    decode_payload(payload, display)
}

fn decode_payload(payload: &[u8], display: &str) -> Result<Snapshot, Corrupt> {
    let mut r = Reader::new(payload);
    if r.str()? != engine_version() {
        return Err(Corrupt::new("written by another version of evscope"));
    }
    // The name the source had when saved (invalid records' places were
    // written without it).
    let _saved_display = r.str()?;
    let pos = get_pos(&mut r)?;
    let mut identity = [0u8; 32];
    identity.copy_from_slice(r.take(32)?);
    // (Not bounded by the bytes left: a steady column packs to none.)
    let n = usize::try_from(r.varint()?).map_err(|_| Corrupt::new("bad count"))?;
    let invalid_count = r.varint()?;
    let errors = r.varint()?;
    let interval = match usize::try_from(r.varint()?) {
        Ok(k) if k >= 1 => k,
        _ => return Err(Corrupt::new("bad checkpoint interval")),
    };
    let names = get_table(&mut r)?;
    let messages = get_table(&mut r)?;
    let side = Index::read_side(&mut r, &mut |r| get_status(r, &messages, display))?;
    let state = r.bytes()?;
    let stored = r.len(2)?;
    let mut checkpoint_bytes = Vec::with_capacity(stored);
    for _ in 0..stored {
        let count = usize::try_from(r.varint()?).unwrap_or(usize::MAX);
        if count > n || checkpoint_bytes.last().is_some_and(|&(c, _)| c <= count) {
            return Err(Corrupt::new("checkpoints out of order"));
        }
        checkpoint_bytes.push((count, r.bytes()?));
    }
    let chunk_count = r.len(2)?;
    if chunk_count != Index::chunks_below(n) {
        return Err(Corrupt::new("the chunk index does not match the entries"));
    }
    let mut chunks = Vec::with_capacity(chunk_count);
    for k in 0..chunk_count {
        let count = r.varint()?;
        if count != Index::entries_in_chunk(n, k) as u64 {
            return Err(Corrupt::new("the chunk index does not match the entries"));
        }
        chunks.push((count as usize, r.len(1)?));
    }
    if chunks.iter().try_fold(0usize, |sum, c| sum.checked_add(c.1)) != Some(r.remaining()) {
        return Err(Corrupt::new("the chunk index does not match the entries"));
    }
    let chunk_bytes = r.take(r.remaining())?;
    // The states on a second thread while this one reads the index: the
    // machine this is made for has two cores, and the two are independent.
    let read_entries = || {
        let mut r = Reader::new(chunk_bytes);
        let mut read = Vec::with_capacity(chunks.len());
        for (count, bytes) in chunks {
            let mut cr = Reader::new(r.take(bytes)?);
            read.push(Index::read_chunk(&mut cr, count)?);
            if cr.remaining() != 0 {
                return Err(Corrupt::new("trailing bytes in a chunk"));
            }
        }
        let entries = Index::from_parts(names, read, side)?;
        let invalid = entries
            .problems()
            .iter()
            .filter(|(_, s)| matches!(s, Status::Invalid(_)))
            .count();
        let failed = entries.problems().len() - invalid;
        if (invalid as u64, failed as u64) != (invalid_count, errors) {
            return Err(Corrupt::new("counts do not match the entries"));
        }
        Ok(entries)
    };
    let read_states = || decode_states(state, &checkpoint_bytes);
    let (read, states) = std::thread::scope(|scope| {
        match std::thread::Builder::new().spawn_scoped(scope, read_states) {
            Ok(handle) => {
                let read = read_entries();
                let states = handle
                    .join()
                    .unwrap_or_else(|_| Err(Corrupt::new("reading the states failed")));
                (read, states)
            }
            // No thread to be had: one after the other.
            Err(_) => (read_entries(), read_states()),
        }
    });
    let entries = read?;
    let (last, checkpoints) = states?;
    let ascending = entries.ids().is_sorted_by(|a, b| a < b);
    Ok(Snapshot {
        pos,
        identity: LogIdentity(identity),
        entries,
        last,
        checkpoints,
        interval,
        ascending,
        invalid: invalid_count as usize,
        errors: errors as usize,
        deltas: None,
    })
}

/// A status other than `Ok` (see [`Index::put_side`]). An invalid
/// record's place starts with the source's display name, which may differ
/// when the log is reopened by another path: it is written without it.
fn put_status(out: &mut Vec<u8>, status: &Status, display: &str, messages: &mut ArcTable) {
    match status {
        // (Never in the side table, which holds only the others.)
        Status::Ok => out.push(ST_OK),
        Status::Invalid(inv) => {
            out.push(ST_INVALID);
            put_zigzag(out, inv.id);
            match inv.place.strip_prefix(display) {
                Some(rest) => {
                    out.push(1);
                    put_bytes(out, rest.as_bytes());
                }
                None => {
                    out.push(0);
                    put_bytes(out, inv.place.as_bytes());
                }
            }
            put_bytes(out, inv.reason.as_bytes());
        }
        Status::ReducerError(m) => {
            out.push(ST_ERROR);
            messages.put(out, m);
        }
    }
}

/// Read what [`put_status`] wrote.
fn get_status(r: &mut Reader<'_>, messages: &[Text], display: &str) -> Result<Status, Corrupt> {
    Ok(match r.u8()? {
        ST_OK => Status::Ok,
        ST_INVALID => {
            let id = r.zigzag()?;
            let renamed = r.u8()?;
            let rest = r.str()?;
            let place = match renamed {
                0 => rest.to_string(),
                1 => format!("{display}{rest}"),
                _ => return Err(Corrupt::new("bad place")),
            };
            let reason = r.str()?.to_string();
            Status::Invalid(Box::new(Invalid { id, place, reason }))
        }
        ST_ERROR => Status::ReducerError(get_ref(r, messages)?),
        _ => return Err(Corrupt::new("bad status")),
    })
}

/// The last state, then each stored checkpoint from the changes that turn
/// the next later one into it (so they share the nodes they did not
/// change, as the image's own checkpoints do).
fn decode_states(state: &[u8], stored: &[(usize, &[u8])]) -> Result<(PVal, Checkpoints), Corrupt> {
    let mut sr = Reader::new(state);
    let last = get_value(&mut sr, &mut ReadTable::default())?;
    if sr.remaining() != 0 {
        return Err(Corrupt::new("trailing bytes after the state"));
    }
    let mut out: Vec<(usize, PVal)> = Vec::with_capacity(stored.len());
    for (count, bytes) in stored {
        let mut cr = Reader::new(bytes);
        let changes = codec::get_changes(&mut cr, &mut ReadTable::default(), false)?;
        if cr.remaining() != 0 {
            return Err(Corrupt::new("trailing bytes after a checkpoint"));
        }
        let later = out.last().map_or(&last, |(_, s)| s);
        let state = crate::diff::apply(later, &changes).map_err(Corrupt)?;
        out.push((*count, state));
    }
    Ok((last, out))
}

impl MemoryImage {
    /// Start a snapshot of everything loaded so far: where the source
    /// stopped, its identity there, and the last state. The entries are
    /// written by [`MemoryImage::snapshot_entries`].
    pub fn snapshot_writer(&mut self, display: &str) -> Result<SnapshotWriter, String> {
        let pos = self.source.position().map_err(|e| e.0)?;
        // The position must be right after the last entry (all that was
        // read was folded), or resuming there would skip or repeat records.
        let last = self.fold.entries.len().checked_sub(1);
        let consistent = match (&pos, last.and_then(|i| self.fold.entries.loc(i))) {
            (_, None) => true,
            (ResumePos::Line { offset, .. }, Some(Loc::Line { offset: o, len, .. })) => {
                *offset >= o + u64::from(len)
            }
            (
                ResumePos::Row {
                    last: Some((_, rowid)),
                },
                Some(Loc::Row { rowid: r }),
            ) => *rowid == r,
            _ => false,
        };
        if !consistent {
            return Err("the source has read past what was folded".into());
        }
        let identity = self.source.identity_at(&pos).map_err(|e| e.0)?;
        let f = &self.fold;
        let mut prefix = Vec::with_capacity(256);
        put_bytes(&mut prefix, engine_version().as_bytes());
        put_bytes(&mut prefix, display.as_bytes());
        put_pos(&mut prefix, &pos);
        prefix.extend_from_slice(&identity.0);
        put_varint(&mut prefix, f.entries.len() as u64);
        put_varint(&mut prefix, f.invalid as u64);
        put_varint(&mut prefix, f.errors as u64);
        put_varint(&mut prefix, f.interval as u64);
        let checkpoints = self.checkpoints_to_store();
        // The far states in the scratch file go as they are (already
        // encoded: copied, not made again), every other one (see
        // [`SAVE_FAR_EVERY`]); kept checkpoints are encoded only where
        // there is none.
        let far: Vec<(usize, Far)> = f
            .far
            .iter()
            .filter(|(c, _)| c.is_multiple_of(SAVE_FAR_EVERY))
            .map(|(&c, d)| (c, d.clone()))
            .collect();
        let far_todo = self
            .far_states_to_save(&checkpoints)
            .into_iter()
            .filter(|(c, _)| !f.far.contains_key(c))
            .collect();
        Ok(SnapshotWriter {
            prefix,
            entries: Vec::with_capacity(f.entries.len() * 13 + 64),
            spill: None,
            spill_at: usize::MAX,
            spilled: 0,
            chunks: Vec::new(),
            messages: ArcTable::default(),
            side: None,
            display: display.to_string(),
            next: 0,
            total: f.entries.len(),
            last: f.last.clone(),
            far_todo,
            checkpoints,
            deltas: f.deltas.clone(),
            far,
        })
    }

    /// The checkpoints worth storing, latest first: a restored image has
    /// no others, and the explorer opens at the end of the log, showing the
    /// diff of the last event and stepping back from there. So: the last
    /// eight kept ones, then ever sparser ones (each at least twice as far
    /// from the previous as the one before), up to [`MAX_STORED`]. Only the
    /// image's own, so nothing is folded again to save.
    fn checkpoints_to_store(&self) -> Vec<(usize, PVal)> {
        let f = &self.fold;
        let mut out = Vec::new();
        let mut gap = 1;
        let mut prev: Option<usize> = None;
        // Slot 0 is the initial state, which every image has.
        for c in (1..f.checkpoints.len()).rev() {
            let Some(state) = &f.checkpoints[c] else { continue };
            let count = c * f.interval;
            if count >= f.entries.len() || prev.is_some_and(|p| p - c < gap) {
                continue;
            }
            out.push((count, state.clone()));
            prev = Some(c);
            if out.len() >= MAX_STORED {
                break;
            }
            if out.len() >= 8 {
                gap *= 2;
            }
        }
        out
    }

    /// Write the chunks of about `max` more entries (a chunk at least);
    /// true when all are written.
    pub fn snapshot_entries(&self, w: &mut SnapshotWriter, max: usize) -> Result<bool, String> {
        let entries = &self.fold.entries;
        if entries.len() < w.total {
            return Err("the log was reloaded while being saved".into());
        }
        // A far state a step (tens of milliseconds for a big state), so a
        // caller that shares the image is not held up long.
        if let Some((c, state)) = w.far_todo.pop()
            && let Some(d) = Far::of(&state, None)
        {
            w.far.push((c, d));
        }
        let chunks = Index::chunks_below(w.total);
        let mut left = max;
        while w.chunks.len() < chunks && left > 0 {
            let start = w.entries_len();
            let n = entries.put_chunk(w.chunks.len(), w.total, &mut w.entries);
            w.chunks.push((n, w.entries_len() - start));
            w.next += n;
            left = left.saturating_sub(n.max(1));
            w.spill()?;
        }
        if w.chunks.len() == chunks && w.side.is_none() {
            let mut side = Vec::new();
            let (messages, display) = (&mut w.messages, w.display.as_str());
            entries.put_side(w.total, &mut side, &mut |out, status| {
                put_status(out, status, display, messages)
            });
            w.side = Some((entries.names().to_vec(), side));
        }
        Ok(w.side.is_some() && w.far_todo.is_empty())
    }

    /// The kept checkpoints far from the end worth saving whole (after the
    /// deltas, read only when a seek needs one): a restored image has only
    /// the initial state and the checkpoints near the end in memory, so a
    /// seek into the middle of a long log would cross millions of changes.
    /// At most [`MAX_FAR`], evenly spread, none among the last eight
    /// (always stored in the payload).
    fn far_states_to_save(&self, stored: &[(usize, PVal)]) -> Vec<(usize, PVal)> {
        let f = &self.fold;
        // The last eight of `stored` (see `checkpoints_to_store`) are in
        // the payload (small changes from one to the next); the sparser
        // ones before them only within its budget, so they may be picked
        // here too.
        let near: Vec<usize> = stored.iter().take(8).map(|(n, _)| n / f.interval).collect();
        let far: Vec<usize> = (1..f.checkpoints.len())
            .filter(|c| f.checkpoints[*c].is_some() && !near.contains(c) && c * f.interval < f.entries.len())
            .collect();
        // The kept one nearest each of MAX_FAR points evenly spread over
        // the log (most kept ones are near the end, where the fold was).
        let intervals = f.checkpoints.len();
        let mut picked: Vec<usize> = (1..=MAX_FAR)
            .filter_map(|j| {
                let target = j * intervals / (MAX_FAR + 1);
                let i = far.partition_point(|&c| c < target);
                let below = i.checked_sub(1).map(|i| far[i]);
                let above = far.get(i).copied();
                [below, above]
                    .into_iter()
                    .flatten()
                    .min_by_key(|c| c.abs_diff(target))
            })
            .collect();
        picked.dedup();
        picked
            .into_iter()
            .filter_map(|c| f.checkpoints[c].clone().map(|s| (c, s)))
            .collect()
    }

    /// Check a snapshot against the log as it is now, then put it in place
    /// and resume the source after it. Returns how many events it held.
    fn restore_snapshot(&mut self, snap: Snapshot) -> Result<usize, String> {
        if !self.fold.entries.is_empty() {
            return Err("the image has already loaded events".into());
        }
        let identity = self
            .source
            .identity_at(&snap.pos)
            .map_err(|e| format!("the log changed: {}", e.0))?;
        if identity != snap.identity {
            return Err("the log changed since the snapshot (its fingerprint differs)".into());
        }
        if let Err(e) = self.source.resume(&snap.pos) {
            self.source.rewind();
            return Err(e.0);
        }
        let f = &mut self.fold;
        let n = snap.entries.len();
        f.entries = snap.entries;
        // An image whose cost model had not picked a spacing yet takes the
        // one the saved image had (its checkpoints fall on it).
        if f.calibration.take().is_some() {
            f.interval = snap.interval;
        }
        // Checkpoints: the initial state, the last state when it falls on
        // one, and the stored ones; the image rebuilds the others where the
        // user seeks.
        let c = n / f.interval;
        f.checkpoints = vec![None; c + 1];
        f.deltas = std::iter::repeat_with(|| None).take(c).collect();
        f.delta_bytes = 0;
        f.spilled_bytes = 0;
        f.forget_jobs();
        // The saved deltas, read from the snapshot file as seeks need them
        // (and checked then), when they are for these intervals.
        f.far.clear();
        if let Some(saved) = snap.deltas
            && f.interval == snap.interval
            && saved.deltas.len() == c
        {
            let at = |(at, len, check): Place| Delta::Spilled {
                file: saved.file.clone(),
                at,
                len,
                check: Some(check),
            };
            for (c, place) in saved.deltas.into_iter().enumerate() {
                f.set_delta(c, place.map(at));
            }
            // The far states, read in when a seek is nearer one of them
            // than any kept checkpoint (see `MemoryImage::far_start`).
            f.far = saved
                .far
                .into_iter()
                .filter(|(k, _)| *k < c)
                .map(|(k, (at, len, check))| (k, Far::saved(saved.file.clone(), at, len, check)))
                .collect();
        }
        f.checkpoints[0] = Some(f.init.clone());
        if n.is_multiple_of(f.interval) {
            f.checkpoints[c] = Some(snap.last.clone());
        }
        // The stored ones that fall on this image's checkpoints (all of
        // them unless `--checkpoint-every` changed).
        for (count, state) in snap.checkpoints {
            if count.is_multiple_of(f.interval) && count / f.interval <= c {
                f.checkpoints[count / f.interval] = Some(state);
            }
        }
        f.focus = c;
        f.thin_level = 0;
        f.last = snap.last;
        // The events since the last checkpoint are not at hand: fold by
        // copying until the next one.
        f.since_checkpoint = None;
        f.ascending = snap.ascending;
        f.by_id.clear();
        if !f.ascending {
            for (i, id) in f.entries.ids().enumerate() {
                f.by_id.entry(id).or_insert(i);
            }
        }
        f.invalid = snap.invalid;
        f.errors = snap.errors;
        self.cache.clear();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Entry;
    use crate::image::ImageOptions;
    use crate::log::{self, SourceKind};
    use crate::reduce::{DEFAULT_REDUCER, JqReducer};

    /// An image of a bundled example log, not loaded yet.
    fn example_image(name: &str, kind: SourceKind, checkpoint_interval: Option<usize>) -> MemoryImage {
        let options = ImageOptions {
            checkpoint_interval,
            ..ImageOptions::default()
        };
        example_image_with(name, kind, options)
    }

    fn example_image_with(name: &str, kind: SourceKind, options: ImageOptions) -> MemoryImage {
        let spec = example_spec(name, kind);
        let reducer = Arc::new(JqReducer::compile(DEFAULT_REDUCER, "default").unwrap());
        MemoryImage::new(log::open(&spec).unwrap(), reducer, PVal::empty_obj(), options)
    }

    /// A loaded image of a bundled example log and its snapshot payload.
    fn image_and_payload(name: &str, kind: SourceKind) -> (MemoryImage, Vec<u8>) {
        let mut image = example_image(name, kind, Some(3));
        image.load(&mut |_| {}).unwrap();
        let mut w = image.snapshot_writer(name).unwrap();
        // Small steps: chunk and step boundaries must not matter.
        while !image.snapshot_entries(&mut w, 7).unwrap() {}
        let payload = w.finish().unwrap().concat();
        (image, payload)
    }

    #[test]
    fn a_perfectly_regular_log_whose_index_packs_to_nothing_reads_back() {
        // Every column steady (ids one apart, lines of one length, one
        // type, no stream or time): the chunks take a few bytes for
        // 65,536 entries, far fewer than entries.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("regular.jsonl");
        let text: String = (100_001..170_001)
            .map(|id| format!("{{\"id\":{id},\"type\":\"t\",\"data\":{{}}}}\n"))
            .collect();
        std::fs::write(&path, text).unwrap();
        let spec = SourceSpec {
            kind: SourceKind::Jsonl,
            path,
            display: "regular.jsonl".into(),
            mapping: Default::default(),
            accept_partial_last_line: true,
        };
        let reducer = Arc::new(JqReducer::compile(DEFAULT_REDUCER, "default").unwrap());
        let options = ImageOptions {
            checkpoint_interval: Some(1024),
            memory_budget: None,
            scratch_dir: None,
        };
        let mut image = MemoryImage::new(log::open(&spec).unwrap(), reducer, PVal::empty_obj(), options);
        image.load(&mut |_| {}).unwrap();
        let mut w = image.snapshot_writer("regular.jsonl").unwrap();
        while !image.snapshot_entries(&mut w, usize::MAX).unwrap() {}
        let payload = w.finish().unwrap().concat();
        assert!(payload.len() < image.len(), "{} bytes", payload.len());
        let snap = decode_payload(&payload, "regular.jsonl").unwrap();
        assert_eq!(snap.len(), 70_000);
        assert!(snap.entries.iter().eq(image.entries().iter()));
    }

    #[test]
    fn entries_spilled_to_a_file_give_the_same_payload() {
        for (name, kind) in [("bad.jsonl", SourceKind::Jsonl), ("cart.db", SourceKind::Sqlite)] {
            let (mut image, payload) = image_and_payload(name, kind);
            let mut w = image.snapshot_writer(name).unwrap();
            w.spill_into(tempfile::tempfile().unwrap());
            // A few entries at a time, so most go through the file.
            w.spill_at = 8;
            while !image.snapshot_entries(&mut w, 5).unwrap() {}
            assert!(w.spilled > 0, "{name}: nothing was spilled");
            assert_eq!(w.finish().unwrap().concat(), payload, "{name}");
        }
    }

    #[test]
    fn a_restored_image_keeps_the_saved_spacing_unless_one_was_set() {
        let (mut image, payload) = image_and_payload("cart.db", SourceKind::Sqlite);
        for (set, want) in [(None, 3), (Some(5), 5)] {
            let mut restored = example_image("cart.db", SourceKind::Sqlite, set);
            let snap = decode_payload(&payload, "cart.db").unwrap();
            assert_eq!(restored.restore_snapshot(snap), Ok(image.len()));
            assert_eq!(restored.checkpoint_interval(), want);
            for i in 0..image.len() {
                assert_eq!(restored.state_after(i).unwrap(), image.state_after(i).unwrap());
            }
        }
    }

    /// The spec of a bundled example log.
    fn example_spec(name: &str, kind: SourceKind) -> SourceSpec {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("assets/examples")
            .join(name);
        SourceSpec {
            kind,
            path,
            display: name.to_string(),
            mapping: Default::default(),
            accept_partial_last_line: true,
        }
    }

    /// A cache in `dir` for a bundled example log and the default reducer.
    fn example_cache(dir: &Path, name: &str, kind: SourceKind) -> SnapshotCache {
        SnapshotCache::in_dir(
            dir.to_path_buf(),
            &example_spec(name, kind),
            DEFAULT_REDUCER,
            &PVal::empty_obj(),
        )
        .unwrap()
    }

    #[test]
    fn far_states_in_the_scratch_file_are_saved_and_serve_seeks_after_a_restore() {
        let dir = tempfile::tempdir().unwrap();
        let (name, kind) = ("cart.jsonl", SourceKind::Jsonl);
        let cache = example_cache(dir.path(), name, kind);
        // Its scratch file in the test's directory (far states need one).
        let options = ImageOptions {
            checkpoint_interval: Some(1),
            memory_budget: None,
            scratch_dir: Some(dir.path().to_path_buf()),
        };
        let mut image = example_image_with(name, kind, options);
        image.load(&mut |_| {}).unwrap();
        let states: Vec<PVal> = (0..image.len()).map(|i| image.state_after(i).unwrap()).collect();
        // Thinned hard: the checkpoints at multiples of FAR_EVERY (but not
        // of 1024) go whole to the scratch file, out of memory.
        image.fold.focus = 0;
        image.fold.thin_level = 10;
        image.fold.thin();
        image.fold.collect_deltas(true);
        image.fold.thin();
        let in_file: Vec<usize> = image.fold.far.keys().copied().collect();
        assert!(!in_file.is_empty(), "no far state made");
        assert!(in_file.iter().all(|&c| image.fold.checkpoints[c].is_none()));
        cache.save(&mut image).unwrap();
        let mut restored = example_image(name, kind, None);
        assert!(matches!(cache.restore(&mut restored), Restore::Restored { .. }));
        // Every other one is saved.
        for &c in &in_file {
            let saved = c.is_multiple_of(SAVE_FAR_EVERY);
            assert_eq!(restored.fold.far.contains_key(&c), saved, "far state {c}");
            assert!(restored.fold.checkpoints[c].is_none());
        }
        // A seek just past one reads it in and gives the fold's state.
        let c = *in_file
            .iter()
            .find(|c| c.is_multiple_of(SAVE_FAR_EVERY))
            .expect("one saved");
        assert!(
            in_file.iter().any(|c| !c.is_multiple_of(SAVE_FAR_EVERY)),
            "one not saved"
        );
        assert_eq!(restored.state_after(c + 1).unwrap(), states[c + 1]);
        assert_eq!(restored.fold.far_reads, 1);
    }

    #[test]
    fn saved_deltas_come_back_checked_and_a_damaged_one_is_replayed_over() {
        let dir = tempfile::tempdir().unwrap();
        // 333 intervals: far more than the checkpoints a snapshot stores.
        let (name, kind) = ("cart.jsonl", SourceKind::Jsonl);
        let cache = example_cache(dir.path(), name, kind);
        let mut image = example_image(name, kind, Some(3));
        image.load(&mut |_| {}).unwrap();
        let saved_deltas = image.delta_stats().0;
        assert_eq!(saved_deltas, image.len() / 3);
        let states: Vec<PVal> = (0..image.len()).map(|i| image.state_after(i).unwrap()).collect();
        cache.save(&mut image).unwrap();
        let restore = |cache: &SnapshotCache| {
            let mut restored = example_image(name, kind, None);
            assert!(matches!(cache.restore(&mut restored), Restore::Restored { .. }));
            restored
        };
        // Every delta comes back, and seeks that cross them (from the
        // initial state or the last one) give the fold's states.
        let mut restored = restore(&cache);
        assert_eq!(restored.delta_stats().0, saved_deltas);
        for i in (0..states.len()).rev() {
            assert_eq!(restored.state_after(i).unwrap(), states[i], "after {i}");
        }
        // Far checkpoints came back whole too, read in when a seek is near
        // one; a damaged one is forgotten and the seek goes on without it.
        let mut restored = restore(&cache);
        let far: Vec<usize> = restored.fold.far.keys().copied().collect();
        assert!(far.len() >= 8, "{far:?}");
        let mid = far[far.len() / 2];
        assert!(restored.fold.checkpoints[mid].is_none());
        // (`states[i]` is the state after event i, so after i + 1 events.)
        assert_eq!(restored.state_after(mid * 3 + 1).unwrap(), states[mid * 3 + 1]);
        assert!(
            restored.fold.checkpoints[mid].is_some(),
            "far state {mid} not read in"
        );
        let other = far[far.len() / 2 - 2];
        restored.fold.far.insert(other, Far::garbage());
        assert_eq!(restored.state_after(other * 3).unwrap(), states[other * 3]);
        assert!(!restored.fold.far.contains_key(&other));
        // A byte flipped in the first delta: it fails its check and is
        // replayed over; the others still serve.
        let file = std::fs::read(cache.path()).unwrap();
        let len = u64::from_le_bytes(file[HEADER_LEN - 40..HEADER_LEN - 32].try_into().unwrap()) as usize;
        let mut damaged = file.clone();
        damaged[HEADER_LEN + len + 5] ^= 0x20;
        std::fs::write(cache.path(), &damaged).unwrap();
        let mut restored = restore(&cache);
        assert_eq!(restored.delta_stats().0, saved_deltas);
        let first = restored.fold.deltas.iter().position(Option::is_some).unwrap();
        assert!(restored.fold.deltas[first].as_ref().unwrap().packed().is_err());
        for (i, state) in states.iter().enumerate() {
            assert_eq!(&restored.state_after(i).unwrap(), state, "after {i}");
        }
        // It was crossed, found out and made again; the others were kept.
        restored.fold.collect_deltas(true);
        assert!(
            restored.fold.deltas[first]
                .as_ref()
                .is_none_or(|d| d.packed().is_ok())
        );
        assert!(restored.delta_stats().0 >= saved_deltas - 1);
        // A damaged table or a lost trailer: no deltas, same answers.
        for cut in [file.len() - 1, file.len() - TRAILER_LEN - 1] {
            let mut short = file[..cut].to_vec();
            short.push(0);
            std::fs::write(cache.path(), &short).unwrap();
            let mut restored = restore(&cache);
            assert_eq!(restored.delta_stats().0, 0, "cut at {cut}");
            for (i, state) in states.iter().enumerate() {
                assert_eq!(&restored.state_after(i).unwrap(), state, "after {i}");
            }
        }
    }

    #[test]
    fn payloads_round_trip() {
        for (name, kind) in [
            ("bad.jsonl", SourceKind::Jsonl),
            ("hostile.jsonl", SourceKind::Jsonl),
            ("cart.db", SourceKind::Sqlite),
        ] {
            let (image, payload) = image_and_payload(name, kind);
            let snap = decode_payload(&payload, name).unwrap();
            let (got, want): (Vec<Entry>, Vec<Entry>) =
                (snap.entries.iter().collect(), image.entries().iter().collect());
            assert_eq!(got, want, "{name}");
            assert_eq!(&snap.last, image.last_state(), "{name}");
            assert_eq!(snap.ascending, image.fold.ascending, "{name}");
            assert_eq!(snap.interval, 3, "{name}");
            assert_eq!(
                (snap.invalid, snap.errors),
                (image.invalid_count(), image.error_count())
            );
            // Stored checkpoints, latest first, equal the image's.
            assert!(!snap.checkpoints.is_empty(), "{name}");
            for (count, state) in &snap.checkpoints {
                assert_eq!(
                    image.fold.checkpoints[count / 3].as_ref(),
                    Some(state),
                    "{name} at {count}"
                );
            }
            // Reopened under another name, invalid records' places follow.
            let renamed = decode_payload(&payload, "other/name.jsonl").unwrap();
            for (a, b) in renamed.entries.iter().zip(image.entries().iter()) {
                if let (Status::Invalid(x), Status::Invalid(y)) = (&a.status, &b.status) {
                    assert_eq!(x.place.replacen("other/name.jsonl", name, 1), y.place);
                }
            }
        }
    }

    #[test]
    fn damaged_payloads_are_errors_or_harmless_never_panics() {
        // (The file's hash catches all of this first; the decoder must not
        // rely on it.)
        let (_, payload) = image_and_payload("bad.jsonl", SourceKind::Jsonl);
        for cut in 0..payload.len() {
            assert!(
                decode_payload(&payload[..cut], "bad.jsonl").is_err(),
                "cut at {cut}"
            );
        }
        for at in 0..payload.len() {
            for mask in [0x01u8, 0xff] {
                let mut p = payload.clone();
                p[at] ^= mask;
                let _ = decode_payload(&p, "bad.jsonl");
            }
        }
    }

    #[test]
    fn files_are_checked_before_their_payload_is_read() {
        let (_, payload) = image_and_payload("bad.jsonl", SourceKind::Jsonl);
        let key = [7u8; 32];
        let mut file = Vec::new();
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&key);
        file.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        file.extend_from_slice(blake3::hash(&payload).as_bytes());
        file.extend_from_slice(&payload);
        assert!(decode(&file, &key, "bad.jsonl").is_ok());
        assert!(decode(&file, &[8u8; 32], "bad.jsonl").is_err());
        for at in 0..file.len() {
            let mut f = file.clone();
            f[at] ^= 0x10;
            assert!(decode(&f, &key, "bad.jsonl").is_err(), "flip at {at} not caught");
        }
    }
}
