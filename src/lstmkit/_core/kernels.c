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

#include "core.h"

#define LK_KIND_INFO(id, name, gates, cell, split, extra) {#name, gates, cell, split, extra},
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

/* Forward scan (LkForward, core.h). Returns the threads used, -1 when out of memory, -2 for a kind not in
 * LK_KINDS. */
int lk_scan_forward(LkForward *s) {
    if (s->kind < 0 || s->kind >= LK_NKINDS) return -2;
    s->failed = 0;
    int used = lk_pool_run(pick(JOB_FORWARD, s->f64), s, s->threads);
    return s->failed ? -1 : used;
}

/* Backward scan (LkBackward, core.h). Returns the threads used, -1 when out of memory, -2 for a kind not in
 * LK_KINDS. */
int lk_scan_backward(LkBackward *s) {
    if (s->kind < 0 || s->kind >= LK_NKINDS) return -2;
    s->failed = 0;
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

/* sizeof each boundary struct (0 LkForward, 1 LkBackward, 2 LkGrad, 3 LkKindInfo, 4 LkCtcForward,
 * 5 LkCtcOccupancy): compiled.py checks its mirrors against them before it runs anything. */
long lk_struct_size(int which) {
    switch (which) {
    case 0: return (long)sizeof(LkForward);
    case 1: return (long)sizeof(LkBackward);
    case 2: return (long)sizeof(LkGrad);
    case 3: return (long)sizeof(LkKindInfo);
    case 4: return (long)sizeof(LkCtcForward);
    case 5: return (long)sizeof(LkCtcOccupancy);
    default: return -1;
    }
}
