//! `ee-tch ARGS...`: runs the LibTorch build of `ee` (next to this binary) with ARGS, with
//! torch 2.9.0's `lib/` folder first on `LD_LIBRARY_PATH`; or prints one line saying what was
//! looked for and what to do, and exits with 2.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let error = ee_tch_launcher::launch(&ee_tch_launcher::Env::from_process(), &args);
    eprintln!("ee-tch: {error}");
    ExitCode::from(2)
}
