//! SVG charts of network runs with `plotters` (SVG backend, no font
//! crates: the SVG holds `<text>` elements that the viewer renders, so no
//! system fonts are needed to draw).
//!
//! Top: latency by percentile, x axis in "nines" (90 % = 1, 99 % = 2, …),
//! log-scaled latency, one line per run and operation. Bottom: messages/s
//! per second of the run.

use std::path::{Path, PathBuf};

use clap::Args;
use plotters::prelude::*;
use serde_json::Value;

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// Output SVG file.
    #[arg(long)]
    out: PathBuf,
    /// Summaries written by `--json` of produce / consume / e2e runs.
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

struct Series {
    label: String,
    points: Vec<(f64, f64)>,
}

fn latency_series(runs: &[(String, Value)]) -> Vec<Series> {
    let mut out = Vec::new();
    for (label, v) in runs {
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
                    label: format!("{label} {op}"),
                    points,
                });
            }
        }
    }
    out
}

fn throughput_series(runs: &[(String, Value)]) -> Vec<Series> {
    let mut out = Vec::new();
    for (label, v) in runs {
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
                    label: format!("{label} {op}"),
                    points,
                });
            }
        }
    }
    out
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// Draws `runs` (label, summary JSON) into one SVG.
pub fn draw(path: &Path, runs: &[(String, Value)]) -> Result<(), String> {
    let lat = latency_series(runs);
    let tput = throughput_series(runs);
    let root = SVGBackend::new(path, (1000, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(560);

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
        .caption("latency by percentile", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, (ymin * 0.8..ymax * 1.25).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(xmax as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .draw()
        .map_err(err)?;
    for (i, s) in lat.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if !lat.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
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
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&bottom)
        .caption("throughput over time", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..tmax, 0f64..rmax * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("messages/s")
        .draw()
        .map_err(err)?;
    for (i, s) in tput.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
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
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
