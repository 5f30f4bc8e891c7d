/* The scans (included by body.h): one forward and one backward for every kind, on a pool of threads that each own
 * a slice of the hidden units. Per step: the products with the recurrent weights (packed once per sequence into
 * column panels, or read as they lie for small batches), then the kind's own step (cells.h) on each row of the
 * thread's units, then one barrier (the next step needs all of h). By rows (``by_rows``: always for whole kinds,
 * core.h; else when compiled.by_rows asks, enough rows and small weights) each thread instead takes whole rows of
 * the batch and every unit: its rows' steps need no other thread's, so no barrier, and nothing is read from
 * another thread's cache. */

/* This thread's rows [*b0, *b1) of the batch: all B, or by rows its share. */
static inline void FN(rows_of)(int by_rows, int B, int tid, int nth, int *b0, int *b1) {
    *b0 = by_rows ? (int)((long)B * tid / nth) : 0;
    *b1 = by_rows ? (int)((long)B * (tid + 1) / nth) : B;
}

/* This thread's units [u0, u0 + n) of H, its packed columns of a weight (K rows) and a product buffer (B rows). */
typedef struct { int u0, n, N, Npad; REAL *packed, *prod; int ok, bf; } FN(Slice);   /* bf: packed in bf16.h's pairs */

static FN(Slice) FN(slice)(int H, int tid, int nth, int blocks, int K, int B) {
    FN(Slice) p;
    p.u0 = (int)((long)H * tid / nth);
    p.n = (int)((long)H * (tid + 1) / nth) - p.u0;
    p.N = blocks * p.n;                              /* columns: gate block k's units at k·n */
    p.Npad = FN(round_nr)(p.N);
    p.packed = FN(alloc)((long)p.Npad * K);
    p.prod = FN(alloc)((long)B * p.Npad);
    p.ok = p.packed && p.prod;
    p.bf = FN(bf_on)();
    return p;
}

static void FN(unslice)(FN(Slice) *p) { free(p->packed); free(p->prod); }

/* rows[c] = stride · (the weight row of this thread's column c: gate block c / n, unit u0 + c % n). */
static void FN(gate_rows)(long *rows, int N, int n, int H, int u0, long stride) {
    for (int c = 0; c < N; c++) rows[c] = ((long)(c / n) * H + u0 + c % n) * stride;
}

/* Zoneout's d for the state element e of the (T, B, H) arrays: the drawn mask's, or the eval-mode probability. */
static inline REAL FN(zone_d)(const void *z, double p, long e) { return z ? ((const REAL *)z)[e] : (REAL)p; }

/* Zoneout, after step t's row b (units [off, off + n)): h_t = d ⊙ h_{t-1} + (1 − d) ⊙ h̃_t (and y), c_t alike. */
static void FN(zone_row)(const LkForward *s, int t, int b, int off, int n) {
    const long o = ((long)t * s->B + b) * s->H + off, o1 = o + (long)s->B * s->H;
    REAL *hs = s->hs, *cs = s->cs, *y = s->y ? (REAL *)s->y + t * s->y_t + b * s->y_b + off : NULL;
    const REAL *hr = (const REAL *)s->h_raw + o, *cr = s->c_raw ? (const REAL *)s->c_raw + o : NULL;
    for (int j = 0; j < n; j++) {
        const REAL d = FN(zone_d)(s->zh, s->zh_p, o + j), h = d * hs[o + j] + (1 - d) * hr[j];
        hs[o1 + j] = h;
        if (y) y[j] = h;
        if (cr) {
            const REAL dc = FN(zone_d)(s->zc, s->zc_p, o + j);
            cs[o1 + j] = dc * cs[o + j] + (1 - dc) * cr[j];
        }
    }
}

/* Step t's rows [b0, b1) (units [off, off + q->n); the products' row b − b0) through the kind's forward ``step``:
 * a constant in each case of fwd_rows' switch, which inlines this, so each kind gets a loop of its own and no row
 * dispatches. */
static inline __attribute__((always_inline)) void FN(fwd_rows_of)(const LkForward *s, FN(FwdRow) *q, int t,
                                                                  int off, const REAL *prod, const REAL *prod_x,
                                                                  int ld, int b0, int b1,
                                                                  void (*step)(const FN(FwdRow) *)) {
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const int B = s->B, H = s->H, GH = kind->gates * H, proj = kind->proj;
    const long saved_w = (long)kind->saved * H + 4;
    const int zone = s->h_raw != NULL;               /* zoneout: the step writes h̃, c̃ apart; zone_row mixes */
    REAL *gates = s->gates, *hs = s->hs, *cs = s->cs;
    for (int b = b0; b < b1; b++) {
        const long o = ((long)t * B + b) * H + off, o1 = o + (long)B * H;   /* (t, b, u0), (t + 1, b, u0) */
        q->gates = gates + ((long)t * B + b) * GH + off;
        q->prod = prod + (long)(b - b0) * ld;
        q->prod_x = prod_x ? prod_x + (long)(b - b0) * ld : NULL;
        q->saved = s->saved ? (REAL *)s->saved + ((long)t * B + b) * saved_w : NULL;
        q->h_prev = proj ? NULL : hs + o;            /* proj kinds: the step writes m_t; the scan projects it */
        q->h = proj ? (REAL *)s->ms + o : zone ? (REAL *)s->h_raw + o : hs + o1;
        q->c_prev = cs ? cs + o : NULL;
        q->c = cs ? (zone ? (REAL *)s->c_raw + o : cs + o1) : NULL;
        q->tanh_c = s->tanh_cs ? (REAL *)s->tanh_cs + o : NULL;
        q->hproj = s->hproj ? (REAL *)s->hproj + o : NULL;
        q->y = s->y && !proj && !zone ? (REAL *)s->y + t * s->y_t + b * s->y_b + off : NULL;
        step(q);
        if (zone) FN(zone_row)(s, t, b, off, q->n);
    }
}

#define LK_CASE(id, name, gates, cell, split, extra, proj, whole, saved)                                         \
    case id: FN(fwd_rows_of)(s, q, t, off, prod, prod_x, ld, b0, b1, FN(name##_forward)); return;
/* Step t's rows [b0, b1), units [off, off + q->n), through kind s->kind's forward. */
static void FN(fwd_rows)(const LkForward *s, FN(FwdRow) *q, int t, int off, const REAL *prod, const REAL *prod_x,
                         int ld, int b0, int b1) {
    switch (s->kind) { LK_KINDS(LK_CASE) }
}
#undef LK_CASE

/* Proj kinds, after step t's m_t is whole: this thread's columns [r.u0, r.u0 + r.n) of h_t = m_t W_hrᵀ (and y). */
static void FN(project)(const LkForward *s, const FN(Slice) *r, int t) {
    const int B = s->B, H = s->H, P = s->P;
    if (!r->n) return;
    FN(gemm_any)(r->bf, B, r->Npad, H, (const REAL *)s->ms + (long)t * B * H, H, r->packed, r->prod, r->Npad, 0);
    REAL *h = (REAL *)s->hs + (long)(t + 1) * B * P + r->u0;
    for (int b = 0; b < B; b++) {
        memcpy(h + (long)b * P, r->prod + (long)b * r->Npad, sizeof(REAL) * (size_t)r->n);
        if (s->y) memcpy((REAL *)s->y + t * s->y_t + b * s->y_b + r->u0, r->prod + (long)b * r->Npad,
                         sizeof(REAL) * (size_t)r->n);
    }
}

/* Forward: pack this thread's columns of W_hh^T (gate block k, unit u: row k·H + u) and of W_ih (and, proj kinds,
 * its columns of W_hrᵀ), then step. h has P units for proj kinds (else H): the products with W_hh have P terms. */
static void FN(forward_job)(void *arg, int tid, int nth) {
    LkForward *s = (LkForward *)arg;
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const int T = s->T, B = s->B, H = s->H, I = s->I, P = kind->proj ? s->P : H, by_rows = s->by_rows;
    const REAL *x = s->x;                            /* given: W_ih x_t is formed here (apart, for split kinds) */
    const REAL *hs = s->hs;
    const int direct = s->direct && s->wk == 1;      /* W_hh row-major: matrix-vector steps, no packing */
    int b0, b1;
    FN(rows_of)(by_rows, B, tid, nth, &b0, &b1);
    const int nb = b1 - b0;
    FN(Slice) p = FN(slice)(H, by_rows ? 0 : tid, by_rows ? 1 : nth, kind->gates, direct ? 0 : P, nb);
    FN(Slice) r = FN(slice)(kind->proj ? P : 0, tid, nth, 1, H, B);    /* proj kinds: W_hrᵀ's columns */
    REAL *packed_x = x ? FN(alloc)((long)p.Npad * I) : NULL;
    REAL *prod_x = x && kind->split ? FN(alloc)((long)nb * p.Npad) : NULL;
    REAL *h_in = s->rmask ? FN(alloc)((long)nb * P) : NULL;             /* h_{t-1} ⊙ rmask, this thread's rows */
    long *rows = malloc(sizeof(long) * (size_t)(p.N + r.N + 1)), *rows_x = malloc(sizeof(long) * (size_t)(p.N + 1));
    if (!p.ok || !r.ok || (x && !packed_x) || (x && kind->split && !prod_x) || !rows || !rows_x ||
        (s->rmask && !h_in) || (p.bf && !FN(bf_reserve)(B, P > I ? (P > H ? P : H) : (I > H ? I : H))))
        s->failed = 1;
    lk_barrier(nth);                                 /* all threads know whether memory was found */
    const int ok = !s->failed;
    if (ok) {
        FN(gate_rows)(rows, p.N, p.n, H, p.u0, s->wn);
        if (!direct) FN(pack_any)(p.bf, P, p.N, (const REAL *)s->w_hh_t, s->wk, rows, p.packed);
        if (x) {                                     /* W_ih (G·H, I) row-major: element (k, row) at row·I + k */
            FN(gate_rows)(rows_x, p.N, p.n, H, p.u0, I);
            FN(pack_any)(p.bf, I, p.N, (const REAL *)s->w_ih, 1, rows_x, packed_x);
        }
        if (r.n) {                                   /* W_hr (P, H) row-major: W_hrᵀ's element (k, c) at c·H + k */
            for (int c = 0; c < r.N; c++) rows[c] = (long)(r.u0 + c) * H;
            FN(pack_any)(r.bf, H, r.N, (const REAL *)s->w_hr, 1, rows, r.packed);
        }
    }
    FN(FwdRow) q = {.n = p.n, .H = H, .x_in = x == NULL, .bias = (const REAL *)s->bias + p.u0,
                    .b_loop = s->b_loop ? (const REAL *)s->b_loop + p.u0 : NULL,
                    .extra = s->extra ? (const REAL *)s->extra + p.u0 : NULL};
    for (int t = 0; t < T && ok; t++) {
        const REAL *h_prev = hs + ((long)t * B + b0) * P;
        const int work = p.n && nb;
        if (work && h_in) {                          /* recurrent dropout: the state as W_hh sees it */
            const REAL *m = (const REAL *)s->rmask + (long)b0 * P;
            for (long e = 0; e < (long)nb * P; e++) h_in[e] = h_prev[e] * m[e];
            h_prev = h_in;
        }
        if (work && direct) FN(gemv_rows)(B, p.N, H, h_prev, H, (const REAL *)s->w_hh_t, rows, p.prod, p.Npad);
        else if (work) FN(gemm_any)(p.bf, nb, p.Npad, P, h_prev, P, p.packed, p.prod, p.Npad, 0);
        if (work && x)                               /* added to the h side's, or apart (split kinds) */
            FN(gemm_any)(p.bf, nb, p.Npad, I, x + t * s->x_t + b0 * s->x_b, s->x_b, packed_x, prod_x ? prod_x : p.prod,
                         p.Npad, !prod_x);
        if (work) FN(fwd_rows)(s, &q, t, p.u0, p.prod, prod_x, p.Npad, b0, b1);
        if (!by_rows) lk_barrier(nth);               /* (by rows: this thread's rows need no other's) */
        if (kind->proj) {                            /* m_t is whole: h_t = W_hr m_t, then the next step needs it */
            FN(project)(s, &r, t);
            lk_barrier(nth);
        }
    }
    fence();                                         /* the streamed gates are in memory for the backward */
    free(rows);
    free(rows_x);
    free(packed_x);
    free(prod_x);
    free(h_in);
    FN(unslice)(&p);
    FN(unslice)(&r);
}

/* One backward step of the small-batch scan, after this thread wrote its units' pre-activation gradients of step
 * t: its rows' shares of dh_{t-1} (all units) and of dx_t (all columns) into ``mine`` (B, H + I), the barrier, then
 * dh_rec (B, n) of its units (plus ``carry`` for kinds without a cell) and its columns of dx_t, summed over every
 * thread's shares. */
static void FN(direct_back)(LkBackward *s, int tid, int nth, int t, int u0, int n, REAL *mine, REAL *dh_rec,
                            const REAL *carry, const REAL *bypass) {
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
            REAL v = 0;
            for (int y = 0; y < nth; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + u0 + j];
            if (s->rmask) v *= ((const REAL *)s->rmask)[(long)b * H + u0 + j];      /* (recurrent dropout) */
            dh_rec[(long)b * n + j] =
                v + (kind->cell ? 0 : carry[(long)b * n + j]) + (bypass ? bypass[(long)b * n + j] : 0);
        }
        if (s->dx)
            for (int c = x0; c < x1; c++) {
                REAL v = 0;
                for (int y = 0; y < nth; y++) v += ((const REAL *)s->shares[y])[par + (long)b * HI + H + c];
                ((REAL *)s->dx)[t * s->dx_t + b * s->dx_b + c] = v;
            }
    }
}

/* One thread's part of the backward: its slice of units [u0, u0 + n), its packed columns of W_hh (those of its
 * units, or for proj kinds its slice of h's P units), its columns [x0, x1) of dx_t with W_ih packed for them, and
 * its running buffers. */
typedef struct {
    FN(Slice) p;
    FN(Slice) r;                 /* proj kinds: W_hr's columns of this thread's units (K = P), for dL/dm_t */
    int u0, n;
    int b0, b1, nb;              /* this thread's rows of the batch (all B but by rows) */
    int x0, x1, Nx, packs_x;
    REAL *packed_x, *prod_x;     /* W_ih's columns [x0, x1), packed; their product row by row */
    REAL *shares;                /* small batches: (2, B, H + I), this thread's shares of dh_{t-1} and dx_t */
    REAL *dh_rec, *carry;        /* (B, n): see cells.h (proj kinds: dh_rec holds dL/dm_t) */
    REAL *zeros;                 /* proj kinds, zoneout: (n,) zeros, the step's dh_out (the gradient is all in dh_rec) */
    REAL *bypass, *c_bypass;     /* zoneout: (nb, n) the part of dL/dh_{t-1} that skips the step, dL/dh_t ⊙ d;
                                    (n,) c's, one row at a time */
    REAL *sums;                  /* db_x (G·H), db_h (G·H), d_extra (extra rows · H), one after the other: */
    REAL *db_x, *db_h, *d_extra; /* running sums over steps and this thread's rows (all units by rows: add
                                    every thread's at the end, the others write their own units) */
    long *cols;
} FN(Back);

/* The backward's prologue: allocate, then (all threads knowing that every one got its memory) pack this thread's
 * columns of W_hh (column u of the (G·H, H) matrix) and of W_ih, and zero what the first step adds to.
 * Returns 0 when any thread is out of memory. Small batches pack nothing: each thread steps over its own rows of
 * W_hh (and W_ih) as they lie, summing its rows' share of dh_{t-1} (and dx_t) for every unit into a buffer of
 * its own, two steps' worth; after the step's barrier each adds up its units' (and columns') shares. */
static int FN(back_begin)(LkBackward *s, int tid, int nth, FN(Back) *k) {
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const int B = s->B, H = s->H, GH = kind->gates * H, I = s->I, direct = s->direct, P = kind->proj ? s->P : H;
    const int by_rows = s->by_rows, mine = by_rows ? 0 : tid, of = by_rows ? 1 : nth;  /* by rows: every unit */
    FN(rows_of)(by_rows, B, tid, nth, &k->b0, &k->b1);
    const int nb = k->nb = k->b1 - k->b0;
    k->p = FN(slice)(P, mine, of, 1, direct ? 0 : GH, nb);
    k->r = FN(slice)(kind->proj ? H : 0, mine, of, 1, P, nb);
    k->u0 = kind->proj ? k->r.u0 : k->p.u0;
    k->n = kind->proj ? k->r.n : k->p.n;
    k->x0 = (int)((long)I * mine / of);
    k->x1 = (int)((long)I * (mine + 1) / of);
    k->Nx = FN(round_nr)(k->x1 - k->x0);
    k->packs_x = s->dx && !direct;
    k->packed_x = k->packs_x ? FN(alloc)((long)k->Nx * GH) : NULL;
    k->prod_x = k->packs_x ? FN(alloc)((long)nb * k->Nx) : NULL;
    k->sums = calloc((size_t)(2 * GH + kind->extra * H + 1), sizeof(REAL));
    k->shares = direct ? FN(alloc)(2L * B * (H + I)) : NULL;
    s->shares[tid] = by_rows ? k->sums : k->shares;
    const int most = k->p.N > I ? k->p.N : I;
    k->cols = malloc(sizeof(long) * (size_t)((most > k->r.N ? most : k->r.N) + 1));
    k->dh_rec = FN(alloc)((long)nb * k->n);
    k->carry = FN(alloc)((long)nb * k->n);
    const int zone = s->h_raw != NULL;
    k->zeros = kind->proj || zone ? calloc((size_t)k->n + 1, sizeof(REAL)) : NULL;
    k->bypass = zone ? calloc((size_t)nb * k->n + 1, sizeof(REAL)) : NULL;
    k->c_bypass = zone ? calloc((size_t)k->n + 1, sizeof(REAL)) : NULL;
    k->db_x = k->sums;
    k->db_h = k->sums ? k->sums + GH : NULL;
    k->d_extra = k->sums ? k->sums + 2 * GH : NULL;
    if (!k->p.ok || !k->r.ok || !k->cols || !k->dh_rec || !k->carry || !k->sums ||
        ((kind->proj || zone) && !k->zeros) || (zone && (!k->bypass || !k->c_bypass)) ||
        (k->packs_x && (!k->packed_x || !k->prod_x)) || (direct && !k->shares) ||
        (k->p.bf && !FN(bf_reserve)(B, GH > P ? GH : P)))
        s->failed = 1;
    lk_barrier(nth);
    if (s->failed) return 0;
    if (k->packs_x) {                                /* W_ih (G·H, I) row-major: element (k, column c) at k·I + c */
        for (int c = 0; c < k->x1 - k->x0; c++) k->cols[c] = k->x0 + c;
        FN(pack_any)(k->p.bf, GH, k->x1 - k->x0, (const REAL *)s->w_ih, I, k->cols, k->packed_x);
    }
    for (int c = 0; c < k->p.N; c++) k->cols[c] = k->p.u0 + c;
    if (!direct) FN(pack_any)(k->p.bf, GH, k->p.N, (const REAL *)s->w_hh, P, k->cols, k->p.packed);
    if (k->r.N) {                                    /* W_hr (P, H) row-major: element (p, unit u0 + c) at p·H + u0 + c */
        for (int c = 0; c < k->r.N; c++) k->cols[c] = k->u0 + c;
        FN(pack_any)(k->r.bf, P, k->r.N, (const REAL *)s->w_hr, H, k->cols, k->r.packed);
    }
    memset(k->dh_rec, 0, sizeof(REAL) * (size_t)nb * k->n);
    memset(k->carry, 0, sizeof(REAL) * (size_t)nb * k->n);
    return 1;
}

/* Step t's rows of this thread's units through the kind's backward: the final-state gradients entering where
 * sequences end, then the pre-activation gradients, the bias sums and the carry. */
static inline __attribute__((always_inline)) void FN(back_rows_of)(const LkBackward *s, const FN(Back) *k, int t,
                                                                   void (*step)(const FN(BwdRow) *)) {
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const int B = s->B, H = s->H, GH = kind->gates * H, n = k->n, u0 = k->u0, proj = kind->proj;
    const long saved_w = (long)kind->saved * H + 4;
    const REAL *hs = proj ? NULL : s->hs, *cs = s->cs;     /* (the kinds that read h have no projection) */
    REAL *dpre_x = s->dpre_x, *dpre_h = kind->split ? s->dpre_h : s->dpre_x;    /* one array unless split */
    FN(BwdRow) q = {.n = n, .H = H, .extra = s->extra ? (const REAL *)s->extra + u0 : NULL, .db_x = k->db_x + u0,
                    .db_h = k->db_h + u0, .d_extra = k->d_extra + u0};
    for (int b = k->b0; b < k->b1 && n; b++) {
        REAL *dhr = k->dh_rec + (long)(b - k->b0) * n, *car = k->carry + (long)(b - k->b0) * n;
        if (s->last[b] == t)                         /* the final-state gradient enters at the last step */
            for (int j = 0; j < n; j++) {
                if (!proj) dhr[j] += ((const REAL *)s->dh_n)[(long)b * H + u0 + j];    /* (proj: in dh_all) */
                if (kind->cell) car[j] += ((const REAL *)s->dc_n)[(long)b * H + u0 + j];
            }
        const long o = ((long)t * B + b) * H + u0, o1 = o + (long)B * H, og = ((long)t * B + b) * GH + u0;
        q.gates = (const REAL *)s->gates + og;
        const int zone = s->h_raw != NULL;           /* zoneout: the kind reads its own h̃, c̃ */
        q.h_prev = hs ? hs + o : NULL;
        q.h = zone ? (const REAL *)s->h_raw + o : hs ? hs + o1 : NULL;
        q.c_prev = cs ? cs + o : NULL;
        q.c = cs ? (zone ? (const REAL *)s->c_raw + o : cs + o1) : NULL;
        q.tanh_c = s->tanh_cs ? (const REAL *)s->tanh_cs + o : NULL;
        q.hproj = s->hproj ? (const REAL *)s->hproj + o : NULL;
        q.saved = s->saved ? (const REAL *)s->saved + ((long)t * B + b) * saved_w : NULL;
        q.dh_out = proj ? k->zeros : (const REAL *)s->dhs + t * s->dhs_t + b * s->dhs_b + u0;
        q.dh_rec = dhr;
        q.carry = car;
        q.dpre_x = dpre_x + og;
        q.dpre_h = dpre_h + og;
        if (zone) {                                  /* dL/dh_t splits: ⊙ (1 − d) into the step, ⊙ d past it */
            REAL *by = k->bypass + (long)(b - k->b0) * n;
            for (int j = 0; j < n; j++) {
                const REAL d = FN(zone_d)(s->zh, s->zh_p, o + j), dh = q.dh_out[j] + dhr[j];
                by[j] = dh * d;
                dhr[j] = dh * (1 - d);
                if (kind->cell) {
                    const REAL dc = FN(zone_d)(s->zc, s->zc_p, o + j);
                    k->c_bypass[j] = car[j] * dc;
                    car[j] *= 1 - dc;
                }
            }
            q.dh_out = k->zeros;
        }
        step(&q);
        if (zone && kind->cell)
            for (int j = 0; j < n; j++) car[j] += k->c_bypass[j];
    }
}

#define LK_CASE(id, name, gates, cell, split, extra, proj, whole, saved)                                         \
    case id: FN(back_rows_of)(s, k, t, FN(name##_backward)); return;
/* Step t's rows through kind s->kind's backward: a loop of its own for each kind, as fwd_rows. */
static void FN(back_rows)(const LkBackward *s, const FN(Back) *k, int t) {
    switch (s->kind) { LK_KINDS(LK_CASE) }
}
#undef LK_CASE

/* Proj kinds: this thread's columns [p.u0, p.u0 + p.n) of all of dL/dh_t into dh_all[t] (t = -1: dh0): ``rec``
 * (B rows ld apart) from step t + 1, or NULL, plus the outputs' gradient and the final-state gradients entering at
 * step t. */
static void FN(proj_dh)(const LkBackward *s, const FN(Back) *k, int t, const REAL *rec, long ld) {
    const int B = s->B, P = s->P, u0 = k->p.u0, n = k->p.n;
    REAL *dst = t >= 0 ? (REAL *)s->dh_all + (long)t * B * P : (REAL *)s->dh0;
    for (int b = 0; b < B; b++) {
        REAL *d = dst + (long)b * P + u0;
        const REAL *m = s->rmask ? (const REAL *)s->rmask + (long)b * P + u0 : NULL;
        for (int j = 0; j < n; j++) d[j] = rec ? rec[(long)b * ld + j] * (m ? m[j] : 1) : 0;
        if (t < 0) continue;
        const REAL *out = (const REAL *)s->dhs + t * s->dhs_t + b * s->dhs_b + u0;
        for (int j = 0; j < n; j++) d[j] += out[j];
        if (s->last[b] == t)
            for (int j = 0; j < n; j++) d[j] += ((const REAL *)s->dh_n)[(long)b * P + u0 + j];
    }
}

/* Proj kinds, before step t's rows: dL/dm_t of this thread's units = dL/dh_t · W_hr, into dh_rec. */
static void FN(proj_dm)(const LkBackward *s, const FN(Back) *k, int t) {
    const int B = s->B, P = s->P, n = k->n;
    if (!n) return;
    FN(gemm_any)(k->r.bf, B, k->r.Npad, P, (const REAL *)s->dh_all + (long)t * B * P, P, k->r.packed, k->r.prod, k->r.Npad, 0);
    for (int b = 0; b < B; b++)
        memcpy(k->dh_rec + (long)b * n, k->r.prod + (long)b * k->r.Npad, sizeof(REAL) * (size_t)n);
}

/* After step t's barrier, on the packed weights: this thread's columns of dx_t = dpre_x,t · W_ih, and dL/dh_{t-1}
 * of its units = dpre_h,t · W_hh (plus the carry of kinds without a cell; proj kinds: its slice of h's units, into
 * dh_all[t - 1] or dh0). */
static void FN(back_products)(const LkBackward *s, const FN(Back) *k, int t) {
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const int B = s->B, GH = kind->gates * s->H, n = k->p.n, b0 = k->b0, nb = k->nb;
    const REAL *dpre_h = kind->split ? s->dpre_h : s->dpre_x;
    const long row = ((long)t * B + b0) * GH;        /* this thread's first row of step t */
    if (s->dx && k->x1 > k->x0 && nb) {
        FN(gemm_any)(k->p.bf, nb, k->Nx, GH, (const REAL *)s->dpre_x + row, GH, k->packed_x, k->prod_x, k->Nx, 0);
        for (int b = 0; b < nb; b++)
            memcpy((REAL *)s->dx + t * s->dx_t + (b0 + b) * s->dx_b + k->x0, k->prod_x + (long)b * k->Nx,
                   sizeof(REAL) * (size_t)(k->x1 - k->x0));
    }
    if (!n || !nb) return;
    FN(gemm_any)(k->p.bf, nb, k->p.Npad, GH, dpre_h + row, GH, k->p.packed, k->p.prod, k->p.Npad, 0);
    if (kind->proj) {
        FN(proj_dh)(s, k, t - 1, k->p.prod, k->p.Npad);
        return;
    }
    for (int b = 0; b < nb; b++) {
        const REAL *m = s->rmask ? (const REAL *)s->rmask + (long)(b0 + b) * s->H + k->p.u0 : NULL;
        for (int j = 0; j < n; j++)                  /* (recurrent dropout masks what came through W_hh) */
            k->dh_rec[(long)b * n + j] = k->p.prod[(long)b * k->p.Npad + j] * (m ? m[j] : 1) +
                                         (kind->cell ? 0 : k->carry[(long)b * n + j]) +
                                         (k->bypass ? k->bypass[(long)b * n + j] : 0);   /* (zoneout) */
    }
}

/* By rows, the epilogue: every thread's sums (db_x, db_h, d_extra, each over its own rows) added up, each thread
 * a share of their elements. */
static void FN(back_sum_threads)(LkBackward *s, int tid, int nth) {
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const long GH = (long)kind->gates * s->H, len = 2 * GH + (long)kind->extra * s->H;
    lk_barrier(nth);                                 /* every thread's sums are complete */
    for (long e = len * tid / nth; e < len * (tid + 1) / nth; e++) {
        REAL v = 0;
        for (int y = 0; y < nth; y++) v += ((const REAL *)s->shares[y])[e];
        if (e < GH) {
            ((REAL *)s->db_x)[e] = v;
            if (!kind->split) ((REAL *)s->db_h)[e] = v;     /* (one gradient: the steps summed only db_x) */
        } else if (e < 2 * GH) {
            if (kind->split) ((REAL *)s->db_h)[e - GH] = v;
        } else {
            ((REAL *)s->d_extra)[e - 2 * GH] = v;
        }
    }
}

/* The backward's epilogue: this thread's rows and units of dh_0, dc_0; its units of the bias sums and the extra
 * parameters' gradient (by rows: every thread's sums added). */
static void FN(back_end)(LkBackward *s, const FN(Back) *k, int tid, int nth) {
    const LkKindInfo *kind = &lk_kinds[s->kind];
    const int H = s->H, n = k->n, u0 = k->u0;
    for (int b = k->b0; b < k->b1; b++)
        for (int j = 0; j < n; j++) {
            const long r = (long)(b - k->b0) * n + j;
            if (!kind->proj) ((REAL *)s->dh0)[(long)b * H + u0 + j] = k->dh_rec[r];
            if (kind->cell) ((REAL *)s->dc0)[(long)b * H + u0 + j] = k->carry[r];
        }
    if (s->by_rows) {
        FN(back_sum_threads)(s, tid, nth);
        return;
    }
    for (int g = 0; g < kind->gates; g++)
        for (int j = 0; j < n; j++) {
            long u = (long)g * H + u0 + j;
            ((REAL *)s->db_x)[u] = k->db_x[u];
            ((REAL *)s->db_h)[u] = kind->split ? k->db_h[u] : k->db_x[u];
        }
    for (int r = 0; r < kind->extra; r++)
        for (int j = 0; j < n; j++) ((REAL *)s->d_extra)[(long)r * H + u0 + j] = k->d_extra[(long)r * H + u0 + j];
}

static void FN(back_free)(FN(Back) *k) {
    free(k->sums);
    free(k->dh_rec);
    free(k->carry);
    free(k->shares);
    free(k->packed_x);
    free(k->prod_x);
    free(k->cols);
    free(k->zeros);
    free(k->bypass);
    free(k->c_bypass);
    FN(unslice)(&k->p);
    FN(unslice)(&k->r);
}

/* Backward: the prologue, then each step in reverse — the kind's backward on this thread's rows, one barrier, the
 * products that carry the gradient to step t − 1 and to x_t — then the epilogue. */
static void FN(backward_job)(void *arg, int tid, int nth) {
    LkBackward *s = (LkBackward *)arg;
    FN(Back) k;
    const int ok = FN(back_begin)(s, tid, nth, &k), proj = lk_kinds[s->kind].proj, by_rows = s->by_rows;
    const long half = (long)s->B * (s->H + s->I);
    if (ok && proj) {                                /* dL/dh_{T-1}: the outputs' and the final state's */
        FN(proj_dh)(s, &k, s->T - 1, NULL, 0);
        lk_barrier(nth);
    }
    for (int t = s->T - 1; t >= 0 && ok; t--) {
        if (proj) FN(proj_dm)(s, &k, t);
        FN(back_rows)(s, &k, t);
        if (s->direct) {                             /* (meets the others at the step's barrier inside) */
            FN(direct_back)(s, tid, nth, t, k.p.u0, k.p.n, k.shares + (t & 1) * half, k.dh_rec, k.carry, k.bypass);
            continue;
        }
        if (!by_rows) lk_barrier(nth);               /* every unit's pre-activation gradient of step t is written */
        FN(back_products)(s, &k, t);
        if (proj) lk_barrier(nth);                   /* all of dL/dh_{t-1} is written before its dL/dm_{t-1} */
    }
    if (ok) FN(back_end)(s, &k, tid, nth);
    if (s->direct || by_rows) lk_barrier(nth);       /* the others have read this thread's shares */
    FN(back_free)(&k);
}
