//! The server's end, asked for once (stdin closed, the serving loop over): blocking tool
//! calls poll it, so a `wait_background` in progress returns at once.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
pub struct Stop(AtomicBool);

impl Stop {
    pub fn ask(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn asked(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
