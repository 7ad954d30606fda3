//! `ee`: the embedding-expansion command line.
//!
//! Until the training loop lands, `ee train CONFIG` states what the run will do.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("train") => {
            let Some(config) = args.get(1) else {
                eprintln!("error: `ee train` needs a CONFIG path");
                return ExitCode::from(2);
            };
            let text = match std::fs::read_to_string(config) {
                Ok(text) => text,
                Err(e) => {
                    eprintln!("error: cannot read config `{config}`: {e}");
                    return ExitCode::from(2);
                }
            };
            println!("ee train {config} (backend: {})", backend_name());
            println!("The training loop is not implemented yet; this run would use:");
            print!("{text}");
            ExitCode::SUCCESS
        }
        _ => {
            println!("ee: embedding-expansion\n\nUSAGE:\n    ee train CONFIG");
            ExitCode::SUCCESS
        }
    }
}

fn backend_name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "flex"
    }
}
