//! Appending JSON and hex text to a `String` without `format!`.
//!
//! Every span carries three JSON documents; building them through `fmt` machinery was the
//! dominant cost, so values are pushed directly.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `value` as 16 lowercase hex digits.
pub(crate) fn push_hex_u64(out: &mut String, value: u64) {
    for shift in (0..16).rev() {
        out.push(char::from(HEX[((value >> (shift * 4)) & 0xf) as usize]));
    }
}

/// Appends the decimal digits of `value`.
pub(crate) fn push_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (value % 10) as u8;
        len += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &d in digits[..len].iter().rev() {
        out.push(char::from(d));
    }
}

/// Appends the decimal digits of `value`, with a sign when negative.
pub(crate) fn push_i64(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    push_u64(out, value.unsigned_abs());
}

fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `text` as a JSON string literal.
///
/// The tables hold plain text, so the fast path copies the bytes; escaping is still done
/// properly so that a future table entry with a quote cannot produce invalid JSON.
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    if !needs_escape(text) {
        out.push_str(text);
    } else {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    out.push_str("\\u00");
                    out.push(char::from(HEX[(u32::from(c) >> 4) as usize]));
                    out.push(char::from(HEX[(u32::from(c) & 0xf) as usize]));
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Builds one JSON object in place: `{"k":v,...}`.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    /// Writes the key and separator, and hands back the buffer for the value.
    ///
    /// Keys are attribute names written in this crate, never data, so they skip the
    /// escaping scan (a measurable share of generation time); debug builds check them.
    fn key(&mut self, key: &str) -> &mut String {
        debug_assert!(!needs_escape(key), "JSON key needs escaping: {key:?}");
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        push_json_str(out, value);
        self
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) -> &mut Self {
        let out = self.key(key);
        push_i64(out, value);
        self
    }

    /// Starts a string value the caller appends to (already escaped-safe text only), and
    /// closes it with [`ObjectWriter::end_raw_str`]; used for values assembled from parts,
    /// such as a URL with a generated id, to avoid a temporary `String`.
    pub(crate) fn begin_raw_str(&mut self, key: &str) -> &mut String {
        let out = self.key(key);
        out.push('"');
        out
    }

    pub(crate) fn end_raw_str(&mut self) -> &mut Self {
        self.out.push('"');
        self
    }

    /// Starts a nested object value.
    pub(crate) fn object(&mut self, key: &str) -> ObjectWriter<'_> {
        let out = self.key(key);
        ObjectWriter::new(out)
    }

    pub(crate) fn finish(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_hex() {
        let mut s = String::new();
        push_u64(&mut s, 0);
        s.push(' ');
        push_i64(&mut s, -1234567890123);
        s.push(' ');
        push_u64(&mut s, u64::MAX);
        s.push(' ');
        push_hex_u64(&mut s, 0x00ab_cdef_0123_4567);
        assert_eq!(s, "0 -1234567890123 18446744073709551615 00abcdef01234567");
    }

    #[test]
    fn objects_are_valid_json_even_with_awkward_text() {
        let mut s = String::new();
        let mut w = ObjectWriter::new(&mut s);
        w.str("a", "line\nbreak \\ \"q\" \u{1} é").int("n", -5);
        w.begin_raw_str("url").push_str("http://x/1");
        w.end_raw_str();
        w.object("inner").str("k", "v").finish();
        w.finish();
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["a"], "line\nbreak \\ \"q\" \u{1} é");
        assert_eq!(v["n"], -5);
        assert_eq!(v["url"], "http://x/1");
        assert_eq!(v["inner"]["k"], "v");
    }
}
