package com.facelm.kit;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Pre- and post-processing of a facelm landmark model, around a LiteRT interpreter call.
 *
 * <pre>{@code
 * FaceLandmarks fl = new FaceLandmarks();                 // loads libfacelm_kit.so
 * ByteBuffer input = fl.preprocess(argb, width, height, fivePoints);
 * interpreter.run(input, output);                          // output: fl.newOutputBuffer()
 * float[] xy = fl.postprocess(output);                     // K (x, y) pairs, image pixels
 * }</pre>
 *
 * The model constants (input size, normalisation, quantization, template, decode parameters)
 * are compiled into the native library from the kit's facelm_model_params.h, generated from
 * manifest.json. Not thread-safe: postprocess maps back with the transform of the last
 * preprocess, so use one instance per thread. Callable from Kotlin as is.
 */
public final class FaceLandmarks implements AutoCloseable {
    /** Pixel formats for {@link #preprocess(ByteBuffer, int, int, int, int, float[])} (facelm_landmarks.h). */
    public static final int PIXELS_RGB = 0, PIXELS_RGBA = 1, PIXELS_BGRA = 2, PIXELS_BGR = 3;
    /** Tensor element types (facelm_landmarks.h). */
    public static final int DTYPE_FLOAT32 = 0, DTYPE_INT8 = 1, DTYPE_UINT8 = 2;

    static {
        System.loadLibrary("facelm_kit");
    }

    private long handle;
    private final ByteBuffer input;
    private ByteBuffer outputCopy; // used only when postprocess gets a heap ByteBuffer
    private final int numKeypoints;

    /** A context for the model compiled into libfacelm_kit. */
    public FaceLandmarks() {
        handle = nativeCreate();
        if (handle == 0) throw new IllegalStateException("facelm: the model parameters are invalid or out of memory");
        numKeypoints = nativeInfo(handle, 1);
        input = ByteBuffer.allocateDirect(nativeInfo(handle, 2)).order(ByteOrder.nativeOrder());
    }

    /** Side S of the square model input. */
    public int inputSize() { return nativeInfo(live(), 0); }

    /** Number of landmarks K. */
    public int numKeypoints() { return numKeypoints; }

    /** Element type of the model input ({@code DTYPE_*}). */
    public int inputDtype() { return nativeInfo(live(), 4); }

    /** True when the model input is NHWC (channels last), as TFLite models are. */
    public boolean inputChannelsLast() { return nativeInfo(live(), 5) == 1; }

    /** Bytes of the model's raw output tensor. */
    public int outputBytes() { return nativeInfo(live(), 3); }

    /** A direct, native-order buffer of the output's size, for {@code interpreter.run(input, output)}. */
    public ByteBuffer newOutputBuffer() {
        return ByteBuffer.allocateDirect(outputBytes()).order(ByteOrder.nativeOrder());
    }

    /**
     * Align the face and fill the model input.
     *
     * @param pixels ARGB ints as from {@code Bitmap.getPixels} (row stride = width)
     * @param width image width in pixels
     * @param height image height in pixels
     * @param fivePoints 10 floats: (x, y) of left eye, right eye, nose tip, left and right mouth corner, image pixels
     * @return the model input (direct buffer owned by this object, rewound; reused by the next call)
     */
    public ByteBuffer preprocess(int[] pixels, int width, int height, float[] fivePoints) {
        check(nativePreprocessArgb(live(), pixels, width, height, fivePoints, input), "preprocess");
        input.rewind();
        return input;
    }

    /**
     * Same from a direct buffer of bytes, e.g. {@code Bitmap.copyPixelsToBuffer} of an ARGB_8888
     * bitmap ({@code PIXELS_RGBA}, rowBytes = 4 * width) or a camera RGB frame.
     */
    public ByteBuffer preprocess(ByteBuffer pixels, int width, int height, int rowBytes, int format, float[] fivePoints) {
        if (!pixels.isDirect()) throw new IllegalArgumentException("facelm: pixels must be a direct ByteBuffer");
        check(nativePreprocessBuffer(live(), pixels, width, height, rowBytes, format, fivePoints, input), "preprocess");
        input.rewind();
        return input;
    }

    /** Landmarks of the last preprocessed face: 2K floats (x0, y0, x1, y1, ...) in image pixels. */
    public float[] postprocess(ByteBuffer outputBuffer) {
        float[] landmarks = new float[2 * numKeypoints];
        postprocess(outputBuffer, landmarks, null);
        return landmarks;
    }

    /** Allocation-free form: fills landmarks (2K floats) and, if not null, scores (K heatmap peaks). */
    public void postprocess(ByteBuffer outputBuffer, float[] landmarks, float[] scores) {
        ByteBuffer out = outputBuffer;
        if (!out.isDirect()) {
            if (outputCopy == null) outputCopy = ByteBuffer.allocateDirect(outputBytes()).order(ByteOrder.nativeOrder());
            ByteBuffer src = outputBuffer.duplicate();
            src.rewind();
            outputCopy.clear();
            outputCopy.put(src);
            out = outputCopy;
        }
        check(nativePostprocess(live(), out, landmarks, scores), "postprocess");
    }

    /** The image -> crop similarity of the last preprocess: {a, b, tx, c, d, ty}. */
    public double[] transform() {
        double[] m = new double[6];
        check(nativeTransform(live(), m), "transform");
        return m;
    }

    @Override
    public void close() {
        if (handle != 0) {
            nativeDestroy(handle);
            handle = 0;
        }
    }

    private long live() {
        if (handle == 0) throw new IllegalStateException("facelm: this FaceLandmarks is closed");
        return handle;
    }

    private static void check(int rc, String what) {
        if (rc == 0) return;
        String why;
        switch (rc) {
            case -1: why = "invalid argument"; break;
            case -2: why = "workspace too small"; break;
            case -3: why = "image pointer, size, row stride or pixel format invalid"; break;
            case -4: why = "the five points are not finite or coincide"; break;
            case -5: why = "a tensor buffer has the wrong size (use the buffers of this class)"; break;
            case -100: why = "postprocess before any successful preprocess"; break;
            case -101: why = "an array or buffer is shorter than the image or model needs"; break;
            default: why = "error " + rc;
        }
        throw new IllegalArgumentException("facelm " + what + ": " + why);
    }

    private static native long nativeCreate();
    private static native void nativeDestroy(long handle);
    private static native int nativeInfo(long handle, int what);
    private static native int nativePreprocessArgb(long handle, int[] pixels, int width, int height, float[] fivePoints,
                                                   ByteBuffer input);
    private static native int nativePreprocessBuffer(long handle, ByteBuffer pixels, int width, int height, int rowBytes,
                                                     int format, float[] fivePoints, ByteBuffer input);
    private static native int nativePostprocess(long handle, ByteBuffer output, float[] landmarks, float[] scores);
    private static native int nativeTransform(long handle, double[] m);
}
