//! One module per `ee` command: its clap arguments (`XArgs`) and its `run`, which wires the
//! library's pieces together. Range checks of counts and sizes live in the value parsers
//! below, so that clap refuses a bad value with the flag's name before anything runs.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::Args;
use ee_cli::config::{RawConfig, RunConfig};
use ee_cli::error::Result;

pub mod data;
pub mod embed;
pub mod eval;
pub mod probe;
pub mod search;
pub mod train;
pub mod viz;

#[derive(Args)]
pub struct ConfigArgs {
    /// The run config (TOML), e.g. configs/demo.toml.
    pub config: PathBuf,
    /// Override a config value: --set optimizer.lr=1e-3 (repeatable; applied before validation).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    /// Reads the config with its overrides and validates it.
    pub fn load(&self) -> Result<RunConfig> {
        Ok(RawConfig::load(&self.config, &self.overrides)?.check()?)
    }
}

/// A value parser for a count of at least 1 given to `flag` (`-k`, `--queries`). A negative
/// number is named as such rather than refused as unreadable; values above what the data
/// holds (the gallery size for `-k`) are refused by the command, which knows the data.
pub fn count(
    flag: &'static str,
) -> impl Fn(&str) -> std::result::Result<usize, String> + Clone + Send + Sync + 'static {
    move |text| match text.trim().parse::<i128>() {
        Ok(value) if value >= 1 => {
            usize::try_from(value).map_err(|_| format!("invalid {flag} {value}: too large"))
        }
        Ok(value) => Err(format!("invalid {flag} {value}: must be at least 1")),
        Err(_) => Err(format!(
            "expected a whole number of at least 1, got {text:?}"
        )),
    }
}

/// A value parser for a size in pixels given to `flag`, which must lie in `range`.
pub fn pixels(
    flag: &'static str,
    range: RangeInclusive<u32>,
) -> impl Fn(&str) -> std::result::Result<u32, String> + Clone + Send + Sync + 'static {
    move |text| match text.trim().parse::<i128>() {
        Ok(value) => u32::try_from(value)
            .ok()
            .filter(|pixels| range.contains(pixels))
            .ok_or_else(|| {
                format!(
                    "invalid {flag} {value}: must be in {}..={}",
                    range.start(),
                    range.end()
                )
            }),
        Err(_) => Err(format!(
            "expected a whole number in {}..={}, got {text:?}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_name_the_flag_and_the_rule() {
        let parse_k = count("-k");
        assert_eq!(parse_k("3"), Ok(3));
        assert_eq!(
            parse_k("-1"),
            Err("invalid -k -1: must be at least 1".into())
        );
        assert_eq!(parse_k("0"), Err("invalid -k 0: must be at least 1".into()));
        assert_eq!(
            parse_k("x"),
            Err("expected a whole number of at least 1, got \"x\"".into())
        );
    }

    #[test]
    fn pixels_outside_the_range_name_the_flag_and_the_range() {
        let thumb = pixels("--thumb", 8..=1024);
        assert_eq!(thumb("8"), Ok(8));
        assert_eq!(thumb("1024"), Ok(1024));
        assert_eq!(
            thumb("4"),
            Err("invalid --thumb 4: must be in 8..=1024".into())
        );
        assert_eq!(
            thumb("99999999999"),
            Err("invalid --thumb 99999999999: must be in 8..=1024".into())
        );
    }
}
