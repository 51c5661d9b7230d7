//! Vectors that grow with the number of rules, given back without changing how the C library
//! serves every process forked afterwards.
//!
//! glibc serves a request of 128 kB or more with a mapping of its own, and when it *frees* such
//! a mapping it raises that threshold to the mapping's size (its dynamic mmap threshold, up to
//! 32 MB), for the rest of the process's life and in every process forked from it. The
//! postmaster loads the rules and then forks every backend: a load that freed its large
//! vectors the usual way left every later backend serving its own large allocations from the
//! heap, at a cost of several page faults per login (BENCHMARKS.md, "glibc's mmap threshold").
//!
//! A [`Scratch`] gives its memory back in two steps: it drops its elements and shrinks to one
//! element (`realloc`, which glibc answers for a mapped block with `mremap`, leaving the
//! threshold alone), then frees what is left, a block below the threshold. With another C
//! library the steps cost one `realloc` and change nothing else. `tests/load_leaves_malloc_alone.rs`
//! checks a whole load of 10,000 and 100,000 rules.

use std::ops::{Deref, DerefMut};

/// A vector that frees its memory the way this module describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scratch<T>(Vec<T>);

impl<T> Scratch<T> {
    pub fn new() -> Scratch<T> {
        Scratch(Vec::new())
    }
}

impl<T> From<Vec<T>> for Scratch<T> {
    fn from(v: Vec<T>) -> Scratch<T> {
        Scratch(v)
    }
}

impl<T> FromIterator<T> for Scratch<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Scratch<T> {
        Scratch(items.into_iter().collect())
    }
}

impl<'a, T> IntoIterator for &'a Scratch<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> Deref for Scratch<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T> Drop for Scratch<T> {
    fn drop(&mut self) {
        self.0.clear();
        self.0.shrink_to(1);
    }
}
