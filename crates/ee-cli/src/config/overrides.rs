//! Reading a config: TOML text, `--set section.key=value` overrides, then the schema.

use std::path::Path;

use super::{ConfigError, RawConfig};

/// The most dot-separated parts a `--set` key may have: the schema's deepest keys have 3
/// (`data.augment.flip`), and each part is a level of tables to build (and later to walk
/// recursively: 50,000 of them overflowed the stack).
pub const MAX_KEY_PARTS: usize = 8;

/// Applies one `section.key=value` override to a parsed TOML table. The value is read as a
/// TOML value (`3`, `1e-4`, `true`, `[1, 2]`, `"text"`); anything that is not one is taken
/// as a string, so `--set run.output_dir=runs/a` works without quotes. Text that is more
/// than one TOML value (`1\nseed = 3`) is refused: its other keys would be dropped.
pub fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Override {
        arg: arg.into(),
        message: message.into(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key=value"))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(err("the key must be section.key, e.g. optimizer.lr"));
    }
    if parts.len() > MAX_KEY_PARTS {
        return Err(err(&format!(
            "the key has {} parts; config keys have at most {MAX_KEY_PARTS} (e.g. data.augment.flip)",
            parts.len()
        )));
    }
    let value = value.trim();
    let value = match format!("v = {value}").parse::<toml::Table>() {
        Ok(t) if t.len() > 1 => {
            return Err(err(
                "the value must be one TOML value (a newline in it starts another key)",
            ))
        }
        Ok(mut t) => t
            .remove("v")
            .ok_or_else(|| err("the value must be one TOML value"))?,
        Err(_) => toml::Value::String(value.to_string()),
    };
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| err(&format!("`{part}` is a value, not a section")))?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

impl RawConfig {
    /// Reads `path`, applies `overrides` (`section.key=value`) and deserialises.
    pub fn load(path: &Path, overrides: &[String]) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            message: e.to_string(),
        })?;
        Self::parse_str(&text, overrides, &path.display().to_string())
    }

    /// As [`RawConfig::load`] on TOML text; `origin` names it in errors.
    pub fn parse_str(
        text: &str,
        overrides: &[String],
        origin: &str,
    ) -> Result<RawConfig, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: origin.into(),
                    key: String::new(),
                    message: one_line(&e.to_string()),
                })?;
        for arg in overrides {
            apply_override(&mut table, arg)?;
        }
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let key = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            ConfigError::Parse {
                origin: origin.into(),
                key,
                message: one_line(&e.into_inner().to_string()),
            }
        })
    }

    /// The config as TOML text (what `config.toml` in the run directory holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
