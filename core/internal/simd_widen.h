/* AVX2 widening of packed weights to floats, shared by the dequantizers
 * (quant_simd.c) and the small-batch GEMM (ffn_simd.c). Internal: include
 * only where AVX2, FMA and F16C are enabled for the including functions
 * (MPLB_WIDEN is their target attribute). Each is exact: bf16 is a float's
 * top half; e5m2 is an fp16's top byte and e4m3 moves into an fp16 worth
 * 2^-8 of it, both widened by F16C. */
#ifndef MPLB_SIMD_WIDEN_H
#define MPLB_SIMD_WIDEN_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define MPLB_WIDEN __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

/* 8 bf16 codes -> floats */
MPLB_WIDEN __m256 mplb_widen_bf16(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* 8 fp8 codes -> floats, NaN codes not fixed up: e5m2 NaN/Inf come out as
 * fp16's own, an e4m3 NaN code (S.1111.111) as +-480. codes: the bytes,
 * widened to 32 bits, for a caller that needs them. */
MPLB_WIDEN __m256 mplb_widen_fp8(const uint8_t *p, int e5m2, __m256i *codes) {
    __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p));
    if (codes) *codes = _mm256_cvtepu16_epi32(b);
    if (e5m2) return _mm256_cvtph_ps(_mm_slli_epi16(b, 8));
    __m128i h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7F)), 7),
                             _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8));
    return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
}

/* 8 packed 4-bit codes (4 bytes, low nibble first) -> 32-bit lanes */
MPLB_WIDEN __m256i mplb_nibbles8(const uint8_t *p) {
    int32_t w;
    memcpy(&w, p, 4);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(w), dup)),
                                              _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)),
                            _mm256_set1_epi32(15));
}

/* E2M1 codes -> the block's values: table[c] = magnitude c x scale for the 8
 * magnitudes, the code's sign bit xor-ed in (exact: a product's sign is the
 * xor of its factors'; a NaN scale gives NaN, its sign unspecified). */
MPLB_WIDEN __m256 mplb_e2m1_values(__m256i code, __m256 table) {
    __m256 v = _mm256_permutevar8x32_ps(table, _mm256_and_si256(code, _mm256_set1_epi32(7)));
    return _mm256_xor_ps(v, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_and_si256(code, _mm256_set1_epi32(8)), 28)));
}

/* the 8 E2M1 magnitudes, in code order */
MPLB_WIDEN __m256 mplb_e2m1_magnitudes(void) {
    return _mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f);
}

#endif
