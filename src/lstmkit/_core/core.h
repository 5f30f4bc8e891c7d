/* lstmkit's compiled core: its boundary. Every entry point takes one struct, filled by field name from Python
 * (compiled.py mirrors each as a ctypes.Structure, field for field and in this order), and the cell kinds it runs
 * are named in one table. */
#ifndef LK_CORE_H
#define LK_CORE_H

#define LK_MAX_THREADS 64

/* ---- the cell kinds ---------------------------------------------------------------------------------------
 * One line each: X(id, name, gates, cell, split, extra rows, proj, whole, saved). The name is the one a Python
 * Kernel gives
 * (Kernel.compiled); gates: gate blocks in the weights; cell: 1 when the kind keeps a cell state c (the backward
 * carries dL/dc between steps), else that carry is a part of dL/dh_{t-1} the kind adds itself (GRU: dh ⊙ z);
 * split: 1 when the x- and h-side pre-activations enter apart (GRU's n gate: W_in x_t + r ⊙ (W_hn h + b_hn)), so
 * their gradients differ, b_hn stays inside the scan and W_ih x_t is kept apart from W_hh h; extra rows: the kind's
 * own per-unit parameters, (rows, H); proj: 1 when the state fed back and output is h_t = W_hr m_t, P units, where
 * m_t (H units) is what the kind's step writes as its h (the projected LSTM: m_t = o ⊙ tanh c_t) — the scan forms
 * the projection and its gradient; whole: 1 when the kind's step needs every unit of a row at once (a norm over
 * them): the scans then give each thread whole rows of the batch (q->n = H) instead of a slice of the units;
 * saved: rows of H the kind keeps per step for its backward beyond the gates and states, plus 4 numbers (the
 * ``saved`` array, (T, B, saved·H + 4)). Each kind has a forward and a backward in cells.h, FN(<name>_forward) and
 * FN(<name>_backward); a new kind is its two functions and one line here. */
#define LK_KINDS(X)                                                                                               \
    X(LK_LSTM, lstm, 4, 1, 0, 0, 0, 0, 0)                                                                         \
    X(LK_GRU, gru, 3, 0, 1, 0, 0, 0, 0)                                                                           \
    X(LK_RNN_TANH, rnn_tanh, 1, 0, 0, 0, 0, 0, 0)                                                                 \
    X(LK_RNN_RELU, rnn_relu, 1, 0, 0, 0, 0, 0, 0)                                                                 \
    X(LK_PEEPHOLE_LSTM, peephole_lstm, 4, 1, 0, 3, 0, 0, 0)                                                       \
    X(LK_PROJECTED_LSTM, projected_lstm, 4, 1, 0, 0, 1, 0, 0)                                                     \
    X(LK_LAYER_NORM_LSTM, layer_norm_lstm, 4, 1, 1, 10, 0, 1, 9)

#define LK_KIND_ID(id, name, gates, cell, split, extra, proj, whole, saved) id,
typedef enum { LK_KINDS(LK_KIND_ID) LK_NKINDS } LkKind;
#undef LK_KIND_ID

typedef struct { const char *name; int gates, cell, split, extra, proj, whole, saved; } LkKindInfo;

/* ---- lk_scan_forward ---------------------------------------------------------------------------------------
 * Pointers are to float or double as ``f64`` says; (t, b, ·) rows of the (T, B, ·) arrays are B·width apart. */
typedef struct {
    int kind, f64, T, B, H;
    int I;                            /* input width when x and w_ih are given, else 0 */
    int direct;                       /* small batches: matrix-vector steps over W_hh as it lies (w_hh_t a view) */
    int threads;
    void *gates;                      /* (T, B, G·H): W_ih x_t in (unless x is given), the gate activations out */
    const void *w_hh_t;               /* W_hh^T: element (k, row) at w_hh_t[k·wk + row·wn] */
    long wk, wn;
    const void *x, *w_ih;             /* optional: x and W_ih (G·H, I): W_ih x_t is formed here, x_t's row b read at
                                         x + t·x_t + b·x_b (a (B, T, I) input as it lies, or reversed in time) */
    long x_t, x_b;
    const void *bias;                 /* (G·H,): the biases the input projections lack (split kinds: b_ih, and b_hh
                                         but for the split gate's) */
    const void *b_loop;               /* split kinds: the split gate's h-side bias (H,) (GRU's b_hn), or NULL */
    const void *extra;                /* the kind's own parameters (extra rows, H), or NULL */
    void *hs, *cs;                    /* (T+1, B, H) with hs[0], cs[0] set: h_0..h_T, c_0..c_T (cell kinds); hs and
                                         y are (·, B, P) for proj kinds */
    void *tanh_cs;                    /* cell kinds: (T, B, H) tanh(c_t) */
    void *hproj;                      /* split kinds: (T, B, H) the split gate's h side, W_hn h + b_hn */
    void *y;                          /* optional: a second copy of each h_t, at y + t·y_t + b·y_b */
    long y_t, y_b;
    int P;                            /* proj kinds: units of h (W_hh^T is (P, G·H)); else unread */
    const void *w_hr;                 /* proj kinds: W_hr (P, H), row-major */
    void *ms;                         /* proj kinds: (T, B, H) m_t, which h_t projects */
    void *saved;                      /* kinds that save rows: (T, B, saved·H + 4), their record for the backward */
    const void *rmask;                /* optional (B, P): recurrent dropout's mask on h_{t-1} where it enters W_hh */
    void *h_raw, *c_raw;              /* zoneout (not proj kinds): (T, B, H) the step's own h̃_t, c̃_t (cell kinds), kept
                                         for the backward; then hs, cs hold h_t = d ⊙ h_{t-1} + (1 − d) ⊙ h̃_t, ... */
    const void *zh, *zc;              /* zoneout: (T, B, H) each step's d for h, for c; or NULL: d = zh_p, zc_p */
    double zh_p, zc_p;
    int by_rows;                      /* 1: each thread takes whole rows of the batch and every unit (its rows' steps
                                         need no other thread's: no barrier a step) instead of a slice of the units;
                                         always for whole kinds, never for proj kinds */
    int failed;                       /* out: set when a thread could not get memory */
} LkForward;

/* ---- lk_scan_backward ------------------------------------------------------------------------------------ */
typedef struct {
    int kind, f64, T, B, H;
    int I;                            /* input width when w_ih and dx are given, else 0 */
    int direct;                       /* small batches: matrix-vector steps over W_hh as it lies */
    int threads;
    const void *gates, *hs, *cs, *tanh_cs, *hproj;   /* what the forward kept */
    const void *w_hh;                 /* (G·H, H), row-major */
    const void *w_ih;                 /* optional: (G·H, I), row-major, with dx */
    const void *extra;                /* the kind's own parameters (extra rows, H), or NULL */
    const void *dhs;                  /* the outputs' gradient: row (t, b) at dhs + t·dhs_t + b·dhs_b */
    long dhs_t, dhs_b;
    const int *last;                  /* (B,): the step at which each sequence's final-state gradient enters */
    const void *dh_n, *dc_n;          /* (B, H) those gradients (dc_n: cell kinds) */
    void *dpre_x, *dpre_h;            /* out (T, B, G·H): gradients of the x- and h-side pre-activations (one
                                         array unless the kind is split) */
    void *dh0, *dc0;                  /* out (B, H): the initial state's gradients (dc0: cell kinds) */
    void *db_x, *db_h;                /* out (G·H,): Σ over steps and batch of dpre_x and of dpre_h */
    void *d_extra;                    /* out (extra rows, H): the gradient of ``extra`` */
    void *dx;                         /* optional out: row (t, b) at dx + t·dx_t + b·dx_b receives dpre_x,t · W_ih */
    long dx_t, dx_b;
    int P;                            /* proj kinds: units of h: hs, dhs, dh_n, dh0 are P wide, W_hh (G·H, P) */
    const void *w_hr, *ms;            /* proj kinds: W_hr (P, H) row-major; the forward's m_t (T, B, H) */
    void *dh_all;                     /* proj kinds, out (T, B, P): all of dL/dh_t (W_hr's gradient is Σ dh_tᵀ m_t) */
    const void *saved;                /* kinds that save rows: what the forward saved */
    const void *rmask;                /* optional (B, P): the forward's recurrent-dropout mask */
    const void *h_raw, *c_raw;        /* zoneout: the forward's (its hs, cs are the zoned states) */
    const void *zh, *zc;
    double zh_p, zc_p;
    int by_rows;                      /* as LkForward's */
    int failed;                       /* out: set when a thread could not get memory */
    void *shares[LK_MAX_THREADS];     /* scratch: each thread's partial sums of the small-batch steps */
} LkBackward;

/* ---- lk_weight_grads: C[q] += A[q]ᵀ · B[q] for q < nprod (wgrad.h) ------------------------------------------ */
typedef struct {
    int f64, M, K, nprod;             /* rows of every C (G·H); steps × batch; products (1 or 2) */
    int threads;
    const void *a[2];                 /* (K, M), rows lda apart: the pre-activation gradients */
    const void *b[2];                 /* (K, N[q]): the inputs, the states; row k at b + (k / per)·ldb_t + (k % per)·ldb
                                         (steps of per batch rows, e.g. a (B, T, I) input seen time-major) */
    void *c[2];                       /* (M, N[q]), rows ldc apart: the gradients, added to */
    long lda[2], ldb[2], ldc[2];
    long ldb_t[2], per[2];
    int N[2];
    int failed;
} LkGrad;

/* ---- lk_conv_forward, lk_conv_wgrad, lk_conv_input_grad: convolutions and dense products (conv.h) ----------
 * x (N, H, W, C) and y / dy (N, Ho, Wo, O), NHWC and contiguous; taps k = (i, j, c) of a kh × kw kernel, K of them.
 * Forward: y = conv(x, w) + bias, then max(·, 0) with relu. Weight gradient: dw (K [+ 1], O) += Σ over pixels of
 * each tap's input times dy, the last row Σ dy when bias is given (its value is not read). Input gradient: y
 * (N, H, W, C) = dx, from dy and w (x is not read). A dense layer is H = W = kh = kw = 1. */
typedef struct {
    int f64, N, H, W, C, O, Ho, Wo, kh, kw, sh, sw, dil_h, dil_w;
    int pt, pl, Hp, Wp;               /* zeros above and left; an image's padded size (H + pt + zeros below, ...) */
    int relu;
    int threads;
    const void *x;
    const void *w;                    /* forward, input gradient: element (k, o) at w[k·wk + o·wo] */
    long wk, wo;
    const void *bias;                 /* (O,) or NULL */
    void *y;                          /* forward out */
    const void *dy;                   /* weight gradient in */
    void *dw;                         /* weight gradient out, added to */
    void *packed;                     /* scratch: the packed weights (allocated by the entry point) */
    void *parts[LK_MAX_THREADS];      /* scratch: each thread's weight-gradient sums (made by lk_conv_wgrad) */
    int failed;
} LkConv;

/* ---- lk_maxpool_forward / lk_maxpool_backward (image.c) ---------------------------------------------------
 * x (N, H, W, C) -> y (N, Ho, Wo, C), the max over each kh × kw window (padding never wins; a tie goes to the
 * first tap in row-major order, as PyTorch's); arg (N, Ho, Wo, C) the winning tap i·kw + j (kh·kw ≤ 256).
 * Backward: dx (N, H, W, C), zeroed here, receives dy at each window's winner. */
typedef struct {
    int f64, N, H, W, C, Ho, Wo, kh, kw, sh, sw, ph, pw;
    int threads;
    const void *x;
    void *y;
    unsigned char *arg;
    const void *dy;
    void *dx;
} LkPool;

/* ---- lk_ctc_forward: CTC's scaled recursion over R rows (ctc.c), float64 ------------------------------------ */
typedef struct {
    int T, R, W;
    int threads;
    double *A;                        /* (T + 1, R·W): α̂ per step, A[0] set */
    double *pre;                      /* (T, R·W) */
    const double *skip;               /* (R·W − 2,): skip[i] is the factor of flat position i + 2's s−2 predecessor */
    const double *emit;               /* (T, R, W) */
    double *scale;                    /* (T, R) */
} LkCtcForward;

/* ---- lk_ctc_occupancy: the occupancy CTC's gradient needs (ctc.c), float64 --------------------------------- */
typedef struct {
    int T, B, W, C;
    int threads;
    const double *A, *pre, *log_scale;   /* (T+1, 2B, W), (T, 2B, W), (T, 2B) */
    const long *Tl, *Ll, *ext;           /* (B,), (B,), (B, W − 2) */
    const double *logP;                  /* (B,) */
    const unsigned char *feasible;       /* (B,) */
    double *occ;                         /* (B, T, C), zeroed here */
} LkCtcOccupancy;

/* ---- lk_adam: one Adam / AdamW update of n elements in place (optim.c) -------------------------------------
 * optim.py's _adam_update, operation for operation and in its order, each rounded to the precision: θ ·= decay
 * (AdamW's 1 − lr·λ, else 1); g' = g + l2·θ (Adam's λ, else 0: g as it is); m = β1·m + (1 − β1)·g';
 * v = β2·v + (1 − β2)·g'²; with vmax (amsgrad) vmax = max(vmax, v), read in v's place;
 * θ −= step_size · m / (sqrt(v) / bc2_sqrt + eps). One pass over memory instead of a dozen. Returns 0. */
typedef struct {
    int f64;
    long n;
    void *p;
    const void *g;
    void *m, *v, *vmax;               /* vmax NULL without amsgrad */
    double decay, l2, b1, b2, eps, step_size, bc2_sqrt;
} LkAdam;

/* ---- the thread pool (pool.c) ----------------------------------------------------------------------------- */
typedef void (*lk_job_fn)(void *arg, int tid, int nthreads);

/* Run fn(arg, tid, n) on n threads (the caller is tid 0); returns the number of threads used. */
int lk_pool_run(lk_job_fn fn, void *arg, int n);
/* All n threads of the running job wait here until each has arrived. */
void lk_barrier(int n);
/* The round trip of a cache line between the pool's first two CPUs, in ns (-1 with one thread). */
double lk_round_trip_ns(long rounds);

#endif
