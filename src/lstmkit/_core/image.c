/* Max pooling over NHWC images (pool.py states it): each output the maximum of its kh × kw window, padding never
 * winning, a tie going to the window's first tap in row-major order (PyTorch's rule; a NaN wins, as there). The
 * forward keeps each output's winning position h·W + w; the backward sends dy there. Threads split the images.
 * Memory-bound: one build, no SIMD paths. */
#include <string.h>

#include "core.h"

#define MAXPOOL(REAL, IT, SUFFIX)                                                                                 \
    static void maxpool_forward_##SUFFIX(void *arg, int tid, int n) {                                             \
        const LkPool *s = (const LkPool *)arg;                                                                    \
        const int C = s->C;                                                                                       \
        IT win_tap[C];                                  /* REAL-sized, so that the loop over c vectorizes */      \
        for (long img = (long)s->N * tid / n; img < (long)s->N * (tid + 1) / n; img++) {                          \
            const REAL *x = (const REAL *)s->x + img * s->H * s->W * C;                                           \
            REAL *y = (REAL *)s->y + img * s->Ho * s->Wo * C;                                                     \
            unsigned char *arg = s->arg + img * s->Ho * s->Wo * C;                                                \
            for (int u = 0; u < s->Ho; u++)                                                                       \
                for (int v = 0; v < s->Wo; v++) {                                                                 \
                    REAL *restrict yo = y + ((long)u * s->Wo + v) * C;                                            \
                    unsigned char *restrict ao = arg + ((long)u * s->Wo + v) * C;                                 \
                    int first = 1;                                                                                \
                    for (int i = 0; i < s->kh; i++) {                                                             \
                        const int h = u * s->sh - s->ph + i;                                                      \
                        if (h < 0 || h >= s->H) continue;                                                         \
                        for (int j = 0; j < s->kw; j++) {                                                         \
                            const int w = v * s->sw - s->pw + j, at = i * s->kw + j;                              \
                            if (w < 0 || w >= s->W) continue;                                                     \
                            const REAL *restrict xi = x + ((long)h * s->W + w) * C;                               \
                            if (first) {                                                                          \
                                for (int c = 0; c < C; c++) { yo[c] = xi[c]; win_tap[c] = at; }                   \
                                first = 0;                                                                        \
                                continue;                                                                         \
                            }                                                                                     \
                            for (int c = 0; c < C; c++) {                                                         \
                                const int win = xi[c] > yo[c] || xi[c] != xi[c];                                  \
                                yo[c] = win ? xi[c] : yo[c];                                                      \
                                win_tap[c] = win ? (IT)at : win_tap[c];                                           \
                            }                                                                                     \
                        }                                                                                         \
                    }                                                                                             \
                    for (int c = 0; c < C; c++) ao[c] = (unsigned char)win_tap[c];                                \
                }                                                                                                 \
        }                                                                                                         \
    }                                                                                                             \
    static void maxpool_backward_##SUFFIX(void *arg, int tid, int n) {                                            \
        const LkPool *s = (const LkPool *)arg;                                                                    \
        const int C = s->C;                                                                                       \
        const long outs = (long)s->Ho * s->Wo;                                                                    \
        long at[256];                                   /* tap i·kw + j's offset from its window's corner */      \
        for (int i = 0; i < s->kh; i++)                                                                           \
            for (int j = 0; j < s->kw; j++) at[i * s->kw + j] = ((long)i * s->W + j) * C;                        \
        for (long img = (long)s->N * tid / n; img < (long)s->N * (tid + 1) / n; img++) {                          \
            REAL *dx = (REAL *)s->dx + img * s->H * s->W * C;                                                     \
            const REAL *dy = (const REAL *)s->dy + img * outs * C;                                                \
            const unsigned char *arg = s->arg + img * outs * C;                                                   \
            memset(dx, 0, sizeof(REAL) * (size_t)s->H * s->W * C);                                                \
            for (int u = 0; u < s->Ho; u++)                                                                       \
                for (int v = 0; v < s->Wo; v++) {                                                                 \
                    const long o = (long)u * s->Wo + v;                                                           \
                    REAL *corner = dx + (((long)u * s->sh - s->ph) * s->W + (long)v * s->sw - s->pw) * C;        \
                    for (int c = 0; c < C; c++) corner[at[arg[o * C + c]] + c] += dy[o * C + c];                 \
                }                                                                                                 \
        }                                                                                                         \
    }

MAXPOOL(float, int, f32)
MAXPOOL(double, long long, f64)

/* Max pooling forward (LkPool, core.h). Returns the threads used. */
int lk_maxpool_forward(LkPool *s) {
    return lk_pool_run(s->f64 ? maxpool_forward_f64 : maxpool_forward_f32, s, s->threads);
}

/* Max pooling backward (LkPool, core.h): dx zeroed, then dy added at each window's winner. */
int lk_maxpool_backward(LkPool *s) {
    return lk_pool_run(s->f64 ? maxpool_backward_f64 : maxpool_backward_f32, s, s->threads);
}
