/*
 * facelm_example_litert: image -> landmarks, end to end in C, through LiteRT's C API.
 *
 *   facelm_example_litert model.tflite face.ppm x1 y1 x2 y2 x3 y3 x4 y4 x5 y5
 *
 * Five points: left eye, right eye, nose tip, left and right mouth corner (image pixels,
 * e.g. from a face detector). Prints K lines "x y" (landmarks in image pixels) on stdout.
 *
 * The flow an app follows, once per face after a one-time setup:
 *   setup:   facelm_model_init (tables from facelm_model_params.h); LiteRtCreateEnvironment,
 *            LiteRtCreateModelFromFile, LiteRtCreateCompiledModel (CPU), one input and one
 *            output tensor buffer from the compiled model's requirements;
 *   per face: lock input -> facelm_preprocess -> unlock; LiteRtRunCompiledModel;
 *            lock output -> facelm_postprocess -> unlock.
 * It also reads the facelm metadata embedded in the model (LiteRtGetModelMetadata) and checks
 * that it describes the model facelm_model_params.h was generated for.
 * Link: cc ... facelm_example_litert.c facelm_landmarks.c facelm_dark.c -lLiteRt -lm
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facelm_kit_io.h"
#include "facelm_landmarks.h"
#include "facelm_model_params.h"
#include "litert_c_api_min.h"

#define FACELM_METADATA_KEY "facelm_manifest"

#define CHECK(call, what)                                                    \
    do {                                                                     \
        LiteRtStatus st_ = (call);                                           \
        if (st_ != kLiteRtStatusOk) {                                        \
            fprintf(stderr, "facelm_example: %s failed (status %d)\n", what, st_); \
            return 1;                                                        \
        }                                                                    \
    } while (0)

static int element_type_of(int dtype) {
    return dtype == FACELM_DTYPE_FLOAT32 ? kLiteRtElementTypeFloat32
           : dtype == FACELM_DTYPE_INT8  ? kLiteRtElementTypeInt8
                                         : kLiteRtElementTypeUInt8;
}

/* The embedded facelm metadata (the manifest's model sections as JSON) must agree with the
 * constants compiled in from facelm_model_params.h. */
static int check_metadata(LiteRtModel model, const facelm_model_desc *desc) {
    const void *buf = NULL;
    size_t size = 0;
    char *json;
    double sizes[2], k, tpl[10], stdv[3];
    int ok, i;
    if (LiteRtGetModelMetadata(model, FACELM_METADATA_KEY, &buf, &size) != kLiteRtStatusOk || !buf || size == 0) {
        fprintf(stderr, "facelm_example: the model has no \"%s\" metadata\n", FACELM_METADATA_KEY);
        return 0;
    }
    json = (char *)malloc(size + 1);
    if (!json) return 0;
    memcpy(json, buf, size);
    json[size] = 0;
    ok = kit_json_numbers(json, "model.input_size", sizes, 2) == 2 && (int)sizes[0] == FACELM_MODEL_INPUT_SIZE &&
         kit_json_numbers(json, "model.num_keypoints", &k, 1) == 1 && (int)k == FACELM_MODEL_NUM_KEYPOINTS &&
         kit_json_numbers(json, "preprocess.five_point_template", tpl, 10) == 10 &&
         kit_json_numbers(json, "preprocess.std", stdv, 3) == 3;
    for (i = 0; ok && i < 10; i++) ok = fabs(tpl[i] - desc->template_points[i]) < 1e-9;
    for (i = 0; ok && i < 3; i++) ok = fabs(stdv[i] - desc->std[i]) < 1e-12;
    fprintf(stderr, "facelm_example: metadata \"%s\" (%zu bytes) %s facelm_model_params.h (%dx%d input, %d points, template, std)\n",
            FACELM_METADATA_KEY, size, ok ? "matches" : "DOES NOT MATCH", FACELM_MODEL_INPUT_SIZE,
            FACELM_MODEL_INPUT_SIZE, FACELM_MODEL_NUM_KEYPOINTS);
    free(json);
    return ok;
}

int main(int argc, char **argv) {
    static facelm_model fm; /* ~4.6 KB of tables: static, set up once */
    const facelm_model_desc desc = FACELM_MODEL_DESC_INIT;
    LiteRtEnvironment env = NULL;
    LiteRtModel model = NULL;
    LiteRtOptions options = NULL;
    LiteRtCompiledModel compiled = NULL;
    LiteRtSignature sig = NULL;
    LiteRtTensor in_tensor = NULL, out_tensor = NULL;
    LiteRtRankedTensorType in_type, out_type;
    LiteRtTensorBufferRequirements in_req = NULL, out_req = NULL;
    LiteRtTensorBuffer in_buf = NULL, out_buf = NULL;
    size_t in_size = 0, out_size = 0, ws_bytes;
    unsigned char *rgb, *ws;
    float five[10], *landmarks;
    double m[6];
    void *addr;
    int width, height, i, rc, k;

    if (argc != 13) {
        fprintf(stderr, "usage: %s model.tflite face.ppm x1 y1 x2 y2 x3 y3 x4 y4 x5 y5\n", argv[0]);
        return 2;
    }
    for (i = 0; i < 10; i++) five[i] = (float)atof(argv[3 + i]);
    rgb = kit_read_ppm(argv[2], &width, &height);
    if (!rgb) {
        fprintf(stderr, "facelm_example: cannot read %s (binary PPM, P6)\n", argv[2]);
        return 1;
    }
    if (facelm_model_init(&fm, &desc) != FACELM_OK) return 1;
    k = fm.desc.num_keypoints;
    ws_bytes = facelm_postprocess_workspace_size(&fm);
    ws = (unsigned char *)malloc(ws_bytes);
    landmarks = (float *)malloc(sizeof(float) * 2 * (size_t)k);
    if (!ws || !landmarks) return 1;

    /* ---- one-time LiteRT setup ---- */
    CHECK(LiteRtCreateEnvironment(0, NULL, &env), "LiteRtCreateEnvironment");
    CHECK(LiteRtCreateModelFromFile(argv[1], &model), "LiteRtCreateModelFromFile");
    if (!check_metadata(model, &fm.desc)) return 1;
    CHECK(LiteRtCreateOptions(&options), "LiteRtCreateOptions");
    CHECK(LiteRtSetOptionsHardwareAccelerators(options, kLiteRtHwAcceleratorCpu), "LiteRtSetOptionsHardwareAccelerators");
    CHECK(LiteRtCreateCompiledModel(env, model, options, &compiled), "LiteRtCreateCompiledModel");
    CHECK(LiteRtGetModelSignature(model, 0, &sig), "LiteRtGetModelSignature");
    CHECK(LiteRtGetSignatureInputTensorByIndex(sig, 0, &in_tensor), "LiteRtGetSignatureInputTensorByIndex");
    CHECK(LiteRtGetSignatureOutputTensorByIndex(sig, 0, &out_tensor), "LiteRtGetSignatureOutputTensorByIndex");
    CHECK(LiteRtGetRankedTensorType(in_tensor, &in_type), "LiteRtGetRankedTensorType(input)");
    CHECK(LiteRtGetRankedTensorType(out_tensor, &out_type), "LiteRtGetRankedTensorType(output)");
    if (in_type.element_type != element_type_of(fm.desc.input_dtype) ||
        out_type.element_type != element_type_of(fm.desc.output_dtype)) {
        fprintf(stderr, "facelm_example: tensor types %d -> %d are not those of facelm_model_params.h\n",
                in_type.element_type, out_type.element_type);
        return 1;
    }
    CHECK(LiteRtGetCompiledModelInputBufferRequirements(compiled, 0, 0, &in_req), "input buffer requirements");
    CHECK(LiteRtGetCompiledModelOutputBufferRequirements(compiled, 0, 0, &out_req), "output buffer requirements");
    CHECK(LiteRtCreateManagedTensorBufferFromRequirements(env, &in_type, in_req, &in_buf), "input tensor buffer");
    CHECK(LiteRtCreateManagedTensorBufferFromRequirements(env, &out_type, out_req, &out_buf), "output tensor buffer");
    CHECK(LiteRtGetTensorBufferSize(in_buf, &in_size), "LiteRtGetTensorBufferSize(input)");
    CHECK(LiteRtGetTensorBufferSize(out_buf, &out_size), "LiteRtGetTensorBufferSize(output)");
    if (in_size < facelm_input_bytes(&fm) || out_size < facelm_output_bytes(&fm)) {
        fprintf(stderr, "facelm_example: tensor buffers of %zu and %zu bytes, the model needs %zu and %zu\n", in_size,
                out_size, facelm_input_bytes(&fm), facelm_output_bytes(&fm));
        return 1;
    }

    /* ---- per face: preprocess, run, postprocess ---- */
    CHECK(LiteRtLockTensorBuffer(in_buf, &addr, kLiteRtTensorBufferLockModeWrite), "lock input");
    rc = facelm_preprocess(&fm, rgb, width, height, width * 3, FACELM_PIXELS_RGB, five, addr, facelm_input_bytes(&fm), m);
    CHECK(LiteRtUnlockTensorBuffer(in_buf), "unlock input");
    if (rc != FACELM_OK) {
        fprintf(stderr, "facelm_example: facelm_preprocess returned %d\n", rc);
        return 1;
    }
    CHECK(LiteRtRunCompiledModel(compiled, 0, 1, &in_buf, 1, &out_buf), "LiteRtRunCompiledModel");
    CHECK(LiteRtLockTensorBuffer(out_buf, &addr, kLiteRtTensorBufferLockModeRead), "lock output");
    rc = facelm_postprocess(&fm, addr, facelm_output_bytes(&fm), m, landmarks, NULL, ws, ws_bytes);
    CHECK(LiteRtUnlockTensorBuffer(out_buf), "unlock output");
    if (rc != FACELM_OK) {
        fprintf(stderr, "facelm_example: facelm_postprocess returned %d\n", rc);
        return 1;
    }
    for (i = 0; i < k; i++) printf("%.6f %.6f\n", landmarks[2 * i], landmarks[2 * i + 1]);

    LiteRtDestroyTensorBuffer(in_buf);
    LiteRtDestroyTensorBuffer(out_buf);
    LiteRtDestroyCompiledModel(compiled);
    LiteRtDestroyOptions(options);
    LiteRtDestroyModel(model);
    LiteRtDestroyEnvironment(env);
    free(rgb);
    free(ws);
    free(landmarks);
    return 0;
}
