//! The engagement chart of the contact page: the last six calendar months (UTC), events
//! per month as bars and points gained per month as a line, drawn on the server as SVG
//! with axis labels. Only numbers and month names reach the SVG.

use chrono::{Datelike, TimeZone, Utc};

use crate::store::events::MonthTotals;

pub const MONTHS: usize = 6;
const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 44.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 30.0;

/// Bucket bounds for `monthly_totals`: the starts of the last `MONTHS` months and the
/// start of the next one (ms), plus their labels ("Jan 2026").
pub fn month_bounds(now_ms: i64) -> (Vec<i64>, Vec<String>) {
    let now = Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let first = |y: i32, m: u32| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single();
    let mut months = Vec::new();
    let (mut y, mut m) = (now.year(), now.month());
    for _ in 0..MONTHS {
        months.push((y, m));
        if m == 1 {
            m = 12;
            y -= 1;
        } else {
            m -= 1;
        }
    }
    months.reverse();
    let mut bounds: Vec<i64> = months
        .iter()
        .map(|(y, m)| first(*y, *m).map_or(0, |t| t.timestamp_millis()))
        .collect();
    let labels = months
        .iter()
        .map(|(y, m)| first(*y, *m).map_or_else(String::new, |t| t.format("%b %Y").to_string()))
        .collect();
    let (ny, nm) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    bounds.push(first(ny, nm).map_or(i64::MAX, |t| t.timestamp_millis()));
    (bounds, labels)
}

pub struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    pub cx: String,
    pub label: String,
    pub events: i64,
    pub points: i64,
    pub point_y: String,
}

pub struct Tick {
    pub y: String,
    pub label: String,
}

pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub point_ticks: Vec<Tick>,
    pub points_path: String,
    pub baseline: String,
    pub axis_x1: String,
    pub axis_x2: String,
    pub right_x: String,
    pub total_events: i64,
    pub total_points: i64,
    pub summary: String,
}

/// A "nice" axis maximum and step for values up to `max`.
fn nice(max: i64) -> (i64, i64) {
    if max <= 4 {
        return (4, 1);
    }
    let raw = max as f64 / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
        .ceil() as i64;
    (step * 4, step)
}

fn f(x: f64) -> String {
    format!("{x:.1}")
}

pub fn build(totals: &[MonthTotals], labels: &[String]) -> Chart {
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = totals.len().max(1) as f64;
    let slot = plot_w / n;
    let (emax, estep) = nice(totals.iter().map(|t| t.events).max().unwrap_or(0));
    let pmin = totals.iter().map(|t| t.points).min().unwrap_or(0).min(0);
    let (pmax, pstep) = nice(totals.iter().map(|t| t.points).max().unwrap_or(0).max(0));
    let (pmin, _) = if pmin < 0 {
        let (m, _) = nice(-pmin);
        (-m, 0)
    } else {
        (0, 0)
    };
    let y_of = |v: i64, lo: i64, hi: i64| {
        TOP + plot_h - (v - lo) as f64 / ((hi - lo).max(1)) as f64 * plot_h
    };
    let mut bars = Vec::new();
    let mut path = String::new();
    for (i, t) in totals.iter().enumerate() {
        let cx = LEFT + slot * (i as f64 + 0.5);
        let bw = (slot * 0.46).min(48.0);
        let y = y_of(t.events, 0, emax);
        let py = y_of(t.points, pmin, pmax);
        path.push_str(&format!(
            "{}{} {} ",
            if i == 0 { "M" } else { "L" },
            f(cx),
            f(py)
        ));
        bars.push(Bar {
            x: f(cx - bw / 2.0),
            y: f(y),
            w: f(bw),
            h: f(TOP + plot_h - y),
            cx: f(cx),
            label: labels.get(i).cloned().unwrap_or_default(),
            events: t.events,
            points: t.points,
            point_y: f(py),
        });
    }
    let ticks = (0..=4)
        .map(|k| Tick {
            y: f(y_of(k * estep, 0, emax)),
            label: (k * estep).to_string(),
        })
        .collect();
    let prange = pmax - pmin;
    let point_ticks = (0..=4)
        .map(|k| {
            let v = pmin + prange * k / 4;
            Tick {
                y: f(y_of(v, pmin, pmax)),
                label: v.to_string(),
            }
        })
        .collect();
    let _ = pstep;
    let total_events = totals.iter().map(|t| t.events).sum();
    let total_points = totals.iter().map(|t| t.points).sum();
    Chart {
        width: W as u32,
        height: H as u32,
        bars,
        ticks,
        point_ticks,
        points_path: path.trim_end().to_owned(),
        baseline: f(TOP + plot_h),
        axis_x1: f(LEFT),
        axis_x2: f(W - RIGHT),
        right_x: f(W - RIGHT + 6.0),
        total_events,
        total_points,
        summary: format!(
            "{total_events} engagements and {total_points} points in the last {MONTHS} months"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_month_buckets() {
        // 2026-03-15
        let now = Utc
            .with_ymd_and_hms(2026, 3, 15, 12, 0, 0)
            .unwrap()
            .timestamp_millis();
        let (bounds, labels) = month_bounds(now);
        assert_eq!(bounds.len(), MONTHS + 1);
        assert_eq!(
            labels,
            [
                "Oct 2025", "Nov 2025", "Dec 2025", "Jan 2026", "Feb 2026", "Mar 2026"
            ]
        );
        assert_eq!(
            bounds[0],
            Utc.with_ymd_and_hms(2025, 10, 1, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(
            bounds[6],
            Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
        let (b, _) = month_bounds(
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0)
                .unwrap()
                .timestamp_millis(),
        );
        assert_eq!(
            b[6],
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                .unwrap()
                .timestamp_millis()
        );
    }

    #[test]
    fn axes_are_nice() {
        assert_eq!(nice(0), (4, 1));
        assert_eq!(nice(7), (8, 2));
        assert_eq!(nice(95), (100, 25));
        assert!(nice(50_000).0 >= 50_000);
        let totals = vec![
            MonthTotals {
                events: 3,
                points: 10
            };
            6
        ];
        let c = build(&totals, &vec!["x".into(); 6]);
        assert_eq!(c.bars.len(), 6);
        assert!(c.points_path.starts_with('M'));
        assert_eq!(c.total_events, 18);
    }
}
