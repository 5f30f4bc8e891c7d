/* Convolutions and dense products (included by body.h, after wgrad.h's micro-kernel): im2col packed straight
 * into the micro-kernel's panels, never formed whole.
 *
 * With x (N, H, W, C) NHWC, each image zero-padded to xp (Hp, Wp, C), the kernel w (kh·kw·C, O) and K = kh·kw·C
 * taps,
 *
 *     y[p, o] = b[o] + Σ_k xp[base(p) + off(k)] · w[k, o]           (forward, p = (n, u, v) an output pixel)
 *     dW[k, o] += Σ_p xp[base(p) + off(k)] · dy[p, o],  db[o] += Σ_p dy[p, o]      (weight gradient)
 *
 * where base(p) = (u·sh·Wp + v·sw)·C is the pixel's window corner in its image and off(k) = (i·dh·Wp + j·dw)·C + c
 * the tap k = (i, j, c) inside it. A dense layer is the 1×1 case (H = W = 1, C its inputs); the input gradient at
 * stride 1 is the forward over dy padded "full" with the kernel flipped (conv.py builds it).
 *
 * Forward: threads take runs of MRP-pixel tiles; a tile's receptive fields go straight into an A micro-panel
 * (k-major), the weights were packed once (lk_conv_forward, before the job), and the tile of y is written with
 * the bias (and ReLU) added while it is in L1. Weight gradient: threads take runs of pixel blocks, each summing
 * into its own (K + 1, O) buffer; then each adds a share of the rows of every buffer into dW. With padding, a
 * thread copies the image its tiles are in into a padded buffer of its own (one image: in cache, and no padded
 * copy of the batch is ever made), and tiles do not cross images; without, x is read as it lies and tiles run on
 * across images (a dense layer's "images" are single pixels). */

/* Where a thread reads its pixels: x itself (n counted in a corner), or its own padded copy of image ``n`` (not). */
typedef struct { const REAL *src; long Hs, Ws, per; int padded, n; REAL *buf; } FN(Image);

static int FN(needs_padding)(const LkConv *s) {
    return s->pt || s->pl || s->Hp != s->H || s->Wp != s->W;
}

/* Ready to read image n (a no-op without padding, or when the buffer holds it already). */
static void FN(image)(const LkConv *s, FN(Image) *im, int n) {
    if (!im->padded || im->n == n) return;
    const int C = s->C, W = s->W, rows = s->H + s->pt < s->Hp ? s->H : s->Hp - s->pt;
    const int cols = s->W + s->pl < s->Wp ? s->W : s->Wp - s->pl;
    for (int h = 0; h < rows; h++)                                   /* the borders stay as the calloc left them */
        memcpy(im->buf + ((long)(h + s->pt) * s->Wp + s->pl) * C, (const REAL *)s->x + (((long)n * s->H + h) * W) * C,
               sizeof(REAL) * (size_t)cols * C);
    im->n = n;
}

/* The reader for this thread: NULL buffer when padding is needed and no memory is left (check ok). */
static FN(Image) FN(reader)(const LkConv *s, int *ok) {
    FN(Image) im = {(const REAL *)s->x, s->H, s->W, (long)s->H * s->W * s->C, 0, -1, NULL};
    *ok = 1;
    if (!FN(needs_padding)(s)) return im;
    im.padded = 1;
    im.Hs = s->Hp;
    im.Ws = s->Wp;
    im.per = 0;
    im.buf = calloc((size_t)s->Hp * s->Wp * s->C + VL, sizeof(REAL));
    im.src = im.buf;
    *ok = im.buf != NULL;
    return im;
}

/* A run of taps contiguous in the input: its first tap's offset from a pixel's window corner, its index (from
 * the start of the range it was made for) and its length. Taps (i, j, 0..C-1) are one run; with no dilation
 * across, a kernel row's taps are. */
#ifndef LK_RUN
#define LK_RUN
typedef struct { long off; int k, len; } Run;
#endif

/* The runs of taps [k0, k1) into run[]; returns how many (at most k1 - k0). */
static int FN(runs)(const LkConv *s, const FN(Image) *im, int k0, int k1, Run *run) {
    int count = 0;
    for (int k = k0; k < k1;) {
        const int ij = k / s->C, c = k % s->C, len = s->C - c < k1 - k ? s->C - c : k1 - k;
        const long off = ((long)(ij / s->kw) * s->dil_h * im->Ws + (long)(ij % s->kw) * s->dil_w) * s->C + c;
        if (count && run[count - 1].off + run[count - 1].len == off)
            run[count - 1].len += len;
        else
            run[count++] = (Run){off, k - k0, len};
        k += len;
    }
    return count;
}

/* The window corners of ``count`` pixels from p (n, u, v) on, advancing (n, u, v) past them (with padding they
 * are all in image n, the one the buffer holds). */
static void FN(corners)(const LkConv *s, const FN(Image) *im, int *n, int *u, int *v, int count, long *base) {
    for (int r = 0; r < count; r++) {
        base[r] = (long)*n * im->per + ((long)*u * s->sh * im->Ws + (long)*v * s->sw) * s->C;
        if (++*v == s->Wo) {
            *v = 0;
            if (++*u == s->Ho) { *u = 0; ++*n; }
        }
    }
}

static void FN(pixel_at)(const LkConv *s, long p, int *n, int *u, int *v) {
    const long hw = (long)s->Ho * s->Wo;
    *n = (int)(p / hw);
    *u = (int)(p % hw / s->Wo);
    *v = (int)(p % s->Wo);
}

/* Bp: rows [0, K) of a K × O matrix as column panels of NR (k-major, zero past O), block by block of KC rows:
 * element (k, o) at w[k·wk + o·wo]. Block k0 starts at Bp + k0·Opad, its panel q at + q·kc·NR. Thread 0 packs,
 * the others wait at the barrier (it is small beside the products). */
static void FN(pack_shared)(const REAL *w, long wk, long wo, int K, int O, REAL *Bp, int tid, int n) {
    const int Opad = FN(round_nr)(O);
    for (int k0 = 0; k0 < K && tid == 0; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        for (int j0 = 0; j0 < Opad; j0 += NR) {
            REAL *panel = Bp + (long)k0 * Opad + (long)j0 * kc;
            for (int k = 0; k < kc; k++)
                for (int j = 0; j < NR; j++)
                    panel[(long)k * NR + j] = j0 + j < O ? w[(long)(k0 + k) * wk + (long)(j0 + j) * wo] : 0;
        }
    }
    lk_barrier(n);
}

/* A run of ``size`` pixels cut into pieces of at most ``piece``, per image with padding (pieces do not cross
 * images), else end to end: piece t's first pixel and length. */
static void FN(piece)(const LkConv *s, int padded, int piece, long t, long *p0, int *len) {
    const long hw = (long)s->Ho * s->Wo, P = (long)s->N * hw;
    if (!padded) {
        *p0 = t * piece;
        *len = P - *p0 < piece ? (int)(P - *p0) : piece;
        return;
    }
    const long per = (hw + piece - 1) / piece, img = t / per;
    *p0 = img * hw + (t % per) * piece;
    *len = (img + 1) * hw - *p0 < piece ? (int)((img + 1) * hw - *p0) : piece;
}

/* Piece t of the run (FN(piece)): its first pixel p0, its image made ready, its pixels' window corners in base;
 * returns its length. */
static int FN(visit)(const LkConv *s, FN(Image) *im, int padded, int piece, long t, long *p0, long *base) {
    int len, pn, pu, pv;
    FN(piece)(s, padded, piece, t, p0, &len);
    FN(pixel_at)(s, *p0, &pn, &pu, &pv);
    FN(image)(s, im, pn);
    FN(corners)(s, im, &pn, &pu, &pv, len, base);
    return len;
}

static long FN(pieces)(const LkConv *s, int padded, int piece) {
    const long hw = (long)s->Ho * s->Wo;
    return padded ? (long)s->N * ((hw + piece - 1) / piece) : ((long)s->N * hw + piece - 1) / piece;
}

/* One tile of MRP output pixels (window corners base[], ``rows`` of them real) into C (MRP rows ldc apart, all K
 * taps summed): read where they lie when the corners are evenly spaced and the stride has a kernel, else packed. */
static void FN(conv_tile)(const LkConv *s, const FN(Image) *im, int K, int Opad, const REAL *Bp, const Run *run,
                          const int *first, const long *off, REAL *Ap, const long *base, int rows, REAL *C, long ldc) {
    const int O = s->O, rs = s->sw * s->C;             /* pixel to pixel along a row */
    int one_row = rows == MRP;                         /* the tile's corners rs apart, as along a row */
    for (int r = 1; r < MRP && one_row; r++) one_row = base[r] - base[r - 1] == rs;
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        if (one_row) {                                 /* read where they lie, if the stride has a kernel */
            int done = 1;
            for (int j0 = 0; j0 < O && done; j0 += NR)
                done = FN(kern_rows)(kc, im->src + base[0], off + k0, Bp + (long)k0 * Opad + (long)j0 * kc,
                                     C + j0, ldc, O - j0 < NR ? O - j0 : NR, rs, k0 > 0);
            if (done) continue;
        }
        const Run *r0 = run + first[k0 / KC], *r1 = run + first[k0 / KC + 1];
        for (int r = 0; r < MRP; r++) {                              /* the tile's receptive fields */
            const REAL *px = im->src + base[r];
            for (const Run *q = r0; q < r1; q++) {
                const REAL *src = px + q->off;
                REAL *dst = Ap + (long)q->k * MRP + r;
                for (int t = 0; t < q->len; t++) dst[(long)t * MRP] = src[t];
            }
        }
        for (int j0 = 0; j0 < O; j0 += NR)
            FN(kern_pp)(kc, Ap, Bp + (long)k0 * Opad + (long)j0 * kc, C + j0, ldc, rows, O - j0 < NR ? O - j0 : NR,
                        k0 > 0);
    }
}

/* One output pixel's row: y = src + bias, then max(·, 0) with relu (src may be y). */
static inline void FN(conv_out)(const LkConv *s, const REAL *src, REAL *y, const REAL *bias) {
    const int O = s->O;
    for (int j = 0, m; m = O - j < VL ? O - j : VL, j < O; j += VL) {
        V v = FN(loadn)(src + j, m);
        if (bias) v += FN(loadn)(bias + j, m);
        if (s->relu) v = FN(select)(v < 0, (V){0}, v);
        FN(storen)(y + j, v, m);
    }
}

static void FN(conv_forward_job)(void *arg, int tid, int n) {
    LkConv *s = (LkConv *)arg;
    const int K = s->kh * s->kw * s->C, O = s->O, Opad = FN(round_nr)(O), padded = FN(needs_padding)(s);
    FN(pack_shared)((const REAL *)s->w, s->wk, s->wo, K, O, (REAL *)s->packed, tid, n);
    /* Stride 1 on a padded image: a tile's corners are C apart even where it crosses into the next row, if the
     * padding columns count as (virtual) output pixels; so every tile is read where it lies, and only the real
     * pixels are written. vspan: an image's virtual pixels up to its last real one. */
    const int virt = padded && s->sh == 1 && s->sw == 1;
    const long Ho = s->Ho, vspan = (Ho - 1) * s->Wp + s->Wo, vper = (vspan + MRP - 1) / MRP;
    const long tiles = virt ? s->N * vper : FN(pieces)(s, padded, MRP);
    const long t0 = tiles * tid / n, t1 = tiles * (tid + 1) / n;
    if (t0 >= t1) return;
    int ok;
    FN(Image) im = FN(reader)(s, &ok);
    if (!ok) {
        s->failed = 1;
        return;
    }
    const int blocks = (K + KC - 1) / KC;
    Run *run = malloc(sizeof(Run) * (size_t)(K + blocks));
    int *first = malloc(sizeof(int) * (size_t)(blocks + 1));          /* block b's runs: first[b] .. first[b + 1] */
    REAL *Ap = FN(alloc)((long)MRP * KC);
    long *off = malloc(sizeof(long) * (size_t)K);                       /* each tap's offset from the corner */
    if (!run || !first || !Ap || !off) {
        s->failed = 1;
        free(run);
        free(first);
        free(Ap);
        free(off);
        free(im.buf);
        return;
    }
    for (int k = 0; k < K; k++) {
        Run one;
        FN(runs)(s, &im, k, k + 1, &one);
        off[k] = one.off;
    }
    first[0] = 0;
    for (int b = 0; b < blocks; b++)
        first[b + 1] = first[b] + FN(runs)(s, &im, b * KC, (b + 1) * KC < K ? (b + 1) * KC : K, run + first[b]);
    const REAL *Bp = (const REAL *)s->packed, *bias = (const REAL *)s->bias;
    long base[MRP];
    REAL *tile = virt ? FN(alloc)((long)MRP * Opad) : NULL;
    if (virt && !tile) s->failed = 1;
    for (long t = t0; t < t1 && (tile || !virt); t++) {
        long p0;
        int rows;
        REAL *Y;                                           /* where the tile's rows go, O apart */
        if (virt) {                                        /* tile t of image img: virtual pixels f0 .. */
            const long img = t / vper;
            long f0 = t % vper * MRP;
            int skip = 0;
            if (f0 + MRP > vspan) {                        /* the image's last tile, moved back to end at its end */
                skip = (int)(f0 - (vspan - MRP > 0 ? vspan - MRP : 0));
                f0 -= skip;
            }
            rows = vspan - f0 < MRP ? (int)(vspan - f0) : MRP;
            FN(image)(s, &im, (int)img);
            for (int r = 0; r < MRP; r++) base[r] = (f0 + (r < rows ? r : 0)) * s->C;
            p0 = img * Ho * s->Wo;
            long u = (f0 + skip) / s->Wp, v = (f0 + skip) % s->Wp;
            if (skip || v + rows > s->Wo) {                /* padding columns among them: the real pixels into y */
                FN(conv_tile)(s, &im, K, Opad, Bp, run, first, off, Ap, base, rows, tile, Opad);
                for (int r = skip; r < rows; r++) {
                    REAL *y = (REAL *)s->y + (p0 + u * s->Wo + v) * O;
                    if (v < s->Wo) FN(conv_out)(s, tile + (long)r * Opad, y, bias);
                    if (++v == s->Wp) { v = 0; u++; }
                }
                continue;
            }
            Y = (REAL *)s->y + (p0 + u * s->Wo + v) * O;   /* real pixels of one row: straight into y */
        } else {
            rows = FN(visit)(s, &im, padded, MRP, t, &p0, base);
            for (int r = rows; r < MRP; r++) base[r] = base[0];      /* a short tile's spare rows: unused */
            Y = (REAL *)s->y + p0 * O;
        }
        FN(conv_tile)(s, &im, K, Opad, Bp, run, first, off, Ap, base, rows, Y, O);
        for (int r = 0; r < rows; r++) FN(conv_out)(s, Y + (long)r * O, Y + (long)r * O, bias);
    }
    free(tile);
    free(run);
    free(first);
    free(off);
    free(Ap);
    free(im.buf);
}

/* The weight gradient: this thread's pixels [p0, p1) into its own buffer part (Kb, O) (Kb = K + 1 with a bias:
 * its last row Σ dy, summed from dy's packed panels), then, after a barrier, its share of the rows of every
 * thread's buffer into dW. */
static void FN(conv_wgrad_job)(void *arg, int tid, int n) {
    LkConv *s = (LkConv *)arg;
    const int K = s->kh * s->kw * s->C, O = s->O, Opad = FN(round_nr)(O), Kb = K + (s->bias != NULL);
    const int padded = FN(needs_padding)(s), panels = (K + MRP - 1) / MRP;          /* (the bias row: summed apart) */
    const long blocks = FN(pieces)(s, padded, KC), b0 = blocks * tid / n, b1 = blocks * (tid + 1) / n;
    int have_image;
    FN(Image) im = FN(reader)(s, &have_image);
    REAL *part = (REAL *)s->parts[tid];
    Run *run = malloc(sizeof(Run) * (size_t)panels * MRP);           /* panel m's runs: run + m·MRP, nrun[m] */
    int *nrun = malloc(sizeof(int) * (size_t)panels);
    long *base = malloc(sizeof(long) * KC);
    REAL *Ap = FN(alloc)((long)MRP * KC), *Bp = FN(alloc)((long)Opad * KC);
    const int ok = have_image && run && nrun && base && Ap && Bp;
    if (!ok) s->failed = 1;
    if (ok) {
        for (int m = 0; m < panels; m++)
            nrun[m] = FN(runs)(s, &im, m * MRP, (m + 1) * MRP < K ? (m + 1) * MRP : K, run + m * MRP);
        memset(part, 0, sizeof(REAL) * (size_t)Kb * O);
        for (long b = b0; b < b1; b++) {
            long q0;
            const int kc = FN(visit)(s, &im, padded, KC, b, &q0, base);
            const REAL *dy = (const REAL *)s->dy + q0 * O;
            const FN(Rows) dy_rows = {dy, O, 0, 0};
            FN(pack_b)(&dy_rows, O, 0, kc, Bp);                             /* dy rows q0.. as panels */
            if (Kb > K)                                                     /* db: Σ dy, from the panels */
                for (int j0 = 0; j0 < O; j0 += NR) {
                    const REAL *panel = Bp + (long)j0 * kc;
                    V s0 = {0}, s1 = {0};
                    for (int q = 0; q < kc; q++) {
                        s0 += FN(load)(panel + (long)q * NR);
                        s1 += FN(load)(panel + (long)q * NR + VL);
                    }
                    REAL *db = part + (long)K * O + j0;
                    const int cols = O - j0 < NR ? O - j0 : NR;
                    FN(acc)(db, 0, cols < VL ? cols : VL, s0);
                    if (cols > VL) FN(acc)(db, VL, cols - VL, s1);
                }
            for (int m0 = 0; m0 < K; m0 += MRP) {
                const int rows = K - m0 < MRP ? K - m0 : MRP;
                const Run *r0 = run + (m0 / MRP) * MRP, *r1 = r0 + nrun[m0 / MRP];
                if (r1 - r0 == 1 && r0->len == MRP) {                         /* MRP taps side by side: read */
                    for (int j0 = 0; j0 < O; j0 += NR)                        /* where they lie */
                        FN(kern_at)(kc, im.src + r0->off, base, Bp + (long)j0 * kc, part + (long)m0 * O + j0, O,
                                    MRP, O - j0 < NR ? O - j0 : NR);
                    continue;
                }
                for (int q = 0; q < kc; q++) {                                /* taps m0.. of each pixel */
                    const REAL *px = im.src + base[q];
                    REAL *dst = Ap + (long)q * MRP;
                    for (const Run *u = r0; u < r1; u++)
                        for (int t = 0; t < u->len; t++) dst[u->k + t] = px[u->off + t];
                    for (int r = rows; r < MRP; r++) dst[r] = 0;
                }
                for (int j0 = 0; j0 < O; j0 += NR)
                    FN(kern_pp)(kc, Ap, Bp + (long)j0 * kc, part + (long)m0 * O + j0, O, rows,
                                O - j0 < NR ? O - j0 : NR, 1);
            }
        }
    }
    free(im.buf);
    free(run);
    free(nrun);
    free(base);
    free(Ap);
    free(Bp);
    lk_barrier(n);
    if (s->failed) return;
    const long e0 = (long)Kb * O * tid / n, e1 = (long)Kb * O * (tid + 1) / n;
    REAL *dw = (REAL *)s->dw;
    for (int t = 0; t < n; t++) {
        const REAL *pt = (const REAL *)s->parts[t];
        for (long e = e0; e < e1; e++) dw[e] += pt[e];
    }
}

/* The input gradient by scattering (any stride, dilation, padding; few input channels): per tile of output pixels,
 * dcols (rows, K) = dy (rows, O) · Wᵀ in the micro-kernel (dy's rows read where they lie), then each pixel's row
 * added back over its receptive field in a padded image of the thread's own, which is then cut into dx. Threads
 * take whole images (receptive fields overlap only within one). */
static void FN(conv_input_grad_job)(void *arg, int tid, int n) {
    LkConv *s = (LkConv *)arg;
    const int C = s->C, K = s->kh * s->kw * C, O = s->O, Kpad = FN(round_nr)(K);
    const long hw = (long)s->Ho * s->Wo, Hp = s->Hp, Wp = s->Wp;
    FN(pack_shared)((const REAL *)s->w, s->wo, s->wk, O, K, (REAL *)s->packed, tid, n);       /* Wᵀ: O × K */
    REAL *pad = calloc((size_t)(Hp * Wp * C + VL), sizeof(REAL)), *tile = FN(alloc)((long)MRP * Kpad);
    REAL *Ap = FN(alloc)((long)MRP * KC);
    Run *run = malloc(sizeof(Run) * (size_t)K);
    long *at = malloc(sizeof(long) * (size_t)(O + 1));
    if (!pad || !tile || !Ap || !run || !at) {
        s->failed = 1;
        free(pad), free(tile), free(Ap), free(run), free(at);
        return;
    }
    FN(Image) im = {pad, Hp, Wp, 0, 1, -1, pad};
    const int nrun = FN(runs)(s, &im, 0, K, run);
    for (int k = 0; k <= O; k++) at[k] = k;
    const REAL *Bp = (const REAL *)s->packed;
    long base[MRP];
    for (long img = (long)s->N * tid / n; img < (long)s->N * (tid + 1) / n; img++) {
        memset(pad, 0, sizeof(REAL) * (size_t)(Hp * Wp * C));
        for (long p0 = 0; p0 < hw; p0 += MRP) {
            const int rows = hw - p0 < MRP ? (int)(hw - p0) : MRP;
            int pn = 0, pu = (int)(p0 / s->Wo), pv = (int)(p0 % s->Wo);
            FN(corners)(s, &im, &pn, &pu, &pv, rows, base);
            const REAL *dy = (const REAL *)s->dy + (img * hw + p0) * O;
            for (int k0 = 0; k0 < O; k0 += KC) {
                const int kc = O - k0 < KC ? O - k0 : KC;
                for (int j0 = 0; j0 < K; j0 += NR) {
                    const int cols = K - j0 < NR ? K - j0 : NR;
                    const REAL *panel = Bp + (long)k0 * Kpad + (long)j0 * kc;
                    if (rows == MRP && FN(kern_rows)(kc, dy, at + k0, panel, tile + j0, Kpad, cols, O, k0 > 0))
                        continue;
                    if (j0 == 0)                                          /* dy's rows, packed */
                        for (int k = 0; k < kc; k++)
                            for (int r = 0; r < MRP; r++) Ap[(long)k * MRP + r] = r < rows ? dy[(long)r * O + k0 + k] : 0;
                    FN(kern_pp)(kc, Ap, panel, tile + j0, Kpad, rows, cols, k0 > 0);
                }
            }
            for (int r = 0; r < rows; r++) {                              /* back over the receptive fields */
                REAL *px = pad + base[r];
                const REAL *row = tile + (long)r * Kpad;
                for (int q = 0; q < nrun; q++)
                    for (int t = 0; t < run[q].len; t++) px[run[q].off + t] += row[run[q].k + t];
            }
        }
        REAL *dx = (REAL *)s->y + img * s->H * s->W * C;                 /* the image, unpadded */
        for (int h = 0; h < s->H; h++) {
            const long hp = h + s->pt;
            if (hp >= Hp) {
                memset(dx + (long)h * s->W * C, 0, sizeof(REAL) * (size_t)(s->H - h) * s->W * C);
                break;
            }
            const int cols = s->W + s->pl <= Wp ? s->W : (int)(Wp - s->pl);
            memcpy(dx + (long)h * s->W * C, pad + (hp * Wp + s->pl) * C, sizeof(REAL) * (size_t)cols * C);
            if (cols < s->W) memset(dx + ((long)h * s->W + cols) * C, 0, sizeof(REAL) * (size_t)(s->W - cols) * C);
        }
    }
    free(pad), free(tile), free(Ap), free(run), free(at);
}
