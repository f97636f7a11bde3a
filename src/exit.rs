//! The process's exit codes (sysexits), for every subcommand. A leaf: it imports nothing.

/// An invalid configuration (sysexits `EX_CONFIG`).
pub const CONFIG: u8 = 78;
/// A failure of the operating system, such as a port that cannot be bound (sysexits
/// `EX_OSERR`).
pub const OSERR: u8 = 71;
