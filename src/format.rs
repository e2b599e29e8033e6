//! How the house writes a number, an environment's name and what limited a figure: one way, for the prose that
//! analysis and gates store in artifacts and for every report format, so a figure reads the
//! same wherever it appears.

use crate::artifact::{Accel, EnvironmentLabel, LimitKind};

/// An environment's column title: its name, and for a VM how its CPU is provided, so TCG
/// numbers are never read as hardware virtualisation.
pub fn env_title(label: &EnvironmentLabel) -> String {
    match label.accel {
        Some(accel) => format!("{} ({})", label.name, accel_text(accel)),
        None => label.name.clone(),
    }
}

/// How a VM's accelerator is named in reports.
pub fn accel_text(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "KVM",
        Accel::Tcg => "TCG, emulated",
        Accel::Provider => "provider's hypervisor",
    }
}

/// A number with three significant digits (no exponent), `0` for zero.
pub fn number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = x.abs().log10().floor() as i32;
    let decimals = (2 - digits).clamp(0, 6) as usize;
    format!("{x:.decimals$}")
}

/// What a limit of `kind` says happened, as the report's notes and the checks word it.
pub fn limit_description(kind: LimitKind) -> &'static str {
    match kind {
        LimitKind::GeneratorSaturated => "the load generator was saturated",
        LimitKind::RateNotKept => "the open loop did not keep its rate",
        LimitKind::Errors => "requests failed",
        LimitKind::BothSaturated => {
            "the load generator and the service were both saturated (the service used all of \
             its CPU, so the figure is the service's at its CPU budget)"
        }
        LimitKind::WarmingUp => "the service was still warming up in part of the window",
        LimitKind::Stalled => "the service stalled (answered nothing while asked) in the window",
        LimitKind::Drifted => "throughput drifted within the window",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_three_significant_digits() {
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(0.01), "0.0100");
        assert_eq!(number(1.0), "1.00");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(-4.5678), "-4.57");
    }
}
