//! The step-VJP protocol (`../shared/DESIGN.md`, seam 2): what the one
//! discrete adjoint (`sdeflow-adjoint`) needs from a method to reverse its
//! steps, whatever the method and the problem family — explicit
//! Runge–Kutta, the implicit ESDIRK methods, the SDE methods, and yours.
//!
//! A step maps `(t, h, y, c, ΔW) → (y_new, err, c_new)`, where `c` is the
//! state the method carries from step to step ([`Solver::carried_state`]:
//! reversible Heun's `(ŷ, f(ŷ), g(ŷ))`; empty for most methods) and `ΔW`
//! the step's Brownian increments (empty for ODEs). Its VJP,
//! [`StepVjp::step_vjp`], takes the cotangents `(ȳ_new, ē, c̄_new)` — and
//! those of values interpolated inside the step, which ODE losses on dense
//! save times need — in [`StepBars`], and returns `(ȳ, c̄)` in place,
//! adding `p̄`. The err cotangent is what error-based regularizers
//! differentiate; the carried cotangent is what makes methods with carried
//! state exact. [`StepVjp::start_vjp`] is the VJP of the map from `y0` to
//! the initial carried state, and [`StepVjp::check_step_vjp`] says up
//! front whether a configuration can take the cotangents asked for.
//!
//! The step size and the increments are constants: the controller is not
//! differentiated (as in diffrax), and the path is the forward solve's.
//! Implicit methods differentiate the step with converged stages
//! (implicit-function theorem); the native ESDIRK methods hold their error
//! filter `(I − hγJ(y))⁻¹` constant in the error cotangent. A method
//! without an error estimate refuses an error cotangent
//! ([`refuse_err_cotangent`]); one whose dense output is not differentiated
//! refuses interpolated cotangents ([`refuse_interp_cotangents`]).
//!
//! References: Hager, "Runge–Kutta methods in optimal control and the
//! transformed adjoint system", Numer. Math. 87 (2000); Sandu, "On the
//! properties of Runge–Kutta discrete adjoints", ICCS 2006; Kidger et al.,
//! "Efficient and accurate gradients for neural SDEs", NeurIPS 2021
//! (reversible Heun's carried state); diffrax's `AbstractSolver.step`.

use crate::brownian::Driver;
use crate::error::SolveError;
use crate::field::{DiffusionVjp, DriftVjp};
use crate::problem::Problem;
use crate::solution::Stats;
use crate::solver::{Family, Fields, Solver, StepArgs, StepAt, StepNoise, StepOut};

/// The cotangent `bar = ∂L/∂y(t_n + θh)` of a value interpolated inside a
/// step (a save time that is not a step end).
#[derive(Debug, Clone, Copy)]
pub struct InterpCotangent<'a> {
    /// Position in the step, in (0, 1).
    pub theta: f64,
    /// The cotangent.
    pub bar: &'a [f64],
}

/// The cotangents of one step's outputs, and where its input cotangents go.
#[derive(Debug)]
pub struct StepBars<'a, 'b> {
    /// In: `∂L/∂y_new`; out: `∂L/∂y` (the step's start).
    pub y: &'a mut [f64],
    /// In: `∂L/∂c_new`, the cotangent of the carried state after the step;
    /// out: `∂L/∂c`, that of the carried state it started from (the
    /// length of [`Solver::carried_state`]: empty for most methods).
    pub carried: &'a mut [f64],
    /// `∂L/∂err`, the cotangent of the error estimate (`None`: zero). A
    /// method without an error estimate refuses `Some`.
    pub err: Option<&'a [f64]>,
    /// Cotangents of values interpolated inside the step (empty for losses
    /// on step ends). A method whose dense output is not differentiated
    /// refuses any.
    pub interp: &'a [InterpCotangent<'b>],
    /// `∂L/∂p` is added here.
    pub p: &'a mut [f64],
}

impl<'a> StepBars<'a, 'static> {
    /// The cotangents of the new and the carried state only (no error
    /// estimate, no interpolated values): what a loss on step ends gives.
    pub fn states(y: &'a mut [f64], carried: &'a mut [f64], p: &'a mut [f64]) -> Self {
        StepBars {
            y,
            carried,
            err: None,
            interp: &[],
            p,
        }
    }
}

/// Two stages of an explicit Runge–Kutta step that share a time, which a
/// stiffness estimate reads ([`StepVjp::stiffness_stages`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StiffnessStages {
    /// The earlier stage (0-based).
    pub first: usize,
    /// The later stage (0-based), at the same time as `first`.
    pub second: usize,
    /// The method's stability size along the negative real axis: the
    /// largest `ρ` with `|R(−x)| ≤ 1` on `[0, ρ]` (Tsit5: 3.5068).
    pub stability_size: f64,
}

/// The inputs `g` and derivatives `k = f(t, g)` of the two stages of
/// [`StiffnessStages`] of one step, recomputed by its VJP.
#[derive(Debug, Clone, Copy)]
pub struct StagePair<'a> {
    /// `g_first`, `g_second`.
    pub inputs: [&'a [f64]; 2],
    /// `k_first`, `k_second`.
    pub derivs: [&'a [f64]; 2],
    /// The step size.
    pub h: f64,
}

/// Where a function of a [`StagePair`] writes its cotangents (zero on
/// entry).
#[derive(Debug)]
pub struct StagePairBars<'a> {
    /// `∂P/∂g_first`, `∂P/∂g_second`.
    pub inputs: [&'a mut [f64]; 2],
    /// `∂P/∂k_first`, `∂P/∂k_second`.
    pub derivs: [&'a mut [f64]; 2],
}

/// What [`StepVjp::step_vjp_stage_pair`] calls with the step's stage pair:
/// it writes the cotangents of a function of the pair (already weighted)
/// into the bars.
pub type StagePairHook<'h> = dyn FnMut(StagePair<'_>, StagePairBars<'_>) + 'h;

/// The arguments of one step's VJP ([`StepVjp::step_vjp`]): the step as
/// the forward solve took it (fields, start, carried state, increments),
/// the cotangents to map, and the counter of evaluations.
#[derive(Debug)]
pub struct VjpArgs<'a, F, G> {
    /// The fields, bound to the parameters.
    pub fields: &'a Fields<'a, F, G>,
    /// Where the step started, and its size.
    pub at: StepAt<'a>,
    /// The carried state the step started from ([`Solver::carried_state`]:
    /// empty for most methods).
    pub carried: &'a [f64],
    /// The step's Brownian increments ([`StepNoise::NONE`] for an ODE).
    pub noise: &'a StepNoise<'a>,
    /// The cotangents of the step's outputs, mapped in place to those of
    /// its inputs.
    pub bars: StepBars<'a, 'a>,
    /// Evaluations are counted here.
    pub stats: &'a mut Stats,
}

impl<'a, F, G> VjpArgs<'a, F, G> {
    /// The arguments of [`StepVjp::start_vjp`] at the start `(t0, y0)` of a
    /// solve: a step of size 0 from `(t0, y0)` without carried state or
    /// increments, with the cotangents `bars` (`bars.carried` that of the
    /// carried state made at the start).
    pub fn start(
        fields: &'a Fields<'a, F, G>,
        (t0, y0): (f64, &'a [f64]),
        bars: StepBars<'a, 'a>,
        stats: &'a mut Stats,
    ) -> Self {
        VjpArgs {
            fields,
            at: StepAt {
                t: t0,
                h: 0.0,
                y: y0,
            },
            carried: &[],
            noise: &StepNoise::NONE,
            bars,
            stats,
        }
    }

    /// The arguments of the forward step these reverse, writing into
    /// `out` and counting in `self.stats`: what a step VJP that recomputes
    /// its step hands [`Solver::step`].
    pub fn forward<'s>(&'s mut self, out: StepOut<'s>) -> StepArgs<'s, F, G> {
        StepArgs {
            fields: self.fields,
            at: self.at,
            noise: self.noise,
            out,
            stats: &mut *self.stats,
        }
    }
}

/// Which cotangents a caller will pass to [`StepVjp::step_vjp`] besides
/// those of the new state and the carried state: what
/// [`StepVjp::check_step_vjp`] checks up front.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VjpNeeds {
    /// Cotangents of the error estimate.
    pub err: bool,
    /// Cotangents of values interpolated inside steps.
    pub interp: bool,
}

/// Where a step-VJP capability is probed: `(t, y, p)`.
pub type Probe<'a> = (f64, &'a [f64], &'a [f64]);

/// A solver whose steps can be reversed: the one protocol the discrete
/// adjoint drives, for ODE and SDE solvers alike (an ODE problem's
/// diffusion is [`crate::field::NoDiffusion`] and its increments are empty).
/// Implement it for a solver of your own to differentiate through it
/// (`tests/suite/extension_sde.rs` does, for a drift-implicit Euler–Maruyama).
pub trait StepVjp<P: Family>: Solver<P> {
    /// Workspace of [`StepVjp::step_vjp`], allocated once per gradient:
    /// one workspace serves one backward sweep of one problem (its fields
    /// and parameters fixed), its steps reversed last to first, so a
    /// method may keep in it what the step reversed last computed (the
    /// explicit RK methods keep its first stage, their next step's last).
    type VjpWork;

    /// Whether the step VJP takes cotangents of values interpolated inside
    /// the step (its dense output is differentiated); the default check
    /// refuses them otherwise.
    const DIFFERENTIATES_DENSE: bool = false;

    /// Allocates the workspace for `problem` (its dimension, parameters,
    /// noise type and interpretation, the drift's tape length).
    fn vjp_workspace<F: DriftVjp, G: DiffusionVjp, D: Driver>(
        &self,
        problem: &Problem<F, G, D>,
    ) -> Self::VjpWork;

    /// Whether this configuration has a step VJP for `diffusion` taking the
    /// cotangents `needs`, probed at `at = (t, y, p)`: `Ok(())`, or `Err`
    /// with what is missing and what to do instead. The default refuses
    /// error cotangents when the method has no error estimate
    /// ([`Solver::error_order`] is `None`) and interpolated cotangents
    /// always (a method that differentiates its dense output says so).
    fn check_step_vjp<G: DiffusionVjp>(
        &self,
        _diffusion: &G,
        _at: Probe<'_>,
        needs: VjpNeeds,
    ) -> Result<(), String> {
        let has_err = self.error_order().is_some();
        default_check(self.name(), has_err, Self::DIFFERENTIATES_DENSE, needs)
    }

    /// Reverses the step from `(args.at.t, args.at.y)` of size `args.at.h`,
    /// taken from the carried state `args.carried` with the increments
    /// `args.noise`, mapping the output cotangents in `args.bars` to the
    /// input ones (recomputing what it needs; evaluations are counted in
    /// `args.stats`). Returns the number of drift VJPs taken, or why the
    /// step could not be reversed (a cotangent the method does not take;
    /// an implicit step whose recomputed equations do not converge).
    fn step_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        work: &mut Self::VjpWork,
        args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError>;

    /// The pair of stages sharing a time that a stiffness estimate reads,
    /// with the method's stability size; `None` (the default): the method
    /// has none, and [`StepVjp::step_vjp_stage_pair`] refuses a hook.
    fn stiffness_stages(&self) -> Option<StiffnessStages> {
        None
    }

    /// [`StepVjp::step_vjp`], and, with `hook`, the cotangents of a function
    /// of the step's [`StagePair`] as well: the VJP recomputes the step,
    /// calls `hook` with the pair's inputs and derivatives, and adds the
    /// cotangents it writes to those of the outputs before reversing the
    /// stages. `bars.y` may be zero (only the hook's function is then
    /// differentiated). The default refuses a hook (no stage pair) and
    /// otherwise is `step_vjp`.
    fn step_vjp_stage_pair<F: DriftVjp, G: DiffusionVjp>(
        &self,
        work: &mut Self::VjpWork,
        args: VjpArgs<'_, F, G>,
        hook: Option<&mut StagePairHook<'_>>,
    ) -> Result<usize, SolveError> {
        if hook.is_some() {
            return Err(SolveError::Unsupported {
                solver: self.name(),
                what: "a stiffness estimate (no two stages of its step share a time)".into(),
                alternatives: "Tsit5, Dopri5 or Vern7".into(),
            });
        }
        self.step_vjp(work, args)
    }

    /// The VJP of the map from the initial state `y0` (at `t0`) to the
    /// carried state [`Solver::start`] makes of it, with `args` as
    /// [`VjpArgs::start`] makes them (`args.at = (t0, 0, y0)`): adds
    /// `c̄ᵀ ∂c/∂y0` to `args.bars.y` and `c̄ᵀ ∂c/∂p` to `args.bars.p`, where
    /// `c̄ = args.bars.carried` (`args.bars.err` and `args.bars.interp` are
    /// not read). Returns the number of drift VJPs. The default does
    /// nothing: right for methods that carry nothing; a method with carried
    /// state must implement it.
    fn start_vjp<F: DriftVjp, G: DiffusionVjp>(
        &self,
        _work: &mut Self::VjpWork,
        _args: VjpArgs<'_, F, G>,
    ) -> Result<usize, SolveError> {
        Ok(0)
    }
}

/// The check of a method named `solver` that has an error estimate when
/// `has_err` and differentiates its dense output when `interpolates`:
/// what [`StepVjp::check_step_vjp`] does by default (with `interpolates`
/// false).
pub fn default_check(
    solver: &str,
    has_err: bool,
    interpolates: bool,
    needs: VjpNeeds,
) -> Result<(), String> {
    if needs.err && !has_err {
        return Err(format!(
            "{solver} has no error estimate, so its step VJP takes no error cotangent; use a \
             method with one (e.g. Tsit5, Sriw1, ReversibleHeun)"
        ));
    }
    if needs.interp && !interpolates {
        return Err(format!(
            "the discrete adjoint of {solver} differentiates step ends only (its dense output \
             is not differentiated): use SaveAt::Steps or SaveAt::T1, or keep \
             SaveAt::Times and make its times inside the span step ends with \
             Options::step_to (a time of Options::discontinuities is not one)"
        ));
    }
    Ok(())
}

/// `Err` for an error cotangent given to the method `solver`, which has no
/// error estimate (`Ok` for `None`): what a [`StepVjp::step_vjp`] of such a
/// method returns.
pub fn refuse_err_cotangent(solver: &'static str, err: Option<&[f64]>) -> Result<(), SolveError> {
    match err {
        None => Ok(()),
        Some(_) => Err(SolveError::Unsupported {
            solver,
            what: "a cotangent of the error estimate (it has no error estimate)".into(),
            alternatives: "Tsit5, Dopri5, Esdirk34, Sriw1, Sosri, Sra1, Sra3, ReversibleHeun \
                           (their step VJPs take one)"
                .into(),
        }),
    }
}

/// `Err` for cotangents of interpolated values given to the method
/// `solver`, whose dense output is not differentiated (`Ok` for none).
pub fn refuse_interp_cotangents(
    solver: &'static str,
    interp: &[InterpCotangent<'_>],
) -> Result<(), SolveError> {
    if interp.is_empty() {
        return Ok(());
    }
    Err(SolveError::Unsupported {
        solver,
        what: "gradients of values interpolated inside a step (its dense output is not \
               differentiated)"
            .into(),
        alternatives: "save at step ends: SaveAt::Steps, SaveAt::T1, or SaveAt::Times with \
                       its times inside the span in Options::step_to"
            .into(),
    })
}

/// Implements [`StepVjp`] for `$name` by delegating to the solver `$inner`
/// (an expression of the method's solver, with `$s` bound to `self`) whose
/// workspace is `$work`.
macro_rules! delegate_step_vjp {
    ($name:ty, $inner_ty:ty, $work:ty, |$s:ident| $inner:expr) => {
        impl<P: $crate::solver::Family> $crate::step_vjp::StepVjp<P> for $name
        where
            $inner_ty: $crate::step_vjp::StepVjp<P, VjpWork = $work>,
            $name: $crate::solver::Solver<P>,
        {
            type VjpWork = $work;
            const DIFFERENTIATES_DENSE: bool =
                <$inner_ty as $crate::step_vjp::StepVjp<P>>::DIFFERENTIATES_DENSE;
            fn vjp_workspace<
                F: $crate::field::DriftVjp,
                G: $crate::field::DiffusionVjp,
                D: $crate::brownian::Driver,
            >(
                &self,
                problem: &$crate::problem::Problem<F, G, D>,
            ) -> $work {
                let $s = self;
                $crate::step_vjp::StepVjp::<P>::vjp_workspace(&$inner, problem)
            }
            fn check_step_vjp<G: $crate::field::DiffusionVjp>(
                &self,
                diffusion: &G,
                at: $crate::step_vjp::Probe<'_>,
                needs: $crate::step_vjp::VjpNeeds,
            ) -> Result<(), String> {
                let $s = self;
                $crate::step_vjp::StepVjp::<P>::check_step_vjp(&$inner, diffusion, at, needs)
            }
            fn step_vjp<F: $crate::field::DriftVjp, G: $crate::field::DiffusionVjp>(
                &self,
                work: &mut $work,
                args: $crate::step_vjp::VjpArgs<'_, F, G>,
            ) -> Result<usize, $crate::error::SolveError> {
                let $s = self;
                $crate::step_vjp::StepVjp::<P>::step_vjp(&$inner, work, args)
            }
            fn stiffness_stages(&self) -> Option<$crate::step_vjp::StiffnessStages> {
                let $s = self;
                $crate::step_vjp::StepVjp::<P>::stiffness_stages(&$inner)
            }
            fn step_vjp_stage_pair<F: $crate::field::DriftVjp, G: $crate::field::DiffusionVjp>(
                &self,
                work: &mut $work,
                args: $crate::step_vjp::VjpArgs<'_, F, G>,
                hook: Option<&mut $crate::step_vjp::StagePairHook<'_>>,
            ) -> Result<usize, $crate::error::SolveError> {
                let $s = self;
                $crate::step_vjp::StepVjp::<P>::step_vjp_stage_pair(&$inner, work, args, hook)
            }
            fn start_vjp<F: $crate::field::DriftVjp, G: $crate::field::DiffusionVjp>(
                &self,
                work: &mut $work,
                args: $crate::step_vjp::VjpArgs<'_, F, G>,
            ) -> Result<usize, $crate::error::SolveError> {
                let $s = self;
                $crate::step_vjp::StepVjp::<P>::start_vjp(&$inner, work, args)
            }
        }
    };
}
pub(crate) use delegate_step_vjp;
