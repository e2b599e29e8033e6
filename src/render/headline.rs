//! The headline in words: the four questions' answers as aligned terminal lines, and each
//! ratio as `9.09× native [7.92, 11.0]`, each figure with its marks (`†` below 95%
//! coverage, `⚠gen`, `⚠rate`, `⚠err`) as in every table. The answers come from
//! [`crate::analysis::headline`].

use crate::analysis::headline::{Answer, Question};
use crate::artifact::Estimate;
use crate::format::number;

/// The headline as plain text lines (the terminal): a title line per question, then one
/// aligned line per environment, its ratio naming `baseline`.
pub(crate) fn lines(questions: &[Question], baseline: Option<&str>) -> Vec<String> {
    let ratio = |a: &Answer| {
        a.ratio
            .as_ref()
            .map(|r| ratio_text(r, baseline))
            .unwrap_or_default()
    };
    let width = |f: fn(&Answer) -> usize| {
        questions
            .iter()
            .flat_map(|q| &q.answers)
            .map(f)
            .max()
            .unwrap_or(0)
    };
    let env_width = width(|a| a.environment.chars().count());
    let value_width = width(|a| value_text(a).chars().count());
    let ratio_width = questions
        .iter()
        .flat_map(|q| &q.answers)
        .map(|a| ratio(a).chars().count())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for question in questions {
        out.push(format!("{} — {}", question.title, question.measured));
        for answer in &question.answers {
            let line = format!(
                "  {:<env_width$}  {:>value_width$}  {:<ratio_width$}  {}",
                answer.environment,
                value_text(answer),
                ratio(answer),
                answer.words,
            );
            out.push(line.trim_end().to_owned());
        }
    }
    out
}

/// `†` when the interval covers less than 95% (a single exact value has no interval), then
/// the limit marks.
fn marks(estimate: &Estimate) -> String {
    let coverage = if estimate.n > 1 && estimate.coverage < crate::analysis::stats::CONFIDENCE {
        super::LOW_COVERAGE_MARK
    } else {
        ""
    };
    format!("{coverage}{}", super::limit_marks(estimate))
}

/// The answer's value with its marks: `12.3 ms†`.
pub(crate) fn value_text(answer: &Answer) -> String {
    format!("{}{}", answer.value, marks(&answer.estimate))
}

/// `9.09× native [7.92, 11.0]`, or `9.09× [7.92, 11.0]` without a baseline's name, with
/// its marks.
pub(crate) fn ratio_text(ratio: &Estimate, baseline: Option<&str>) -> String {
    let baseline = baseline.map_or_else(String::new, |b| format!(" {b}"));
    format!(
        "{}×{baseline} [{}, {}]{}",
        number(ratio.median),
        number(ratio.ci_low),
        number(ratio.ci_high),
        marks(ratio)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::headline::headline;
    use crate::analysis::summarize::summarize;
    use crate::artifact::fixture;

    #[test]
    fn ratios_name_the_baseline() {
        let artifact = fixture::artifact();
        let summary = summarize(&artifact);
        let questions = headline(&artifact, &summary);
        let ratio = questions[0].answers[1].ratio.as_ref().unwrap();
        // Three rounds: the interval covers less than 95%, and says so.
        assert_eq!(
            ratio_text(ratio, Some("native")),
            "9.09× native [7.92, 11.0]†"
        );
        assert_eq!(ratio_text(ratio, None), "9.09× [7.92, 11.0]†");
    }

    #[test]
    fn lines_are_aligned() {
        let artifact = fixture::artifact();
        let summary = summarize(&artifact);
        let lines = lines(&headline(&artifact, &summary), Some("native"));
        assert_eq!(lines.len(), 4 * 4);
        assert!(lines[0].starts_with("Startup — "));
        let column = |line: &str| line.find("ms").unwrap();
        assert_eq!(column(&lines[1]), column(&lines[2]));
        assert_eq!(column(&lines[2]), column(&lines[3]));
    }
}
