//! Startup phases from observed milestones: contiguous, in order, summing to the startup.
//!
//! Each environment observes what it can (a VM's serial console, a container engine's
//! timestamps); a milestone that was not seen, or that lies outside the startup (an estimate
//! off by clock skew), merges its phase into the next one, named `a + b`, so the phases
//! always add up to the measured startup.

use std::time::Instant;

use crate::artifact::StartupPhase;

/// Phases from `requested` through `points` (each phase named for what ends at its point) to
/// the last point, which must be the end of startup.
pub fn contiguous(requested: Instant, points: &[(&str, Option<Instant>)]) -> Vec<StartupPhase> {
    let end = points.iter().rev().find_map(|(_, at)| *at);
    let mut phases = Vec::new();
    let mut from = requested;
    let mut names: Vec<&str> = Vec::new();
    for (name, point) in points {
        names.push(name);
        let Some(at) = *point else { continue };
        if at < from || end.is_some_and(|end| at > end) {
            continue;
        }
        phases.push(StartupPhase {
            name: names.join(" + "),
            duration_ms: at.duration_since(from).as_secs_f64() * 1e3,
        });
        names.clear();
        from = at;
    }
    phases
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unseen_and_out_of_range_points_merge_forward() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let phases = contiguous(
            t0,
            &[
                ("create", at(100)),
                ("start", None),
                ("skewed", Some(t0)),
                ("late", at(900)),
                ("first 200", at(500)),
            ],
        );
        let got: Vec<(&str, f64)> = phases
            .iter()
            .map(|p| (p.name.as_str(), p.duration_ms.round()))
            .collect();
        assert_eq!(
            got,
            [
                ("create", 100.0),
                ("start + skewed + late + first 200", 400.0)
            ]
        );
    }
}
