/*
 * facelm_dark: heatmap -> landmark decoding (argmax, quarter offset, DARK).
 *
 * Portable C99 core: no Python, no allocation, no global state. The caller owns every
 * buffer, including a small workspace (facelm_workspace_size). It is the C twin of the
 * numpy reference sdk/codec/_numpy.py and follows the same rules (see that file's
 * docstring); build it for Android with the NDK and call it over JNI.
 *
 * Conventions:
 *   maps      n images x k keypoints, h rows x w columns; NCHW = [n][k][h][w],
 *             NHWC = [n][h][w][k] (TFLite), read in place.
 *   coords    [n][k][2] float (x, y) in heatmap pixels; pixel (row i, col j) = (x=j, y=i).
 *   scores    [n][k] float peak values (dequantized); FACELM_INVALID_SCORE and the map
 *             centre ((w-1)/2, (h-1)/2) for maps with NaN/Inf or without a peak (constant).
 *   int8/uint8 maps: value = scale * (q - zero_point), scale > 0.
 *
 * Build: any C99 compiler (cc -std=c99 facelm_dark.c -lm; NDK clang alike). On x86-64 with
 * GCC/Clang, AVX2 kernels are compiled in and chosen at run time when the CPU has AVX2
 * (-mavx2: always; -DFACELM_NO_DISPATCH or Android: never). On AArch64 (arm64-v8a, Linux or
 * Android) NEON kernels are always compiled in (NEON is baseline there). -DFACELM_NO_VECTOR_EXT
 * keeps every loop plain C99. All builds give the same results.
 */
#ifndef FACELM_DARK_H
#define FACELM_DARK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FACELM_METHOD_ARGMAX 0
#define FACELM_METHOD_QUARTER 1
#define FACELM_METHOD_DARK 2

#define FACELM_LAYOUT_NCHW 0
#define FACELM_LAYOUT_NHWC 1

/* The constants of sdk/codec/config.py. */
#define FACELM_LOG_FLOOR 1e-10
#define FACELM_MIN_SHRUNK_RADIUS 2
#define FACELM_MAX_OFFSET 3.0
#define FACELM_DET_REL_EPS 1e-10
#define FACELM_MODEL_MIN_VAR 0.25
#define FACELM_INVALID_SCORE 0.0f
#define FACELM_MAX_BLUR_KERNEL 61

/* Return codes. */
#define FACELM_OK 0
#define FACELM_EINVAL (-1)     /* bad sizes, method, layout, kernel or quantization */
#define FACELM_EWORKSPACE (-2) /* workspace missing or too small */

typedef struct {
    int method;      /* FACELM_METHOD_* */
    int blur_kernel; /* odd, 1..FACELM_MAX_BLUR_KERNEL; DARK only (11 = DarkPose) */
    int layout;      /* FACELM_LAYOUT_* */
} facelm_decode_params;

/* Bytes of workspace a decode of k keypoints with this blur kernel needs. */
size_t facelm_workspace_size(int k, int blur_kernel);

/* Each returns FACELM_OK or a negative FACELM_E* code (outputs untouched on error). */
int facelm_decode_f32(const float *maps, int n, int k, int h, int w,
                      const facelm_decode_params *params,
                      float *coords, float *scores, void *workspace, size_t workspace_bytes);

int facelm_decode_i8(const int8_t *maps, int n, int k, int h, int w,
                     double scale, int32_t zero_point,
                     const facelm_decode_params *params,
                     float *coords, float *scores, void *workspace, size_t workspace_bytes);

int facelm_decode_u8(const uint8_t *maps, int n, int k, int h, int w,
                     double scale, int32_t zero_point,
                     const facelm_decode_params *params,
                     float *coords, float *scores, void *workspace, size_t workspace_bytes);

/* The normalised Gaussian of the given radius (2*radius+1 taps), as used by DARK. */
void facelm_gaussian_kernel(int radius, double *out);

#ifdef __cplusplus
}
#endif
#endif /* FACELM_DARK_H */
