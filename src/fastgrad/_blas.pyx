"""Row-major GEMM over scipy's cython_blas (the only BLAS fastgrad calls).

BLAS is column-major.  A row-major C = op(A) @ op(B) is, read column-major,
Cᵀ = op(B)ᵀ @ op(A)ᵀ: so we call ?gemm with the operands swapped and the
same transpose flags, as scikit-learn's _cython_blas does.
"""

from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating* A, int lda,
               const floating* B, int ldb, floating beta,
               floating* C, int ldc) noexcept nogil:
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int i, j
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # An empty sum: C = beta * C (BLAS would also accept this, but
        # leading dimensions must be >= 1 and some builds check them).
        for i in range(m):
            for j in range(n):
                C[i * ldc + j] = 0 if beta == 0 else beta * C[i * ldc + j]
        return
    if lda < 1:
        lda = 1
    if ldb < 1:
        ldb = 1
    if ldc < 1:
        ldc = 1
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>B, &ldb, <float*>A, &lda,
              &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>B, &ldb, <double*>A, &lda,
              &beta, C, &ldc)


def _gemm_test(A, B, C, bint trans_a=False, bint trans_b=False,
               double alpha=1.0, double beta=0.0):
    """Test shim: C = alpha op(A) @ op(B) + beta C in place (2-D C-contiguous arrays)."""
    import numpy as np
    if C.dtype == np.float32:
        _gemm_typed[float](A, B, C, trans_a, trans_b, <float>alpha, <float>beta)
    else:
        _gemm_typed[double](A, B, C, trans_a, trans_b, alpha, beta)
    return C


cdef _gemm_typed(floating[:, ::1] A, floating[:, ::1] B, floating[:, ::1] C,
                 bint trans_a, bint trans_b, floating alpha, floating beta):
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if trans_a else A.shape[1]
    cdef int kb = B.shape[1] if trans_b else B.shape[0]
    if k != kb or (A.shape[1] if trans_a else A.shape[0]) != m or \
            (B.shape[0] if trans_b else B.shape[1]) != n:
        raise ValueError("gemm: shapes do not align")
    cdef floating dummy = 0
    cdef const floating* pa = &A[0, 0] if A.shape[0] * A.shape[1] else &dummy
    cdef const floating* pb = &B[0, 0] if B.shape[0] * B.shape[1] else &dummy
    cdef floating* pc = &C[0, 0] if m * n else &dummy
    with nogil:
        gemm(trans_a, trans_b, m, n, k, alpha, pa, A.shape[1], pb, B.shape[1],
             beta, pc, C.shape[1])
