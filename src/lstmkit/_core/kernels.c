/* lstmkit's compiled recurrent core: the scans of every cell kind of core.h, forward and backward, and the weight
 * gradients over all steps.
 *
 * Each step of a scan is one product with the recurrent weights W_hh (and, for kinds whose x- and h-side
 * pre-activations add, with W_ih: the input projection is formed here too), then the kind's equations on this
 * thread's units (cells.h; docs/design.md states them), on a pool of threads that each own a slice of the hidden
 * units. The backward runs the steps in reverse, leaving every pre-activation's gradient, the input's gradient
 * and the bias sums; lk_weight_grads then adds the weight gradients (wgrad.h). The frame in Python
 * (layers/rnn_base.py through compiled.py) stacks layers and directions, and handles lengths and dropout.
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
#include <time.h>

#include "core.h"

#define LK_KIND_INFO(id, name, gates, cell, split, extra, proj, whole, saved)                                   \
    {#name, gates, cell, split, extra, proj, whole, saved},
static const LkKindInfo lk_kinds[LK_NKINDS] = {LK_KINDS(LK_KIND_INFO)};
#undef LK_KIND_INFO

/* The kinds by name, for compiled.py: kind k's table line (NULL past the last). */
const LkKindInfo *lk_kind(int k) { return k >= 0 && k < LK_NKINDS ? &lk_kinds[k] : NULL; }

#if defined(__x86_64__) && defined(__GNUC__)
#define LK_X86 1
#include <immintrin.h>                  /* the streaming stores of vec.h */
static inline void fence(void) { _mm_sfence(); }    /* streamed stores reach memory before what follows */
#else
#define LK_X86 0
static inline void fence(void) {}
#endif

/* bfloat16 products (bf16.h) asked for and possible: set by lk_set_bf16, read by the float32 AVX-512 build (when the
 * compiler knows AVX512-BF16: GCC 10, clang 9 and later). */
static int lk_bf16 = 0;
#ifndef LK_CAN_BF16
#if LK_X86 && (defined(__clang__) || __GNUC__ >= 10)
#define LK_CAN_BF16 1
#else
#define LK_CAN_BF16 0
#endif
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

/* Whether this build and CPU can run bfloat16 products (AVX512-BF16, the AVX-512 path's CPU). */
int lk_bf16_possible(void) {
#if LK_CAN_BF16
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && best_simd() == SIMD_AVX512;
#else
    return 0;
#endif
}

/* Ask for (1) or stop (0) bfloat16 products in the scans and weight gradients; returns whether they now run:
 * only on a CPU with AVX512-BF16, on the AVX-512 path, in float32. */
int lk_set_bf16(int on) {
    lk_bf16 = on && lk_bf16_possible();
    return lk_bf16 && lk_simd() == SIMD_AVX512;
}

typedef void (*job)(void *, int, int);

enum { JOB_FORWARD = 0, JOB_BACKWARD = 1, JOB_WGRAD = 2, JOB_CONV = 3, JOB_CONV_WGRAD = 4, JOB_CONV_INPUT = 5, NJOBS };

#define JOBS(isa) {{forward_job_##isa##_f32, forward_job_##isa##_f64},                                          \
                   {backward_job_##isa##_f32, backward_job_##isa##_f64},                                        \
                   {wgrad_job_##isa##_f32, wgrad_job_##isa##_f64},                                              \
                   {conv_forward_job_##isa##_f32, conv_forward_job_##isa##_f64},                                \
                   {conv_wgrad_job_##isa##_f32, conv_wgrad_job_##isa##_f64},                                    \
                   {conv_input_grad_job_##isa##_f32, conv_input_grad_job_##isa##_f64}}

static job pick(int which, int f64) {
    static const job generic[NJOBS][2] = JOBS(generic);
#if LK_X86
    static const job avx2[NJOBS][2] = JOBS(avx2), avx512[NJOBS][2] = JOBS(avx512);
    int level = lk_simd();
    if (level == SIMD_AVX512) return avx512[which][f64];
    if (level == SIMD_AVX2) return avx2[which][f64];
#endif
    return generic[which][f64];
}

/* How a scan of ``kind`` shares its work, from what the caller asked: whole kinds always by rows, proj kinds never;
 * by rows or projected, no matrix-vector steps (their products are their own). */
static void plan(int kind, int *by_rows, int *direct) {
    *by_rows = lk_kinds[kind].whole || (*by_rows && !lk_kinds[kind].proj);
    if (lk_kinds[kind].proj || *by_rows) *direct = 0;
}

/* Forward scan (LkForward, core.h). Returns the threads used, -1 when out of memory, -2 for a kind not in
 * LK_KINDS. */
int lk_scan_forward(LkForward *s) {
    if (s->kind < 0 || s->kind >= LK_NKINDS) return -2;
    s->failed = 0;
    plan(s->kind, &s->by_rows, &s->direct);
    int used = lk_pool_run(pick(JOB_FORWARD, s->f64), s, s->threads);
    return s->failed ? -1 : used;
}

/* Backward scan (LkBackward, core.h). Returns the threads used, -1 when out of memory, -2 for a kind not in
 * LK_KINDS. */
int lk_scan_backward(LkBackward *s) {
    if (s->kind < 0 || s->kind >= LK_NKINDS) return -2;
    s->failed = 0;
    plan(s->kind, &s->by_rows, &s->direct);
    int used = lk_pool_run(pick(JOB_BACKWARD, s->f64), s, s->threads);
    return s->failed ? -1 : used;
}

/* Weight gradients over all steps (LkGrad, core.h; the two products share the packing of a when a[0] == a[1]).
 * Returns the threads used, or -1 when out of memory. */
int lk_weight_grads(LkGrad *g) {
    if (g->nprod < 2) g->N[1] = 0;
    g->failed = 0;
    int used = lk_pool_run(pick(JOB_WGRAD, g->f64), g, g->threads);
    return g->failed ? -1 : used;
}

/* A K × O matrix's packed size in elements: O rounded up to the panel width of the SIMD path in use. */
static long packed_size(long K, long O, int f64) {
    const int nr = (f64 ? 4 : 8) << lk_simd();         /* NR: two vectors of 16, 32 or 64 bytes */
    return K * ((O + nr - 1) / nr * nr);
}

/* Run a convolution job with packed-weight scratch of a K × O matrix (the job's thread 0 packs it). */
static int conv_run(LkConv *s, int which, long K, long O) {
    s->failed = 0;
    void *packed = NULL;                               /* aligned: the micro-kernel loads whole vectors */
    if (posix_memalign(&packed, 64, (size_t)packed_size(K, O, s->f64) * (s->f64 ? 8 : 4) + 64) != 0) return -1;
    s->packed = packed;
    int used = lk_pool_run(pick(which, s->f64), s, s->threads);
    free(packed);
    s->packed = NULL;
    return s->failed ? -1 : used;
}

/* Convolution or dense product forward (LkConv, core.h): threads take tiles of pixels. Returns the threads used,
 * or -1 when out of memory. */
int lk_conv_forward(LkConv *s) { return conv_run(s, JOB_CONV, (long)s->kh * s->kw * s->C, s->O); }

/* Convolution input gradient by scattering (LkConv, core.h): dy in, dx out in y. Returns the threads used, or -1
 * when out of memory. */
int lk_conv_input_grad(LkConv *s) { return conv_run(s, JOB_CONV_INPUT, s->O, (long)s->kh * s->kw * s->C); }

/* Convolution or dense weight gradient (LkConv, core.h). Returns the threads used, or -1 when out of memory. */
int lk_conv_wgrad(LkConv *s) {
    s->failed = 0;
    const int n = s->threads < 1 ? 1 : (s->threads > LK_MAX_THREADS ? LK_MAX_THREADS : s->threads);
    const size_t bytes = (size_t)(s->kh * s->kw * s->C + 1) * s->O * (s->f64 ? 8 : 4);
    int ok = 1;
    for (int t = 0; t < LK_MAX_THREADS; t++) s->parts[t] = NULL;
    for (int t = 0; t < n && ok; t++) ok = (s->parts[t] = malloc(bytes)) != NULL;
    int used = ok ? lk_pool_run(pick(JOB_CONV_WGRAD, s->f64), s, n) : -1;
    for (int t = 0; t < n; t++) {
        free(s->parts[t]);
        s->parts[t] = NULL;
    }
    return !ok || s->failed ? -1 : used;
}

/* The FMA peak of one core on the SIMD path in use, in float32 GFLOP/s: twelve chains of FMAs timed for about
 * ``seconds`` on the calling thread (the benchmarks print it beside their tables: the floor under any product). */
double lk_fma_peak(double seconds) {
    long n = 1 << 16;
    double t = 0, sink = 0;
    for (;;) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        switch (lk_simd()) {
#if LK_X86
        case SIMD_AVX512: sink += fma_chains_avx512_f32(n); break;
        case SIMD_AVX2: sink += fma_chains_avx2_f32(n); break;
#endif
        default: sink += fma_chains_generic_f32(n);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        t = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (t >= seconds || n > (1L << 40)) break;
        n *= 2;
    }
    const int lanes = 4 << lk_simd();                  /* float32 lanes: 4, 8, 16 */
    return sink == sink ? 2.0 * 12 * lanes * (double)n / t / 1e9 : 0;   /* (the sum is finite; read, not used) */
}

/* sizeof each boundary struct (0 LkForward, 1 LkBackward, 2 LkGrad, 3 LkKindInfo, 4 LkCtcForward,
 * 5 LkCtcOccupancy, 6 LkConv, 7 LkPool, 8 LkAdam): compiled.py checks its mirrors against them before it runs anything. */
long lk_struct_size(int which) {
    switch (which) {
    case 0: return (long)sizeof(LkForward);
    case 1: return (long)sizeof(LkBackward);
    case 2: return (long)sizeof(LkGrad);
    case 3: return (long)sizeof(LkKindInfo);
    case 4: return (long)sizeof(LkCtcForward);
    case 5: return (long)sizeof(LkCtcOccupancy);
    case 6: return (long)sizeof(LkConv);
    case 7: return (long)sizeof(LkPool);
    case 8: return (long)sizeof(LkAdam);
    default: return -1;
    }
}
