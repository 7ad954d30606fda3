//! Files written whole or not at all: [`write_atomic`] writes a temporary file next to the
//! target, syncs it and renames it over the target, so that a crash or a kill never leaves a
//! half-written checkpoint, embedding file or picture behind; [`remove_stale_temporaries`]
//! cleans up what an interrupted write left.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("runs").join("probe.json");
//! ee_core::fs::write_atomic(&path, b"{}").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}");
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file that could not be written, read or removed, with its path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    /// The file (or directory).
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

impl FileError {
    fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file next to it (`.NAME.tmp.PID`), synced,
/// then renamed over `path`. Creates the parent directories. On an error the temporary file is
/// removed and `path` keeps its old content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| FileError::new(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = temporary_path(dir, &name);
    let result = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(FileError::new(path, e));
    }
    Ok(())
}

/// The temporary file [`write_atomic`] writes `NAME` in `dir` through (`.NAME.tmp.PID`).
fn temporary_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp.{}", std::process::id()))
}

/// Removes what an interrupted [`write_atomic`] of another process left in `dir` (its
/// `.NAME.tmp.PID` files, e.g. after a kill during a checkpoint write); returns how many it
/// removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, FileError> {
    let own = format!(".tmp.{}", std::process::id());
    let mut removed = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| FileError::new(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with('.')
            && name.contains(".tmp.")
            && !name.ends_with(&own)
            && name
                .rsplit(".tmp.")
                .next()
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if stale && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|e| FileError::new(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("last.mpk");
        write_atomic(&path, b"first version").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["last.mpk"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails, after the temporary file was written.
        let target = dir.path().join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"kept").unwrap();
        let err = write_atomic(&target, b"new").unwrap_err();
        assert_eq!(err.path, target);
        assert!(err.to_string().contains("taken"), "{err}");
        assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"kept");
        assert_eq!(names(dir.path()), ["taken"]);
    }

    #[test]
    fn stale_temporaries_of_other_processes_are_removed_and_own_kept() {
        let dir = tempfile::tempdir().unwrap();
        let own = temporary_path(dir.path(), "best.mpk");
        std::fs::write(&own, b"in flight").unwrap();
        std::fs::write(dir.path().join(".last.mpk.tmp.4242424"), b"stale").unwrap();
        std::fs::write(dir.path().join(".hidden.tmp.notapid"), b"not ours").unwrap();
        std::fs::write(dir.path().join("last.mpk"), b"real").unwrap();
        assert_eq!(remove_stale_temporaries(dir.path()).unwrap(), 1);
        let own_name = own.file_name().unwrap().to_string_lossy().into_owned();
        let mut want = vec![own_name, ".hidden.tmp.notapid".into(), "last.mpk".into()];
        want.sort();
        assert_eq!(names(dir.path()), want);
    }
}
