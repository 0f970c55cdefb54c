//! `ringfwd-bench plot`: charts from a results JSON file, as SVG and PNG.
//!
//! Owns reading the series out of any result the suite writes ([`series_of`]: a `compare` result —
//! per scenario, one latency CDF per forwarder and its throughput against offered load over every
//! search step; a `capacity` result — per template, delivered against offered load and the CDF of
//! the largest passing size; a `run` result — its CDF), drawing them with `plotters` (SVG backend,
//! the bundled DejaVu Sans registered for text metrics) and rasterising each SVG to PNG with
//! `resvg` with the same font loaded, so the PNG has its text on a machine without fonts.
//!
//! Must never measure anything or change the JSON; writes only into the output directory.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

/// The font charts are drawn with (DejaVu Sans, see `assets/DejaVuSans.LICENSE`).
pub const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Chart size, pixels.
const SIZE: (u32, u32) = (960, 600);

/// Why charts could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Reading the JSON or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON.
    #[error("{path}: not JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// No series this command knows in the file.
    #[error("{0}: no compare, capacity or run results in it")]
    Empty(PathBuf),
    /// Drawing or rasterising failed.
    #[error("drawing {chart}: {message}")]
    Draw {
        /// The chart.
        chart: String,
        /// What failed.
        message: String,
    },
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// `(x, y)` points in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File stem (`latency-cdf-conference`).
    pub name: String,
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// X axis logarithmic.
    pub log_x: bool,
    /// Lines.
    pub series: Vec<Series>,
}

fn cdf_series(label: String, step: &Value) -> Option<Series> {
    let points: Vec<(f64, f64)> = step["latency_cdf_us"]
        .as_array()?
        .iter()
        .filter_map(|p| Some((p.get(1)?.as_f64()?.max(1.0), p.get(0)?.as_f64()? * 100.0)))
        .collect();
    (!points.is_empty()).then_some(Series { label, points })
}

fn load_point(step: &Value) -> Option<(f64, f64)> {
    Some((step["target_out_pps"].as_f64()?, step["delivered_out_pps"].as_f64()?))
}

fn cdf_chart(name: &str, title: String, series: Vec<Series>) -> Chart {
    Chart {
        name: format!("latency-cdf-{name}"),
        title,
        x_label: "one-way latency, µs (log)".into(),
        y_label: "copies at or below, %".into(),
        log_x: true,
        series,
    }
}

fn load_chart(name: &str, title: String, series: Vec<Series>) -> Chart {
    Chart {
        name: format!("throughput-{name}"),
        title,
        x_label: "offered, copies/s".into(),
        y_label: "delivered, copies/s".into(),
        log_x: false,
        series,
    }
}

/// The charts of a results JSON value; a smoke test's (its `notice`) say so in every title.
pub fn series_of(json: &Value) -> Vec<Chart> {
    let mut charts = charts_of(json);
    if json["notice"].as_str().is_some() {
        for chart in &mut charts {
            chart.title = format!("SMOKE TEST, not results: {}", chart.title);
        }
    }
    charts
}

fn charts_of(json: &Value) -> Vec<Chart> {
    let mut charts = Vec::new();
    for s in json["scenarios"].as_array().into_iter().flatten() {
        let name = s["scenario"].as_str().unwrap_or("scenario");
        let forwarders = s["forwarders"].as_array().into_iter().flatten();
        let mut cdfs = Vec::new();
        let mut loads = Vec::new();
        for f in forwarders {
            let label = f["forwarder"].as_str().unwrap_or("?").to_string();
            if let Some(c) = f["fixed"].get(0).and_then(|step| cdf_series(label.clone(), step)) {
                cdfs.push(c);
            }
            let mut points: Vec<(f64, f64)> = f["searches"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|search| search["steps"].as_array().into_iter().flatten())
                .filter_map(load_point)
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !points.is_empty() {
                loads.push(Series { label, points });
            }
        }
        if !cdfs.is_empty() {
            charts.push(cdf_chart(name, format!("{name}: one-way latency at the fixed rate"), cdfs));
        }
        if !loads.is_empty() {
            charts.push(load_chart(name, format!("{name}: delivered vs offered load (every search step)"), loads));
        }
    }
    for c in json["capacity"].as_array().into_iter().flatten() {
        let name = c["scenario"].as_str().unwrap_or("capacity");
        let steps: Vec<&Value> = c["steps"].as_array().into_iter().flatten().collect();
        let mut points: Vec<(f64, f64)> = steps.iter().filter_map(|s| load_point(&s["outcome"])).collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            let series = vec![Series { label: "ringfwd, one worker".into(), points }];
            charts.push(load_chart(name, format!("{name}: delivered vs offered load by size"), series));
        }
        if let Some(best) = c["best"].get("outcome").and_then(|o| cdf_series("largest passing size".into(), o)) {
            charts.push(cdf_chart(name, format!("{name}: one-way latency at the capacity"), vec![best]));
        }
    }
    if let Some(c) = cdf_series(json["scenario"].as_str().unwrap_or("run").to_string(), &json["step"]) {
        charts.push(cdf_chart(json["scenario"].as_str().unwrap_or("run"), "one-way latency".into(), vec![c]));
    }
    charts
}

fn draw_err(chart: &Chart) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError::Draw { chart: chart.name.clone(), message }
}

/// The chart as SVG text.
pub fn render_svg(chart: &Chart) -> Result<String, PlotError> {
    // Text metrics come from the bundled font; registering twice is harmless.
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let err = draw_err(chart);
    let points = chart.series.iter().flat_map(|s| &s.points);
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Err(err("no points".into()));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut builder = ChartBuilder::on(&root);
        builder.caption(&chart.title, ("sans-serif", 20)).margin(16).x_label_area_size(48).y_label_area_size(80);
        let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
        macro_rules! draw {
            ($ctx:expr) => {{
                let mut ctx = $ctx;
                ctx.configure_mesh()
                    .x_desc(chart.x_label.as_str())
                    .y_desc(chart.y_label.as_str())
                    .label_style(("sans-serif", 14))
                    .x_labels(8)
                    .x_label_formatter(&|v: &f64| format!("{v:.0}"))
                    .y_label_formatter(&|v: &f64| format!("{v:.0}"))
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
                for (i, s) in chart.series.iter().enumerate() {
                    let color = colors[i % colors.len()];
                    ctx.draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                        .map_err(|e| err(e.to_string()))?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                }
                ctx.configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 14))
                    .position(SeriesLabelPosition::LowerRight)
                    .draw()
                    .map_err(|e| err(e.to_string()))?;
            }};
        }
        let y_top = if chart.log_x { 100.0 } else { y1 * 1.05 + 1.0 };
        if chart.log_x {
            let ctx = builder
                .build_cartesian_2d((x0.max(1.0) / 1.2..x1.max(x0.max(1.0) * 10.0) * 1.2).log_scale(), 0.0..y_top)
                .map_err(|e| err(e.to_string()))?;
            draw!(ctx);
        } else {
            let ctx = builder.build_cartesian_2d(0.0..(x1 * 1.05 + 1.0), 0.0..y_top).map_err(|e| err(e.to_string()))?;
            draw!(ctx);
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// Rasterises `svg` to PNG bytes with the bundled font.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    let mut options = resvg::usvg::Options::default();
    {
        let db = options.fontdb_mut();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
    }
    options.font_family = "DejaVu Sans".into();
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| e.to_string())?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("empty image")?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| e.to_string())
}

/// Writes every chart of the results file `json_path` into `out_dir` as `NAME.svg` and `NAME.png`;
/// returns the files written.
pub fn plot_file(json_path: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PlotError::Io { path, source }
    };
    let text = std::fs::read_to_string(json_path).map_err(io(json_path))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| PlotError::Json { path: json_path.to_path_buf(), message: e.to_string() })?;
    let charts = series_of(&json);
    if charts.is_empty() {
        return Err(PlotError::Empty(json_path.to_path_buf()));
    }
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut written = Vec::new();
    for chart in &charts {
        let svg = render_svg(chart)?;
        let png = svg_to_png(&svg).map_err(draw_err(chart))?;
        let svg_path = out_dir.join(format!("{}.svg", chart.name));
        let png_path = out_dir.join(format!("{}.png", chart.name));
        std::fs::write(&svg_path, &svg).map_err(io(&svg_path))?;
        std::fs::write(&png_path, &png).map_err(io(&png_path))?;
        written.extend([svg_path, png_path]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compare result as the suite writes it, cut down to what charts read.
    fn fixture() -> Value {
        let step = |target: f64, delivered: f64| {
            serde_json::json!({"target_out_pps": target, "delivered_out_pps": delivered,
                "latency_cdf_us": [[0.0, 20.0], [0.5, 45.0], [0.99, 1800.0], [1.0, 5000.0]]})
        };
        let forwarder = |name: &str, max: f64| {
            serde_json::json!({"forwarder": name,
                "searches": [{"max_out_pps": max, "steps": [step(1000.0, 1000.0), step(4000.0, 4000.0), step(16000.0, max)]}],
                "fixed": [step(max / 2.0, max / 2.0)], "at_max": []})
        };
        serde_json::json!({"scenarios": [{"scenario": "flat", "forwarders": [forwarder("ringfwd", 15000.0), forwarder("mmsg", 9000.0)]}]})
    }

    #[test]
    fn compare_results_give_a_cdf_and_a_load_chart_per_scenario() {
        let charts = series_of(&fixture());
        let names: Vec<&str> = charts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["latency-cdf-flat", "throughput-flat"]);
        assert_eq!(charts[0].series.len(), 2);
        assert_eq!(charts[0].series[0].points[2], (1800.0, 99.0));
        assert_eq!(charts[1].series[1].points.last(), Some(&(16000.0, 9000.0)));
        assert!(series_of(&serde_json::json!({"x": 1})).is_empty());
    }

    #[test]
    fn a_smoke_tests_charts_say_so() {
        let mut json = fixture();
        assert!(series_of(&json).iter().all(|c| !c.title.contains("SMOKE TEST")));
        json["notice"] = crate::compare::SMOKE_TEST_NOTICE.into();
        assert!(series_of(&json).iter().all(|c| c.title.starts_with("SMOKE TEST, not results: ")));
    }

    #[test]
    fn files_are_valid_svg_and_png_with_text() {
        let dir = std::env::temp_dir().join(format!("ringfwd-bench-plot-{}", std::process::id()));
        let json = dir.join("r.json");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&json, fixture().to_string()).unwrap();
        let written = plot_file(&json, &dir.join("out")).unwrap();
        assert_eq!(written.len(), 4);
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..80]);
        assert!(svg.contains("ringfwd") && svg.contains("one-way latency"));
        let png = std::fs::read(&written[1]).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Text was rasterised: the picture has far more dark pixels than the axes and lines alone
        // would give when drawn without any glyph (checked against the same chart without labels).
        let without_text = Chart {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            ..series_of(&fixture())[0].clone()
        };
        let dark = |png: &[u8]| {
            let pixmap = resvg::tiny_skia::Pixmap::decode_png(png).unwrap();
            pixmap.pixels().iter().filter(|p| p.red() < 100 && p.green() < 100 && p.blue() < 100).count()
        };
        let bare = svg_to_png(&render_svg(&without_text).unwrap()).unwrap();
        assert!(dark(&png) > dark(&bare) + 500, "{} vs {}", dark(&png), dark(&bare));
        let err = plot_file(&dir.join("missing.json"), &dir).unwrap_err().to_string();
        assert!(err.contains("missing.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
