/* CTC's scaled forward recursion (ctc.py states the maths): for every row r (a sample's α, or its β as
 * the α of the reversed problem) and step t, with the rows laid end to end, W = L + 2 columns each, the
 * first two zero:
 *
 *   pre_t(s) = α̂_{t−1}(s) + α̂_{t−1}(s−1) + skip(s)·α̂_{t−1}(s−2)      (the predecessors, before emission)
 *   α_t(s)   = pre_t(s) · y_t(s),   c_t = Σ_s α_t(s),   α̂_t = α_t / c_t
 *
 * Rows are independent, so threads split them and run every step with no barrier. float64 throughout.
 */
#include "core.h"

typedef struct {
    int T, R, W;
    double *A;              /* (T + 1, R·W): α̂ per step, A[0] set */
    double *pre;            /* (T, R·W) */
    const double *skip;     /* (R·W − 2,): skip[i] is the factor of flat position i + 2's s−2 predecessor */
    const double *emit;     /* (T, R, W) */
    double *scale;          /* (T, R) */
} Ctc;

static void ctc_job(void *arg, int tid, int n) {
    Ctc *c = (Ctc *)arg;
    const long RW = (long)c->R * c->W;
    int r0 = (int)((long)c->R * tid / n), r1 = (int)((long)c->R * (tid + 1) / n);
    for (int t = 0; t < c->T; t++) {
        const double *prev = c->A + (long)t * RW;
        double *cur = c->A + (long)(t + 1) * RW, *p = c->pre + (long)t * RW;
        const double *e = c->emit + (long)t * RW;
        for (int r = r0; r < r1; r++) {
            long o = (long)r * c->W;
            p[o] = p[o + 1] = 0.0;
            double sum = 0.0;
            for (long i = o + 2; i < o + c->W; i++) {
                p[i] = (prev[i] + prev[i - 1]) + prev[i - 2] * c->skip[i - 2];
                cur[i] = p[i] * e[i];
                sum += cur[i];
            }
            cur[o] = p[o] * e[o];
            cur[o + 1] = p[o + 1] * e[o + 1];
            c->scale[(long)t * c->R + r] = sum;
            double inv = 1.0 / sum;
            for (long i = o; i < o + c->W; i++) cur[i] *= inv;
        }
    }
}

int lk_ctc_forward(int T, int R, int W, double *A, double *pre, const double *skip, const double *emit,
                   double *scale, int threads) {
    Ctc c = {T, R, W, A, pre, skip, emit, scale};
    if (threads > R) threads = R;
    return lk_pool_run(ctc_job, &c, threads);
}
