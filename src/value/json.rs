//! A fast reader of JSON text straight into [`PVal`], for the common case.
//!
//! Folding a big log parses every line, and serde_json's visitor machinery
//! (plus an allocation for every object key) costs more than the values
//! are worth. This reader handles a strict subset of what serde_json
//! accepts and builds the very value serde_json would; on anything else
//! (an error of any kind, a lone surrogate escape, nesting deeper than
//! [`MAX_DEPTH`]) it gives up with `None` and the caller parses the text
//! with serde_json, so values *and* error messages stay serde_json's.
//!
//! - Numbers: a plain integer of at most 18 digits is read here; any other
//!   number token is handed to serde_json on its own, which reads it as it
//!   would inside the document.
//! - Strings: escapes are decoded here, including surrogate pairs; a lone
//!   surrogate or a control character gives up.
//! - Object keys and short strings go through an [`Interner`]: the keys of
//!   a log's events repeat on every line, so they share one allocation
//!   instead of allocating (and later freeing) one per event.

use super::{PObj, PVal, Text};
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

/// Containers nested deeper than this are left to serde_json (whose own
/// limit is 128).
const MAX_DEPTH: usize = 100;
/// Keys at most this long are interned.
const KEY_MAX: usize = 32;
/// String values at most this long are interned (short strings repeat:
/// enums, currencies, flags; long ones are mostly unique).
const VALUE_MAX: usize = 8;
/// Slots of each interning table (a power of two).
const SLOTS: usize = 256;

/// Recently seen strings, shared instead of allocated again: a small
/// direct-mapped cache (a string evicts the one in its slot), so it never
/// holds more than [`SLOTS`] strings of each kind.
pub(crate) struct Interner {
    keys: Box<[Option<Text>]>,
    values: Box<[Option<Text>]>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            keys: vec![None; SLOTS].into_boxed_slice(),
            values: vec![None; SLOTS].into_boxed_slice(),
        }
    }
}

impl Interner {
    /// `s` as an object key.
    pub(crate) fn key(&mut self, s: &str) -> Text {
        if s.len() > KEY_MAX {
            return Text::from(s);
        }
        cached(&mut self.keys, s)
    }

    /// `s` as a name that repeats (an event type): interned like a key.
    pub(crate) fn name(&mut self, s: &str) -> Text {
        self.key(s)
    }

    /// `s` as a string value.
    fn value(&mut self, s: &str) -> Text {
        if s.len() > VALUE_MAX {
            return Text::from(s);
        }
        cached(&mut self.values, s)
    }
}

fn cached(table: &mut [Option<Text>], s: &str) -> Text {
    let slot = &mut table[slot_of(s.as_bytes())];
    match slot {
        Some(a) if **a == *s => a.clone(),
        _ => {
            let a: Text = Text::from(s);
            *slot = Some(a.clone());
            a
        }
    }
}

/// The slot of a short string: a multiplicative hash of its length and of
/// its first and last eight bytes.
fn slot_of(b: &[u8]) -> usize {
    let n = b.len();
    let h = if n >= 8 {
        let head = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let tail = u64::from_le_bytes(b[n - 8..].try_into().unwrap_or_default());
        head ^ tail.rotate_left(29)
    } else {
        b.iter().fold(0u64, |h, &c| (h << 8) | u64::from(c))
    };
    let h = (h ^ (n as u64).rotate_left(56)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - SLOTS.trailing_zeros())) as usize
}

thread_local! {
    static INTERNER: RefCell<Option<Interner>> = const { RefCell::new(None) };
}

/// Parse a whole JSON text (`PVal::from_json`'s fast path): `None` when
/// serde_json must do it.
pub(crate) fn parse(text: &str) -> Option<PVal> {
    INTERNER.with_borrow_mut(|slot| {
        let strings = slot.get_or_insert_with(Interner::default);
        let mut r = Reader::new(text, strings);
        r.ws();
        let v = r.value()?;
        r.ws();
        r.at_end().then_some(v)
    })
}

/// Bytes that end the fast scan of a string: `"`, `\` and control
/// characters.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The index of the first byte from `i` on that ends the fast scan of a
/// string ([`STOP`]), eight bytes at a time.
#[inline]
fn find_stop(b: &[u8], mut i: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = w ^ (LO * u64::from(b'"'));
        let slash = w ^ (LO * u64::from(b'\\'));
        // A byte is flagged when it is zero in `quote` or `slash`, or below
        // 0x20 in `w`. Borrows can flag bytes above a flagged one, never
        // below, so the lowest flag is exact.
        let hit = ((quote.wrapping_sub(LO) & !quote)
            | (slash.wrapping_sub(LO) & !slash)
            | (w.wrapping_sub(LO * 0x20) & !w))
            & HI;
        if hit != 0 {
            return Some(i + (hit.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| STOP[c as usize]).map(|k| i + k)
}

/// A cursor over JSON text. Every method returns `None` when the text is
/// not in the subset handled here (the caller then falls back to
/// serde_json for the whole text).
pub(crate) struct Reader<'a, 'i> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    strings: &'i mut Interner,
}

impl<'a, 'i> Reader<'a, 'i> {
    pub(crate) fn new(s: &'a str, strings: &'i mut Interner) -> Self {
        Reader {
            s,
            b: s.as_bytes(),
            pos: 0,
            strings,
        }
    }

    pub(crate) fn strings(&mut self) -> &mut Interner {
        self.strings
    }

    /// Skip JSON whitespace.
    #[inline]
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Consume byte `c`.
    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek()? == c {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.b.len()
    }

    /// A string (at its opening quote), borrowed when it has no escapes.
    pub(crate) fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos + 1;
        let i = find_stop(self.b, start)?;
        match self.b[i] {
            b'"' => {
                self.pos = i + 1;
                Some(Cow::Borrowed(self.s.get(start..i)?))
            }
            b'\\' => self.escaped(start, i).map(Cow::Owned),
            _ => None,
        }
    }

    /// The rest of a string from its first escape at `i`.
    fn escaped(&mut self, start: usize, mut i: usize) -> Option<String> {
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(self.s.get(start..i)?);
        loop {
            let c = *self.b.get(i)?;
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return Some(out);
                }
                b'\\' => {
                    let e = *self.b.get(i + 1)?;
                    i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4(i)?;
                            i += 4;
                            let code = match hi {
                                0xD800..=0xDBFF => {
                                    if self.b.get(i..i + 2)? != b"\\u" {
                                        return None;
                                    }
                                    let lo = self.hex4(i + 2)?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    i += 6;
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => hi,
                            };
                            out.push(char::from_u32(code)?);
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                _ => {
                    // Copy the run up to the next quote, escape or control.
                    let end = find_stop(self.b, i)?;
                    out.push_str(self.s.get(i..end)?);
                    i = end;
                }
            }
        }
    }

    /// Four hex digits at `i`.
    fn hex4(&self, i: usize) -> Option<u32> {
        let mut n = 0;
        for &c in self.b.get(i..i + 4)? {
            n = n * 16 + (c as char).to_digit(16)?;
        }
        Some(n)
    }

    /// An integer of at most 18 digits, in JSON's syntax (no leading
    /// zeros) and not followed by a fraction or an exponent.
    pub(crate) fn plain_int(&mut self) -> Option<i64> {
        let b = self.b;
        let mut i = self.pos;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let first = i;
        let mut n: i64 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            n = n.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
            i += 1;
        }
        let digits = i - first;
        if digits == 0 || digits > 18 || (b[first] == b'0' && (digits > 1 || neg)) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E' | b'+' | b'-') = b.get(i) {
            return None;
        }
        self.pos = i;
        Some(if neg { -n } else { n })
    }

    /// Any number: a plain integer here, other tokens by serde_json.
    fn number(&mut self) -> Option<PVal> {
        if let Some(n) = self.plain_int() {
            return Some(PVal::Int(n));
        }
        let start = self.pos;
        let len = self.b[start..]
            .iter()
            .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(self.b.len() - start);
        let v: PVal = serde_json::from_str(self.s.get(start..start + len)?).ok()?;
        self.pos = start + len;
        Some(v)
    }

    /// `null`, `true` or `false`.
    fn literal(&mut self, word: &[u8], v: PVal) -> Option<PVal> {
        if self.b.get(self.pos..self.pos + word.len())? == word {
            self.pos += word.len();
            Some(v)
        } else {
            None
        }
    }

    /// A value.
    pub(crate) fn value(&mut self) -> Option<PVal> {
        self.value_in(0)
    }

    fn value_in(&mut self, depth: usize) -> Option<PVal> {
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                Some(PVal::Str(self.strings.value(&s)))
            }
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'n' => self.literal(b"null", PVal::Null),
            b't' => self.literal(b"true", PVal::Bool(true)),
            b'f' => self.literal(b"false", PVal::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Option<PVal> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.ws();
        let mut o = PObj::new();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(PVal::Obj(o));
        }
        loop {
            let k = self.string()?;
            let k = self.strings.key(&k);
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v = self.value_in(depth)?;
            // Later duplicates win, as in jq (and in serde_impl).
            o.insert(k, v);
            self.ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b'}' => {
                    self.pos += 1;
                    return Some(PVal::Obj(o));
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<PVal> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.ws();
        let mut a = imbl::Vector::new();
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(PVal::Arr(Arc::new(a)));
        }
        loop {
            a.push_back(self.value_in(depth)?);
            self.ws();
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b']' => {
                    self.pos += 1;
                    return Some(PVal::Arr(Arc::new(a)));
                }
                _ => return None,
            }
        }
    }

    /// Check a value without building it (strings with escapes are still
    /// decoded, to be checked as strictly as when they are kept).
    pub(crate) fn skip(&mut self) -> Option<()> {
        self.skip_in(0)
    }

    fn skip_in(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let close = if self.peek()? == b'{' { b'}' } else { b']' };
                let depth = depth + 1;
                if depth > MAX_DEPTH {
                    return None;
                }
                self.pos += 1;
                self.ws();
                if self.peek()? == close {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    if close == b'}' {
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip_in(depth)?;
                    self.ws();
                    match self.peek()? {
                        b',' => {
                            self.pos += 1;
                            self.ws();
                        }
                        c if c == close => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'n' => self.literal(b"null", PVal::Null).map(drop),
            b't' => self.literal(b"true", PVal::Null).map(drop),
            b'f' => self.literal(b"false", PVal::Null).map(drop),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast reader agrees with serde_json wherever it answers.
    fn same(text: &str) -> bool {
        let slow: Result<PVal, _> = serde_json::from_str(text);
        match parse(text) {
            Some(v) => {
                let s = slow.unwrap_or_else(|e| panic!("fast accepted {text:?}, serde_json: {e}"));
                assert_eq!(v.to_json(), s.to_json(), "{text:?}");
                assert_eq!(format!("{v:?}"), format!("{s:?}"), "{text:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn agrees_with_serde_json() {
        let handled = [
            r#"{"a":1,"b":[1,2.5,"x",null,true,false],"c":{"d":{}}}"#,
            r#" { "b" : 1 , "a" : [ ] , "b" : 2 } "#,
            r#""J\u00e9r\u00f4me \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t""#,
            "\"Jos\u{e9} \u{1F600}\"",
            "[0, -1, 123456789012345678, -123456789012345678]",
            "[1234567890123456789, 18446744073709551615, 18446744073709551616]",
            "[1.0, 1e2, -0, -0.0, 0.1, 1E-2, 2.5e+3, 123456789012345678901234567890]",
            "[[[[[]]]]]",
            "{}",
            "null",
            "\"\"",
        ];
        for t in handled {
            assert!(same(t), "not handled: {t:?}");
        }
        // Left to serde_json (errors, and what the fast path does not do).
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        for t in [
            "",
            " ",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "01",
            "-",
            "1.",
            ".5",
            "+1",
            "1 2",
            "nul",
            "tru",
            "\"\u{1}\"",
            r#""\ud800""#,
            r#""\udc00x""#,
            r#""\ud800\u0041""#,
            r#""\x""#,
            r#""\u12""#,
            "[1-2]",
            "[1e400]",
            "{\"a\":1}x",
            &deep,
        ] {
            assert!(!same(t), "handled: {t:?}");
        }
    }

    #[test]
    fn find_stop_finds_the_first_stop_byte() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xa2, 0xdc, 0x00, b'!', 0x21, b'#', b']',
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|k| {
                    let r = x.rotate_left(k as u32 * 7) ^ (k as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
                    // Mostly plain bytes, so stops land at any offset.
                    if r.is_multiple_of(5) {
                        alphabet[(r / 5 % alphabet.len() as u64) as usize]
                    } else {
                        b'a' + (r % 26) as u8
                    }
                })
                .collect();
            for from in 0..=len.min(9) {
                let naive = bytes[from..]
                    .iter()
                    .position(|&c| STOP[c as usize])
                    .map(|k| from + k);
                assert_eq!(find_stop(&bytes, from), naive, "{bytes:?} from {from}");
            }
        }
    }

    #[test]
    fn keys_and_short_strings_are_shared() {
        let a = parse(r#"{"email":"free"}"#).unwrap();
        let b = parse(r#"{"email":"free"}"#).unwrap();
        let (ka, va) = a.as_obj().unwrap().iter().next().unwrap();
        let (kb, vb) = b.as_obj().unwrap().iter().next().unwrap();
        assert!(Text::ptr_eq(ka, kb));
        assert!(va.ptr_eq(vb));
        let long = |v: &PVal| v.as_obj().unwrap().iter().next().unwrap().1.clone();
        let x = parse(r#"{"k":"a string too long to share"}"#).unwrap();
        let y = parse(r#"{"k":"a string too long to share"}"#).unwrap();
        assert!(!long(&x).ptr_eq(&long(&y)));
        assert_eq!(long(&x), long(&y));
    }

    #[test]
    fn random_texts_agree() {
        // Texts built from JSON-ish fragments: whatever the fast reader
        // accepts, serde_json reads the same.
        let parts = [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"a\"",
            "\"b\\n\"",
            "1",
            "-2",
            "0",
            "3.5",
            "1e3",
            "null",
            "true",
            " ",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"x\"",
            "-0",
            "00",
            "\"\\ud800\"",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut handled = 0;
        for _ in 0..20_000 {
            let mut t = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = 1 + (x % 12) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t.push_str(parts[(x % parts.len() as u64) as usize]);
            }
            if same(&t) {
                handled += 1;
            }
        }
        assert!(handled > 100, "only {handled} texts handled");
    }
}
