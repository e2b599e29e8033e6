//! The kernel's same-page merging (KSM, `/sys/kernel/mm/ksm`), turned on for a measurement
//! and put back as it was: `isobench density --ksm` asks what merging identical pages saves
//! when many VMs of one service run side by side.
//!
//! KSM merges only private anonymous pages a process has advised mergeable (QEMU advises its
//! guest RAM), so a VM whose RAM is shared memory (isobench's default, a memfd) has nothing to
//! merge: [`crate::env::Environment::merge_memory`] switches a VM to mergeable RAM first.
//!
//! The settings found are registered for cleanup the moment they are changed, so an
//! interrupt (whose handler exits without unwinding) writes them back as well as a drop does.
//! Pages merged meanwhile stay merged until their processes exit; a run stops its VMs before
//! it puts the settings back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cleanup::{self, Registration, Resource};

/// Where the kernel exposes KSM.
pub const SYSFS: &str = "/sys/kernel/mm/ksm";

/// The settings a measurement changes, by file name: `run` (1 = merging), and how fast
/// `ksmd` scans (pages per wake-up, and the sleep between wake-ups).
const CHANGED: [&str; 3] = ["run", "pages_to_scan", "sleep_millisecs"];

/// Why KSM cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KsmError {
    /// This kernel has no KSM (built without `CONFIG_KSM`) or hides it.
    #[error("this host has no KSM ({path} is missing): --ksm needs a kernel with CONFIG_KSM")]
    Missing {
        /// The directory looked for.
        path: PathBuf,
    },
    /// A setting could not be read or written (not root, or a read-only sysfs).
    #[error("{what} {path}: {source} (--ksm must run as root on a writable /sys)")]
    Access {
        /// Reading or writing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A counter did not hold a number.
    #[error("{path} holds {text:?}, not a number")]
    NotANumber {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
    },
}

/// How fast `ksmd` is asked to scan while a measurement waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanRate {
    /// Pages scanned per wake-up.
    pub pages_to_scan: u64,
    /// Sleep between wake-ups, milliseconds.
    pub sleep_millisecs: u64,
}

impl ScanRate {
    /// Fast enough that a few VMs' touched RAM (a few hundred MiB each) is scanned in about a
    /// second: the kernel's default (100 pages every 20 ms, 20 MiB/s) would take minutes.
    pub const MEASURING: Self = Self {
        pages_to_scan: 5_000,
        sleep_millisecs: 10,
    };
}

/// KSM's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KsmCounters {
    /// Full passes over all mergeable memory since KSM was started.
    pub full_scans: u64,
    /// Merged pages in use (each stands for several identical ones).
    pub pages_shared: u64,
    /// Pages merged into those: how many pages merging saves.
    pub pages_sharing: u64,
}

/// KSM turned on for a measurement; its previous settings are written back when dropped
/// (and on an interrupt, through [`cleanup`]).
#[derive(Debug)]
pub struct KsmSession {
    root: PathBuf,
    previous: Vec<(PathBuf, String)>,
    registrations: Vec<Registration>,
}

/// Whether this host has KSM at all (not whether isobench may change it).
pub fn available(root: &Path) -> Result<(), KsmError> {
    if root.join("run").exists() {
        Ok(())
    } else {
        Err(KsmError::Missing {
            path: root.to_owned(),
        })
    }
}

/// Whether isobench may change KSM's settings here: they exist and open for writing (root,
/// a writable sysfs). Nothing is written.
pub fn writable(root: &Path) -> Result<(), KsmError> {
    available(root)?;
    for name in CHANGED {
        let path = root.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| KsmError::Access {
                what: "opening",
                path,
                source,
            })?;
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, KsmError> {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|source| KsmError::Access {
            what: "reading",
            path: path.to_owned(),
            source,
        })
}

fn write_text(path: &Path, text: &str) -> Result<(), KsmError> {
    std::fs::write(path, text).map_err(|source| KsmError::Access {
        what: "writing",
        path: path.to_owned(),
        source,
    })
}

fn read_number(path: &Path) -> Result<u64, KsmError> {
    let text = read_text(path)?;
    text.parse().map_err(|_| KsmError::NotANumber {
        path: path.to_owned(),
        text,
    })
}

/// Whether KSM is merging now (`run` is 1).
pub fn running(root: &Path) -> Result<bool, KsmError> {
    Ok(read_text(&root.join("run"))? == "1")
}

/// Reads KSM's counters under `root`.
pub fn counters(root: &Path) -> Result<KsmCounters, KsmError> {
    Ok(KsmCounters {
        full_scans: read_number(&root.join("full_scans"))?,
        pages_shared: read_number(&root.join("pages_shared"))?,
        pages_sharing: read_number(&root.join("pages_sharing"))?,
    })
}

impl KsmSession {
    /// Saves KSM's settings under `root` and turns merging on at `rate`. Each setting is
    /// registered for cleanup before it is changed, so no path out leaves it changed.
    pub fn start(root: &Path, rate: ScanRate) -> Result<Self, KsmError> {
        available(root)?;
        let mut session = Self {
            root: root.to_owned(),
            previous: Vec::new(),
            registrations: Vec::new(),
        };
        for name in CHANGED {
            let path = root.join(name);
            let value = read_text(&path)?;
            session
                .registrations
                .push(cleanup::register(Resource::Setting {
                    path: path.clone(),
                    value: value.clone(),
                }));
            session.previous.push((path, value));
        }
        // The rate first: merging starts at the speed asked for.
        write_text(&root.join("pages_to_scan"), &rate.pages_to_scan.to_string())?;
        write_text(
            &root.join("sleep_millisecs"),
            &rate.sleep_millisecs.to_string(),
        )?;
        write_text(&root.join("run"), "1")?;
        Ok(session)
    }

    /// KSM's counters now.
    pub fn counters(&self) -> Result<KsmCounters, KsmError> {
        counters(&self.root)
    }

    /// Waits until merging has settled: once at least `scans` more full scans than `from`
    /// have completed, a further full scan (or several, between two looks) merged no more
    /// pages; or until `timeout` or an interrupt. Returns the counters then and whether it
    /// settled. A page merges only on its second look at the earliest (the first records its
    /// checksum) and the first scan counted may have begun before merging was turned on, so
    /// too few scans would settle on nothing merged yet.
    pub fn wait_settled(
        &self,
        from: KsmCounters,
        scans: u64,
        timeout: Duration,
    ) -> Result<(KsmCounters, bool), KsmError> {
        let deadline = Instant::now() + timeout;
        // The counters at the last look once `scans` had passed.
        let mut mark: Option<KsmCounters> = None;
        loop {
            let now = self.counters()?;
            match mark {
                None if now.full_scans >= from.full_scans + scans => mark = Some(now),
                Some(seen) if now.full_scans > seen.full_scans => {
                    if now.pages_sharing <= seen.pages_sharing {
                        return Ok((now, true));
                    }
                    mark = Some(now);
                }
                _ => {}
            }
            if Instant::now() >= deadline || cleanup::interrupted() {
                return Ok((now, false));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for KsmSession {
    fn drop(&mut self) {
        // `run` was saved first and goes back last: the scan rate is back before merging
        // resumes at the old setting.
        for (path, value) in self.previous.iter().rev() {
            if let Err(error) = cleanup::restore_setting(path, value) {
                eprintln!("isobench: could not restore {}: {error}", path.display());
            }
        }
        self.registrations.clear();
    }
}

/// A stand-in for `/sys/kernel/mm/ksm`, for tests here and of what uses KSM.
#[cfg(test)]
pub(crate) mod fake {
    /// A directory holding KSM's files: `run` as given, the kernel's default scan rate,
    /// seven full scans done and nothing merged.
    pub(crate) fn sysfs(run: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in [
            ("run", run),
            ("pages_to_scan", "100"),
            ("sleep_millisecs", "20"),
            ("full_scans", "7"),
            ("pages_shared", "0"),
            ("pages_sharing", "0"),
        ] {
            std::fs::write(dir.path().join(name), format!("{value}\n")).unwrap();
        }
        dir
    }

    /// ksmd, played: `(full_scans, pages_sharing)` written one after another, `every` apart.
    /// Each file is replaced whole (written aside, then renamed), as sysfs shows a counter:
    /// a plain write truncates first, and a reader in between would see an empty file.
    pub(crate) fn scans(
        root: &std::path::Path,
        steps: &[(u64, u64)],
        every: std::time::Duration,
    ) -> std::thread::JoinHandle<()> {
        let (root, steps) = (root.to_owned(), steps.to_vec());
        let set = move |root: &std::path::Path, name: &str, value: u64| {
            let aside = root.join(format!(".{name}.new"));
            std::fs::write(&aside, format!("{value}\n")).unwrap();
            std::fs::rename(&aside, root.join(name)).unwrap();
        };
        std::thread::spawn(move || {
            for (scans, sharing) in steps {
                std::thread::sleep(every);
                set(&root, "pages_sharing", sharing);
                set(&root, "full_scans", scans);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fake::sysfs as fake_sysfs;
    use super::*;

    fn setting(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn a_session_turns_merging_on_and_puts_every_setting_back() {
        let dir = fake_sysfs("0");
        let session = KsmSession::start(dir.path(), ScanRate::MEASURING).unwrap();
        assert_eq!(setting(dir.path(), "run"), "1");
        assert_eq!(setting(dir.path(), "pages_to_scan"), "5000");
        assert_eq!(setting(dir.path(), "sleep_millisecs"), "10");
        assert_eq!(session.counters().unwrap().full_scans, 7);
        drop(session);
        assert_eq!(setting(dir.path(), "run"), "0");
        assert_eq!(setting(dir.path(), "pages_to_scan"), "100");
        assert_eq!(setting(dir.path(), "sleep_millisecs"), "20");
    }

    #[test]
    fn an_interrupts_cleanup_puts_the_settings_back_too() {
        let dir = fake_sysfs("0");
        let session = KsmSession::start(dir.path(), ScanRate::MEASURING).unwrap();
        // What the signal handler does with each registered setting before it exits (no
        // drop runs then); only this test's, since other tests may share the process.
        let ours: Vec<(PathBuf, String)> = cleanup::registered()
            .into_iter()
            .filter_map(|resource| match resource {
                Resource::Setting { path, value } if path.starts_with(dir.path()) => {
                    Some((path, value))
                }
                _ => None,
            })
            .collect();
        assert_eq!(ours.len(), CHANGED.len(), "{ours:?}");
        for (path, value) in ours.iter().rev() {
            cleanup::restore_setting(path, value).unwrap();
        }
        assert_eq!(setting(dir.path(), "run"), "0");
        assert_eq!(setting(dir.path(), "pages_to_scan"), "100");
        assert_eq!(setting(dir.path(), "sleep_millisecs"), "20");
        drop(session);
    }

    #[test]
    fn a_host_without_ksm_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = KsmSession::start(&dir.path().join("ksm"), ScanRate::MEASURING).unwrap_err();
        assert!(matches!(error, KsmError::Missing { .. }), "{error}");
        assert!(error.to_string().contains("CONFIG_KSM"), "{error}");
    }

    #[test]
    fn scans_seen_at_once_do_not_settle_before_a_further_scan() {
        let dir = fake_sysfs("0");
        let session = KsmSession::start(dir.path(), ScanRate::MEASURING).unwrap();
        let from = session.counters().unwrap();
        // Three scans pass before the first look, nothing merged yet; then the next merges
        // 50 pages, and the one after merges no more.
        std::fs::write(dir.path().join("full_scans"), "10\n").unwrap();
        let ksmd = super::fake::scans(
            dir.path(),
            &[(11, 50), (12, 50)],
            Duration::from_millis(200),
        );
        let (now, settled) = session
            .wait_settled(from, 3, Duration::from_secs(20))
            .unwrap();
        ksmd.join().unwrap();
        assert!(settled);
        assert_eq!((now.full_scans, now.pages_sharing), (12, 50));
    }

    #[test]
    fn waiting_stops_once_a_further_scan_merged_nothing_more() {
        let dir = fake_sysfs("0");
        let session = KsmSession::start(dir.path(), ScanRate::MEASURING).unwrap();
        let from = session.counters().unwrap();
        // Two scans that merge, then one that merges no more.
        let ksmd = super::fake::scans(
            dir.path(),
            &[(8, 100), (9, 150), (10, 150)],
            Duration::from_millis(120),
        );
        let (now, settled) = session
            .wait_settled(from, 2, Duration::from_secs(20))
            .unwrap();
        ksmd.join().unwrap();
        assert!(settled);
        assert_eq!((now.full_scans, now.pages_sharing), (10, 150));
    }
}
