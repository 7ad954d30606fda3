//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading a dataset, sampling or loading images.
///
/// Every variant names the file (and line, where there is one) or the parameter at fault, so
/// that the message alone tells a user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a text file is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A file is not in the expected format (wrong MAT-file layout, wrong .npy dtype, ...).
    #[error("{path}: {message}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image is missing, unreadable or cannot be decoded.
    #[error("cannot load image {path}: {message}")]
    Image {
        /// The image file at fault.
        path: PathBuf,
        /// Why it could not be loaded.
        message: String,
    },
    /// A split has no items, or a class has no images.
    #[error("{0}")]
    EmptySplit(String),
    /// A configuration value breaks a rule.
    #[error("invalid {field} = {value}: {rule}")]
    InvalidConfig {
        /// The parameter's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// The data loader's worker threads stopped unexpectedly.
    #[error("data loader: {0}")]
    Loader(String),
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        DataError::Parse {
            path: path.into(),
            line,
            message: message.into(),
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn image(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        // Decoder messages can span lines or end in a newline: keep errors on one line.
        let message: String = message.into();
        let mut one_line = String::new();
        for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !one_line.is_empty() {
                one_line.push_str(if one_line.ends_with(':') { " " } else { "; " });
            }
            one_line.push_str(line);
        }
        DataError::Image {
            path: path.into(),
            message: one_line,
        }
    }

    pub(crate) fn config(
        field: &'static str,
        value: impl ToString,
        rule: impl Into<String>,
    ) -> Self {
        DataError::InvalidConfig {
            field,
            value: value.to_string(),
            rule: rule.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_errors_are_one_line() {
        let e = DataError::image("a.jpg", "Format error decoding Jpeg:\n  truncated\n\n");
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text:?}");
        assert!(
            text.ends_with("Format error decoding Jpeg: truncated"),
            "{text:?}"
        );
    }
}
