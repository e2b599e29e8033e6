//! Writing artifacts and reports atomically: each file is written to a temporary file in the
//! same directory, flushed to disk, then renamed over the target. A crash or an error midway
//! leaves the previous file whole and no half-written one (rename within one file system is
//! atomic on POSIX), which is what lets `isobench run` write after every environment.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::summarize;
use crate::artifact::Artifact;
use crate::render::{Exporter, Html, Markdown};

/// File name of the JSON artifact in an output directory.
pub const JSON_FILE: &str = "isobench.json";
/// File name of the markdown report in an output directory.
pub const MARKDOWN_FILE: &str = "report.md";
/// File name of the HTML report in an output directory.
pub const HTML_FILE: &str = "report.html";

/// Why a report file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Creating, writing, syncing or renaming failed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file that was being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The artifact could not be serialized.
    #[error("cannot serialize the artifact for {}", path.display())]
    Json {
        /// The file that was being written.
        path: PathBuf,
        /// What serde reported.
        source: serde_json::Error,
    },
    /// An exporter failed to render.
    #[error("cannot render {}", path.display())]
    Render {
        /// The file that was being written.
        path: PathBuf,
        /// What the exporter reported.
        source: crate::render::ExportError,
    },
}

/// The files [`report_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The JSON artifact (with its summary).
    pub json: PathBuf,
    /// The markdown report.
    pub markdown: PathBuf,
    /// The self-contained HTML report.
    pub html: PathBuf,
}

/// Writes `bytes` to `path` atomically.
pub fn atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    atomic_with(path, |file| file.write_all(bytes))
}

/// Writes to `path` atomically with `fill`, which writes the content. If `fill` fails, the
/// temporary file is removed and `path` keeps its previous content.
pub fn atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.as_deref().unwrap_or("isobench")))
        .suffix(".tmp")
        // Temporary files are private (0600) by default; a report is not. 0666 minus the
        // umask is what `File::create` would have given the file.
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io)?;
    fill(temp.as_file_mut()).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Writes the artifact as pretty JSON, atomically.
pub fn json(path: &Path, artifact: &Artifact) -> Result<(), WriteError> {
    let mut text = serde_json::to_string_pretty(artifact).map_err(|source| WriteError::Json {
        path: path.to_owned(),
        source,
    })?;
    text.push('\n');
    atomic(path, text.as_bytes())
}

/// Fills in the artifact's summary when it has none, then writes [`JSON_FILE`],
/// [`MARKDOWN_FILE`] and [`HTML_FILE`] into `dir` (created if missing), each atomically.
pub fn report_files(dir: &Path, artifact: &Artifact) -> Result<Written, WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut artifact = artifact.clone();
    if artifact.summary.is_none() {
        artifact.summary = Some(summarize(&artifact));
    }
    let written = Written {
        json: dir.join(JSON_FILE),
        markdown: dir.join(MARKDOWN_FILE),
        html: dir.join(HTML_FILE),
    };
    json(&written.json, &artifact)?;
    export(&written.markdown, &Markdown, &artifact)?;
    export(&written.html, &Html, &artifact)?;
    Ok(written)
}

/// Renders with `exporter` and writes the result atomically.
pub fn export(path: &Path, exporter: &dyn Exporter, artifact: &Artifact) -> Result<(), WriteError> {
    let text = exporter
        .render(artifact)
        .map_err(|source| WriteError::Render {
            path: path.to_owned(),
            source,
        })?;
    atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::fixture;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_get_the_same_mode_as_a_plain_create() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let atomic_path = dir.path().join("atomic");
        atomic(&atomic_path, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic_path), mode(&plain));
    }

    #[test]
    fn replaces_the_previous_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        atomic(&path, b"first").unwrap();
        atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(entries(dir.path()), ["out.txt"]);
    }

    #[test]
    fn a_failure_midway_keeps_the_previous_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        atomic(&path, b"{\"complete\":true}").unwrap();
        let err = atomic_with(&path, |file| {
            file.write_all(b"{\"comp")?;
            Err(std::io::Error::other("interrupted"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out.json"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"complete\":true}"
        );
        assert_eq!(entries(dir.path()), ["out.json"]);
    }

    #[test]
    fn an_unwritable_target_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename must fail, the directory survive.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("keep"), "x").unwrap();
        let err = atomic(&path, b"data").unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert_eq!(std::fs::read_to_string(path.join("keep")).unwrap(), "x");
        assert_eq!(entries(dir.path()), ["taken"]);
    }

    #[test]
    fn report_files_writes_all_three_with_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/report");
        let written = report_files(&out, &fixture::artifact()).unwrap();
        assert_eq!(entries(&out), [JSON_FILE, HTML_FILE, MARKDOWN_FILE]);
        let artifact = crate::artifact::merge::load(&written.json).unwrap();
        assert!(artifact.summary.is_some_and(|s| !s.rows.is_empty()));
        let markdown = std::fs::read_to_string(&written.markdown).unwrap();
        assert!(markdown.starts_with("# isobench"), "{markdown}");
        let html = std::fs::read_to_string(&written.html).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    }
}
