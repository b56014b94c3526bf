/*
 * facelm_landmarks: the pre- and post-processing of a facelm landmark model, in portable C99.
 *
 *   image + five points --facelm_preprocess--> model input tensor --(LiteRT)--> raw output
 *   raw output --facelm_postprocess--> K landmarks in image pixels (+ optional One Euro filter)
 *
 * It does what the Python runtime does (facelm.Landmarker.detect), step by step:
 *   1. the least-squares similarity (rotation, uniform scale, translation; no reflection)
 *      from the five points to the model's five-point template (facelm.alignment.umeyama);
 *   2. the bilinear warp of the image into the S x S crop with a zero border, bit-exact with
 *      OpenCV's cv2.warpAffine(INTER_LINEAR, BORDER_CONSTANT) that the Python runtime uses
 *      (its 1/32-pixel fixed-point grid and 15-bit weights), rounded to bytes;
 *   3. normalisation x = (byte / 255 - mean) / std per channel, then, for an integer input,
 *      q = round(x / scale) + zero_point saturated (one 256-entry table per channel);
 *   4. DARK decoding of the raw output with facelm_dark.c (the same core as the Python
 *      codec, not a copy of its maths);
 *   5. heatmap -> crop pixels x_in = s * x + (s - 1) / 2, then crop -> image pixels with the
 *      inverse of the similarity.
 *
 * Conventions: points are (x, y) pixels with pixel centres on integers; a transform is a
 * double[6] M = {a, b, tx, c, d, ty} mapping image pixels to crop pixels,
 * crop = (a x + b y + tx, c x + d y + ty). Every constant of the model (template, sizes,
 * normalisation, quantization, decode parameters) comes from a facelm_model_desc,
 * which the generated facelm_model_params.h fills in (FACELM_MODEL_DESC_INIT).
 *
 * Memory: nothing here allocates. facelm_model (a few KB: the lookup tables) and the
 * decode workspace (facelm_postprocess_workspace_size) are owned by the caller, set up
 * once; preprocess and postprocess then only read and write the caller's buffers.
 * One facelm_model may be shared by threads; the buffers may not.
 */
#ifndef FACELM_LANDMARKS_H
#define FACELM_LANDMARKS_H

#include <stddef.h>
#include <stdint.h>

#include "facelm_dark.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Pixel formats of the input image (bytes per pixel, channel order in memory). */
#define FACELM_PIXELS_RGB 0  /* 3: R, G, B */
#define FACELM_PIXELS_RGBA 1 /* 4: R, G, B, A (Android Bitmap ARGB_8888 copyPixelsToBuffer) */
#define FACELM_PIXELS_BGRA 2 /* 4: B, G, R, A (Android int ARGB from Bitmap.getPixels, little-endian) */
#define FACELM_PIXELS_BGR 3  /* 3: B, G, R (OpenCV) */

/* Element types of the model's input and output tensors. */
#define FACELM_DTYPE_FLOAT32 0
#define FACELM_DTYPE_INT8 1
#define FACELM_DTYPE_UINT8 2

/* Tensor layouts (as in facelm_dark.h). */
#define FACELM_TENSOR_NCHW FACELM_LAYOUT_NCHW
#define FACELM_TENSOR_NHWC FACELM_LAYOUT_NHWC

/* Return codes beyond facelm_dark.h's FACELM_OK / FACELM_EINVAL / FACELM_EWORKSPACE. */
#define FACELM_EIMAGE (-3)  /* image pointer, size, stride or format invalid */
#define FACELM_EPOINTS (-4) /* five points non-finite or coincident */
#define FACELM_EBUFFER (-5) /* a tensor buffer is missing or of the wrong size */

#define FACELM_NUM_ALIGN_POINTS 5

/* Everything a model needs, as written into facelm_model_params.h from manifest.json. */
typedef struct {
    int input_size;                 /* S: the model input is S x S x 3 */
    int color_bgr;                  /* 0: tensor channels R, G, B; 1: B, G, R */
    double mean[3], std[3];         /* per tensor channel, of byte / 255 */
    double template_points[10];     /* five-point template in the S x S crop, (x, y) x 5 */
    int input_dtype;                /* FACELM_DTYPE_* */
    int input_layout;               /* FACELM_TENSOR_NHWC or _NCHW */
    double input_scale;             /* integer input: real = scale * (q - zero_point) */
    int32_t input_zero_point;
    int num_keypoints;              /* K */
    int heatmap_h, heatmap_w;       /* output grid */
    double stride_x, stride_y;      /* input pixels per heatmap cell */
    int output_dtype;               /* FACELM_DTYPE_* */
    int output_layout;              /* FACELM_TENSOR_NHWC or _NCHW */
    double output_scale;
    int32_t output_zero_point;
    int decode_method;              /* FACELM_METHOD_* (facelm_dark.h) */
    int blur_kernel;                /* odd, DARK only */
} facelm_model_desc;

/* A model ready for use: its description plus the normalisation tables. Set up with
 * facelm_model_init; read-only afterwards. */
typedef struct {
    facelm_model_desc desc;
    float lut_f32[3][256];  /* tensor channel c, byte v -> normalised float */
    int8_t lut_i8[3][256];  /* ... -> quantized int8 */
    uint8_t lut_u8[3][256]; /* ... -> quantized uint8 */
} facelm_model;

/* Check a description and build the tables. FACELM_OK or FACELM_EINVAL. */
int facelm_model_init(facelm_model *model, const facelm_model_desc *desc);

/* Bytes of the model's input tensor (S*S*3 elements) and raw output (h*w*K elements). */
size_t facelm_input_bytes(const facelm_model *model);
size_t facelm_output_bytes(const facelm_model *model);

/* Least-squares similarity (no reflection) mapping src[i] onto dst[i], i < n (n >= 2),
 * points as (x, y) pairs: M such that dst ~ M src. FACELM_OK or FACELM_EPOINTS. */
int facelm_similarity(const double *src, const double *dst, int n, double m[6]);

/* The image -> crop transform of a face given by five points (image pixels, ArcFace order:
 * left eye, right eye, nose tip, left and right mouth corner). */
int facelm_align(const facelm_model *model, const float five_points[10], double m[6]);

/* Inverse of an affine transform. FACELM_OK or FACELM_EINVAL (singular, non-finite). */
int facelm_invert_affine(const double m[6], double inv[6]);

/* Bilinear warp of an image into the model input through the transform m (image -> crop),
 * then normalisation/quantization. row_bytes: bytes between rows (>= width * bpp). */
int facelm_warp(const facelm_model *model, const uint8_t *pixels, int width, int height,
                int row_bytes, int format, const double m[6], void *input, size_t input_bytes);

/* facelm_align + facelm_warp. m_out (may be NULL) receives the transform, which
 * facelm_postprocess needs to map the landmarks back to the image. */
int facelm_preprocess(const facelm_model *model, const uint8_t *pixels, int width, int height,
                      int row_bytes, int format, const float five_points[10], void *input,
                      size_t input_bytes, double m_out[6]);

/* Workspace bytes facelm_postprocess needs (decode workspace and K scores). */
size_t facelm_postprocess_workspace_size(const facelm_model *model);

/* Raw model output -> landmarks[2K] (x, y) in image pixels through the inverse of m.
 * scores (K floats, may be NULL): dequantized heatmap peaks. */
int facelm_postprocess(const facelm_model *model, const void *output, size_t output_bytes,
                       const double m[6], float *landmarks, float *scores, void *workspace,
                       size_t workspace_bytes);

/* One Euro filter (Casiez et al., CHI 2012) over n values, for landmarks across video frames.
 * Units: values as given (e.g. pixels), time in seconds, cutoffs in Hz, beta in 1/(value unit).
 * The caller owns state (2n floats). */
typedef struct {
    int n;
    double min_cutoff, beta, d_cutoff;
    double t_prev;
    int started;
    float *state; /* [0, n): filtered values; [n, 2n): filtered derivatives */
} facelm_one_euro;

int facelm_one_euro_init(facelm_one_euro *f, int n, double min_cutoff, double beta, double d_cutoff,
                         float *state);
/* Filter values[n] in place at time t (seconds, strictly increasing; a first call or a
 * non-increasing t restarts the filter and passes the values through). */
int facelm_one_euro_apply(facelm_one_euro *f, double t, float *values);

#ifdef __cplusplus
}
#endif
#endif /* FACELM_LANDMARKS_H */
