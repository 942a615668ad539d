//! Forward-mode sensitivities `dy/dp` (and `dy/dy0`) at the saved times,
//! for problems with few parameters: the forward sensitivity system
//! (Hairer, Nørsett & Wanner, *Solving ODEs I*, §I.14; for SDEs on the same
//! Brownian path, Kunita 1990, *Stochastic flows and stochastic
//! differential equations*, §4.6) solved by the same explicit method
//! through the ordinary solve, its tangents evaluated with dual numbers.
//!
//! The step sequence is the plain solve's, bit for bit: with adaptive steps
//! the plain problem is solved first (saving nothing) and the sensitivity
//! system is then solved on its accepted step ends as a fixed grid (the
//! step from `t` to `t'` is `t' − t` in both, so the `y` block repeats the
//! plain solve's arithmetic exactly). Steps chosen on the augmented state
//! instead, even with its error norm restricted to `y`, would drift from
//! the plain ones: the error estimate is a difference of nearly equal
//! numbers, and one ulp in the first step changes it in the sixth digit.
//! An SDE's two solves run on one path object built from the problem's
//! driver and seed, which answers the grid's queries as it answered the
//! adaptive solve's (drivers that cannot re-query, `Increments`, are
//! refused with adaptive steps, as `solve` refuses them).
//! With an explicit method the result is then the derivative of the
//! computed solution with the steps held fixed (Walther 2007; see
//! [`Explicit`]) — what the discrete adjoint of [`crate::grad`] computes in
//! reverse. One solve gives every entry of
//! `dy/dp` at every saved time, at the cost of `1 + K` field evaluations
//! (`K` dual) per evaluation of the plain solve; the reverse mode costs one
//! backward pass per scalar loss whatever the number of parameters.

mod explicit;
mod result;
mod tangent;

pub use explicit::Explicit;
pub use result::Sensitivities;
pub use tangent::{
    Directions, TangentDiffusion, TangentDiffusionOf, TangentDrift, TangentDriftOf, Wrt,
};

use std::panic::{AssertUnwindSafe, catch_unwind};

use sdeflow_solvers::brownian::BrownianPath;
use sdeflow_solvers::brownian::Driver;
use sdeflow_solvers::error::{SolveError, panic_message};
use sdeflow_solvers::field::{Diffusion, Drift};
use sdeflow_solvers::integrate::{NoObserver, StepObserver, integrate, integrate_on_path};
use sdeflow_solvers::options::{Options, SaveAt, Tolerance};
use sdeflow_solvers::problem::Problem;
use sdeflow_solvers::solver::Solver;

/// The sensitivity problem of `problem` along `dirs`: the augmented state,
/// fields and noise, the same parameters, span, interpretation and driver.
pub type TangentProblem<'a, F, G, D> =
    Problem<<F as TangentDrift>::Tangent<'a>, <G as TangentDiffusion>::Tangent<'a>, D>;

/// The sensitivity problem of `problem` along `dirs` (see
/// [`TangentProblem`]); solving it with an explicit method gives `[y, S_1,
/// …, S_K]`.
pub fn tangent_problem<'a, F: TangentDrift, G: TangentDiffusion, D: Driver>(
    problem: &'a Problem<F, G, D>,
    dirs: Directions,
) -> TangentProblem<'a, F, G, D> {
    let (diffusion, noise) = problem.diffusion.tangent(dirs, problem.noise);
    Problem {
        drift: problem.drift.tangent(dirs),
        diffusion,
        noise,
        interpretation: problem.interpretation,
        y0: dirs.initial_state(&problem.y0),
        tspan: problem.tspan,
        params: problem.params.clone(),
        driver: problem.driver.clone(),
    }
}

/// Records the end of every accepted step.
struct StepEnds(Vec<f64>);

impl StepObserver for StepEnds {
    fn accepted(&mut self, _: usize, _: f64, t_next: f64, _: &[f64], _: &[f64]) {
        self.0.push(t_next);
    }
}

/// The options of the sensitivity solve: `options` (fixed steps) or, when
/// it chose its steps adaptively, the fixed grid of their ends `steps`
/// (the end `t1` included) over `tspan`; scalar tolerances, which fixed
/// steps do not read (the user's may be per component of the plain state).
fn on_steps(options: &Options, steps: Option<&[f64]>, (t0, t1): (f64, f64)) -> Options {
    let mut out = match steps {
        None => options.clone(),
        Some([interior @ .., _t1]) if !interior.is_empty() => {
            options.clone().grid(interior.to_vec())
        }
        // a single step over the whole span
        Some(_) => options.clone().fixed_step((t1 - t0).abs()),
    };
    out.rtol = Tolerance::Scalar(1e-3);
    out.atol = Tolerance::Scalar(1e-6);
    out
}

/// Evaluates the `which` field (`"drift"` or `"diffusion"`, `len` entries)
/// of `problem` once at `t0`, saying in the problem's own terms why it
/// panics (a parameter vector or a state of the wrong length) or what is
/// not finite.
fn probe<F: Drift, G: Diffusion, D: Driver>(
    problem: &Problem<F, G, D>,
    which: &'static str,
    len: usize,
) -> Result<(), SolveError> {
    let (t0, _) = problem.tspan;
    let (y, p) = (&problem.y0, &problem.params);
    let mut out = vec![0.0; len];
    let run = AssertUnwindSafe(|| match which {
        "drift" => problem.drift.drift(t0, y, p, &mut out),
        _ => problem.diffusion.diffusion(t0, y, p, &mut out),
    });
    if let Err(payload) = catch_unwind(run) {
        let err = SolveError::DimensionMismatch {
            what: format!("{which} output"),
            expected: len,
            found: None,
            hint: format!(
                "the {which} panicked on a state of length {} (\"{}\"); make y0 (and the \
                 noise type) match the dimension the {which} uses",
                y.len(),
                panic_message(&*payload)
            ),
        };
        return Err(problem.diagnose_probe(which, t0, err));
    }
    if let Some(component) = out.iter().position(|v| !v.is_finite()) {
        return Err(SolveError::NonFiniteDerivative {
            field: which,
            t: t0,
            component,
            step: 0,
        });
    }
    Ok(())
}

/// Checks what [`sensitivities`] is asked before any work: the problem's
/// values, the options (against the problem's own dimension), that there
/// is something to differentiate, and the fields' shapes at `t0`.
fn check<F: Drift, G: Diffusion, D: Driver>(
    problem: &Problem<F, G, D>,
    options: &Options,
    wrt: Wrt,
) -> Result<(), SolveError> {
    problem.validate()?;
    let n = problem.dim();
    options.validate(n, problem.tspan)?;
    if wrt == Wrt::Params && problem.params.is_empty() {
        return Err(SolveError::InvalidInput {
            what: "params".into(),
            reason: "the problem has no parameters to differentiate: give them with \
                     Problem::params, or ask for Wrt::Y0"
                .into(),
        });
    }
    let np = problem.params.len();
    problem.drift.check_dims(n, np)?;
    probe(problem, "drift", n)?;
    if let Some(noise) = problem.noise {
        let len = noise.diffusion_len(n);
        problem.diffusion.check_dims(n, np, len)?;
        probe(problem, "diffusion", len)?;
    }
    Ok(())
}

/// The solution of `problem` by the explicit `solver` at the times
/// `options.save_at` asks for, with its forward sensitivities `dy/dp`
/// and/or `dy/dy0` (`wrt`) there: the forward sensitivity system solved by
/// the same method on the plain solve's steps (module docs). For an SDE
/// the path is the one [`sdeflow_solvers::solve`] sees for the same
/// problem and seed.
///
/// The fields must be written generically over the scalar
/// ([`sdeflow_solvers::generic_field!`], or [`GenericField`] in a
/// [`Generic`]); other fields, and implicit solvers, do not compile. Bad
/// inputs (non-finite values, no parameters to differentiate, a field that
/// reads more parameters than given, tolerances of the wrong length) are
/// [`SolveError`]s returned before any work, as are solvers that cannot
/// take the sensitivity system's noise (see [`Explicit`]); a panic in a
/// field is returned as [`SolveError::Panicked`].
///
/// Use it for few parameters and many outputs (every `dy_i/dp_j` at every
/// saved time from one solve costing `1 + K` evaluations per plain one);
/// for one scalar loss of many parameters, [`crate::grad`] is cheaper.
///
/// [`GenericField`]: sdeflow_solvers::dual::GenericField
/// [`Generic`]: sdeflow_solvers::dual::Generic
///
/// ```
/// use sdeflow_adjoint::{Wrt, sensitivities};
/// use sdeflow_solvers::erk::Tsit5;
/// use sdeflow_solvers::generic_field;
/// use sdeflow_solvers::options::{Options, SaveAt};
/// use sdeflow_solvers::problem::Problem;
///
/// // y' = -p y: y(t) = y0 e^{-p t}, dy/dp = -t y, dy/dy0 = e^{-p t}
/// let decay = generic_field!(|_t, y, p, dy| dy[0] = -p[0] * y[0]);
/// let problem = Problem::ode_field(decay, vec![2.0], (0.0, 1.0)).params(vec![0.5]);
/// let opts = Options::default().tol(1e-10).save_at(SaveAt::Times(vec![0.5, 1.0]));
/// let sens = sensitivities(&problem, Tsit5, &opts, Wrt::ParamsAndY0)?;
/// let y1 = 2.0 * (-0.5f64).exp();
/// assert!((sens.y(1)[0] - y1).abs() < 1e-8);
/// assert!((sens.dy_dp(1)[(0, 0)] + y1).abs() < 1e-8);
/// assert!((sens.dy_dy0(1)[(0, 0)] - (-0.5f64).exp()).abs() < 1e-8);
/// # Ok::<(), sdeflow_solvers::error::SolveError>(())
/// ```
///
/// A closure that is not generic over the scalar does not compile:
///
/// ```compile_fail
/// use sdeflow_adjoint::{Wrt, sensitivities};
/// use sdeflow_solvers::erk::Tsit5;
/// use sdeflow_solvers::options::Options;
/// use sdeflow_solvers::problem::Problem;
///
/// let problem = Problem::ode(|_t, y, p, dy| dy[0] = -p[0] * y[0], vec![2.0], (0.0, 1.0))
///     .params(vec![0.5]);
/// let _ = sensitivities(&problem, Tsit5, Options::default(), Wrt::Params);
/// ```
pub fn sensitivities<'a, F, G, D, S>(
    problem: &'a Problem<F, G, D>,
    solver: S,
    options: impl AsRef<Options>,
    wrt: Wrt,
) -> Result<Sensitivities, SolveError>
where
    F: TangentDrift,
    G: TangentDiffusion,
    D: Driver,
    S: Explicit + Solver<Problem<F, G, D>> + Solver<TangentProblem<'a, F, G, D>>,
{
    let options = options.as_ref();
    sdeflow_solvers::error::catch_panic("drift or diffusion", || {
        check(problem, options, wrt)?;
        let adaptive = options.controller.is_adaptive()
            && Solver::<Problem<F, G, D>>::error_order(&solver).is_some();
        let dirs = Directions::new(wrt, problem.dim(), problem.params.len());
        let augmented = tangent_problem(problem, dirs);
        if !adaptive {
            let fixed = on_steps(options, None, problem.tspan);
            let solution = integrate(&augmented, &solver, &fixed)?;
            return Ok(Sensitivities {
                solution,
                dirs,
                plain_stats: None,
            });
        }
        if !options.discontinuities.is_empty() {
            return Err(SolveError::InvalidInput {
                what: "discontinuities".into(),
                reason: "forward sensitivities replay the plain solve's steps as a fixed \
                         grid, which cannot restart at discontinuities; split the span at \
                         them, or use grad"
                    .into(),
            });
        }
        // an SDE's two solves share one path object, which answers the
        // grid's queries as it answered the adaptive ones
        let mut path = match problem.noise {
            Some(_) if !problem.driver.requery() => {
                return Err(SolveError::InvalidInput {
                    what: "driver".into(),
                    reason: format!(
                        "the {} driver draws each increment once, in order, but adaptive \
                         steps re-query the path after a rejection; drive the problem with \
                         VirtualTree (the default) or give fixed steps",
                        problem.driver.name()
                    ),
                });
            }
            Some(noise) => {
                let m = noise.brownian_dim(problem.dim());
                Some(problem.driver.path(problem.tspan, m, options.seed)?)
            }
            None => None,
        };
        let mut ends = StepEnds(Vec::new());
        let plain = options.clone().save_at(SaveAt::T1);
        let given = path.as_mut().map(|p| p as &mut dyn BrownianPath);
        let plain_stats =
            Some(integrate_on_path(problem, &solver, &plain, &mut ends, given)?.stats);
        let grid = on_steps(options, Some(&ends.0), problem.tspan);
        let given = path.as_mut().map(|p| p as &mut dyn BrownianPath);
        let solution = integrate_on_path(&augmented, &solver, &grid, &mut NoObserver, given)?;
        Ok(Sensitivities {
            solution,
            dirs,
            plain_stats,
        })
    })
}
