//! Adam (Kingma & Ba 2015) with the usual defaults, written out: the
//! optimiser of the fitting examples.

/// Adam's state: the step size and the moment estimates of each parameter.
pub struct Adam {
    lr: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    /// Adam for `n` parameters with step size `lr`.
    pub fn new(n: usize, lr: f64) -> Self {
        Adam {
            lr,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One step on `x` along the gradient `g`.
    pub fn step(&mut self, x: &mut [f64], g: &[f64]) {
        let (b1, b2, eps) = (0.9, 0.999, 1e-8);
        self.t += 1;
        for i in 0..x.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = self.m[i] / (1.0 - b1.powi(self.t));
            let vh = self.v[i] / (1.0 - b2.powi(self.t));
            x[i] -= self.lr * mh / (vh.sqrt() + eps);
        }
    }
}
