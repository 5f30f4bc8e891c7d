/* The weight gradients over all steps (included by body.h): C += Aᵀ·B for up to two products at once,
 *
 *     dW_ih += Σ_t dxp_tᵀ x_t        dW_hh += Σ_t dhp_tᵀ h_{t-1}
 *
 * with A (K, M) the pre-activation gradients of all K = T·B steps and rows, B (K, N) the inputs or the states,
 * C (M, N) the gradient, added to in place. Thread t owns rows [m0, m1) of every C. For each block of KC steps
 * it packs its rows of A into micro-panels of MRP rows (k-major) and B into panels of NR columns (k-major, zero
 * past N), then runs a register-blocked kernel of MRP x NR accumulators over each pair (one micro-panel of A
 * against every panel of B in turn).
 */

/* Steps per block: an A micro-panel (KC x MRP, 24 kB) stays in L1 while the B panels (KC x N, 768 kB at N 384)
 * stream from L2. Measured on Zen 4 (f32, K 6400, M 1024, N 128 + 256, two threads): 24.9 ms at 2048 bytes
 * per row of steps against 26.5 at 512 and 25.3 at 4096; OpenBLAS 27.4. */
#define KC (2048 / (int)sizeof(REAL))

/* C[0:rows, 0:cols] (+)= Ap (KC-major, MRP per step) · Bp (NR per step) over kc steps, with nv vectors of columns
 * (1 when cols fit in one: half the work at 16 float32 columns on AVX-512); with ``acc`` added to C, else written.
 * With ``at`` (not NULL), step k's MRP values are read where they lie, at Ap + at[k] + r·rs, unpacked. */
static inline __attribute__((always_inline)) void FN(kern_nv)(int kc, const REAL *Ap, const long *at,
                                                              const REAL *Bp, REAL *C, long ldc, int rows, int cols,
                                                              const int nv, const int acc, const int rs) {
    V c0[MRP], c1[MRP];
    for (int r = 0; r < MRP; r++) c0[r] = c1[r] = (V){0};
    for (int k = 0; k < kc; k++) {
        const V b0 = *(const V *)(Bp + (long)k * NR);
        const REAL *a = at ? Ap + at[k] : Ap + (long)k * MRP;
        if (nv == 2) {
            const V b1 = *(const V *)(Bp + (long)k * NR + VL);
            for (int r = 0; r < MRP; r++) {
                c0[r] += b0 * a[r * rs];
                c1[r] += b1 * a[r * rs];
            }
        } else {
            for (int r = 0; r < MRP; r++) c0[r] += b0 * a[r * rs];
        }
    }
    if (rows == MRP && cols == nv * VL) {
        for (int r = 0; r < MRP; r++) {
            REAL *o = C + (long)r * ldc;
            FN(store)(o, acc ? FN(load)(o) + c0[r] : c0[r]);
            if (nv == 2) FN(store)(o + VL, acc ? FN(load)(o + VL) + c1[r] : c1[r]);
        }
        return;
    }
    REAL tmp[NR] __attribute__((aligned(VBYTES)));
    for (int r = 0; r < rows; r++) {
        *(V *)tmp = c0[r];
        if (nv == 2) *(V *)(tmp + VL) = c1[r];
        for (int j = 0; j < cols; j++) C[(long)r * ldc + j] = (acc ? C[(long)r * ldc + j] : 0) + tmp[j];
    }
}

/* kern_nv with its constants chosen from cols (one vector or two) and acc: each case its own inlined loop. */
static inline __attribute__((always_inline)) void FN(kern)(int kc, const REAL *A, const long *at, const REAL *Bp,
                                                           REAL *C, long ldc, int rows, int cols, int acc,
                                                           const int rs) {
    if (cols > VL) {
        if (acc) FN(kern_nv)(kc, A, at, Bp, C, ldc, rows, cols, 2, 1, rs);
        else FN(kern_nv)(kc, A, at, Bp, C, ldc, rows, cols, 2, 0, rs);
    } else {
        if (acc) FN(kern_nv)(kc, A, at, Bp, C, ldc, rows, cols, 1, 1, rs);
        else FN(kern_nv)(kc, A, at, Bp, C, ldc, rows, cols, 1, 0, rs);
    }
}

/* C (+)= Ap · Bp, A packed (MRP per step). */
static void FN(kern_pp)(int kc, const REAL *Ap, const REAL *Bp, REAL *C, long ldc, int rows, int cols, int acc) {
    FN(kern)(kc, Ap, NULL, Bp, C, ldc, rows, cols, acc, 1);
}

/* C += A · Bp with step k's MRP values of A at A + at[k] (unpacked). */
static void FN(kern_at)(int kc, const REAL *A, const long *at, const REAL *Bp, REAL *C, long ldc, int rows, int cols) {
    FN(kern)(kc, A, at, Bp, C, ldc, rows, cols, 1, 1);
}

/* C (=/+=) A · Bp over a full tile whose row r, step k lies at A + at[k] + r·rs (a row of pixels, rs apart), for the
 * row strides instantiated here; returns 0 (nothing done) for another. */
#define LK_ROW_STRIDES(X) X(1) X(3) X(8) X(16) X(32) X(64)
static int FN(kern_rows)(int kc, const REAL *A, const long *at, const REAL *Bp, REAL *C, long ldc, int cols, int rs,
                         int acc) {
    switch (rs) {
#define LK_RS(s)                                                                                                  \
    case s: FN(kern)(kc, A, at, Bp, C, ldc, MRP, cols, acc, s); return 1;
        LK_ROW_STRIDES(LK_RS)
#undef LK_RS
    }
    return 0;
}

/* Ap: rows [m0, m1) of Aᵀ over steps [k0, k0 + kc), MRP rows per micro-panel, zero past m1. Row by row of A,
 * each read once in address order. */
static void FN(pack_a)(const REAL *A, long lda, int m0, int m1, int k0, int kc, REAL *Ap) {
    const int full = (m1 - m0) / MRP * MRP, rest = m1 - m0 - full;
    for (int k = 0; k < kc; k++) {
        const REAL *src = A + (long)(k0 + k) * lda + m0;
        REAL *dst = Ap + (long)k * MRP;
        for (int i = 0; i < full; i += MRP, dst += (long)kc * MRP) memcpy(dst, src + i, sizeof(REAL) * MRP);
        if (rest)
            for (int r = 0; r < MRP; r++) dst[r] = r < rest ? src[full + r] : 0;
    }
}

/* Bp: columns [0, N) of B over steps [k0, k0 + kc), NR columns per panel, zero past N. */
static void FN(pack_b)(const FN(Rows) *Bm, int N, int k0, int kc, REAL *Bp) {
    for (int j0 = 0; j0 < N; j0 += NR, Bp += (long)kc * NR) {
        const int cols = N - j0 < NR ? N - j0 : NR;
        for (int k = 0; k < kc; k++) {
            const REAL *src = FN(row)(Bm, k0 + k) + j0;
            REAL *dst = Bp + (long)k * NR;
            if (cols == NR) memcpy(dst, src, sizeof(REAL) * NR);
            else for (int j = 0; j < NR; j++) dst[j] = j < cols ? src[j] : 0;
        }
    }
}

static inline FN(Rows) FN(b_rows)(const LkGrad *g, int q) {
    return (FN(Rows)){(const REAL *)g->b[q], g->ldb[q], g->ldb_t[q], g->per[q]};
}

/* One block of kc steps of product q on bfloat16 pairs of steps (bf16.h), into this thread's rows [m0, m1). */
static void FN(wgrad_bf)(const LkGrad *g, int q, int m0, int m1, int k0, int kc, REAL *Ap, REAL *Bp) {
#if VBYTES == 64 && IS_FLOAT && LK_CAN_BF16
    const int kp = (kc + 1) / 2, N = g->N[q];
    uint16_t *ap = (uint16_t *)Ap, *bp = (uint16_t *)Bp;
    if (q == 0 || g->a[q] != g->a[q - 1]) FN(pack_a_bf)(g->a[q], g->lda[q], m0, m1, k0, kc, ap);
    const FN(Rows) bm = FN(b_rows)(g, q);
    FN(pack_b_bf)(&bm, N, k0, kc, bp);
    REAL *C = g->c[q];
    for (int i0 = m0; i0 < m1; i0 += MRP)
        for (int j0 = 0; j0 < N; j0 += NR)
            FN(kern_bf)(kp, ap + (long)((i0 - m0) / MRP) * kp * MRP * 2, bp + (long)(j0 / NR) * kp * NR * 2,
                        C + (long)i0 * g->ldc[q] + j0, g->ldc[q], m1 - i0 < MRP ? m1 - i0 : MRP,
                        N - j0 < NR ? N - j0 : NR);
#else
    (void)g; (void)q; (void)m0; (void)m1; (void)k0; (void)kc; (void)Ap; (void)Bp;
#endif
}

static void FN(wgrad_job)(void *arg, int tid, int n) {
    LkGrad *g = (LkGrad *)arg;
    const int M = g->M, K = g->K;
    const long panels = (M + MRP - 1) / MRP;        /* micro-panels of rows, shared out evenly */
    int m0 = (int)(panels * tid / n) * MRP, m1 = (int)(panels * (tid + 1) / n) * MRP;
    if (m1 > M) m1 = M;
    if (m0 >= m1) return;
    const int Mt = m1 - m0, Npad = FN(round_nr)(g->N[0] > g->N[1] ? g->N[0] : g->N[1]);
    REAL *Ap = FN(alloc)((long)(Mt + MRP) * KC), *Bp = FN(alloc)((long)Npad * KC);
    if (!Ap || !Bp) {
        g->failed = 1;
        free(Ap);
        free(Bp);
        return;
    }
    const int bf = FN(bf_on)();                      /* bfloat16 pairs of steps (bf16.h) */
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        for (int q = 0; q < g->nprod; q++) {
            const REAL *A = g->a[q];
            if (bf) {
                FN(wgrad_bf)(g, q, m0, m1, k0, kc, Ap, Bp);
                continue;
            }
            if (q == 0 || g->a[q] != g->a[q - 1]) FN(pack_a)(A, g->lda[q], m0, m1, k0, kc, Ap);
            const int N = g->N[q];
            const FN(Rows) bm = FN(b_rows)(g, q);
            FN(pack_b)(&bm, N, k0, kc, Bp);
            REAL *C = g->c[q];
            for (int i0 = m0; i0 < m1; i0 += MRP) {
                const int rows = m1 - i0 < MRP ? m1 - i0 : MRP;
                for (int j0 = 0; j0 < N; j0 += NR) {
                    const int cols = N - j0 < NR ? N - j0 : NR;
                    const REAL *panel = Bp + (long)(j0 / NR) * kc * NR;
                    FN(kern_pp)(kc, Ap + (long)((i0 - m0) / MRP) * kc * MRP, panel, C + (long)i0 * g->ldc[q] + j0,
                                g->ldc[q], rows, cols, 1);
                }
            }
        }
    }
    free(Ap);
    free(Bp);
}

