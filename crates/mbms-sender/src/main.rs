//! `mbms-send`: see `mbms-send --help`.

fn main() -> std::process::ExitCode {
    mbms_sender::cli::main_with(std::env::args_os())
}
