/*
 * facelm_golden_test: checks this kit's C library against the golden vectors of the Python
 * runtime (golden/case_NNN.json, written by `facelm app-kit`).
 *
 *   facelm_golden_test golden/case_000.json [more cases...]
 *
 * For each case and each pixel format (RGB, RGBA, BGRA, BGR):
 *   - facelm_preprocess(image, five points) must give the golden input tensor within the
 *     case's per-channel tolerance (tensor units: quantization steps for an integer input);
 *   - facelm_postprocess(golden raw output) must give the golden landmarks within
 *     tolerance.landmarks_px.
 * Then a few API checks (error codes, One Euro). Prints one line per case; exit status 0
 * only when everything passed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facelm_kit_io.h"
#include "facelm_landmarks.h"
#include "facelm_model_params.h"

#define MAX_K 4096

static facelm_model g_model;

static double tensor_value(const facelm_model *m, const void *t, size_t i) {
    switch (m->desc.input_dtype) {
    case FACELM_DTYPE_FLOAT32: return ((const float *)t)[i];
    case FACELM_DTYPE_INT8: return ((const int8_t *)t)[i];
    default: return ((const uint8_t *)t)[i];
    }
}

static int channel_of(const facelm_model *m, size_t i) {
    const size_t s = (size_t)m->desc.input_size;
    return m->desc.input_layout == FACELM_TENSOR_NHWC ? (int)(i % 3u) : (int)(i / (s * s));
}

/* Expand packed RGB into another pixel format. */
static void convert_pixels(const unsigned char *rgb, int n, int format, unsigned char *out) {
    int i;
    for (i = 0; i < n; i++) {
        const unsigned char r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        switch (format) {
        case FACELM_PIXELS_RGBA: out[4 * i] = r; out[4 * i + 1] = g; out[4 * i + 2] = b; out[4 * i + 3] = 255; break;
        case FACELM_PIXELS_BGRA: out[4 * i] = b; out[4 * i + 1] = g; out[4 * i + 2] = r; out[4 * i + 3] = 255; break;
        case FACELM_PIXELS_BGR: out[3 * i] = b; out[3 * i + 1] = g; out[3 * i + 2] = r; break;
        default: out[3 * i] = r; out[3 * i + 1] = g; out[3 * i + 2] = b; break;
        }
    }
}

static int run_case(const char *json_path) {
    static const int formats[4] = {FACELM_PIXELS_RGB, FACELM_PIXELS_RGBA, FACELM_PIXELS_BGRA, FACELM_PIXELS_BGR};
    static const char *format_names[4] = {"RGB", "RGBA", "BGRA", "BGR"};
    static double expect_lm[2 * MAX_K];
    static float landmarks[2 * MAX_K];
    char *json = NULL, name[512], path[1024];
    unsigned char *rgb = NULL, *pixels = NULL, *want_in = NULL, *raw = NULL, *got_in = NULL, *ws = NULL;
    size_t in_bytes = facelm_input_bytes(&g_model), out_bytes = facelm_output_bytes(&g_model), n_in = 0, n_out = 0, i;
    size_t ws_bytes = facelm_postprocess_workspace_size(&g_model), elems;
    double five_d[10], tol_in[3], tol_lm, transform[6], worst_in = 0, worst_lm = 0, worst_m = 0;
    float five[10];
    int width = 0, height = 0, k = g_model.desc.num_keypoints, f, ok = 1, rc, differ = 0;

    json = (char *)kit_read_file(json_path, NULL);
    if (!json) {
        printf("FAIL %s: cannot read\n", json_path);
        return 0;
    }
    if (kit_json_numbers(json, "five_points", five_d, 10) != 10 || kit_json_numbers(json, "landmarks", expect_lm, 2 * MAX_K) != 2 * k ||
        kit_json_numbers(json, "tolerance.input_per_channel", tol_in, 3) != 3 || kit_json_numbers(json, "tolerance.landmarks_px", &tol_lm, 1) != 1 ||
        kit_json_numbers(json, "transform", transform, 6) != 6) {
        printf("FAIL %s: malformed golden case (five_points, landmarks[%d], tolerance, transform)\n", json_path, k);
        ok = 0;
        goto done;
    }
    for (i = 0; i < 10; i++) five[i] = (float)five_d[i];
    if (kit_json_string(json, "image", name, sizeof(name)) != 0) { ok = 0; printf("FAIL %s: no image\n", json_path); goto done; }
    kit_sibling(json_path, name, path, sizeof(path));
    rgb = kit_read_ppm(path, &width, &height);
    if (kit_json_string(json, "input_tensor", name, sizeof(name)) == 0) {
        kit_sibling(json_path, name, path, sizeof(path));
        want_in = kit_read_file(path, &n_in);
    }
    if (kit_json_string(json, "raw_output", name, sizeof(name)) == 0) {
        kit_sibling(json_path, name, path, sizeof(path));
        raw = kit_read_file(path, &n_out);
    }
    if (!rgb || !want_in || !raw || n_in != in_bytes || n_out != out_bytes) {
        printf("FAIL %s: image, input tensor (%zu bytes, want %zu) or raw output (%zu, want %zu) missing\n", json_path,
               n_in, in_bytes, n_out, out_bytes);
        ok = 0;
        goto done;
    }
    pixels = (unsigned char *)malloc((size_t)width * height * 4u);
    got_in = (unsigned char *)malloc(in_bytes);
    ws = (unsigned char *)malloc(ws_bytes);
    if (!pixels || !got_in || !ws) { ok = 0; goto done; }

    elems = in_bytes / (g_model.desc.input_dtype == FACELM_DTYPE_FLOAT32 ? 4u : 1u);
    for (f = 0; f < 4; f++) {
        const int bpp = (formats[f] == FACELM_PIXELS_RGBA || formats[f] == FACELM_PIXELS_BGRA) ? 4 : 3;
        double m[6];
        convert_pixels(rgb, width * height, formats[f], pixels);
        rc = facelm_preprocess(&g_model, pixels, width, height, width * bpp, formats[f], five, got_in, in_bytes, m);
        if (rc != FACELM_OK) {
            printf("FAIL %s: facelm_preprocess(%s) returned %d\n", json_path, format_names[f], rc);
            ok = 0;
            continue;
        }
        for (i = 0; i < 6; i++) {
            const double e = fabs(m[i] - transform[i]) / (fabs(transform[i]) > 1.0 ? fabs(transform[i]) : 1.0);
            if (e > worst_m) worst_m = e;
        }
        for (i = 0; i < elems; i++) {
            const double d = fabs(tensor_value(&g_model, got_in, i) - tensor_value(&g_model, want_in, i));
            const int c = channel_of(&g_model, i);
            if (d > 0) differ++;
            if (d / tol_in[c] > worst_in) worst_in = d / tol_in[c];
            if (d > tol_in[c]) {
                if (ok) printf("FAIL %s (%s): input element %zu differs by %g (tolerance %g)\n", json_path, format_names[f], i, d, tol_in[c]);
                ok = 0;
            }
        }
        rc = facelm_postprocess(&g_model, raw, out_bytes, m, landmarks, NULL, ws, ws_bytes);
        if (rc != FACELM_OK) {
            printf("FAIL %s: facelm_postprocess returned %d\n", json_path, rc);
            ok = 0;
            continue;
        }
        for (i = 0; i < (size_t)(2 * k); i++) {
            const double d = fabs((double)landmarks[i] - expect_lm[i]);
            if (!(d <= worst_lm)) worst_lm = d; /* NaN counts as worst */
        }
        if (!(worst_lm <= tol_lm)) ok = 0;
    }
    if (worst_m > 1e-9) ok = 0;
    printf("%s %s: %dx%d image, 4 pixel formats; input tensor max diff %.3f of tolerance (%d elements differ); "
           "transform rel err %.1e; landmarks max err %.2e px (tolerance %g)\n",
           ok ? "PASS" : "FAIL", json_path, width, height, worst_in, differ, worst_m, worst_lm, tol_lm);
done:
    free(json);
    free(rgb);
    free(pixels);
    free(want_in);
    free(raw);
    free(got_in);
    free(ws);
    return ok;
}

/* Error codes and the One Euro filter against its defining formula. */
static int api_checks(void) {
    static unsigned char img[8 * 8 * 3];
    static unsigned char tensor[1];
    const float same[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const float five[10] = {2, 2, 5, 2, 3.5f, 4, 2.5f, 6, 4.5f, 6};
    float state[2], v[1];
    facelm_one_euro oe;
    facelm_model_desc bad = g_model.desc;
    facelm_model scratch;
    double m[6], alpha, tau;
    int ok = 1;
    memset(img, 0, sizeof(img));
    if (facelm_preprocess(&g_model, img, 8, 8, 24, FACELM_PIXELS_RGB, same, tensor, sizeof(tensor), m) != FACELM_EPOINTS) ok = 0;
    if (facelm_preprocess(&g_model, NULL, 8, 8, 24, FACELM_PIXELS_RGB, five, tensor, sizeof(tensor), m) != FACELM_EIMAGE) ok = 0;
    if (facelm_preprocess(&g_model, img, 8, 8, 20, FACELM_PIXELS_RGB, five, tensor, sizeof(tensor), m) != FACELM_EIMAGE) ok = 0;
    if (facelm_preprocess(&g_model, img, 8, 8, 24, 9, five, tensor, sizeof(tensor), m) != FACELM_EIMAGE) ok = 0;
    if (facelm_preprocess(&g_model, img, 8, 8, 24, FACELM_PIXELS_RGB, five, tensor, sizeof(tensor), m) != FACELM_EBUFFER) ok = 0;
    bad.blur_kernel = 4;
    if (facelm_model_init(&scratch, &bad) != FACELM_EINVAL) ok = 0;
    bad = g_model.desc;
    bad.std[1] = 0.0;
    if (facelm_model_init(&scratch, &bad) != FACELM_EINVAL) ok = 0;
    /* One Euro: first sample passes through; a step with beta = 0 moves by alpha(min_cutoff, dt). */
    if (facelm_one_euro_init(&oe, 1, 1.0, 0.0, 1.0, state) != FACELM_OK) ok = 0;
    v[0] = 0.0f;
    facelm_one_euro_apply(&oe, 0.0, v);
    if (v[0] != 0.0f) ok = 0;
    v[0] = 1.0f;
    facelm_one_euro_apply(&oe, 1.0 / 30.0, v);
    tau = 1.0 / (2.0 * 3.14159265358979323846 * 1.0);
    alpha = 1.0 / (1.0 + tau * 30.0);
    if (fabs(v[0] - alpha) > 1e-6) ok = 0;
    printf("%s API checks: error codes, model validation, One Euro step %.6f (expected %.6f)\n", ok ? "PASS" : "FAIL",
           v[0], alpha);
    return ok;
}

int main(int argc, char **argv) {
    const facelm_model_desc desc = FACELM_MODEL_DESC_INIT;
    int i, passed = 0, rc;
    if (argc < 2) {
        fprintf(stderr, "usage: %s golden/case_*.json\n", argv[0]);
        return 2;
    }
    rc = facelm_model_init(&g_model, &desc);
    if (rc != FACELM_OK) {
        printf("FAIL facelm_model_init returned %d\n", rc);
        return 1;
    }
    if (g_model.desc.num_keypoints > MAX_K) return 1;
    for (i = 1; i < argc; i++) passed += run_case(argv[i]);
    passed += api_checks();
    printf("%s: %d of %d checks passed (model %s, artifact %s)\n", passed == argc ? "OK" : "FAILED", passed, argc,
           FACELM_MODEL_NAME, FACELM_MODEL_ARTIFACT);
    return passed == argc ? 0 : 1;
}
