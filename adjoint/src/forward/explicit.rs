//! Which solvers forward sensitivities run: methods whose step is an
//! explicit function of field values (explicit Runge–Kutta methods,
//! Euler–Maruyama and the other explicit SDE schemes). Such a method
//! applied to the sensitivity system computes exactly the derivative of its
//! own step map (Walther 2007, "Automatic differentiation of explicit
//! Runge–Kutta methods for optimal control", Comput. Optim. Appl. 36; the
//! "internal numerical differentiation" of Bock 1981), so the result is the
//! derivative of the computed solution with the steps held fixed — what
//! the discrete adjoint computes in reverse.

use sdeflow_solvers::erk::{Bs3, Dopri5, Euler, ExplicitRk, Heun, Tsit5, Vern7};
use sdeflow_solvers::sde::{EulerHeun, EulerMaruyama, Milstein, ReversibleHeun, Sosri, Sriw1};
use sdeflow_solvers::tableau::Tableau;

/// A solver whose step is an explicit function of the fields' values, so
/// that [`crate::sensitivities`] (the method run on the sensitivity system)
/// differentiates its discrete solution exactly. Implicit methods (whose
/// Newton iterations would be measured on the augmented system) are not:
/// with them the call does not compile. Implement it for an explicit solver
/// of your own.
///
/// The SDE solvers among them run on the sensitivity system's noise, which
/// is general (`n` columns) for diagonal and additive noise and stays
/// scalar for scalar noise: `EulerMaruyama`, `EulerHeun` and
/// `ReversibleHeun` take every noise type; `Milstein::derivative_free()`,
/// `Sriw1` and `Sosri` scalar noise only (they refuse general noise before
/// any work); `Milstein::exact()` is refused (the sensitivity system's
/// diffusion has no Jacobian–vector product).
///
/// An implicit solver does not compile:
///
/// ```compile_fail
/// use sdeflow_adjoint::{Wrt, sensitivities};
/// use sdeflow_solvers::generic_field;
/// use sdeflow_solvers::options::Options;
/// use sdeflow_solvers::problem::Problem;
/// use sdeflow_solvers::stiff::Bdf;
///
/// let decay = generic_field!(|_t, y, p, dy| dy[0] = -p[0] * y[0]);
/// let problem = Problem::ode_field(decay, vec![2.0], (0.0, 1.0)).params(vec![0.5]);
/// let _ = sensitivities(&problem, Bdf::default(), Options::default(), Wrt::Params);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an explicit method, so forward sensitivities cannot run it",
    note = "use an explicit Runge–Kutta method (Tsit5, Vern7, Dopri5, ...) or an explicit SDE \
            solver (EulerMaruyama, EulerHeun, ...); for implicit solvers use `grad`"
)]
pub trait Explicit {}

impl Explicit for Euler {}
impl Explicit for Heun {}
impl Explicit for Bs3 {}
impl Explicit for Dopri5 {}
impl Explicit for Tsit5 {}
impl Explicit for Vern7 {}
impl<T: Tableau> Explicit for ExplicitRk<T> {}
impl Explicit for EulerMaruyama {}
impl Explicit for EulerHeun {}
impl Explicit for Milstein {}
impl Explicit for ReversibleHeun {}
impl Explicit for Sriw1 {}
impl Explicit for Sosri {}
