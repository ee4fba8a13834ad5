//! Optional bearer-token authentication for both receivers.
//!
//! Clients send `authorization: Bearer <token>`, which is what OpenTelemetry exporters
//! send with `OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>` and what the
//! Collector's bearertokenauth extension sends. That is the only form accepted: one
//! header to configure, the same on gRPC and HTTP. The check reads the request's headers
//! only, so it runs before any body is read or decoded.

use std::fmt;
use std::sync::Arc;

/// The expected token. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Why a request was refused; the message tells the client what to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("authentication required: send the header `authorization: Bearer <token>`")]
    Missing,
    #[error("the authorization header must be `Bearer <token>`")]
    NotBearer,
    #[error("invalid bearer token")]
    Wrong,
}

impl Token {
    /// `None` for an empty token: an empty secret would admit anyone who sends
    /// `Bearer ` and is surely a configuration mistake, so it means "no auth".
    pub fn new(token: &str) -> Option<Token> {
        let t = token.trim();
        (!t.is_empty()).then(|| Token(t.as_bytes().into()))
    }

    /// Checks the value of the `authorization` header (`None` when absent).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Refusal> {
        let value = authorization.ok_or(Refusal::Missing)?;
        let value = value.trim_ascii();
        let (scheme, credentials) = match value.iter().position(|&b| b == b' ') {
            Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
            None => return Err(Refusal::NotBearer),
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return Err(Refusal::NotBearer);
        }
        if constant_time_eq(credentials, &self.0) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

/// Equality whose time depends on the lengths only, not on where the first difference
/// is, so timing does not reveal the token byte by byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let t = Token::new("s3cret").expect("token");
        assert_eq!(t.check(Some(b"Bearer s3cret")), Ok(()));
        assert_eq!(t.check(Some(b"bearer  s3cret ")), Ok(()));
        assert_eq!(t.check(None), Err(Refusal::Missing));
        assert_eq!(t.check(Some(b"s3cret")), Err(Refusal::NotBearer));
        assert_eq!(t.check(Some(b"Basic s3cret")), Err(Refusal::NotBearer));
        assert_eq!(t.check(Some(b"Bearer ")), Err(Refusal::NotBearer));
        for wrong in [&b"Bearer s3cre"[..], b"Bearer s3cret2", b"Bearer S3CRET"] {
            assert_eq!(t.check(Some(wrong)), Err(Refusal::Wrong), "{wrong:?}");
        }
    }

    #[test]
    fn an_empty_token_means_no_authentication() {
        assert!(Token::new("").is_none());
        assert!(Token::new("  ").is_none());
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let t = Token::new("s3cret").expect("token");
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
