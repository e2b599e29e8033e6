//! The "All measurements" table, built once for every format: its columns (the
//! environments, their ratios to the baseline, the container-vs-VM column) and, per group of
//! rows (the instance's own, then one per scenario), each row's label and cells. Text is
//! kept raw; each format escapes it and lays it out in its own way.

use super::{compared, estimate_cell, improvement_cell, ratio_cell};
use crate::analysis::summarize;
use crate::artifact::{Artifact, Summary, SummaryRow};
use crate::format::{env_title, number};

/// A column after the metric column.
pub(crate) enum Column {
    /// An environment's figures: its position in the artifact (for its colour) and title.
    Environment {
        /// Index in the artifact's environments.
        index: usize,
        /// Its column title (with the accelerator for a VM).
        title: String,
    },
    /// Ratios to the baseline: `container / native`.
    Ratio(String),
    /// The seed's container-vs-VM improvement: `container vs vm`.
    Pair(String),
}

impl Column {
    /// The header text.
    pub(crate) fn text(&self) -> &str {
        match self {
            Self::Environment { title, .. } => title,
            Self::Ratio(text) | Self::Pair(text) => text,
        }
    }
}

/// One row: the metric's label (without its scenario) and a cell per column.
pub(crate) struct Row {
    pub label: String,
    pub cells: Vec<String>,
}

/// A block of rows: one scenario's, or the instance's own (startup, memory, image size).
pub(crate) struct Group {
    /// `every instance` or the scenario's name.
    pub title: String,
    /// How the scenario loaded the service: `closed loop, 50 connections: /health`; empty
    /// for the instance group.
    pub description: String,
    pub rows: Vec<Row>,
}

/// The whole table.
pub(crate) struct Measurements {
    pub columns: Vec<Column>,
    pub groups: Vec<Group>,
}

/// The table of `artifact`'s summary.
pub(crate) fn measurements(artifact: &Artifact, summary: &Summary) -> Measurements {
    let baseline = summary.baseline.as_deref();
    let compared = compared(artifact, summary);
    let pair = summarize::container_vm_pair(artifact);
    let mut columns: Vec<Column> = artifact
        .environments
        .iter()
        .enumerate()
        .map(|(index, env)| Column::Environment {
            index,
            title: env_title(&env.label),
        })
        .collect();
    if let Some(baseline) = baseline {
        columns.extend(
            compared
                .iter()
                .map(|env| Column::Ratio(format!("{} / {baseline}", env.label.name))),
        );
    }
    if let Some((container, vm)) = &pair {
        columns.push(Column::Pair(format!("{container} vs {vm}")));
    }
    let cells = |row: &SummaryRow| {
        let mut cells: Vec<String> = artifact
            .environments
            .iter()
            .map(|env| {
                row.estimates
                    .get(&env.label.name)
                    .map(|estimate| estimate_cell(estimate, &row.unit))
                    .unwrap_or_else(|| "—".into())
            })
            .collect();
        if baseline.is_some() {
            cells.extend(compared.iter().map(|env| {
                row.ratio_to_baseline
                    .get(&env.label.name)
                    .map(ratio_cell)
                    .unwrap_or_else(|| "—".into())
            }));
        }
        if pair.is_some() {
            cells.push(improvement_cell(row.container_vs_vm_improvement_pct));
        }
        cells
    };
    let groups = row_groups(artifact, summary)
        .into_iter()
        .map(|group| Group {
            rows: group
                .rows
                .iter()
                .map(|(label, row)| Row {
                    label: label.clone(),
                    cells: cells(row),
                })
                .collect(),
            title: group.title,
            description: group.description,
        })
        .collect();
    Measurements { columns, groups }
}

/// A block of the full table: the rows that belong to one scenario, or to the instance
/// itself (startup, memory, image size).
struct RowGroup<'a> {
    /// `every instance` or the scenario's name.
    title: String,
    /// How the scenario loaded the service, from its load reports: `closed loop, 50
    /// connections, /health`; empty for the instance group.
    description: String,
    /// The rows, with the label to show (the metric without its scenario suffix).
    rows: Vec<(String, &'a SummaryRow)>,
}

/// The summary's rows grouped: the instance's own rows first, then one group per scenario in
/// the order the scenarios ran.
fn row_groups<'a>(artifact: &Artifact, summary: &'a Summary) -> Vec<RowGroup<'a>> {
    let mut groups: Vec<RowGroup<'a>> = Vec::new();
    for row in &summary.rows {
        let scenario = crate::analysis::headline::scenario_of(&row.metric);
        let (title, label) = if scenario.is_empty() {
            ("every instance".to_owned(), row.metric.clone())
        } else {
            let label = row.metric[..row.metric.len() - scenario.len() - 3].to_owned();
            (scenario.to_owned(), label)
        };
        match groups.iter_mut().find(|g| g.title == title) {
            Some(group) => group.rows.push((label, row)),
            None => groups.push(RowGroup {
                description: if scenario.is_empty() {
                    String::new()
                } else {
                    scenario_description(artifact, scenario)
                },
                title,
                rows: vec![(label, row)],
            }),
        }
    }
    groups
}

/// How a scenario loaded the service, from its first load report: `closed loop, 50
/// connections: /health` or `open loop at 200 req/s, 16 connections: /health`.
pub(crate) fn scenario_description(artifact: &Artifact, scenario: &str) -> String {
    let Some(run) = artifact
        .environments
        .iter()
        .flat_map(|e| &e.rounds)
        .flat_map(|r| &r.scenarios)
        .find(|s| s.scenario == scenario)
    else {
        return String::new();
    };
    let load = &run.load;
    let pacing = match (load.open_loop, load.requested_rate_rps) {
        (true, Some(rate)) => format!("open loop at {} req/s", number(rate)),
        (true, None) => "open loop".to_owned(),
        (false, _) => "closed loop".to_owned(),
    };
    let paths: Vec<&str> = load.scenario.iter().map(|p| p.path.as_str()).collect();
    format!(
        "{pacing}, {} connections: {}",
        load.connections,
        paths.join(" ")
    )
}
