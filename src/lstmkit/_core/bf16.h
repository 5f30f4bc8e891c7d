/* bfloat16 products (included by body.h): the scans' packed products and the weight gradients with their operands
 * rounded to bfloat16 (round to nearest even) and the products summed in float32, on CPUs with AVX512-BF16
 * (Zen 4, Sapphire Rapids and later), when lk_set_bf16 turned them on (lk.set_float32_matmul_precision("medium"),
 * lstmkit/precision.py, as torch.set_float32_matmul_precision). One VDPBF16PS does the work of two FMAs: each float32 lane
 * adds a[2i]·b[2i] + a[2i+1]·b[2i+1], so the packed panels hold the K index in pairs,
 *
 *     panel[k / 2][column][k % 2]        (NR columns a panel, a zero past K and past N)
 *
 * and a row of A is broadcast two values at a time. Only the float32 AVX-512 build has them; every other build
 * (and float64) runs the float32 / float64 products, so pack_any and gemm_any stand for pack and gemm there. */

#if VBYTES == 64 && IS_FLOAT && LK_CAN_BF16
#define LK_BF16 1
#define BF_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))

static inline int FN(bf_on)(void) { return lk_bf16; }

/* float32 -> bfloat16, round to nearest even; a NaN stays a (quiet) NaN. */
static inline uint16_t FN(bf_round)(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float FN(bf_float)(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Sixteen float32 lanes rounded to bfloat16, each in the low half of its 32-bit lane (bf_round's). */
static inline __m512i FN(bf_lanes)(const float *src) {
    const __m512i u = _mm512_loadu_si512((const void *)src);
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                            _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}

/* dst[0:n] = bf_round(src[0:n]), sixteen at a time. */
static void FN(bf_row)(const float *src, uint16_t *dst, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(FN(bf_lanes)(src + i)));
    for (; i < n; i++) dst[i] = FN(bf_round)(src[i]);
}

/* dst[i] = the pair (bf_round(s0[i]), bf_round(s1[i])) for i < n, as one 32-bit word (s1 NULL: zeros). */
static void FN(bf_pairs)(const float *s0, const float *s1, uint32_t *dst, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i w = FN(bf_lanes)(s0 + i);
        if (s1) w = _mm512_or_si512(w, _mm512_slli_epi32(FN(bf_lanes)(s1 + i), 16));
        _mm512_storeu_si512((void *)(dst + i), w);
    }
    for (; i < n; i++) dst[i] = FN(bf_round)(s0[i]) | (s1 ? (uint32_t)FN(bf_round)(s1[i]) << 16 : 0u);
}

/* The bfloat16 pair-panels of the K × N matrix M[k][n] = src[k·ks + colofs[n]] (pack's matrix): in dst, which
 * pack's size (Npad · K floats) always holds. */
static void FN(pack_bf)(int K, int N, const REAL *src, long ks, const long *colofs, uint16_t *dst) {
    const int Kp = (K + 1) / 2;
    for (int p0 = 0; p0 < N; p0 += NR) {
        uint32_t *panel = (uint32_t *)(dst + (long)p0 * Kp * 2);
        const int cols = N - p0 < NR ? N - p0 : NR;
        for (int k = 0; k < Kp; k++) {
            const REAL *s0 = src + (long)(2 * k) * ks, *s1 = 2 * k + 1 < K ? s0 + ks : NULL;
            uint32_t *out = panel + (long)k * NR;
            for (int j = 0; j < cols; j++) {
                const long c = colofs[p0 + j];
                out[j] = FN(bf_round)(s0[c]) | (s1 ? (uint32_t)FN(bf_round)(s1[c]) << 16 : 0u);
            }
            for (int j = cols; j < NR; j++) out[j] = 0;
        }
    }
}

/* C[0:rows, 0:NR] (+)= A[0:rows] (bfloat16, rows lda apart, Kp pairs) · panel, four rows of accumulators. */
BF_TARGET static void FN(bf_block4)(int Kp, const uint16_t *A, long lda, const uint16_t *P, REAL *C, long ldc,
                                    int rows, int acc) {
    __m512 c[4][2];
    for (int r = 0; r < 4; r++)
        for (int v = 0; v < 2; v++) c[r][v] = acc && r < rows ? _mm512_loadu_ps(C + r * ldc + v * 16) : _mm512_setzero_ps();
    const uint32_t *a0 = (const uint32_t *)A, *a1 = (const uint32_t *)(A + lda), *a2 = (const uint32_t *)(A + 2 * lda),
                   *a3 = (const uint32_t *)(A + 3 * lda);
    for (int k = 0; k < Kp; k++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(P + (long)k * 64)),
                       b1 = (__m512bh)_mm512_load_si512((const void *)(P + (long)k * 64 + 32));
        __m512bh a = (__m512bh)_mm512_set1_epi32((int)a0[k]);
        c[0][0] = _mm512_dpbf16_ps(c[0][0], a, b0); c[0][1] = _mm512_dpbf16_ps(c[0][1], a, b1);
        a = (__m512bh)_mm512_set1_epi32((int)a1[k]);
        c[1][0] = _mm512_dpbf16_ps(c[1][0], a, b0); c[1][1] = _mm512_dpbf16_ps(c[1][1], a, b1);
        a = (__m512bh)_mm512_set1_epi32((int)a2[k]);
        c[2][0] = _mm512_dpbf16_ps(c[2][0], a, b0); c[2][1] = _mm512_dpbf16_ps(c[2][1], a, b1);
        a = (__m512bh)_mm512_set1_epi32((int)a3[k]);
        c[3][0] = _mm512_dpbf16_ps(c[3][0], a, b0); c[3][1] = _mm512_dpbf16_ps(c[3][1], a, b1);
    }
    for (int r = 0; r < rows; r++) {
        _mm512_storeu_ps(C + r * ldc, c[r][0]);
        _mm512_storeu_ps(C + r * ldc + 16, c[r][1]);
    }
}

/* This thread's buffer for A rounded to bfloat16: room for M rows of K (rows padded to four, K to even); 0 when out
 * of memory. The scans reserve it in their prologue, where running out of memory is reported. */
static __thread uint16_t *FN(bf_buf) = NULL;
static __thread long FN(bf_cap) = 0;
static int FN(bf_reserve)(int M, int K) {
    const long need = (long)(M + 3) / 4 * 4 * ((K + 1) / 2 * 2);
    if (need <= FN(bf_cap)) return 1;
    void *p = NULL;
    if (posix_memalign(&p, 64, (size_t)need * sizeof(uint16_t)) != 0) return 0;
    free(FN(bf_buf));
    FN(bf_buf) = p;
    FN(bf_cap) = need;
    return 1;
}

/* gemm's product on pair-panels: A (M × K float32, lda) rounded into this thread's buffer (rows padded to four,
 * K to even, with zeros), then four rows at a time against every panel. */
static void FN(gemm_bf)(int M, int Npad, int K, const REAL *A, long lda, const uint16_t *packed, REAL *C, long ldc,
                        int acc) {
    const int Kp = (K + 1) / 2, Mp = (M + 3) / 4 * 4;
    if (!FN(bf_reserve)(M, K)) {                     /* (never after the scans' prologues): one term at a time */
        for (int i = 0; i < M; i++)
            for (int n = 0; n < Npad; n++) {
                float sum = 0;
                for (int k = 0; k < K; k++)
                    sum += FN(bf_float)(FN(bf_round)(A[(long)i * lda + k])) *
                           FN(bf_float)(packed[(long)(n / NR * NR) * Kp * 2 + ((long)(k / 2) * NR + n % NR) * 2 + (k & 1)]);
                C[(long)i * ldc + n] = acc ? C[(long)i * ldc + n] + sum : sum;
            }
        return;
    }
    uint16_t *buf = FN(bf_buf);
    for (int i = 0; i < Mp; i++) {
        uint16_t *row = buf + (long)i * Kp * 2;
        if (i < M) FN(bf_row)(A + (long)i * lda, row, K);
        else memset(row, 0, sizeof(uint16_t) * (size_t)K);
        if (K & 1) row[K] = 0;
    }
    for (int p0 = 0; p0 < Npad; p0 += NR)
        for (int i = 0; i < M; i += 4)
            FN(bf_block4)(Kp, buf + (long)i * Kp * 2, (long)Kp * 2, packed + (long)p0 * Kp * 2,
                          C + (long)i * ldc + p0, ldc, M - i < 4 ? M - i : 4, acc);
}

/* ---- the weight gradients' packing and kernel on pairs of steps (wgrad.h's, kc steps a block) ---- */

/* Ap: wgrad's pack_a in pairs of steps: micro-panel i, step pair k / 2, row r at ((i·kp + k / 2)·MRP + r)·2 + k % 2. */
static void FN(pack_a_bf)(const REAL *A, long lda, int m0, int m1, int k0, int kc, uint16_t *Ap) {
    const int kp = (kc + 1) / 2, Mt = m1 - m0;
    uint32_t row[Mt + MRP];                          /* one pair of steps of this thread's rows, zero past m1 */
    for (int r = Mt; r < Mt + MRP; r++) row[r] = 0;
    for (int k = 0; k < kp; k++) {
        const REAL *s0 = A + (long)(k0 + 2 * k) * lda + m0;
        FN(bf_pairs)(s0, 2 * k + 1 < kc ? s0 + lda : NULL, row, Mt);
        uint32_t *out = (uint32_t *)Ap + (long)k * MRP;
        for (int i = 0; i < Mt; i += MRP) memcpy(out + (long)(i / MRP) * kp * MRP, row + i, sizeof(uint32_t) * MRP);
    }
}

/* Bp: wgrad's pack_b in pairs of steps: panel j, step pair k / 2, column c at ((j·kp + k / 2)·NR + c)·2 + k % 2. */
static void FN(pack_b_bf)(const FN(Rows) *Bm, int N, int k0, int kc, uint16_t *Bp) {
    const int kp = (kc + 1) / 2;
    for (int j0 = 0; j0 < N; j0 += NR, Bp += (long)kp * NR * 2) {
        const int cols = N - j0 < NR ? N - j0 : NR;
        for (int k = 0; k < kp; k++) {
            const REAL *s0 = FN(row)(Bm, k0 + 2 * k) + j0;
            uint32_t *out = (uint32_t *)Bp + (long)k * NR;
            FN(bf_pairs)(s0, 2 * k + 1 < kc ? FN(row)(Bm, k0 + 2 * k + 1) + j0 : NULL, out, cols);
            for (int c = cols; c < NR; c++) out[c] = 0;
        }
    }
}

/* C[0:rows, 0:cols] += Ap · Bp over kp step pairs: MRP × NR accumulators, as kern_nv's. */
BF_TARGET static void FN(kern_bf)(int kp, const uint16_t *Ap, const uint16_t *Bp, REAL *C, long ldc, int rows,
                                  int cols) {
    __m512 c0[MRP], c1[MRP];
    for (int r = 0; r < MRP; r++) c0[r] = c1[r] = _mm512_setzero_ps();
    for (int k = 0; k < kp; k++) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)(Bp + (long)k * 64)),
                       b1 = (__m512bh)_mm512_load_si512((const void *)(Bp + (long)k * 64 + 32));
        const uint32_t *a = (const uint32_t *)(Ap + (long)k * MRP * 2);
        for (int r = 0; r < MRP; r++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
            c0[r] = _mm512_dpbf16_ps(c0[r], av, b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], av, b1);
        }
    }
    REAL tmp[NR] __attribute__((aligned(64)));
    for (int r = 0; r < rows; r++) {
        REAL *o = C + (long)r * ldc;
        if (cols == NR) {
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), c0[r]));
            _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), c1[r]));
            continue;
        }
        _mm512_store_ps(tmp, c0[r]);
        _mm512_store_ps(tmp + 16, c1[r]);
        for (int j = 0; j < cols; j++) o[j] += tmp[j];
    }
}
#undef BF_TARGET
#else
#define LK_BF16 0
static inline int FN(bf_on)(void) { return 0; }
static inline int FN(bf_reserve)(int M, int K) { (void)M; (void)K; return 1; }
#endif

/* pack, or (bf) pack_bf into the same buffer. */
static void FN(pack_any)(int bf, int K, int N, const REAL *src, long ks, const long *colofs, REAL *dst) {
#if LK_BF16
    if (bf) {
        FN(pack_bf)(K, N, src, ks, colofs, (uint16_t *)dst);
        return;
    }
#endif
    (void)bf;
    FN(pack)(K, N, src, ks, colofs, dst);
}

/* gemm, or (bf) gemm_bf on pack_any's pair-panels. */
static void FN(gemm_any)(int bf, int M, int Npad, int K, const REAL *A, long lda, const REAL *packed, REAL *C,
                         long ldc, int acc) {
#if LK_BF16
    if (bf) {
        FN(gemm_bf)(M, Npad, K, A, lda, (const uint16_t *)packed, C, ldc, acc);
        return;
    }
#endif
    (void)bf;
    FN(gemm)(M, Npad, K, A, lda, packed, C, ldc, acc);
}
#undef LK_BF16
