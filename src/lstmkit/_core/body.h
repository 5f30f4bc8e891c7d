/* One instruction set, one precision: included by isa.h, once per precision, for each ISA kernels.c builds.
 *
 * Needs: REAL (float or double), RNAME (f32 / f64), ISA (avx512 / avx2 / generic), VBYTES (vector
 * width in bytes), ITYPE (the integer of REAL's size), IS_FLOAT (1 for float).
 *
 * What is here: GCC vector-extension arithmetic of VBYTES-wide vectors, tanh, packing of a weight
 * matrix into column panels, a register-blocked product with the packed panels, and the per-thread
 * scans (LSTM, GRU, Elman; forward and backward) that lk_pool_run runs. Thread t owns hidden units
 * [u0, u1): it packs its columns of the recurrent weights once per sequence, computes its columns of
 * every step's product, the gates and states of its units, and meets the others at one barrier per
 * step (the next step needs all of h). The equations are those of layers/recurrent.py.
 */

#define CAT3_(a, b, c) a##_##b##_##c
#define CAT3(a, b, c) CAT3_(a, b, c)
#define FN(name) CAT3(name, ISA, RNAME)

#define VL ((int)(VBYTES / sizeof(REAL)))
#define NR (2 * VL)                     /* panel width: two vectors */
#define MR 4                            /* rows per register block */

typedef REAL FN(V) __attribute__((vector_size(VBYTES)));
typedef REAL FN(UV) __attribute__((vector_size(VBYTES), aligned(sizeof(REAL))));
typedef ITYPE FN(VI) __attribute__((vector_size(VBYTES)));
#define V FN(V)
#define UV FN(UV)
#define VI FN(VI)

static inline V FN(load)(const REAL *p) { return *(const UV *)p; }
static inline void FN(store)(REAL *p, V v) { *(UV *)p = v; }
static inline V FN(splat)(REAL x) { return (V){0} + x; }
static inline V FN(loadn)(const REAL *p, int m) {           /* the first m lanes, zeros after */
    if (m == VL) return FN(load)(p);
    REAL buf[VL] __attribute__((aligned(VBYTES))) = {0};
    memcpy(buf, p, (size_t)m * sizeof(REAL));
    return *(V *)buf;
}
static inline void FN(storen)(REAL *p, V v, int m) {
    if (m == VL) { FN(store)(p, v); return; }
    REAL buf[VL] __attribute__((aligned(VBYTES)));
    *(V *)buf = v;
    memcpy(p, buf, (size_t)m * sizeof(REAL));
}
static inline V FN(select)(VI mask, V a, V b) {              /* mask ? a : b, lane by lane */
    return (V)(((VI)a & mask) | ((VI)b & ~mask));
}

#if IS_FLOAT
/* tanh in float32: an odd rational approximation on [-7.9053, 7.9053] (tanh is within float32's
 * rounding of ±1 beyond), max abs error 3.4e-7 against float64 tanh and relative error ~1e-7 near 0. */
static inline V FN(tanh)(V x) {
    const V hi = FN(splat)(7.90531110763549805f), lo = -hi;
    V xc = FN(select)(x > hi, hi, x);
    xc = FN(select)(xc < lo, lo, xc);
    V x2 = xc * xc;
    V p = FN(splat)(-2.76076847742355e-16f);
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * xc;
    V q = FN(splat)(1.19825839466702e-06f);
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}
#else
/* tanh in float64: the C library's, lane by lane (exact to an ulp; float64 is for checking, not speed). */
static inline V FN(tanh)(V x) {
    REAL buf[VL] __attribute__((aligned(VBYTES)));
    *(V *)buf = x;
    for (int l = 0; l < VL; l++) buf[l] = tanh(buf[l]);
    return *(V *)buf;
}
#endif

/* The input projection at p when the caller formed it (``use``), else zero (the product added it already). */
static inline V FN(xin)(const REAL *p, int m, int use) { return use ? FN(loadn)(p, m) : FN(splat)(0); }

/* σ(p) = ½ + ½·tanh(p/2); with ``half`` the argument is already p/2. */
static inline V FN(sigmoid)(V p, int half) {
    return 0.5 + 0.5 * FN(tanh)(half ? p : 0.5 * p);
}

/* ---- packed product ------------------------------------------------------------------------------ */

static inline int FN(round_nr)(int n) { return (n + NR - 1) / NR * NR; }

/* dst holds column panels of NR columns of the K×N matrix M[k][n] = src[k·ks + colofs[n]], each
 * panel K×NR row by row, zero past N. */
static void FN(pack)(int K, int N, const REAL *src, long ks, const long *colofs, REAL *dst) {
    for (int p0 = 0; p0 < N; p0 += NR) {
        REAL *panel = dst + (long)p0 * K;
        for (int k = 0; k < K; k++)
            for (int j = 0; j < NR; j++) {
                int n = p0 + j;
                panel[(long)k * NR + j] = n < N ? src[(long)k * ks + colofs[n]] : 0;
            }
    }
}

/* C[0:4, 0:NR] = A[0:4, 0:K] · panel (A rows lda apart); with ``acc`` C += instead. */
static inline void FN(block4)(int K, const REAL *A, long lda, const REAL *P, REAL *C, long ldc, int acc) {
    V c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
    if (acc) {
        c00 = FN(load)(C); c01 = FN(load)(C + VL);
        c10 = FN(load)(C + ldc); c11 = FN(load)(C + ldc + VL);
        c20 = FN(load)(C + 2 * ldc); c21 = FN(load)(C + 2 * ldc + VL);
        c30 = FN(load)(C + 3 * ldc); c31 = FN(load)(C + 3 * ldc + VL);
    }
    const REAL *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda;
    for (int k = 0; k < K; k++) {
        V b0 = *(const V *)(P + (long)k * NR), b1 = *(const V *)(P + (long)k * NR + VL);
        c00 += b0 * a0[k]; c01 += b1 * a0[k];
        c10 += b0 * a1[k]; c11 += b1 * a1[k];
        c20 += b0 * a2[k]; c21 += b1 * a2[k];
        c30 += b0 * a3[k]; c31 += b1 * a3[k];
    }
    FN(store)(C, c00); FN(store)(C + VL, c01);
    FN(store)(C + ldc, c10); FN(store)(C + ldc + VL, c11);
    FN(store)(C + 2 * ldc, c20); FN(store)(C + 2 * ldc + VL, c21);
    FN(store)(C + 3 * ldc, c30); FN(store)(C + 3 * ldc + VL, c31);
}

static inline void FN(block1)(int K, const REAL *A, const REAL *P, REAL *C, int acc) {
    V c0 = {0}, c1 = {0}, d0 = {0}, d1 = {0};
    if (acc) { c0 = FN(load)(C); c1 = FN(load)(C + VL); }
    int k = 0;
    for (; k + 1 < K; k += 2) {                       /* two independent chains */
        c0 += *(const V *)(P + (long)k * NR) * A[k];
        c1 += *(const V *)(P + (long)k * NR + VL) * A[k];
        d0 += *(const V *)(P + (long)(k + 1) * NR) * A[k + 1];
        d1 += *(const V *)(P + (long)(k + 1) * NR + VL) * A[k + 1];
    }
    for (; k < K; k++) {
        c0 += *(const V *)(P + (long)k * NR) * A[k];
        c1 += *(const V *)(P + (long)k * NR + VL) * A[k];
    }
    FN(store)(C, c0 + d0);
    FN(store)(C + VL, c1 + d1);
}

/* C (M × Npad, ldc) = A (M × K, lda) · packed (K × Npad); with ``acc`` C += instead. */
static void FN(gemm)(int M, int Npad, int K, const REAL *A, long lda, const REAL *packed, REAL *C, long ldc,
                     int acc) {
    for (int p0 = 0; p0 < Npad; p0 += NR) {
        const REAL *panel = packed + (long)p0 * K;
        int i = 0;
        for (; i + MR <= M; i += MR) FN(block4)(K, A + (long)i * lda, lda, panel, C + (long)i * ldc + p0, ldc, acc);
        for (; i < M; i++) FN(block1)(K, A + (long)i * lda, panel, C + (long)i * ldc + p0, acc);
    }
}

/* ---- matrix-vector steps (small batches): the weights read as they lie, never packed --------------------- */

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
            for (int k = Kv; k < K; k++) { r0 += a[k] * w0[k]; r1 += a[k] * w1[k]; r2 += a[k] * w2[k]; r3 += a[k] * w3[k]; }
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

/* ---- the scans -------------------------------------------------------------------------------------- */

static REAL *FN(alloc)(long n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)(n > 0 ? n : 1) * sizeof(REAL)) != 0) return NULL;
    return (REAL *)p;
}

/* This thread's units [u0, u1), its packed columns and a product buffer; ok = 0 if out of memory. */
typedef struct { int u0, u1, Hs, N, Npad; REAL *packed, *out, *s1, *s2; int ok; } FN(Part);

static FN(Part) FN(part)(int H, int tid, int n, int N_per_unit, int K, int B) {
    FN(Part) p;
    p.u0 = (int)((long)H * tid / n);
    p.u1 = (int)((long)H * (tid + 1) / n);
    p.Hs = p.u1 - p.u0;
    p.N = N_per_unit * p.Hs;
    p.Npad = FN(round_nr)(p.N);
    p.packed = FN(alloc)((long)p.Npad * K);
    p.out = FN(alloc)((long)B * p.Npad);
    p.s1 = FN(alloc)((long)B * p.Hs);
    p.s2 = FN(alloc)((long)B * p.Hs);
    p.ok = p.packed && p.out && p.s1 && p.s2;
    return p;
}

static void FN(unpart)(FN(Part) *p) { free(p->packed); free(p->out); free(p->s1); free(p->s2); }

/* colofs[c] = stride · (the weight row of this thread's column c: gate c / Hs, unit u0 + c % Hs). */
static void FN(gate_rows)(long *colofs, int N, int Hs, int H, int u0, long stride) {
    for (int c = 0; c < N; c++) colofs[c] = ((long)(c / Hs) * H + u0 + c % Hs) * stride;
}

/* Forward: pack this thread's columns of W_hh^T (gate g, unit u: row g·H + u), then step. */
static void FN(forward_job)(void *arg, int tid, int n) {
    LkScan *s = (LkScan *)arg;
    const int T = s->T, B = s->B, H = s->H, G = s->G, GH = s->G * s->H;
    REAL *acts = s->acts, *hs = s->hs, *cs = s->cs, *tcs = s->tcs, *aux = s->aux;
    const REAL *b_loop = s->b_loop;
    const int direct = s->direct && s->wk == 1;           /* W_hh row-major: matrix-vector steps, no packing */
    FN(Part) p = FN(part)(H, tid, n, G, direct ? 0 : H, B);
    const int I = s->I;                             /* with x given: W_ih x_t is formed here too, step by step */
    const REAL *x = s->x;
    REAL *packed_x = x ? FN(alloc)((long)p.Npad * I) : NULL;
    if (!p.ok || (x && !packed_x)) s->failed = 1;
    long *colofs = malloc(sizeof(long) * (size_t)(p.N > 0 ? p.N : 1));   /* W_hh's row of each column */
    long *colofs_x = malloc(sizeof(long) * (size_t)(p.N > 0 ? p.N : 1));
    if (!colofs || !colofs_x) s->failed = 1;
    lk_barrier(n);                                  /* all threads know whether memory was found */
    int ok = !s->failed;
    if (ok) {
        FN(gate_rows)(colofs, p.N, p.Hs, H, p.u0, s->wn);
        if (!direct) FN(pack)(H, p.N, (const REAL *)s->w, s->wk, colofs, p.packed);
        if (x) {                                    /* W_ih (G·H, I) row-major: element (k, row) at row·I + k */
            FN(gate_rows)(colofs_x, p.N, p.Hs, H, p.u0, I);
            FN(pack)(I, p.N, (const REAL *)s->w_ih, 1, colofs_x, packed_x);
        }
    }
    const int half = s->prescaled, in = x == NULL;     /* in: acts holds W_ih x_t on entry */
    const REAL *bias = (const REAL *)s->bias + p.u0;      /* (G·H,): b_ih (+ b_hh) per gate, this thread's units */
    for (int t = 0; t < T && ok; t++) {
        const REAL *hprev = hs + (long)t * B * H;
        if (p.Hs && direct) FN(gemv_rows)(B, p.N, H, hprev, H, (const REAL *)s->w, colofs, p.out, p.Npad);
        else if (p.Hs) FN(gemm)(B, p.Npad, H, hprev, H, p.packed, p.out, p.Npad, 0);
        if (p.Hs && x) FN(gemm)(B, p.Npad, I, x + (long)t * B * I, I, packed_x, p.out, p.Npad, 1);
        for (int b = 0; b < B && p.Hs; b++) {
            REAL *a = acts + ((long)t * B + b) * GH + p.u0;
            const REAL *r = p.out + (long)b * p.Npad;
            long o = ((long)t * B + b) * H + p.u0;          /* (t, b, u0) in a (·, B, H) array */
            for (int j = 0; j < p.Hs; j += VL) {
                int m = p.Hs - j < VL ? p.Hs - j : VL;
                if (G == 4) {                               /* LSTM */
                    V i = FN(sigmoid)(FN(xin)(a + j, m, in) + FN(loadn)(bias + j, m) + FN(loadn)(r + j, m), half);
                    V f = FN(sigmoid)(FN(xin)(a + H + j, m, in) + FN(loadn)(bias + H + j, m) +
                                      FN(loadn)(r + p.Hs + j, m), half);
                    V g = FN(tanh)(FN(xin)(a + 2 * H + j, m, in) + FN(loadn)(bias + 2 * H + j, m) +
                                   FN(loadn)(r + 2 * p.Hs + j, m));
                    V og = FN(sigmoid)(FN(xin)(a + 3 * H + j, m, in) + FN(loadn)(bias + 3 * H + j, m) +
                                       FN(loadn)(r + 3 * p.Hs + j, m), half);
                    V c = f * FN(loadn)(cs + o + j, m) + i * g;
                    V tc = FN(tanh)(c);
                    FN(storen)(a + j, i, m); FN(storen)(a + H + j, f, m);
                    FN(storen)(a + 2 * H + j, g, m); FN(storen)(a + 3 * H + j, og, m);
                    FN(storen)(cs + o + (long)B * H + j, c, m);
                    FN(storen)(tcs + o + j, tc, m);
                    FN(storen)(hs + o + (long)B * H + j, og * tc, m);
                } else if (G == 3) {                        /* GRU */
                    V rr = FN(sigmoid)(FN(loadn)(a + j, m) + FN(loadn)(bias + j, m) + FN(loadn)(r + j, m), half);
                    V z = FN(sigmoid)(FN(loadn)(a + H + j, m) + FN(loadn)(bias + H + j, m) +
                                      FN(loadn)(r + p.Hs + j, m), half);
                    V hn = FN(loadn)(r + 2 * p.Hs + j, m);
                    if (b_loop) hn += FN(loadn)(b_loop + p.u0 + j, m);
                    V nn = FN(tanh)(FN(loadn)(a + 2 * H + j, m) + FN(loadn)(bias + 2 * H + j, m) + rr * hn);
                    V hp = FN(loadn)(hprev + (long)b * H + p.u0 + j, m);
                    FN(storen)(a + j, rr, m); FN(storen)(a + H + j, z, m); FN(storen)(a + 2 * H + j, nn, m);
                    FN(storen)(aux + o + j, hn, m);
                    FN(storen)(hs + o + (long)B * H + j, nn + z * (hp - nn), m);
                } else {                                    /* Elman */
                    V pre = FN(loadn)(r + j, m) + (FN(xin)(a + j, m, in) + FN(loadn)(bias + j, m));
                    V h = s->act ? FN(select)(pre > 0, pre, FN(splat)(0)) : FN(tanh)(pre);
                    FN(storen)(hs + o + (long)B * H + j, h, m);
                }
            }
        }
        lk_barrier(n);
    }
    free(colofs);
    free(colofs_x);
    free(packed_x);
    FN(unpart)(&p);
}

/* One backward step of the small-batch scan, after this thread wrote its units' d(pre-activations) of step t:
 * its rows' shares of dh_{t-1} (all units) and of dx_t (all columns) into ``mine`` (B, H + I), the barrier, then
 * dh_next (B, Hs) of its units and its columns of dx_t, summed over every thread's shares. */
static void FN(direct_back)(LkScan *s, int tid, int n, int t, int u0, int Hs, REAL *mine, REAL *dh_next,
                            const REAL *dz) {
    const int B = s->B, H = s->H, G = s->G, GH = G * H, I = s->I, HI = H + I;
    const REAL *dq = (const REAL *)s->dhp + (long)t * B * GH, *dp = (const REAL *)s->dxp + (long)t * B * GH;
    const REAL *w_hh = s->w_hh, *w_ih = s->w_ih;
    for (int g = 0; g < G; g++) {
        long row = (long)g * H + u0;
        FN(gemv_cols)(B, H, Hs, dq + row, GH, w_hh + row * H, H, mine, HI, g > 0);
        if (s->dx) FN(gemv_cols)(B, I, Hs, dp + row, GH, w_ih + row * I, I, mine + H, HI, g > 0);
    }
    lk_barrier(n);                                  /* every thread's shares of step t are written */
    const long par = (long)(t & 1) * B * HI;        /* this step's half of every thread's buffer */
    const int x0 = (int)((long)I * tid / n), x1 = (int)((long)I * (tid + 1) / n);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < Hs; j++) {
            REAL v = G == 3 ? dz[(long)b * Hs + j] : 0;
            for (int y = 0; y < n; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + u0 + j];
            dh_next[(long)b * Hs + j] = v;
        }
        if (s->dx)
            for (int c = x0; c < x1; c++) {
                REAL v = 0;
                for (int y = 0; y < n; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + H + c];
                ((REAL *)s->dx)[((long)t * B + b) * I + c] = v;
            }
    }
}

/* Backward: pack this thread's columns of W_hh (column u of the (G·H, H) matrix), then step back. */
static void FN(backward_job)(void *arg, int tid, int n) {
    LkScan *s = (LkScan *)arg;
    const int T = s->T, B = s->B, H = s->H, G = s->G, GH = s->G * s->H;
    const REAL *acts = s->acts, *hs = s->hs, *cs = s->cs, *tcs = s->tcs, *aux = s->aux;
    const REAL *w_hh = s->w_hh, *dhs = s->dhs, *dh_n = s->dh_n, *dc_n = s->dc_n;
    REAL *dxp = s->dxp, *dhp = s->dhp, *dh0 = s->dh0, *dc0 = s->dc0;
    /* Small batches: matrix-vector steps over this thread's own rows of W_hh (and W_ih), as they lie: each thread
     * sums its rows' share of dh_{t-1} (and dx_t) for every unit into a buffer of its own, two steps' worth, and
     * after the step's barrier each adds up its units' (and columns') shares from every thread's buffer. */
    const int direct = s->direct;
    FN(Part) p = FN(part)(H, tid, n, 1, direct ? 0 : GH, B);
    const int I = s->I;                          /* with dx given: dx_t = d(x-side pre-activations)_t · W_ih too, */
    REAL *dxo = s->dx;                           /* this thread's columns [x0, x1) of it */
    const int x0 = (int)((long)I * tid / n), x1 = (int)((long)I * (tid + 1) / n), Nx = FN(round_nr)(x1 - x0);
    const int packs_x = dxo && !direct, HI = H + I;
    REAL *packed_x = packs_x ? FN(alloc)((long)Nx * GH) : NULL, *outx = packs_x ? FN(alloc)((long)B * Nx) : NULL;
    REAL *shares = direct ? FN(alloc)(2L * B * HI) : NULL;           /* (2, B, H + I): dh_{t-1}, then dx_t */
    s->shares[tid] = shares;
    long *colofs = malloc(sizeof(long) * (size_t)((p.N > I ? p.N : I) + 1));
    REAL *dbx = calloc((size_t)GH, sizeof(REAL)), *dbh = calloc((size_t)GH, sizeof(REAL));   /* Σ over t, b */
    if (!p.ok || !colofs || !dbx || !dbh || (packs_x && (!packed_x || !outx)) || (direct && !shares)) s->failed = 1;
    lk_barrier(n);
    int ok = !s->failed;
    REAL *dh_next = p.s1, *dc_next = p.s2;       /* (B, Hs) this thread's units; GRU: s2 holds dh ⊙ z */
    if (ok) {
        if (packs_x) {                           /* W_ih (G·H, I) row-major: element (k, column c) at k·I + c */
            for (int c = 0; c < x1 - x0; c++) colofs[c] = x0 + c;
            FN(pack)(GH, x1 - x0, (const REAL *)s->w_ih, I, colofs, packed_x);
        }
        for (int c = 0; c < p.N; c++) colofs[c] = p.u0 + c;
        if (!direct) FN(pack)(GH, p.N, w_hh, H, colofs, p.packed);
        memset(dh_next, 0, sizeof(REAL) * (size_t)B * p.Hs);
        memset(dc_next, 0, sizeof(REAL) * (size_t)B * p.Hs);
    }
    for (int t = T - 1; t >= 0 && ok; t--) {
        for (int b = 0; b < B && p.Hs; b++) {
            REAL *dhn = dh_next + (long)b * p.Hs, *dcn = dc_next + (long)b * p.Hs;
            long o = ((long)t * B + b) * H + p.u0;
            if (s->last[b] == t) {                  /* the final-state gradient enters at the last step */
                for (int j = 0; j < p.Hs; j++) {
                    dhn[j] += dh_n[(long)b * H + p.u0 + j];
                    if (G == 4) dcn[j] += dc_n[(long)b * H + p.u0 + j];
                }
            }
            const REAL *a = acts + ((long)t * B + b) * GH + p.u0;
            REAL *dx = dxp + ((long)t * B + b) * GH + p.u0;
            REAL *dq = dhp + ((long)t * B + b) * GH + p.u0;
            for (int j = 0; j < p.Hs; j += VL) {
                int m = p.Hs - j < VL ? p.Hs - j : VL;
                V dh = FN(loadn)(dhs + o + j, m) + FN(loadn)(dhn + j, m);
                if (G == 4) {                       /* LSTM */
                    V i = FN(loadn)(a + j, m), f = FN(loadn)(a + H + j, m);
                    V g = FN(loadn)(a + 2 * H + j, m), og = FN(loadn)(a + 3 * H + j, m);
                    V tc = FN(loadn)(tcs + o + j, m), cp = FN(loadn)(cs + o + j, m);
                    V dc = dh * og * (1 - tc * tc) + FN(loadn)(dcn + j, m);
                    V di = dc * g * (i * (1 - i)), df = dc * cp * (f * (1 - f));
                    V dg = dc * i * (1 - g * g), dout = dh * tc * (og * (1 - og));
                    FN(storen)(dx + j, di, m);
                    FN(storen)(dx + H + j, df, m);
                    FN(storen)(dx + 2 * H + j, dg, m);
                    FN(storen)(dx + 3 * H + j, dout, m);
                    FN(storen)(dcn + j, dc * f, m);
                    REAL *db = dbx + p.u0 + j;
                    FN(storen)(db, FN(loadn)(db, m) + di, m);
                    FN(storen)(db + H, FN(loadn)(db + H, m) + df, m);
                    FN(storen)(db + 2 * H, FN(loadn)(db + 2 * H, m) + dg, m);
                    FN(storen)(db + 3 * H, FN(loadn)(db + 3 * H, m) + dout, m);
                } else if (G == 3) {                /* GRU */
                    V rr = FN(loadn)(a + j, m), z = FN(loadn)(a + H + j, m), nn = FN(loadn)(a + 2 * H + j, m);
                    V hp = FN(loadn)(hs + o + j, m), hn = FN(loadn)(aux + o + j, m);
                    V dn = (1 - z) * (1 - nn * nn) * dh;
                    V dz = (hp - nn) * (1 - z) * z * dh;
                    V dr = dn * (hn * (rr * (1 - rr)));
                    FN(storen)(dx + j, dr, m); FN(storen)(dx + H + j, dz, m); FN(storen)(dx + 2 * H + j, dn, m);
                    FN(storen)(dq + j, dr, m); FN(storen)(dq + H + j, dz, m); FN(storen)(dq + 2 * H + j, dn * rr, m);
                    REAL *db = dbx + p.u0 + j, *dbq = dbh + p.u0 + j;
                    FN(storen)(db, FN(loadn)(db, m) + dr, m);
                    FN(storen)(db + H, FN(loadn)(db + H, m) + dz, m);
                    FN(storen)(db + 2 * H, FN(loadn)(db + 2 * H, m) + dn, m);
                    FN(storen)(dbq + 2 * H, FN(loadn)(dbq + 2 * H, m) + dn * rr, m);
                    FN(storen)(dcn + j, dh * z, m);
                } else {                            /* Elman */
                    V h = FN(loadn)(hs + o + (long)B * H + j, m);
                    V d = s->act ? FN(select)(h > 0, dh, FN(splat)(0)) : dh * (1 - h * h);
                    FN(storen)(dx + j, d, m);
                    FN(storen)(dbx + p.u0 + j, FN(loadn)(dbx + p.u0 + j, m) + d, m);
                }
            }
        }
        if (direct) {
            FN(direct_back)(s, tid, n, t, p.u0, p.Hs, shares + (long)(t & 1) * B * HI, dh_next, dc_next);
            continue;                               /* (it met the others at the step's barrier) */
        }
        lk_barrier(n);                              /* every unit's d(pre-activation) of step t is written */
        if (dxo && x1 > x0) {
            FN(gemm)(B, Nx, GH, dxp + (long)t * B * GH, GH, packed_x, outx, Nx, 0);
            for (int b = 0; b < B; b++)
                memcpy(dxo + ((long)t * B + b) * I + x0, outx + (long)b * Nx, sizeof(REAL) * (size_t)(x1 - x0));
        }
        if (p.Hs) {
            FN(gemm)(B, p.Npad, GH, dhp + (long)t * B * GH, GH, p.packed, p.out, p.Npad, 0);
            for (int b = 0; b < B; b++)
                for (int j = 0; j < p.Hs; j++)
                    dh_next[(long)b * p.Hs + j] = p.out[(long)b * p.Npad + j] +
                                                 (G == 3 ? dc_next[(long)b * p.Hs + j] : 0);
        }
    }
    if (ok) {
        for (int b = 0; b < B; b++)
            for (int j = 0; j < p.Hs; j++) {
                dh0[(long)b * H + p.u0 + j] = dh_next[(long)b * p.Hs + j];
                if (G == 4) dc0[(long)b * H + p.u0 + j] = dc_next[(long)b * p.Hs + j];
            }
        REAL *out_x = s->db_x, *out_h = s->db_h;          /* this thread's columns of the bias gradients */
        for (int g = 0; g < G; g++)
            for (int j = 0; j < p.Hs; j++) {
                long k = (long)g * H + p.u0 + j;
                out_x[k] = dbx[k];
                out_h[k] = G == 3 ? (g < 2 ? dbx[k] : dbh[k]) : dbx[k];
            }
    }
    free(dbx);
    free(dbh);
    if (direct) lk_barrier(n);                      /* the others have read this thread's shares */
    free(shares);
    free(packed_x);
    free(outx);
    free(colofs);
    FN(unpart)(&p);
}

#undef V
#undef UV
#undef VI
#undef VL
#undef NR
#undef MR
#undef FN
