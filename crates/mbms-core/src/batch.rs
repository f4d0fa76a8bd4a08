//! Batch sealing across cores (rayon). Output order is input order.
//!
//! The core owns no threads: rayon's global pool, sized by the caller's process, runs the work.
//! Without the `parallel` feature the same functions run sequentially.

use crate::keys::Muk;
use crate::mbms::{MskMessageParams, MtkParams, MtkSealer, seal_msk_message};
use crate::profile::Profile;

/// One MSK message to seal: the UE's MUK and the message parameters.
#[derive(Debug, Clone, Copy)]
pub struct MskJob<'a> {
    /// The UE's MUK.
    pub muk: &'a Muk,
    /// What goes into the message.
    pub params: MskMessageParams<'a>,
}

/// One MTK message to seal.
#[derive(Debug, Clone, Copy)]
pub struct MtkJob<'a> {
    /// The sealer of the service's MSK.
    pub sealer: &'a MtkSealer,
    /// The MTK and its ID.
    pub mtk: MtkParams<'a>,
    /// Timestamp counter of the message.
    pub counter: u32,
}

/// Seals one MSK message per job (each under its own MUK), spread over the rayon pool.
pub fn seal_msk_batch(jobs: &[MskJob<'_>], profile: &Profile) -> Vec<Vec<u8>> {
    map_ordered(jobs, |j| {
        let mut out = Vec::with_capacity(160);
        seal_msk_message(j.muk, &j.params, profile, &mut out);
        out
    })
}

/// Seals one MTK message per job (many services, each with its own sealer).
pub fn seal_mtk_batch(jobs: &[MtkJob<'_>]) -> Vec<Vec<u8>> {
    map_ordered(jobs, |j| {
        let mut out = Vec::with_capacity(96);
        j.sealer.seal(&j.mtk, j.counter, &mut out);
        out
    })
}

#[cfg(feature = "parallel")]
fn map_ordered<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    // Small chunks still amortise the scheduling cost: one message is ~1 µs of work.
    items.par_iter().with_min_len(64).map(f).collect()
}

#[cfg(not(feature = "parallel"))]
fn map_ordered<T, R>(items: &[T], f: impl Fn(&T) -> R) -> Vec<R> {
    items.iter().map(f).collect()
}

/// Runs `f` on every item, spread over the rayon pool when the `parallel` feature is on.
pub(crate) fn for_each_owned<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items.into_par_iter().with_min_len(16).for_each(f);
    }
    #[cfg(not(feature = "parallel"))]
    items.into_iter().for_each(f);
}

/// Maps every item with `f`, spread over the rayon pool; output order is input order.
pub(crate) fn map_owned<T: Send, R: Send>(
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync + Send,
) -> Vec<R> {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        items.into_par_iter().with_min_len(16).map(f).collect()
    }
    #[cfg(not(feature = "parallel"))]
    items.into_iter().map(f).collect()
}
