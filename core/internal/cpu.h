/* Internal: what the running CPU has, for the run-time choice of SIMD paths
 * (the binary is built for baseline x86-64; each fast path is compiled with
 * its own target attribute and entered only when its test here says yes). */
#ifndef MPLB_CPU_H
#define MPLB_CPU_H

/* AVX2 with FMA and F16C: what every AVX2 path in libmplb uses */
static inline int mplb_cpu_avx2(void) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

#endif
