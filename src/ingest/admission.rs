//! The budget of connections that have not published yet: in all, and per client address.
//! A connection holds an [`Unauthenticated`] ticket until its publish is accepted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts unauthenticated connections.
#[derive(Clone, Debug)]
pub(crate) struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    total_limit: usize,
    per_address_limit: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The budget that refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full {
    pub limit: usize,
}

impl Admission {
    pub fn new(total_limit: usize, per_address_limit: usize) -> Self {
        Self { inner: Arc::new(Inner { total_limit, per_address_limit, counts: Mutex::default() }) }
    }

    /// A ticket for a new connection from `address`, unless a budget is spent.
    pub fn admit(&self, address: IpAddr) -> Result<Unauthenticated, Full> {
        let mut counts = self.inner.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.inner.total_limit {
            return Err(Full { limit: self.inner.total_limit });
        }
        let from_address = counts.by_address.entry(address).or_default();
        if *from_address >= self.inner.per_address_limit {
            return Err(Full { limit: self.inner.per_address_limit });
        }
        *from_address += 1;
        counts.total += 1;
        Ok(Unauthenticated { admission: Some((self.clone(), address)) })
    }

    fn release(&self, address: IpAddr) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.by_address.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.by_address.remove(&address);
            }
        }
    }
}

/// A connection that has not published yet; dropped (or [`Self::authenticated`]) when it
/// closes or publishes.
#[derive(Debug)]
pub(crate) struct Unauthenticated {
    admission: Option<(Admission, IpAddr)>,
}

impl Unauthenticated {
    /// The connection published: it no longer counts against the budget.
    pub fn authenticated(&mut self) {
        if let Some((admission, address)) = self.admission.take() {
            admission.release(address);
        }
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        self.authenticated();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_per_address_and_in_all() {
        let admission = Admission::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let mut second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Full { limit: 2 }, "two per address");
        let third = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).unwrap_err(), Full { limit: 3 }, "three in all");
        second.authenticated();
        let _fourth = admission.admit(a).expect("a published connection frees its place");
        drop(first);
        drop(third);
        admission.admit(b).expect("a closed connection frees its place");
    }
}
