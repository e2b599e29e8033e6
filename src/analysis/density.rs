//! What a density ramp says: memory against the number of instances, fitted by least
//! squares, for the instances' own figure (a) and the host's accounting (b).
//!
//! The slope is what one more instance costs, with a 95% interval from Student's t on
//! n − 2 degrees of freedom (the textbook interval of a regression slope: ±t·s/√Sxx, s the
//! residuals' standard deviation). The intercept is the cost at N = 0: with PSS, the pages
//! every instance shares (the same binary's text, the runtime's) are split among them and
//! sum to one copy, so they land in the intercept, not the slope. Instances per GiB is
//! 1024 / slope, its interval the slope's ends inverted. (a) and (b) agree when their
//! slopes' intervals overlap; where they do not, the host's categories that PSS cannot see
//! (page cache, shared memory, kernel memory) are fitted the same way, so the report can
//! say which of them moves with N.

use crate::artifact::density::{Agreement, DensityRung, HostMemory, LinearFit, RungSummary};

const MIB: f64 = 1024.0 * 1024.0;

/// Two-sided 95% quantiles of Student's t for 1 to 30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 97.5% quantile of Student's t with `df` degrees of freedom (`df` ≥ 1): the table up
/// to 30, then the Cornish–Fisher expansion around the normal quantile, good to 1e-3 there.
pub fn t_975(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=30 => T_975[df - 1],
        _ => {
            let z: f64 = 1.959_964;
            let n = df as f64;
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// The least-squares line through `points` (x, y), y in MiB; `None` with fewer than two
/// points or all at one x.
pub fn fit(points: &[(f64, f64)]) -> Option<LinearFit> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let count = n as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / count;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let sse: f64 = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let (residual_sd, ci) = if n > 2 {
        let s = (sse / (count - 2.0)).sqrt();
        let half = t_975(n - 2) * s / sxx.sqrt();
        (s, Some((slope - half, slope + half)))
    } else {
        (0.0, None)
    };
    Some(LinearFit {
        points: n as u32,
        slope_mib: slope,
        slope_ci95_mib: ci,
        intercept_mib: intercept,
        residual_sd_mib: residual_sd,
    })
}

/// The host's reading at `step` less before the rung, in MiB, by `field`.
/// (N, MiB the host's `field` moved since before the rung), one point per step.
pub fn host_points(rung: &DensityRung, field: impl Fn(&HostMemory) -> u64) -> Vec<(f64, f64)> {
    let before = field(&rung.host_before) as f64;
    rung.steps
        .iter()
        .map(|step| {
            (
                f64::from(step.instances),
                (field(&step.host) as f64 - before) / MIB,
            )
        })
        .collect()
}

/// Whether two 95% intervals overlap.
fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// (N, MiB the live instances hold by the memory measure), one point per step.
pub fn instance_points(rung: &DensityRung) -> Vec<(f64, f64)> {
    rung.steps
        .iter()
        .map(|step| {
            (
                f64::from(step.instances),
                step.instances_memory_bytes as f64 / MIB,
            )
        })
        .collect()
}

/// The summary of one rung's ramp and concurrent start.
pub fn summarize(rung: &DensityRung) -> RungSummary {
    let instances = instance_points(rung);
    let instances_fit = fit(&instances);
    let host_fit = fit(&host_points(rung, HostMemory::used_bytes));
    let per_gib = |slope: f64| (slope > 0.0).then(|| 1024.0 / slope);
    let instances_per_gib = instances_fit.and_then(|f| per_gib(f.slope_mib));
    // The interval's high slope end is its low density end; an interval reaching zero or
    // below has no upper bound on density, and then none is given.
    let instances_per_gib_ci95 = instances_fit
        .and_then(|f| f.slope_ci95_mib)
        .and_then(|(low, high)| Some((per_gib(high)?, per_gib(low)?)));
    let agreement = match (
        instances_fit.and_then(|f| f.slope_ci95_mib),
        host_fit.and_then(|f| f.slope_ci95_mib),
    ) {
        (Some(a), Some(b)) if overlap(a, b) => Agreement::Agree,
        (Some(_), Some(_)) => {
            let slope = |points: Vec<(f64, f64)>| fit(&points).map_or(0.0, |f| f.slope_mib);
            let gap_mib =
                host_fit.map_or(0.0, |f| f.slope_mib) - instances_fit.map_or(0.0, |f| f.slope_mib);
            Agreement::Part {
                gap_mib,
                page_cache_mib: slope(host_points(rung, |m| {
                    m.cached_bytes.saturating_sub(m.shmem_bytes)
                })),
                shmem_mib: slope(host_points(rung, |m| m.shmem_bytes)),
                kernel_mib: slope(host_points(rung, |m| m.kernel_bytes)),
            }
        }
        _ => Agreement::TooFewPoints,
    };
    let concurrent_instances_per_s = rung.concurrent.as_ref().and_then(|c| {
        let ms = c.all_answering_ms?;
        (ms > 0.0 && c.instances > 0).then(|| f64::from(c.instances) / (ms / 1e3))
    });
    RungSummary {
        env: rung.label.name.clone(),
        instances_reached: rung.steps.len() as u32,
        instances_fit,
        host_fit,
        instances_per_gib,
        instances_per_gib_ci95,
        agreement,
        startup_first_ms: rung.steps.first().map(|s| s.startup_ms),
        startup_last_ms: rung.steps.last().map(|s| s.startup_ms),
        concurrent_instances_per_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn an_exact_line_is_found_with_a_zero_width_interval() {
        let points: Vec<(f64, f64)> = (1..=5).map(|n| (n as f64, 10.0 + 3.5 * n as f64)).collect();
        let fit = fit(&points).unwrap();
        assert!(close(fit.slope_mib, 3.5, 1e-12), "{fit:?}");
        assert!(close(fit.intercept_mib, 10.0, 1e-12), "{fit:?}");
        let (low, high) = fit.slope_ci95_mib.unwrap();
        assert!(close(low, 3.5, 1e-9) && close(high, 3.5, 1e-9), "{fit:?}");
        assert_eq!(fit.points, 5);
    }

    /// Worked by hand: x = 1..4, y = 2, 4, 5, 8. Sxx = 5, Sxy = 9.5, slope 1.9, intercept
    /// 0 (mean y 4.75 − 1.9·2.5), residuals 0.1, 0.2, −0.7, 0.4, SSE 0.7, s = √0.35,
    /// half-width t(2)·s/√5 = 4.303·0.5916/2.2361 = 1.1385.
    #[test]
    fn a_noisy_line_has_the_textbook_interval() {
        let fit = fit(&[(1.0, 2.0), (2.0, 4.0), (3.0, 5.0), (4.0, 8.0)]).unwrap();
        assert!(close(fit.slope_mib, 1.9, 1e-12), "{fit:?}");
        assert!(close(fit.intercept_mib, 0.0, 1e-12), "{fit:?}");
        assert!(close(fit.residual_sd_mib, 0.35f64.sqrt(), 1e-12), "{fit:?}");
        let (low, high) = fit.slope_ci95_mib.unwrap();
        assert!(close(high - 1.9, 1.1385, 1e-3), "{fit:?}");
        assert!(close(1.9 - low, 1.1385, 1e-3), "{fit:?}");
    }

    #[test]
    fn too_few_or_degenerate_points_give_no_interval_or_no_fit() {
        assert!(fit(&[(1.0, 1.0)]).is_none());
        assert!(fit(&[(2.0, 1.0), (2.0, 5.0)]).is_none());
        let two = fit(&[(1.0, 1.0), (2.0, 3.0)]).unwrap();
        assert!(close(two.slope_mib, 2.0, 1e-12));
        assert!(two.slope_ci95_mib.is_none());
    }

    #[test]
    fn t_quantiles_follow_the_table_and_approach_the_normal() {
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(30), 2.042);
        // Tabulated t(40) = 2.021, t(120) = 1.980.
        assert!(close(t_975(40), 2.021, 1e-3), "{}", t_975(40));
        assert!(close(t_975(120), 1.980, 1e-3), "{}", t_975(120));
        assert!(t_975(0).is_infinite());
    }

    #[test]
    fn overlapping_intervals_agree() {
        assert!(overlap((1.0, 2.0), (1.5, 3.0)));
        assert!(overlap((1.0, 2.0), (2.0, 3.0)));
        assert!(!overlap((1.0, 2.0), (2.1, 3.0)));
    }
}
