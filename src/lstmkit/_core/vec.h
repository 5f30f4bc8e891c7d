/* Vector arithmetic, tanh and the packed product of one ISA and precision (included by body.h, which defines
 * REAL, V, VL, NR, MR and FN). */

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
/* A store that bypasses the caches (when whole and aligned; else storen), for what the forward writes and only the
 * backward reads, far later: the gates and tanh c_t of every step. Left to the cache, each of those lines is
 * first read from memory and then evicts data the next step needs (LSTM 64,100,128,256 forward: 25.5 ms against
 * 28.5 on Zen 4). The forward fences (kernels.c) after its last step. */
static inline void FN(stream)(REAL *p, V v, int m) {
#if LK_X86
    if (m == VL && ((uintptr_t)p & (VBYTES - 1)) == 0) {
#if VBYTES == 64 && IS_FLOAT
        _mm512_stream_ps((float *)p, (__m512)v);
#elif VBYTES == 64
        _mm512_stream_pd((double *)p, (__m512d)v);
#elif VBYTES == 32 && IS_FLOAT
        _mm256_stream_ps((float *)p, (__m256)v);
#elif VBYTES == 32
        _mm256_stream_pd((double *)p, (__m256d)v);
#elif IS_FLOAT
        _mm_stream_ps((float *)p, (__m128)v);
#else
        _mm_stream_pd((double *)p, (__m128d)v);
#endif
        return;
    }
#endif
    FN(storen)(p, v, m);
}

static inline V FN(select)(VI mask, V a, V b) {              /* mask ? a : b, lane by lane */
    return (V)(((VI)a & mask) | ((VI)b & ~mask));
}

#if IS_FLOAT
/* tanh in float32: an odd rational approximation on [-7.9053, 7.9053] (tanh is within float32's
 * rounding of ±1 beyond), max abs error 3.4e-7 against float64 tanh and relative error ~1e-7 near 0. */
static inline __attribute__((always_inline)) V FN(tanh)(V x) {
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
static inline __attribute__((always_inline)) V FN(tanh)(V x) {
    REAL buf[VL] __attribute__((aligned(VBYTES)));
    *(V *)buf = x;
    for (int l = 0; l < VL; l++) buf[l] = tanh(buf[l]);
    return *(V *)buf;
}
#endif

/* σ(p) = ½ + ½·tanh(p/2): one transcendental for every gate. */
static inline __attribute__((always_inline)) V FN(sigmoid)(V p) { return 0.5 + 0.5 * FN(tanh)(0.5 * p); }

/* The rows of a B operand: row k at p + k·ld, or with per > 0 at p + (k / per)·ld_t + (k % per)·ld (steps of per
 * batch rows each, ld_t apart: a (B, T, N) array read time-major, or one reversed in time). */
typedef struct { const REAL *p; long ld, ld_t, per; } FN(Rows);

static inline const REAL *FN(row)(const FN(Rows) *r, long k) {
    return r->per ? r->p + k / r->per * r->ld_t + k % r->per * r->ld : r->p + k * r->ld;
}

#if IS_FLOAT
/* The FMA peak's probe (lk_fma_peak): n rounds of twelve independent chains of vector FMAs (enough to keep every FMA
 * pipe busy at a 4-cycle latency); returns their sum, so that none is left out. */
static REAL FN(fma_chains)(long n) {
    const V m = FN(splat)(0.999999f), c = FN(splat)(1e-7f);
    V a0 = FN(splat)(1), a1 = a0 + c, a2 = a1 + c, a3 = a2 + c, a4 = a3 + c, a5 = a4 + c, a6 = a5 + c, a7 = a6 + c,
      a8 = a7 + c, a9 = a8 + c, a10 = a9 + c, a11 = a10 + c;
    for (long i = 0; i < n; i++) {
        a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c; a4 = a4 * m + c; a5 = a5 * m + c;
        a6 = a6 * m + c; a7 = a7 * m + c; a8 = a8 * m + c; a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c;
    }
    V t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    REAL sum = 0;
    for (int l = 0; l < VL; l++) sum += t[l];
    return sum;
}
#endif

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

/* C[0:6, 0:NR] = A[0:6, 0:K] · panel (A rows lda apart); with ``acc`` C += instead. Twelve accumulators: on AVX2
 * (sixteen registers: 12 + two of the panel + a broadcast) block4's eight keep its two FMA pipes only just fed at
 * a 4-cycle latency; six rows measured 1 ms faster in each scan of LSTM 64,100,128,256 (forward 27.8 -> 26.8,
 * backward 28.3 -> 27.0, Zen 4 at AVX2); on AVX-512 (one 512-bit FMA a cycle) block4's eight suffice. */
static inline void FN(block6)(int K, const REAL *A, long lda, const REAL *P, REAL *C, long ldc, int acc) {
    V c0[6], c1[6];
    for (int r = 0; r < 6; r++) {
        c0[r] = acc ? FN(load)(C + r * ldc) : (V){0};
        c1[r] = acc ? FN(load)(C + r * ldc + VL) : (V){0};
    }
    for (int k = 0; k < K; k++) {
        V b0 = *(const V *)(P + (long)k * NR), b1 = *(const V *)(P + (long)k * NR + VL);
        for (int r = 0; r < 6; r++) {
            const REAL a = A[r * lda + k];
            c0[r] += b0 * a;
            c1[r] += b1 * a;
        }
    }
    for (int r = 0; r < 6; r++) {
        FN(store)(C + r * ldc, c0[r]);
        FN(store)(C + r * ldc + VL, c1[r]);
    }
}

/* C (M × Npad, ldc) = A (M × K, lda) · packed (K × Npad); with ``acc`` C += instead. */
static void FN(gemm)(int M, int Npad, int K, const REAL *A, long lda, const REAL *packed, REAL *C, long ldc,
                     int acc) {
    int six = VBYTES == 32 ? M / 6 : 0;                 /* AVX2: blocks of six rows, the rest in fours if it can */
    while (six > 0 && (M - 6 * six) % MR) six--;
    for (int p0 = 0; p0 < Npad; p0 += NR) {
        const REAL *panel = packed + (long)p0 * K;
        int i = 0;
        for (; i < 6 * six; i += 6) FN(block6)(K, A + (long)i * lda, lda, panel, C + (long)i * ldc + p0, ldc, acc);
        for (; i + MR <= M; i += MR) FN(block4)(K, A + (long)i * lda, lda, panel, C + (long)i * ldc + p0, ldc, acc);
        for (; i < M; i++) FN(block1)(K, A + (long)i * lda, panel, C + (long)i * ldc + p0, acc);
    }
}

static REAL *FN(alloc)(long n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)(n > 0 ? n : 1) * sizeof(REAL)) != 0) return NULL;
    return (REAL *)p;
}
