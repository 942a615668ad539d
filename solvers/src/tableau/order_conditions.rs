//! Order conditions of explicit Runge–Kutta methods from rooted trees
//! (Butcher; Hairer–Nørsett–Wanner I §II.2): a method has order `p` iff
//! `Σ_i b_i Φ_i(τ) = 1/γ(τ)` for every rooted tree `τ` with at most `p`
//! vertices. A continuous extension has order `q` at `θ` iff
//! `Σ_i b_i(θ) Φ_i(τ) = θ^{|τ|}/γ(τ)` for `|τ| ≤ q`.
//!
//! Used by the tableau tests, and public so that users can check their own
//! tableaus.

/// A rooted tree: the multiset of its root's subtrees (kept sorted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tree(pub Vec<Tree>);

impl Tree {
    /// Number of vertices `|τ|`.
    pub fn order(&self) -> usize {
        1 + self.0.iter().map(Tree::order).sum::<usize>()
    }

    /// The density `γ(τ) = |τ| Π γ(children)`.
    pub fn gamma(&self) -> f64 {
        self.order() as f64 * self.0.iter().map(Tree::gamma).product::<f64>()
    }

    /// Elementary weights `Φ_i(τ)` for the stages of `(a, c)` where `a` is
    /// given row-wise (row `i` has the coefficients on stages `< i` — or up
    /// to its length).
    pub fn weights(&self, a: &[Vec<f64>], c: &[f64]) -> Vec<f64> {
        let s = c.len();
        let mut phi = vec![1.0; s];
        for child in &self.0 {
            if child.0.is_empty() {
                for i in 0..s {
                    phi[i] *= c[i];
                }
            } else {
                let w = child.weights(a, c);
                for i in 0..s {
                    let row = &a[i];
                    let sum: f64 = row.iter().zip(&w).map(|(x, y)| x * y).sum();
                    phi[i] *= sum;
                }
            }
        }
        phi
    }
}

/// All rooted trees with `1..=p` vertices (1, 1, 2, 4, 9, 20, 48, 115, ...).
pub fn trees_up_to(p: usize) -> Vec<Tree> {
    let mut all: Vec<Tree> = Vec::new();
    if p == 0 {
        return all;
    }
    all.push(Tree(Vec::new()));
    for k in 2..=p {
        let mut new = Vec::new();
        let mut cur = Vec::new();
        forests(&all, k - 1, all.len(), &mut cur, &mut new);
        all.extend(new);
    }
    all
}

fn forests(
    all: &[Tree],
    remaining: usize,
    max_idx: usize,
    cur: &mut Vec<usize>,
    out: &mut Vec<Tree>,
) {
    if remaining == 0 {
        let mut kids: Vec<Tree> = cur.iter().map(|&i| all[i].clone()).collect();
        kids.sort();
        out.push(Tree(kids));
        return;
    }
    for i in 0..max_idx {
        let o = all[i].order();
        if o <= remaining {
            cur.push(i);
            forests(all, remaining - o, i + 1, cur, out);
            cur.pop();
        }
    }
}

/// Largest residual `|Σ b_i Φ_i(τ) − θ^{|τ|}/γ(τ)|` over trees of order
/// `order` exactly, for weights `b` at interpolation point `theta` (use 1 for
/// the step itself).
pub fn residual(a: &[Vec<f64>], c: &[f64], b: &[f64], order: usize, theta: f64) -> f64 {
    trees_up_to(order)
        .iter()
        .filter(|t| t.order() == order)
        .map(|t| {
            let phi = t.weights(a, c);
            let lhs: f64 = b.iter().zip(&phi).map(|(x, y)| x * y).sum();
            (lhs - theta.powi(order as i32) / t.gamma()).abs()
        })
        .fold(0.0, f64::max)
}

/// The largest `p ≤ max` such that all conditions up to order `p` hold to `tol`.
pub fn achieved_order(
    a: &[Vec<f64>],
    c: &[f64],
    b: &[f64],
    theta: f64,
    max: usize,
    tol: f64,
) -> usize {
    (1..=max)
        .take_while(|&q| residual(a, c, b, q, theta) <= tol)
        .last()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_counts_match_oeis_a000081() {
        let trees = trees_up_to(8);
        let mut counts = [0usize; 9];
        for t in &trees {
            counts[t.order()] += 1;
        }
        assert_eq!(&counts[1..], &[1, 1, 2, 4, 9, 20, 48, 115]);
    }

    #[test]
    fn classic_rk4_is_order_four_not_five() {
        let a = vec![vec![], vec![0.5], vec![0.0, 0.5], vec![0.0, 0.0, 1.0]];
        let c = [0.0, 0.5, 0.5, 1.0];
        let b = [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0];
        assert_eq!(achieved_order(&a, &c, &b, 1.0, 6, 1e-14), 4);
    }
}
