//! Leaf hashing for file imports: chunks in, leaf blocks out, in file order,
//! hashed on every core.
//!
//! Chunk boundaries never depend on a hash (fixed-size cuts, or FastCDC's
//! rolling gear hash over the bytes), so a leaf's CID depends on its chunk
//! alone and leaves can be hashed in any order. Once a file has a second
//! chunk, the calling thread only reads: chunk `i` goes to worker
//! `i mod N`, and leaves are taken back in the same round-robin order, so
//! they come out in file order without a reordering buffer. At most
//! [`CHUNKS_AHEAD_PER_WORKER`] chunks per worker are read ahead, which
//! bounds memory whatever the file size. Single-chunk files, and machines
//! with one core, hash on the calling thread and start no thread.

use super::builder::{leaf_block, Built, ImportOptions};
use super::pb::DataType;
use super::DagError;
use crate::block::Block;
use bytes::Bytes;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::Scope;

/// Chunks read ahead per hashing worker (read, queued or being hashed).
pub const CHUNKS_AHEAD_PER_WORKER: usize = 2;
/// Most hashing workers one file import starts.
pub const MAX_LEAF_WORKERS: usize = 8;

/// A leaf block and what its parent links to.
type Leaf = (Block, Built);

/// Hashing workers for one file, fed round-robin.
struct Workers {
    /// Each worker's queue of chunks and its queue of finished leaves.
    lanes: Vec<(SyncSender<Bytes>, Receiver<Leaf>)>,
    /// Chunks handed to workers, and leaves taken back.
    sent: u64,
    taken: u64,
}

/// Where the next leaf comes from.
enum State {
    /// Nothing read yet.
    Start,
    /// Hashing on the calling thread (one chunk, one core, or ended).
    Serial,
    /// Hashing on workers; the input may still have chunks.
    Parallel { workers: Workers, input_ended: bool },
}

/// The leaves of one file: an iterator that reads chunks on the calling
/// thread and hashes them, on workers spawned in `scope` when that helps.
pub(crate) struct Leaves<'scope, 'env, I> {
    chunks: I,
    opts: ImportOptions,
    kind: DataType,
    scope: &'scope Scope<'scope, 'env>,
    workers: usize,
    /// A chunk read ahead to tell single-chunk files apart.
    held: Option<Bytes>,
    state: State,
}

impl<'scope, 'env, I> Leaves<'scope, 'env, I>
where
    I: Iterator<Item = std::io::Result<Bytes>>,
{
    /// Leaves of `kind` (balanced files: `File`; trickle: `Raw`) for the
    /// chunks, hashed by up to `workers` threads of `scope`.
    pub(crate) fn new(
        scope: &'scope Scope<'scope, 'env>,
        chunks: I,
        opts: &ImportOptions,
        kind: DataType,
        workers: usize,
    ) -> Self {
        Leaves {
            chunks,
            opts: *opts,
            kind,
            scope,
            workers: workers.min(MAX_LEAF_WORKERS),
            held: None,
            state: State::Start,
        }
    }

    fn next_chunk(&mut self) -> Option<Result<Bytes, DagError>> {
        if let Some(chunk) = self.held.take() {
            return Some(Ok(chunk));
        }
        self.chunks.next().map(|r| r.map_err(DagError::Read))
    }

    /// Reads the first chunk and, if a second follows and there is more
    /// than one core, starts the workers.
    fn start(&mut self) -> Option<Result<Leaf, DagError>> {
        self.state = State::Serial;
        let first = match self.next_chunk()? {
            Ok(chunk) => chunk,
            Err(e) => return Some(Err(e)),
        };
        if self.workers < 2 {
            return Some(Ok(leaf_block(&self.opts, first, self.kind)));
        }
        match self.chunks.next() {
            None => Some(Ok(leaf_block(&self.opts, first, self.kind))),
            Some(Err(e)) => Some(Err(DagError::Read(e))),
            Some(Ok(second)) => {
                self.held = Some(second);
                let mut workers = self.spawn_workers();
                if let Err(e) = workers.send(first) {
                    return Some(Err(e));
                }
                self.state = State::Parallel {
                    workers,
                    input_ended: false,
                };
                self.next()
            }
        }
    }

    fn spawn_workers(&self) -> Workers {
        let lanes = (0..self.workers)
            .map(|_| {
                let (chunk_tx, chunk_rx) = sync_channel::<Bytes>(CHUNKS_AHEAD_PER_WORKER);
                let (leaf_tx, leaf_rx) = sync_channel::<Leaf>(CHUNKS_AHEAD_PER_WORKER);
                let (opts, kind) = (self.opts, self.kind);
                self.scope.spawn(move || {
                    for chunk in chunk_rx {
                        if leaf_tx.send(leaf_block(&opts, chunk, kind)).is_err() {
                            break;
                        }
                    }
                });
                (chunk_tx, leaf_rx)
            })
            .collect();
        Workers {
            lanes,
            sent: 0,
            taken: 0,
        }
    }
}

impl Workers {
    fn in_flight(&self) -> usize {
        (self.sent - self.taken) as usize
    }

    fn capacity(&self) -> usize {
        self.lanes.len() * CHUNKS_AHEAD_PER_WORKER
    }

    /// Hands a chunk to the next worker in turn. Never blocks while fewer
    /// than [`Workers::capacity`] chunks are in flight.
    fn send(&mut self, chunk: Bytes) -> Result<(), DagError> {
        let lane = (self.sent % self.lanes.len() as u64) as usize;
        self.lanes[lane]
            .0
            .send(chunk)
            .map_err(|_| DagError::Internal("leaf hashing worker stopped"))?;
        self.sent += 1;
        Ok(())
    }

    /// The next leaf in file order, if any chunk is in flight.
    fn take(&mut self) -> Option<Result<Leaf, DagError>> {
        if self.in_flight() == 0 {
            return None;
        }
        let lane = (self.taken % self.lanes.len() as u64) as usize;
        self.taken += 1;
        Some(
            self.lanes[lane]
                .1
                .recv()
                .map_err(|_| DagError::Internal("leaf hashing worker stopped")),
        )
    }
}

impl<I> Iterator for Leaves<'_, '_, I>
where
    I: Iterator<Item = std::io::Result<Bytes>>,
{
    type Item = Result<Leaf, DagError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.state {
            State::Start => self.start(),
            State::Serial => {
                let chunk = self.next_chunk()?;
                Some(chunk.map(|c| leaf_block(&self.opts, c, self.kind)))
            }
            State::Parallel {
                workers,
                input_ended,
            } => {
                // Read ahead until every worker has its share.
                while !*input_ended && workers.in_flight() < workers.capacity() {
                    let chunk = match self.held.take() {
                        Some(chunk) => Ok(chunk),
                        None => match self.chunks.next() {
                            Some(r) => r.map_err(DagError::Read),
                            None => {
                                *input_ended = true;
                                break;
                            }
                        },
                    };
                    if let Err(e) = chunk.and_then(|c| workers.send(c)) {
                        // The import fails: what is in flight is dropped.
                        *input_ended = true;
                        return Some(Err(e));
                    }
                }
                workers.take()
            }
        }
    }
}

/// How many threads hash leaves: one per core the process may use.
pub(crate) fn leaf_workers() -> usize {
    super::available_cores().unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::chunker::ChunkerSpec;

    fn pattern(len: usize) -> Vec<u8> {
        let mut x: u64 = 7;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn cids(data: &[u8], opts: &ImportOptions, workers: usize) -> Vec<String> {
        std::thread::scope(|scope| {
            Leaves::new(
                scope,
                opts.chunker.chunks(data),
                opts,
                DataType::File,
                workers,
            )
            .map(|leaf| leaf.unwrap().1.cid.to_string())
            .collect()
        })
    }

    #[test]
    fn workers_give_the_serial_leaves_in_order() {
        let data = pattern(300_000);
        for chunker in ["size-1000", "size-65536", "cdc-1024-4096-16384"] {
            let opts = ImportOptions {
                chunker: chunker.parse::<ChunkerSpec>().unwrap(),
                ..ImportOptions::default()
            };
            let serial = cids(&data, &opts, 1);
            assert!(serial.len() > 4, "{chunker}");
            for workers in [2, 3, 8] {
                assert_eq!(cids(&data, &opts, workers), serial, "{chunker} {workers}");
            }
            // One chunk, and none: no worker needed, same answer.
            assert_eq!(cids(&data[..500], &opts, 4), cids(&data[..500], &opts, 1));
            assert!(cids(&[], &opts, 4).is_empty());
        }
    }

    #[test]
    fn a_read_error_ends_the_leaves_with_it() {
        let opts = ImportOptions {
            chunker: ChunkerSpec::Fixed { size: 10 },
            ..ImportOptions::default()
        };
        let chunks = (0..100).map(|i| {
            if i == 50 {
                Err(std::io::Error::other("disk gone"))
            } else {
                Ok(Bytes::from(vec![i as u8; 10]))
            }
        });
        std::thread::scope(|scope| {
            let leaves: Vec<_> = Leaves::new(scope, chunks, &opts, DataType::File, 2).collect();
            let first_err = leaves.iter().position(|l| l.is_err()).unwrap();
            assert!(first_err <= 50);
            assert!(leaves[..first_err].iter().all(|l| l.is_ok()));
            assert!(matches!(leaves[first_err], Err(DagError::Read(_))));
        });
    }
}
