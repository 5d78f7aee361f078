//! A line chart drawn on the server as SVG: readable without script, and held
//! to the page's strict Content-Security-Policy (presentation attributes, no
//! inline style).

use std::fmt::Write;

/// One line: its name, colour and one value per point.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub values: &'a [i64],
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 30.0;

/// The chart, `labels[i]` under point `i` where not empty. Series, labels
/// and names are ours (never an operator's input), and are escaped anyway.
pub fn lines(title: &str, series: &[Series], labels: &[String]) -> String {
    let points = series.iter().map(|s| s.values.len()).max().unwrap_or(0).max(2);
    let top_value = series.iter().flat_map(|s| s.values.iter().copied()).max().unwrap_or(0).max(1);
    let scale = nice_ceiling(top_value);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * i as f64 / (points - 1) as f64;
    let y = |v: i64| TOP + plot_h * (1.0 - v as f64 / scale as f64);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(title)
    );
    for step in 0..=4 {
        let value = scale * step / 4;
        let yy = y(value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e3e7ee"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#5b6678">{value}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for (i, label) in labels.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle" fill="#5b6678">{}</text>"##,
            x(i),
            HEIGHT - 10.0,
            escape(label)
        );
    }
    for s in series {
        let path: Vec<String> = s.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            escape(s.colour),
            path.join(" "),
            escape(s.name)
        );
    }
    let mut legend_x = LEFT;
    for s in series {
        let _ = write!(
            svg,
            r##"<rect x="{legend_x}" y="8" width="12" height="12" fill="{}"/><text x="{}" y="18" font-size="12" fill="#1d2430">{} ({})</text>"##,
            escape(s.colour),
            legend_x + 16.0,
            escape(s.name),
            s.values.iter().sum::<i64>()
        );
        legend_x += 190.0;
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest 1, 2, 4 or 5 × 10ⁿ at or above `v` that four grid lines divide
/// into whole numbers (at least 4).
fn nice_ceiling(v: i64) -> i64 {
    let mut magnitude = 1;
    loop {
        for step in [1, 2, 4, 5] {
            let candidate = step * magnitude;
            if candidate >= v && candidate % 4 == 0 {
                return candidate;
            }
        }
        magnitude *= 10;
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_to_readable_numbers() {
        assert_eq!(nice_ceiling(1), 4);
        assert_eq!(nice_ceiling(7), 20);
        assert_eq!(nice_ceiling(130), 200);
        assert_eq!(nice_ceiling(4001), 5000);
    }

    #[test]
    fn every_series_is_drawn_and_named_with_its_total() {
        let a = [0, 3, 5];
        let b = [1, 1, 1];
        let svg = lines(
            "t<",
            &[
                Series { name: "accepted", colour: "#111", values: &a },
                Series { name: "issued", colour: "#222", values: &b },
            ],
            &["-2m".into(), String::new(), "now".into()],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("accepted (8)") && svg.contains("issued (3)") && svg.contains(">now<"), "{svg}");
        assert!(svg.contains("aria-label=\"t&lt;\""));
    }
}
