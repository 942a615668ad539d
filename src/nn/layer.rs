//! The products of one dense layer `ni → no`, as nalgebra matrix products
//! over the flat parameter slice: the weights `W` (`no × ni`, row-major in
//! the parameters) are viewed without copying, as `W` (row stride `ni`) or
//! as `Wᵀ` (`ni × no`, column-major). Activations are matrices of `batch`
//! columns (one column per sample, column-major): with one column the
//! products are matrix–vector ones (`gemv`, `gemv_tr`, the rank-1 update
//! `ger`), with more, one matrix–matrix product (`gemm`, which nalgebra
//! hands to `matrixmultiply`) per layer.
//!
//! Of the two orientations of a matrix–vector product, the one whose inner
//! loops run over the longer side is taken: for a 2-50-2 network the first
//! layer's `W a` is two 50-long column updates rather than fifty 2-long
//! dot products.

use nalgebra::{DMatrixView, DMatrixViewMut, DVectorView, DVectorViewMut, Dyn};

/// The shape `(ni, no)` of a layer and the number of columns `batch`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    /// Input width.
    pub ni: usize,
    /// Output width.
    pub no: usize,
    /// Number of samples (columns).
    pub batch: usize,
}

/// nalgebra's `gemm` hands matrices to `matrixmultiply` when every
/// dimension exceeds this (its `SMALL_DIM`).
const GEMM_SMALL: usize = 5;

/// `W` (`no × ni`) over its row-major storage.
fn w_view(w: &[f64], s: Shape) -> DMatrixView<'_, f64, Dyn, Dyn> {
    DMatrixView::from_slice_with_strides(w, s.no, s.ni, s.ni, 1)
}

/// `Wᵀ` (`ni × no`) over the same storage (column-major).
fn wt_view(w: &[f64], s: Shape) -> DMatrixView<'_, f64> {
    DMatrixView::from_slice(w, s.ni, s.no)
}

/// The weight gradient `G` (`no × ni`, like `W`) over its row-major storage.
fn g_view(gw: &mut [f64], s: Shape) -> DMatrixViewMut<'_, f64, Dyn, Dyn> {
    DMatrixViewMut::from_slice_with_strides_mut(gw, s.no, s.ni, s.ni, 1)
}

/// `z ← W a + z` (`z`: `no × batch`, `a`: `ni × batch`): dot products of
/// `W`'s rows (`gemv_tr`/`gemm_tr` over `Wᵀ`'s contiguous columns), or,
/// for a batch whose every dimension exceeds nalgebra's small-matrix
/// threshold, one `gemm` (`matrixmultiply`) over `W`'s strided view.
/// (nalgebra 0.35's small-matrix fallback of `gemm`, and `gemv`, read a
/// matrix with strided columns past its end, so `W` goes only where
/// `matrixmultiply` takes it.)
pub(super) fn w_times(z: &mut [f64], w: &[f64], s: Shape, a: &[f64]) {
    if s.batch == 1 {
        let (a, mut z) = (
            DVectorView::from_slice(a, s.ni),
            DVectorViewMut::from_slice(z, s.no),
        );
        z.gemv_tr(1.0, &wt_view(w, s), &a, 1.0);
    } else {
        let a = DMatrixView::from_slice(a, s.ni, s.batch);
        let mut z = DMatrixViewMut::from_slice(z, s.no, s.batch);
        if s.ni.min(s.no).min(s.batch) > GEMM_SMALL {
            z.gemm(1.0, &w_view(w, s), &a, 1.0);
        } else {
            z.gemm_tr(1.0, &wt_view(w, s), &a, 1.0);
        }
    }
}

/// `g ← Wᵀ δ` (`g`: `ni × batch`, `δ`: `no × batch`).
pub(super) fn wt_times(g: &mut [f64], w: &[f64], s: Shape, delta: &[f64]) {
    if s.batch == 1 {
        let d = DVectorView::from_slice(delta, s.no);
        let mut g = DVectorViewMut::from_slice(g, s.ni);
        if s.ni >= s.no {
            // updates by Wᵀ's contiguous columns
            g.gemv(1.0, &wt_view(w, s), &d, 0.0);
        } else {
            g.gemv_tr(1.0, &w_view(w, s), &d, 0.0);
        }
    } else {
        let d = DMatrixView::from_slice(delta, s.no, s.batch);
        let mut g = DMatrixViewMut::from_slice(g, s.ni, s.batch);
        g.gemm(1.0, &wt_view(w, s), &d, 0.0);
    }
}

/// `gw += δ aᵀ` (the weight gradient, row-major `no × ni` like `W`) and
/// `gb += δ 1` (the bias gradient: `δ`'s row sums).
pub(super) fn add_grads(gw: &mut [f64], gb: &mut [f64], s: Shape, delta: &[f64], a: &[f64]) {
    if s.batch == 1 {
        let d = DVectorView::from_slice(delta, s.no);
        let a = DVectorView::from_slice(a, s.ni);
        if s.ni >= s.no {
            // Gᵀ += a δᵀ: updates of Gᵀ's contiguous columns
            DMatrixViewMut::from_slice(gw, s.ni, s.no).ger(1.0, &a, &d, 1.0);
        } else {
            g_view(gw, s).ger(1.0, &d, &a, 1.0);
        }
    } else {
        // Gᵀ (ni × no, contiguous) += A δᵀ, δᵀ (batch × no) a view of δ
        let a = DMatrixView::from_slice(a, s.ni, s.batch);
        let dt = DMatrixView::from_slice_with_strides(delta, s.batch, s.no, s.no, 1);
        DMatrixViewMut::from_slice(gw, s.ni, s.no).gemm(1.0, &a, &dt, 1.0);
    }
    for col in delta.chunks_exact(s.no) {
        for (g, d) in gb.iter_mut().zip(col) {
            *g += d;
        }
    }
}
