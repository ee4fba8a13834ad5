//! First-page latency against scale as an SVG chart, written by hand: a few lines and
//! boxes do not justify a plotting dependency.
//!
//! Both axes are logarithmic (scale points are decades of spans; latencies span from
//! sub-millisecond to seconds). Per path: a line for the last-24-hours query and a band
//! from the fastest to the slowest first-page query, all at p50.

use std::fmt::Write;

use super::api::Path;
use super::queries::LAST_24H;
use super::results::ScaleResult;

const WIDTH: f64 = 780.0;
const HEIGHT: f64 = 450.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 540.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 370.0;

/// One scale point of one path: x is spans, values are p50 milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    spans: f64,
    last_24h: Option<f64>,
    lo: f64,
    hi: f64,
}

fn points(scales: &[ScaleResult], path: Path) -> Vec<Point> {
    scales
        .iter()
        .filter_map(|s| {
            let p50s: Vec<f64> = s
                .queries
                .iter()
                .filter(|q| q.page == 1)
                .filter_map(|q| q.path(path).latency().map(|l| l.p50_ms))
                .filter(|v| *v > 0.0)
                .collect();
            let lo = p50s.iter().copied().reduce(f64::min)?;
            let hi = p50s.iter().copied().reduce(f64::max)?;
            let last_24h = s
                .queries
                .iter()
                .find(|q| q.name == LAST_24H)
                .and_then(|q| q.path(path).latency())
                .map(|l| l.p50_ms)
                .filter(|v| *v > 0.0);
            Some(Point {
                spans: s.target_spans as f64,
                last_24h,
                lo,
                hi,
            })
        })
        .collect()
}

/// Maps a value onto a pixel range on a log10 scale spanning `[lo, hi]` (in log10 units).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogAxis {
    pub lo: f64,
    pub hi: f64,
    pub from_px: f64,
    pub to_px: f64,
}

impl LogAxis {
    pub fn px(&self, v: f64) -> f64 {
        let t = (v.log10() - self.lo) / (self.hi - self.lo);
        self.from_px + t * (self.to_px - self.from_px)
    }
}

fn color(path: Path) -> &'static str {
    match path {
        Path::Summaries => "#1f77b4",
        Path::OnTheFly => "#d62728",
    }
}

pub(crate) fn ms_label(decade: i32) -> String {
    let ms = 10f64.powi(decade);
    if ms >= 1000.0 {
        format!("{} s", ms / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

fn scale_label(spans: f64) -> String {
    if spans >= 1e6 {
        format!("{}M spans", spans / 1e6)
    } else {
        format!("{}k spans", spans / 1e3)
    }
}

pub fn latency_svg(scales: &[ScaleResult]) -> String {
    let series: Vec<(Path, Vec<Point>)> =
        Path::ALL.iter().map(|&p| (p, points(scales, p))).collect();
    let all: Vec<&Point> = series.iter().flat_map(|(_, ps)| ps).collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>
<text x="{}" y="28" text-anchor="middle" font-size="15">First-page latency through the HTTP API (p50, log scale)</text>
"#,
        (LEFT + RIGHT) / 2.0
    );
    if all.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no measurements</text>
</svg>
"#,
            (LEFT + RIGHT) / 2.0,
            (TOP + BOTTOM) / 2.0
        );
        return svg;
    }
    let min_x = all.iter().map(|p| p.spans.log10()).fold(f64::MAX, f64::min);
    let max_x = all.iter().map(|p| p.spans.log10()).fold(f64::MIN, f64::max);
    let x = LogAxis {
        lo: min_x - 0.5,
        hi: max_x + 0.5,
        from_px: LEFT,
        to_px: RIGHT,
    };
    let min_ms = all.iter().map(|p| p.lo).fold(f64::MAX, f64::min);
    let max_ms = all.iter().map(|p| p.hi).fold(f64::MIN, f64::max);
    let (lo_decade, mut hi_decade) = (min_ms.log10().floor() as i32, max_ms.log10().ceil() as i32);
    if hi_decade <= lo_decade {
        hi_decade = lo_decade + 1;
    }
    let y = LogAxis {
        lo: f64::from(lo_decade),
        hi: f64::from(hi_decade),
        from_px: BOTTOM,
        to_px: TOP,
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
    let mut spans_seen: Vec<f64> = all.iter().map(|p| p.spans).collect();
    spans_seen.sort_by(f64::total_cmp);
    spans_seen.dedup();
    for s in spans_seen {
        let px = x.px(s);
        let name = scales
            .iter()
            .find(|r| r.target_spans as f64 == s)
            .map_or("", |r| r.scale.as_str());
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{BOTTOM}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{name}</text><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            BOTTOM + 18.0,
            BOTTOM + 33.0,
            scale_label(s)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">scale point (spans over 7 days)</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle" fill="#555">p50 per request</text>"##,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 55.0,
        (TOP + BOTTOM) / 2.0
    );

    let mut legend_y = TOP + 10.0;
    for (path, ps) in &series {
        if ps.is_empty() {
            continue;
        }
        let c = color(*path);
        let upper = ps.iter().map(|p| (x.px(p.spans), y.px(p.hi)));
        let lower = ps.iter().rev().map(|p| (x.px(p.spans), y.px(p.lo)));
        let band: Vec<String> = upper
            .chain(lower)
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polygon points="{}" fill="{c}" fill-opacity="0.15" stroke="{c}" stroke-opacity="0.4"/>"#,
            band.join(" ")
        );
        let line: Vec<(f64, f64)> = ps
            .iter()
            .filter_map(|p| p.last_24h.map(|v| (x.px(p.spans), y.px(v))))
            .collect();
        let coords: Vec<String> = line.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2.5"/>"#,
            coords.join(" ")
        );
        for (a, b) in &line {
            let _ = writeln!(svg, r#"<circle cx="{a:.1}" cy="{b:.1}" r="4" fill="{c}"/>"#);
        }
        let lx = RIGHT + 20.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{c}" stroke-width="2.5"/><text x="{}" y="{:.1}">{}: last 24 h</text>"#,
            lx + 24.0,
            lx + 32.0,
            legend_y + 4.0,
            path.label()
        );
        legend_y += 20.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{:.1}" width="24" height="10" fill="{c}" fill-opacity="0.15" stroke="{c}" stroke-opacity="0.4"/><text x="{}" y="{:.1}">{}: fastest to slowest</text><text x="{}" y="{:.1}">first-page query</text>"#,
            legend_y - 5.0,
            lx + 32.0,
            legend_y + 4.0,
            path.label(),
            lx + 32.0,
            legend_y + 18.0,
        );
        legend_y += 44.0;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_puts_decades_at_equal_steps() {
        let y = LogAxis {
            lo: -1.0,
            hi: 2.0,
            from_px: 300.0,
            to_px: 0.0,
        };
        assert!((y.px(0.1) - 300.0).abs() < 1e-9);
        assert!((y.px(1.0) - 200.0).abs() < 1e-9);
        assert!((y.px(10.0) - 100.0).abs() < 1e-9);
        assert!((y.px(100.0) - 0.0).abs() < 1e-9);
        assert!(y.px(5.0) < y.px(2.0), "larger values sit higher");
    }

    #[test]
    fn labels() {
        assert_eq!(ms_label(-1), "0.1 ms");
        assert_eq!(ms_label(0), "1 ms");
        assert_eq!(ms_label(4), "10 s");
        assert_eq!(scale_label(1e5), "100k spans");
        assert_eq!(scale_label(1e7), "10M spans");
    }

    #[test]
    fn empty_results_still_make_a_document() {
        let svg = latency_svg(&[]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("no measurements"));
    }
}
