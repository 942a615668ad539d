//! The MPI backend of [`Ensemble`] (cargo feature `mpi`, rsmpi): the chunks
//! of the deterministic reduction are split into contiguous ranges, one per
//! rank; each rank reduces its chunks, the root gathers them and merges them
//! in chunk order — exactly the merge a threaded run does, so the results
//! are bit-identical to `Ensemble::statistics` on one machine — and
//! broadcasts the result to every rank.
//!
//! Install MPI (Debian: `apt-get install libopenmpi-dev openmpi-bin
//! libclang-dev pkg-config`), build with `--features mpi`, and launch with
//! `mpirun -np K your-program`; see `examples/ensemble_mpi.rs`.

use mpi::Count;
use mpi::datatype::PartitionMut;
use mpi::traits::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use sdeflow_solvers::{Diffusion, Drift, Method, Problem};

use crate::ensemble::{
    ChunkOut, Ensemble, EnsembleError, Expectation, Reducer, StateStatistics, combine,
    finish_statistics,
};
use crate::statistics::{EnsembleSummary, Estimate};

/// Gathers every rank's bytes at rank 0 (in rank order).
fn gather_bytes<C: Communicator>(comm: &C, bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let root = comm.process_at_rank(0);
    let len = bytes.len() as Count;
    if comm.rank() == 0 {
        let size = comm.size() as usize;
        let mut counts = vec![0 as Count; size];
        root.gather_into_root(&len, &mut counts[..]);
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |acc, &c| {
                let d = *acc;
                *acc += c;
                Some(d)
            })
            .collect();
        let mut buf = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
        {
            let mut part = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(bytes, &mut part);
        }
        Some(
            counts
                .iter()
                .zip(&displs)
                .map(|(&c, &d)| buf[d as usize..(d + c) as usize].to_vec())
                .collect(),
        )
    } else {
        root.gather_into(&len);
        root.gather_varcount_into(bytes);
        None
    }
}

/// Broadcasts rank 0's bytes to every rank.
fn broadcast_bytes<C: Communicator>(comm: &C, bytes: Option<Vec<u8>>) -> Vec<u8> {
    let root = comm.process_at_rank(0);
    let mut buf = bytes.unwrap_or_default();
    let mut len = buf.len() as u64;
    root.broadcast_into(&mut len);
    buf.resize(len as usize, 0);
    root.broadcast_into(&mut buf[..]);
    buf
}

fn codec(e: serde_json::Error) -> EnsembleError {
    EnsembleError::Invalid(format!("MPI message encoding: {e}"))
}

impl<F, G, M, D> Ensemble<'_, F, G, M, D>
where
    F: Drift + Sync,
    G: Diffusion + Sync,
    D: sdeflow_solvers::brownian::Driver,
    M: Method<Problem<F, G, D>> + Sync,
{
    /// Runs this rank's share of the chunks and merges every rank's chunks
    /// at rank 0, in chunk order; the outcome (or error) reaches every rank.
    fn reduce_mpi<R, C, T>(
        &self,
        comm: &C,
        r: &R,
        finish: impl FnOnce(ChunkOut<R::Acc>) -> Result<T, EnsembleError>,
    ) -> Result<T, EnsembleError>
    where
        R: Reducer,
        R::Acc: Serialize + DeserializeOwned,
        C: Communicator,
        T: Serialize + DeserializeOwned,
    {
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        let n_chunks = self.chunks();
        let range = (rank * n_chunks / size)..((rank + 1) * n_chunks / size);
        let local = self.run_chunks(r, range)?;
        let bytes = serde_json::to_vec(&local).map_err(codec)?;
        let outcome: Option<Vec<u8>> = match gather_bytes(comm, &bytes) {
            Some(parts) => {
                let mut chunks: Vec<ChunkOut<R::Acc>> = Vec::with_capacity(n_chunks);
                for part in parts {
                    let v: Vec<ChunkOut<R::Acc>> = serde_json::from_slice(&part).map_err(codec)?;
                    chunks.extend(v);
                }
                let total = combine(r, chunks);
                let result: Result<T, String> = self
                    .check_abort(&total)
                    .and_then(|()| finish(total))
                    .map_err(|e| e.to_string());
                Some(serde_json::to_vec(&result).map_err(codec)?)
            }
            None => None,
        };
        let bytes = broadcast_bytes(comm, outcome);
        let result: Result<T, String> = serde_json::from_slice(&bytes).map_err(codec)?;
        result.map_err(EnsembleError::Invalid)
    }

    /// [`Ensemble::statistics`] over the ranks of `comm`; every rank gets
    /// the same summary, bit-identical to the threaded run. Call it on every
    /// rank.
    pub fn statistics_mpi<C: Communicator>(
        &self,
        comm: &C,
        taus: &[f64],
    ) -> Result<EnsembleSummary, EnsembleError> {
        self.check_statistics(taus)?;
        let r = StateStatistics {
            keep_values: !taus.is_empty(),
        };
        let (n, trajectories) = (self.problem.dim(), self.trajectories);
        self.reduce_mpi(comm, &r, |total| {
            finish_statistics(total, n, trajectories, taus)
        })
    }

    /// [`Ensemble::expectation`] over the ranks of `comm`.
    pub fn expectation_mpi<C: Communicator>(
        &self,
        comm: &C,
        phi: impl Fn(&[f64]) -> f64 + Sync,
        level: f64,
    ) -> Result<Estimate, EnsembleError> {
        self.reduce_mpi(comm, &Expectation(phi), |total| {
            Ok(total.value.estimate(level))
        })
    }
}
