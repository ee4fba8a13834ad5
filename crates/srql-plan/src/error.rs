use thiserror::Error;

/// Why a query could not be compiled. Every variant is the user's to fix (HTTP 400).
#[derive(Debug, Error, PartialEq)]
pub enum CompileError {
    #[error(transparent)]
    Parse(#[from] srql_lang::ParseError),
    #[error("{0}")]
    Plan(String),
}

pub(crate) fn plan_err(msg: impl Into<String>) -> CompileError {
    CompileError::Plan(msg.into())
}
