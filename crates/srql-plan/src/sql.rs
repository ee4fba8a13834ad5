//! SQL text plus bind values. Every user value goes through [`SqlBuilder::bind`]; the text
//! only ever contains identifiers and fragments from this crate's allow-lists.

use chrono::{DateTime, Utc};
use serde::Serialize;
use srql_lang::CompareOp;

/// A value bound to a `$n` placeholder. The variant fixes the PostgreSQL type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Param {
    Text(String),
    TextArray(Vec<String>),
    Int4(i32),
    Int4Array(Vec<i32>),
    Int8(i64),
    Int8Array(Vec<i64>),
    Float8(f64),
    Float8Array(Vec<f64>),
    Timestamptz(DateTime<Utc>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlQuery {
    pub sql: String,
    pub params: Vec<Param>,
}

#[derive(Debug, Default)]
pub struct SqlBuilder {
    params: Vec<Param>,
}

impl SqlBuilder {
    /// Adds a bind value and returns its placeholder.
    pub fn bind(&mut self, p: Param) -> String {
        // The same value bound twice gets one placeholder, keeping the SQL readable.
        if let Some(i) = self.params.iter().position(|q| q == &p) {
            return format!("${}", i + 1);
        }
        self.params.push(p);
        format!("${}", self.params.len())
    }

    pub fn finish(self, sql: String) -> SqlQuery {
        SqlQuery {
            sql,
            params: self.params,
        }
    }
}

/// The SQL operator of a comparison.
pub fn op_sql(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
    }
}
