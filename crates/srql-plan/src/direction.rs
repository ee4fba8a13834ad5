//! Which way a page goes from its cursor: its own module because cursors, errors and
//! plans all name it, and none of them should import another for it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Next,
    Prev,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Next => "next",
            Direction::Prev => "prev",
        }
    }
}
