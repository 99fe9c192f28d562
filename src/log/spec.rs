//! Parsing a SOURCE argument and the field/column mapping flags.

use super::SourceError;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Jsonl,
    Sqlite,
}

/// Field (JSONL) or column (SQLite) names that override the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    pub table: Option<String>,
    pub id: Option<String>,
    pub ty: Option<String>,
    pub data: Option<String>,
    pub stream: Option<String>,
    pub time: Option<String>,
    pub meta: Option<String>,
}

/// A parsed SOURCE: its kind, its path and how to map its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSpec {
    pub kind: SourceKind,
    pub path: PathBuf,
    /// How to name the file in messages (`<stdin>` for `-`).
    pub display: String,
    pub mapping: Mapping,
    /// Accept a last line without a trailing newline (a file that is not
    /// being appended to). A live tail leaves it for the next poll.
    pub accept_partial_last_line: bool,
}

impl SourceSpec {
    /// Parse `sqlite:PATH`, `jsonl:PATH`, or a path whose extension says the
    /// kind (`.db`, `.sqlite`, `.sqlite3`; `.jsonl`, `.ndjson`).
    /// `-` (standard input) is resolved by the caller, who spools it to a
    /// file first.
    pub fn parse(arg: &str, mapping: Mapping) -> Result<SourceSpec, SourceError> {
        let (kind, path) = if let Some(p) = arg.strip_prefix("sqlite:") {
            (SourceKind::Sqlite, p)
        } else if let Some(p) = arg.strip_prefix("jsonl:") {
            (SourceKind::Jsonl, p)
        } else {
            let lower = arg.to_ascii_lowercase();
            let kind = if [".db", ".sqlite", ".sqlite3"].iter().any(|e| lower.ends_with(e)) {
                SourceKind::Sqlite
            } else if [".jsonl", ".ndjson"].iter().any(|e| lower.ends_with(e)) {
                SourceKind::Jsonl
            } else {
                return Err(SourceError(format!(
                    "{arg}: cannot tell the kind of log from its name; use sqlite:{arg} or jsonl:{arg} \
                     (known extensions: .db .sqlite .sqlite3 .jsonl .ndjson)"
                )));
            };
            (kind, arg)
        };
        if path.is_empty() {
            return Err(SourceError(format!("{arg}: empty path")));
        }
        Ok(SourceSpec {
            kind,
            path: PathBuf::from(path),
            display: path.to_string(),
            mapping,
            accept_partial_last_line: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names_and_prefixes() {
        let m = Mapping::default();
        assert_eq!(
            SourceSpec::parse("a.db", m.clone()).unwrap().kind,
            SourceKind::Sqlite
        );
        assert_eq!(
            SourceSpec::parse("a.NDJSON", m.clone()).unwrap().kind,
            SourceKind::Jsonl
        );
        let s = SourceSpec::parse("sqlite:weird.bin", m.clone()).unwrap();
        assert_eq!((s.kind, s.display.as_str()), (SourceKind::Sqlite, "weird.bin"));
        assert!(SourceSpec::parse("a.txt", m.clone()).is_err());
        assert!(SourceSpec::parse("jsonl:", m).is_err());
    }
}
