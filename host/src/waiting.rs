//! A count of the tasks waiting for something, right however each wait ends: a task
//! counts itself with a `Waiting` guard, and a dropped future uncounts itself too.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts its task in `count` while it lives.
pub struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
