/* One instruction set (ISA, VBYTES defined by the includer): body.h in float32, then in float64. */
#define REAL float
#define RNAME f32
#define ITYPE int32_t
#define IS_FLOAT 1
#include "body.h"
#undef REAL
#undef RNAME
#undef ITYPE
#undef IS_FLOAT

#define REAL double
#define RNAME f64
#define ITYPE int64_t
#define IS_FLOAT 0
#include "body.h"
#undef REAL
#undef RNAME
#undef ITYPE
#undef IS_FLOAT
