/*
 * facelm_landmarks.c: see facelm_landmarks.h. Portable C99, no allocation, no global state.
 */
#include "facelm_landmarks.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
/* The tables must round like the numpy reference: no a*b+c -> fma contraction. */
#pragma STDC FP_CONTRACT OFF
#endif

/* OpenCV's warpAffine fixed point (imgproc/src/imgwarp.cpp): source coordinates on a 1/32
 * pixel grid (INTER_BITS = 5) computed from 1/1024 steps (AB_BITS = 10), bilinear weights
 * in 15 bits (INTER_REMAP_COEF_BITS). */
#define INTER_BITS 5
#define INTER_TAB_SIZE (1 << INTER_BITS)
#define AB_BITS 10
#define AB_SCALE (1 << AB_BITS)
#define ROUND_DELTA (AB_SCALE / INTER_TAB_SIZE / 2)
#define COEF_BITS 15

#define MAX_INPUT_SIZE 4096
#define MAX_IMAGE_SIDE 32767 /* OpenCV's remap keeps source coordinates in int16 */

/* ------------------------------------------------------------------- model */

static int dtype_ok(int dtype) {
    return dtype == FACELM_DTYPE_FLOAT32 || dtype == FACELM_DTYPE_INT8 || dtype == FACELM_DTYPE_UINT8;
}

static size_t dtype_bytes(int dtype) { return dtype == FACELM_DTYPE_FLOAT32 ? 4u : 1u; }

static int quant_ok(int dtype, double scale, int32_t zero_point) {
    if (dtype == FACELM_DTYPE_FLOAT32) return 1;
    if (!(isfinite(scale) && scale > 0.0)) return 0;
    if (dtype == FACELM_DTYPE_INT8) return zero_point >= -128 && zero_point <= 127;
    return zero_point >= 0 && zero_point <= 255;
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

int facelm_model_init(facelm_model *model, const facelm_model_desc *d) {
    int c, v, i;
    if (!model || !d) return FACELM_EINVAL;
    if (d->input_size < 1 || d->input_size > MAX_INPUT_SIZE || d->num_keypoints < 1 || d->heatmap_h < 1 ||
        d->heatmap_w < 1 || !(d->stride_x > 0.0) || !(d->stride_y > 0.0) || !dtype_ok(d->input_dtype) ||
        !dtype_ok(d->output_dtype) || !quant_ok(d->input_dtype, d->input_scale, d->input_zero_point) ||
        !quant_ok(d->output_dtype, d->output_scale, d->output_zero_point) ||
        (d->input_layout != FACELM_TENSOR_NHWC && d->input_layout != FACELM_TENSOR_NCHW) ||
        (d->output_layout != FACELM_TENSOR_NHWC && d->output_layout != FACELM_TENSOR_NCHW) ||
        d->decode_method < FACELM_METHOD_ARGMAX || d->decode_method > FACELM_METHOD_DARK || d->blur_kernel < 1 ||
        d->blur_kernel % 2 == 0 || d->blur_kernel > FACELM_MAX_BLUR_KERNEL)
        return FACELM_EINVAL;
    for (c = 0; c < 3; c++)
        if (!(isfinite(d->mean[c]) && isfinite(d->std[c]) && d->std[c] > 0.0)) return FACELM_EINVAL;
    for (i = 0; i < 10; i++)
        if (!isfinite(d->template_points[i])) return FACELM_EINVAL;
    model->desc = *d;
    for (c = 0; c < 3; c++) {
        /* float32 throughout, in the order of facelm.preprocess.normalize and
         * facelm.runtime.tflite.quantize: ((v / 255) - mean) / std, then rint(x / scale) + zp. */
        const float mean = (float)d->mean[c], std = (float)d->std[c];
        for (v = 0; v < 256; v++) {
            const float x = ((float)v / 255.0f - mean) / std;
            model->lut_f32[c][v] = x;
            if (d->input_dtype == FACELM_DTYPE_INT8) {
                const float q = nearbyintf(x / (float)d->input_scale) + (float)d->input_zero_point;
                model->lut_i8[c][v] = (int8_t)clampf(q, -128.0f, 127.0f);
                model->lut_u8[c][v] = 0;
            } else if (d->input_dtype == FACELM_DTYPE_UINT8) {
                const float q = nearbyintf(x / (float)d->input_scale) + (float)d->input_zero_point;
                model->lut_u8[c][v] = (uint8_t)clampf(q, 0.0f, 255.0f);
                model->lut_i8[c][v] = 0;
            } else {
                model->lut_i8[c][v] = 0;
                model->lut_u8[c][v] = 0;
            }
        }
    }
    return FACELM_OK;
}

size_t facelm_input_bytes(const facelm_model *model) {
    const facelm_model_desc *d = &model->desc;
    return (size_t)d->input_size * (size_t)d->input_size * 3u * dtype_bytes(d->input_dtype);
}

size_t facelm_output_bytes(const facelm_model *model) {
    const facelm_model_desc *d = &model->desc;
    return (size_t)d->heatmap_h * (size_t)d->heatmap_w * (size_t)d->num_keypoints * dtype_bytes(d->output_dtype);
}

/* ------------------------------------------------------------------ geometry */

int facelm_similarity(const double *src, const double *dst, int n, double m[6]) {
    double msx = 0, msy = 0, mdx = 0, mdy = 0, sxx = 0, num_a = 0, num_b = 0, a, b;
    int i;
    if (!src || !dst || !m || n < 2) return FACELM_EPOINTS;
    for (i = 0; i < n; i++) {
        if (!(isfinite(src[2 * i]) && isfinite(src[2 * i + 1]) && isfinite(dst[2 * i]) && isfinite(dst[2 * i + 1])))
            return FACELM_EPOINTS;
        msx += src[2 * i];
        msy += src[2 * i + 1];
        mdx += dst[2 * i];
        mdy += dst[2 * i + 1];
    }
    msx /= n;
    msy /= n;
    mdx /= n;
    mdy /= n;
    for (i = 0; i < n; i++) {
        const double sx = src[2 * i] - msx, sy = src[2 * i + 1] - msy;
        const double dx = dst[2 * i] - mdx, dy = dst[2 * i + 1] - mdy;
        sxx += sx * sx + sy * sy;
        num_a += sx * dx + sy * dy;
        num_b += sx * dy - sy * dx;
    }
    /* Same refusal as facelm.alignment.umeyama: variance of the source below 1e-12. */
    if (sxx / n < 1e-12) return FACELM_EPOINTS;
    /* In 2-D the Umeyama similarity without reflection is the complex least-squares fit
     * d = z s: z = sum(conj(s) d) / sum(|s|^2), i.e. scale*cos = a, scale*sin = b. */
    a = num_a / sxx;
    b = num_b / sxx;
    m[0] = a;
    m[1] = -b;
    m[3] = b;
    m[4] = a;
    m[2] = mdx - (a * msx - b * msy);
    m[5] = mdy - (b * msx + a * msy);
    return FACELM_OK;
}

int facelm_align(const facelm_model *model, const float five_points[10], double m[6]) {
    double src[10];
    int i;
    if (!model || !five_points) return FACELM_EPOINTS;
    for (i = 0; i < 10; i++) src[i] = (double)five_points[i];
    return facelm_similarity(src, model->desc.template_points, FACELM_NUM_ALIGN_POINTS, m);
}

int facelm_invert_affine(const double m[6], double inv[6]) {
    double det, r;
    int i;
    for (i = 0; i < 6; i++)
        if (!isfinite(m[i])) return FACELM_EINVAL;
    det = m[0] * m[4] - m[1] * m[3];
    if (fabs(det) < 1e-15) return FACELM_EINVAL;
    r = 1.0 / det;
    inv[0] = m[4] * r;
    inv[1] = -m[1] * r;
    inv[3] = -m[3] * r;
    inv[4] = m[0] * r;
    inv[2] = -(inv[0] * m[2] + inv[1] * m[5]);
    inv[5] = -(inv[3] * m[2] + inv[4] * m[5]);
    return FACELM_OK;
}

/* ---------------------------------------------------------------------- warp */

/* cvRound with saturation: round half to even (the default rounding mode). */
static int64_t round_sat(double v) {
    if (!(v > -2147483648.0)) return INT32_MIN; /* also NaN */
    if (v >= 2147483647.0) return INT32_MAX;
    return (int64_t)lrint(v);
}

/* floor(v / 2^s) for any sign (C99 leaves >> of negative values to the implementation). */
static int64_t floor_shift(int64_t v, int s) {
    return v >= 0 ? (v >> s) : -(((-v) - 1) >> s) - 1;
}

static int64_t sat_short(int64_t v) { return v < -32768 ? -32768 : (v > 32767 ? 32767 : v); }

static int pixel_layout(int format, int *bpp, int off[3]) {
    switch (format) {
    case FACELM_PIXELS_RGB: *bpp = 3; off[0] = 0; off[1] = 1; off[2] = 2; return 1;
    case FACELM_PIXELS_RGBA: *bpp = 4; off[0] = 0; off[1] = 1; off[2] = 2; return 1;
    case FACELM_PIXELS_BGRA: *bpp = 4; off[0] = 2; off[1] = 1; off[2] = 0; return 1;
    case FACELM_PIXELS_BGR: *bpp = 3; off[0] = 2; off[1] = 1; off[2] = 0; return 1;
    default: return 0;
    }
}

int facelm_warp(const facelm_model *model, const uint8_t *pixels, int width, int height, int row_bytes,
                int format, const double m[6], void *input, size_t input_bytes) {
    const facelm_model_desc *d;
    double im[6], det;
    int bpp, off[3], src_ch[3], c, x, y, s;
    if (!model || !m) return FACELM_EINVAL;
    d = &model->desc;
    s = d->input_size;
    if (!pixels || width < 1 || height < 1 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE ||
        !pixel_layout(format, &bpp, off) || row_bytes < width * bpp)
        return FACELM_EIMAGE;
    if (!input || input_bytes != facelm_input_bytes(model)) return FACELM_EBUFFER;
    for (c = 0; c < 6; c++)
        if (!isfinite(m[c])) return FACELM_EINVAL;
    /* cv2.warpAffine inverts M exactly this way (crop -> image). */
    det = m[0] * m[4] - m[1] * m[3];
    if (det == 0.0) return FACELM_EINVAL;
    det = 1.0 / det;
    im[0] = m[4] * det;
    im[1] = m[1] * -det;
    im[3] = m[3] * -det;
    im[4] = m[0] * det;
    im[2] = -im[0] * m[2] - im[1] * m[5];
    im[5] = -im[3] * m[2] - im[4] * m[5];
    for (c = 0; c < 3; c++) src_ch[c] = off[d->color_bgr ? 2 - c : c];

    for (y = 0; y < s; y++) {
        const int64_t x0 = round_sat((im[1] * y + im[2]) * AB_SCALE) + ROUND_DELTA;
        const int64_t y0 = round_sat((im[4] * y + im[5]) * AB_SCALE) + ROUND_DELTA;
        for (x = 0; x < s; x++) {
            const int64_t gx = floor_shift(x0 + round_sat(im[0] * x * AB_SCALE), AB_BITS - INTER_BITS);
            const int64_t gy = floor_shift(y0 + round_sat(im[3] * x * AB_SCALE), AB_BITS - INTER_BITS);
            const int64_t sx = sat_short(floor_shift(gx, INTER_BITS)), sy = sat_short(floor_shift(gy, INTER_BITS));
            const int32_t fx = (int32_t)(gx - floor_shift(gx, INTER_BITS) * INTER_TAB_SIZE);
            const int32_t fy = (int32_t)(gy - floor_shift(gy, INTER_BITS) * INTER_TAB_SIZE);
            /* weights of (sx, sy), (sx+1, sy), (sx, sy+1), (sx+1, sy+1); they sum to 2^15 */
            const int32_t w[4] = {(INTER_TAB_SIZE - fy) * (INTER_TAB_SIZE - fx) * 32, (INTER_TAB_SIZE - fy) * fx * 32,
                                  fy * (INTER_TAB_SIZE - fx) * 32, fy * fx * 32};
            const uint8_t *p[4];
            int k;
            for (k = 0; k < 4; k++) {
                const int64_t px = sx + (k & 1), py = sy + (k >> 1);
                p[k] = (px >= 0 && px < width && py >= 0 && py < height)
                           ? pixels + (size_t)py * (size_t)row_bytes + (size_t)px * (size_t)bpp
                           : NULL; /* BORDER_CONSTANT, value 0 */
            }
            for (c = 0; c < 3; c++) {
                int32_t acc = 1 << (COEF_BITS - 1);
                uint8_t v;
                size_t at;
                for (k = 0; k < 4; k++)
                    if (p[k]) acc += w[k] * (int32_t)p[k][src_ch[c]];
                acc >>= COEF_BITS; /* acc >= 0 */
                v = (uint8_t)(acc > 255 ? 255 : acc);
                at = d->input_layout == FACELM_TENSOR_NHWC ? ((size_t)y * s + x) * 3u + c
                                                           : (size_t)c * s * s + (size_t)y * s + x;
                if (d->input_dtype == FACELM_DTYPE_FLOAT32)
                    ((float *)input)[at] = model->lut_f32[c][v];
                else if (d->input_dtype == FACELM_DTYPE_INT8)
                    ((int8_t *)input)[at] = model->lut_i8[c][v];
                else
                    ((uint8_t *)input)[at] = model->lut_u8[c][v];
            }
        }
    }
    return FACELM_OK;
}

int facelm_preprocess(const facelm_model *model, const uint8_t *pixels, int width, int height, int row_bytes,
                      int format, const float five_points[10], void *input, size_t input_bytes, double m_out[6]) {
    double m[6];
    int rc;
    if (!model) return FACELM_EINVAL;
    rc = facelm_align(model, five_points, m);
    if (rc != FACELM_OK) return rc;
    rc = facelm_warp(model, pixels, width, height, row_bytes, format, m, input, input_bytes);
    if (rc == FACELM_OK && m_out) memcpy(m_out, m, sizeof(m));
    return rc;
}

/* ----------------------------------------------------------------- decoding */

#define WS_ALIGN 16u

static size_t round_up(size_t v) { return (v + WS_ALIGN - 1u) / WS_ALIGN * WS_ALIGN; }

size_t facelm_postprocess_workspace_size(const facelm_model *model) {
    const facelm_model_desc *d = &model->desc;
    return round_up(facelm_workspace_size(d->num_keypoints, d->blur_kernel)) +
           (size_t)d->num_keypoints * sizeof(float);
}

int facelm_postprocess(const facelm_model *model, const void *output, size_t output_bytes, const double m[6],
                       float *landmarks, float *scores, void *workspace, size_t workspace_bytes) {
    const facelm_model_desc *d;
    facelm_decode_params p;
    double inv[6];
    size_t dec_bytes;
    float *sc;
    int rc, k;
    if (!model || !m) return FACELM_EINVAL;
    d = &model->desc;
    if (!output || output_bytes != facelm_output_bytes(model) || !landmarks) return FACELM_EBUFFER;
    if (!workspace || workspace_bytes < facelm_postprocess_workspace_size(model)) return FACELM_EWORKSPACE;
    rc = facelm_invert_affine(m, inv);
    if (rc != FACELM_OK) return rc;
    dec_bytes = round_up(facelm_workspace_size(d->num_keypoints, d->blur_kernel));
    sc = scores ? scores : (float *)((unsigned char *)workspace + dec_bytes);
    p.method = d->decode_method;
    p.blur_kernel = d->blur_kernel;
    p.layout = d->output_layout;
    if (d->output_dtype == FACELM_DTYPE_FLOAT32)
        rc = facelm_decode_f32((const float *)output, 1, d->num_keypoints, d->heatmap_h, d->heatmap_w, &p, landmarks,
                               sc, workspace, dec_bytes);
    else if (d->output_dtype == FACELM_DTYPE_INT8)
        rc = facelm_decode_i8((const int8_t *)output, 1, d->num_keypoints, d->heatmap_h, d->heatmap_w,
                              d->output_scale, d->output_zero_point, &p, landmarks, sc, workspace, dec_bytes);
    else
        rc = facelm_decode_u8((const uint8_t *)output, 1, d->num_keypoints, d->heatmap_h, d->heatmap_w,
                              d->output_scale, d->output_zero_point, &p, landmarks, sc, workspace, dec_bytes);
    if (rc != FACELM_OK) return rc;
    for (k = 0; k < d->num_keypoints; k++) {
        /* facelm.codec.heatmap_to_input, then facelm.alignment.transform_points(., inverse) */
        const double cx = (double)landmarks[2 * k] * d->stride_x + (d->stride_x - 1.0) / 2.0;
        const double cy = (double)landmarks[2 * k + 1] * d->stride_y + (d->stride_y - 1.0) / 2.0;
        landmarks[2 * k] = (float)(inv[0] * cx + inv[1] * cy + inv[2]);
        landmarks[2 * k + 1] = (float)(inv[3] * cx + inv[4] * cy + inv[5]);
    }
    return FACELM_OK;
}

/* ------------------------------------------------------------------ One Euro */

static double euro_alpha(double cutoff, double dt) {
    const double tau = 1.0 / (2.0 * 3.14159265358979323846 * cutoff);
    return 1.0 / (1.0 + tau / dt);
}

int facelm_one_euro_init(facelm_one_euro *f, int n, double min_cutoff, double beta, double d_cutoff,
                         float *state) {
    if (!f || !state || n < 1 || !(min_cutoff > 0.0) || !(d_cutoff > 0.0) || !(beta >= 0.0) || !isfinite(min_cutoff) ||
        !isfinite(beta) || !isfinite(d_cutoff))
        return FACELM_EINVAL;
    f->n = n;
    f->min_cutoff = min_cutoff;
    f->beta = beta;
    f->d_cutoff = d_cutoff;
    f->t_prev = 0.0;
    f->started = 0;
    f->state = state;
    return FACELM_OK;
}

int facelm_one_euro_apply(facelm_one_euro *f, double t, float *values) {
    float *xh, *dxh;
    double dt, a_d;
    int i;
    if (!f || !f->state || !values || !isfinite(t)) return FACELM_EINVAL;
    xh = f->state;
    dxh = f->state + f->n;
    dt = t - f->t_prev;
    if (!f->started || !(dt > 0.0)) {
        for (i = 0; i < f->n; i++) {
            xh[i] = values[i];
            dxh[i] = 0.0f;
        }
        f->t_prev = t;
        f->started = 1;
        return FACELM_OK;
    }
    a_d = euro_alpha(f->d_cutoff, dt);
    for (i = 0; i < f->n; i++) {
        const double dx = ((double)values[i] - xh[i]) / dt;
        const double edx = dxh[i] + a_d * (dx - dxh[i]);
        const double a = euro_alpha(f->min_cutoff + f->beta * fabs(edx), dt);
        const double x = xh[i] + a * ((double)values[i] - xh[i]);
        dxh[i] = (float)edx;
        xh[i] = (float)x;
        values[i] = (float)x;
    }
    f->t_prev = t;
    return FACELM_OK;
}
