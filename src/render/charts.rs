//! SVG charts for the HTML report, drawn with plotters' SVG backend into strings so the
//! report stays one self-contained file.
//!
//! Latency percentile curves follow HdrHistogram's percentile-distribution plot (Gil Tene,
//! "How NOT to measure latency"): the x axis is the "nines" scale −log₁₀(1 − q), so 90%, 99%,
//! 99.9% and 99.99% are equally spaced and the tail is visible. Each environment's curve is
//! the merge of its rounds' histograms of every request for the scenario (a failed one at the
//! time it took to fail), decoded from the artifact's V2-deflate, base64
//! `all_requests_histogram` field, or `histogram` where an artifact predates it.
//!
//! "Inside the window" is Tufte's small multiples: one small panel per environment, every
//! round drawn thin, each row (throughput, p99) on one scale for every panel, so the
//! environments compare by position alone.

use hdrhistogram::Histogram;
use plotters::coord::combinators::IntoLogRange;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ExportError;
use crate::artifact::histogram::decode;
use crate::artifact::series::WindowSeries;
use crate::artifact::{Artifact, Estimate, SummaryRow};
use crate::format::{env_title, number};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 380;
/// Furthest percentile shown: 99.999%.
const MAX_NINES: f64 = 5.0;
/// Points per decade of the nines scale.
const STEPS_PER_NINE: usize = 20;

/// One color per environment, in order, readable on white and distinguishable in print.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The color of the environment at `index`.
pub(crate) fn color(index: usize) -> RGBColor {
    COLORS[index % COLORS.len()]
}

/// A scenario's latency curves: the chart's SVG (when any environment had a readable,
/// non-empty histogram) and a note for every histogram that could not be read.
pub(crate) struct LatencyChart {
    /// The SVG, absent when no curve could be drawn.
    pub svg: Option<String>,
    /// Problems with individual histograms, for the report to show.
    pub problems: Vec<String>,
}

/// The percentile curve of every environment for `scenario`.
pub(crate) fn latency_curves(
    artifact: &Artifact,
    scenario: &str,
) -> Result<LatencyChart, ExportError> {
    let mut problems = Vec::new();
    // (environment index, column title, (nines, ms) points)
    type Curve = (usize, String, Vec<(f64, f64)>);
    let mut curves: Vec<Curve> = Vec::new();
    for (index, env) in artifact.environments.iter().enumerate() {
        let mut merged: Option<Histogram<u64>> = None;
        for run in env
            .rounds
            .iter()
            .flat_map(|r| &r.scenarios)
            .filter(|s| s.scenario == scenario)
        {
            match decode(run.load.request_histogram()) {
                Ok(h) => match merged.as_mut() {
                    None => merged = Some(h),
                    Some(m) => {
                        if let Err(e) = m.add(&h) {
                            problems.push(format!(
                                "{}: cannot merge histograms: {e:?}",
                                env.label.name
                            ));
                        }
                    }
                },
                Err(reason) => problems.push(format!(
                    "{}: unreadable latency histogram: {reason}",
                    env.label.name
                )),
            }
        }
        let Some(histogram) = merged.filter(|h| !h.is_empty()) else {
            continue;
        };
        curves.push((index, env_title(&env.label), percentile_curve(&histogram)));
    }
    if curves.is_empty() {
        return Ok(LatencyChart {
            svg: None,
            problems,
        });
    }

    let max_x = curves
        .iter()
        .flat_map(|(_, _, points)| points.last().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let max_y = curves
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let min_y = curves
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    let chart_name = format!("latency ({scenario})");
    let fail = |e: &dyn std::fmt::Display| ExportError::Chart {
        chart: chart_name.clone(),
        reason: e.to_string(),
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        // Log latency axis: tails of an emulated VM are orders of magnitude above native.
        let y_range = (min_y.max(0.001) * 0.8..max_y * 1.25).log_scale();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Latency by percentile: {scenario}"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_x, y_range)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_labels(max_x.ceil() as usize + 1)
            .y_labels(6)
            // A log axis draws a light line at every minor value; they drown the curves.
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|x| nines_label(*x))
            .y_label_formatter(&|y| number(*y))
            .draw()
            .map_err(|e| fail(&e))?;
        for (index, title, points) in curves {
            let color = color(index);
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(title)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(LatencyChart {
        svg: Some(svg),
        problems,
    })
}

/// One slot of a bar chart: its title under the axis and its interval, drawn as an error bar
/// around its median.
struct Slot {
    title: String,
    median: f64,
    low: f64,
    high: f64,
}

impl Slot {
    fn new(title: String, estimate: &Estimate) -> Self {
        Self {
            title,
            median: estimate.median,
            low: estimate.ci_low,
            high: estimate.ci_high,
        }
    }
}

/// The bars' drawing area: slot `i` spans `[i, i + 1]` on x, the value is on y.
type BarChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// What both bar charts share: the caption, the axes (y from 0 to past every slot's median,
/// interval and `reach`), the bars `draw_bars` fills in, then each slot's interval as an
/// error bar and its title. `chart` names the chart in errors.
fn slotted_bars(
    chart: &str,
    caption: &str,
    unit: &str,
    width: u32,
    slots: &[Slot],
    reach: f64,
    draw_bars: impl FnOnce(&mut BarChart<'_, '_>) -> Result<(), DrawingAreaErrorKind<std::io::Error>>,
) -> Result<String, ExportError> {
    let fail = |e: &dyn std::fmt::Display| ExportError::Chart {
        chart: chart.to_owned(),
        reason: e.to_string(),
    };
    let highest = slots
        .iter()
        .map(|slot| slot.high.max(slot.median))
        .fold(reach, f64::max);
    let max_y = if highest > 0.0 { highest * 1.15 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut bar_chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(60)
            // The labels are drawn below the axis by hand, because plotters' segmented axes
            // mis-place a single segment.
            .build_cartesian_2d(0.0..slots.len() as f64, 0.0..max_y)
            .map_err(|e| fail(&e))?;
        bar_chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .y_desc(unit)
            .x_labels(0)
            .y_label_formatter(&|y| number(*y))
            .draw()
            .map_err(|e| fail(&e))?;
        draw_bars(&mut bar_chart).map_err(|e| fail(&e))?;
        bar_chart
            .draw_series(slots.iter().enumerate().map(|(index, slot)| {
                ErrorBar::new_vertical(
                    index as f64 + 0.5,
                    slot.low,
                    slot.median,
                    slot.high,
                    BLACK.stroke_width(2),
                    12,
                )
            }))
            .map_err(|e| fail(&e))?;
        let label_style = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (index, slot) in slots.iter().enumerate() {
            let (x, y) = bar_chart.backend_coord(&(index as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                slot.title.clone(),
                (x, y + 6),
                label_style.clone(),
            ))
            .map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// Bars of each environment's median with its interval as an error bar, for one summary row.
/// `None` when no environment has an estimate in the row.
pub(crate) fn bars(artifact: &Artifact, row: &SummaryRow) -> Result<Option<String>, ExportError> {
    // (environment's index, for its color; its slot)
    let bars: Vec<(usize, Slot)> = artifact
        .environments
        .iter()
        .enumerate()
        .filter_map(|(index, env)| {
            let estimate = row.estimates.get(&env.label.name)?;
            Some((index, Slot::new(env_title(&env.label), estimate)))
        })
        .collect();
    if bars.is_empty() {
        return Ok(None);
    }
    let (colors, slots): (Vec<usize>, Vec<Slot>) = bars.into_iter().unzip();
    let svg = slotted_bars(
        &row.metric,
        &format!("{} ({})", row.metric, row.unit),
        &row.unit,
        WIDTH / 2,
        &slots,
        0.0,
        |chart| {
            chart.draw_series(colors.iter().zip(&slots).enumerate().map(
                |(index, (color_index, slot))| {
                    let left = index as f64 + 0.15;
                    Rectangle::new(
                        [(left, 0.0), (left + 0.7, slot.median)],
                        color(*color_index).mix(0.8).filled(),
                    )
                },
            ))?;
            Ok(())
        },
    )?;
    Ok(Some(svg))
}

/// The ladder at a glance: one bar per rung, least isolated first, each drawn as what the
/// rung below already cost (light) plus this rung's own step (dark: red where the step costs,
/// green where it saves), with the rung's interval as an error bar. `None` when no rung has
/// the metric.
pub(crate) fn ladder_steps(
    ladder: &crate::analysis::ladder::Ladder,
    metric: crate::analysis::ladder::LadderMetric,
) -> Result<Option<String>, ExportError> {
    // (the rung below's median, where there is a rung below; the rung's slot)
    let rungs: Vec<(Option<f64>, Slot)> = ladder
        .steps
        .iter()
        .filter_map(|step| {
            let cost = step.cost(metric)?;
            let value = cost.value.as_ref()?;
            let below = cost.delta_over_below.map(|d| value.median - d);
            Some((below, Slot::new(step.env.clone(), value)))
        })
        .collect();
    if rungs.is_empty() {
        return Ok(None);
    }
    let higher_is_better = metric.higher_is_better();
    let (belows, slots): (Vec<Option<f64>>, Vec<Slot>) = rungs.into_iter().unzip();
    let highest_below = belows.iter().flatten().copied().fold(0.0_f64, f64::max);
    let title = format!("the ladder: {} ({})", metric.name(), metric.unit());
    let svg = slotted_bars(
        &title,
        &title,
        metric.unit(),
        WIDTH / 2 + 120,
        &slots,
        highest_below,
        |chart| {
            let inherited = RGBColor(200, 200, 200);
            for (index, (below, slot)) in belows.iter().zip(&slots).enumerate() {
                let median = slot.median;
                let left = index as f64 + 0.15;
                let right = left + 0.7;
                let base = below.unwrap_or(0.0).min(median);
                let mut rectangles = vec![Rectangle::new(
                    [(left, 0.0), (right, base)],
                    inherited.filled(),
                )];
                if let Some(below) = below {
                    let worse = (median > *below) != higher_is_better;
                    let step_color = if worse {
                        RGBColor(214, 39, 40)
                    } else {
                        RGBColor(44, 160, 44)
                    };
                    rectangles.push(Rectangle::new(
                        [(left, *below), (right, median)],
                        step_color.mix(0.85).filled(),
                    ));
                } else {
                    rectangles.push(Rectangle::new(
                        [(left, 0.0), (right, median)],
                        color(0).mix(0.8).filled(),
                    ));
                }
                chart.draw_series(rectangles)?;
            }
            Ok(())
        },
    )?;
    Ok(Some(svg))
}

/// One environment's latency-under-load curve: p99 (solid, with points) and p50 (dashed)
/// against the requested rate, the p99 limit as a horizontal line and the environment's own
/// ceiling as a vertical one. `y_range_ms` is shared by every environment's chart so they
/// compare at a glance; the latency axis is logarithmic because latency past saturation is
/// orders of magnitude above the unloaded figure.
pub(crate) fn latency_under_load(
    curve: &crate::analysis::sweep::Curve,
    title: &str,
    y_range_ms: (f64, f64),
    p99_limit_ms: f64,
) -> Result<String, ExportError> {
    let chart_name = format!("latency under load ({title})");
    let fail = |e: &dyn std::fmt::Display| ExportError::Chart {
        chart: chart_name.clone(),
        reason: e.to_string(),
    };
    // Infinite latencies (no answer at all) are drawn at the top of the axis.
    let clamp = |ms: f64| ms.clamp(y_range_ms.0, y_range_ms.1);
    let p99: Vec<(f64, f64)> = curve
        .points
        .iter()
        .map(|p| (p.requested_rps, clamp(p.p99_ms)))
        .collect();
    let p50: Vec<(f64, f64)> = curve
        .points
        .iter()
        .map(|p| (p.requested_rps, clamp(p.p50_ms)))
        .collect();
    let max_x = curve
        .points
        .iter()
        .map(|p| p.requested_rps)
        .fold(curve.ceiling_rps, f64::max)
        * 1.05;
    let color = color(curve.index);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH / 2, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_x, (y_range_ms.0..y_range_ms.1).log_scale())
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("requested rate (req/s)")
            .y_desc("latency (ms)")
            .x_labels(5)
            .y_labels(6)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|x| number(*x))
            .y_label_formatter(&|y| number(*y))
            .draw()
            .map_err(|e| fail(&e))?;
        let limit_style = RGBColor(120, 120, 120).stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, p99_limit_ms), (max_x, p99_limit_ms)],
                4,
                4,
                limit_style,
            ))
            .map_err(|e| fail(&e))?
            .label(format!("p99 limit {} ms", number(p99_limit_ms)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], limit_style));
        chart
            .draw_series(LineSeries::new(
                [
                    (curve.ceiling_rps, y_range_ms.0),
                    (curve.ceiling_rps, y_range_ms.1),
                ],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(|e| fail(&e))?
            .label("own ceiling (closed loop)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.3)));
        chart
            .draw_series(LineSeries::new(p99.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label("p99")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(p99.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(DashedLineSeries::new(p50, 6, 3, color.stroke_width(1)))
            .map_err(|e| fail(&e))?
            .label("p50")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// One rung's memory against the number of instances: (a) the instances' PSS summed and (b)
/// the host's used memory less before the rung, each as measured points joined by lines,
/// and the least-squares line of (a) dashed, so a reader sees how straight the ramp is and
/// where the two accountings part.
pub(crate) fn density_memory(
    rung: &crate::artifact::density::DensityRung,
    fit: Option<&crate::artifact::density::LinearFit>,
    index: usize,
) -> Result<Option<String>, ExportError> {
    if rung.steps.is_empty() {
        return Ok(None);
    }
    let title = env_title(&rung.label);
    let chart_name = format!("memory against instances ({title})");
    let fail = |e: &dyn std::fmt::Display| ExportError::Chart {
        chart: chart_name.clone(),
        reason: e.to_string(),
    };
    let instances = crate::analysis::density::instance_points(rung);
    let host = crate::analysis::density::host_points(
        rung,
        crate::artifact::density::HostMemory::used_bytes,
    );
    let max_x = instances.len() as f64 + 0.5;
    let all_y = instances.iter().chain(&host).map(|p| p.1);
    let max_y = all_y.clone().fold(1.0, f64::max) * 1.1;
    let min_y = all_y.fold(0.0, f64::min) * 1.1;
    let color = color(index);
    let host_color = RGBColor(120, 120, 120);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH / 2, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_x, min_y..max_y)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("instances running")
            .y_desc("memory (MiB)")
            .x_labels(instances.len().min(10) + 1)
            .y_labels(6)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| number(*y))
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(instances.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label("(a) instances' PSS, summed")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(instances.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(host.clone(), host_color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label("(b) host used (MemTotal − MemAvailable), less before")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], host_color.stroke_width(2))
            });
        chart
            .draw_series(host.iter().map(|p| Circle::new(*p, 3, host_color.filled())))
            .map_err(|e| fail(&e))?;
        if let Some(fit) = fit {
            let line = [
                (0.0, fit.intercept_mib),
                (max_x, fit.intercept_mib + fit.slope_mib * max_x),
            ];
            chart
                .draw_series(DashedLineSeries::new(line, 6, 3, color.stroke_width(1)))
                .map_err(|e| fail(&e))?
                .label("least-squares line of (a)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Some(svg))
}

/// Each environment's median startup phases as one stacked horizontal bar (phase medians
/// over the rounds, in the order the rounds report them), so a reader sees whether firmware,
/// kernel, engine or service is the cost. `None` when no environment reports phases.
pub(crate) fn startup_phases(artifact: &Artifact) -> Result<Option<String>, ExportError> {
    // (column title, [(phase, median ms)])
    let mut rows: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for env in &artifact.environments {
        let mut names: Vec<String> = Vec::new();
        let mut samples: Vec<Vec<f64>> = Vec::new();
        for phase in env.rounds.iter().flat_map(|r| &r.startup_phases) {
            match names.iter().position(|n| *n == phase.name) {
                Some(i) => samples[i].push(phase.duration_ms),
                None => {
                    names.push(phase.name.clone());
                    samples.push(vec![phase.duration_ms]);
                }
            }
        }
        if names.is_empty() {
            continue;
        }
        let medians = samples.into_iter().map(|mut v| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        });
        rows.push((
            env_title(&env.label),
            names.into_iter().zip(medians).collect(),
        ));
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let fail = |e: &dyn std::fmt::Display| ExportError::Chart {
        chart: "startup phases".into(),
        reason: e.to_string(),
    };
    let max_x = rows
        .iter()
        .map(|(_, phases)| phases.iter().map(|p| p.1).sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.05;
    let height = 90 + 70 * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Startup, phase by phase (medians)", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(10)
            .build_cartesian_2d(0.0..max_x, 0.0..rows.len() as f64)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("ms")
            .y_labels(0)
            .x_label_formatter(&|x| number(*x))
            .draw()
            .map_err(|e| fail(&e))?;
        let text = ("sans-serif", 11).into_font().color(&BLACK);
        for (slot, (title, phases)) in rows.iter().enumerate() {
            let (bottom, top) = (slot as f64 + 0.15, slot as f64 + 0.6);
            let mut from = 0.0;
            for (i, (name, ms)) in phases.iter().enumerate() {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(from, bottom), (from + ms, top)],
                        color(i).mix(0.8).filled(),
                    )))
                    .map_err(|e| fail(&e))?;
                // Label every phase under its bar, staggered so short phases stay readable.
                let (x, y) = chart.backend_coord(&(from, bottom));
                let line = (i % 2) as i32 * 12;
                root.draw(&Text::new(
                    format!("{name} {}", number(*ms)),
                    (x + 2, y + 2 + line),
                    text.clone(),
                ))
                .map_err(|e| fail(&e))?;
                from += ms;
            }
            let (x, y) = chart.backend_coord(&(0.0, top));
            root.draw(&Text::new(title.clone(), (x + 2, y - 14), text.clone()))
                .map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(Some(svg))
}

/// Width of one small multiple of the "inside the window" figure, pixels (the page scales it).
const PANEL_WIDTH: u32 = 280;
/// Its height: the caption, the throughput plot and the p99 plot under it.
const PANEL_HEIGHT: u32 = 310;
/// Height of the throughput plot within the panel, below the caption.
const PANEL_TOP_HEIGHT: i32 = 132;
/// Discarded warm-up slices: grey, dashed.
const DISCARDED: RGBColor = RGBColor(150, 150, 150);
/// A stall's band.
const STALL: RGBColor = RGBColor(230, 57, 70);

/// One environment's small multiple of a scenario's "inside the window" figure.
pub(crate) struct WindowPanel {
    /// The environment's index in the artifact.
    pub index: usize,
    /// The panel's SVG.
    pub svg: String,
}

/// The axes every panel of one figure shares, so environments compare at a glance.
struct WindowScales {
    /// Longest window, seconds.
    max_s: f64,
    /// Top of the throughput axis, req/s.
    max_rps: f64,
    /// The p99 axis (logarithmic), ms.
    p99_ms: (f64, f64),
}

/// One round's lines in a panel: each slice's value at its midpoint (seconds), the first
/// `discarded` of them warm-up kept out of the figures, and its stalls' spans (seconds).
struct RoundLine {
    points: Vec<(f64, Option<f64>)>,
    discarded: usize,
    stalls: Vec<(f64, f64)>,
}

impl RoundLine {
    fn new(series: &WindowSeries, values: Vec<Option<f64>>) -> Self {
        let points = crate::analysis::series::slice_spans_ms(series)
            .into_iter()
            .map(|(start, end)| (start + end) / 2000.0)
            .zip(values)
            .collect();
        Self {
            points,
            discarded: series.discarded_slices,
            stalls: crate::analysis::series::stall_spans_ms(series)
                .into_iter()
                .map(|(start, end)| (start / 1000.0, end / 1000.0))
                .collect(),
        }
    }

    /// The runs of consecutive known points among `range`, each a polyline.
    fn segments(&self, range: std::ops::Range<usize>) -> Vec<Vec<(f64, f64)>> {
        let mut segments = vec![Vec::new()];
        for (x, y) in
            &self.points[range.start.min(self.points.len())..range.end.min(self.points.len())]
        {
            match y {
                Some(y) => segments.last_mut().expect("never empty").push((*x, *y)),
                None => segments.push(Vec::new()),
            }
        }
        segments.retain(|segment| !segment.is_empty());
        segments
    }
}

/// Draws `lines` on one plot of a panel: the stalls as bands, the discarded slices grey and
/// dashed (joined to the first kept one), the kept ones thin in the environment's `color`;
/// values are clamped into `y_span`.
fn draw_round_lines<Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, Y>>,
    lines: &[RoundLine],
    color: RGBColor,
    y_span: (f64, f64),
) -> Result<(), DrawingAreaErrorKind<std::io::Error>>
where
    Y: Ranged<ValueType = f64>,
{
    let clamp = |segment: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        segment
            .into_iter()
            .map(|(x, y)| (x, y.clamp(y_span.0, y_span.1)))
            .collect()
    };
    for line in lines {
        chart.draw_series(line.stalls.iter().map(|(start, end)| {
            Rectangle::new(
                [(*start, y_span.0), (*end, y_span.1)],
                STALL.mix(0.15).filled(),
            )
        }))?;
    }
    for line in lines {
        for segment in line.segments(0..line.discarded + 1) {
            if line.discarded > 0 && segment.len() > 1 {
                chart.draw_series(DashedLineSeries::new(
                    clamp(segment),
                    4,
                    3,
                    DISCARDED.stroke_width(1),
                ))?;
            }
        }
        for segment in line.segments(line.discarded..line.points.len()) {
            let segment = clamp(segment);
            if segment.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(segment[0], 1, color.filled())))?;
            } else {
                chart.draw_series(LineSeries::new(segment, color.mix(0.8).stroke_width(1)))?;
            }
        }
    }
    Ok(())
}

/// An axis label: `250`, `2.5`, `12k`, `1.5k` (no trailing zeros; thousands as `k`, for a
/// narrow panel).
fn axis_label(value: f64) -> String {
    let trim = |text: String| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            text
        }
    };
    if value.abs() >= 1000.0 {
        format!("{}k", trim(format!("{:.1}", value / 1000.0)))
    } else {
        trim(number(value))
    }
}

/// The "inside the window" figure of `scenario`: one small multiple per environment (all
/// of them, in order; one without any window of the scenario says so), each with every
/// round's throughput per slice over the window above and its p99 per slice below, on
/// axes shared by every panel. `None` when no window of the scenario recorded a series.
pub(crate) fn window_multiples(
    artifact: &Artifact,
    scenario: &str,
) -> Result<Option<Vec<WindowPanel>>, ExportError> {
    use crate::analysis::series::{scenario_runs, throughput_rps, window_counts};
    let per_env: Vec<Vec<&WindowSeries>> = artifact
        .environments
        .iter()
        .map(|env| {
            scenario_runs(env, scenario)
                .filter_map(|run| run.load.series.as_ref())
                .collect()
        })
        .collect();
    let every = || per_env.iter().flatten();
    if every().next().is_none() {
        return Ok(None);
    }
    let max_s = every()
        .map(|s| s.window_ms / 1000.0)
        .fold(0.0_f64, f64::max);
    let max_rps = every()
        .flat_map(|s| throughput_rps(s))
        .flatten()
        .fold(0.0_f64, f64::max);
    let p99 = every()
        .flat_map(|s| s.p99_us.iter().flatten())
        .map(|us| us / 1000.0)
        .filter(|ms| ms.is_finite() && *ms > 0.0);
    let (low, high) = p99.fold((f64::INFINITY, 0.0_f64), |(lo, hi), ms| {
        (lo.min(ms), hi.max(ms))
    });
    // Whole decades: plotters labels a log axis at powers of ten only, so both ends get one.
    let p99_ms = if high > 0.0 {
        (
            10f64.powf((low * 0.9).log10().floor()),
            10f64.powf((high * 1.1).log10().ceil()),
        )
    } else {
        (0.1, 10.0)
    };
    let scales = WindowScales {
        max_s: if max_s > 0.0 { max_s } else { 1.0 },
        max_rps: if max_rps > 0.0 { max_rps * 1.1 } else { 1.0 },
        p99_ms,
    };
    let mut panels = Vec::new();
    for (index, (env, series)) in artifact.environments.iter().zip(&per_env).enumerate() {
        let counts = window_counts(scenario_runs(env, scenario));
        let mut title = env_title(&env.label);
        for (count, mark) in [
            (counts.warming_up, super::WARMING_MARK),
            (counts.stalled, super::STALL_MARK),
            (counts.drifted, super::DRIFT_MARK),
        ] {
            if count > 0 {
                title.push(' ');
                title.push_str(mark);
            }
        }
        let svg = window_panel(&title, index, series, &scales)?;
        panels.push(WindowPanel { index, svg });
    }
    Ok(Some(panels))
}

/// One panel: `title` above, every round's throughput per slice, then its p99 per slice
/// (log scale), in the environment's colour.
fn window_panel(
    title: &str,
    index: usize,
    series: &[&WindowSeries],
    scales: &WindowScales,
) -> Result<String, ExportError> {
    let chart_name = format!("inside the window ({title})");
    let fail = |e: &dyn std::fmt::Display| ExportError::Chart {
        chart: chart_name.clone(),
        reason: e.to_string(),
    };
    let color = color(index);
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (PANEL_WIDTH, PANEL_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let body = root
            .titled(title, ("sans-serif", 15))
            .map_err(|e| fail(&e))?;
        if series.is_empty() {
            let style = ("sans-serif", 13)
                .into_font()
                .color(&BLACK.mix(0.6))
                .pos(Pos::new(HPos::Center, VPos::Center));
            body.draw(&Text::new(
                "no time series recorded",
                (PANEL_WIDTH as i32 / 2, (PANEL_HEIGHT as i32 - 30) / 2),
                style,
            ))
            .map_err(|e| fail(&e))?;
        } else {
            draw_window_plots(&body, series, color, scales).map_err(|e| fail(&e))?;
        }
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

/// The two plots of a panel that has windows to draw: throughput above, p99 below.
fn draw_window_plots(
    body: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[&WindowSeries],
    color: RGBColor,
    scales: &WindowScales,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let (top, bottom) = body.split_vertically(PANEL_TOP_HEIGHT);
    let label_style = ("sans-serif", 11);

    let throughput: Vec<RoundLine> = series
        .iter()
        .map(|s| RoundLine::new(s, crate::analysis::series::throughput_rps(s)))
        .collect();
    let mut chart = ChartBuilder::on(&top)
        .margin_top(6)
        .margin_right(14)
        .margin_left(4)
        .x_label_area_size(20)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..scales.max_s, 0.0..scales.max_rps)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.08))
        .x_labels(6)
        .y_labels(5)
        .label_style(label_style)
        .axis_desc_style(label_style)
        .y_desc("req/s")
        .x_label_formatter(&|x| axis_label(*x))
        .y_label_formatter(&|y| axis_label(*y))
        .draw()?;
    draw_round_lines(&mut chart, &throughput, color, (0.0, scales.max_rps))?;

    let p99: Vec<RoundLine> = series
        .iter()
        .map(|s| {
            let ms = s.p99_us.iter().map(|us| us.map(|us| us / 1000.0)).collect();
            RoundLine::new(s, ms)
        })
        .collect();
    let (low, high) = scales.p99_ms;
    let mut chart = ChartBuilder::on(&bottom)
        .margin_top(10)
        .margin_right(14)
        .margin_left(4)
        .x_label_area_size(34)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..scales.max_s, (low..high).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.08))
        .x_labels(6)
        .y_labels(5)
        .label_style(label_style)
        .axis_desc_style(label_style)
        .x_desc("seconds into the window")
        .y_desc("p99 (ms)")
        .x_label_formatter(&|x| axis_label(*x))
        .y_label_formatter(&|y| axis_label(*y))
        .draw()?;
    draw_round_lines(&mut chart, &p99, color, (low, high))?;
    Ok(())
}

/// (nines, latency ms) points from the median out to the deepest percentile the sample
/// count supports (at most [`MAX_NINES`]).
fn percentile_curve(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    // With N samples, percentiles beyond 1 − 1/N are all the maximum: stop there.
    let supported = (histogram.len() as f64).log10().clamp(1.0, MAX_NINES);
    let steps = (supported * STEPS_PER_NINE as f64).ceil() as usize;
    (0..=steps)
        .map(|i| {
            let nines = (i as f64 / STEPS_PER_NINE as f64).min(supported);
            let quantile = 1.0 - 10f64.powf(-nines);
            let value_us = histogram.value_at_quantile(quantile) as f64;
            (nines, value_us / 1000.0)
        })
        .collect()
}

/// The label of a point on the nines scale: 0 → 0%, 1 → 90%, 2 → 99%, 3 → 99.9%.
fn nines_label(nines: f64) -> String {
    let percent = (1.0 - 10f64.powf(-nines)) * 100.0;
    let decimals = (nines.round() as i64 - 2).clamp(0, 6) as usize;
    format!("{percent:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::summarize::summarize;
    use crate::artifact::fixture;

    #[test]
    fn startup_phases_stack_per_environment_with_their_medians() {
        use crate::artifact::StartupPhase;
        let mut artifact = fixture::artifact();
        assert!(startup_phases(&artifact).unwrap().is_none());
        let vm = artifact
            .environments
            .iter_mut()
            .find(|e| e.label.name == "vm")
            .unwrap();
        for (round, kernel_ms) in vm.rounds.iter_mut().zip([3000.0, 1000.0, 2000.0]) {
            round.startup_phases = vec![
                StartupPhase {
                    name: "firmware".into(),
                    duration_ms: 500.0,
                },
                StartupPhase {
                    name: "kernel init".into(),
                    duration_ms: kernel_ms,
                },
            ];
        }
        let svg = startup_phases(&artifact).unwrap().unwrap();
        assert!(svg.contains("firmware 500"), "{svg}");
        // The median of 3000, 1000 and 2000.
        assert!(
            svg.contains("kernel init 2000") || svg.contains("kernel init 2,000"),
            "{svg}"
        );
    }

    #[test]
    fn window_axes_are_labelled_short() {
        assert_eq!(axis_label(12_000.0), "12k");
        assert_eq!(axis_label(2_500.0), "2.5k");
        assert_eq!(axis_label(500.0), "500");
        assert_eq!(axis_label(10.0), "10");
        assert_eq!(axis_label(0.5), "0.5");
        assert_eq!(axis_label(0.0), "0");
    }

    #[test]
    fn window_multiples_share_their_axes_and_skip_scenarios_without_series() {
        let mut artifact = fixture::artifact();
        let panels = window_multiples(&artifact, "health").unwrap().unwrap();
        assert_eq!(panels.len(), 3);
        // One scale per row: every panel's throughput axis tops out at the same label.
        let tops: Vec<bool> = panels.iter().map(|p| p.svg.contains("\n10k\n")).collect();
        assert_eq!(tops, [true, true, true]);
        assert!(window_multiples(&artifact, "sweep").unwrap().is_none());
        for run in artifact
            .environments
            .iter_mut()
            .flat_map(|e| &mut e.rounds)
            .flat_map(|r| &mut r.scenarios)
        {
            run.load.series = None;
        }
        assert!(window_multiples(&artifact, "health").unwrap().is_none());
    }

    #[test]
    fn nines_are_labelled_as_percentiles() {
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(4.0), "99.99%");
    }

    #[test]
    fn the_fixture_histogram_decodes_to_its_percentiles() {
        let encoded = fixture::histogram([400.0, 600.0, 1000.0, 2000.0, 4000.0]);
        let h = decode(&encoded).unwrap();
        assert_eq!(h.len(), 10_000);
        // 50% of samples at 400 µs, 40% at 600: the median is 400 µs, p99.9 is 2000 µs
        // (within HdrHistogram's 3 significant digits).
        assert!(h.equivalent(h.value_at_quantile(0.5), 400));
        assert!(h.equivalent(h.value_at_quantile(0.999), 2000));
        let curve = percentile_curve(&h);
        assert_eq!(curve.first().unwrap().0, 0.0);
        assert_eq!(
            curve.last().unwrap().0,
            4.0,
            "10 000 samples support four nines"
        );
        assert!(
            curve.windows(2).all(|w| w[0].1 <= w[1].1),
            "percentiles never decrease"
        );
    }

    #[test]
    fn garbage_histograms_are_reported_not_fatal() {
        let mut artifact = fixture::artifact();
        artifact.environments[0].rounds[0].scenarios[0]
            .load
            .histogram = "not base64!".into();
        let chart = latency_curves(&artifact, "health").unwrap();
        assert!(
            chart.svg.is_some(),
            "the other rounds and environments still draw"
        );
        assert_eq!(chart.problems.len(), 1);
        assert!(
            chart.problems[0].starts_with("native: unreadable"),
            "{:?}",
            chart.problems
        );
    }

    #[test]
    fn a_single_bar_draws() {
        let mut artifact = fixture::artifact();
        artifact.environments.truncate(1);
        let summary = summarize(&artifact);
        let startup = summary.rows.iter().find(|r| r.metric == "startup").unwrap();
        let svg = bars(&artifact, startup).unwrap().unwrap();
        assert!(svg.contains("\nnative\n"), "{svg}");
        assert!(svg.matches("<rect").count() >= 2, "background and the bar");
    }

    #[test]
    fn latency_under_load_draws_both_percentiles_and_the_limit() {
        let artifact = fixture::with_sweep();
        let curves = crate::analysis::sweep::curves(&artifact);
        let svg =
            latency_under_load(&curves[2], "vm (TCG, emulated)", (0.1, 1000.0), 10.0).unwrap();
        assert!(svg.contains("viewBox"), "scales with the page");
        assert!(svg.contains("p99 limit 10.0 ms"));
        assert!(svg.contains("own ceiling"));
        // p99 line, ceiling line; p50 and the limit are dashed (many short paths).
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        assert_eq!(
            svg.matches("<circle").count(),
            fixture::SWEEP_FRACTIONS.len(),
            "one marker per p99 point"
        );
    }

    #[test]
    fn charts_are_svg_with_one_series_per_environment() {
        let artifact = fixture::artifact();
        let chart = latency_curves(&artifact, "health").unwrap();
        let svg = chart.svg.unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.matches("<polyline").count() >= 3);
        assert!(svg.contains("vm (TCG, emulated)"));
        let summary = summarize(&artifact);
        let startup = summary.rows.iter().find(|r| r.metric == "startup").unwrap();
        let bars = bars(&artifact, startup).unwrap().unwrap();
        assert!(bars.matches("<rect").count() >= 3);
    }
}
