//! Double-double arithmetic (about 106 significant bits) for the precision
//! tests of the Brownian paths: a reference that can subtract origin-anchored
//! values without losing the digits of a tiny interval. Test-only.
//!
//! The error-free transformations are Knuth's two-sum and the fused
//! multiply-add two-product (Dekker 1971; Hida, Li, Bailey, "Library for
//! double-double and quad-double arithmetic", 2000).

use std::ops::{Add, Div, Mul, Neg, Sub};

/// `hi + lo` with `|lo| ≤ ulp(hi)/2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dd {
    pub hi: f64,
    pub lo: f64,
}

fn two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    Dd { hi: s, lo: e }
}

fn quick_two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    Dd {
        hi: s,
        lo: b - (s - a),
    }
}

fn two_prod(a: f64, b: f64) -> Dd {
    let p = a * b;
    Dd {
        hi: p,
        lo: a.mul_add(b, -p),
    }
}

impl Dd {
    pub fn new(x: f64) -> Self {
        Dd { hi: x, lo: 0.0 }
    }

    pub fn to_f64(self) -> f64 {
        self.hi + self.lo
    }

    pub fn sqrt(self) -> Self {
        if self.hi <= 0.0 {
            return Dd::new(0.0);
        }
        // one Newton step from the f64 root doubles the digits
        let y = Dd::new(self.hi.sqrt());
        y + (self - y * y) / (Dd::new(2.0) * y)
    }
}

impl From<f64> for Dd {
    fn from(x: f64) -> Self {
        Dd::new(x)
    }
}

impl Add for Dd {
    type Output = Dd;
    fn add(self, o: Dd) -> Dd {
        let s = two_sum(self.hi, o.hi);
        let t = two_sum(self.lo, o.lo);
        let s = quick_two_sum(s.hi, s.lo + t.hi);
        quick_two_sum(s.hi, s.lo + t.lo)
    }
}

impl Neg for Dd {
    type Output = Dd;
    fn neg(self) -> Dd {
        Dd {
            hi: -self.hi,
            lo: -self.lo,
        }
    }
}

impl Sub for Dd {
    type Output = Dd;
    fn sub(self, o: Dd) -> Dd {
        self + (-o)
    }
}

impl Mul for Dd {
    type Output = Dd;
    fn mul(self, o: Dd) -> Dd {
        let p = two_prod(self.hi, o.hi);
        quick_two_sum(p.hi, p.lo + (self.hi * o.lo + self.lo * o.hi))
    }
}

impl Div for Dd {
    type Output = Dd;
    fn div(self, o: Dd) -> Dd {
        let q1 = self.hi / o.hi;
        let r = self - o * Dd::new(q1);
        let q2 = r.hi / o.hi;
        let r = r - o * Dd::new(q2);
        let q3 = r.hi / o.hi;
        quick_two_sum(q1, q2) + Dd::new(q3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_double_keeps_the_digits_f64_loses() {
        let a = Dd::new(1.0) + Dd::new(1e-20);
        assert_eq!((a - Dd::new(1.0)).to_f64(), 1e-20);
        let third = Dd::new(1.0) / Dd::new(3.0);
        let back = third * Dd::new(3.0) - Dd::new(1.0);
        assert!(back.to_f64().abs() < 1e-31, "{back:?}");
        let r = Dd::new(2.0).sqrt();
        assert!((r * r - Dd::new(2.0)).to_f64().abs() < 1e-31);
    }
}
