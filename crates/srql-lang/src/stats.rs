//! `stats:"EXPR as alias, ... [by FIELD[, FIELD]]"`.
//!
//! The grammar is closed (`count()` and `sum(if(FIELD OP VALUE, 1, 0))`, then optional
//! group keys), so a fixed sequence of expectations parses it: no recursion, and every
//! error names the exact piece that was expected next.

use crate::ast::{CompareOp, GroupKey, StatExpr, StatFunc, Stats};
use crate::error::{Found, ParseError};
use crate::lexer::{content_offset, is_field_name, text_value, Token};
use crate::limits::Limits;

const EXPRESSION_FORMS: &str =
    "a stats expression such as `count() as total` or `sum(if(status_code != 1, 1, 0)) as errors`";

/// Most `by` keys: two already answer "operations per service"; more would make groups as
/// many as rows.
const MAX_GROUP_KEYS: usize = 2;

/// Parses one `stats:` token and appends its expressions and keys to `stats`, which may
/// already hold those of earlier `stats:` tokens: aliases must be unique across all of
/// them, and only one token may say `by`.
pub(crate) fn parse_into(
    token: &Token,
    stats: &mut Stats,
    limits: &Limits,
) -> Result<(), ParseError> {
    let source = text_value(token, EXPRESSION_FORMS)?;
    if source.trim().is_empty() {
        return Err(ParseError::expected(
            token.value_offset,
            EXPRESSION_FORMS,
            token.raw_value,
        ));
    }
    let mut cursor = Cursor {
        source,
        pos: 0,
        base: content_offset(token),
    };
    loop {
        cursor.skip_whitespace();
        let expr_offset = cursor.offset();
        let expr = cursor.expression()?;
        check_alias_is_new(&stats.exprs, &expr, cursor.offset())?;
        if stats.exprs.len() >= limits.max_stats {
            return Err(ParseError::new(
                expr_offset,
                token.raw_value,
                format!(
                    "`stats` has more expressions than the limit of {}",
                    limits.max_stats
                ),
            ));
        }
        stats.exprs.push(expr);
        match cursor.after_expression()? {
            Next::Expression => {}
            Next::End => return Ok(()),
            Next::GroupKeys { offset } => {
                if !stats.by.is_empty() {
                    return Err(ParseError::new(
                        offset,
                        token.raw_value,
                        "`by` may appear in only one `stats:` of a query".to_string(),
                    ));
                }
                return cursor.group_keys(&mut stats.by);
            }
        }
    }
}

/// What follows an expression.
enum Next {
    Expression,
    End,
    /// `by`, at `offset`.
    GroupKeys {
        offset: usize,
    },
}

fn check_alias_is_new(exprs: &[StatExpr], expr: &StatExpr, end: usize) -> Result<(), ParseError> {
    if exprs.iter().any(|e| e.alias == expr.alias) {
        let offset = end.saturating_sub(expr.alias.len());
        return Err(ParseError::expected(
            offset,
            "an alias not used before in `stats`",
            expr.alias.as_str(),
        ));
    }
    Ok(())
}

/// A position in the (unescaped) stats text. `base` turns positions into query offsets;
/// exact unless the quoted value had escapes before the position.
struct Cursor<'s> {
    source: &'s str,
    pos: usize,
    base: usize,
}

impl<'s> Cursor<'s> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn rest(&self) -> &'s str {
        &self.source[self.pos..]
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// An error at the current position naming the next word (or the end of the value).
    fn expected(&self, expected: &str) -> ParseError {
        let rest = self.rest();
        if rest.is_empty() {
            return ParseError::expected(self.offset(), expected, Found::EndOf("`stats`"));
        }
        ParseError::expected(self.offset(), expected, next_token(rest))
    }

    fn expression(&mut self) -> Result<StatExpr, ParseError> {
        let func = self.function()?;
        self.keyword("as")?;
        let alias = self.alias()?;
        Ok(StatExpr { func, alias })
    }

    fn function(&mut self) -> Result<StatFunc, ParseError> {
        self.skip_whitespace();
        let name = self.take_word();
        match name.to_ascii_lowercase().as_str() {
            "count" => {
                self.symbol("(")?;
                self.symbol(")")?;
                Ok(StatFunc::Count)
            }
            "sum" => self.count_if(),
            _ => {
                self.pos -= name.len();
                Err(self.expected(EXPRESSION_FORMS))
            }
        }
    }

    /// After `sum`: `(if(FIELD OP VALUE, 1, 0))`.
    fn count_if(&mut self) -> Result<StatFunc, ParseError> {
        self.symbol("(")?;
        self.keyword("if")?;
        self.symbol("(")?;
        let field = self.field()?;
        let op = self.operator()?;
        let value = self.operand()?;
        for piece in [",", "1", ",", "0", ")", ")"] {
            self.symbol(piece)?;
        }
        Ok(StatFunc::CountIf { field, op, value })
    }

    /// A run of identifier characters (possibly empty), moved over.
    fn take_word(&mut self) -> &'s str {
        let rest = self.rest();
        let len = rest
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'.'))
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn symbol(&mut self, symbol: &str) -> Result<(), ParseError> {
        self.skip_whitespace();
        // `1` must not match the start of `10`.
        let numeric = symbol.bytes().all(|b| b.is_ascii_digit());
        let rest = self.rest();
        let matched = rest.starts_with(symbol)
            && !(numeric && rest[symbol.len()..].starts_with(|c: char| c.is_ascii_digit()));
        if !matched {
            return Err(self.expected(&format!("`{symbol}`")));
        }
        self.pos += symbol.len();
        Ok(())
    }

    /// A case-insensitive word that must stand alone (`as`, not the start of `ask`).
    fn keyword(&mut self, keyword: &str) -> Result<(), ParseError> {
        self.skip_whitespace();
        let start = self.pos;
        let word = self.take_word();
        if !word.eq_ignore_ascii_case(keyword) {
            self.pos = start;
            return Err(self.expected(&format!("`{keyword}`")));
        }
        Ok(())
    }

    fn field(&mut self) -> Result<String, ParseError> {
        self.skip_whitespace();
        let start = self.pos;
        let word = self.take_word();
        if !is_field_name(word) {
            self.pos = start;
            return Err(self.expected("a field name"));
        }
        Ok(word.to_ascii_lowercase())
    }

    fn operator(&mut self) -> Result<CompareOp, ParseError> {
        const OPERATORS: [(&str, CompareOp); 6] = [
            ("!=", CompareOp::Ne),
            (">=", CompareOp::Ge),
            ("<=", CompareOp::Le),
            ("=", CompareOp::Eq),
            (">", CompareOp::Gt),
            ("<", CompareOp::Lt),
        ];
        self.skip_whitespace();
        let rest = self.rest();
        let Some((symbol, op)) = OPERATORS.iter().find(|(s, _)| rest.starts_with(s)) else {
            return Err(self.expected("one of `=`, `!=`, `>`, `>=`, `<`, `<=`"));
        };
        self.pos += symbol.len();
        Ok(*op)
    }

    /// The value compared with: a number or word (kept as text for the planner to type),
    /// or a string in single or double quotes.
    fn operand(&mut self) -> Result<String, ParseError> {
        self.skip_whitespace();
        let rest = self.rest();
        if let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let Some(len) = rest[1..].find(quote) else {
                return Err(ParseError::expected(
                    self.offset(),
                    &format!("a closing `{quote}`"),
                    Found::EndOf("`stats`"),
                ));
            };
            self.pos += len + 2;
            return Ok(rest[1..=len].to_owned());
        }
        let len = rest
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+')))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.expected("a value to compare with"));
        }
        self.pos += len;
        Ok(rest[..len].to_owned())
    }

    /// `[a-z0-9_]+`: aliases become JSON keys, so they are not silently lowercased.
    fn alias(&mut self) -> Result<String, ParseError> {
        const EXPECTED: &str = "an alias of lowercase letters, digits and `_`";
        self.skip_whitespace();
        let rest = self.rest();
        let word = rest
            .find(|c: char| c.is_whitespace() || c == ',')
            .map_or(rest, |end| &rest[..end]);
        let valid = !word.is_empty()
            && word
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if word.is_empty() {
            return Err(self.expected(EXPECTED));
        }
        if !valid {
            // The whole would-be alias, not just its first identifier run.
            return Err(ParseError::expected(self.offset(), EXPECTED, word));
        }
        self.pos += word.len();
        Ok(word.to_owned())
    }

    /// After an expression: a `,` (another expression follows), the end of the value, or
    /// `by` and the group keys.
    fn after_expression(&mut self) -> Result<Next, ParseError> {
        self.skip_whitespace();
        if self.rest().is_empty() {
            return Ok(Next::End);
        }
        if self.rest().starts_with(',') {
            self.pos += 1;
            return Ok(Next::Expression);
        }
        let offset = self.offset();
        if self.keyword("by").is_ok() {
            return Ok(Next::GroupKeys { offset });
        }
        Err(self.expected("`,` between stats expressions, or `by`"))
    }

    /// After `by`: one or two field names separated by `,`, up to the end of the value.
    /// The planner checks them against the entity's fields.
    fn group_keys(&mut self, keys: &mut Vec<GroupKey>) -> Result<(), ParseError> {
        loop {
            self.skip_whitespace();
            let offset = self.offset();
            let field = self.field()?;
            if keys.iter().any(|k| k.field == field) {
                return Err(ParseError::expected(
                    offset,
                    "a field not already grouped by",
                    field.as_str(),
                ));
            }
            if keys.len() >= MAX_GROUP_KEYS {
                return Err(ParseError::new(
                    offset,
                    &field,
                    format!("`stats` groups by at most {MAX_GROUP_KEYS} fields, found a third: `{field}`"),
                ));
            }
            keys.push(GroupKey { field, offset });
            self.skip_whitespace();
            if self.rest().is_empty() {
                return Ok(());
            }
            if !self.rest().starts_with(',') {
                return Err(self.expected("`,` between `by` fields"));
            }
            self.pos += 1;
        }
    }
}

/// The next token for an error message: an identifier or number run, else one character.
fn next_token(rest: &str) -> &str {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.';
    let word_len = rest.bytes().position(|b| !is_word(b)).unwrap_or(rest.len());
    let len = match word_len {
        0 => rest.chars().next().map_or(0, char::len_utf8),
        n => n,
    };
    &rest[..len]
}

#[cfg(test)]
mod tests {
    use super::next_token;

    #[test]
    fn next_token_is_a_word_or_one_char() {
        assert_eq!(next_token("total, x"), "total");
        assert_eq!(next_token("5))"), "5");
        assert_eq!(next_token(",x"), ",");
        assert_eq!(next_token("é x"), "é");
        assert_eq!(next_token(""), "");
    }
}
