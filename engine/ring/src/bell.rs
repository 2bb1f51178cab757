//! A wake-up for a thread that waits in `io_uring_enter` rather than in an
//! event loop: other threads queue work for it (through a channel of their
//! choice) and ring its [`Bell`]; the ring watches the bell's eventfd
//! ([`Ring::poll_multi`](crate::Ring::poll_multi)), so the wait ends.
//! Only a thread that said it is waiting costs a ringer a syscall.

use std::{
    fs::File,
    io::{self, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::atomic::{fence, AtomicBool, Ordering},
};

pub struct Bell {
    eventfd: File,
    waiting: AtomicBool,
}

impl Bell {
    pub fn new() -> io::Result<Bell> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor (above), owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Bell {
            eventfd: File::from(fd),
            waiting: AtomicBool::new(false),
        })
    }

    /// The descriptor the waiting thread's ring polls.
    pub fn fd(&self) -> RawFd {
        self.eventfd.as_raw_fd()
    }

    /// The waiting thread, before it looks at its queue one last time and
    /// then waits: from here on a ringer writes the eventfd.
    pub fn arm(&self) {
        self.waiting.store(true, Ordering::Relaxed);
        // Pairs with the fence in `ring`: either the ringer sees the bell
        // armed, or the waiting thread's last look sees what was queued.
        fence(Ordering::SeqCst);
    }

    /// The waiting thread is back; ringers need not write.
    pub fn disarm(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// After queueing work for the thread: wakes it if it waits. One write
    /// per wait, whoever rings first.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::Relaxed) {
            // The only error a non-blocking eventfd write has is a counter
            // at its maximum, which is readable already: the thread wakes
            // either way.
            let _ = (&self.eventfd).write(&1u64.to_ne_bytes());
        }
    }
}

impl std::fmt::Debug for Bell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bell")
            .field("fd", &self.fd())
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish()
    }
}
