//! Boots the VM in both configurations, interleaved, and prints the startup phase by phase:
//! the seed's (`legacy`: q35, SeaBIOS, bzImage) beside the fast one (microvm, PVH). Used by
//! `vm/compare-boot.sh`; pass the number of boots per configuration (default 3).

use std::collections::BTreeMap;

use anyhow::Context;
use isobench::env::vm::{BootMode, QemuVm};
use isobench::env::{Budget, Environment};

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() -> anyhow::Result<()> {
    let boots: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()
        .context("the argument is the number of boots per configuration")?
        .unwrap_or(3)
        .clamp(1, 50);
    let modes = [BootMode::Legacy, BootMode::Fast];
    let mut envs = Vec::new();
    for mode in modes {
        let mut vm = QemuVm::with_mode(Budget::for_host(), mode)?;
        let steps = vm.prepare()?;
        eprintln!("{}: prepared {steps:?}", mode.name());
        eprintln!("{}: {}", mode.name(), vm.label().runtime);
        envs.push(vm);
    }
    // Phase names in the order first seen, and per name: mode -> samples (ms).
    let mut order: Vec<String> = Vec::new();
    let mut table: BTreeMap<String, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    let mut totals: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut rss: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..boots {
        // Alternate which configuration goes first, so drift hits both alike.
        let sequence: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for i in sequence {
            let mode = envs[i].mode().name();
            let instance = envs[i].start()?;
            let startup_ms = instance.startup().as_secs_f64() * 1e3;
            let phases = instance.startup_phases();
            let memory = instance.resources()?.memory_bytes as f64 / (1 << 20) as f64;
            instance.stop()?;
            eprintln!(
                "round {round} {mode}: {startup_ms:.0} ms, QEMU RSS {memory:.0} MiB; {}",
                phases
                    .iter()
                    .map(|p| format!("{} {:.0}", p.name, p.duration_ms))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            totals.entry(mode).or_default().push(startup_ms);
            rss.entry(mode).or_default().push(memory);
            for phase in phases {
                if !order.contains(&phase.name) {
                    order.push(phase.name.clone());
                }
                table
                    .entry(phase.name)
                    .or_default()
                    .entry(mode)
                    .or_default()
                    .push(phase.duration_ms);
            }
        }
    }
    println!("| phase (median ms over {boots} boots) | legacy | fast |");
    println!("|---|---:|---:|");
    for name in &order {
        let Some(by_mode) = table.get_mut(name) else {
            continue;
        };
        let cell = |m: &str, by_mode: &mut BTreeMap<&str, Vec<f64>>| {
            by_mode
                .get_mut(m)
                .map_or("–".to_owned(), |v| format!("{:.0}", median(v)))
        };
        println!(
            "| {name} | {} | {} |",
            cell("legacy", by_mode),
            cell("fast", by_mode)
        );
    }
    let cell = |map: &mut BTreeMap<&str, Vec<f64>>, m: &str| {
        map.get_mut(m).map_or(f64::NAN, |v| median(v))
    };
    let (legacy, fast) = (cell(&mut totals, "legacy"), cell(&mut totals, "fast"));
    println!("| **first 200 (startup)** | **{legacy:.0}** | **{fast:.0}** |");
    println!(
        "| QEMU RSS after startup (MiB) | {:.0} | {:.0} |",
        cell(&mut rss, "legacy"),
        cell(&mut rss, "fast")
    );
    println!("\nfast / legacy = {:.2}", fast / legacy);
    Ok(())
}
