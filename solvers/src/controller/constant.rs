//! The constant controller: fixed steps, every step accepted.

use super::{StepController, StepDecision};

/// Fixed step size: accepts every step and never changes the size.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConstantController;

impl StepController for ConstantController {
    fn reset(&mut self) {}

    #[inline]
    fn decide(&mut self, _err: f64, _k: f64) -> StepDecision {
        StepDecision {
            accept: true,
            factor: 1.0,
        }
    }
}
