//! Stop signals for the long-running commands (`demo`, `keys serve`, `indexer run`,
//! `gateway`): Ctrl-C (SIGINT) and SIGTERM.
//!
//! The listeners are registered when [`Shutdown::listen`] returns, not when the wait is
//! first polled: a signal that arrives between two phases of a command (say, after the demo
//! printed that it serves and before it waits for Ctrl-C) is kept, not lost. (A listener
//! created after tokio has dispatched a signal never sees it, and once tokio's handler is
//! installed the signal no longer ends the process, so a late listener would wait forever.)

/// Ctrl-C and SIGTERM, listened for from creation on.
pub(crate) struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl Shutdown {
    /// Starts listening (inside a tokio runtime).
    pub(crate) fn listen() -> eyre::Result<Self> {
        use eyre::WrapErr as _;
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind| signal(kind).wrap_err("listening for Ctrl-C and SIGTERM");
            Ok(Self {
                interrupt: listen(SignalKind::interrupt())?,
                terminate: listen(SignalKind::terminate())?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Self {
                ctrl_c: tokio::signal::windows::ctrl_c().wrap_err("listening for Ctrl-C")?,
            })
        }
    }

    /// Completes on the next Ctrl-C or SIGTERM, or at once for one received since the
    /// listener was created and not yet waited for.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(windows)]
        {
            self.ctrl_c.recv().await;
        }
    }

    /// [`Shutdown::recv`] as an owned future, for servers that take their stop signal by
    /// value.
    pub(crate) async fn into_future(mut self) {
        self.recv().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::Shutdown;
    use std::time::Duration;

    /// A signal sent while nothing waits is kept for the next wait: the race the demo lost
    /// (SIGINT right after "serving the dashboard", before its wait for Ctrl-C).
    #[tokio::test]
    async fn a_signal_before_the_wait_is_kept() {
        let mut shutdown = Shutdown::listen().unwrap();
        // SIGTERM to this test process: with the listener registered it does not end it.
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        // Let tokio's driver dispatch it while nobody waits.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::timeout(Duration::from_secs(30), shutdown.recv())
            .await
            .expect("the signal sent before the wait was lost");
    }
}
