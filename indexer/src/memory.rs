//! Process-wide memory settings for a long-running indexer.
//!
//! glibc's `malloc` gives each thread that allocates under contention an arena of
//! its own, up to eight per core, and keeps what is freed in each arena for later
//! use. The indexer's threads (the runtime's workers, the blocking pool, the
//! database drivers) each pass through large short-lived buffers (JSON-RPC answers,
//! decoded rows, multi-row inserts), so every arena grows to the largest of them
//! and the process's peak RSS grows with the number of arenas rather than with what
//! it holds. One arena per core keeps the peak down without measurable cost in time
//! (docs/benchmarks.md, "Read pool, lookup indexes and malloc arenas": the
//! 195,072-event backfills' peak RSS went from 183–204 MiB to 165–172 MiB, both
//! databases, at the same speed).

/// The environment variable glibc reads at start-up; when it is set, the user's
/// choice is kept and [`limit_malloc_arenas`] does nothing.
pub const ARENA_ENV: &str = "MALLOC_ARENA_MAX";

/// Caps glibc's malloc arenas at one per available core (at least two), unless
/// [`ARENA_ENV`] is set. Call it first thing in `main`, before threads start.
/// Returns the cap applied, or `None` when nothing was changed (the variable is
/// set, the allocator refused, or the C library is not glibc).
pub fn limit_malloc_arenas() -> Option<usize> {
    if std::env::var_os(ARENA_ENV).is_some() {
        return None;
    }
    let arenas = std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .max(2);
    set_arena_max(arenas).then_some(arenas)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: usize) -> bool {
    let Ok(value) = libc::c_int::try_from(arenas) else {
        return false;
    };
    // SAFETY: `mallopt` only sets a tuning parameter of the allocator; it takes any
    // value and answers 1 when it applied it, 0 when it did not.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, value) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_cap() {
        // mallopt refuses values it does not know; M_ARENA_MAX must be one it takes.
        assert!(set_arena_max(2));
        assert!(
            !set_arena_max(usize::MAX),
            "a cap above c_int must be refused"
        );
    }
}
