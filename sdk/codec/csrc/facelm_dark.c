/*
 * facelm_dark.c: the portable C99 core of the heatmap decoder (see facelm_dark.h).
 *
 * Same rules, same floating-point order as sdk/codec/_numpy.py, so both give the same
 * answer (to the last bit where libm's log agrees with numpy's):
 *   1. invalid map (NaN/Inf anywhere, or max == min): centre coordinates, score 0;
 *   2. peak = first maximum in raster order, score = its (dequantized) value;
 *   3. x refinable when 1 <= px <= w-2, y likewise;
 *   4. quarter: 0.25 * sign(v[p+1] - v[p-1]) per refinable axis;
 *   5. dark: per-axis blur radius min(r, p-2, size-3-p) (0 when it shrank below
 *      min(r, FACELM_MIN_SHRUNK_RADIUS)); only the 13 stencil values are blurred, separably
 *      (x then y, float32, symmetric taps w[b] (v[-b] + v[b]) in increasing order, integer
 *      maps as q - zero_point with the scale applied after the blur); log-derivatives are
 *      logs of ratios of max(B, 1e-10) (5 logs); Newton step when the Hessian is negative
 *      definite and det > FACELM_DET_REL_EPS * dxx * dyy (1-D step when only one axis is
 *      refinable); when the kernel had to shrink (border), a second pass with the full
 *      kernel where pixels outside the map read a Gaussian fitted to the first pass
 *      (zeros without one);
 *   6. offsets clamped to +-FACELM_MAX_OFFSET.
 * The hot loops (peak search, blur lanes) use SSE2/AVX2 intrinsics on x86-64, NEON
 * intrinsics on AArch64, GCC/Clang vector extensions elsewhere (and for the blur lanes
 * everywhere), and plain C99 loops otherwise, with the same results; nothing here allocates.
 */
#include "facelm_dark.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
/* No a*b+c -> fma contraction (clang's default, e.g. the NDK on ARM): the numpy reference
 * rounds every operation. GCC does not contract in ISO C mode (-std=c99). */
#pragma STDC FP_CONTRACT OFF
#endif

#define LANES 16
#define MAX_RADIUS ((FACELM_MAX_BLUR_KERNEL - 1) / 2)

/* x86-64 AVX2 kernels (8-lane blur, 32-byte peak search), same results as the others:
 * - built with -mavx2 (__AVX2__): always used;
 * - GCC/Clang on x86-64 otherwise: compiled with a target attribute and chosen at run time
 *   with __builtin_cpu_supports (off with -DFACELM_NO_DISPATCH, on Android, or with
 *   -DFACELM_NO_VECTOR_EXT, which keeps every hot loop plain C99).
 * Any other compiler or target (ARM NEON, plain cc) never sees this code. */
#if !defined(FACELM_NO_VECTOR_EXT) && defined(__x86_64__) && defined(__SSE2__) && defined(__GNUC__)
#if defined(__AVX2__)
#define FACELM_AVX2 1
#define FACELM_AVX2_ATTR
#define FACELM_HAVE_AVX2() 1
#elif !defined(FACELM_NO_DISPATCH) && !defined(__ANDROID__)
#define FACELM_AVX2 1
#define FACELM_AVX2_ATTR __attribute__((target("avx2")))
#define FACELM_HAVE_AVX2() (__builtin_cpu_supports("avx2") != 0)
#endif
#endif
#ifdef FACELM_AVX2
#include <immintrin.h>
#endif
/* AArch64 (NEON is part of its baseline, on Android and Linux alike): explicit NEON kernels
 * for the float and byte peak searches and the NHWC channel maxima, the loops SSE2/AVX2 take
 * on x86-64; the blur lanes use the vector extensions below, which GCC/Clang map to NEON.
 * -DFACELM_NO_VECTOR_EXT keeps plain C99 here too. */
#if !defined(FACELM_NO_VECTOR_EXT) && defined(__aarch64__) && defined(__ARM_NEON)
#define FACELM_NEON 1
#include <arm_neon.h>
#endif
#if defined(__GNUC__)
#define FACELM_INLINE static inline __attribute__((always_inline))
#else
#define FACELM_INLINE static inline
#endif

/* ------------------------------------------------------------------ kernels */

void facelm_gaussian_kernel(int radius, double *out)
{
    int t;
    double s, total = 0.0;
    if (radius <= 0) {
        out[0] = 1.0;
        return;
    }
    s = 0.3 * (radius - 1) + 0.8;
    for (t = -radius; t <= radius; t++) {
        out[t + radius] = exp(-(double)(t * t) / (2.0 * s * s));
    }
    for (t = 0; t < 2 * radius + 1; t++) total += out[t];
    for (t = 0; t < 2 * radius + 1; t++) out[t] = out[t] / total;
}

static int effective_radius(int p, int size, int r)
{
    int q = p - 2;
    if (size - 3 - p < q) q = size - 3 - p;
    if (r < q) q = r;
    if (q < 0 || (q < r && q < FACELM_MIN_SHRUNK_RADIUS)) return 0;
    return q;
}

size_t facelm_workspace_size(int k, int blur_kernel)
{
    int r = (blur_kernel - 1) / 2;
    if (r < 0) r = 0;
    /* kernel table (room for r+1 rows of 2r+1 doubles; it holds (r+1)^2 floats), then four
       k-long 4-byte arrays (NHWC) */
    return sizeof(double) * (size_t)(r + 1) * (size_t)(2 * r + 1) + 4u * 4u * (size_t)(k > 0 ? k : 0);
}

static double clamp_offset(double o)
{
    if (o < -FACELM_MAX_OFFSET) return -FACELM_MAX_OFFSET;
    if (o > FACELM_MAX_OFFSET) return FACELM_MAX_OFFSET;
    return o;
}

static double floor_value(double v)
{
    return v > FACELM_LOG_FLOOR ? v : FACELM_LOG_FLOOR;
}

/* Lanes of the blur passes: stencil columns -2..5 (columns 3..5 only pad the vector width;
 * they are computed from zeros or real values and never used). The blur is float32: the
 * numpy reference does the same float32 operations in the same order. */
#define HL 8
#define MAX_WIN_ROWS (5 + 2 * MAX_RADIUS)

/* Newton step (rules 5d, 5e) from the blurred window V[(dy + 2) * HL + dx + 2] (unscaled for
 * integer maps: the value is scale * V). Log-derivatives are logs of ratios of the floored
 * values, 5 logs instead of 13. */
static int newton_step(int ax, int ay, int wide_x, int wide_y, const float *V, double scale, double *ox,
                       double *oy, double *hess)
{
#define BV(dy, dx) floor_value((double)V[((dy) + 2) * HL + (dx) + 2] * scale)
    double c = BV(0, 0), cc = c * c, dx = 0.0, dy = 0.0, dxx = 0.0, dyy = 0.0, dxy, det, bx, by, s;
    *ox = 0.0;
    *oy = 0.0;
    if (ax) {
        double l = BV(0, -1), r = BV(0, 1);
        dx = 0.5 * log(r / l);
        dxx = wide_x ? 0.25 * log((BV(0, 2) * BV(0, -2)) / cc) : log((r * l) / cc);
    }
    if (ay) {
        double u = BV(-1, 0), d = BV(1, 0);
        dy = 0.5 * log(d / u);
        dyy = wide_y ? 0.25 * log((BV(2, 0) * BV(-2, 0)) / cc) : log((d * u) / cc);
    }
    if (ax && ay) {
        dxy = 0.25 * log((BV(1, 1) * BV(-1, -1)) / (BV(-1, 1) * BV(1, -1)));
        det = dxx * dyy - dxy * dxy;
        if (dxx < 0 && det > FACELM_DET_REL_EPS * (dxx * dyy)) {
            bx = -(dyy * dx - dxy * dy) / det;
            by = -(dxx * dy - dxy * dx) / det;
            if (isfinite(bx) && isfinite(by)) {
                *ox = bx;
                *oy = by;
                hess[0] = dxx;
                hess[1] = dyy;
                hess[2] = dxy;
                return 1;
            }
        }
    } else if (ax) {
        if (dxx < 0) {
            s = -dx / dxx;
            if (isfinite(s)) *ox = s;
        }
    } else if (ay) {
        if (dyy < 0) {
            s = -dy / dyy;
            if (isfinite(s)) *oy = s;
        }
    }
    return 0;
#undef BV
}

/* Rule 5f: the raw map near a border peak as a Gaussian amp * exp(-d^T P d / 2), d from
 * (mx, my): covariance = the first pass's -H^-1 minus the kernels' variances (vx, vy),
 * centre = peak + clamped first-pass offset. S[j * n + i] (n = 5 + 2R) receives its shape
 * exp(-q/2) at pixel (px - 2 - R + i, py - 2 - R + j), from 7 exps and products:
 * along x, q(i+1) - q(i) grows by 2 p00 per step; down y, the step factor is
 * exp(-p01 u_i) exp(-p11 (2 v_j + 1) / 2). amp: least-squares fit of S to the 3x3 values
 * around the peak (c3[(j + 1) * 3 + i + 1], raster order). Returns 0 when unusable. */
#define MODEL_N (5 + 2 * MAX_RADIUS)
FACELM_INLINE int fit_border_model(const double *hess, double vx, double vy, int px, int py, int R, double ox,
                            double oy, const double *c3, double *S, double *amp)
{
    double dxx = hess[0], dyy = hess[1], dxy = hess[2], det = dxx * dyy - dxy * dxy;
    double s00 = -dyy / det - vx, s11 = -dxx / det - vy, s01 = dxy / det, a = s00 - FACELM_MODEL_MIN_VAR, ds;
    double p00, p01, p11, u0, v0, q0, r, sx, ea, b, eb, A[MODEL_N], num = 0.0, den = 0.0;
    int n = 5 + 2 * R, c = 2 + R, i, j;
    if (!(a > 0 && a * (s11 - FACELM_MODEL_MIN_VAR) - s01 * s01 > 0)) return 0;
    ds = s00 * s11 - s01 * s01;
    p00 = s11 / ds;
    p01 = -s01 / ds;
    p11 = s00 / ds;
    if (!(isfinite(p00) && isfinite(p01) && isfinite(p11))) return 0;
    u0 = (double)(px - c) - (px + clamp_offset(ox));
    v0 = (double)(py - c) - (py + clamp_offset(oy));
    q0 = u0 * (p00 * u0 + p01 * v0) + v0 * (p01 * u0 + p11 * v0);
    S[0] = exp(-0.5 * q0);
    r = exp(-0.5 * (p00 * (2.0 * u0 + 1.0) + 2.0 * p01 * v0));
    sx = exp(-p00);
    A[0] = exp(-p01 * u0);
    ea = exp(-p01);
    b = exp(-0.5 * p11 * (2.0 * v0 + 1.0));
    eb = exp(-p11);
    for (i = 1; i < n; i++) {
        S[i] = S[i - 1] * r;
        r = r * sx;
        A[i] = A[i - 1] * ea;
    }
    for (j = 1; j < n; j++) {
        for (i = 0; i < n; i++) S[j * n + i] = (S[(j - 1) * n + i] * A[i]) * b;
        b = b * eb;
    }
    for (j = -1; j <= 1; j++) {
        for (i = -1; i <= 1; i++) {
            double gq = S[(c + j) * n + c + i];
            num = num + gq * c3[(j + 1) * 3 + i + 1];
            den = den + gq * gq;
        }
    }
    *amp = num / den;
    return isfinite(*amp) && *amp > 0;
}

/* Variance sum_t w[t] t^2 of the radius-q half kernel w (float32 taps, float64 sum). */
static double kernel_variance(const float *w, int q)
{
    double v = 0.0;
    int b;
    for (b = 1; b <= q; b++) v += 2.0 * (double)w[b] * (double)(b * b);
    return v;
}

#if defined(__GNUC__) && !defined(FACELM_NO_VECTOR_EXT)
/* GCC/Clang vector extensions: one HL-lane float vector (two SSE2/NEON registers, one AVX
 * register). Plain C99 below does the same float operations lane by lane. */
#define FACELM_VEC8 1
typedef float vf8 __attribute__((vector_size(HL * sizeof(float))));
#define VF8_SPLAT(x) {(x), (x), (x), (x), (x), (x), (x), (x)}
#endif

/* Horizontal pass over one window row (rule 5c): out[c] = w[0] t[c + rx] +
 * sum_{b=1..rx} w[b] (t[c + rx - b] + t[c + rx + b]), c = 0..HL-1, b in increasing order. */
FACELM_INLINE void row_pass(const float *restrict t, int rx, const float *restrict w, float *restrict out)
{
    int b;
#ifdef FACELM_VEC8
    vf8 acc, lo, hi;
    const vf8 w0 = VF8_SPLAT(w[0]);
    memcpy(&acc, t + rx, sizeof acc);
    acc = w0 * acc;
    for (b = 1; b <= rx; b++) {
        const vf8 wb = VF8_SPLAT(w[b]);
        memcpy(&lo, t + rx - b, sizeof lo);
        memcpy(&hi, t + rx + b, sizeof hi);
        acc = acc + wb * (lo + hi);
    }
    memcpy(out, &acc, sizeof acc);
#else
    int c;
    for (c = 0; c < HL; c++) out[c] = w[0] * t[c + rx];
    for (b = 1; b <= rx; b++) {
        const float wb = w[b];
        const float *lo = t + rx - b, *hi = t + rx + b;
        for (c = 0; c < HL; c++) out[c] += wb * (lo[c] + hi[c]);
    }
#endif
}

/* Vertical pass: V[r][c] (dy = r - 2) from the row-pass rows H[j] (dy = j - 2 - ry), same
 * symmetric form. */
FACELM_INLINE void col_pass(const float *restrict H, int ry, const float *restrict w, float *restrict V)
{
    int r, a;
    for (r = 0; r < 5; r++) {
        const float *ctr = H + (size_t)(r + ry) * HL;
#ifdef FACELM_VEC8
        vf8 acc, lo, hi;
        const vf8 w0 = VF8_SPLAT(w[0]);
        memcpy(&acc, ctr, sizeof acc);
        acc = w0 * acc;
        for (a = 1; a <= ry; a++) {
            const vf8 wa = VF8_SPLAT(w[a]);
            memcpy(&lo, ctr - (size_t)a * HL, sizeof lo);
            memcpy(&hi, ctr + (size_t)a * HL, sizeof hi);
            acc = acc + wa * (lo + hi);
        }
        memcpy(V + r * HL, &acc, sizeof acc);
#else
        int c;
        float *out = V + r * HL;
        for (c = 0; c < HL; c++) out[c] = w[0] * ctr[c];
        for (a = 1; a <= ry; a++) {
            const float wa = w[a];
            const float *lo = ctr - (size_t)a * HL, *hi = ctr + (size_t)a * HL;
            for (c = 0; c < HL; c++) out[c] += wa * (lo[c] + hi[c]);
        }
#endif
    }
}

/* -------------------------------------------------- per-type refinement code
 * One keypoint: base points at its map's element (0, 0); element (y, x) is
 * base[y * sy + x * sx]. DEQ turns a stored value into float32, without the scale of
 * integer maps (the blur is linear: newton_step applies it; quarter needs only signs).
 *
 * dark: window row t holds columns px-2-rx .. px+5+rx of rows py-2-ry .. py+2+ry. Only the
 * rows and columns the needed stencil values depend on are read (C, D: stencil half-widths
 * per axis, 2 for interior peaks); the rest is zero and feeds only unused lanes. table
 * holds the half kernels: table[q * (R + 1) + b] = weight of tap b of the radius-q kernel.
 */
#define WIN_STRIDE (HL + 2 * MAX_RADIUS + 8)
static const float zeros8[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
/* d[0..cnt) = DEQ(p[0..cnt)): two fixed 8-wide chunks (the first and the last 8, which may
 * overlap: same values) vectorize well, then the middle of long rows. The chunks are copied
 * to locals first: int8 is a character type, which may alias the float stores. */
#define CONVERT_ROW(T, d, p, cnt, DEQ)                                                      \
    do {                                                                                    \
        float *d_ = (d);                                                                    \
        const T *p_ = (p);                                                                  \
        int n_ = (cnt), i_, l_;                                                             \
        if (n_ >= 8) {                                                                      \
            T b0_[8], b1_[8];                                                               \
            float f0_[8], f1_[8];                                                           \
            memcpy(b0_, p_, sizeof b0_);                                                    \
            memcpy(b1_, p_ + n_ - 8, sizeof b1_);                                           \
            for (l_ = 0; l_ < 8; l_++) f0_[l_] = DEQ(b0_[l_]);                              \
            for (l_ = 0; l_ < 8; l_++) f1_[l_] = DEQ(b1_[l_]);                              \
            memcpy(d_, f0_, sizeof f0_);                                                    \
            memcpy(d_ + n_ - 8, f1_, sizeof f1_);                                           \
            for (i_ = 8; i_ < n_ - 8; i_++) d_[i_] = DEQ(p_[i_]);                           \
        } else {                                                                            \
            for (i_ = 0; i_ < n_; i_++) d_[i_] = DEQ(p_[i_]);                               \
        }                                                                                   \
    } while (0)
/* Geometry of one DARK refinement (rules 3, 5a): refinable axes, the stencils' wide second
 * differences, the per-axis blur radii and half kernels, and the stencil half-widths C, D
 * (2 for interior peaks) that decide which window rows and columns are read. */
typedef struct {
    int ax, ay, wide_x, wide_y, rx, ry, C, D;
    const float *wx, *wy;
} dark_geom;

FACELM_INLINE dark_geom dark_geometry(int h, int w, int px, int py, int R, const float *table)
{
    dark_geom g;
    g.ax = px >= 1 && px <= w - 2;
    g.ay = py >= 1 && py <= h - 2;
    g.wide_x = px >= 2 && px <= w - 3;
    g.wide_y = py >= 2 && py <= h - 3;
    g.rx = effective_radius(px, w, R);
    g.ry = effective_radius(py, h, R);
    g.wx = table + (size_t)g.rx * (R + 1);
    g.wy = table + (size_t)g.ry * (R + 1);
    g.C = g.wide_x ? 2 : g.ax;
    g.D = g.wide_y ? 2 : g.ay;
    return g;
}

/* Both blur passes: window rows (row j at rows + j * rstride, 5 + 2 ry of them) -> H -> V
 * (5 x HL). DarkPose's k = 11 (radius 5) is unrolled; the same operations. */
FACELM_INLINE void blur_window(const float *rows, ptrdiff_t rstride, int rx, int ry, const float *wx,
                               const float *wy, float *H, float *V)
{
    int j, nr = 5 + 2 * ry;
    if (rx == 5) {
        for (j = 0; j < nr; j++) row_pass(rows + j * rstride, 5, wx, H + (size_t)j * HL);
    } else {
        for (j = 0; j < nr; j++) row_pass(rows + j * rstride, rx, wx, H + (size_t)j * HL);
    }
    if (ry == 5) {
        col_pass(H, 5, wy, V);
    } else {
        col_pass(H, ry, wy, V);
    }
}

/* fit_border_model with the k = 11 sizes fixed (unrolled) when R = 5. */
FACELM_INLINE int fit_border_model_r(const double *hess, double vx, double vy, int px, int py, int R,
                                     double ox, double oy, const double *c3, double *S, double *amp)
{
    return R == 5 ? fit_border_model(hess, vx, vy, px, py, 5, ox, oy, c3, S, amp)
                  : fit_border_model(hess, vx, vy, px, py, R, ox, oy, c3, S, amp);
}

/* The type-dependent readers of one keypoint's map (see the section comment above):
 * - load_window: the first-pass window (rows outside the stencil's reach and the padding
 *   lanes zero);
 * - read_3x3: the raw values around the peak (float64, unscaled);
 * - load_border_window: the second-pass window with the full kernel, pixels outside the map
 *   reading amp * S (the fitted Gaussian), or zero when use is 0. */
#define DEFINE_DARK_READERS(SUF, T, DEQ)                                                     \
    FACELM_INLINE void load_window_##SUF(const T *base, ptrdiff_t sx, ptrdiff_t sy, int px,   \
                                         int py, int32_t zp, const dark_geom *g, float *win)  \
    {                                                                                        \
        int lo = 2 - g->C, hi = 2 + 2 * g->rx + g->C, nt = HL + 2 * g->rx, nr = 5 + 2 * g->ry; \
        int i, j;                                                                            \
        (void)zp;                                                                            \
        /* all window rows first, then the passes (no store-to-load stalls) */               \
        for (j = 0; j < nr; j++) {                                                           \
            int dyj = j - 2 - g->ry;                                                         \
            float *t = win + (size_t)j * WIN_STRIDE;                                         \
            const T *p;                                                                      \
            if (dyj < -g->D - g->ry || dyj > g->D + g->ry) {                                 \
                for (i = 0; i < nt; i++) t[i] = 0.0f;                                        \
                continue;                                                                    \
            }                                                                                \
            t[0] = t[1] = 0.0f; /* lo <= 2 */                                                \
            p = base + (ptrdiff_t)(py + dyj) * sy + (ptrdiff_t)(px - g->C - g->rx) * sx;     \
            if (sx == 1) {                                                                   \
                CONVERT_ROW(T, t + lo, p, hi - lo + 1, DEQ);                                 \
            } else {                                                                         \
                for (i = lo; i <= hi; i++) t[i] = DEQ(p[(ptrdiff_t)(i - lo) * sx]);          \
            }                                                                                \
            memcpy(t + hi + 1, zeros8, sizeof zeros8); /* nt - 1 - hi <= HL - 3 */           \
        }                                                                                    \
    }                                                                                        \
    FACELM_INLINE void read_3x3_##SUF(const T *base, ptrdiff_t sx, ptrdiff_t sy, int px, int py, \
                                      int32_t zp, double *c3)                                \
    {                                                                                        \
        int i, j;                                                                            \
        (void)zp;                                                                            \
        for (j = -1; j <= 1; j++)                                                            \
            for (i = -1; i <= 1; i++)                                                        \
                c3[(j + 1) * 3 + i + 1] =                                                    \
                    (double)DEQ(base[(ptrdiff_t)(py + j) * sy + (ptrdiff_t)(px + i) * sx]);  \
    }                                                                                        \
    FACELM_INLINE void load_border_window_##SUF(const T *base, ptrdiff_t sx, ptrdiff_t sy, int h, \
                                                int w, int px, int py, int R, int32_t zp, int use, \
                                                double amp, const double *S, float *win)     \
    {                                                                                        \
        int x0 = px - 2 - R, y0 = py - 2 - R, nr2 = 5 + 2 * R, nt2 = HL + 2 * R, i, j;       \
        int ilo = x0 < 0 ? -x0 : 0, ihi = x0 + nr2 > w ? w - x0 : nr2; /* in the map */      \
        (void)zp;                                                                            \
        for (j = 0; j < nr2; j++) {                                                          \
            float *t = win + (size_t)j * WIN_STRIDE;                                         \
            const double *Sj = S + (size_t)j * nr2;                                          \
            int y = y0 + j, in = y >= 0 && y < h, a0 = in ? ilo : nr2, a1 = in ? ihi : nr2;  \
            for (i = 0; i < a0; i++) t[i] = use ? (float)(amp * Sj[i]) : 0.0f;               \
            if (in) {                                                                        \
                const T *p = base + (ptrdiff_t)y * sy + (ptrdiff_t)(x0 + ilo) * sx;          \
                if (sx == 1)                                                                 \
                    CONVERT_ROW(T, t + a0, p, a1 - a0, DEQ);                                 \
                else                                                                         \
                    for (i = a0; i < a1; i++) t[i] = DEQ(p[(ptrdiff_t)(i - a0) * sx]);       \
            }                                                                                \
            for (i = a1; i < nr2; i++) t[i] = use ? (float)(amp * Sj[i]) : 0.0f;             \
            for (i = nr2; i < nt2; i++) t[i] = 0.0f;                                         \
        }                                                                                    \
    }

/* One DARK refinement (rule 5): first pass with the (possibly shrunk) kernels; Newton step;
 * for border peaks whose kernel shrank, rule 5f's second pass with the full kernel. ATTR
 * compiles it, and every helper inlined into it, for AVX2. Interior float32 NCHW peaks read
 * the map in place (the padding lanes may run into the next row, never past the map). */
#define DEFINE_REFINE_DARK(NAME, ATTR, SUF, T, IS_F32)                                       \
    ATTR static void NAME(const T *base, ptrdiff_t sx, ptrdiff_t sy, int h, int w, int px,    \
                          int py, int R, const float *table, double scale, int32_t zp,       \
                          double *ox, double *oy)                                            \
    {                                                                                        \
        const dark_geom g = dark_geometry(h, w, px, py, R, table);                           \
        float win[MAX_WIN_ROWS * WIN_STRIDE], H[MAX_WIN_ROWS * HL], V[5 * HL];               \
        double hess[3];                                                                      \
        const float *rows = win;                                                             \
        ptrdiff_t rstride = WIN_STRIDE;                                                      \
        int stepped;                                                                         \
        if (IS_F32 && sx == 1 && g.C == 2 && g.D == 2 && (py + 2 + g.ry < h - 1 || px + 5 + g.rx < w)) { \
            rows = (const float *)(const void *)(base + (ptrdiff_t)(py - 2 - g.ry) * sy + (px - 2 - g.rx)); \
            rstride = sy;                                                                    \
        } else {                                                                             \
            load_window_##SUF(base, sx, sy, px, py, zp, &g, win);                            \
        }                                                                                    \
        blur_window(rows, rstride, g.rx, g.ry, g.wx, g.wy, H, V);                            \
        stepped = newton_step(g.ax, g.ay, g.wide_x, g.wide_y, V, scale, ox, oy, hess);       \
        if (g.wide_x && g.wide_y && (g.rx < R || g.ry < R)) {                                \
            const float *wf = table + (size_t)R * (R + 1);                                   \
            double c3[9], S[MODEL_N * MODEL_N], amp = 0.0, ox2, oy2;                         \
            int use;                                                                         \
            read_3x3_##SUF(base, sx, sy, px, py, zp, c3);                                    \
            use = stepped && fit_border_model_r(hess, kernel_variance(g.wx, g.rx),           \
                                                kernel_variance(g.wy, g.ry), px, py, R, *ox, *oy, c3, S, &amp); \
            load_border_window_##SUF(base, sx, sy, h, w, px, py, R, zp, use, amp, S, win);   \
            blur_window(win, WIN_STRIDE, R, R, wf, wf, H, V);                                \
            if (newton_step(g.ax, g.ay, g.wide_x, g.wide_y, V, scale, &ox2, &oy2, hess)) {   \
                *ox = ox2;                                                                   \
                *oy = oy2;                                                                   \
            }                                                                                \
        }                                                                                    \
    }

#define DEFINE_QUARTER(SUF, T, DEQ)                                                        \
    static void refine_quarter_##SUF(const T *base, ptrdiff_t sx, ptrdiff_t sy, int h, int w, \
                                     int px, int py, double scale, int32_t zp, double *ox,   \
                                     double *oy)                                             \
    {                                                                                        \
        const T *p = base + (ptrdiff_t)py * sy + (ptrdiff_t)px * sx;                         \
        double d;                                                                            \
        (void)scale;                                                                         \
        (void)zp;                                                                            \
        *ox = 0.0;                                                                           \
        *oy = 0.0;                                                                           \
        if (px >= 1 && px <= w - 2) {                                                        \
            d = DEQ(p[sx]) - DEQ(p[-sx]);                                                    \
            *ox = d > 0 ? 0.25 : (d < 0 ? -0.25 : 0.0);                                      \
        }                                                                                    \
        if (py >= 1 && py <= h - 2) {                                                        \
            d = DEQ(p[sy]) - DEQ(p[-sy]);                                                    \
            *oy = d > 0 ? 0.25 : (d < 0 ? -0.25 : 0.0);                                      \
        }                                                                                    \
    }

#define DEQ_F32(v) ((double)(v))
#define DEQ_INT(v) ((double)((int32_t)(v) - zp) * scale)
#define DEQF_F32(v) (v)
#define DEQF_INT(v) ((float)((int32_t)(v) - zp))

DEFINE_QUARTER(f32, float, DEQF_F32)
DEFINE_QUARTER(i8, int8_t, DEQF_INT)
DEFINE_QUARTER(u8, uint8_t, DEQF_INT)
DEFINE_DARK_READERS(f32, float, DEQF_F32)
DEFINE_DARK_READERS(i8, int8_t, DEQF_INT)
DEFINE_DARK_READERS(u8, uint8_t, DEQF_INT)
DEFINE_REFINE_DARK(refine_dark_f32, , f32, float, 1)
DEFINE_REFINE_DARK(refine_dark_i8, , i8, int8_t, 0)
DEFINE_REFINE_DARK(refine_dark_u8, , u8, uint8_t, 0)
#ifdef FACELM_AVX2
DEFINE_REFINE_DARK(refine_dark_f32_avx2, FACELM_AVX2_ATTR, f32, float, 1)
DEFINE_REFINE_DARK(refine_dark_i8_avx2, FACELM_AVX2_ATTR, i8, int8_t, 0)
DEFINE_REFINE_DARK(refine_dark_u8_avx2, FACELM_AVX2_ATTR, u8, uint8_t, 0)
#endif

/* ------------------------------------------------------------- peak search
 * NCHW: one contiguous map of n values. Returns the first index of the maximum; sets
 * *valid to 0 for NaN/Inf anywhere or a constant map.
 */
#if (defined(__SSE2__) || defined(FACELM_NEON)) && !defined(FACELM_NO_VECTOR_EXT)
/* Shared end of the single-pass float searches: M is the maximum over blocks (NaN values
 * never win a comparison), bb the first block holding it (-1: none), sum the sum of all
 * values (non-finite iff some value is NaN/Inf, or, rarely, on overflow: then an exact scan
 * decides). Returns the first index of M and sets *valid. */
static int finish_peak_f32(const float *x, int n, int block, float M, int bb, float sum, int tail_best,
                           float *maxv, int *valid)
{
    int i, best = tail_best;
    *maxv = M;
    *valid = 1;
    if (!isfinite(sum)) {
        for (i = 0; i < n; i++) {
            if (!isfinite(x[i])) {
                *valid = 0;
                return 0;
            }
        }
    }
    if (best < 0 && bb >= 0) {
        for (i = bb * block; i < n && x[i] != M; i++) {
        }
        best = i;
    }
    if (best < 0) { /* all -Inf (caught above) */
        *valid = 0;
        return 0;
    }
    if (best == 0) { /* a constant map has its first maximum at 0 */
        for (i = 1; i < n && x[i] == M; i++) {
        }
        if (i == n) *valid = 0;
    }
    return best;
}
#endif

#if defined(__SSE2__) && !defined(FACELM_NO_VECTOR_EXT)
#include <emmintrin.h>
/* x86-64 (SSE2 is its baseline): one pass over blocks of 32 values. Per block a max tree
 * and a sum tree (MAXPS returns its second operand when one is NaN: a NaN never becomes
 * the maximum, and the sum catches it); the block max is compared with the running one
 * only through a movemask. */
static int peak_f32(const float *x, int n, float *maxv, int *valid)
{
    const int block = 32;
    int i, nb = n / block, bb = -1, tail_best = -1;
    float M = -INFINITY, sum, lanes[4];
    __m128 run = _mm_set1_ps(-INFINITY), acc = _mm_setzero_ps();
    for (i = 0; i < nb; i++) {
        const float *p = x + (size_t)i * block;
        __m128 v0 = _mm_loadu_ps(p), v1 = _mm_loadu_ps(p + 4), v2 = _mm_loadu_ps(p + 8),
               v3 = _mm_loadu_ps(p + 12), v4 = _mm_loadu_ps(p + 16), v5 = _mm_loadu_ps(p + 20),
               v6 = _mm_loadu_ps(p + 24), v7 = _mm_loadu_ps(p + 28);
        __m128 m = _mm_max_ps(_mm_max_ps(_mm_max_ps(v0, v1), _mm_max_ps(v2, v3)),
                              _mm_max_ps(_mm_max_ps(v4, v5), _mm_max_ps(v6, v7)));
        acc = _mm_add_ps(acc, _mm_add_ps(_mm_add_ps(_mm_add_ps(v0, v1), _mm_add_ps(v2, v3)),
                                         _mm_add_ps(_mm_add_ps(v4, v5), _mm_add_ps(v6, v7))));
        if (_mm_movemask_ps(_mm_cmpgt_ps(m, run))) {
            m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
            m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
            M = _mm_cvtss_f32(m);
            run = _mm_set1_ps(M);
            bb = i;
        }
    }
    _mm_storeu_ps(lanes, acc);
    sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    for (i = nb * block; i < n; i++) {
        sum += x[i];
        if (x[i] > M) {
            M = x[i];
            tail_best = i;
        }
    }
    return finish_peak_f32(x, n, block, M, bb, sum, tail_best, maxv, valid);
}
#elif defined(FACELM_NEON)
/* AArch64: the SSE2 search with NEON, blocks of 32 values: a FMAXNM tree (a NaN operand
 * loses, as with MAXPS; the sum catches it), a FADD tree, and one FMAXNMV across the block's
 * lanes compared with the running maximum. Per 32 values: 8 loads, 7 max, 8 adds, 1
 * across-lanes max, 1 compare and branch (the generic 16-lane select below needs about
 * twice as many instructions per value: two selects and a multiply-add for every 4). */
static int peak_f32(const float *x, int n, float *maxv, int *valid)
{
    const int block = 32;
    int i, nb = n / block, bb = -1, tail_best = -1;
    float M = -INFINITY, sum;
    float32x4_t acc = vdupq_n_f32(0.0f);
    for (i = 0; i < nb; i++) {
        const float *p = x + (size_t)i * block;
        float32x4_t v0 = vld1q_f32(p), v1 = vld1q_f32(p + 4), v2 = vld1q_f32(p + 8), v3 = vld1q_f32(p + 12),
                    v4 = vld1q_f32(p + 16), v5 = vld1q_f32(p + 20), v6 = vld1q_f32(p + 24), v7 = vld1q_f32(p + 28);
        float32x4_t m = vmaxnmq_f32(vmaxnmq_f32(vmaxnmq_f32(v0, v1), vmaxnmq_f32(v2, v3)),
                                    vmaxnmq_f32(vmaxnmq_f32(v4, v5), vmaxnmq_f32(v6, v7)));
        float bm = vmaxnmvq_f32(m);
        acc = vaddq_f32(acc, vaddq_f32(vaddq_f32(vaddq_f32(v0, v1), vaddq_f32(v2, v3)),
                                       vaddq_f32(vaddq_f32(v4, v5), vaddq_f32(v6, v7))));
        if (bm > M) {
            M = bm;
            bb = i;
        }
    }
    sum = (vgetq_lane_f32(acc, 0) + vgetq_lane_f32(acc, 1)) + (vgetq_lane_f32(acc, 2) + vgetq_lane_f32(acc, 3));
    for (i = nb * block; i < n; i++) {
        sum += x[i];
        if (x[i] > M) {
            M = x[i];
            tail_best = i;
        }
    }
    return finish_peak_f32(x, n, block, M, bb, sum, tail_best, maxv, valid);
}
#else
#if defined(__GNUC__) && !defined(FACELM_NO_VECTOR_EXT) /* e.g. ARM NEON */
/* GCC/Clang vector extensions (SSE2 on x86-64, NEON on ARM): a portable way to get the
 * float select vectorized, which compilers do not do for the plain loop (float compares
 * may trap). Four native 4-lane vectors give 16 lanes and independent chains. Build with
 * -DFACELM_NO_VECTOR_EXT (or any other compiler) for the plain C99 loop; same results. */
#define FACELM_VEC 1
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
#define SELECT(g, a, b) ((g & (a)) | (~g & (b)))
#endif

/* Running lane maxima over blocks of LANES values: m[l] max of lane l, blk[l] the block of
 * its first occurrence, acc[l] NaN iff some value of the lane is NaN or +-Inf. */
static void lane_max_f32(const float *x, int nb, float *m_out, int32_t *blk_out, float *acc_out)
{
#ifdef FACELM_VEC
    const f32x4 lo = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, zero = {0.0f, 0.0f, 0.0f, 0.0f};
    const i32x4 one = {1, 1, 1, 1};
    f32x4 m[4] = {lo, lo, lo, lo}, acc = zero, v[4];
    i32x4 blk[4] = {{0}, {0}, {0}, {0}}, cur = {0, 0, 0, 0}, g;
    int q, l, i;
    for (i = 0; i < nb; i++) {
        const float *p = x + (size_t)i * LANES;
        for (q = 0; q < 4; q++) {
            memcpy(&v[q], p + 4 * q, sizeof v[q]);
            g = v[q] > m[q];
            m[q] = (f32x4)SELECT(g, (i32x4)v[q], (i32x4)m[q]);
            blk[q] = SELECT(g, cur, blk[q]);
        }
        /* x * 0 is 0 for finite x and NaN for NaN/Inf; one accumulator saves registers */
        acc += (v[0] * zero + v[1] * zero) + (v[2] * zero + v[3] * zero);
        cur += one;
    }
    for (q = 0; q < 4; q++) {
        for (l = 0; l < 4; l++) {
            m_out[4 * q + l] = m[q][l];
            blk_out[4 * q + l] = blk[q][l];
            acc_out[4 * q + l] = q == 0 ? acc[l] : 0.0f;
        }
    }
#else
    int l, i;
    for (l = 0; l < LANES; l++) {
        m_out[l] = -INFINITY;
        acc_out[l] = 0.0f;
        blk_out[l] = 0;
    }
    for (i = 0; i < nb; i++) {
        const float *p = x + (size_t)i * LANES;
        for (l = 0; l < LANES; l++) {
            float v = p[l];
            int gt = v > m_out[l];
            m_out[l] = gt ? v : m_out[l];
            blk_out[l] = gt ? i : blk_out[l];
            acc_out[l] += v * 0.0f;
        }
    }
#endif
}

static int peak_f32(const float *x, int n, float *maxv, int *valid)
{
    float m[LANES], acc[LANES];
    int32_t blk[LANES];
    int l, i, nb = n / LANES, best = -1;
    float M = -INFINITY, a = 0.0f;
    lane_max_f32(x, nb, m, blk, acc);
    for (l = 0; l < LANES; l++) {
        a += acc[l];
        if (m[l] > M) M = m[l];
    }
    for (l = 0; l < LANES; l++) {
        int idx = blk[l] * LANES + l;
        if (m[l] == M && (best < 0 || idx < best)) best = idx;
    }
    for (i = nb * LANES; i < n; i++) {
        float v = x[i];
        a += v * 0.0f;
        if (v > M) {
            M = v;
            best = i;
        }
    }
    *maxv = M;
    *valid = (a == 0.0f) && best >= 0 && isfinite(M);
    if (*valid && best == 0) { /* a constant map has its first maximum at 0 */
        for (i = 1; i < n && x[i] == M; i++) {
        }
        if (i == n) *valid = 0;
    }
    return best < 0 ? 0 : best;
}
#endif

#define DEFINE_PEAK_INT(SUF, T, TMIN)                                                       \
    static int peak_##SUF(const T *x, int n, T *maxv, int *valid)                           \
    {                                                                                       \
        T m[LANES];                                                                         \
        T M = TMIN;                                                                         \
        int l, i, nb = n / LANES;                                                           \
        const T *hit;                                                                       \
        BYTE_MAX_##SUF(T, TMIN)                                                             \
        for (l = 0; l < LANES; l++) M = m[l] > M ? m[l] : M;                                \
        for (i = nb * LANES; i < n; i++) M = x[i] > M ? x[i] : M;                           \
        /* first occurrence: memchr is the fastest portable byte search */                  \
        hit = (const T *)memchr(x, *(const unsigned char *)&M, (size_t)n);                  \
        *maxv = M;                                                                          \
        *valid = 1;                                                                         \
        i = (int)(hit - x);                                                                 \
        if (i == 0) {                                                                       \
            int j;                                                                          \
            for (j = 1; j < n && x[j] == M; j++) {                                          \
            }                                                                               \
            if (j == n) *valid = 0;                                                         \
        }                                                                                   \
        return i;                                                                           \
    }

#if defined(__SSE2__) && !defined(FACELM_NO_VECTOR_EXT)
/* SSE2 has an unsigned byte max only: int8 is compared as (q ^ 0x80), which is order-preserving. */
#define BYTE_MAX_SSE2(T, FLIP)                                                              \
    {                                                                                       \
        __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;                        \
        const __m128i f = _mm_set1_epi8((char)(FLIP));                                      \
        unsigned char tmp[LANES];                                                           \
        int nb4 = n / (4 * LANES);                                                          \
        for (i = 0; i < nb4; i++) {                                                         \
            const __m128i *p = (const __m128i *)(const void *)(x + (size_t)i * 4 * LANES);  \
            a0 = _mm_max_epu8(a0, _mm_xor_si128(_mm_loadu_si128(p), f));                    \
            a1 = _mm_max_epu8(a1, _mm_xor_si128(_mm_loadu_si128(p + 1), f));                \
            a2 = _mm_max_epu8(a2, _mm_xor_si128(_mm_loadu_si128(p + 2), f));                \
            a3 = _mm_max_epu8(a3, _mm_xor_si128(_mm_loadu_si128(p + 3), f));                \
        }                                                                                   \
        a0 = _mm_max_epu8(_mm_max_epu8(a0, a1), _mm_max_epu8(a2, a3));                      \
        _mm_storeu_si128((__m128i *)(void *)tmp, a0);                                       \
        for (l = 0; l < LANES; l++) {                                                       \
            unsigned char u = (unsigned char)(tmp[l] ^ (unsigned char)(FLIP));             \
            memcpy(&m[l], &u, 1);                                                           \
        }                                                                                   \
        nb = nb4 * 4;                                                                       \
        for (i = nb; i < n / LANES; i++) {                                                  \
            const T *p = x + (size_t)i * LANES;                                             \
            for (l = 0; l < LANES; l++) m[l] = p[l] > m[l] ? p[l] : m[l];                   \
        }                                                                                   \
        nb = n / LANES;                                                                     \
    }
#define BYTE_MAX_i8(T, TMIN) BYTE_MAX_SSE2(T, 0x80)
#define BYTE_MAX_u8(T, TMIN) BYTE_MAX_SSE2(T, 0x00)
#elif defined(FACELM_NEON)
/* AArch64: signed/unsigned byte max in 64-byte steps (SMAX/UMAX), four accumulators. */
#define BYTE_MAX_NEON(T, VT, DUP, LD, MAXQ, ST, TMIN)                                       \
    {                                                                                       \
        VT a0 = DUP(TMIN), a1 = a0, a2 = a0, a3 = a0;                                       \
        int nb4 = n / (4 * LANES);                                                          \
        for (i = 0; i < nb4; i++) {                                                         \
            const T *p = x + (size_t)i * 4 * LANES;                                         \
            a0 = MAXQ(a0, LD(p));                                                           \
            a1 = MAXQ(a1, LD(p + LANES));                                                   \
            a2 = MAXQ(a2, LD(p + 2 * LANES));                                               \
            a3 = MAXQ(a3, LD(p + 3 * LANES));                                               \
        }                                                                                   \
        ST(m, MAXQ(MAXQ(a0, a1), MAXQ(a2, a3)));                                            \
        for (i = nb4 * 4; i < n / LANES; i++) {                                             \
            const T *p = x + (size_t)i * LANES;                                             \
            for (l = 0; l < LANES; l++) m[l] = p[l] > m[l] ? p[l] : m[l];                   \
        }                                                                                   \
        nb = n / LANES;                                                                     \
    }
#define BYTE_MAX_i8(T, TMIN) BYTE_MAX_NEON(T, int8x16_t, vdupq_n_s8, vld1q_s8, vmaxq_s8, vst1q_s8, TMIN)
#define BYTE_MAX_u8(T, TMIN) BYTE_MAX_NEON(T, uint8x16_t, vdupq_n_u8, vld1q_u8, vmaxq_u8, vst1q_u8, TMIN)
#else
#define BYTE_MAX_PLAIN(T, TMIN)                                                             \
    for (l = 0; l < LANES; l++) m[l] = TMIN;                                                \
    for (i = 0; i < nb; i++) {                                                              \
        const T *p = x + (size_t)i * LANES;                                                 \
        for (l = 0; l < LANES; l++) m[l] = p[l] > m[l] ? p[l] : m[l];                       \
    }
#define BYTE_MAX_i8(T, TMIN) BYTE_MAX_PLAIN(T, TMIN)
#define BYTE_MAX_u8(T, TMIN) BYTE_MAX_PLAIN(T, TMIN)
#endif

DEFINE_PEAK_INT(i8, int8_t, INT8_MIN)
DEFINE_PEAK_INT(u8, uint8_t, 0)

#ifdef FACELM_AVX2
/* The same single pass with 8-lane AVX vectors, blocks of 64 values. */
FACELM_AVX2_ATTR static int peak_f32_avx2(const float *x, int n, float *maxv, int *valid)
{
    const int block = 64;
    int i, nb = n / block, bb = -1, tail_best = -1;
    float M = -INFINITY, sum, lanes[8];
    __m256 run = _mm256_set1_ps(-INFINITY), acc = _mm256_setzero_ps();
    for (i = 0; i < nb; i++) {
        const float *p = x + (size_t)i * block;
        __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8), v2 = _mm256_loadu_ps(p + 16),
               v3 = _mm256_loadu_ps(p + 24), v4 = _mm256_loadu_ps(p + 32), v5 = _mm256_loadu_ps(p + 40),
               v6 = _mm256_loadu_ps(p + 48), v7 = _mm256_loadu_ps(p + 56);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_max_ps(v0, v1), _mm256_max_ps(v2, v3)),
                                 _mm256_max_ps(_mm256_max_ps(v4, v5), _mm256_max_ps(v6, v7)));
        acc = _mm256_add_ps(acc, _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3)),
                                               _mm256_add_ps(_mm256_add_ps(v4, v5), _mm256_add_ps(v6, v7))));
        if (_mm256_movemask_ps(_mm256_cmp_ps(m, run, _CMP_GT_OQ))) {
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_shuffle_ps(h, h, _MM_SHUFFLE(1, 0, 3, 2)));
            h = _mm_max_ps(h, _mm_shuffle_ps(h, h, _MM_SHUFFLE(2, 3, 0, 1)));
            M = _mm_cvtss_f32(h);
            run = _mm256_set1_ps(M);
            bb = i;
        }
    }
    _mm256_storeu_ps(lanes, acc);
    sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (i = nb * block; i < n; i++) {
        sum += x[i];
        if (x[i] > M) {
            M = x[i];
            tail_best = i;
        }
    }
    if (tail_best < 0 && bb >= 0) { /* the first lane equal to M in block bb */
        const __m256 key = _mm256_set1_ps(M);
        for (i = 0; i < block && tail_best < 0; i += 8) {
            int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + (size_t)bb * block + i), key, _CMP_EQ_OQ));
            if (mask) tail_best = bb * block + i + __builtin_ctz((unsigned)mask);
        }
    }
    return finish_peak_f32(x, n, block, M, bb, sum, tail_best, maxv, valid);
}

/* Byte maps: 32-byte signed/unsigned max, then memchr for the first occurrence. */
#define DEFINE_PEAK_INT_AVX2(SUF, T, TMIN, MAXOP)                                           \
    FACELM_AVX2_ATTR static int peak_##SUF##_avx2(const T *x, int n, T *maxv, int *valid)   \
    {                                                                                       \
        __m256i a0 = _mm256_set1_epi8((char)(TMIN)), a1 = a0, a2 = a0, a3 = a0;              \
        T tmp[32], M = TMIN;                                                                \
        int i, l, nb = n / 128, j;                                                          \
        const T *hit;                                                                       \
        for (i = 0; i < nb; i++) {                                                          \
            const __m256i *p = (const __m256i *)(const void *)(x + (size_t)i * 128);        \
            a0 = MAXOP(a0, _mm256_loadu_si256(p));                                          \
            a1 = MAXOP(a1, _mm256_loadu_si256(p + 1));                                      \
            a2 = MAXOP(a2, _mm256_loadu_si256(p + 2));                                      \
            a3 = MAXOP(a3, _mm256_loadu_si256(p + 3));                                      \
        }                                                                                   \
        a0 = MAXOP(MAXOP(a0, a1), MAXOP(a2, a3));                                           \
        _mm256_storeu_si256((__m256i *)(void *)tmp, a0);                                    \
        for (l = 0; l < 32; l++) M = tmp[l] > M ? tmp[l] : M;                               \
        for (i = nb * 128; i < n; i++) M = x[i] > M ? x[i] : M;                             \
        hit = (const T *)memchr(x, *(const unsigned char *)&M, (size_t)n);                  \
        *maxv = M;                                                                          \
        *valid = 1;                                                                         \
        i = (int)(hit - x);                                                                 \
        if (i == 0) {                                                                       \
            for (j = 1; j < n && x[j] == M; j++) {                                          \
            }                                                                               \
            if (j == n) *valid = 0;                                                         \
        }                                                                                   \
        return i;                                                                           \
    }
DEFINE_PEAK_INT_AVX2(i8, int8_t, INT8_MIN, _mm256_max_epi8)
DEFINE_PEAK_INT_AVX2(u8, uint8_t, 0, _mm256_max_epu8)
#endif

/* NHWC: one image [hw][k]. On return m[c] is channel c's maximum, blk[c] the pixel of its
 * first occurrence and valid[c] 0 for NaN/Inf anywhere or a constant channel. */
static void peaks_nhwc_f32(const float *x, int hw, int k, float *m, int32_t *blk, float *acc,
                           int32_t *valid)
{
    int p, c;
    for (c = 0; c < k; c++) {
        m[c] = -INFINITY;
        blk[c] = -1;
        acc[c] = 0.0f;
    }
    for (p = 0; p < hw; p++) {
        const float *row = x + (size_t)p * k;
        c = 0;
#ifdef FACELM_NEON
        /* 4 channels per step: compare, two selects (BSL), multiply-add for the NaN/Inf check;
         * state in the k-long arrays (106 channels do not fit the 32 registers). */
        {
            const float32x4_t zero = vdupq_n_f32(0.0f);
            const int32x4_t pix = vdupq_n_s32(p);
            for (; c + 4 <= k; c += 4) {
                float32x4_t v = vld1q_f32(row + c), mc = vld1q_f32(m + c);
                uint32x4_t gt = vcgtq_f32(v, mc);
                vst1q_f32(m + c, vbslq_f32(gt, v, mc));
                vst1q_s32(blk + c, vbslq_s32(gt, pix, vld1q_s32(blk + c)));
                vst1q_f32(acc + c, vaddq_f32(vld1q_f32(acc + c), vmulq_f32(v, zero)));
            }
        }
#endif
        for (; c < k; c++) {
            float v = row[c];
            int gt = v > m[c];
            m[c] = gt ? v : m[c];
            blk[c] = gt ? p : blk[c];
            acc[c] += v * 0.0f;
        }
    }
    for (c = 0; c < k; c++) {
        int ok = acc[c] == 0.0f && blk[c] >= 0 && isfinite(m[c]);
        if (ok && blk[c] == 0) {
            for (p = 1; p < hw && x[(size_t)p * k + c] == m[c]; p++) {
            }
            if (p == hw) ok = 0;
        }
        if (blk[c] < 0) blk[c] = 0;
        valid[c] = ok;
    }
}

#define DEFINE_PEAKS_NHWC_INT(SUF, T)                                                       \
    static void peaks_nhwc_##SUF(const T *x, int hw, int k, T *m, int32_t *blk, float *acc, \
                                 int32_t *valid)                                            \
    {                                                                                       \
        int p, c;                                                                           \
        (void)acc;                                                                          \
        for (c = 0; c < k; c++) {                                                           \
            m[c] = x[c];                                                                    \
            blk[c] = 0;                                                                     \
        }                                                                                   \
        for (p = 1; p < hw; p++) {                                                          \
            const T *row = x + (size_t)p * k;                                               \
            for (c = 0; c < k; c++) {                                                       \
                T v = row[c];                                                               \
                int gt = v > m[c];                                                          \
                m[c] = gt ? v : m[c];                                                       \
                blk[c] = gt ? p : blk[c];                                                   \
            }                                                                               \
        }                                                                                   \
        for (c = 0; c < k; c++) {                                                           \
            int ok = 1;                                                                     \
            if (blk[c] == 0) {                                                              \
                for (p = 1; p < hw && x[(size_t)p * k + c] == m[c]; p++) {                  \
                }                                                                           \
                if (p == hw) ok = 0;                                                        \
            }                                                                               \
            valid[c] = ok;                                                                  \
        }                                                                                   \
    }

DEFINE_PEAKS_NHWC_INT(i8, int8_t)
DEFINE_PEAKS_NHWC_INT(u8, uint8_t)

/* ------------------------------------------------------------------ driver */

static int check_args(const void *maps, int n, int k, int h, int w, const facelm_decode_params *p,
                      const float *coords, const float *scores, const void *ws, size_t ws_bytes)
{
    if (!maps || !p || !coords || !scores) return FACELM_EINVAL;
    if (n < 1 || k < 1 || h < 1 || w < 1) return FACELM_EINVAL;
    if ((long long)h * w * k >= 2147483647LL) return FACELM_EINVAL;
    if (p->method < FACELM_METHOD_ARGMAX || p->method > FACELM_METHOD_DARK) return FACELM_EINVAL;
    if (p->layout != FACELM_LAYOUT_NCHW && p->layout != FACELM_LAYOUT_NHWC) return FACELM_EINVAL;
    if (p->blur_kernel < 1 || p->blur_kernel > FACELM_MAX_BLUR_KERNEL || p->blur_kernel % 2 == 0)
        return FACELM_EINVAL;
    if (!ws || ws_bytes < facelm_workspace_size(k, p->blur_kernel)) return FACELM_EWORKSPACE;
    return FACELM_OK;
}

/* Half kernels in float32: table[q * (R + 1) + b] = tap b (0..q) of the radius-q kernel, 0
 * for b > q. */
static void build_table(int R, float *table)
{
    double k[2 * MAX_RADIUS + 1];
    int q, b;
    for (q = 0; q <= R; q++) {
        facelm_gaussian_kernel(q, k);
        for (b = 0; b <= R; b++) table[q * (R + 1) + b] = b <= q ? (float)k[q + b] : 0.0f;
    }
}

static void write_result(float *coords, float *scores, int valid, int px, int py, double ox,
                         double oy, double peak, int h, int w)
{
    if (!valid) {
        coords[0] = (float)((w - 1) / 2.0);
        coords[1] = (float)((h - 1) / 2.0);
        *scores = FACELM_INVALID_SCORE;
        return;
    }
    coords[0] = (float)(px + clamp_offset(ox));
    coords[1] = (float)(py + clamp_offset(oy));
    *scores = (float)peak;
}

#ifndef FACELM_AVX2
#define FACELM_HAVE_AVX2() 0
#define peak_f32_avx2 peak_f32
#define peak_i8_avx2 peak_i8
#define peak_u8_avx2 peak_u8
#define refine_dark_f32_avx2 refine_dark_f32
#define refine_dark_i8_avx2 refine_dark_i8
#define refine_dark_u8_avx2 refine_dark_u8
#endif

/* One decode function per dtype. PEAK_DEQ turns the raw maximum into the score. */
#define DEFINE_DECODE(SUF, T, PEAK_DEQ)                                                        \
    static int decode_##SUF(const T *maps, int n, int k, int h, int w, double scale,           \
                            int32_t zp, const facelm_decode_params *params, float *coords,     \
                            float *scores, void *workspace, size_t workspace_bytes)            \
    {                                                                                          \
        int R = (params ? params->blur_kernel - 1 : 0) / 2, rc, ni, ki, px, py, idx, valid;    \
        float *table = (float *)workspace;                                                     \
        double ox, oy;                                                                         \
        const int avx2 = FACELM_HAVE_AVX2();                                                   \
        char *tail;                                                                            \
        size_t hw = (size_t)h * (size_t)w, o;                                                  \
        T mv;                                                                                  \
        rc = check_args(maps, n, k, h, w, params, coords, scores, workspace, workspace_bytes); \
        if (rc != FACELM_OK) return rc;                                                        \
        tail = (char *)workspace + sizeof(double) * (size_t)(R + 1) * (size_t)(2 * R + 1);     \
        if (params->method == FACELM_METHOD_DARK) build_table(R, table);                       \
        for (ni = 0; ni < n; ni++) {                                                           \
            int nhwc = params->layout == FACELM_LAYOUT_NHWC;                                   \
            const T *img = maps + (size_t)ni * hw * (size_t)k;                                 \
            T *m = (T *)tail;                                                                  \
            int32_t *blk = (int32_t *)(tail + 4u * (size_t)k);                                 \
            float *acc = (float *)(tail + 8u * (size_t)k);                                     \
            int32_t *val = (int32_t *)(tail + 12u * (size_t)k);                                \
            if (nhwc) peaks_nhwc_##SUF(img, (int)hw, k, m, blk, acc, val);                     \
            for (ki = 0; ki < k; ki++) {                                                       \
                const T *base;                                                                 \
                ptrdiff_t sx, sy;                                                              \
                if (nhwc) {                                                                    \
                    idx = blk[ki];                                                             \
                    mv = m[ki];                                                                \
                    valid = val[ki];                                                           \
                    base = img + ki;                                                           \
                    sx = k;                                                                    \
                    sy = (ptrdiff_t)w * k;                                                     \
                } else {                                                                       \
                    base = img + (size_t)ki * hw;                                              \
                    idx = avx2 ? peak_##SUF##_avx2(base, (int)hw, &mv, &valid)                 \
                               : peak_##SUF(base, (int)hw, &mv, &valid);                       \
                    sx = 1;                                                                    \
                    sy = w;                                                                    \
                }                                                                              \
                px = idx % w;                                                                  \
                py = idx / w;                                                                  \
                ox = oy = 0.0;                                                                 \
                if (valid && params->method == FACELM_METHOD_DARK && avx2)                     \
                    refine_dark_##SUF##_avx2(base, sx, sy, h, w, px, py, R, table, scale, zp, &ox, &oy); \
                else if (valid && params->method == FACELM_METHOD_DARK)                        \
                    refine_dark_##SUF(base, sx, sy, h, w, px, py, R, table, scale, zp, &ox, &oy); \
                else if (valid && params->method == FACELM_METHOD_QUARTER)                     \
                    refine_quarter_##SUF(base, sx, sy, h, w, px, py, scale, zp, &ox, &oy);       \
                o = (size_t)ni * k + ki;                                                       \
                write_result(coords + 2 * o, scores + o, valid, px, py, ox, oy, PEAK_DEQ(mv), h, w); \
            }                                                                                  \
        }                                                                                      \
        return FACELM_OK;                                                                      \
    }

DEFINE_DECODE(f32, float, DEQ_F32)
DEFINE_DECODE(i8, int8_t, DEQ_INT)
DEFINE_DECODE(u8, uint8_t, DEQ_INT)

static int check_quant(double scale)
{
    return isfinite(scale) && scale > 0.0;
}

int facelm_decode_f32(const float *maps, int n, int k, int h, int w,
                      const facelm_decode_params *params,
                      float *coords, float *scores, void *workspace, size_t workspace_bytes)
{
    return decode_f32(maps, n, k, h, w, 1.0, 0, params, coords, scores, workspace, workspace_bytes);
}

int facelm_decode_i8(const int8_t *maps, int n, int k, int h, int w,
                     double scale, int32_t zero_point,
                     const facelm_decode_params *params,
                     float *coords, float *scores, void *workspace, size_t workspace_bytes)
{
    if (!check_quant(scale) || zero_point < -128 || zero_point > 127) return FACELM_EINVAL;
    return decode_i8(maps, n, k, h, w, scale, zero_point, params, coords, scores, workspace,
                     workspace_bytes);
}

int facelm_decode_u8(const uint8_t *maps, int n, int k, int h, int w,
                     double scale, int32_t zero_point,
                     const facelm_decode_params *params,
                     float *coords, float *scores, void *workspace, size_t workspace_bytes)
{
    if (!check_quant(scale) || zero_point < 0 || zero_point > 255) return FACELM_EINVAL;
    return decode_u8(maps, n, k, h, w, scale, zero_point, params, coords, scores, workspace,
                     workspace_bytes);
}
