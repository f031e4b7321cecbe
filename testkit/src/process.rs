//! A child process a test owns: signals for pause, resume, stop and kill; reaped on the way out.

use std::process::Child;

use crate::TestkitError;

/// One spawned server process, or none while stopped.
#[derive(Debug, Default)]
pub(crate) struct Process {
    child: Option<Child>,
    paused: bool,
}

impl Process {
    pub(crate) fn new(child: Child) -> Process {
        Process {
            child: Some(child),
            paused: false,
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.child.is_some() && self.paused
    }

    pub(crate) fn pause(&mut self) -> Result<(), TestkitError> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    pub(crate) fn resume(&mut self) -> Result<(), TestkitError> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// Sends `signal` and waits for the exit; a paused process is continued first unless the
    /// signal is `SIGKILL`, since a stopped process does not act on `SIGTERM`.
    pub(crate) fn end(&mut self, signal: libc::c_int) -> Result<(), TestkitError> {
        if self.child.is_none() {
            return Ok(());
        }
        if self.paused && signal != libc::SIGKILL {
            self.signal(libc::SIGCONT)?;
        }
        self.signal(signal)?;
        if let Some(mut child) = self.child.take() {
            child
                .wait()
                .map_err(|e| TestkitError::io("waiting for a server to exit", e))?;
        }
        self.paused = false;
        Ok(())
    }

    fn signal(&self, signal: libc::c_int) -> Result<(), TestkitError> {
        let child = self.child.as_ref().ok_or(TestkitError::NotRunning)?;
        let pid = libc::pid_t::try_from(child.id()).map_err(|_| {
            TestkitError::io(
                format!("signalling process {}", child.id()),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid does not fit pid_t"),
            )
        })?;
        // SAFETY: kill(2) only reads its arguments; `pid` is our own child, not yet reaped.
        let result = unsafe { libc::kill(pid, signal) };
        if result != 0 {
            return Err(TestkitError::io(
                format!("sending signal {signal} to process {pid}"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGKILL works on a paused process too; errors here have nowhere to go.
        let _ = self.end(libc::SIGKILL);
    }
}
