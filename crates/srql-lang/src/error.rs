//! The one error type of the SRQL text layer.

use std::fmt::Write as _;

/// Longest excerpt of user text quoted back in a message: a 10 kB token would otherwise
/// make the error bigger than the query and bury the point.
const MAX_SHOWN_CHARS: usize = 48;

/// A query the parser rejected: where, which token, and what was expected there.
///
/// Displays as `at position 12: expected a positive integer after `limit:`, found `abc``.
/// The position is the 0-based byte offset into the query text (the same as the column for
/// ASCII queries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {offset}: {message}")]
pub struct ParseError {
    offset: usize,
    token: String,
    message: String,
}

impl ParseError {
    /// An error whose message is fully written by the caller, for cases that are not
    /// "expected X, found Y" (limits, empty query). Lowercase, no trailing period.
    pub(crate) fn new(offset: usize, token: &str, message: String) -> Self {
        Self {
            offset,
            token: token.to_owned(),
            message,
        }
    }

    /// The one builder of "expected {expected}, found {found}" errors.
    ///
    /// `expected` is written by the parser (identifiers already in backticks); `found` is
    /// usually the user's text (`&str` converts), shown escaped and shortened.
    pub(crate) fn expected<'a>(offset: usize, expected: &str, found: impl Into<Found<'a>>) -> Self {
        let found = found.into();
        let message = format!("expected {expected}, found {}", found.describe());
        Self::new(offset, found.token(), message)
    }

    /// Byte offset of the offending text in the query (0-based).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The offending token text as written (may be empty at the end of the query).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The message without the position, e.g. "expected `asc` or `desc`, found `up`".
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What the parser met instead of what it expected.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found<'a> {
    /// User text. Empty reads "end of query" and blank reads "whitespace", because an empty
    /// pair of backticks explains nothing.
    Text(&'a str),
    /// The end of a quoted value that has its own grammar, e.g. "the end of `stats`".
    EndOf(&'a str),
}

impl<'a> From<&'a str> for Found<'a> {
    fn from(text: &'a str) -> Self {
        Found::Text(text)
    }
}

impl<'a> Found<'a> {
    fn describe(self) -> String {
        match self {
            Found::Text("") => "end of query".to_owned(),
            Found::Text(text) if text.chars().all(char::is_whitespace) => "whitespace".to_owned(),
            Found::Text(text) => format!("`{}`", excerpt(text)),
            Found::EndOf(what) => format!("the end of {what}"),
        }
    }

    fn token(self) -> &'a str {
        match self {
            Found::Text(text) => text,
            Found::EndOf(_) => "",
        }
    }
}

/// `text` made safe to embed in a one-line message: control characters escaped (a raw
/// newline or NUL in an HTTP error body helps nobody) and long text cut on a char boundary.
pub(crate) fn excerpt(text: &str) -> String {
    let mut shown = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_SHOWN_CHARS {
            shown.push('…');
            break;
        }
        if c.is_control() {
            // Writing to a String cannot fail.
            let _ = write!(shown, "{}", c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_names_found_text_in_backticks() {
        let err = ParseError::expected(6, "a positive integer after `limit:`", "abc");
        assert_eq!(
            err.to_string(),
            "at position 6: expected a positive integer after `limit:`, found `abc`"
        );
        assert_eq!(err.offset(), 6);
        assert_eq!(err.token(), "abc");
    }

    #[test]
    fn empty_and_blank_found_are_named() {
        assert!(ParseError::expected(0, "x", "")
            .to_string()
            .ends_with("found end of query"));
        assert!(ParseError::expected(0, "x", " ")
            .to_string()
            .ends_with("found whitespace"));
    }

    #[test]
    fn excerpt_escapes_and_truncates_on_char_boundaries() {
        assert_eq!(excerpt("a\u{0}b\n"), "a\\u{0}b\\n");
        let long = "é".repeat(100);
        let shown = excerpt(&long);
        assert_eq!(shown.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
    }
}
