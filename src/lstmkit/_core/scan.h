/* The scans (included by body.h): one forward and one backward for every kind, on a pool of threads that each own
 * a slice of the hidden units. Per step: the products with the recurrent weights (packed once per sequence into
 * column panels, or read as they lie for small batches), then the kind's own step (cells.h) on each row of the
 * thread's units, then one barrier (the next step needs all of h). */

/* This thread's units [u0, u0 + n) of H, its packed columns of a weight (K rows) and a product buffer (B rows). */
typedef struct { int u0, n, N, Npad; REAL *packed, *prod; int ok; } FN(Slice);

static FN(Slice) FN(slice)(int H, int tid, int nth, int blocks, int K, int B) {
    FN(Slice) p;
    p.u0 = (int)((long)H * tid / nth);
    p.n = (int)((long)H * (tid + 1) / nth) - p.u0;
    p.N = blocks * p.n;                              /* columns: gate block k's units at k·n */
    p.Npad = FN(round_nr)(p.N);
    p.packed = FN(alloc)((long)p.Npad * K);
    p.prod = FN(alloc)((long)B * p.Npad);
    p.ok = p.packed && p.prod;
    return p;
}

static void FN(unslice)(FN(Slice) *p) { free(p->packed); free(p->prod); }

/* rows[c] = stride · (the weight row of this thread's column c: gate block c / n, unit u0 + c % n). */
static void FN(gate_rows)(long *rows, int N, int n, int H, int u0, long stride) {
    for (int c = 0; c < N; c++) rows[c] = ((long)(c / n) * H + u0 + c % n) * stride;
}

/* Forward: pack this thread's columns of W_hh^T (gate block k, unit u: row k·H + u) and of W_ih, then step. */
static void FN(forward_job)(void *arg, int tid, int nth) {
    LkForward *s = (LkForward *)arg;
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const FN(Cell) cell = FN(cells)[s->kind];
    const int T = s->T, B = s->B, H = s->H, GH = kind->gates * H, I = s->I;
    const REAL *x = kind->split ? NULL : (const REAL *)s->x;  /* split kinds come with W_ih x_t formed */
    REAL *gates = s->gates, *hs = s->hs, *cs = s->cs;
    const int direct = s->direct && s->wk == 1;      /* W_hh row-major: matrix-vector steps, no packing */
    FN(Slice) p = FN(slice)(H, tid, nth, kind->gates, direct ? 0 : H, B);
    REAL *packed_x = x ? FN(alloc)((long)p.Npad * I) : NULL;
    long *rows = malloc(sizeof(long) * (size_t)(p.N + 1)), *rows_x = malloc(sizeof(long) * (size_t)(p.N + 1));
    if (!p.ok || (x && !packed_x) || !rows || !rows_x) s->failed = 1;
    lk_barrier(nth);                                 /* all threads know whether memory was found */
    const int ok = !s->failed;
    if (ok) {
        FN(gate_rows)(rows, p.N, p.n, H, p.u0, s->wn);
        if (!direct) FN(pack)(H, p.N, (const REAL *)s->w_hh_t, s->wk, rows, p.packed);
        if (x) {                                     /* W_ih (G·H, I) row-major: element (k, row) at row·I + k */
            FN(gate_rows)(rows_x, p.N, p.n, H, p.u0, I);
            FN(pack)(I, p.N, (const REAL *)s->w_ih, 1, rows_x, packed_x);
        }
    }
    FN(FwdRow) q = {.n = p.n, .H = H, .x_in = x == NULL, .bias = (const REAL *)s->bias + p.u0,
                    .b_loop = s->b_loop ? (const REAL *)s->b_loop + p.u0 : NULL,
                    .extra = s->extra ? (const REAL *)s->extra + p.u0 : NULL};
    for (int t = 0; t < T && ok; t++) {
        const REAL *h_prev = hs + (long)t * B * H;
        if (p.n && direct) FN(gemv_rows)(B, p.N, H, h_prev, H, (const REAL *)s->w_hh_t, rows, p.prod, p.Npad);
        else if (p.n) FN(gemm)(B, p.Npad, H, h_prev, H, p.packed, p.prod, p.Npad, 0);
        if (p.n && x) FN(gemm)(B, p.Npad, I, x + (long)t * B * I, I, packed_x, p.prod, p.Npad, 1);
        for (int b = 0; b < B && p.n; b++) {
            const long o = ((long)t * B + b) * H + p.u0, o1 = o + (long)B * H;   /* (t, b, u0), (t + 1, b, u0) */
            q.gates = gates + ((long)t * B + b) * GH + p.u0;
            q.prod = p.prod + (long)b * p.Npad;
            q.h_prev = hs + o;
            q.h = hs + o1;
            q.c_prev = cs ? cs + o : NULL;
            q.c = cs ? cs + o1 : NULL;
            q.tanh_c = s->tanh_cs ? (REAL *)s->tanh_cs + o : NULL;
            q.hproj = s->hproj ? (REAL *)s->hproj + o : NULL;
            q.y = s->y ? (REAL *)s->y + t * s->y_t + b * s->y_b + p.u0 : NULL;
            cell.forward(&q);
        }
        lk_barrier(nth);
    }
    fence();                                         /* the streamed gates are in memory for the backward */
    free(rows);
    free(rows_x);
    free(packed_x);
    FN(unslice)(&p);
}

/* One backward step of the small-batch scan, after this thread wrote its units' pre-activation gradients of step
 * t: its rows' shares of dh_{t-1} (all units) and of dx_t (all columns) into ``mine`` (B, H + I), the barrier, then
 * dh_rec (B, n) of its units (plus ``carry`` for kinds without a cell) and its columns of dx_t, summed over every
 * thread's shares. */
static void FN(direct_back)(LkBackward *s, int tid, int nth, int t, int u0, int n, REAL *mine, REAL *dh_rec,
                            const REAL *carry) {
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const int B = s->B, H = s->H, G = kind->gates, GH = G * H, I = s->I, HI = H + I;
    const REAL *dp = (const REAL *)s->dpre_x + (long)t * B * GH;
    const REAL *dq = kind->split ? (const REAL *)s->dpre_h + (long)t * B * GH : dp;
    const REAL *w_hh = s->w_hh, *w_ih = s->w_ih;
    for (int k = 0; k < G; k++) {
        long row = (long)k * H + u0;
        FN(gemv_cols)(B, H, n, dq + row, GH, w_hh + row * H, H, mine, HI, k > 0);
        if (s->dx) FN(gemv_cols)(B, I, n, dp + row, GH, w_ih + row * I, I, mine + H, HI, k > 0);
    }
    lk_barrier(nth);                                 /* every thread's shares of step t are written */
    const long par = (long)(t & 1) * B * HI;         /* this step's half of every thread's buffer */
    const int x0 = (int)((long)I * tid / nth), x1 = (int)((long)I * (tid + 1) / nth);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < n; j++) {
            REAL v = kind->cell ? 0 : carry[(long)b * n + j];
            for (int y = 0; y < nth; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + u0 + j];
            dh_rec[(long)b * n + j] = v;
        }
        if (s->dx)
            for (int c = x0; c < x1; c++) {
                REAL v = 0;
                for (int y = 0; y < nth; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + H + c];
                ((REAL *)s->dx)[t * s->dx_t + b * s->dx_b + c] = v;
            }
    }
}

/* Backward: pack this thread's columns of W_hh (column u of the (G·H, H) matrix) and of W_ih, then step back. */
static void FN(backward_job)(void *arg, int tid, int nth) {
    LkBackward *s = (LkBackward *)arg;
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const FN(Cell) cell = FN(cells)[s->kind];
    const int T = s->T, B = s->B, H = s->H, GH = kind->gates * H, I = s->I, HI = H + I, E = kind->extra;
    const REAL *hs = s->hs, *cs = s->cs;
    REAL *dpre_x = s->dpre_x, *dpre_h = kind->split ? s->dpre_h : s->dpre_x, *dx = s->dx;   /* one unless split */
    /* Small batches: matrix-vector steps over this thread's own rows of W_hh (and W_ih), as they lie: each thread
     * sums its rows' share of dh_{t-1} (and dx_t) for every unit into a buffer of its own, two steps' worth, and
     * after the step's barrier each adds up its units' (and columns') shares from every thread's buffer. */
    const int direct = s->direct;
    FN(Slice) p = FN(slice)(H, tid, nth, 1, direct ? 0 : GH, B);
    const int x0 = (int)((long)I * tid / nth), x1 = (int)((long)I * (tid + 1) / nth), Nx = FN(round_nr)(x1 - x0);
    const int packs_x = dx && !direct;              /* this thread's columns [x0, x1) of dx_t = dpre_x,t · W_ih */
    REAL *packed_x = packs_x ? FN(alloc)((long)Nx * GH) : NULL, *prod_x = packs_x ? FN(alloc)((long)B * Nx) : NULL;
    REAL *shares = direct ? FN(alloc)(2L * B * HI) : NULL;            /* (2, B, H + I): dh_{t-1}, then dx_t */
    s->shares[tid] = shares;
    long *cols = malloc(sizeof(long) * (size_t)((p.N > I ? p.N : I) + 1));
    REAL *dh_rec = FN(alloc)((long)B * p.n), *carry = FN(alloc)((long)B * p.n);   /* (B, n): see cells.h */
    REAL *db_x = calloc((size_t)GH, sizeof(REAL)), *db_h = calloc((size_t)GH, sizeof(REAL));  /* Σ over t, b */
    REAL *d_extra = calloc((size_t)(E * H + 1), sizeof(REAL));
    if (!p.ok || !cols || !dh_rec || !carry || !db_x || !db_h || !d_extra || (packs_x && (!packed_x || !prod_x)) ||
        (direct && !shares))
        s->failed = 1;
    lk_barrier(nth);
    const int ok = !s->failed;
    if (ok) {
        if (packs_x) {                               /* W_ih (G·H, I) row-major: element (k, column c) at k·I + c */
            for (int c = 0; c < x1 - x0; c++) cols[c] = x0 + c;
            FN(pack)(GH, x1 - x0, (const REAL *)s->w_ih, I, cols, packed_x);
        }
        for (int c = 0; c < p.N; c++) cols[c] = p.u0 + c;
        if (!direct) FN(pack)(GH, p.N, (const REAL *)s->w_hh, H, cols, p.packed);
        memset(dh_rec, 0, sizeof(REAL) * (size_t)B * p.n);
        memset(carry, 0, sizeof(REAL) * (size_t)B * p.n);
    }
    FN(BwdRow) q = {.n = p.n, .H = H, .extra = s->extra ? (const REAL *)s->extra + p.u0 : NULL, .db_x = db_x + p.u0,
                    .db_h = db_h + p.u0, .d_extra = d_extra + p.u0};
    for (int t = T - 1; t >= 0 && ok; t--) {
        for (int b = 0; b < B && p.n; b++) {
            REAL *dhr = dh_rec + (long)b * p.n, *car = carry + (long)b * p.n;
            if (s->last[b] == t)                     /* the final-state gradient enters at the last step */
                for (int j = 0; j < p.n; j++) {
                    dhr[j] += ((const REAL *)s->dh_n)[(long)b * H + p.u0 + j];
                    if (kind->cell) car[j] += ((const REAL *)s->dc_n)[(long)b * H + p.u0 + j];
                }
            const long o = ((long)t * B + b) * H + p.u0, o1 = o + (long)B * H, og = ((long)t * B + b) * GH + p.u0;
            q.gates = (const REAL *)s->gates + og;
            q.h_prev = hs + o;
            q.h = hs + o1;
            q.c_prev = cs ? cs + o : NULL;
            q.c = cs ? cs + o1 : NULL;
            q.tanh_c = s->tanh_cs ? (const REAL *)s->tanh_cs + o : NULL;
            q.hproj = s->hproj ? (const REAL *)s->hproj + o : NULL;
            q.dh_out = (const REAL *)s->dhs + t * s->dhs_t + b * s->dhs_b + p.u0;
            q.dh_rec = dhr;
            q.carry = car;
            q.dpre_x = dpre_x + og;
            q.dpre_h = dpre_h + og;
            cell.backward(&q);
        }
        if (direct) {
            FN(direct_back)(s, tid, nth, t, p.u0, p.n, shares + (long)(t & 1) * B * HI, dh_rec, carry);
            continue;                                /* (it met the others at the step's barrier) */
        }
        lk_barrier(nth);                             /* every unit's pre-activation gradient of step t is written */
        if (dx && x1 > x0) {
            FN(gemm)(B, Nx, GH, dpre_x + (long)t * B * GH, GH, packed_x, prod_x, Nx, 0);
            for (int b = 0; b < B; b++)
                memcpy(dx + t * s->dx_t + b * s->dx_b + x0, prod_x + (long)b * Nx, sizeof(REAL) * (size_t)(x1 - x0));
        }
        if (p.n) {
            FN(gemm)(B, p.Npad, GH, dpre_h + (long)t * B * GH, GH, p.packed, p.prod, p.Npad, 0);
            for (int b = 0; b < B; b++)
                for (int j = 0; j < p.n; j++)
                    dh_rec[(long)b * p.n + j] = p.prod[(long)b * p.Npad + j] + (kind->cell ? 0 : carry[(long)b * p.n + j]);
        }
    }
    if (ok) {                                        /* this thread's units of dh_0, dc_0 and the sums */
        for (int b = 0; b < B; b++)
            for (int j = 0; j < p.n; j++) {
                ((REAL *)s->dh0)[(long)b * H + p.u0 + j] = dh_rec[(long)b * p.n + j];
                if (kind->cell) ((REAL *)s->dc0)[(long)b * H + p.u0 + j] = carry[(long)b * p.n + j];
            }
        for (int k = 0; k < kind->gates; k++)
            for (int j = 0; j < p.n; j++) {
                long u = (long)k * H + p.u0 + j;
                ((REAL *)s->db_x)[u] = db_x[u];
                ((REAL *)s->db_h)[u] = kind->split ? db_h[u] : db_x[u];
            }
        for (int r = 0; r < E; r++)
            for (int j = 0; j < p.n; j++) ((REAL *)s->d_extra)[(long)r * H + p.u0 + j] = d_extra[(long)r * H + p.u0 + j];
    }
    free(db_x);
    free(db_h);
    free(d_extra);
    free(dh_rec);
    free(carry);
    if (direct) lk_barrier(nth);                     /* the others have read this thread's shares */
    free(shares);
    free(packed_x);
    free(prod_x);
    free(cols);
    FN(unslice)(&p);
}
