//! SRQL, the query language: text -> typed [`Query`].
//!
//! Architecture invariant: this crate does no I/O and knows no schema; it depends on neither
//! tokio, nor the database driver, nor the HTTP stack.

mod ast;
mod error;
mod lexer;
mod parser;
mod stats;
mod time;

pub use ast::*;
pub use error::ParseError;
pub use parser::{parse, Limits, IGNORED_KEYS};
