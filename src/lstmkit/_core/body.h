/* One instruction set, one precision: included by isa.h, once per precision, for each ISA kernels.c builds.
 *
 * Needs: REAL (float or double), RNAME (f32 / f64), ISA (avx512 / avx2 / generic), VBYTES (vector
 * width in bytes), ITYPE (the integer of REAL's size), IS_FLOAT (1 for float).
 *
 * In reading order: GCC vector-extension arithmetic of VBYTES-wide vectors, tanh, packing of a weight matrix
 * into column panels and a register-blocked product with the packed panels (vec.h), the same in bfloat16 where
 * the CPU has it and it is asked for (bf16.h); matrix-vector steps for
 * small batches (matvec.h); each cell kind's step forward and back (cells.h); the scans that run them on
 * lk_pool_run's threads, each thread a slice of the hidden units (scan.h); the weight gradients over all steps
 * (wgrad.h);
 * convolutions and dense products with im2col packed into the same micro-kernel's panels (conv.h).
 */

#define CAT3_(a, b, c) a##_##b##_##c
#define CAT3(a, b, c) CAT3_(a, b, c)
#define FN(name) CAT3(name, ISA, RNAME)

#define VL ((int)(VBYTES / sizeof(REAL)))
#define NR (2 * VL)                     /* panel width: two vectors */
#define MR 4                            /* rows per register block */
#if VBYTES == 64
#define MRP 12                          /* the weight gradients' rows: 24 accumulators of 32 vector registers */
#else
#define MRP 6                           /* 12 accumulators of 16 */
#endif

typedef REAL FN(V) __attribute__((vector_size(VBYTES)));
typedef REAL FN(UV) __attribute__((vector_size(VBYTES), aligned(sizeof(REAL))));
typedef ITYPE FN(VI) __attribute__((vector_size(VBYTES)));
#define V FN(V)
#define UV FN(UV)
#define VI FN(VI)

#include "vec.h"
#include "bf16.h"
#include "matvec.h"
#include "cells.h"
#include "scan.h"
#include "wgrad.h"
#include "conv.h"

#undef MRP
#undef KC

#undef V
#undef UV
#undef VI
#undef VL
#undef NR
#undef MR
#undef FN
