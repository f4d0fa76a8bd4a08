//! `mbms-send`: see `mbms-send --help`.

// mimalloc, not glibc's malloc: packet buffers are cut from 256 KB slabs on the reading thread
// and freed on the sender thread, and glibc kept returning those pages to the kernel and
// faulting them back in. Side by side on the 2-vCPU machine, protected runs sent 1.065 and 1.10
// times as many packets a second (medians of two sets of 12 rounds, docs/sender.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mbms_sender::cli::main_with(std::env::args_os())
}
