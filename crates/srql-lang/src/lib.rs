//! SRQL, the query language: text -> typed [`Query`].
//!
//! Architecture invariant: this crate does no I/O and knows no schema; it depends on neither
//! tokio, nor the database driver, nor the HTTP stack.

mod ast;
mod error;
mod lexer;
mod limits;
mod parser;
mod span_condition;
mod stats;
mod time;

pub use ast::*;
pub use error::ParseError;
pub use limits::Limits;
pub use parser::{parse, IGNORED_KEYS};
