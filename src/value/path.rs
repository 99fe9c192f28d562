//! RFC 6901 JSON pointers over `PVal` paths.

/// One step of a path into a JSON value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSeg {
    Key(super::Text),
    Index(usize),
}

/// Escape one reference token (`~` → `~0`, `/` → `~1`).
pub fn pointer_escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The RFC 6901 pointer of a path (`""` for the root).
pub fn to_pointer(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            PathSeg::Key(k) => out.push_str(&pointer_escape(k)),
            PathSeg::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// Split a pointer into its unescaped reference tokens.
///
/// Tokens stay strings: whether one is an array index depends on the value
/// it is applied to.
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("JSON pointer {pointer:?} does not start with '/'"));
    };
    rest.split('/')
        .map(|t| {
            if t.contains('~') {
                let mut out = String::with_capacity(t.len());
                let mut chars = t.chars();
                while let Some(c) = chars.next() {
                    if c == '~' {
                        match chars.next() {
                            Some('0') => out.push('~'),
                            Some('1') => out.push('/'),
                            _ => return Err(format!("bad escape in JSON pointer {pointer:?}")),
                        }
                    } else {
                        out.push(c);
                    }
                }
                Ok(out)
            } else {
                Ok(t.to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Text;

    #[test]
    fn pointer_round_trip() {
        let path = vec![
            PathSeg::Key(Text::from("a/b")),
            PathSeg::Index(3),
            PathSeg::Key(Text::from("m~n")),
            PathSeg::Key(Text::from("")),
        ];
        let p = to_pointer(&path);
        assert_eq!(p, "/a~1b/3/m~0n/");
        assert_eq!(parse_pointer(&p).unwrap(), vec!["a/b", "3", "m~n", ""]);
        assert!(parse_pointer("x").is_err());
        assert!(parse_pointer("/a~2").is_err());
    }
}
