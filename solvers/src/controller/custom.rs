//! A user's own step-size controller, boxed so that [`Controller`] (and
//! with it [`crate::Options`]) stays one cloneable, comparable type that
//! ensembles share between threads.
//!
//! The box is made once per solve (when the loop takes the options'
//! controller); stepping only calls through it. Cloning it is what the
//! checkpointed adjoints do to snapshot the control state, and restoring a
//! snapshot into a controller of the same type copies in place (no
//! allocation), as for the built-in controllers. The pattern is the usual
//! one of object-safe cloning (`dyn-clone`) and comparison by downcasting
//! through [`std::any::Any`].
//!
//! [`Controller`]: super::Controller

use std::any::Any;
use std::fmt;

use serde::Serializer;

use super::{StepController, StepDecision};
use crate::error::SolveError;

/// What the loop needs of a user's controller behind a box: the
/// controller, cloning (into a new box or into one of the same type),
/// comparison, and thread safety.
trait DynController: StepController + fmt::Debug + Send + Sync + 'static {
    fn clone_box(&self) -> Box<dyn DynController>;
    /// Copies `self` into `target` when it has the same type.
    fn clone_into_same(&self, target: &mut dyn DynController) -> bool;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn eq_dyn(&self, other: &dyn DynController) -> bool;
}

impl<C> DynController for C
where
    C: StepController + Clone + PartialEq + fmt::Debug + Send + Sync + 'static,
{
    fn clone_box(&self) -> Box<dyn DynController> {
        Box::new(self.clone())
    }

    fn clone_into_same(&self, target: &mut dyn DynController) -> bool {
        match target.as_any_mut().downcast_mut::<C>() {
            Some(t) => {
                t.clone_from(self);
                true
            }
            None => false,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn eq_dyn(&self, other: &dyn DynController) -> bool {
        other.as_any().downcast_ref::<C>() == Some(self)
    }
}

/// A step-size controller written by the user: any type implementing
/// [`StepController`] (plus `Clone`, `PartialEq`, `Debug`, `Send` and
/// `Sync`), used by `solve`, ensembles and gradients like the built-in ones.
/// Build it with [`super::Controller::custom`].
///
/// Its `Clone` must copy the whole state that `decide` depends on: the
/// checkpointed discrete adjoints snapshot the controller by cloning it and
/// replay steps from the copy, which must take the same steps again. Its
/// `decide` must return a factor that is finite and `> 0` (otherwise the
/// solve ends with a [`SolveError::InvalidInput`] naming the controller).
pub struct CustomController(Box<dyn DynController>);

impl CustomController {
    /// Boxes `controller`.
    pub fn new<C>(controller: C) -> Self
    where
        C: StepController + Clone + PartialEq + fmt::Debug + Send + Sync + 'static,
    {
        CustomController(Box::new(controller))
    }
}

impl Clone for CustomController {
    fn clone(&self) -> Self {
        CustomController(self.0.clone_box())
    }

    /// Copies in place when both hold the same type (a snapshot restored
    /// into a replay allocates nothing).
    fn clone_from(&mut self, source: &Self) {
        if !source.0.clone_into_same(&mut *self.0) {
            *self = source.clone();
        }
    }
}

impl fmt::Debug for CustomController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Custom").field(&self.0).finish()
    }
}

impl PartialEq for CustomController {
    /// Equal when both hold the same type with equal values.
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}

impl StepController for CustomController {
    fn reset(&mut self) {
        self.0.reset();
    }

    /// The user's decision; a factor that is not finite and `> 0` becomes a
    /// rejection with a NaN factor, which the loop reports as an invalid
    /// controller.
    #[inline]
    fn decide(&mut self, err: f64, k: f64) -> StepDecision {
        let d = self.0.decide(err, k);
        if d.factor > 0.0 && d.factor.is_finite() {
            d
        } else {
            StepDecision {
                accept: false,
                factor: f64::NAN,
            }
        }
    }

    fn validate(&self) -> Result<(), SolveError> {
        self.0.validate()
    }
}

/// Serialising options with a custom controller is refused: the
/// controller's type is not known to the format, so it could not be read
/// back.
pub(super) fn refuse<S: Serializer>(c: &CustomController, _s: S) -> Result<S::Ok, S::Error> {
    Err(serde::ser::Error::custom(format!(
        "a custom step controller ({c:?}) cannot be serialized: its type is not known to \
         the format; serialize the options with a built-in controller (Constant, Pi, Pid) \
         and set the custom one after reading them back"
    )))
}
