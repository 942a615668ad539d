//! The MPI ensemble check: 20 000 GBM paths split over the ranks of
//! `mpirun`, whose statistics must equal, bit for bit, the same ensemble run
//! on threads in one process. Build and run:
//!
//! ```sh
//! cargo build --release --features mpi --example ensemble_mpi
//! mpirun -np 2 target/release/examples/ensemble_mpi
//! ```
//!
//! (as root, Open MPI also wants `--allow-run-as-root`). Exits with status 1
//! if the two results differ.

use sdeflow::ensemble::Ensemble;
use sdeflow::mpi::traits::*;
use sdeflow::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let universe = sdeflow::mpi::initialize().ok_or("MPI could not be initialised")?;
    let world = universe.world();
    let gbm = Problem::sde(
        |_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| dy[0] = y[0],
        |_t: f64, y: &[f64], _p: &[f64], g: &mut [f64]| g[0] = 0.5 * y[0],
        Noise::Scalar,
        vec![1.0],
        (0.0, 1.0),
    )
    .driver(Increments);
    let opts = Options::default()
        .fixed_step(0.01)
        .save_at(SaveAt::Times(vec![0.5, 1.0]));
    let taus = [0.05, 0.5, 0.95];
    let ensemble = Ensemble::new(&gbm, Sriw1, opts, 20_000)
        .seed(2026)
        .threads(1);
    let over_mpi = ensemble.statistics_mpi(&world, &taus)?;
    let estimate = ensemble.expectation_mpi(&world, |y| y[0], 0.95)?;
    if world.rank() == 0 {
        let threaded = ensemble.statistics(&taus)?;
        let local_estimate = ensemble.expectation(|y| y[0], 0.95)?;
        let at1 = &over_mpi.times[1];
        println!(
            "{} ranks: E[X_1] = {:.5} ± {:.5} (exact {:.5}), 5–95% = [{:.4}, {:.4}]",
            world.size(),
            at1.mean(0),
            at1.std_error(0),
            1f64.exp(),
            at1.quantiles[0][0],
            at1.quantiles[2][0]
        );
        if over_mpi == threaded && estimate == local_estimate {
            println!("MPI check passed: bit-identical to the threaded run");
        } else {
            eprintln!("MPI check FAILED: the MPI statistics differ from the threaded run");
            std::process::exit(1);
        }
    }
    Ok(())
}
