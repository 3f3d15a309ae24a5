//! Bar charts drawn on the server: a series of `(day, value)` becomes an inline SVG
//! (`templates/chart.html`), one slot per day of a fixed range, so a day without
//! activity is an empty slot rather than a missing one.
//!
//! What a chart promises:
//! - **No script, no style attribute**: geometry is numbers in presentation attributes
//!   (a fixed `viewBox`, stretched to its container by `assets/dashboard.css`), colours
//!   are classes; the dashboard's CSP (`style-src 'self'`) holds.
//! - **Accessible**: `role="img"` with an accessible name summing it up ("Requests per
//!   day, last 30 days: 1,234 requests in total, peak 210 on Nov 20"), and a `<title>`
//!   per day for pointer users ("Nov 20: 210 requests"). Pages that need the exact
//!   numbers show them in a table next to the chart.
//! - **Escaped**: the only text is askama-escaped; coordinates are integers.
//! - **Finite**: heights scale to the largest value with integer arithmetic; an
//!   all-zero series draws zero-height bars, never a division by zero.

use askama::Template;
use chrono::{Datelike, NaiveDate, TimeDelta};

/// viewBox units per day.
const SLOT: u32 = 10;
/// Space between two bars, in viewBox units.
const GAP: u32 = 2;

/// What a chart counts, in the singular and plural ("request", "requests").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Noun(pub &'static str, pub &'static str);

impl Noun {
    fn of(self, n: i64) -> &'static str {
        if n == 1 { self.0 } else { self.1 }
    }
}

/// How a chart is drawn: a sparkline in a table row, or a chart of its own with its
/// first and last day written under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    Spark,
    Large,
}

impl Size {
    fn height(self) -> u32 {
        match self {
            Size::Spark => 30,
            Size::Large => 100,
        }
    }
}

/// One day's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bar {
    /// Where the day's slot starts (the whole slot answers the pointer).
    pub left: u32,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub value: i64,
    /// "Nov 20: 210 requests".
    pub title: String,
}

/// A daily bar chart, rendered as an inline `<svg>` by its template (`{{ chart|safe }}`
/// in a page: the chart's own template escapes its text).
#[derive(Debug, Clone, Template)]
#[template(path = "chart.html")]
pub(crate) struct BarChart {
    pub large: bool,
    /// The accessible name.
    pub label: String,
    pub width: u32,
    pub height: u32,
    pub slot: u32,
    pub bars: Vec<Bar>,
    /// The first and last day, as written on the axis.
    pub first: String,
    pub last: String,
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The height of `value` in a plot `plot` units high whose tallest bar is `max`:
/// proportional, rounded, at least one unit for any activity, zero for none.
fn bar_height(value: i64, max: i64, plot: u32) -> u32 {
    if value <= 0 || max <= 0 {
        return 0;
    }
    let h = (i128::from(value) * i128::from(plot) + i128::from(max) / 2) / i128::from(max);
    u32::try_from(h).unwrap_or(plot).clamp(1, plot)
}

impl BarChart {
    /// A chart of `days` days from `first` on (at least one): each day's value is the
    /// sum of the points on that day; points outside the range are ignored, negative
    /// values count as zero. `title` names it ("Requests per day, last 30 days").
    pub(crate) fn daily(
        title: &str,
        noun: Noun,
        first: NaiveDate,
        days: u32,
        points: impl IntoIterator<Item = (NaiveDate, i64)>,
        size: Size,
    ) -> BarChart {
        let days = days.max(1);
        let mut values = vec![0_i64; days as usize];
        for (day, v) in points {
            let i = (day - first).num_days();
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| values.get_mut(i)) {
                *slot = slot.saturating_add(v.max(0));
            }
        }
        let last = first + TimeDelta::days(i64::from(days) - 1);
        let same_year = first.year() == last.year();
        let day_text = |d: NaiveDate| {
            if same_year {
                d.format("%b %-d").to_string()
            } else {
                d.format("%b %-d, %Y").to_string()
            }
        };
        let height = size.height();
        let peak = values.iter().copied().max().unwrap_or(0);
        let total = values.iter().fold(0_i64, |a, v| a.saturating_add(*v));
        let bars = values
            .iter()
            .enumerate()
            .map(|(i, &value)| {
                let h = bar_height(value, peak, height);
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                let day = first + TimeDelta::days(i64::from(i));
                Bar {
                    left: i * SLOT,
                    x: i * SLOT + GAP / 2,
                    y: height - h,
                    width: SLOT - GAP,
                    height: h,
                    value,
                    title: format!("{}: {} {}", day_text(day), thousands(value), noun.of(value)),
                }
            })
            .collect();
        let label = if total == 0 {
            format!("{title}: no {}", noun.1)
        } else {
            // The first day with the peak.
            let peak_day = values
                .iter()
                .position(|&v| v == peak)
                .map_or(first, |i| first + TimeDelta::days(i as i64));
            format!(
                "{title}: {} {} in total, peak {} on {}",
                thousands(total),
                noun.of(total),
                thousands(peak),
                day_text(peak_day)
            )
        };
        BarChart {
            large: size == Size::Large,
            label,
            width: days * SLOT,
            height,
            slot: SLOT,
            bars,
            first: day_text(first),
            last: day_text(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: Noun = Noun("request", "requests");

    fn total_and_peak(c: &BarChart) -> (i64, i64) {
        let values = c.bars.iter().map(|b| b.value);
        (
            values.clone().fold(0, i64::saturating_add),
            values.max().unwrap_or(0),
        )
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn thirty_slots_always_heights_scale_to_the_peak() {
        let first = day("2026-10-30");
        let c = BarChart::daily(
            "Requests per day, last 30 days",
            REQ,
            first,
            30,
            [
                (day("2026-11-20"), 200),
                (day("2026-11-20"), 10),
                (day("2026-11-01"), 105),
                (day("2026-11-02"), 1),
            ],
            Size::Spark,
        );
        assert_eq!(c.bars.len(), 30);
        assert_eq!(c.width, 300);
        assert_eq!(total_and_peak(&c), (316, 210));
        let nov20 = &c.bars[21];
        assert_eq!(nov20.value, 210);
        assert_eq!(nov20.height, c.height, "the peak fills the plot");
        assert_eq!(nov20.y, 0);
        assert_eq!(c.bars[2].height, 15, "105 of 210 is half of 30");
        assert_eq!(
            c.bars[2].y + c.bars[2].height,
            c.height,
            "bars stand on the axis"
        );
        assert_eq!(c.bars[3].height, 1, "any activity is visible");
        assert_eq!(c.bars[0].height, 0, "an empty day is an empty slot");
        // Slots are side by side, left to right, oldest first.
        assert!(c.bars.windows(2).all(|w| w[1].x == w[0].x + SLOT));
        assert_eq!(nov20.title, "Nov 20: 210 requests");
        assert_eq!(c.bars[3].title, "Nov 2: 1 request");
        assert_eq!(c.bars[0].title, "Oct 30: 0 requests");
        assert_eq!(
            c.label,
            "Requests per day, last 30 days: 316 requests in total, peak 210 on Nov 20"
        );
        assert_eq!((c.first.as_str(), c.last.as_str()), ("Oct 30", "Nov 28"));
    }

    #[test]
    fn all_zero_draws_no_nan_and_says_so() {
        let c = BarChart::daily(
            "Calls per day",
            Noun("call", "calls"),
            day("2026-11-01"),
            30,
            [],
            Size::Large,
        );
        assert_eq!(c.bars.len(), 30);
        assert!(c.bars.iter().all(|b| b.height == 0 && b.y == c.height));
        assert_eq!(c.label, "Calls per day: no calls");
        let svg = c.to_string();
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(svg.matches("class=\"bar").count(), 30);
    }

    #[test]
    fn one_day_outside_points_and_negatives_are_ignored() {
        let d = day("2026-11-28");
        let c = BarChart::daily(
            "Minutes per day",
            Noun("minute", "minutes"),
            d,
            1,
            [
                (d, 3),
                (d - TimeDelta::days(1), 50),
                (d + TimeDelta::days(1), 60),
                (d, -9),
            ],
            Size::Large,
        );
        assert_eq!(c.bars.len(), 1);
        assert_eq!(total_and_peak(&c), (3, 3));
        assert_eq!(c.bars[0].height, c.height);
        assert_eq!(
            c.label,
            "Minutes per day: 3 minutes in total, peak 3 on Nov 28"
        );
        // Zero days asked for still draw one slot.
        assert_eq!(
            BarChart::daily("x", REQ, d, 0, [], Size::Spark).bars.len(),
            1
        );
    }

    #[test]
    fn a_range_across_years_names_the_year_and_large_values_do_not_overflow() {
        let c = BarChart::daily(
            "Calls per day",
            Noun("call", "calls"),
            day("2026-12-30"),
            3,
            [(day("2027-01-01"), i64::MAX), (day("2026-12-30"), 1)],
            Size::Large,
        );
        assert_eq!(c.first, "Dec 30, 2026");
        assert_eq!(c.last, "Jan 1, 2027");
        assert_eq!(c.bars[2].height, c.height);
        assert_eq!(c.bars[0].height, 1);
        assert_eq!(total_and_peak(&c).0, i64::MAX, "saturates");
        assert!(c.label.contains("9,223,372,036,854,775,807 calls in total"));
    }

    #[test]
    fn the_svg_is_accessible_and_escapes_its_text() {
        let c = BarChart::daily(
            "<script>alert(1)</script> & co",
            REQ,
            day("2026-11-28"),
            1,
            [(day("2026-11-28"), 1234)],
            Size::Spark,
        );
        let svg = c.to_string();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("viewBox=\"0 0 10 30\""));
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("&#60;script&#62;") || svg.contains("&lt;script&gt;"),
            "{svg}"
        );
        assert!(svg.contains("Nov 28: 1,234 requests"));
        assert!(!svg.contains("style="), "the CSP forbids inline styles");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
