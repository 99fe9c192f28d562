//! SQLite tables. (Placeholder.)
use super::*;
pub struct SqliteSource;
impl SqliteSource {
    pub fn open(spec: &SourceSpec) -> Result<SqliteSource, SourceError> {
        Err(SourceError(format!(
            "{}: SQLite not implemented yet",
            spec.display
        )))
    }
}
impl LogSource for SqliteSource {
    fn describe(&self) -> String {
        String::new()
    }
    fn read_new(
        &mut self,
        _: Option<usize>,
        _: &mut dyn FnMut(Record),
    ) -> Result<usize, SourceError> {
        Ok(0)
    }
    fn read_at(&mut self, _: Loc) -> Result<Record, SourceError> {
        Err(SourceError(String::new()))
    }
    fn poll(&mut self) -> Result<Change, SourceError> {
        Ok(Change::None)
    }
    fn rewind(&mut self) {}
}
