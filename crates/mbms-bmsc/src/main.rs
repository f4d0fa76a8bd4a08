//! `mbms-bmsc`: see the crate documentation of `mbms_bmsc`.

fn main() -> std::process::ExitCode {
    mbms_bmsc::cli::main_with(std::env::args_os())
}
