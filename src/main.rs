//! The `qftpd` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

/// jemalloc rather than glibc's allocator: a transfer passes through buffers of a few hundred
/// KiB that are allocated and freed at a high rate, and glibc hands blocks that large back to
/// the kernel when they are freed, so each new one was faulted in and zeroed page by page
/// again (a fifth of the CPU time of a download; see the README's Performance section).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    qftpd::cli::main()
}
