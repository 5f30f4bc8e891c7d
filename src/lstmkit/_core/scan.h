/* The per-thread scans (included by body.h): LSTM, GRU and Elman, forward and backward. */

/* This thread's units [u0, u1), its packed columns and a product buffer; ok = 0 if out of memory. */
typedef struct { int u0, u1, Hs, N, Npad; REAL *packed, *out, *s1, *s2; int ok; } FN(Part);

static FN(Part) FN(part)(int H, int tid, int n, int N_per_unit, int K, int B) {
    FN(Part) p;
    p.u0 = (int)((long)H * tid / n);
    p.u1 = (int)((long)H * (tid + 1) / n);
    p.Hs = p.u1 - p.u0;
    p.N = N_per_unit * p.Hs;
    p.Npad = FN(round_nr)(p.N);
    p.packed = FN(alloc)((long)p.Npad * K);
    p.out = FN(alloc)((long)B * p.Npad);
    p.s1 = FN(alloc)((long)B * p.Hs);
    p.s2 = FN(alloc)((long)B * p.Hs);
    p.ok = p.packed && p.out && p.s1 && p.s2;
    return p;
}

static void FN(unpart)(FN(Part) *p) { free(p->packed); free(p->out); free(p->s1); free(p->s2); }

/* colofs[c] = stride · (the weight row of this thread's column c: gate c / Hs, unit u0 + c % Hs). */
static void FN(gate_rows)(long *colofs, int N, int Hs, int H, int u0, long stride) {
    for (int c = 0; c < N; c++) colofs[c] = ((long)(c / Hs) * H + u0 + c % Hs) * stride;
}

/* Forward: pack this thread's columns of W_hh^T (gate g, unit u: row g·H + u), then step. */
static void FN(forward_job)(void *arg, int tid, int n) {
    LkScan *s = (LkScan *)arg;
    const int T = s->T, B = s->B, H = s->H, G = s->G, GH = s->G * s->H;
    REAL *acts = s->acts, *hs = s->hs, *cs = s->cs, *tcs = s->tcs, *aux = s->aux, *y = s->y;
    const REAL *b_loop = s->b_loop;
    const int direct = s->direct && s->wk == 1;           /* W_hh row-major: matrix-vector steps, no packing */
    FN(Part) p = FN(part)(H, tid, n, G, direct ? 0 : H, B);
    const int I = s->I;                             /* with x given: W_ih x_t is formed here too, step by step */
    const REAL *x = s->x;
    REAL *packed_x = x ? FN(alloc)((long)p.Npad * I) : NULL;
    if (!p.ok || (x && !packed_x)) s->failed = 1;
    long *colofs = malloc(sizeof(long) * (size_t)(p.N > 0 ? p.N : 1));   /* W_hh's row of each column */
    long *colofs_x = malloc(sizeof(long) * (size_t)(p.N > 0 ? p.N : 1));
    if (!colofs || !colofs_x) s->failed = 1;
    lk_barrier(n);                                  /* all threads know whether memory was found */
    int ok = !s->failed;
    if (ok) {
        FN(gate_rows)(colofs, p.N, p.Hs, H, p.u0, s->wn);
        if (!direct) FN(pack)(H, p.N, (const REAL *)s->w, s->wk, colofs, p.packed);
        if (x) {                                    /* W_ih (G·H, I) row-major: element (k, row) at row·I + k */
            FN(gate_rows)(colofs_x, p.N, p.Hs, H, p.u0, I);
            FN(pack)(I, p.N, (const REAL *)s->w_ih, 1, colofs_x, packed_x);
        }
    }
    const int half = s->prescaled, in = x == NULL;     /* in: acts holds W_ih x_t on entry */
    const REAL *bias = (const REAL *)s->bias + p.u0;      /* (G·H,): b_ih (+ b_hh) per gate, this thread's units */
    for (int t = 0; t < T && ok; t++) {
        const REAL *hprev = hs + (long)t * B * H;
        if (p.Hs && direct) FN(gemv_rows)(B, p.N, H, hprev, H, (const REAL *)s->w, colofs, p.out, p.Npad);
        else if (p.Hs) FN(gemm)(B, p.Npad, H, hprev, H, p.packed, p.out, p.Npad, 0);
        if (p.Hs && x) FN(gemm)(B, p.Npad, I, x + (long)t * B * I, I, packed_x, p.out, p.Npad, 1);
        for (int b = 0; b < B && p.Hs; b++) {
            REAL *a = acts + ((long)t * B + b) * GH + p.u0;
            const REAL *r = p.out + (long)b * p.Npad;
            long o = ((long)t * B + b) * H + p.u0;          /* (t, b, u0) in a (·, B, H) array */
            REAL *yo = y ? y + t * s->y_t + b * s->y_b + p.u0 : NULL;   /* (t, b, u0) of the caller's output */
            for (int j = 0; j < p.Hs; j += VL) {
                int m = p.Hs - j < VL ? p.Hs - j : VL;
                if (G == 4) {                               /* LSTM */
                    V i = FN(sigmoid)(FN(xin)(a + j, m, in) + FN(loadn)(bias + j, m) + FN(loadn)(r + j, m), half);
                    V f = FN(sigmoid)(FN(xin)(a + H + j, m, in) + FN(loadn)(bias + H + j, m) +
                                      FN(loadn)(r + p.Hs + j, m), half);
                    V g = FN(tanh)(FN(xin)(a + 2 * H + j, m, in) + FN(loadn)(bias + 2 * H + j, m) +
                                   FN(loadn)(r + 2 * p.Hs + j, m));
                    V og = FN(sigmoid)(FN(xin)(a + 3 * H + j, m, in) + FN(loadn)(bias + 3 * H + j, m) +
                                       FN(loadn)(r + 3 * p.Hs + j, m), half);
                    V c = f * FN(loadn)(cs + o + j, m) + i * g;
                    V tc = FN(tanh)(c);
                    FN(stream)(a + j, i, m); FN(stream)(a + H + j, f, m);
                    FN(stream)(a + 2 * H + j, g, m); FN(stream)(a + 3 * H + j, og, m);
                    FN(storen)(cs + o + (long)B * H + j, c, m);
                    FN(stream)(tcs + o + j, tc, m);
                    FN(storen)(hs + o + (long)B * H + j, og * tc, m);
                    if (yo) FN(storen)(yo + j, og * tc, m);
                } else if (G == 3) {                        /* GRU */
                    V rr = FN(sigmoid)(FN(loadn)(a + j, m) + FN(loadn)(bias + j, m) + FN(loadn)(r + j, m), half);
                    V z = FN(sigmoid)(FN(loadn)(a + H + j, m) + FN(loadn)(bias + H + j, m) +
                                      FN(loadn)(r + p.Hs + j, m), half);
                    V hn = FN(loadn)(r + 2 * p.Hs + j, m);
                    if (b_loop) hn += FN(loadn)(b_loop + p.u0 + j, m);
                    V nn = FN(tanh)(FN(loadn)(a + 2 * H + j, m) + FN(loadn)(bias + 2 * H + j, m) + rr * hn);
                    V hp = FN(loadn)(hprev + (long)b * H + p.u0 + j, m);
                    FN(stream)(a + j, rr, m); FN(stream)(a + H + j, z, m); FN(stream)(a + 2 * H + j, nn, m);
                    FN(stream)(aux + o + j, hn, m);
                    V h = nn + z * (hp - nn);
                    FN(storen)(hs + o + (long)B * H + j, h, m);
                    if (yo) FN(storen)(yo + j, h, m);
                } else {                                    /* Elman */
                    V pre = FN(loadn)(r + j, m) + (FN(xin)(a + j, m, in) + FN(loadn)(bias + j, m));
                    V h = s->act ? FN(select)(pre > 0, pre, FN(splat)(0)) : FN(tanh)(pre);
                    FN(storen)(hs + o + (long)B * H + j, h, m);
                    if (yo) FN(storen)(yo + j, h, m);
                }
            }
        }
        lk_barrier(n);
    }
    fence();                                        /* the streamed gates are in memory for the backward */
    free(colofs);
    free(colofs_x);
    free(packed_x);
    FN(unpart)(&p);
}

/* One backward step of the small-batch scan, after this thread wrote its units' d(pre-activations) of step t:
 * its rows' shares of dh_{t-1} (all units) and of dx_t (all columns) into ``mine`` (B, H + I), the barrier, then
 * dh_next (B, Hs) of its units and its columns of dx_t, summed over every thread's shares. */
static void FN(direct_back)(LkScan *s, int tid, int n, int t, int u0, int Hs, REAL *mine, REAL *dh_next,
                            const REAL *dz) {
    const int B = s->B, H = s->H, G = s->G, GH = G * H, I = s->I, HI = H + I;
    const REAL *dq = (const REAL *)s->dhp + (long)t * B * GH, *dp = (const REAL *)s->dxp + (long)t * B * GH;
    const REAL *w_hh = s->w_hh, *w_ih = s->w_ih;
    for (int g = 0; g < G; g++) {
        long row = (long)g * H + u0;
        FN(gemv_cols)(B, H, Hs, dq + row, GH, w_hh + row * H, H, mine, HI, g > 0);
        if (s->dx) FN(gemv_cols)(B, I, Hs, dp + row, GH, w_ih + row * I, I, mine + H, HI, g > 0);
    }
    lk_barrier(n);                                  /* every thread's shares of step t are written */
    const long par = (long)(t & 1) * B * HI;        /* this step's half of every thread's buffer */
    const int x0 = (int)((long)I * tid / n), x1 = (int)((long)I * (tid + 1) / n);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < Hs; j++) {
            REAL v = G == 3 ? dz[(long)b * Hs + j] : 0;
            for (int y = 0; y < n; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + u0 + j];
            dh_next[(long)b * Hs + j] = v;
        }
        if (s->dx)
            for (int c = x0; c < x1; c++) {
                REAL v = 0;
                for (int y = 0; y < n; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + H + c];
                ((REAL *)s->dx)[t * s->dx_t + b * s->dx_b + c] = v;
            }
    }
}

/* Backward: pack this thread's columns of W_hh (column u of the (G·H, H) matrix), then step back. */
static void FN(backward_job)(void *arg, int tid, int n) {
    LkScan *s = (LkScan *)arg;
    const int T = s->T, B = s->B, H = s->H, G = s->G, GH = s->G * s->H;
    const REAL *acts = s->acts, *hs = s->hs, *cs = s->cs, *tcs = s->tcs, *aux = s->aux;
    const REAL *w_hh = s->w_hh, *dhs = s->dhs, *dh_n = s->dh_n, *dc_n = s->dc_n;
    REAL *dxp = s->dxp, *dhp = s->dhp, *dh0 = s->dh0, *dc0 = s->dc0;
    /* Small batches: matrix-vector steps over this thread's own rows of W_hh (and W_ih), as they lie: each thread
     * sums its rows' share of dh_{t-1} (and dx_t) for every unit into a buffer of its own, two steps' worth, and
     * after the step's barrier each adds up its units' (and columns') shares from every thread's buffer. */
    const int direct = s->direct;
    FN(Part) p = FN(part)(H, tid, n, 1, direct ? 0 : GH, B);
    const int I = s->I;                          /* with dx given: dx_t = d(x-side pre-activations)_t · W_ih too, */
    REAL *dxo = s->dx;                           /* this thread's columns [x0, x1) of it */
    const int x0 = (int)((long)I * tid / n), x1 = (int)((long)I * (tid + 1) / n), Nx = FN(round_nr)(x1 - x0);
    const int packs_x = dxo && !direct, HI = H + I;
    REAL *packed_x = packs_x ? FN(alloc)((long)Nx * GH) : NULL, *outx = packs_x ? FN(alloc)((long)B * Nx) : NULL;
    REAL *shares = direct ? FN(alloc)(2L * B * HI) : NULL;           /* (2, B, H + I): dh_{t-1}, then dx_t */
    s->shares[tid] = shares;
    long *colofs = malloc(sizeof(long) * (size_t)((p.N > I ? p.N : I) + 1));
    REAL *dbx = calloc((size_t)GH, sizeof(REAL)), *dbh = calloc((size_t)GH, sizeof(REAL));   /* Σ over t, b */
    if (!p.ok || !colofs || !dbx || !dbh || (packs_x && (!packed_x || !outx)) || (direct && !shares)) s->failed = 1;
    lk_barrier(n);
    int ok = !s->failed;
    REAL *dh_next = p.s1, *dc_next = p.s2;       /* (B, Hs) this thread's units; GRU: s2 holds dh ⊙ z */
    if (ok) {
        if (packs_x) {                           /* W_ih (G·H, I) row-major: element (k, column c) at k·I + c */
            for (int c = 0; c < x1 - x0; c++) colofs[c] = x0 + c;
            FN(pack)(GH, x1 - x0, (const REAL *)s->w_ih, I, colofs, packed_x);
        }
        for (int c = 0; c < p.N; c++) colofs[c] = p.u0 + c;
        if (!direct) FN(pack)(GH, p.N, w_hh, H, colofs, p.packed);
        memset(dh_next, 0, sizeof(REAL) * (size_t)B * p.Hs);
        memset(dc_next, 0, sizeof(REAL) * (size_t)B * p.Hs);
    }
    for (int t = T - 1; t >= 0 && ok; t--) {
        for (int b = 0; b < B && p.Hs; b++) {
            REAL *dhn = dh_next + (long)b * p.Hs, *dcn = dc_next + (long)b * p.Hs;
            long o = ((long)t * B + b) * H + p.u0, od = t * s->dhs_t + b * s->dhs_b + p.u0;   /* dhs: strided */
            if (s->last[b] == t) {                  /* the final-state gradient enters at the last step */
                for (int j = 0; j < p.Hs; j++) {
                    dhn[j] += dh_n[(long)b * H + p.u0 + j];
                    if (G == 4) dcn[j] += dc_n[(long)b * H + p.u0 + j];
                }
            }
            const REAL *a = acts + ((long)t * B + b) * GH + p.u0;
            REAL *dx = dxp + ((long)t * B + b) * GH + p.u0;
            REAL *dq = dhp + ((long)t * B + b) * GH + p.u0;
            for (int j = 0; j < p.Hs; j += VL) {
                int m = p.Hs - j < VL ? p.Hs - j : VL;
                V dh = FN(loadn)(dhs + od + j, m) + FN(loadn)(dhn + j, m);
                if (G == 4) {                       /* LSTM */
                    V i = FN(loadn)(a + j, m), f = FN(loadn)(a + H + j, m);
                    V g = FN(loadn)(a + 2 * H + j, m), og = FN(loadn)(a + 3 * H + j, m);
                    V tc = FN(loadn)(tcs + o + j, m), cp = FN(loadn)(cs + o + j, m);
                    V dc = dh * og * (1 - tc * tc) + FN(loadn)(dcn + j, m);
                    V di = dc * g * (i * (1 - i)), df = dc * cp * (f * (1 - f));
                    V dg = dc * i * (1 - g * g), dout = dh * tc * (og * (1 - og));
                    FN(storen)(dx + j, di, m);
                    FN(storen)(dx + H + j, df, m);
                    FN(storen)(dx + 2 * H + j, dg, m);
                    FN(storen)(dx + 3 * H + j, dout, m);
                    FN(storen)(dcn + j, dc * f, m);
                    REAL *db = dbx + p.u0 + j;
                    FN(storen)(db, FN(loadn)(db, m) + di, m);
                    FN(storen)(db + H, FN(loadn)(db + H, m) + df, m);
                    FN(storen)(db + 2 * H, FN(loadn)(db + 2 * H, m) + dg, m);
                    FN(storen)(db + 3 * H, FN(loadn)(db + 3 * H, m) + dout, m);
                } else if (G == 3) {                /* GRU */
                    V rr = FN(loadn)(a + j, m), z = FN(loadn)(a + H + j, m), nn = FN(loadn)(a + 2 * H + j, m);
                    V hp = FN(loadn)(hs + o + j, m), hn = FN(loadn)(aux + o + j, m);
                    V dn = (1 - z) * (1 - nn * nn) * dh;
                    V dz = (hp - nn) * (1 - z) * z * dh;
                    V dr = dn * (hn * (rr * (1 - rr)));
                    FN(storen)(dx + j, dr, m); FN(storen)(dx + H + j, dz, m); FN(storen)(dx + 2 * H + j, dn, m);
                    FN(storen)(dq + j, dr, m); FN(storen)(dq + H + j, dz, m); FN(storen)(dq + 2 * H + j, dn * rr, m);
                    REAL *db = dbx + p.u0 + j, *dbq = dbh + p.u0 + j;
                    FN(storen)(db, FN(loadn)(db, m) + dr, m);
                    FN(storen)(db + H, FN(loadn)(db + H, m) + dz, m);
                    FN(storen)(db + 2 * H, FN(loadn)(db + 2 * H, m) + dn, m);
                    FN(storen)(dbq + 2 * H, FN(loadn)(dbq + 2 * H, m) + dn * rr, m);
                    FN(storen)(dcn + j, dh * z, m);
                } else {                            /* Elman */
                    V h = FN(loadn)(hs + o + (long)B * H + j, m);
                    V d = s->act ? FN(select)(h > 0, dh, FN(splat)(0)) : dh * (1 - h * h);
                    FN(storen)(dx + j, d, m);
                    FN(storen)(dbx + p.u0 + j, FN(loadn)(dbx + p.u0 + j, m) + d, m);
                }
            }
        }
        if (direct) {
            FN(direct_back)(s, tid, n, t, p.u0, p.Hs, shares + (long)(t & 1) * B * HI, dh_next, dc_next);
            continue;                               /* (it met the others at the step's barrier) */
        }
        lk_barrier(n);                              /* every unit's d(pre-activation) of step t is written */
        if (dxo && x1 > x0) {
            FN(gemm)(B, Nx, GH, dxp + (long)t * B * GH, GH, packed_x, outx, Nx, 0);
            for (int b = 0; b < B; b++)
                memcpy(dxo + t * s->dx_t + b * s->dx_b + x0, outx + (long)b * Nx, sizeof(REAL) * (size_t)(x1 - x0));
        }
        if (p.Hs) {
            FN(gemm)(B, p.Npad, GH, dhp + (long)t * B * GH, GH, p.packed, p.out, p.Npad, 0);
            for (int b = 0; b < B; b++)
                for (int j = 0; j < p.Hs; j++)
                    dh_next[(long)b * p.Hs + j] = p.out[(long)b * p.Npad + j] +
                                                 (G == 3 ? dc_next[(long)b * p.Hs + j] : 0);
        }
    }
    if (ok) {
        for (int b = 0; b < B; b++)
            for (int j = 0; j < p.Hs; j++) {
                dh0[(long)b * H + p.u0 + j] = dh_next[(long)b * p.Hs + j];
                if (G == 4) dc0[(long)b * H + p.u0 + j] = dc_next[(long)b * p.Hs + j];
            }
        REAL *out_x = s->db_x, *out_h = s->db_h;          /* this thread's columns of the bias gradients */
        for (int g = 0; g < G; g++)
            for (int j = 0; j < p.Hs; j++) {
                long k = (long)g * H + p.u0 + j;
                out_x[k] = dbx[k];
                out_h[k] = G == 3 ? (g < 2 ? dbx[k] : dbh[k]) : dbx[k];
            }
    }
    free(dbx);
    free(dbh);
    if (direct) lk_barrier(n);                      /* the others have read this thread's shares */
    free(shares);
    free(packed_x);
    free(outx);
    free(colofs);
    FN(unpart)(&p);
}
