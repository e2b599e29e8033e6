//! The markdown report: the headline (four questions), the full comparison as GitHub tables
//! grouped by scenario, then a legend with everything a reader needs to interpret it
//! (method, samples, host, cpusets, accelerator). Appended to the
//! GitHub Actions job summary by the report workflow.

use std::fmt::Write as _;

use super::measurements::measurements;
use super::{
    ENVIRONMENT_COLUMNS, ExportError, Exporter, capacity_lines, environment_cells,
    environment_notes, escape_markdown, headline_title, method_notes, provenance, summary_of,
};
use crate::analysis::headline;
use crate::artifact::Artifact;

/// GitHub-flavoured markdown.
#[derive(Debug, Clone, Copy, Default)]
pub struct Markdown;

impl Exporter for Markdown {
    fn render(&self, artifact: &Artifact) -> Result<String, ExportError> {
        let summary = summary_of(artifact);
        let e = escape_markdown;
        let mut out = String::new();
        // `write!` to a String cannot fail; the results are ignored on purpose.
        let _ = writeln!(out, "# isobench: what does isolation cost a web service?\n");
        let _ = writeln!(
            out,
            "{}\n",
            provenance(artifact, escape_markdown, |host| format!("**{host}**"))
        );

        let envs = &artifact.environments;
        let baseline = summary.baseline.as_deref();

        let questions = headline::headline(artifact, &summary);
        if !questions.is_empty() {
            let _ = writeln!(out, "## Headline\n\n{}\n", e(&headline_title(&summary)));
            let ratio_title =
                baseline.map_or_else(|| "ratio".to_owned(), |b| format!("× {}", e(b)));
            let _ = writeln!(
                out,
                "| question | environment | median | {ratio_title} [interval, 95% unless †] | in words |"
            );
            let _ = writeln!(out, "| :--- | :--- | ---: | ---: | :--- |");
            for question in &questions {
                for (index, answer) in question.answers.iter().enumerate() {
                    let title = if index == 0 {
                        format!("**{}**", question.title)
                    } else {
                        String::new()
                    };
                    let ratio = answer
                        .ratio
                        .as_ref()
                        .map(|r| e(&super::headline::ratio_text(r, None)))
                        .unwrap_or_else(|| "—".into());
                    let _ = writeln!(
                        out,
                        "| {title} | {} | {} | {ratio} | {} |",
                        e(&answer.environment),
                        e(&super::headline::value_text(answer)),
                        e(&answer.words)
                    );
                }
            }
            out.push('\n');
            for question in &questions {
                let _ = writeln!(out, "- {}: {}.", question.title, e(&question.measured));
            }
            out.push('\n');
        }

        if let Some((title, lines)) = capacity_lines(artifact, &summary) {
            let _ = writeln!(out, "## Latency under load\n\n{}\n", e(&title));
            for line in lines {
                let _ = writeln!(out, "- {}", e(&line));
            }
            out.push('\n');
            if let Some(section) = super::sweep::markdown(artifact) {
                out.push_str(&section);
            }
        }
        if !artifact.checks.is_empty() {
            let _ = writeln!(out, "## Checks\n");
            for line in crate::gate::outcome_lines(&artifact.checks) {
                let _ = writeln!(out, "- {}", e(&line));
            }
            out.push('\n');
        }

        let _ = writeln!(out, "## All measurements\n");
        let table = measurements(artifact, &summary);
        let mut header = vec!["metric".to_owned()];
        header.extend(table.columns.iter().map(|column| e(column.text())));
        let alignment: Vec<&str> = (0..header.len())
            .map(|i| if i == 0 { ":---" } else { "---:" })
            .collect();
        for group in &table.groups {
            if group.description.is_empty() {
                let _ = writeln!(out, "### {}\n", e(&group.title));
            } else {
                let _ = writeln!(
                    out,
                    "### Scenario {}\n\n{}.\n",
                    e(&group.title),
                    e(&group.description)
                );
            }
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(out, "| {} |", alignment.join(" | "));
            for row in &group.rows {
                let _ = writeln!(out, "| {} | {} |", e(&row.label), row.cells.join(" | "));
            }
            out.push('\n');
        }

        if let Some(section) = super::ladder::markdown(artifact) {
            out.push_str(&section);
        }
        let _ = writeln!(out, "## Environments\n");
        let _ = writeln!(out, "| {} |", ENVIRONMENT_COLUMNS.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(ENVIRONMENT_COLUMNS.len()));
        for env in envs {
            let _ = writeln!(out, "| {} |", environment_cells(env, e).join(" | "));
        }
        let notes: Vec<String> = envs
            .iter()
            .flat_map(|env| {
                let name = &env.label.name;
                environment_notes(env)
                    .into_iter()
                    .map(move |note| format!("{}: {}", e(name), e(&note)))
            })
            .collect();
        if !notes.is_empty() {
            out.push('\n');
            for note in notes {
                let _ = writeln!(out, "- {note}");
            }
        }

        if !artifact.unavailable.is_empty() {
            let _ = writeln!(out, "\n## Not measured\n");
            for unavailable in &artifact.unavailable {
                let _ = writeln!(
                    out,
                    "- {}: {}",
                    e(&unavailable.name),
                    e(&unavailable.reason)
                );
            }
        }

        let _ = writeln!(out, "\n## How to read this\n");
        for note in method_notes(&summary, artifact) {
            let _ = writeln!(out, "- {}", e(&note));
        }
        Ok(out)
    }
}

/// `1` or `0,2-3`-style list of CPUs; `none` when unpinned.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    #[test]
    fn markdown_report_snapshot() {
        let text = Markdown.render(&fixture::artifact()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn markdown_bench_pair_snapshot() {
        let text = Markdown.render(&fixture::bench_pair()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_warmup_discard_is_said_beside_the_figures() {
        let text = Markdown.render(&fixture::artifact()).unwrap();
        assert!(
            text.contains(
                "- native: health: 1 of 3 windows began warming up; its first 0.5 s was kept \
                 out of the figures\n"
            ),
            "{text}"
        );
        // Only native's health window was cut.
        assert_eq!(text.matches("began warming up").count(), 1, "{text}");
    }

    #[test]
    fn artifact_text_cannot_break_the_table() {
        let mut artifact = fixture::artifact();
        artifact.environments[0].label.name = "a|b<img src=x>".into();
        artifact.summary = None;
        let text = Markdown.render(&artifact).unwrap();
        assert!(text.contains("a\\|b&lt;img src=x&gt;"), "{text}");
        assert!(!text.contains("<img"));
    }
}
