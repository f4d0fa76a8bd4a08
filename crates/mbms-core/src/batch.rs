//! Batch sealing across cores (rayon). Output order is input order.
//!
//! The core owns no threads: rayon's global pool, sized by the caller's process, runs the work.
//! Without the `parallel` feature the same functions run sequentially.

use crate::error::MbmsError;
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
    let mut outs = Vec::new();
    seal_msk_batch_into(jobs, profile, &mut outs);
    outs
}

/// Like [`seal_msk_batch`], into the caller's buffers: `outs` is resized to `jobs.len()` and
/// buffer `i` receives message `i`. Reusing the buffers from batch to batch saves two
/// allocations per message and lets the batch scale across cores.
pub fn seal_msk_batch_into(jobs: &[MskJob<'_>], profile: &Profile, outs: &mut Vec<Vec<u8>>) {
    outs.resize_with(jobs.len(), || Vec::with_capacity(MSK_MESSAGE_CAPACITY));
    for_each_pair(jobs, outs, |j, out| {
        out.clear();
        seal_msk_message(j.muk, &j.params, profile, out);
    });
}

/// Seals one MTK message per job (many services, each with its own sealer). Result `i` is
/// job `i`'s: a counter not above its sealer's last one is refused
/// ([`MbmsError::CounterNotIncreasing`]) and its buffer left empty.
pub fn seal_mtk_batch(jobs: &[MtkJob<'_>]) -> (Vec<Vec<u8>>, Vec<Result<(), MbmsError>>) {
    let mut outs = Vec::new();
    let results = seal_mtk_batch_into(jobs, &mut outs);
    (outs, results)
}

/// Like [`seal_mtk_batch`], into the caller's reusable buffers (see [`seal_msk_batch_into`]).
/// Counters are taken in input order, then the messages sealed in parallel.
pub fn seal_mtk_batch_into(
    jobs: &[MtkJob<'_>],
    outs: &mut Vec<Vec<u8>>,
) -> Vec<Result<(), MbmsError>> {
    let claims: Vec<Result<(), MbmsError>> =
        jobs.iter().map(|j| j.sealer.claim(j.counter)).collect();
    outs.resize_with(jobs.len(), || Vec::with_capacity(MTK_MESSAGE_CAPACITY));
    let work: Vec<(&MtkJob<'_>, bool)> = jobs
        .iter()
        .zip(&claims)
        .map(|(j, c)| (j, c.is_ok()))
        .collect();
    for_each_pair(&work, outs, |(j, claimed), out| {
        out.clear();
        if *claimed {
            j.sealer.seal_claimed(&j.mtk, j.counter, out);
        }
    });
    claims
}

/// Room for an MSK message with SP and typical identities (190 bytes measured), so that
/// sealing does not reallocate.
const MSK_MESSAGE_CAPACITY: usize = 256;
/// Room for an MTK message with salt and RAND (114 bytes).
const MTK_MESSAGE_CAPACITY: usize = 128;

fn for_each_pair<T: Sync, O: Send>(
    items: &[T],
    outs: &mut [O],
    f: impl Fn(&T, &mut O) + Sync + Send,
) {
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        // Small chunks still amortise the scheduling cost: one message is ~0.3-2 µs of work.
        items
            .par_iter()
            .zip(outs.par_iter_mut())
            .with_min_len(64)
            .for_each(|(t, o)| f(t, o));
    }
    #[cfg(not(feature = "parallel"))]
    items.iter().zip(outs.iter_mut()).for_each(|(t, o)| f(t, o));
}

/// Runs `prepare` on consecutive chunks of `chunk` items, in order on the calling thread, and
/// `seal` on what each returns as soon as it is ready, with the `parallel` feature on the
/// calling thread's rayon pool (the global one outside any): the sequential preparation of later
/// chunks overlaps the parallel sealing of earlier ones instead of holding every other thread
/// idle until it has finished; where [`spread`] says not to, each chunk is sealed right after
/// it is prepared. Returns when every `seal` has; a panic in one is raised here.
pub(crate) fn pipelined<'a, T, W: Send + 'a>(
    items: &'a mut [T],
    chunk: usize,
    mut prepare: impl FnMut(&'a mut [T]) -> W,
    seal: impl Fn(W) + Sync,
) {
    if spread() {
        #[cfg(feature = "parallel")]
        rayon::in_place_scope(|s| {
            let seal = &seal;
            for c in items.chunks_mut(chunk.max(1)) {
                let work = prepare(c);
                s.spawn(move |_| seal(work));
            }
        });
        return;
    }
    for c in items.chunks_mut(chunk.max(1)) {
        seal(prepare(c));
    }
}

/// Whether work is worth handing to rayon: the `parallel` feature is on and the pool in use has
/// more than one thread. On one thread, tasks only add their cost (1-2% of a 1200-byte SRTP
/// batch, measured), and the work runs in order on the calling thread instead.
fn spread() -> bool {
    #[cfg(feature = "parallel")]
    return rayon::current_num_threads() > 1;
    #[cfg(not(feature = "parallel"))]
    false
}

/// Runs `f` on consecutive chunks of `chunk` items, spread over the rayon pool where
/// [`spread`] says so, else in order.
pub(crate) fn for_each_chunk<T: Send>(
    items: &mut [T],
    chunk: usize,
    f: impl Fn(&mut [T]) + Sync + Send,
) {
    #[cfg(feature = "parallel")]
    if spread() {
        use rayon::prelude::*;
        // Four groups of packets per task at least: a packet is ~0.3-1.5 µs of work.
        items
            .par_chunks_mut(chunk.max(1))
            .with_min_len(4)
            .for_each(f);
        return;
    }
    items.chunks_mut(chunk.max(1)).for_each(f);
}
