//! The soak run as an SVG timeline: requests ended per second (errors among them) above, p50 and p99
//! latency per second below on a log scale, so a stall or a slow drift is visible at a
//! glance. Drawn by hand with the axis and labels of `srql bench`'s plot.

use std::fmt::Write;

use super::results::Second;
use crate::summaries::plot::{ms_label, LogAxis};

const WIDTH: f64 = 780.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 640.0;
/// Top panel: requests per second.
const TOP1: f64 = 50.0;
const BOTTOM1: f64 = 210.0;
/// Bottom panel: latency.
const TOP2: f64 = 260.0;
const BOTTOM2: f64 = 460.0;

const REQUESTS: &str = "#1f77b4";
const ERRORS: &str = "#d62728";
const P50: &str = "#2ca02c";
const P99: &str = "#ff7f0e";

fn x_px(second: f64, seconds: usize) -> f64 {
    LEFT + (second + 0.5) / seconds.max(1) as f64 * (RIGHT - LEFT)
}

/// A round upper bound for the requests axis: 1, 2 or 5 times a power of ten.
fn nice_ceiling(v: f64) -> f64 {
    let v = v.max(1.0);
    let decade = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * decade)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * decade)
}

/// A line through `points`, broken where a point is missing (a second in which no
/// request ended has no latency: bridging it would draw figures nobody measured). A point
/// standing alone gets a dot.
fn polyline(svg: &mut String, points: &[Option<(f64, f64)>], color: &str) {
    for run in points.split(|p| p.is_none()).filter(|r| !r.is_empty()) {
        let coords: Vec<String> = run
            .iter()
            .flatten()
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect();
        if let [Some((a, b))] = run {
            let _ = writeln!(
                svg,
                r#"<circle cx="{a:.1}" cy="{b:.1}" r="2.5" fill="{color}"/>"#
            );
        } else {
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                coords.join(" ")
            );
        }
    }
}

/// A legend entry: a line sample, or a box for what is drawn as bars.
fn legend(svg: &mut String, y: f64, color: &str, text: &str, bar: bool) {
    let lx = RIGHT + 16.0;
    if bar {
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{:.1}" width="20" height="10" fill="{color}" fill-opacity="0.6"/>"#,
            y - 5.0
        );
    } else {
        let _ = write!(
            svg,
            r#"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2.5"/>"#,
            lx + 20.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{:.1}">{text}</text>"#,
        lx + 26.0,
        y + 4.0
    );
}

pub fn timeline_svg(seconds: &[Second], clients: usize) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>
<text x="{:.1}" y="28" text-anchor="middle" font-size="15">Soak: {clients} query clients with OTLP ingest, per second</text>
"#,
        (LEFT + RIGHT) / 2.0
    );
    let n = seconds.len();
    // Requests panel.
    let max_requests = nice_ceiling(seconds.iter().map(|s| s.requests).max().unwrap_or(0) as f64);
    let ry = |v: f64| BOTTOM1 - v / max_requests * (BOTTOM1 - TOP1);
    for i in 0..=4 {
        let v = max_requests * f64::from(i) / 4.0;
        let py = ry(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            LEFT - 8.0,
            py + 4.0
        );
    }
    let bar_w = ((RIGHT - LEFT) / n.max(1) as f64 * 0.8).max(1.0);
    for s in seconds.iter().filter(|s| s.errors > 0) {
        let x = x_px(s.second as f64, n) - bar_w / 2.0;
        let top = ry(s.errors as f64);
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{top:.1}" width="{bar_w:.1}" height="{:.1}" fill="{ERRORS}" fill-opacity="0.6"/>"#,
            BOTTOM1 - top
        );
    }
    let requests: Vec<Option<(f64, f64)>> = seconds
        .iter()
        .map(|s| Some((x_px(s.second as f64, n), ry(s.requests as f64))))
        .collect();
    polyline(&mut svg, &requests, REQUESTS);
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP1}" width="{}" height="{}" fill="none" stroke="#333"/><text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" fill="#555">requests per second</text>"##,
        RIGHT - LEFT,
        BOTTOM1 - TOP1,
        (TOP1 + BOTTOM1) / 2.0
    );
    legend(&mut svg, TOP1 + 10.0, REQUESTS, "requests", false);
    legend(&mut svg, TOP1 + 30.0, ERRORS, "errors", true);

    // Latency panel, log scale.
    let values: Vec<f64> = seconds
        .iter()
        .flat_map(|s| [s.p50_ms, s.p99_ms])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    let (lo_decade, mut hi_decade) = if values.is_empty() {
        (0, 1)
    } else {
        (lo.log10().floor() as i32, hi.log10().ceil() as i32)
    };
    if hi_decade <= lo_decade {
        hi_decade = lo_decade + 1;
    }
    let y = LogAxis {
        lo: f64::from(lo_decade),
        hi: f64::from(hi_decade),
        from_px: BOTTOM2,
        to_px: TOP2,
    };
    for d in lo_decade..=hi_decade {
        let py = y.px(10f64.powi(d));
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{RIGHT}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 8.0,
            py + 4.0,
            ms_label(d)
        );
    }
    for (pick, color) in [
        (
            &(|s: &Second| s.p50_ms) as &dyn Fn(&Second) -> Option<f64>,
            P50,
        ),
        (&|s: &Second| s.p99_ms, P99),
    ] {
        let points: Vec<Option<(f64, f64)>> = seconds
            .iter()
            .map(|s| {
                pick(s)
                    .filter(|v| *v > 0.0)
                    .map(|v| (x_px(s.second as f64, n), y.px(v)))
            })
            .collect();
        polyline(&mut svg, &points, color);
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP2}" width="{}" height="{}" fill="none" stroke="#333"/><text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" fill="#555">latency (log scale)</text>"##,
        RIGHT - LEFT,
        BOTTOM2 - TOP2,
        (TOP2 + BOTTOM2) / 2.0
    );
    legend(&mut svg, TOP2 + 10.0, P50, "p50", false);
    legend(&mut svg, TOP2 + 30.0, P99, "p99", false);

    // Time axis, under the latency panel.
    let step = if n > 30 { 10 } else { 5 };
    for t in (0..=n).step_by(step) {
        let px = LEFT + t as f64 / n.max(1) as f64 * (RIGHT - LEFT);
        let _ = writeln!(
            svg,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{t} s</text>"#,
            BOTTOM2 + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">time into the run</text>"##,
        (LEFT + RIGHT) / 2.0,
        BOTTOM2 + 40.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(500.0), 500.0);
    }

    #[test]
    fn draws_a_document_with_or_without_answers() {
        let seconds = [
            Second {
                second: 0,
                requests: 40,
                errors: 2,
                p50_ms: Some(3.0),
                p99_ms: Some(40.0),
            },
            Second {
                second: 1,
                requests: 0,
                errors: 0,
                p50_ms: None,
                p99_ms: None,
            },
        ];
        let svg = timeline_svg(&seconds, 64);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1, "requests");
        assert_eq!(
            svg.matches("<circle").count(),
            2,
            "p50 and p99 of the one second with answers, not bridged to nothing"
        );
        let empty = timeline_svg(&[], 64);
        assert!(empty.trim_end().ends_with("</svg>"));
    }
}
