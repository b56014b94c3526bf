/*
 * facelm_jni.c: JNI glue between com.facelm.kit.FaceLandmarks and the kit's C library.
 *
 * The same file builds for Android (NDK, see native/CMakeLists.txt, FACELM_BUILD_JNI=ON) and
 * for a desktop JVM (make test-jni). One native context per FaceLandmarks object, allocated
 * once at construction; preprocess/postprocess only touch the caller's arrays and the
 * context (pinned with Get*Critical or direct-buffer addresses, no copies, no allocation).
 * A context is not thread-safe: use one FaceLandmarks per thread.
 */
#include <jni.h>
#include <stdlib.h>
#include <string.h>

#include "facelm_landmarks.h"
#include "facelm_model_params.h"

typedef struct {
    facelm_model model;
    double m[6];          /* image -> crop transform of the last preprocess */
    int have_m;
    unsigned char *workspace;
    size_t workspace_bytes;
} facelm_jni_ctx;

#define CTX(h) ((facelm_jni_ctx *)(intptr_t)(h))
#define FACELM_JNI_ENOTREADY (-100) /* postprocess before any preprocess */
#define FACELM_JNI_EARRAY (-101)    /* a Java array is too short */

JNIEXPORT jlong JNICALL Java_com_facelm_kit_FaceLandmarks_nativeCreate(JNIEnv *env, jclass cls) {
    const facelm_model_desc desc = FACELM_MODEL_DESC_INIT;
    facelm_jni_ctx *ctx = (facelm_jni_ctx *)calloc(1, sizeof(facelm_jni_ctx));
    (void)env;
    (void)cls;
    if (!ctx) return 0;
    if (facelm_model_init(&ctx->model, &desc) != FACELM_OK) {
        free(ctx);
        return 0;
    }
    ctx->workspace_bytes = facelm_postprocess_workspace_size(&ctx->model);
    ctx->workspace = (unsigned char *)malloc(ctx->workspace_bytes);
    if (!ctx->workspace) {
        free(ctx);
        return 0;
    }
    return (jlong)(intptr_t)ctx;
}

JNIEXPORT void JNICALL Java_com_facelm_kit_FaceLandmarks_nativeDestroy(JNIEnv *env, jclass cls, jlong h) {
    (void)env;
    (void)cls;
    if (h) {
        free(CTX(h)->workspace);
        free(CTX(h));
    }
}

/* what: 0 input size S, 1 keypoints K, 2 input bytes, 3 output bytes, 4 input dtype (FACELM_DTYPE_*),
 * 5 input layout (FACELM_TENSOR_*), 6 output dtype. */
JNIEXPORT jint JNICALL Java_com_facelm_kit_FaceLandmarks_nativeInfo(JNIEnv *env, jclass cls, jlong h, jint what) {
    const facelm_model *m = &CTX(h)->model;
    (void)env;
    (void)cls;
    switch (what) {
    case 0: return m->desc.input_size;
    case 1: return m->desc.num_keypoints;
    case 2: return (jint)facelm_input_bytes(m);
    case 3: return (jint)facelm_output_bytes(m);
    case 4: return m->desc.input_dtype;
    case 5: return m->desc.input_layout;
    case 6: return m->desc.output_dtype;
    default: return -1;
    }
}

static int preprocess_common(JNIEnv *env, facelm_jni_ctx *ctx, const uint8_t *pixels, jint width, jint height,
                             jint row_bytes, jint format, jfloatArray five_points, jobject input) {
    float five[10];
    void *dst = (*env)->GetDirectBufferAddress(env, input);
    jlong cap = (*env)->GetDirectBufferCapacity(env, input);
    int rc;
    if ((*env)->GetArrayLength(env, five_points) < 10) return FACELM_JNI_EARRAY;
    (*env)->GetFloatArrayRegion(env, five_points, 0, 10, five);
    if (!dst || cap < 0 || (size_t)cap != facelm_input_bytes(&ctx->model)) return FACELM_EBUFFER;
    rc = facelm_preprocess(&ctx->model, pixels, width, height, row_bytes, format, five, dst, (size_t)cap, ctx->m);
    ctx->have_m = rc == FACELM_OK;
    return rc;
}

JNIEXPORT jint JNICALL Java_com_facelm_kit_FaceLandmarks_nativePreprocessArgb(JNIEnv *env, jclass cls, jlong h,
                                                                              jintArray pixels, jint width,
                                                                              jint height, jfloatArray five_points,
                                                                              jobject input) {
    facelm_jni_ctx *ctx = CTX(h);
    jint *px;
    int rc;
    (void)cls;
    if (width < 1 || height < 1 || (*env)->GetArrayLength(env, pixels) / width < height) return FACELM_JNI_EARRAY;
    px = (jint *)(*env)->GetPrimitiveArrayCritical(env, pixels, NULL);
    if (!px) return FACELM_EIMAGE;
    /* Bitmap.getPixels gives 0xAARRGGBB ints: bytes B, G, R, A on little-endian Android/x86. */
    rc = preprocess_common(env, ctx, (const uint8_t *)px, width, height, width * 4, FACELM_PIXELS_BGRA, five_points,
                           input);
    (*env)->ReleasePrimitiveArrayCritical(env, pixels, px, JNI_ABORT);
    return rc;
}

JNIEXPORT jint JNICALL Java_com_facelm_kit_FaceLandmarks_nativePreprocessBuffer(JNIEnv *env, jclass cls, jlong h,
                                                                                jobject pixels, jint width,
                                                                                jint height, jint row_bytes,
                                                                                jint format, jfloatArray five_points,
                                                                                jobject input) {
    const uint8_t *px = (const uint8_t *)(*env)->GetDirectBufferAddress(env, pixels);
    jlong cap = (*env)->GetDirectBufferCapacity(env, pixels);
    (void)cls;
    if (!px || height < 1 || row_bytes < 1 || cap / row_bytes < height) return FACELM_JNI_EARRAY;
    return preprocess_common(env, CTX(h), px, width, height, row_bytes, format, five_points, input);
}

JNIEXPORT jint JNICALL Java_com_facelm_kit_FaceLandmarks_nativePostprocess(JNIEnv *env, jclass cls, jlong h,
                                                                           jobject output, jfloatArray landmarks,
                                                                           jfloatArray scores) {
    facelm_jni_ctx *ctx = CTX(h);
    const void *raw = (*env)->GetDirectBufferAddress(env, output);
    jlong cap = (*env)->GetDirectBufferCapacity(env, output);
    const int k = ctx->model.desc.num_keypoints;
    float *lm, *sc = NULL;
    int rc;
    (void)cls;
    if (!ctx->have_m) return FACELM_JNI_ENOTREADY;
    if (!raw || cap < 0) return FACELM_EBUFFER;
    if ((*env)->GetArrayLength(env, landmarks) < 2 * k || (scores && (*env)->GetArrayLength(env, scores) < k))
        return FACELM_JNI_EARRAY;
    lm = (float *)(*env)->GetPrimitiveArrayCritical(env, landmarks, NULL);
    if (!lm) return FACELM_EBUFFER;
    if (scores) {
        sc = (float *)(*env)->GetPrimitiveArrayCritical(env, scores, NULL);
        if (!sc) {
            (*env)->ReleasePrimitiveArrayCritical(env, landmarks, lm, JNI_ABORT);
            return FACELM_EBUFFER;
        }
    }
    rc = facelm_postprocess(&ctx->model, raw, (size_t)cap, ctx->m, lm, sc, ctx->workspace, ctx->workspace_bytes);
    if (sc) (*env)->ReleasePrimitiveArrayCritical(env, scores, sc, rc == FACELM_OK ? 0 : JNI_ABORT);
    (*env)->ReleasePrimitiveArrayCritical(env, landmarks, lm, rc == FACELM_OK ? 0 : JNI_ABORT);
    return rc;
}

JNIEXPORT jint JNICALL Java_com_facelm_kit_FaceLandmarks_nativeTransform(JNIEnv *env, jclass cls, jlong h,
                                                                         jdoubleArray out) {
    facelm_jni_ctx *ctx = CTX(h);
    (void)cls;
    if (!ctx->have_m) return FACELM_JNI_ENOTREADY;
    if ((*env)->GetArrayLength(env, out) < 6) return FACELM_JNI_EARRAY;
    (*env)->SetDoubleArrayRegion(env, out, 0, 6, ctx->m);
    return FACELM_OK;
}
