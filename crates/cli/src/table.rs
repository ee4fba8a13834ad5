//! Rows as a plain-text table for the terminal.

use serde_json::Value;

/// Widest a cell is printed before being cut, so wide JSON does not wreck the layout.
const MAX_CELL: usize = 36;

pub fn render(rows: &[Value]) -> String {
    let Some(Value::Object(first)) = rows.first() else {
        return "(no rows)\n".to_string();
    };
    let headers: Vec<&str> = first.keys().map(String::as_str).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| headers.iter().map(|h| cell(r.get(*h))).collect())
        .collect();
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<&str>| {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    out.push_str(&line(headers.clone()));
    out.push('\n');
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    out.push('\n');
    for r in &cells {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out.push_str(&format!(
        "({} row{})\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    out
}

fn cell(v: Option<&Value>) -> String {
    let s = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    let s = s.replace(['\n', '\t'], " ");
    if s.chars().count() > MAX_CELL {
        let cut: String = s.chars().take(MAX_CELL - 1).collect();
        format!("{cut}…")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_columns_and_cuts_long_cells() {
        let rows = vec![
            json!({"trace_id": "abc", "span_count": 3, "service_set": ["a", "b"]}),
            json!({"trace_id": "x".repeat(50), "span_count": 12, "service_set": []}),
        ];
        let out = render(&rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0].find("span_count"), lines[2].find('3'));
        assert!(lines[3].contains('…'), "{out}");
        assert!(lines[2].contains("a,b"));
        assert_eq!(lines.last(), Some(&"(2 rows)"));
    }

    #[test]
    fn says_when_there_are_no_rows() {
        assert_eq!(render(&[]), "(no rows)\n");
    }
}
