//! Starts the VM three ways, interleaved, and prints the startup phase by phase: the seed's
//! boot (`legacy`: q35, SeaBIOS, bzImage), the fast boot (microvm, PVH), and the fast guest
//! restored from a snapshot (`vm-snapshot`). Used by `vm/compare-boot.sh`; pass the number of
//! starts per configuration (default 3).

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
    // The seed's configuration, the fast boot, and the fast guest restored from a snapshot.
    let columns = ["legacy", "fast", "snapshot"];
    let mut envs = Vec::new();
    for column in columns {
        let mut vm = match column {
            "legacy" => QemuVm::with_mode(Budget::for_host(), BootMode::Legacy)?,
            "fast" => QemuVm::with_mode(Budget::for_host(), BootMode::Fast)?,
            _ => QemuVm::from_snapshot(Budget::for_host())?,
        };
        let steps = vm.prepare()?;
        eprintln!("{column}: prepared {steps:?}");
        eprintln!("{column}: {}", vm.label().runtime);
        envs.push((column, vm));
    }
    // Phase names in the order first seen, and per name: column -> samples (ms).
    let mut order: Vec<String> = Vec::new();
    let mut table: BTreeMap<String, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    let mut totals: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut rss: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..boots {
        // Rotate which configuration goes first, so drift hits all alike.
        for offset in 0..envs.len() {
            let (column, vm) = &envs[(round + offset) % envs.len()];
            let column: &str = column;
            let instance = vm.start()?;
            let startup_ms = instance.startup().as_secs_f64() * 1e3;
            let phases = instance.startup_phases();
            let memory = instance.resources()?.memory_bytes as f64 / (1 << 20) as f64;
            instance.stop()?;
            eprintln!(
                "round {round} {column}: {startup_ms:.0} ms, QEMU RSS {memory:.0} MiB; {}",
                phases
                    .iter()
                    .map(|p| format!("{} {:.0}", p.name, p.duration_ms))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            totals.entry(column).or_default().push(startup_ms);
            rss.entry(column).or_default().push(memory);
            for phase in phases {
                if !order.contains(&phase.name) {
                    order.push(phase.name.clone());
                }
                table
                    .entry(phase.name)
                    .or_default()
                    .entry(column)
                    .or_default()
                    .push(phase.duration_ms);
            }
        }
    }
    println!("| phase (median ms over {boots} starts) | legacy | fast | fast, from snapshot |");
    println!("|---|---:|---:|---:|");
    for name in &order {
        let Some(by_column) = table.get_mut(name) else {
            continue;
        };
        let cells: Vec<String> = columns
            .iter()
            .map(|c| {
                by_column
                    .get_mut(c)
                    .map_or("–".to_owned(), |v| format!("{:.0}", median(v)))
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let medians = |map: &mut BTreeMap<&str, Vec<f64>>| -> Vec<f64> {
        columns
            .iter()
            .map(|c| map.get_mut(c).map_or(f64::NAN, |v| median(v)))
            .collect()
    };
    let startup = medians(&mut totals);
    let memory = medians(&mut rss);
    println!(
        "| **first 200 (startup)** | **{:.0}** | **{:.0}** | **{:.0}** |",
        startup[0], startup[1], startup[2]
    );
    println!(
        "| QEMU RSS after startup (MiB) | {:.0} | {:.0} | {:.0} |",
        memory[0], memory[1], memory[2]
    );
    println!(
        "\nfast / legacy = {:.2}; from snapshot / legacy = {:.3}",
        startup[1] / startup[0],
        startup[2] / startup[0]
    );
    Ok(())
}
