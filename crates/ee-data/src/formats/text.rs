//! Reading whitespace-separated annotation files with line numbers for errors.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{DataError, Result};

/// A non-blank line of a text file with its 1-based number, split on whitespace.
pub(crate) struct Line<'a> {
    pub path: &'a Path,
    pub number: usize,
    pub fields: Vec<&'a str>,
}

impl<'a> Line<'a> {
    /// Requires exactly `names.len()` fields, named in the error.
    pub fn expect_fields(&self, names: &[&str]) -> Result<()> {
        if self.fields.len() != names.len() {
            return Err(DataError::parse(
                self.path,
                self.number,
                format!(
                    "expected {} fields ({}), found {}",
                    names.len(),
                    names.join(" "),
                    self.fields.len()
                ),
            ));
        }
        Ok(())
    }

    /// Parses field `index`, naming it `name` in the error.
    pub fn parse<T: FromStr>(&self, index: usize, name: &str) -> Result<T> {
        let text = self.fields.get(index).copied().unwrap_or("");
        text.parse::<T>().map_err(|_| {
            DataError::parse(
                self.path,
                self.number,
                format!("{name} {text:?} is not a valid {}", type_word::<T>()),
            )
        })
    }

    /// Builds an error about this line.
    pub fn error(&self, message: impl Into<String>) -> DataError {
        DataError::parse(self.path, self.number, message)
    }
}

fn type_word<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    if name.starts_with('f') {
        "number"
    } else if name.starts_with('u') {
        "non-negative integer"
    } else {
        "value"
    }
}

/// The whole text of a file, with the file named in the error.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))
}

/// The non-blank lines of `text`, split on whitespace.
pub(crate) fn lines<'a>(path: &'a Path, text: &'a str) -> impl Iterator<Item = Line<'a>> {
    text.lines().enumerate().filter_map(move |(i, line)| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (!fields.is_empty()).then_some(Line {
            path,
            number: i + 1,
            fields,
        })
    })
}

/// Writes `text` to `path`, creating parent folders.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| DataError::io(path, e))
}

/// Joins a relative path from an annotation file onto the dataset root.
pub(crate) fn join(root: &Path, relative: &str) -> PathBuf {
    root.join(relative)
}
