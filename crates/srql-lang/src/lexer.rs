//! Splits query text into `[!]key:value` tokens.
//!
//! The lexer knows the shapes a value can take (bare, quoted, bracketed list) but not what a
//! key means; [`crate::parser`] gives each key its meaning. Every byte the lexer branches on
//! is ASCII, and in UTF-8 an ASCII byte is never part of a multi-byte character, so slicing
//! the text at those positions is always on a char boundary.

use crate::error::ParseError;

/// One `[!]key:value` token.
#[derive(Debug)]
pub(crate) struct Token<'a> {
    /// Byte offset of the token (of its `!` when negated).
    pub offset: usize,
    pub negated: bool,
    /// The key as written (not lowercased), validated as a field name.
    pub key: &'a str,
    pub value: Value,
    /// Byte offset of the value, just after the `:`.
    pub value_offset: usize,
    /// The value as written, quotes and brackets included: what error messages quote back.
    pub raw_value: &'a str,
}

#[derive(Debug)]
pub(crate) enum Value {
    /// A bare or quoted value; quotes removed and escapes resolved.
    Text { text: String, quoted: bool },
    /// `(a,b)` or `[a,b]`. Items may be empty (`[,END]` is an open time range); whoever
    /// wants non-empty items checks.
    List { open: u8, items: Vec<Item> },
}

#[derive(Debug)]
pub(crate) struct Item {
    pub text: String,
    pub offset: usize,
    pub quoted: bool,
}

/// Yields tokens in order and stops after the first error.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Result<Token<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.skip_whitespace();
        if self.pos >= self.text.len() {
            return None;
        }
        let token = self.token();
        self.failed = token.is_err();
        Some(token)
    }
}

/// Separators between tokens and around list items. `\r` is included so that a query
/// pasted from a CRLF file still parses.
pub(crate) fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.'
}

/// `[A-Za-z_][A-Za-z0-9_.]*`: field names, including dotted OpenTelemetry ones.
pub(crate) fn is_field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => bytes.all(is_key_byte),
        _ => false,
    }
}

fn is_list_punctuation(byte: u8) -> bool {
    matches!(byte, b',' | b'(' | b')' | b'[' | b']')
}

/// The text at `offset` up to the next separator or list punctuation, for quoting in an
/// error. It is at least one character long unless `offset` is the end, so that a stray
/// `)` is named, and just one when it is punctuation or whitespace.
pub(crate) fn found_at(text: &str, offset: usize) -> &str {
    let Some(rest) = text.get(offset..) else {
        return "";
    };
    let Some(first) = rest.chars().next() else {
        return "";
    };
    if first.is_ascii() && (is_list_punctuation(first as u8) || is_space(first as u8)) {
        return &rest[..1];
    }
    let end = rest
        .bytes()
        .skip(first.len_utf8())
        .position(|b| is_space(b) || is_list_punctuation(b))
        .map_or(rest.len(), |n| n + first.len_utf8());
    &rest[..end]
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            failed: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// End of the run of non-separator bytes starting at `from`.
    fn word_end(&self, from: usize) -> usize {
        self.text.as_bytes()[from..]
            .iter()
            .position(|&b| is_space(b))
            .map_or(self.text.len(), |n| from + n)
    }

    fn token(&mut self) -> Result<Token<'a>, ParseError> {
        let offset = self.pos;
        let negated = self.peek() == Some(b'!');
        if negated {
            self.pos += 1;
        }
        let key = self.key(offset)?;
        self.pos += 1; // the `:`
        let value_offset = self.pos;
        let value = self.value(key)?;
        Ok(Token {
            offset,
            negated,
            key,
            value,
            value_offset,
            raw_value: &self.text[value_offset..self.pos],
        })
    }

    /// The key before the `:`; leaves `pos` on the `:`.
    fn key(&mut self, token_start: usize) -> Result<&'a str, ParseError> {
        let key_start = self.pos;
        while self.peek().is_some_and(is_key_byte) {
            self.pos += 1;
        }
        let key = &self.text[key_start..self.pos];
        if self.peek() != Some(b':') {
            return Err(self.malformed_key(token_start, key_start));
        }
        if key.is_empty() {
            let token = &self.text[token_start..self.word_end(token_start)];
            return Err(ParseError::expected(
                token_start,
                "a field name before `:`",
                token,
            ));
        }
        if !is_field_name(key) {
            return Err(ParseError::expected(
                key_start,
                "a field name starting with a letter or `_`",
                key,
            ));
        }
        Ok(key)
    }

    /// A token that is not `key:...`: either no `:` at all, or odd characters before it.
    fn malformed_key(&self, token_start: usize, key_start: usize) -> ParseError {
        let token = &self.text[token_start..self.word_end(token_start)];
        match token.find(':') {
            Some(colon) if colon > key_start - token_start => ParseError::expected(
                token_start,
                "a field name of letters, digits, `_` and `.` before `:`",
                &token[..colon],
            ),
            _ => ParseError::expected(token_start, "a `key:value` token", token),
        }
    }

    fn value(&mut self, key: &str) -> Result<Value, ParseError> {
        let value = match self.peek() {
            None => {
                return Err(ParseError::expected(
                    self.pos,
                    &format!("a value after `{key}:`"),
                    "",
                ))
            }
            Some(byte) if is_space(byte) => {
                return Err(ParseError::expected(
                    self.pos,
                    &format!("a value after `{key}:`"),
                    &self.text[self.pos..=self.pos],
                ))
            }
            Some(quote @ (b'"' | b'\'')) => {
                let text = self.quoted(quote)?;
                self.expect_token_end("whitespace after the closing quote")?;
                Value::Text { text, quoted: true }
            }
            Some(open @ (b'(' | b'[')) => {
                let items = self.list(open)?;
                self.expect_token_end("whitespace after the list")?;
                Value::List { open, items }
            }
            Some(_) => {
                let mut text = self.bare()?;
                if key.eq_ignore_ascii_case("stats") {
                    self.unquoted_stats_alias(&mut text);
                }
                Value::Text {
                    text,
                    quoted: false,
                }
            }
        };
        Ok(value)
    }

    /// A bare value up to the next unescaped whitespace; leaves `pos` after it.
    ///
    /// A backslash escapes the next character, so that ServiceRadar's query builder can
    /// write a name with a space as `root_span_name:%GET\ /api%`.
    fn bare(&mut self) -> Result<String, ParseError> {
        let mut text = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let run = rest
                .bytes()
                .position(|b| is_space(b) || b == b'\\')
                .unwrap_or(rest.len());
            text.push_str(&rest[..run]);
            self.pos += run;
            if self.peek() != Some(b'\\') {
                return Ok(text);
            }
            let Some(escaped) = self.text[self.pos + 1..].chars().next() else {
                return Err(ParseError::expected(self.pos, "a character after `\\`", ""));
            };
            text.push(escaped);
            self.pos += 1 + escaped.len_utf8();
        }
    }

    /// `stats:count() as total`: upstream takes one expression without quotes, its alias
    /// in the following words. Taken only when `as` and an alias follow, so anything
    /// else still fails where the stats grammar says.
    fn unquoted_stats_alias(&mut self, text: &mut String) {
        let bytes = self.text.as_bytes();
        let skip = |mut at: usize| {
            while bytes.get(at).copied().is_some_and(is_space) {
                at += 1;
            }
            at
        };
        let as_at = skip(self.pos);
        if as_at == self.pos || as_at + 2 > bytes.len() {
            return;
        }
        let is_as = bytes[as_at..as_at + 2].eq_ignore_ascii_case(b"as");
        let alias_at = skip(as_at + 2);
        if !is_as || alias_at == as_at + 2 || alias_at >= bytes.len() {
            return;
        }
        let alias_end = self.word_end(alias_at);
        if self.text[alias_at..alias_end].contains(':') {
            return;
        }
        text.push_str(" as ");
        text.push_str(&self.text[alias_at..alias_end]);
        self.pos = alias_end;
    }

    /// Tokens are whitespace-separated: `a:"x"y` is a mistake, not two tokens.
    fn expect_token_end(&self, expected: &str) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(byte) if is_space(byte) => Ok(()),
            Some(_) => Err(ParseError::expected(
                self.pos,
                expected,
                &self.text[self.pos..self.word_end(self.pos)],
            )),
        }
    }

    /// A quoted string starting at `pos`; leaves `pos` after the closing quote.
    ///
    /// `\"`, `\'` and `\\` are escapes; any other backslash is kept, so that a pattern such
    /// as `C:\temp` survives quoting unchanged.
    fn quoted(&mut self, quote: u8) -> Result<String, ParseError> {
        let open_at = self.pos;
        let unterminated =
            || ParseError::expected(open_at, &format!("a closing `{}`", char::from(quote)), "");
        self.pos += 1;
        let mut text = String::new();
        loop {
            let run = self.text.as_bytes()[self.pos..]
                .iter()
                .position(|&b| b == quote || b == b'\\')
                .ok_or_else(unterminated)?;
            let special = self.pos + run;
            text.push_str(&self.text[self.pos..special]);
            if self.text.as_bytes()[special] == quote {
                self.pos = special + 1;
                return Ok(text);
            }
            match self.text.as_bytes().get(special + 1) {
                None => return Err(unterminated()),
                Some(&escaped @ (b'"' | b'\'' | b'\\')) => {
                    text.push(char::from(escaped));
                    self.pos = special + 2;
                }
                Some(_) => {
                    text.push('\\');
                    self.pos = special + 1;
                }
            }
        }
    }

    /// `(a, "b c", d)` or `[a,b]` starting at `pos`; leaves `pos` after the closing bracket.
    fn list(&mut self, open: u8) -> Result<Vec<Item>, ParseError> {
        let open_at = self.pos;
        let close = if open == b'(' { b')' } else { b']' };
        self.pos += 1;
        self.skip_whitespace();
        let mut items = Vec::new();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.list_item()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_whitespace();
                }
                Some(byte) if byte == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => {
                    return Err(ParseError::expected(
                        open_at,
                        &format!("`{}` to close this list", char::from(close)),
                        "",
                    ))
                }
                Some(_) => {
                    return Err(ParseError::expected(
                        self.pos,
                        &format!("`,` or `{}` in the list", char::from(close)),
                        found_at(self.text, self.pos),
                    ))
                }
            }
        }
    }

    fn list_item(&mut self) -> Result<Item, ParseError> {
        let offset = self.pos;
        if let Some(quote @ (b'"' | b'\'')) = self.peek() {
            let text = self.quoted(quote)?;
            return Ok(Item {
                text,
                offset,
                quoted: true,
            });
        }
        // Spaces inside an item belong to it (`[2025-01-01 00:00:00,...]`, the upstream
        // reference's time form); spaces before `,` or the closing bracket do not.
        let mut end = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b')' | b']') {
                break;
            }
            self.pos += 1;
            if !is_space(b) {
                end = self.pos;
            }
        }
        self.pos = end;
        Ok(Item {
            text: self.text[offset..end].to_owned(),
            offset,
            quoted: false,
        })
    }
}

/// The value of a key that takes a single value; `what` names it for the error.
pub(crate) fn text_value<'t>(token: &'t Token, what: &str) -> Result<&'t str, ParseError> {
    match &token.value {
        Value::Text { text, .. } => Ok(text),
        Value::List { .. } => Err(ParseError::expected(
            token.value_offset,
            what,
            token.raw_value,
        )),
    }
}

/// Byte offset in the query of the first character of a text value's content: quoted
/// values start one byte later. Exact unless escapes precede the point of interest.
pub(crate) fn content_offset(token: &Token) -> usize {
    match token.value {
        Value::Text { quoted: true, .. } => token.value_offset + 1,
        _ => token.value_offset,
    }
}
