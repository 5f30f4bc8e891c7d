/* A pool of threads created once, and the barrier the scans meet at after every step.
 *
 * lk_pool_run(fn, arg, n) runs fn(arg, tid, n) on n threads, the caller being tid 0, and
 * returns when all have finished. Idle workers sleep (they never spin between jobs, so they
 * take no core from NumPy or BLAS work in between). Inside a job, lk_barrier(n) spins a
 * short while and then sleeps on a futex: spinning alone collapses when another busy process
 * shares the cores. One job runs at a time; a caller that finds the pool busy runs its job
 * on its own thread (n = 1). For a job's length each thread is pinned to a CPU of its own (the caller
 * to the one it is on, its affinity restored after): these VMs otherwise may start a woken worker on
 * the caller's CPU, and the two then take turns on one core (measured: a scan ran 2x slow that way).
 */
#define _GNU_SOURCE
#include "core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
static void futex_wait(atomic_int *addr, int expected) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void futex_wake(atomic_int *addr) {
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}
#else
static void futex_wait(atomic_int *addr, int expected) { (void)addr; (void)expected; sched_yield(); }
static void futex_wake(atomic_int *addr) { (void)addr; }
#endif

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#define SPIN 4000               /* pause iterations before a waiter sleeps (~50-100 us) */

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int started = 0;                        /* worker threads alive */
static atomic_int job_gen = 0;                 /* bumped to start a job */
static atomic_int job_left = 0;                /* workers still running the current job */
static lk_job_fn job_fn;
static void *job_arg;
static int job_n;

static atomic_int bar_count = 0;
static atomic_int bar_gen = 0;

#ifdef __linux__
static int job_cpu[LK_MAX_THREADS];            /* the CPU each thread runs the current job on, or -1 */
static int pinned_cpu[LK_MAX_THREADS];         /* the CPU each worker is pinned to now */

/* Choose a CPU per thread: the caller keeps its own, the workers take the other allowed ones. Returns 0 when
 * there are fewer allowed CPUs than threads (then nothing is pinned). */
static int choose_cpus(int n, cpu_set_t *saved) {
    if (sched_getaffinity(0, sizeof(cpu_set_t), saved) != 0 || CPU_COUNT(saved) < n) return 0;
    int here = sched_getcpu();
    if (here < 0 || !CPU_ISSET(here, saved)) return 0;
    job_cpu[0] = here;
    int t = 1;
    for (int c = 0; c < CPU_SETSIZE && t < n; c++)
        if (c != here && CPU_ISSET(c, saved)) job_cpu[t++] = c;
    return t == n;
}

static void pin_self(int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof(cpu_set_t), &one);
}
#endif

static void wait_change(atomic_int *word, int seen) {
    for (int i = 0; i < SPIN; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != seen) return;
        cpu_relax();
    }
    while (atomic_load_explicit(word, memory_order_acquire) == seen) futex_wait(word, seen);
}

void lk_barrier(int n) {
    if (n <= 1) return;
    int gen = atomic_load_explicit(&bar_gen, memory_order_acquire);
    if (atomic_fetch_add_explicit(&bar_count, 1, memory_order_acq_rel) + 1 == n) {
        atomic_store_explicit(&bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&bar_gen, 1, memory_order_release);
        futex_wake(&bar_gen);
        return;
    }
    wait_change(&bar_gen, gen);
}

static void *worker(void *p) {
    int tid = (int)(long)p;
    int seen = 0;
    for (;;) {
        int gen;
        while ((gen = atomic_load_explicit(&job_gen, memory_order_acquire)) == seen) futex_wait(&job_gen, seen);
        seen = gen;
        if (tid < job_n) {
#ifdef __linux__
            if (job_cpu[tid] >= 0 && pinned_cpu[tid] != job_cpu[tid]) {
                pin_self(job_cpu[tid]);
                pinned_cpu[tid] = job_cpu[tid];
            }
#endif
            job_fn(job_arg, tid, job_n);
            if (atomic_fetch_sub_explicit(&job_left, 1, memory_order_acq_rel) == 1) futex_wake(&job_left);
        }
    }
    return NULL;
}

/* In a child forked from a process whose pool had started (multiprocessing, a data loader), the workers
 * do not exist: forget them, so the child starts its own instead of waiting on threads that never answer. */
static void forget_workers_after_fork(void) {
    started = 0;
    atomic_store(&job_gen, 0);
    atomic_store(&job_left, 0);
    atomic_store(&bar_count, 0);
    pthread_mutex_init(&run_lock, NULL);
    pthread_mutex_init(&start_lock, NULL);
}

static int ensure_workers(int n) {
    static int registered = 0;
    pthread_mutex_lock(&start_lock);
    if (!registered) {
        pthread_atfork(NULL, NULL, forget_workers_after_fork);
        registered = 1;
    }
    while (started < n - 1 && started < LK_MAX_THREADS - 1) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
#ifdef __linux__
        pinned_cpu[started + 1] = -1;
#endif
        if (pthread_create(&th, &attr, worker, (void *)(long)(started + 1)) != 0) {
            pthread_attr_destroy(&attr);
            break;
        }
        pthread_attr_destroy(&attr);
        started++;
    }
    int have = started + 1;
    pthread_mutex_unlock(&start_lock);
    return have < n ? have : n;
}

int lk_pool_run(lk_job_fn fn, void *arg, int n) {
    if (n > LK_MAX_THREADS) n = LK_MAX_THREADS;
    if (n <= 1 || pthread_mutex_trylock(&run_lock) != 0) {
        fn(arg, 0, 1);
        return 1;
    }
    n = ensure_workers(n);
    if (n <= 1) {
        pthread_mutex_unlock(&run_lock);
        fn(arg, 0, 1);
        return 1;
    }
    job_fn = fn;
    job_arg = arg;
    job_n = n;
#ifdef __linux__
    cpu_set_t saved;
    int pinned = choose_cpus(n, &saved);
    for (int t = 0; t < n; t++)
        if (!pinned) job_cpu[t] = -1;
    if (pinned) pin_self(job_cpu[0]);
#endif
    atomic_store_explicit(&bar_count, 0, memory_order_relaxed);
    atomic_store_explicit(&job_left, n - 1, memory_order_release);
    atomic_fetch_add_explicit(&job_gen, 1, memory_order_release);
    futex_wake(&job_gen);
    fn(arg, 0, n);
    int left;
    for (int i = 0; i < SPIN && (left = atomic_load_explicit(&job_left, memory_order_acquire)) != 0; i++) cpu_relax();
    while ((left = atomic_load_explicit(&job_left, memory_order_acquire)) != 0) futex_wait(&job_left, left);
#ifdef __linux__
    if (pinned) sched_setaffinity(0, sizeof(cpu_set_t), &saved);
#endif
    pthread_mutex_unlock(&run_lock);
    return n;
}

/* ---- how far apart the pool's first two CPUs are ---------------------------------------------------------- */

static struct {
    _Alignas(64) atomic_long ball;             /* on a line of its own: each hit moves the line between the CPUs */
    char pad[64 - sizeof(atomic_long)];
    long rounds;
    double ns;
} rally;

static void rally_job(void *arg, int tid, int n) {
    (void)arg;
    if (n < 2 || tid > 1) return;
    struct timespec t0, t1;
    if (tid == 0) clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < rally.rounds; i++) {
        const long serve = 2 * i + tid;                 /* thread 0 hits at even counts, thread 1 at odd */
        while (atomic_load_explicit(&rally.ball, memory_order_acquire) != serve) cpu_relax();
        atomic_store_explicit(&rally.ball, serve + 1, memory_order_release);
    }
    if (tid == 0) {
        while (atomic_load_explicit(&rally.ball, memory_order_acquire) != 2 * rally.rounds) cpu_relax();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        rally.ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)rally.rounds;
    }
}

/* Nanoseconds for a cache line to go from the caller's CPU to the pool's first worker's and back (each pinned as
 * for a scan), the mean of ``rounds``; -1 with fewer than two threads. What every barrier of a scan waits for at
 * least: on a VM whose two vCPUs land on different core complexes it is several times longer. */
double lk_round_trip_ns(long rounds) {
    rally.rounds = rounds > 0 ? rounds : 1;
    rally.ns = -1;
    atomic_store(&rally.ball, 0);
    return lk_pool_run(rally_job, NULL, 2) == 2 ? rally.ns : -1;
}
