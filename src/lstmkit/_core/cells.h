/* The cell kinds (included by body.h): for each kind of core.h's LK_KINDS, one step of its equations forward and
 * one back, over one row (step t, sequence b) of this thread's units. The equations are those of
 * layers/steps.py (stated once in docs/design.md); the products with the weights are the scan's (scan.h), so a
 * kind sees its pre-activations' products already formed. */

/* What a kind's forward reads and writes for one row: this thread's n units, starting at unit u0 of H. */
typedef struct {
    int n, H;
    int x_in;                /* 1: gates holds W_ih x_t (else the product already has it) */
    REAL *gates;             /* + u0; gate block k at gates + k·H: the pre-activations' x side in, activations out */
    const REAL *prod;        /* this thread's product row: block k's W_hh h (+ W_ih x_t) at prod + k·n */
    const REAL *prod_x;      /* split kinds given x: W_ih x_t kept apart (block k at prod_x + k·n), else NULL */
    const REAL *bias;        /* + u0, blocks H apart: the biases the pre-activations still lack */
    const REAL *b_loop;      /* + u0: split kinds' h-side bias of the split gate (GRU's b_hn), or NULL */
    const REAL *extra;       /* + u0, rows H apart: the kind's own parameters, or NULL */
    const REAL *h_prev, *c_prev;
    REAL *h, *c, *tanh_c;    /* h_t, c_t, tanh(c_t) */
    REAL *hproj;             /* split kinds: the split gate's h side, kept for the backward */
    REAL *y;                 /* a second copy of h_t, or NULL */
    REAL *saved;             /* kinds that save rows (core.h): this row's record for the backward, else NULL */
} FN(FwdRow);

/* What a kind's backward reads and writes for one row (pointers + u0 as above). */
typedef struct {
    int n, H;
    const REAL *gates, *h_prev, *h, *c_prev, *c, *tanh_c, *hproj, *extra, *saved;
    const REAL *dh_out;      /* dL/dh_t from the outputs */
    const REAL *dh_rec;      /* dL/dh_t from step t + 1 (through W_hh, and the carry of kinds without a cell) */
    REAL *carry;             /* cell kinds: dL/dc_t in, dL/dc_{t-1} out; others: the part of dL/dh_{t-1} that
                                bypasses W_hh (GRU: dh ⊙ z), out */
    REAL *dpre_x, *dpre_h;   /* out: the gradients of the x- and h-side pre-activations, blocks H apart */
    REAL *db_x, *db_h;       /* this thread's running sums of dpre_x and dpre_h over steps and batch */
    REAL *d_extra;           /* this thread's running sums of the gradient of ``extra`` (rows H apart) */
} FN(BwdRow);

/* Pre-activation of gate block k at units [j, j + m): the x side (when given), the bias, the product. */
static inline V FN(pre)(const FN(FwdRow) *q, int k, int j, int m) {
    V b = FN(loadn)(q->bias + k * q->H + j, m);
    return (q->x_in ? FN(loadn)(q->gates + k * q->H + j, m) + b : b) + FN(loadn)(q->prod + k * q->n + j, m);
}

/* Split kinds: gate block k's x side W_ih x_t, formed by the scan (prod_x) or by the caller (in gates). */
static inline V FN(x_side)(const FN(FwdRow) *q, int k, int j, int m) {
    return q->prod_x ? FN(loadn)(q->prod_x + k * q->n + j, m) : FN(loadn)(q->gates + k * q->H + j, m);
}

static inline void FN(put_h)(const FN(FwdRow) *q, int j, int m, V h) {
    FN(storen)(q->h + j, h, m);
    if (q->y) FN(storen)(q->y + j, h, m);
}

/* Gate block k's activation, streamed past the caches: only the backward reads it, long after. */
static inline void FN(put_gate)(const FN(FwdRow) *q, int k, int j, int m, V v) {
    FN(stream)(q->gates + k * q->H + j, v, m);
}

static inline void FN(acc)(REAL *sum, int j, int m, V v) { FN(storen)(sum + j, FN(loadn)(sum + j, m) + v, m); }

/* dL/dp of gate block k into the x side's gradient and its bias sum (the h side's too, but for split kinds: for the
 * others dpre_h is the same array, and db_h is taken from db_x). */
static inline void FN(put_dpre)(const FN(BwdRow) *q, int k, int j, int m, V d) {
    FN(storen)(q->dpre_x + k * q->H + j, d, m);
    FN(acc)(q->db_x + k * q->H, j, m, d);
}

/* A helper of two kinds (LSTM / peephole LSTM, tanh / ReLU): inlined into each with its flag a constant, so neither
 * kind's loop tests the flag. */
#define ALWAYS_INLINE __attribute__((always_inline))

#define LANES(q) for (int j = 0, m; m = (q)->n - j < VL ? (q)->n - j : VL, j < (q)->n; j += VL)

/* ---- LSTM: i, f, o = σ(p), g = tanh(p);  c_t = f ⊙ c + i ⊙ g;  h_t = o ⊙ tanh(c_t)
 *      peephole LSTM: the same, but i and f see c_{t-1} and o sees c_t through the per-unit weights
 *      extra = [w_ci, w_cf, w_co] (``peep``, a constant in each caller: the LSTM's code has no peephole terms) ---- */

static inline ALWAYS_INLINE void FN(lstm_forward_with)(const FN(FwdRow) *q, int peep) {
    const int H = q->H;
    LANES(q) {
        V c0 = FN(loadn)(q->c_prev + j, m);
        V p_i = FN(pre)(q, 0, j, m), p_f = FN(pre)(q, 1, j, m), p_o = FN(pre)(q, 3, j, m);
        if (peep) {
            p_i += FN(loadn)(q->extra + j, m) * c0;
            p_f += FN(loadn)(q->extra + H + j, m) * c0;
        }
        V i = FN(sigmoid)(p_i), f = FN(sigmoid)(p_f), g = FN(tanh)(FN(pre)(q, 2, j, m));
        V c = f * c0 + i * g, tc = FN(tanh)(c);
        if (peep) p_o += FN(loadn)(q->extra + 2 * H + j, m) * c;
        V o = FN(sigmoid)(p_o);
        FN(put_gate)(q, 0, j, m, i); FN(put_gate)(q, 1, j, m, f);
        FN(put_gate)(q, 2, j, m, g); FN(put_gate)(q, 3, j, m, o);
        FN(storen)(q->c + j, c, m);
        FN(stream)(q->tanh_c + j, tc, m);
        FN(put_h)(q, j, m, o * tc);
    }
}

static inline ALWAYS_INLINE void FN(lstm_backward_with)(const FN(BwdRow) *q, int peep) {
    const int H = q->H;
    LANES(q) {
        V dh = FN(loadn)(q->dh_out + j, m) + FN(loadn)(q->dh_rec + j, m);
        V i = FN(loadn)(q->gates + j, m), f = FN(loadn)(q->gates + H + j, m);
        V g = FN(loadn)(q->gates + 2 * H + j, m), o = FN(loadn)(q->gates + 3 * H + j, m);
        V tc = FN(loadn)(q->tanh_c + j, m), c0 = FN(loadn)(q->c_prev + j, m);
        V d_o = dh * tc * (o * (1 - o));
        V dc = dh * o * (1 - tc * tc) + FN(loadn)(q->carry + j, m);                 /* dL/dc_t */
        if (peep) dc += d_o * FN(loadn)(q->extra + 2 * H + j, m);                  /* (o sees c_t) */
        V d_i = dc * g * (i * (1 - i)), d_f = dc * c0 * (f * (1 - f)), d_g = dc * i * (1 - g * g);
        /* put_dpre's stores and sums, but the four stores first: with each sum between two stores the backward
         * measured 1-2 % slower at LSTM 64,100,128,256 (the sums' loads wait on the stores before them). */
        FN(storen)(q->dpre_x + j, d_i, m);
        FN(storen)(q->dpre_x + H + j, d_f, m);
        FN(storen)(q->dpre_x + 2 * H + j, d_g, m);
        FN(storen)(q->dpre_x + 3 * H + j, d_o, m);
        V dc0 = dc * f;                                                              /* dL/dc_{t-1} */
        FN(acc)(q->db_x, j, m, d_i);
        FN(acc)(q->db_x + H, j, m, d_f);
        FN(acc)(q->db_x + 2 * H, j, m, d_g);
        FN(acc)(q->db_x + 3 * H, j, m, d_o);
        if (peep) {
            FN(acc)(q->d_extra, j, m, d_i * c0);
            FN(acc)(q->d_extra + H, j, m, d_f * c0);
            FN(acc)(q->d_extra + 2 * H, j, m, d_o * FN(loadn)(q->c + j, m));
            dc0 += d_i * FN(loadn)(q->extra + j, m) + d_f * FN(loadn)(q->extra + H + j, m);
        }
        FN(storen)(q->carry + j, dc0, m);
    }
}

static void FN(lstm_forward)(const FN(FwdRow) *q) { FN(lstm_forward_with)(q, 0); }
static void FN(lstm_backward)(const FN(BwdRow) *q) { FN(lstm_backward_with)(q, 0); }
static void FN(peephole_lstm_forward)(const FN(FwdRow) *q) { FN(lstm_forward_with)(q, 1); }
static void FN(peephole_lstm_backward)(const FN(BwdRow) *q) { FN(lstm_backward_with)(q, 1); }
/* projected LSTM: the LSTM's step, its h the m_t that the scan projects (core.h's proj) */
static void FN(projected_lstm_forward)(const FN(FwdRow) *q) { FN(lstm_forward_with)(q, 0); }
static void FN(projected_lstm_backward)(const FN(BwdRow) *q) { FN(lstm_backward_with)(q, 0); }

/* ---- layer-normalised LSTM (layers/layernorm.py): p = LN(W_ih x_t; γ_ih) + LN(W_hh h; γ_hh) + b, c_t as the
 *      LSTM's, h_t = o ⊙ tanh(LN(c_t; γ_c, β_c)). A whole kind: q->n = H, every unit of the row (the norms reach
 *      over all of it); split: the x side (prod_x, or gates) and the h side (prod) arrive apart, bias = b_ih + b_hh.
 *      extra rows: γ_ih (4), γ_hh (4), γ_c, β_c; saved: x̂ (4H), ĥ (4H), ĉ (H), then σ_x, σ_h, σ_c ---- */

#define SPAN(N) for (int j = 0, m; m = (N) - j < VL ? (N) - j : VL, j < (N); j += VL)

/* out[0..N) = (a − mean) / σ and *sigma = σ = √(var + ε), the variance over the deviations (as layernorm.py). */
static void FN(normalise)(const REAL *a, int N, REAL *out, REAL *sigma) {
    V acc = {0};
    SPAN(N) acc += FN(loadn)(a + j, m);
    const REAL mean = FN(hsum)(acc) / N;
    V sq = {0};
    SPAN(N) {
        V d = FN(loadn)(a + j, m) - mean;
        for (int l = m; l < VL; l++) d[l] = 0;                 /* (past the row: not a deviation) */
        FN(storen)(out + j, d, m);
        sq += d * d;
    }
    const REAL s = (REAL)sqrt((double)(FN(hsum)(sq) / N) + 1e-5);
    SPAN(N) FN(storen)(out + j, FN(loadn)(out + j, m) / s, m);
    *sigma = s;
}

static void FN(layer_norm_lstm_forward)(const FN(FwdRow) *q) {
    const int H = q->H, G = 4 * H;
    REAL *xh = q->saved, *hh = q->saved + G, *ch = q->saved + 2 * G, *sig = q->saved + 9 * H;
    const REAL *gx = q->extra, *gh = q->extra + 4 * H, *gc = q->extra + 8 * H, *bc = q->extra + 9 * H;
    FN(normalise)(q->prod_x ? q->prod_x : q->gates, G, xh, sig);
    FN(normalise)(q->prod, G, hh, sig + 1);
    SPAN(H) {
        V p[4];
        for (int k = 0; k < 4; k++)
            p[k] = FN(loadn)(gx + k * H + j, m) * FN(loadn)(xh + k * H + j, m) +
                   FN(loadn)(gh + k * H + j, m) * FN(loadn)(hh + k * H + j, m) + FN(loadn)(q->bias + k * H + j, m);
        V i = FN(sigmoid)(p[0]), f = FN(sigmoid)(p[1]), g = FN(tanh)(p[2]), o = FN(sigmoid)(p[3]);
        FN(put_gate)(q, 0, j, m, i); FN(put_gate)(q, 1, j, m, f);
        FN(put_gate)(q, 2, j, m, g); FN(put_gate)(q, 3, j, m, o);
        FN(storen)(q->c + j, f * FN(loadn)(q->c_prev + j, m) + i * g, m);
        FN(storen)(q->h + j, o, m);                          /* o, until LN(c_t) is known */
    }
    FN(normalise)(q->c, H, ch, sig + 2);
    SPAN(H) {
        V tz = FN(tanh)(FN(loadn)(gc + j, m) * FN(loadn)(ch + j, m) + FN(loadn)(bc + j, m));
        FN(stream)(q->tanh_c + j, tz, m);
        FN(put_h)(q, j, m, FN(loadn)(q->h + j, m) * tz);
    }
}

static void FN(layer_norm_lstm_backward)(const FN(BwdRow) *q) {
    const int H = q->H, G = 4 * H;
    const REAL *xh = q->saved, *hh = q->saved + G, *ch = q->saved + 2 * G, *sig = q->saved + 9 * H;
    const REAL *gx = q->extra, *gh = q->extra + 4 * H, *gc = q->extra + 8 * H;
    REAL *dp = q->dpre_x;                                    /* dL/dp first, then the x side's gradient over it */
    V s1 = {0}, s2 = {0};
    SPAN(H) {                                                /* dL/dp_o and dL/dLN(c_t) */
        V dh = FN(loadn)(q->dh_out + j, m) + FN(loadn)(q->dh_rec + j, m);
        V o = FN(loadn)(q->gates + 3 * H + j, m), tz = FN(loadn)(q->tanh_c + j, m), c_hat = FN(loadn)(ch + j, m);
        V dz = dh * o * (1 - tz * tz);
        FN(storen)(dp + 3 * H + j, dh * tz * (o * (1 - o)), m);
        FN(acc)(q->d_extra + 8 * H, j, m, dz * c_hat);
        FN(acc)(q->d_extra + 9 * H, j, m, dz);
        V dzg = dz * FN(loadn)(gc + j, m);
        FN(storen)(dp + j, dzg, m);                          /* (held in the i block until dL/dc_t) */
        s1 += dzg;
        s2 += dzg * c_hat;
    }
    const REAL m1 = FN(hsum)(s1) / H, m2 = FN(hsum)(s2) / H, sc = sig[2];
    V x1 = {0}, x2 = {0}, h1 = {0}, h2 = {0};
    SPAN(H) {
        V i = FN(loadn)(q->gates + j, m), f = FN(loadn)(q->gates + H + j, m), g = FN(loadn)(q->gates + 2 * H + j, m);
        V dc = (FN(loadn)(dp + j, m) - m1 - FN(loadn)(ch + j, m) * m2) / sc + FN(loadn)(q->carry + j, m);
        V d[4] = {dc * g * (i * (1 - i)), dc * FN(loadn)(q->c_prev + j, m) * (f * (1 - f)), dc * i * (1 - g * g),
                  FN(loadn)(dp + 3 * H + j, m)};
        FN(storen)(q->carry + j, dc * f, m);                 /* dL/dc_{t-1} */
        for (int k = 0; k < 4; k++) {
            const int at = k * H + j;
            V xk = FN(loadn)(xh + at, m), hk = FN(loadn)(hh + at, m);
            V ax = FN(loadn)(gx + at, m) * d[k], ah = FN(loadn)(gh + at, m) * d[k];
            FN(storen)(dp + at, d[k], m);
            FN(acc)(q->db_x, at, m, d[k]);
            FN(acc)(q->db_h, at, m, d[k]);
            FN(acc)(q->d_extra, at, m, d[k] * xk);
            FN(acc)(q->d_extra + G, at, m, d[k] * hk);
            x1 += ax; x2 += ax * xk; h1 += ah; h2 += ah * hk;
        }
    }
    const REAL mx1 = FN(hsum)(x1) / G, mx2 = FN(hsum)(x2) / G, mh1 = FN(hsum)(h1) / G, mh2 = FN(hsum)(h2) / G;
    SPAN(G) {                                                /* back through each side's norm */
        V d = FN(loadn)(dp + j, m);
        FN(storen)(q->dpre_h + j, (FN(loadn)(gh + j, m) * d - mh1 - FN(loadn)(hh + j, m) * mh2) / sig[1], m);
        FN(storen)(dp + j, (FN(loadn)(gx + j, m) * d - mx1 - FN(loadn)(xh + j, m) * mx2) / sig[0], m);
    }
}

#undef SPAN

/* ---- GRU: r, z = σ(p), n = tanh(x_n + r ⊙ (W_hn h + b_hn)), h_t = n + z ⊙ (h − n) ------------------------------ */

static void FN(gru_forward)(const FN(FwdRow) *q) {
    LANES(q) {
        V r = FN(sigmoid)(FN(x_side)(q, 0, j, m) + FN(loadn)(q->bias + j, m) + FN(loadn)(q->prod + j, m));
        V z = FN(sigmoid)(FN(x_side)(q, 1, j, m) + FN(loadn)(q->bias + q->H + j, m) +
                          FN(loadn)(q->prod + q->n + j, m));
        V hn = FN(loadn)(q->prod + 2 * q->n + j, m);                               /* W_hn h + b_hn */
        if (q->b_loop) hn += FN(loadn)(q->b_loop + j, m);
        V x_n = FN(x_side)(q, 2, j, m) + FN(loadn)(q->bias + 2 * q->H + j, m);
        V n = FN(tanh)(x_n + r * hn), hp = FN(loadn)(q->h_prev + j, m);
        FN(put_gate)(q, 0, j, m, r); FN(put_gate)(q, 1, j, m, z); FN(put_gate)(q, 2, j, m, n);
        FN(stream)(q->hproj + j, hn, m);
        FN(put_h)(q, j, m, n + z * (hp - n));
    }
}

static void FN(gru_backward)(const FN(BwdRow) *q) {
    const int H = q->H;
    LANES(q) {
        V dh = FN(loadn)(q->dh_out + j, m) + FN(loadn)(q->dh_rec + j, m);
        V r = FN(loadn)(q->gates + j, m), z = FN(loadn)(q->gates + H + j, m), n = FN(loadn)(q->gates + 2 * H + j, m);
        V hp = FN(loadn)(q->h_prev + j, m), hn = FN(loadn)(q->hproj + j, m);
        V d_n = (1 - z) * (1 - n * n) * dh;
        V d_z = (hp - n) * (1 - z) * z * dh;
        V d_r = d_n * (hn * (r * (1 - r)));
        FN(put_dpre)(q, 0, j, m, d_r);
        FN(put_dpre)(q, 1, j, m, d_z);
        FN(put_dpre)(q, 2, j, m, d_n);
        V dq[3] = {d_r, d_z, d_n * r};                      /* the h side: the n block is gated by r */
        for (int k = 0; k < 3; k++) {
            FN(storen)(q->dpre_h + k * H + j, dq[k], m);
            FN(acc)(q->db_h + k * H, j, m, dq[k]);
        }
        FN(storen)(q->carry + j, dh * z, m);                                        /* dL/dh_{t-1} past W_hh */
    }
}

/* ---- Elman: h_t = act(p), act = tanh or relu ----------------------------------------------------------------- */

static inline ALWAYS_INLINE void FN(rnn_forward)(const FN(FwdRow) *q, int relu) {
    LANES(q) {
        V p = FN(pre)(q, 0, j, m);
        FN(put_h)(q, j, m, relu ? FN(select)(p > 0, p, FN(splat)(0)) : FN(tanh)(p));
    }
}

static inline ALWAYS_INLINE void FN(rnn_backward)(const FN(BwdRow) *q, int relu) {
    LANES(q) {
        V dh = FN(loadn)(q->dh_out + j, m) + FN(loadn)(q->dh_rec + j, m), h = FN(loadn)(q->h + j, m);
        FN(put_dpre)(q, 0, j, m, relu ? FN(select)(h > 0, dh, FN(splat)(0)) : dh * (1 - h * h));
    }
}

static void FN(rnn_tanh_forward)(const FN(FwdRow) *q) { FN(rnn_forward)(q, 0); }
static void FN(rnn_tanh_backward)(const FN(BwdRow) *q) { FN(rnn_backward)(q, 0); }
static void FN(rnn_relu_forward)(const FN(FwdRow) *q) { FN(rnn_forward)(q, 1); }
static void FN(rnn_relu_backward)(const FN(BwdRow) *q) { FN(rnn_backward)(q, 1); }

#undef LANES
#undef ALWAYS_INLINE
