//! How figures are written in the benchmark's tables: one place, used by the report
//! and the target checks.

pub fn fmt_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

pub fn fmt_secs(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{} min {:02.0} s", (secs / 60.0).floor(), secs % 60.0)
    }
}
