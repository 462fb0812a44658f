//! Outcome charts as SVG, drawn on the server by our own code: one measure
//! over sessions with its severity bands, the caseness line, the
//! reliable-change band around the intake score, the expected-recovery curve
//! and its boundary when one has been fitted (labelled with its n), and risk
//! markers. Every chart comes with a text alternative for screen readers.
//! No scripts, no external references, all text escaped.

use std::fmt::Write as _;
use tapestry_domain::instrument::InstrumentDef;
use tapestry_domain::trajectory::ExpectedRecoveryCurve;

/// One administration of the measure.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    /// Session number (1 = intake).
    pub session: u32,
    /// The total; `None` when the response was incomplete.
    pub total: Option<f64>,
    /// A risk signal was raised by this response (e.g. PHQ-9 item 9 > 0).
    pub risk: bool,
}

/// What to draw.
pub struct ChartSpec<'a> {
    pub def: &'a InstrumentDef,
    pub points: &'a [ChartPoint],
    pub expected: Option<&'a ExpectedRecoveryCurve>,
    /// A unique id for the SVG's title/desc elements within the page.
    pub dom_id: &'a str,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

/// Escapes text for SVG/HTML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Band fills, from least to most severe: light, high-contrast-safe tints.
const BAND_FILLS: [&str; 6] = [
    "#eef6f0", "#f6f3e4", "#fbeedd", "#f9e2d6", "#f4d5d5", "#efc9cf",
];

struct Scale {
    min: f64,
    max: f64,
    sessions: u32,
}

impl Scale {
    fn x(&self, session: f64) -> f64 {
        let span = f64::from(self.sessions.max(2) - 1);
        LEFT + (session - 1.0).clamp(0.0, span) / span * (WIDTH - LEFT - RIGHT)
    }
    fn y(&self, value: f64) -> f64 {
        let span = (self.max - self.min).max(1.0);
        let v = value.clamp(self.min, self.max);
        TOP + (self.max - v) / span * (HEIGHT - TOP - BOTTOM)
    }
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

/// The SVG for one measure.
pub fn render(spec: &ChartSpec<'_>) -> String {
    let def = spec.def;
    let min = f64::from(def.scoring.min);
    let max = f64::from(def.scoring.max);
    let last_session = spec
        .points
        .iter()
        .map(|p| p.session)
        .max()
        .unwrap_or(1)
        .max(2);
    let scale = Scale {
        min,
        max,
        sessions: last_session,
    };
    let id = escape(spec.dom_id);
    let title = escape(&def.title);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" focusable="false">"#
    );
    let _ = write!(
        svg,
        r#"<title id="{id}-title">{title} over sessions</title>"#
    );
    let _ = write!(
        svg,
        r#"<desc id="{id}-desc">{}</desc>"#,
        escape(&text_alternative(spec))
    );

    // Severity bands.
    for (i, band) in def.bands.iter().enumerate() {
        let top = scale.y(f64::from(band.max) + 0.5_f64.min(max - f64::from(band.max)));
        let bottom =
            scale.y(f64::from(band.min) - if band.min > def.scoring.min { 0.5 } else { 0.0 });
        let fill = BAND_FILLS.get(i).copied().unwrap_or("#eeeeee");
        let _ = write!(
            svg,
            r##"<rect class="band" x="{LEFT}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/><text class="band-label" x="{:.1}" y="{:.1}" font-size="10" fill="#4f5b6b" text-anchor="end">{}</text>"##,
            WIDTH - LEFT - RIGHT,
            (bottom - top).max(0.0),
            WIDTH - RIGHT - 4.0,
            top + 11.0,
            escape(&band.label.replace('_', " "))
        );
    }

    // Axes and ticks.
    let _ = write!(
        svg,
        r##"<g class="axes" stroke="#8a94a3" stroke-width="1"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/></g>"##,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM
    );
    let step = if max - min > 40.0 { 10.0 } else { 5.0 };
    let mut tick = (min / step).ceil() * step;
    while tick <= max {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#1d2430" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            scale.y(tick) + 3.0,
            fmt_num(tick)
        );
        tick += step;
    }
    let session_step = (last_session / 12).max(1);
    for s in (1..=last_session).step_by(usize::try_from(session_step).unwrap_or(1)) {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#1d2430" text-anchor="middle">{s}</text>"##,
            scale.x(f64::from(s)),
            HEIGHT - BOTTOM + 14.0
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#1d2430" text-anchor="middle">Session</text>"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 6.0
    );

    // Reliable-change band around intake.
    let intake = spec
        .points
        .iter()
        .find(|p| p.session == 1)
        .and_then(|p| p.total)
        .or_else(|| spec.points.iter().find_map(|p| p.total));
    if let (Some(base), Some(rci)) = (intake, def.reliable_change_threshold()) {
        let top = scale.y(base + rci);
        let bottom = scale.y(base - rci);
        let _ = write!(
            svg,
            r##"<rect class="reliable-change" x="{LEFT}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#2f5d62" fill-opacity="0.10" stroke="#2f5d62" stroke-opacity="0.35" stroke-dasharray="2 3"><title>Within {} points of intake: change here may be chance</title></rect>"##,
            WIDTH - LEFT - RIGHT,
            (bottom - top).max(0.0),
            fmt_num(rci)
        );
    }

    // Caseness line.
    if let Some(cut) = def.primary_cutoff(None) {
        let y = scale.y(cut.at_least);
        let _ = write!(
            svg,
            r##"<line class="caseness" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#9b1c1c" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#9b1c1c">clinical cut-off {}</text>"##,
            WIDTH - RIGHT,
            LEFT + 4.0,
            y - 4.0,
            fmt_num(cut.at_least)
        );
    }

    // Expected recovery and its boundary.
    if let (Some(curve), Some(base)) = (spec.expected, intake) {
        let mut centre = String::new();
        let mut edge = String::new();
        for s in 2..=last_session {
            let Ok(check) = curve.check(base, usize::try_from(s).unwrap_or(2), base) else {
                continue;
            };
            let x = scale.x(f64::from(s));
            let _ = write!(centre, "{x:.1},{:.1} ", scale.y(check.expected));
            let _ = write!(edge, "{x:.1},{:.1} ", scale.y(check.boundary));
        }
        let _ = write!(
            svg,
            r##"<polyline class="expected" points="{}" fill="none" stroke="#4f5b6b" stroke-width="1.5" stroke-dasharray="1 3"/><polyline class="boundary" points="{}" fill="none" stroke="#8a5300" stroke-width="1.5" stroke-dasharray="8 3"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#4f5b6b" text-anchor="end">expected recovery (n = {})</text>"##,
            centre.trim_end(),
            edge.trim_end(),
            WIDTH - RIGHT - 4.0,
            HEIGHT - BOTTOM - 6.0,
            curve.n_episodes
        );
    }

    // The client's scores.
    let mut line = String::new();
    for p in spec.points {
        if let Some(t) = p.total {
            let _ = write!(
                line,
                "{:.1},{:.1} ",
                scale.x(f64::from(p.session)),
                scale.y(t)
            );
        }
    }
    if !line.is_empty() {
        let _ = write!(
            svg,
            r##"<polyline class="scores" points="{}" fill="none" stroke="#1d2430" stroke-width="2.5"/>"##,
            line.trim_end()
        );
    }
    for p in spec.points {
        let x = scale.x(f64::from(p.session));
        match p.total {
            Some(t) => {
                let y = scale.y(t);
                let _ = write!(
                    svg,
                    r##"<circle class="score" cx="{x:.1}" cy="{y:.1}" r="4" fill="#1d2430"><title>Session {}: {}</title></circle>"##,
                    p.session,
                    fmt_num(t)
                );
                if p.risk {
                    let _ = write!(
                        svg,
                        r##"<path class="risk-marker" d="M {x:.1} {:.1} l 7 12 l -14 0 z" fill="#9b1c1c" stroke="#ffffff" stroke-width="1"><title>Session {}: risk answer</title></path>"##,
                        y - 20.0,
                        p.session
                    );
                }
            }
            None => {
                let y = HEIGHT - BOTTOM - 8.0;
                let _ = write!(
                    svg,
                    r##"<circle class="incomplete" cx="{x:.1}" cy="{y:.1}" r="4" fill="none" stroke="#4f5b6b"><title>Session {}: incomplete, no total</title></circle>"##,
                    p.session
                );
            }
        }
    }
    if spec.points.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="13" fill="#4f5b6b" text-anchor="middle">No scores yet</text>"##,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A plain-language description of the chart for screen readers and for
/// anyone who prefers text.
pub fn text_alternative(spec: &ChartSpec<'_>) -> String {
    let def = spec.def;
    let scored: Vec<(u32, f64)> = spec
        .points
        .iter()
        .filter_map(|p| p.total.map(|t| (p.session, t)))
        .collect();
    let mut text = format!(
        "{} ({} to {}, {} is better).",
        def.title,
        def.scoring.min,
        def.scoring.max,
        if def.higher_is_better {
            "higher"
        } else {
            "lower"
        }
    );
    match (scored.first(), scored.last()) {
        (None, _) | (_, None) => text.push_str(" No scores yet."),
        (Some((s0, first)), Some((s1, last))) => {
            let band_of = |v: f64| {
                def.bands
                    .iter()
                    .find(|b| v >= f64::from(b.min) && v <= f64::from(b.max))
                    .map(|b| b.label.replace('_', " "))
                    .unwrap_or_default()
            };
            let _ = write!(
                text,
                " Session {s0}: {} ({}).",
                fmt_num(*first),
                band_of(*first)
            );
            if s1 != s0 {
                let _ = write!(
                    text,
                    " Session {s1}: {} ({}).",
                    fmt_num(*last),
                    band_of(*last)
                );
                if let Some(rci) = def.reliable_change_threshold() {
                    let change = last - first;
                    let better = if def.higher_is_better {
                        change
                    } else {
                        -change
                    };
                    let verdict = if better >= rci {
                        "a reliable improvement"
                    } else if -better >= rci {
                        "a reliable deterioration"
                    } else {
                        "within the range that could be chance"
                    };
                    let _ = write!(
                        text,
                        " The change of {} points is {verdict} (reliable change is {} points).",
                        fmt_num(change.abs()),
                        fmt_num(rci)
                    );
                }
            }
            let all: Vec<String> = scored
                .iter()
                .map(|(s, t)| format!("{s}: {}", fmt_num(*t)))
                .collect();
            let _ = write!(text, " All scores by session: {}.", all.join(", "));
        }
    }
    let risks: Vec<String> = spec
        .points
        .iter()
        .filter(|p| p.risk)
        .map(|p| p.session.to_string())
        .collect();
    if !risks.is_empty() {
        let _ = write!(text, " Risk answers at session {}.", risks.join(", "));
    }
    if let Some(cut) = def.primary_cutoff(None) {
        let _ = write!(text, " Clinical cut-off: {}.", fmt_num(cut.at_least));
    }
    if let Some(curve) = spec.expected {
        let _ = write!(
            text,
            " Expected-recovery curve from {} completed episodes in this practice.",
            curve.n_episodes
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapestry_domain::instrument::InstrumentRegistry;

    fn registry() -> InstrumentRegistry {
        InstrumentRegistry::embedded().unwrap()
    }

    fn points(totals: &[Option<f64>]) -> Vec<ChartPoint> {
        totals
            .iter()
            .enumerate()
            .map(|(i, t)| ChartPoint {
                session: u32::try_from(i + 1).unwrap(),
                total: *t,
                risk: false,
            })
            .collect()
    }

    #[test]
    fn phq9_chart_has_bands_cutoff_reliable_band_and_points() {
        let reg = registry();
        let def = reg.require("phq9").unwrap();
        let mut pts = points(&[Some(20.0), Some(18.0), None, Some(12.0), Some(9.0)]);
        pts[1].risk = true;
        let svg = render(&ChartSpec {
            def,
            points: &pts,
            expected: None,
            dom_id: "phq9",
        });
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="band""#).count(), def.bands.len());
        assert_eq!(svg.matches(r#"class="caseness""#).count(), 1);
        assert_eq!(svg.matches(r#"class="reliable-change""#).count(), 1);
        assert_eq!(svg.matches(r#"class="score""#).count(), 4);
        assert_eq!(svg.matches(r#"class="incomplete""#).count(), 1);
        assert_eq!(svg.matches(r#"class="risk-marker""#).count(), 1);
        assert!(svg.contains(r#"role="img""#) && svg.contains("aria-labelledby"));
        // Nothing that could load from elsewhere or run.
        for banned in ["http://", "https://", "<script", "href=", "onload", "url("] {
            let body = svg.replacen(r#"xmlns="http://www.w3.org/2000/svg""#, "", 1);
            assert!(!body.contains(banned), "{banned} in chart");
        }
        let alt = text_alternative(&ChartSpec {
            def,
            points: &pts,
            expected: None,
            dom_id: "phq9",
        });
        assert!(alt.contains("Session 1: 20 (severe)"), "{alt}");
        assert!(alt.contains("Session 5: 9 (mild)"), "{alt}");
        assert!(alt.contains("reliable improvement"), "{alt}");
        assert!(alt.contains("Risk answers at session 2"), "{alt}");
    }

    #[test]
    fn change_inside_the_band_is_described_as_possibly_chance() {
        let reg = registry();
        let def = reg.require("phq9").unwrap();
        let pts = points(&[Some(20.0), Some(19.0), Some(17.0)]);
        let alt = text_alternative(&ChartSpec {
            def,
            points: &pts,
            expected: None,
            dom_id: "x",
        });
        assert!(alt.contains("could be chance"), "{alt}");
        let worse = points(&[Some(10.0), Some(17.0)]);
        let alt = text_alternative(&ChartSpec {
            def,
            points: &worse,
            expected: None,
            dom_id: "x",
        });
        assert!(alt.contains("reliable deterioration"), "{alt}");
    }

    #[test]
    fn empty_huge_and_out_of_range_inputs_still_draw() {
        let reg = registry();
        let def = reg.require("gad7").unwrap();
        let svg = render(&ChartSpec {
            def,
            points: &[],
            expected: None,
            dom_id: "g",
        });
        assert!(svg.contains("No scores yet"));
        let many: Vec<ChartPoint> = (1..=500)
            .map(|s| ChartPoint {
                session: s,
                total: Some(f64::from(s % 22)),
                risk: false,
            })
            .collect();
        let svg = render(&ChartSpec {
            def,
            points: &many,
            expected: None,
            dom_id: "g",
        });
        assert_eq!(svg.matches(r#"class="score""#).count(), 500);
        // A value outside the scale is clamped into the plot, never drawn outside it.
        let odd = points(&[Some(-5.0), Some(99.0)]);
        let svg = render(&ChartSpec {
            def,
            points: &odd,
            expected: None,
            dom_id: "g",
        });
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn identifiers_and_labels_are_escaped() {
        let reg = registry();
        let def = reg.require("phq9").unwrap();
        let svg = render(&ChartSpec {
            def,
            points: &[],
            expected: None,
            dom_id: "a\"><script>x</script>",
        });
        assert!(!svg.contains("<script>"));
        assert_eq!(escape("<b>&'\"\u{0007}"), "&lt;b&gt;&amp;&#39;&quot;");
    }
}
