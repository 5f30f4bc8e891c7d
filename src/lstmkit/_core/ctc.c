/* CTC's scaled forward recursion (ctc.py states the maths): for every row r (a sample's α, or its β as
 * the α of the reversed problem) and step t, with the rows laid end to end, W = L + 2 columns each, the
 * first two zero:
 *
 *   pre_t(s) = α̂_{t−1}(s) + α̂_{t−1}(s−1) + skip(s)·α̂_{t−1}(s−2)      (the predecessors, before emission)
 *   α_t(s)   = pre_t(s) · y_t(s),   c_t = Σ_s α_t(s),   α̂_t = α_t / c_t
 *
 * Rows are independent, so threads split them and run every step with no barrier. float64 throughout.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static void ctc_job(void *arg, int tid, int n) {
    const LkCtcForward *c = (const LkCtcForward *)arg;
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

/* The recursion (LkCtcForward, core.h). Returns the threads used. */
int lk_ctc_forward(LkCtcForward *c) {
    return lk_pool_run(ctc_job, c, c->threads > c->R ? c->R : c->threads);
}

/* The occupancy the gradient needs: occ[b, t, k] = Σ_{s: l'_s = k} α_t(s) β_t(s) / (y_t(l'_s) p) for t below the
 * sample's input length T_b and feasible samples (else 0). α_t(s)/y_t(s) = pre_t(s) · Π_{τ<t} c_τ; β_t(s) is
 * the reversed problem's α̂ at (T_b − 1 − t, L_b − 1 − s) times the product of its scales up to that step. */
static void occ_job(void *arg, int tid, int n) {
    const LkCtcOccupancy *o = (const LkCtcOccupancy *)arg;
    const int T = o->T, B = o->B, W = o->W, C = o->C, L = W - 2;
    const long R = 2L * B;
    int b0 = (int)((long)B * tid / n), b1 = (int)((long)B * (tid + 1) / n);
    double *after = malloc(sizeof(double) * (size_t)(T > 0 ? T : 1));
    for (int b = b0; b < b1; b++) {
        double *out = o->occ + (long)b * T * C;
        memset(out, 0, sizeof(double) * (size_t)T * C);
        int Tb = (int)o->Tl[b], Lb = (int)o->Ll[b];
        if (!o->feasible[b] || Tb <= 0 || !after) continue;
        double acc = 0.0;                                 /* Σ_{τ≤u} log c'_τ of the reversed row */
        for (int u = 0; u < T; u++) {
            acc += o->log_scale[(long)u * R + B + b];
            after[u] = acc;
        }
        double before = 0.0;                              /* Σ_{τ<t} log c_τ */
        const long *ext = o->ext + (long)b * L;
        for (int t = 0; t < Tb; t++) {
            int u = Tb - 1 - t;
            double f = exp(before + after[u] - o->logP[b]);
            const double *pre = o->pre + ((long)t * R + b) * W + 2;
            const double *beta = o->A + ((long)(u + 1) * R + B + b) * W + 2;
            double *row = out + (long)t * C;
            for (int s = 0; s < Lb; s++) row[ext[s]] += pre[s] * beta[Lb - 1 - s] * f;
            before += o->log_scale[(long)t * R + b];
        }
    }
    free(after);
}

/* The occupancy (LkCtcOccupancy, core.h). Returns the threads used. */
int lk_ctc_occupancy(LkCtcOccupancy *o) {
    return lk_pool_run(occ_job, o, o->threads > o->B ? o->B : o->threads);
}
