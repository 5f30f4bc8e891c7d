/* lstmkit's compiled recurrent core: the LSTM, GRU and Elman scans, forward and backward.
 *
 * The equations (layers/recurrent.py states them once; PyTorch's gate order and biases):
 *
 *   LSTM   i = σ(p_i)  f = σ(p_f)  g = tanh(p_g)  o = σ(p_o)    c_t = f ⊙ c + i ⊙ g    h_t = o ⊙ tanh(c_t)
 *   GRU    r = σ(p_r)  z = σ(p_z)  n = tanh(x_n + r ⊙ (W_hn h + b_hn))                 h_t = (1 − z) ⊙ n + z ⊙ h
 *   Elman  h_t = act(p),  act = tanh or relu
 *
 * where p = W_ih x_t + b_ih + W_hh h + b_hh per gate block (x_n = W_in x_t + b_in). The caller (the
 * NumPy frame, layers/rnn_base.py) has already formed W_ih x_t + biases for every step with one GEMM;
 * here run the T dependent steps: each one a product with W_hh (packed once per sequence into column
 * panels this core's own register-blocked kernel reads) and the gates, on a pool of threads that each
 * own a slice of the hidden units. The backward runs the steps in reverse and leaves the gradient
 * of every pre-activation; the weight gradients remain whole-sequence GEMMs in the frame.
 *
 * One build runs on any x86-64: the kernels are compiled three times (AVX-512, AVX2+FMA, SSE2) in
 * this file and chosen at run time from what the CPU supports (lk_set_simd forces a lower one).
 * Elsewhere (arm64, ...) only the generic one is built.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define LK_X86 1
#include <immintrin.h>                  /* the streaming stores of vec.h */
static inline void fence(void) { _mm_sfence(); }    /* streamed stores reach memory before what follows */
#else
#define LK_X86 0
static inline void fence(void) {}
#endif

/* ---- the builds: generic everywhere, AVX2+FMA and AVX-512 on x86-64 ------------------------------------ */
#define ISA generic
#define VBYTES 16
#include "isa.h"
#undef ISA
#undef VBYTES

#if LK_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define ISA avx2
#define VBYTES 32
#include "isa.h"
#undef ISA
#undef VBYTES
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx2,fma")
#define ISA avx512
#define VBYTES 64
#include "isa.h"
#undef ISA
#undef VBYTES
#pragma GCC pop_options
#endif

/* ---- run-time choice ------------------------------------------------------------------------------- */

enum { SIMD_GENERIC = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };           /* compiled.SIMD names them */

static int best_simd(void) {
#if LK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SIMD_AVX2;
#endif
    return SIMD_GENERIC;
}

static int simd = -1;

/* The SIMD path in use: 0 generic, 1 AVX2, 2 AVX-512. */
int lk_simd(void) {
    if (simd < 0) simd = best_simd();
    return simd;
}

/* Force a path no higher than the CPU's best (for tests); returns the one now in use. */
int lk_set_simd(int level) {
    int best = best_simd();
    simd = level < 0 ? best : (level > best ? best : level);
    return simd;
}

typedef void (*job)(void *, int, int);

enum { JOB_FORWARD = 0, JOB_BACKWARD = 1, JOB_WGRAD = 2 };

#define JOBS(isa) {{forward_job_##isa##_f32, forward_job_##isa##_f64},                                          \
                   {backward_job_##isa##_f32, backward_job_##isa##_f64},                                        \
                   {wgrad_job_##isa##_f32, wgrad_job_##isa##_f64}}

static job pick(int which, int f64) {
    static const job generic[3][2] = JOBS(generic);
#if LK_X86
    static const job avx2[3][2] = JOBS(avx2), avx512[3][2] = JOBS(avx512);
    int level = lk_simd();
    if (level == SIMD_AVX512) return avx512[which][f64];
    if (level == SIMD_AVX2) return avx2[which][f64];
#endif
    return generic[which][f64];
}

#define FILL_COMMON(s)                                                                                    \
    memset(&(s), 0, sizeof(s));                                                                           \
    (s).T = T; (s).B = B; (s).H = H; (s).G = G; (s).act = act; (s).direct = direct;

/* Forward scan. acts (T, B, G·H): the input projections W_ih x_t in, the gate activations out (LSTM i, f, g, o;
 * GRU r, z, n); w: W_hh^T, element (k, row) at w[k·wk + row·wn]; bias (G·H,): the biases added to every step's
 * input projection (b_ih + b_hh, GRU's n block b_in alone); b_loop: GRU's b_hn or NULL; hs, cs
 * (T+1, B, H) with hs[0], cs[0] set; tcs (T, B, H) tanh(c_t); aux (T, B, H) GRU's W_hn h + b_hn. With x
 * (T, B, I) and W_ih (G·H, I) given (LSTM, Elman), W_ih x_t is formed here each step, with the recurrent product,
 * and acts is only written. With y given, each h_t is also written at y + t·y_t + b·y_b (the layer's output in
 * the caller's layout). With ``direct`` (small batches) and W_hh^T given as a view of a row-major W_hh
 * (wk = 1), each step is a matrix-vector product over the weights as they lie, never packed.
 * Returns the threads used, or -1 when out of memory. */
int lk_scan_forward(int f64, int G, int act, int T, int B, int H, void *acts, const void *w, long wk, long wn,
                    const void *bias, const void *b_loop, void *hs, void *cs, void *tcs, void *aux, int prescaled,
                    const void *x, const void *w_ih, int I, void *y, long y_t, long y_b, int direct, int threads) {
    LkScan s;
    FILL_COMMON(s);
    s.y = y; s.y_t = y_t; s.y_b = y_b;
    s.x = G == 3 ? NULL : x;          /* GRU keeps W_in x_t apart from W_hn h: it comes formed by the caller */
    s.w_ih = w_ih;
    s.I = I;
    s.prescaled = prescaled;
    s.acts = acts; s.w = w; s.wk = wk; s.wn = wn; s.bias = bias; s.b_loop = b_loop;
    s.hs = hs; s.cs = cs; s.tcs = tcs; s.aux = aux;
    int used = lk_pool_run(pick(JOB_FORWARD, f64), &s, threads);
    return s.failed ? -1 : used;
}

/* Backward scan. dxp, dhp (T, B, G·H) receive the gradients of the x- and h-side pre-activations (the
 * same array for LSTM and Elman); dh0, dc0 (B, H) those of the initial state; db_x, db_h (G·H,) their sums
 * over steps and batch (the gradients of b_ih and b_hh); last (B,) and dh_n, dc_n (B, H): where and what
 * final-state gradient enters; dhs's row (t, b) is at dhs + t·dhs_t + b·dhs_b, dx's at dx + t·dx_t + b·dx_b
 * (any layout of steps and batch rows, each row contiguous). With W_ih (G·H, I) and dx given, dx_t = dxp_t · W_ih
 * is formed here each step too, with the recurrent product. With ``direct``, each thread sums its own rows' shares
 * of those products and the threads add up each other's shares after the step's barrier (small batches: no
 * packing). */
int lk_scan_backward(int f64, int G, int act, int T, int B, int H, const void *acts, const void *hs, const void *cs,
                     const void *tcs, const void *aux, const void *w_hh, const void *dhs, const int *last,
                     const void *dh_n, const void *dc_n, void *dxp, void *dhp, void *dh0, void *dc0, void *db_x,
                     void *db_h, const void *w_ih, int I, void *dx, long dhs_t, long dhs_b, long dx_t, long dx_b,
                     int direct, int threads) {
    LkScan s;
    FILL_COMMON(s);
    s.dhs_t = dhs_t; s.dhs_b = dhs_b; s.dx_t = dx_t; s.dx_b = dx_b;
    s.acts = (void *)acts; s.hs = (void *)hs; s.cs = (void *)cs; s.tcs = (void *)tcs; s.aux = (void *)aux;
    s.w_hh = w_hh; s.dhs = dhs; s.last = last; s.dh_n = dh_n; s.dc_n = dc_n;
    s.dxp = dxp; s.dhp = dhp; s.dh0 = dh0; s.dc0 = dc0; s.db_x = db_x; s.db_h = db_h;
    s.w_ih = w_ih; s.I = I; s.dx = dx;
    int used = lk_pool_run(pick(JOB_BACKWARD, f64), &s, threads);
    return s.failed ? -1 : used;
}

/* Weight gradients over all steps: c[q] (M, n[q]) += a[q]ᵀ · b[q] with a[q] (K, M) and b[q] (K, n[q]), rows lda,
 * ldb, ldc apart, for q < nprod (1 or 2; the two products share the packing of a when a[0] == a[1]).
 * Returns the threads used, or -1 when out of memory. */
int lk_weight_grads(int f64, int M, int K, int nprod, const void *a0, long lda0, const void *b0, long ldb0, int n0,
                    void *c0, long ldc0, const void *a1, long lda1, const void *b1, long ldb1, int n1, void *c1,
                    long ldc1, int threads) {
    LkGrad g;
    memset(&g, 0, sizeof(g));
    g.M = M; g.K = K; g.nprod = nprod;
    g.a[0] = a0; g.lda[0] = lda0; g.b[0] = b0; g.ldb[0] = ldb0; g.N[0] = n0; g.c[0] = c0; g.ldc[0] = ldc0;
    g.a[1] = a1; g.lda[1] = lda1; g.b[1] = b1; g.ldb[1] = ldb1; g.N[1] = nprod > 1 ? n1 : 0; g.c[1] = c1;
    g.ldc[1] = ldc1;
    int used = lk_pool_run(pick(JOB_WGRAD, f64), &g, threads);
    return g.failed ? -1 : used;
}
