/* Matrix-vector steps for small batches (included by body.h): the weights read as they lie, never packed. */

static inline REAL FN(hsum)(V v) {
    REAL buf[VL] __attribute__((aligned(VBYTES)));
    *(V *)buf = v;
    REAL s = 0;
    for (int l = 0; l < VL; l++) s += buf[l];
    return s;
}

/* C[b, c] = Σ_k A[b, k] · W[rows[c] + k] for b < M, c < N: each output the dot product of two contiguous runs
 * (the forward's W_hh x h with W_hh row-major: the row of gate block and unit c). */
static void FN(gemv_rows)(int M, int N, int K, const REAL *A, long lda, const REAL *W, const long *rows, REAL *C,
                          long ldc) {
    const int Kv = K / VL * VL;
    int c = 0;
    for (; c + 4 <= N; c += 4) {
        const REAL *w0 = W + rows[c], *w1 = W + rows[c + 1], *w2 = W + rows[c + 2], *w3 = W + rows[c + 3];
        for (int b = 0; b < M; b++) {
            const REAL *a = A + (long)b * lda;
            V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
            for (int k = 0; k < Kv; k += VL) {
                V av = FN(load)(a + k);
                s0 += av * FN(load)(w0 + k); s1 += av * FN(load)(w1 + k);
                s2 += av * FN(load)(w2 + k); s3 += av * FN(load)(w3 + k);
            }
            REAL r0 = FN(hsum)(s0), r1 = FN(hsum)(s1), r2 = FN(hsum)(s2), r3 = FN(hsum)(s3);
            for (int k = Kv; k < K; k++) {
                r0 += a[k] * w0[k]; r1 += a[k] * w1[k];
                r2 += a[k] * w2[k]; r3 += a[k] * w3[k];
            }
            REAL *o = C + (long)b * ldc + c;
            o[0] = r0; o[1] = r1; o[2] = r2; o[3] = r3;
        }
    }
    for (; c < N; c++)
        for (int b = 0; b < M; b++) {
            const REAL *a = A + (long)b * lda, *w = W + rows[c];
            V s0 = {0};
            for (int k = 0; k < Kv; k += VL) s0 += FN(load)(a + k) * FN(load)(w + k);
            REAL r = FN(hsum)(s0);
            for (int k = Kv; k < K; k++) r += a[k] * w[k];
            C[(long)b * ldc + c] = r;
        }
}

/* C[b, j] (+)= Σ_k A[b, k] · W[k·ldw + j] for b < M, j < N: rows of W scaled and summed into C, four rows at a
 * time, so W streams through once in address order (the backward's dpre x W_hh over this thread's own rows of a
 * row-major W_hh); with ``acc`` C += instead. */
static void FN(gemv_cols)(int M, int N, int K, const REAL *A, long lda, const REAL *W, long ldw, REAL *C, long ldc,
                          int acc) {
    const int Nv = N / VL * VL;
    for (int b = 0; b < M && !acc; b++) memset(C + (long)b * ldc, 0, sizeof(REAL) * (size_t)N);
    int k = 0;
    for (; k < K; k += 4) {
        const int rows = K - k < 4 ? K - k : 4;
        const REAL *w0 = W + (long)k * ldw, *w1 = rows > 1 ? w0 + ldw : w0, *w2 = rows > 2 ? w0 + 2 * ldw : w0,
                   *w3 = rows > 3 ? w0 + 3 * ldw : w0;
        for (int b = 0; b < M; b++) {
            const REAL *a = A + (long)b * lda + k;
            const REAL a0 = a[0], a1 = rows > 1 ? a[1] : 0, a2 = rows > 2 ? a[2] : 0, a3 = rows > 3 ? a[3] : 0;
            REAL *o = C + (long)b * ldc;
            int j = 0;
            for (; j < Nv; j += VL)
                FN(store)(o + j, FN(load)(o + j) + (FN(load)(w0 + j) * a0 + FN(load)(w1 + j) * a1) +
                                     (FN(load)(w2 + j) * a2 + FN(load)(w3 + j) * a3));
            for (; j < N; j++) o[j] += (w0[j] * a0 + w1[j] * a1) + (w2[j] * a2 + w3[j] * a3);
        }
    }
}
