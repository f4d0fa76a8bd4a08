//! `mbms-recv`: see `mbms-recv --help`.

fn main() -> std::process::ExitCode {
    mbms_receiver::cli::main_with(std::env::args_os())
}
