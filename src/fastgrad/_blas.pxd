# The one door to BLAS: every GEMM on a tape goes through gemm() below, which
# calls scipy's cython_blas (nothing else cimports scipy.linalg.cython_blas).

from cython cimport floating

# C (row-major, m x n) = alpha * op(A) @ op(B) + beta * C, where op(A) is
# m x k and op(B) is k x n.  trans_a / trans_b say that the row-major A / B
# are stored transposed (A is k x m, B is n x k); nothing is materialised.
# lda, ldb, ldc are row strides in elements.  Handles m, n or k == 0 without
# calling BLAS (a k == 0 product scales C by beta, i.e. zero-fills for 0).
cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha,
               const floating* A, int lda,          # IN
               const floating* B, int ldb,          # IN
               floating beta,
               floating* C, int ldc) noexcept nogil  # INOUT
