/* The optimizers' element-wise updates (core.h's LkAdam): one pass over θ, g, m and v where NumPy makes a dozen.
 * Memory-bound: one build, no SIMD paths; no fused multiply-add (the x86-64 baseline has none), so each operation
 * rounds as NumPy's does and float32 results equal optim.py's bit for bit. The caller's threads split the
 * parameters (optim.Optimizer.step), so this runs on the thread that calls it. */
#include <math.h>

#include "core.h"

#define ADAM(REAL, SQRT, SUFFIX)                                                                                  \
    static void adam_##SUFFIX(const LkAdam *s) {                                                                  \
        REAL *restrict p = (REAL *)s->p, *restrict m = (REAL *)s->m, *restrict v = (REAL *)s->v;                  \
        REAL *restrict vmax = (REAL *)s->vmax;                                                                    \
        const REAL *restrict g = (const REAL *)s->g;                                                              \
        const REAL decay = (REAL)s->decay, l2 = (REAL)s->l2, b1 = (REAL)s->b1, c1 = (REAL)(1 - s->b1);            \
        const REAL b2 = (REAL)s->b2, c2 = (REAL)(1 - s->b2), eps = (REAL)s->eps;                                  \
        const REAL step = (REAL)s->step_size, bc2 = (REAL)s->bc2_sqrt;                                            \
        for (long i = 0; i < s->n; i++) {                                                                         \
            REAL th = p[i];                                                                                       \
            if (s->decay != 1) th = th * decay;                                                                   \
            REAL gi = g[i];                                                                                       \
            if (s->l2 != 0) gi = gi + l2 * th;                                                                    \
            const REAL mi = m[i] * b1 + gi * c1;                                                                  \
            REAL vi = v[i] * b2 + (gi * gi) * c2;                                                                 \
            m[i] = mi;                                                                                            \
            v[i] = vi;                                                                                            \
            if (vmax) {                                                                                           \
                const REAL x = vmax[i];                                                                           \
                vi = (x != x || x >= vi) ? x : vi;          /* np.maximum: a NaN wins */                          \
                vmax[i] = vi;                                                                                     \
            }                                                                                                     \
            const REAL denom = SQRT(vi) / bc2 + eps;                                                              \
            p[i] = th - (mi / denom) * step;                                                                      \
        }                                                                                                         \
    }

ADAM(float, sqrtf, f32)
ADAM(double, sqrt, f64)

/* One Adam / AdamW update (LkAdam, core.h). Returns 0. */
int lk_adam(LkAdam *s) {
    if (s->f64)
        adam_f64(s);
    else
        adam_f32(s);
    return 0;
}
