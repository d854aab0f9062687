//! SVG charts of network runs with `plotters` (SVG backend, no font
//! crates: the SVG holds `<text>` elements that the viewer renders, so no
//! system fonts are needed to draw).
//!
//! Title: the runs' settings (those every run shares; the ones that differ
//! label the series). Top: latency by percentile, x axis in "nines"
//! (90 % = 1, 99 % = 2, …), log-scaled latency, one line per run and
//! operation. Bottom: messages/s per second of the run, the warm-up shaded.

use std::path::{Path, PathBuf};

use clap::Args;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// Output SVG file.
    #[arg(long)]
    out: PathBuf,
    /// Summaries written by `--json` of produce / consume / e2e runs. The
    /// title shows the settings they share; each run's series are labelled
    /// with the settings that differ (else with the file name).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

pub fn run(args: PlotArgs) -> Result<(), String> {
    let mut runs = Vec::new();
    for p in &args.runs {
        let text = std::fs::read_to_string(p).map_err(|e| format!("read {}: {e}", p.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        let label = p.file_stem().map_or("run".into(), |s| s.to_string_lossy().into_owned());
        runs.push((label, v));
    }
    draw(&args.out, &runs)?;
    println!("plot: {}", args.out.display());
    Ok(())
}

fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-12);
    -rest.log10()
}

fn nines_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    if x < 0.5 {
        format!("{p:.0}%")
    } else {
        let digits = (x.round() as usize).saturating_sub(2);
        format!("{p:.digits$}%")
    }
}

/// `v` with at most `decimals` decimals and no trailing zeros: 2.50 → 2.5,
/// 30.0 → 30.
fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A latency given in µs, in the unit that keeps it short: `250 µs`,
/// `30 ms`, `1.5 s`.
pub fn fmt_latency_us(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", trim(us / 1e6, 2))
    } else if us >= 1e3 {
        format!("{} ms", trim(us / 1e3, 2))
    } else {
        format!("{} µs", trim(us, if us < 10.0 { 1 } else { 0 }))
    }
}

/// A rate: `950`, `12k`, `1.25M`.
pub fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6, 2))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3, 1))
    } else {
        trim(v, 0)
    }
}

/// Tick values for a log axis from `lo` to `hi`: the densest of
/// 1-1.5-2-3-4-5-7, 1-2-5, 1-3 or 1 per decade that gives at most 10 ticks.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    const SETS: [&[f64]; 4] = [
        &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 3.0],
        &[1.0],
    ];
    let (lo, hi) = (lo.max(1e-9), hi.max(lo * 1.0001));
    let ticks = |mults: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        let mut decade = 10f64.powi(lo.log10().floor() as i32);
        while decade <= hi {
            for m in mults {
                let v = decade * m;
                if v >= lo && v <= hi {
                    out.push(v);
                }
            }
            decade *= 10.0;
        }
        out
    };
    SETS.iter()
        .map(|m| ticks(m))
        .find(|t| t.len() <= 10)
        .unwrap_or_else(|| ticks(&[1.0]))
}

/// A byte count: `1 KiB`, `100 B`, `4.5 MiB`.
fn fmt_bytes(n: u64) -> String {
    let f = n as f64;
    if n >= 1 << 20 && n.is_multiple_of(1 << 10) {
        format!("{} MiB", trim(f / (1u64 << 20) as f64, 2))
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", trim(f / 1024.0, 2))
    } else {
        format!("{n} B")
    }
}

/// The settings of a run, in display order, as (name, value) with the
/// value already formatted; what the summary lacks is left out.
pub fn settings(v: &Value) -> Vec<(String, String)> {
    let p = &v["params"];
    let a = &p["args"];
    let r = &p["resolved"];
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, val: String| out.push((k.to_string(), val));
    let kind = p["kind"].as_str().unwrap_or("");
    if !kind.is_empty() {
        put("", kind.to_string());
    }
    let sends = kind != "consume";
    if sends {
        if let Some(m) = a["mode"].as_str() {
            put("mode", m.to_string());
        }
        if let Some(s) = a["size"].as_u64() {
            put("size", fmt_bytes(s));
        }
    }
    let conns = r["producer_connections"]
        .as_u64()
        .filter(|_| sends)
        .or_else(|| a["connections"].as_u64());
    if let Some(c) = conns {
        put("conns", c.to_string());
    }
    if sends {
        if let Some(i) = r["inflight"].as_u64().or_else(|| a["inflight"].as_u64()) {
            put("inflight", i.to_string());
        }
        if let Some(b) = a["batch"].as_u64() {
            put("batch", b.to_string());
        }
        if let Some(rate) = a["rate"].as_f64() {
            put("rate", format!("{}/s", fmt_rate(rate)));
        }
    }
    if let Some(tags) = r["tags"].as_object() {
        for (k, t) in tags {
            put(k, t.as_str().map_or_else(|| t.to_string(), str::to_string));
        }
    }
    if let Some(d) = r["duration_secs"].as_f64().or_else(|| a["duration"].as_f64()) {
        put("duration", format!("{} s", trim(d, 1)));
    }
    if let Some(n) = a["messages"].as_u64() {
        put("messages", n.to_string());
    }
    if let Some(w) = r["warmup_secs"].as_f64().or_else(|| a["warmup"].as_f64()) {
        put("warm-up", format!("{} s", trim(w, 1)));
    }
    out
}

fn setting_text((k, v): &(String, String)) -> String {
    if k.is_empty() {
        v.clone()
    } else {
        format!("{k} {v}")
    }
}

/// The title (settings every run shares) and one label per run (the
/// settings that differ, with the given name added when those alone do
/// not tell the runs apart). A single run is labelled "".
pub fn titles(runs: &[(String, Value)]) -> (String, Vec<String>) {
    let all: Vec<Vec<(String, String)>> = runs.iter().map(|(_, v)| settings(v)).collect();
    let Some(first) = all.first() else {
        return (String::new(), Vec::new());
    };
    let common: Vec<&(String, String)> = first.iter().filter(|s| all.iter().all(|o| o.contains(s))).collect();
    let title = common.iter().map(|s| setting_text(s)).collect::<Vec<_>>().join(" · ");
    if runs.len() == 1 {
        return (title, vec![String::new()]);
    }
    let mut labels: Vec<String> = all
        .iter()
        .map(|ss| {
            ss.iter()
                .filter(|s| !common.contains(s))
                .map(setting_text)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let unique = labels
        .iter()
        .enumerate()
        .all(|(i, l)| !l.is_empty() && !labels[..i].contains(l));
    if !unique {
        for (l, (name, _)) in labels.iter_mut().zip(runs) {
            *l = if l.is_empty() {
                name.clone()
            } else {
                format!("{name}: {l}")
            };
        }
    }
    (title, labels)
}

struct Series {
    label: String,
    points: Vec<(f64, f64)>,
}

fn series_label(run: &str, op: &str) -> String {
    if run.is_empty() {
        op.to_string()
    } else {
        format!("{run} · {op}")
    }
}

fn latency_series(runs: &[(String, Value)], labels: &[String]) -> Vec<Series> {
    let mut out = Vec::new();
    for ((_, v), label) in runs.iter().zip(labels) {
        let Some(ops) = v["ops"].as_object() else { continue };
        for (op, o) in ops {
            let points: Vec<(f64, f64)> = o["curve"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((nines(p[0].as_f64()?), p[1].as_f64()?.max(0.1))))
                .collect();
            if !points.is_empty() {
                out.push(Series {
                    label: series_label(label, op),
                    points,
                });
            }
        }
    }
    out
}

fn throughput_series(runs: &[(String, Value)], labels: &[String]) -> Vec<Series> {
    let mut out = Vec::new();
    for ((_, v), label) in runs.iter().zip(labels) {
        for op in ["send", "pull"] {
            let key = format!("{op}_msgs_per_sec");
            let points: Vec<(f64, f64)> = v["timeline"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| Some((e["t"].as_f64()?, e[&key].as_f64()?)))
                .collect();
            if !points.is_empty() {
                out.push(Series {
                    label: series_label(label, op),
                    points,
                });
            }
        }
    }
    out
}

/// Seconds of warm-up of a run: measured, or as configured (older
/// summaries).
pub fn warmup_secs(v: &Value) -> f64 {
    v["warmup_secs"]
        .as_f64()
        .or_else(|| v["params"]["resolved"]["warmup_secs"].as_f64())
        .or_else(|| v["params"]["args"]["warmup"].as_f64())
        .unwrap_or(0.0)
        .max(0.0)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// Draws `runs` (label, summary JSON) into one SVG.
pub fn draw(path: &Path, runs: &[(String, Value)]) -> Result<(), String> {
    let (title, labels) = titles(runs);
    let lat = latency_series(runs, &labels);
    let tput = throughput_series(runs, &labels);
    // One colour per run and operation, the same in both charts.
    let mut keys: Vec<&str> = Vec::new();
    for s in lat.iter().chain(&tput) {
        if !keys.contains(&s.label.as_str()) {
            keys.push(&s.label);
        }
    }
    let color_of = |label: &str| Palette99::pick(keys.iter().position(|k| *k == label).unwrap_or(0)).to_rgba();
    let root = SVGBackend::new(path, (1000, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = if title.is_empty() {
        root
    } else {
        root.titled(&title, ("sans-serif", 20)).map_err(err)?
    };
    let (top, bottom) = root.split_vertically(540);
    let grid = RGBColor(225, 225, 225);
    let label_font = ("sans-serif", 14);

    let xmax = lat
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        .ceil();
    let ymin = lat
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(f64::MAX, f64::min)
        .clamp(0.1, 1e9);
    let ymax = lat
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&top)
        .caption("latency by percentile", ("sans-serif", 18))
        .margin(10)
        .margin_right(45)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(
            0f64..xmax,
            (ymin * 0.8..ymax * 1.25)
                .log_scale()
                .with_key_points(log_ticks(ymin * 0.8, ymax * 1.25)),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency")
        .x_labels(xmax as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .y_label_formatter(&|y| fmt_latency_us(*y))
        .label_style(label_font)
        .bold_line_style(grid)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(err)?;
    for s in &lat {
        let color = color_of(&s.label);
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if !lat.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(label_font)
            .background_style(WHITE.mix(0.85))
            .border_style(grid)
            .draw()
            .map_err(err)?;
    }

    let tmax = tput
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let rmax = tput
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("throughput over time", ("sans-serif", 18))
        .margin(10)
        .margin_right(45)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..tmax, 0f64..rmax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("messages/s")
        .x_label_formatter(&|x| trim(*x, 1))
        .y_label_formatter(&|y| fmt_rate(*y))
        .label_style(label_font)
        .bold_line_style(grid)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(err)?;
    // The warm-up of each run (one band per distinct length): its
    // messages are not in the measured figures.
    let mut warmups: Vec<f64> = runs.iter().map(|(_, v)| warmup_secs(v)).filter(|w| *w > 0.0).collect();
    warmups.sort_by(f64::total_cmp);
    warmups.dedup_by(|a, b| (*a - *b).abs() < 0.05);
    for (k, w) in warmups.iter().enumerate() {
        let w = w.min(tmax);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (w, rmax)],
                RGBColor(120, 120, 120).mix(0.10).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(w, 0.0), (w, rmax)],
                RGBColor(120, 120, 120).stroke_width(1),
            )))
            .map_err(err)?;
        let text = if warmups.len() > 1 {
            format!("warm-up {} s", trim(w, 1))
        } else {
            "warm-up".to_string()
        };
        let y = rmax * (0.98 - 0.05 * k as f64);
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (w / 2.0, y),
                ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Top,
                    ),
                ),
            )))
            .map_err(err)?;
    }
    for s in &tput {
        let color = color_of(&s.label);
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if !tput.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(label_font)
            .background_style(WHITE.mix(0.85))
            .border_style(grid)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(kind: &str, conns: u64, flush: &str, secs: f64) -> Value {
        let measured = secs + 0.013;
        json!({
            "params": {
                "kind": kind,
                "args": {"mode": "async", "size": 1024, "connections": conns, "batch": 1, "rate": null, "warmup": null},
                "resolved": {"producer_connections": conns, "inflight": 128, "tags": {"flush": flush}, "duration_secs": secs, "warmup_secs": 1.0},
            },
            "measured_secs": measured,
            "warmup_secs": 1.0,
            "ops": {"send": {"curve": [[0.0, 120.0], [90.0, 250.0], [99.0, 900.0], [99.99, 31000.0]]}},
            "timeline": [{"t": 1.0, "phase": "warm-up", "send_msgs_per_sec": 900.0},
                         {"t": 2.0, "phase": "measure", "send_msgs_per_sec": 21000.0}],
        })
    }

    #[test]
    fn latency_and_rate_labels_have_units_and_no_point_zero() {
        assert_eq!(fmt_latency_us(250.0), "250 µs");
        assert_eq!(fmt_latency_us(30_000.0), "30 ms");
        assert_eq!(fmt_latency_us(2_500.0), "2.5 ms");
        assert_eq!(fmt_latency_us(1_500_000.0), "1.5 s");
        assert_eq!(fmt_latency_us(0.5), "0.5 µs");
        assert_eq!(fmt_latency_us(100.0), "100 µs");
        assert_eq!(fmt_rate(20_000.0), "20k");
        assert_eq!(fmt_rate(1_250_000.0), "1.25M");
        assert_eq!(fmt_rate(950.0), "950");
        assert_eq!(fmt_bytes(1024), "1 KiB");
        assert_eq!(fmt_bytes(100), "100 B");
        assert_eq!(nines_label(6.0), "99.9999%");
    }

    #[test]
    fn log_ticks_are_few_and_round() {
        assert_eq!(
            log_ticks(80.0, 25_000.0),
            vec![100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 20_000.0]
        );
        assert_eq!(log_ticks(0.8, 1e6).len(), 7);
        assert_eq!(log_ticks(150.0, 600.0), vec![150.0, 200.0, 300.0, 400.0, 500.0]);
    }

    #[test]
    fn one_run_is_titled_with_all_its_settings() {
        let (title, labels) = titles(&[("r".into(), run("produce", 64, "SYNC_FLUSH", 10.0))]);
        assert_eq!(
            title,
            "produce · mode async · size 1 KiB · conns 64 · inflight 128 · batch 1 · flush SYNC_FLUSH · duration 10 s · warm-up 1 s"
        );
        assert_eq!(labels, vec![String::new()]);
    }

    #[test]
    fn overlays_title_the_common_settings_and_label_the_differences() {
        let runs = vec![
            ("a".into(), run("produce", 1, "SYNC_FLUSH", 5.0)),
            ("b".into(), run("produce", 64, "SYNC_FLUSH", 5.0)),
        ];
        let (title, labels) = titles(&runs);
        assert_eq!(
            title,
            "produce · mode async · size 1 KiB · inflight 128 · batch 1 · flush SYNC_FLUSH · duration 5 s · warm-up 1 s"
        );
        assert_eq!(labels, vec!["conns 1".to_string(), "conns 64".to_string()]);
        // Runs that differ in nothing recorded keep their file names.
        let same = vec![
            ("x".into(), run("produce", 1, "A", 5.0)),
            ("y".into(), run("produce", 1, "A", 5.0)),
        ];
        assert_eq!(titles(&same).1, vec!["x".to_string(), "y".to_string()]);
    }

    #[test]
    fn draws_a_readable_svg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.svg");
        draw(&p, &[("r".into(), run("produce", 64, "SYNC_FLUSH", 10.0))]).expect("draw");
        let svg = std::fs::read_to_string(&p).expect("svg");
        assert!(svg.contains("flush SYNC_FLUSH"), "title");
        assert!(svg.contains("warm-up"), "warm-up marker");
        assert!(svg.contains("99.99%"));
        // Text elements hold their text on a line of its own.
        let texts: Vec<&str> = svg.lines().map(str::trim).filter(|l| !l.starts_with('<')).collect();
        assert!(
            texts.iter().any(|t| t.ends_with(" µs") || t.ends_with(" ms")),
            "latency units: {texts:?}"
        );
        assert!(texts.iter().any(|t| t.ends_with('k')), "rates: {texts:?}");
        assert!(
            !texts.iter().any(|t| t.contains(".0 ") || t.ends_with(".0")),
            "no .0 labels: {texts:?}"
        );
    }
}
