//! A differential equation to solve: fields, initial state, time span and
//! parameters.

use crate::brownian::{Driver, VirtualTree};
use crate::error::SolveError;
use crate::field::{Diffusion, Drift, NoDiffusion, WithJacobian, WithVjp};
use crate::noise::{Interpretation, Noise};

/// An ODE `y' = f(t, y, p)` or an SDE `dy = f(t, y, p) dt + g(t, y, p) dW`
/// on the span `(t0, t1)`; `t1 < t0` integrates backwards in time.
///
/// Closures need no type annotations: [`Problem::ode`] and [`Problem::sde`]
/// take closures `|t, y, p, dy|`; fields that are not closures (a
/// [`crate::dual::Generic`] field, a network, a field built by
/// [`crate::generic_field!`]) go through [`Problem::ode_field`] and
/// [`Problem::sde_field`].
///
/// ```
/// use sdeflow_solvers::problem::Problem;
/// let lv = Problem::ode(
///     |_t, y, p, dy| {
///         dy[0] = p[0] * y[0] - p[1] * y[0] * y[1];
///         dy[1] = -p[2] * y[1] + p[3] * y[0] * y[1];
///     },
///     vec![1.0, 1.0],
///     (0.0, 10.0),
/// )
/// .params(vec![1.5, 1.0, 3.0, 1.0]);
/// assert_eq!(lv.dim(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Problem<F, G = NoDiffusion, D = VirtualTree> {
    /// The drift `f`.
    pub drift: F,
    /// The diffusion `g` ([`NoDiffusion`] for an ODE).
    pub diffusion: G,
    /// Noise structure; `None` for an ODE.
    pub noise: Option<Noise>,
    /// Interpretation of the stochastic integral (ignored for ODEs).
    pub interpretation: Interpretation,
    /// Initial state `y(t0)`.
    pub y0: Vec<f64>,
    /// Start and end of the time span.
    pub tspan: (f64, f64),
    /// Parameters `p` passed to the fields.
    pub params: Vec<f64>,
    /// What drives the noise of an SDE ([`VirtualTree`] unless
    /// [`Problem::driver`] says otherwise; unused by ODEs). `solve`, `grad`
    /// and ensembles build the path of a solve from it and the options'
    /// seed, so they all see the same path.
    pub driver: D,
}

impl<F: Drift> Problem<F, NoDiffusion> {
    /// An ODE `y' = f(t, y, p)` with `y(t0) = y0`, its drift a closure
    /// `|t, y, p, dy|` (no type annotations needed: `t: f64`, `y, p: &[f64]`,
    /// `dy: &mut [f64]`). For a drift that is not a closure (a
    /// [`crate::dual::Generic`] field, a network, [`crate::generic_field!`])
    /// use [`Problem::ode_field`].
    pub fn ode(drift: F, y0: impl Into<Vec<f64>>, tspan: (f64, f64)) -> Self
    where
        F: Fn(f64, &[f64], &[f64], &mut [f64]),
    {
        Self::ode_field(drift, y0, tspan)
    }

    /// An ODE `y' = f(t, y, p)` with `y(t0) = y0` and any [`Drift`]: a
    /// [`crate::dual::Generic`] field, a network, a field built by
    /// [`crate::generic_field!`], or a closure with its argument types
    /// written out.
    pub fn ode_field(drift: F, y0: impl Into<Vec<f64>>, tspan: (f64, f64)) -> Self {
        Problem {
            drift,
            diffusion: NoDiffusion,
            noise: None,
            interpretation: Interpretation::Ito,
            y0: y0.into(),
            tspan,
            params: Vec::new(),
            driver: VirtualTree,
        }
    }
}

impl<F: Drift, G: Diffusion> Problem<F, G> {
    /// An SDE `dy = f dt + g dW` with the given noise structure (Itô unless
    /// [`Problem::interpretation`] says otherwise), its drift `|t, y, p, dy|`
    /// and diffusion `|t, y, p, g|` closures (no type annotations needed).
    /// For fields that are not closures (a [`crate::dual::Generic`] field, a
    /// network, [`crate::generic_field!`], as gradients need) use
    /// [`Problem::sde_field`].
    pub fn sde(
        drift: F,
        diffusion: G,
        noise: Noise,
        y0: impl Into<Vec<f64>>,
        tspan: (f64, f64),
    ) -> Self
    where
        F: Fn(f64, &[f64], &[f64], &mut [f64]),
        G: Fn(f64, &[f64], &[f64], &mut [f64]),
    {
        Self::sde_field(drift, diffusion, noise, y0, tspan)
    }

    /// An SDE `dy = f dt + g dW` with any [`Drift`] and [`Diffusion`]: fields
    /// written generically over the scalar ([`crate::dual::Generic`],
    /// [`crate::generic_field!`]), networks, closures with their argument
    /// types written out, or a mix.
    pub fn sde_field(
        drift: F,
        diffusion: G,
        noise: Noise,
        y0: impl Into<Vec<f64>>,
        tspan: (f64, f64),
    ) -> Self {
        Problem {
            drift,
            diffusion,
            noise: Some(noise),
            interpretation: Interpretation::Ito,
            y0: y0.into(),
            tspan,
            params: Vec::new(),
            driver: VirtualTree,
        }
    }
}

impl<F: Drift, G: Diffusion, D: Driver> Problem<F, G, D> {
    /// Drives the noise with `driver` instead of the default
    /// [`VirtualTree`], e.g. [`crate::brownian::Increments`] for the fastest
    /// fixed-step solves, or a [`crate::brownian::SampledPath`] you recorded.
    pub fn driver<D2: Driver>(self, driver: D2) -> Problem<F, G, D2> {
        self.rebuild(|drift| drift, |_| driver)
    }

    /// The same problem with the drift `drift(self.drift)` and the driver
    /// `driver(self.driver)`.
    fn rebuild<F2, D2>(
        self,
        drift: impl FnOnce(F) -> F2,
        driver: impl FnOnce(D) -> D2,
    ) -> Problem<F2, G, D2> {
        Problem {
            drift: drift(self.drift),
            diffusion: self.diffusion,
            noise: self.noise,
            interpretation: self.interpretation,
            y0: self.y0,
            tspan: self.tspan,
            params: self.params,
            driver: driver(self.driver),
        }
    }

    /// Sets the parameters `p` passed to the fields.
    pub fn params(mut self, params: impl Into<Vec<f64>>) -> Self {
        self.params = params.into();
        self
    }

    /// Sets the interpretation of the stochastic integral.
    pub fn interpretation(mut self, interpretation: Interpretation) -> Self {
        self.interpretation = interpretation;
        self
    }

    /// Replaces the initial state.
    pub fn y0(mut self, y0: impl Into<Vec<f64>>) -> Self {
        self.y0 = y0.into();
        self
    }

    /// Replaces the time span.
    pub fn tspan(mut self, tspan: (f64, f64)) -> Self {
        self.tspan = tspan;
        self
    }

    /// Attaches an analytic Jacobian `|t, y, p, jac|` that fills the
    /// `n × n` matrix `∂f/∂y` column-major (`jac[i + j * n] = ∂f_i/∂y_j`).
    /// Stiff solvers use it instead of finite differences.
    pub fn with_jacobian<J>(self, jacobian: J) -> Problem<WithJacobian<F, J>, G, D>
    where
        J: Fn(f64, &[f64], &[f64], &mut [f64]),
    {
        self.rebuild(|field| WithJacobian { field, jacobian }, |driver| driver)
    }

    /// Attaches a hand-written vector–Jacobian product
    /// `|t, y, p, v, out_y, out_p|` that adds `vᵀ∂f/∂y` to `out_y` and
    /// `vᵀ∂f/∂p` to `out_p`, so that gradients can flow through the drift.
    pub fn with_vjp<V>(self, vjp: V) -> Problem<WithVjp<F, V>, G, D>
    where
        V: Fn(f64, &[f64], &[f64], &[f64], &mut [f64], &mut [f64]),
    {
        self.rebuild(|field| WithVjp { field, vjp }, |driver| driver)
    }

    /// State dimension `n`.
    pub fn dim(&self) -> usize {
        self.y0.len()
    }

    /// Whether this is an SDE (has a noise structure).
    pub fn is_sde(&self) -> bool {
        self.noise.is_some()
    }

    /// Refuses an SDE for `solver`, which integrates ODEs only.
    pub(crate) fn ode_only(&self, solver: &'static str) -> Result<(), SolveError> {
        if self.is_sde() {
            return Err(SolveError::Unsupported {
                solver,
                what: "SDEs (it integrates ODEs only)".into(),
                alternatives: "the SDE solvers (EulerMaruyama, Milstein, Sriw1, ...)".into(),
            });
        }
        Ok(())
    }

    /// Says why the shape check of the drift (`which == "drift"`) or the
    /// diffusion at `t0` panicked (`err`, the probe's
    /// [`SolveError::DimensionMismatch`] with `found: None`; any other
    /// error is returned as is), by evaluating it again, quietly, with more
    /// room: if more parameters make it run, the parameter vector is too
    /// short (the error gives the number it reads); if a longer state does,
    /// the state is (`err`); else the panic is the closure's own
    /// ([`SolveError::Panicked`] with its message). Runs only after a
    /// failed probe.
    pub fn diagnose_probe(&self, which: &'static str, t0: f64, err: SolveError) -> SolveError {
        let SolveError::DimensionMismatch { found: None, .. } = err else {
            return err;
        };
        /// Room added when retrying: parameters or state components.
        const ROOM: usize = 4096;
        let n = self.dim();
        let np = self.params.len();
        let out_len = |n: usize| match (which, self.noise) {
            ("diffusion", Some(noise)) => noise.diffusion_len(n),
            _ => n,
        };
        let runs = |n_state: usize, n_params: usize| {
            let mut y = self.y0.clone();
            y.resize(n_state, 0.0);
            let mut p = self.params.clone();
            p.resize(n_params, 0.0);
            let mut out = vec![0.0; out_len(n_state)];
            crate::error::quietly(|| {
                if which == "diffusion" {
                    self.diffusion.diffusion(t0, &y, &p, &mut out)
                } else {
                    self.drift.drift(t0, &y, &p, &mut out)
                }
            })
        };
        if runs(n, np + ROOM).is_ok() {
            // the fewest parameters it runs with (a field that reads p[k]
            // panics with k or fewer, so the search is over a monotone test)
            let (mut lo, mut hi) = (np, np + ROOM);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if runs(n, mid).is_ok() {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            return SolveError::DimensionMismatch {
                what: "parameters".into(),
                expected: hi,
                found: Some(np),
                hint: format!(
                    "the {which} reads {hi} parameters (p[{}]) but the problem has {np}; \
                     give every parameter with Problem::params",
                    hi - 1
                ),
            };
        }
        match runs(n + ROOM, np + ROOM) {
            Ok(()) => err,
            Err(payload) => SolveError::Panicked {
                closure: which,
                t: Some(t0),
                message: crate::error::panic_message(&*payload),
            },
        }
    }

    /// Checks the initial state, parameters and span: every value finite,
    /// `y0` non-empty, `t0 != t1`.
    pub fn validate(&self) -> Result<(), SolveError> {
        if self.y0.is_empty() {
            return Err(SolveError::invalid(
                "y0",
                "the initial state is empty; give at least one component",
            ));
        }
        if let Some(i) = self.y0.iter().position(|v| !v.is_finite()) {
            return Err(SolveError::invalid(
                format!("y0[{i}]"),
                format!("{} is not finite; every initial value must be", self.y0[i]),
            ));
        }
        if let Some(i) = self.params.iter().position(|v| !v.is_finite()) {
            return Err(SolveError::invalid(
                format!("params[{i}]"),
                format!("{} is not finite; every parameter must be", self.params[i]),
            ));
        }
        let (t0, t1) = self.tspan;
        if !t0.is_finite() || !t1.is_finite() {
            return Err(SolveError::invalid(
                "tspan",
                format!("({t0}, {t1}) is not finite; both ends must be finite numbers"),
            ));
        }
        if t0 == t1 {
            return Err(SolveError::invalid(
                "tspan",
                format!("({t0}, {t1}) is empty; give t1 != t0 (t1 < t0 integrates backwards)"),
            ));
        }
        if let Some(Noise::General(0)) = self.noise {
            return Err(SolveError::invalid(
                "noise",
                "General(0) has no Brownian motion; use an ODE or m >= 1",
            ));
        }
        Ok(())
    }
}
