/* lstmkit's compiled core: shared declarations (the thread pool, the barrier, limits). */
#ifndef LK_CORE_H
#define LK_CORE_H

#define LK_MAX_THREADS 64

typedef void (*lk_job_fn)(void *arg, int tid, int nthreads);

/* Run fn(arg, tid, n) on n threads (the caller is tid 0); returns the number of threads used. */
int lk_pool_run(lk_job_fn fn, void *arg, int n);
/* All n threads of the running job wait here until each has arrived. */
void lk_barrier(int n);

/* What a scan job reads and writes (pointers to float or double, as the job's precision). */
typedef struct {
    int T, B, H, G, prescaled, act;   /* G gate blocks (4 LSTM, 3 GRU, 1 Elman); act: Elman 0 tanh, 1 relu */
    int direct;                       /* matrix-vector steps on the unpacked weights (small batches, body.h) */
    void *acts;                       /* (T, B, G·H): the input projections in, the gate activations out */
    const void *w;                    /* forward: W_hh^T, element (k, row) at w[k·wk + row·wn] */
    const void *x, *w_ih;             /* forward, optional: x (T, B, I) and W_ih (G·H, I), to form W_ih x_t here */
    int I;
    long wk, wn;
    const void *b_loop;               /* GRU: b_hn (H,) or NULL */
    const void *bias;                 /* (G·H,): the biases the input projections still lack (zeros without bias) */
    void *hs, *cs, *tcs, *aux;        /* (T+1, B, H), (T+1, B, H), (T, B, H) tanh c_t; GRU aux: W_hn h + b_hn */
    const void *w_hh;                 /* backward: W_hh (G·H, H), row-major */
    const void *dhs;                  /* (T, B, H): the outputs' gradient */
    const int *last;                  /* (B,): the step at which each sequence's final-state gradient enters */
    const void *dh_n, *dc_n;          /* (B, H) */
    void *dxp, *dhp;                  /* (T, B, G·H); the same array for LSTM and Elman */
    void *dh0, *dc0;                  /* (B, H) */
    void *db_x, *db_h;                /* (G·H,): Σ over steps and batch of dxp and of dhp (the bias gradients) */
    void *dx;                         /* backward, optional: (T, B, I) receives dxp_t · W_ih (with w_ih and I) */
    void *y;                          /* forward, optional: a second copy of each h_t (B·H elements a step) */
    long dhs_t, dhs_b, dx_t, dx_b, y_t, y_b;  /* element strides of dhs, dx, y between steps and batch rows */
    void *shares[LK_MAX_THREADS];     /* backward of small batches: each thread's partial sums (body.h) */
    volatile int failed;              /* set by any thread that could not get memory */
} LkScan;

/* What a weight-gradient job reads and writes (wgrad.h): C[q] += A[q]ᵀ · B[q] for q < nprod. */
typedef struct {
    int M, K, nprod;                  /* rows of every C (G·H); steps × batch */
    const void *a[2];                 /* (K, M), rows lda apart: the pre-activation gradients */
    const void *b[2];                 /* (K, N[q]), rows ldb apart: the inputs, the states */
    void *c[2];                       /* (M, N[q]), rows ldc apart: the gradients, added to */
    long lda[2], ldb[2], ldc[2];
    int N[2];
    volatile int failed;
} LkGrad;

#endif
