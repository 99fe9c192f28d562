//! Shared by the explorer's tests: a small reducer written in Rust (so they
//! do not depend on the jq engine), logs written to temporary files, and a
//! headless explorer over them.
#![allow(dead_code)]

use evscope::image::{ImageOptions, MemoryImage};
use evscope::log::{self, SourceSpec};
use evscope::reduce::Reducer;
use evscope::tui::headless::Headless;
use evscope::value::Text;
use evscope::value::{PObj, PVal};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `count` of events, `by_type` counts, and `streams[stream]` = the last
/// data of that stream. An event whose data has `"fail": true` is a
/// reducer error.
pub struct Tally;

fn obj(v: Option<&PVal>) -> PObj {
    v.and_then(|v| v.as_obj()).cloned().unwrap_or_default()
}

impl Reducer for Tally {
    fn apply(&self, state: &PVal, event: &PVal) -> Result<PVal, String> {
        let ev = event.as_obj().ok_or("event is not an object")?;
        let data = ev.get("data").cloned().unwrap_or_default();
        if data.as_obj().and_then(|d| d.get("fail")) == Some(&PVal::Bool(true)) {
            return Err("boom: this event says fail".to_string());
        }
        let ty = ev.get("type").and_then(|t| t.as_str()).unwrap_or("?").to_string();
        let mut s = obj(Some(state));
        let count = s.get("count").and_then(|c| c.as_f64()).unwrap_or(0.0) as i64;
        s.insert(Text::from("count"), PVal::Int(count + 1));
        let mut by_type = obj(s.get("by_type"));
        let n = by_type.get(ty.as_str()).and_then(|c| c.as_f64()).unwrap_or(0.0) as i64;
        by_type.insert(Text::from(ty.as_str()), PVal::Int(n + 1));
        s.insert(Text::from("by_type"), PVal::Obj(by_type));
        if let Some(stream) = ev.get("stream").and_then(|x| x.as_str()) {
            let mut streams = obj(s.get("streams"));
            streams.insert(Text::from(stream), data);
            s.insert(Text::from("streams"), PVal::Obj(streams));
        }
        Ok(PVal::Obj(s))
    }
}

/// One JSONL event line.
pub fn line(id: i64, ty: &str, stream: &str, data: &str) -> String {
    format!(
        "{{\"id\":{id},\"type\":\"{ty}\",\"stream\":\"{stream}\",\"time\":\"2026-01-05T09:{:02}:{:02}Z\",\"data\":{data}}}\n",
        id / 60 % 60,
        id % 60
    )
}

/// `n` events: types cycle Opened/Deposited/Withdrawn, streams acc-0..2.
pub fn sample(n: i64) -> String {
    (1..=n)
        .map(|i| {
            let ty = ["Opened", "Deposited", "Withdrawn"][(i % 3) as usize];
            line(i, ty, &format!("acc-{}", i % 3), &format!("{{\"n\":{i}}}"))
        })
        .collect()
}

/// A log in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Fixture {
    pub fn jsonl(text: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, text).expect("write log");
        Fixture { dir, path }
    }

    pub fn append(&self, text: &str) {
        append(&self.path, text);
    }

    /// A loaded headless explorer over this log, folded by [`Tally`] with
    /// a checkpoint every 4 events (so seeks cross checkpoints).
    pub fn headless(&self, width: u16, height: u16) -> Headless {
        let spec = SourceSpec::parse(&self.path.display().to_string(), Default::default()).expect("spec");
        let source = log::open(&spec).expect("open");
        let image = MemoryImage::new(
            source,
            Arc::new(Tally),
            PVal::empty_obj(),
            ImageOptions {
                checkpoint_interval: Some(4),
                ..Default::default()
            },
        );
        let mut h = Headless::new(image, width, height);
        // A fixed name: snapshots must not show the temporary path.
        h.app.info.source = "jsonl:events.jsonl".to_string();
        h.load().expect("load");
        h
    }
}

pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// A bundled example log.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/examples")
        .join(name)
}
