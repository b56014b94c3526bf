package com.facelm.kit;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;

/**
 * The Java golden test: FaceLandmarks (through JNI, the same glue Android loads) against the
 * golden vectors of the Python runtime. For each case: preprocess from ARGB ints and from a
 * direct RGBA buffer must give the golden input tensor within the case's per-channel
 * tolerance; postprocess of the golden raw output (from a direct and a heap buffer) must give
 * the golden landmarks within tolerance.landmarks_px.
 *
 * Usage: java -Djava.library.path=DIR -cp CLASSES com.facelm.kit.GoldenTest golden/case_*.json
 */
public final class GoldenTest {
    public static void main(String[] args) throws IOException {
        if (args.length == 0) {
            System.err.println("usage: GoldenTest golden/case_*.json");
            System.exit(2);
        }
        int passed = 0;
        try (FaceLandmarks fl = new FaceLandmarks()) {
            for (String a : args) passed += runCase(fl, Paths.get(a)) ? 1 : 0;
            passed += apiChecks(fl) ? 1 : 0;
        }
        int total = args.length + 1;
        System.out.println((passed == total ? "OK" : "FAILED") + ": " + passed + " of " + total + " checks passed (JNI, "
                + System.getProperty("java.vm.name") + " " + System.getProperty("java.version") + ")");
        System.exit(passed == total ? 0 : 1);
    }

    private static boolean runCase(FaceLandmarks fl, Path json) throws IOException {
        String doc = new String(Files.readAllBytes(json), StandardCharsets.UTF_8);
        Path dir = json.toAbsolutePath().getParent();
        double[] five = numbers(doc, "five_points");
        double[] want = numbers(doc, "landmarks");
        double[] tolIn = numbers(doc, "input_per_channel");
        double tolLm = numbers(doc, "landmarks_px")[0];
        byte[] wantIn = Files.readAllBytes(dir.resolve(string(doc, "input_tensor")));
        byte[] raw = Files.readAllBytes(dir.resolve(string(doc, "raw_output")));
        int[] size = new int[2];
        byte[] rgb = readPpm(dir.resolve(string(doc, "image")), size);
        int w = size[0], h = size[1];
        float[] fivef = new float[10];
        for (int i = 0; i < 10; i++) fivef[i] = (float) five[i];

        int[] argb = new int[w * h];
        ByteBuffer rgba = ByteBuffer.allocateDirect(w * h * 4);
        for (int i = 0; i < w * h; i++) {
            int r = rgb[3 * i] & 0xFF, g = rgb[3 * i + 1] & 0xFF, b = rgb[3 * i + 2] & 0xFF;
            argb[i] = 0xFF000000 | (r << 16) | (g << 8) | b;
            rgba.put((byte) r).put((byte) g).put((byte) b).put((byte) 0xFF);
        }
        rgba.rewind();

        boolean ok = true;
        double worstIn = 0, worstLm = 0;
        int s = fl.inputSize();
        ByteBuffer expected = ByteBuffer.wrap(wantIn).order(ByteOrder.LITTLE_ENDIAN);
        for (int variant = 0; variant < 2; variant++) {
            ByteBuffer in = variant == 0 ? fl.preprocess(argb, w, h, fivef)
                                         : fl.preprocess(rgba, w, h, 4 * w, FaceLandmarks.PIXELS_RGBA, fivef);
            in.order(ByteOrder.nativeOrder());
            int n = fl.inputDtype() == FaceLandmarks.DTYPE_FLOAT32 ? wantIn.length / 4 : wantIn.length;
            for (int i = 0; i < n; i++) {
                double got = value(in, fl.inputDtype(), i, ByteOrder.nativeOrder());
                double exp = value(expected, fl.inputDtype(), i, ByteOrder.LITTLE_ENDIAN);
                int c = fl.inputChannelsLast() ? i % 3 : i / (s * s);
                double d = Math.abs(got - exp);
                worstIn = Math.max(worstIn, d / tolIn[c]);
                if (d > tolIn[c]) ok = false;
            }
            for (int direct = 0; direct < 2; direct++) {
                ByteBuffer out = direct == 0 ? ByteBuffer.allocateDirect(raw.length) : ByteBuffer.allocate(raw.length);
                out.put(raw);
                out.rewind();
                float[] lm = fl.postprocess(out);
                if (lm.length != want.length) {
                    System.out.println("FAIL " + json + ": " + lm.length / 2 + " landmarks, golden has " + want.length / 2);
                    return false;
                }
                for (int i = 0; i < lm.length; i++) {
                    double d = Math.abs(lm[i] - want[i]);
                    if (!(d <= worstLm)) worstLm = d;
                }
            }
        }
        if (!(worstLm <= tolLm)) ok = false;
        System.out.printf("%s %s: %dx%d image, ARGB ints and RGBA buffer; input tensor max diff %.3f of tolerance; "
                + "landmarks max err %.2e px (tolerance %s)%n", ok ? "PASS" : "FAIL", json, w, h, worstIn, worstLm, tolLm);
        return ok;
    }

    private static boolean apiChecks(FaceLandmarks fl) {
        boolean ok = true;
        try { // coincident five points
            fl.preprocess(new int[64], 8, 8, new float[10]);
            ok = false;
        } catch (IllegalArgumentException expected) {
            ok &= expected.getMessage().contains("five points");
        }
        try { // pixel array shorter than width * height
            fl.preprocess(new int[10], 8, 8, new float[] {2, 2, 5, 2, 3.5f, 4, 2.5f, 6, 4.5f, 6});
            ok = false;
        } catch (IllegalArgumentException expected) {
            ok &= expected.getMessage().contains("shorter");
        }
        System.out.println((ok ? "PASS" : "FAIL") + " API checks: bad five points and short pixel arrays raise IllegalArgumentException");
        return ok;
    }

    private static double value(ByteBuffer b, int dtype, int i, ByteOrder order) {
        b.order(order);
        switch (dtype) {
            case FaceLandmarks.DTYPE_FLOAT32: return b.getFloat(4 * i);
            case FaceLandmarks.DTYPE_INT8: return b.get(i);
            default: return b.get(i) & 0xFF;
        }
    }

    /** Binary PPM (P6, maxval 255) -> RGB bytes; size[0] = width, size[1] = height. */
    static byte[] readPpm(Path path, int[] size) throws IOException {
        byte[] f = Files.readAllBytes(path);
        int[] pos = {2};
        if (f.length < 2 || f[0] != 'P' || f[1] != '6') throw new IOException(path + " is not a binary PPM");
        int w = token(f, pos), h = token(f, pos), max = token(f, pos);
        if (max != 255) throw new IOException(path + ": maxval " + max);
        pos[0]++; // the single whitespace after maxval
        size[0] = w;
        size[1] = h;
        byte[] rgb = new byte[w * h * 3];
        System.arraycopy(f, pos[0], rgb, 0, rgb.length);
        return rgb;
    }

    private static int token(byte[] f, int[] pos) {
        while (f[pos[0]] == '#' || Character.isWhitespace(f[pos[0]])) {
            if (f[pos[0]] == '#') while (f[pos[0]] != '\n') pos[0]++;
            else pos[0]++;
        }
        int v = 0;
        while (Character.isDigit(f[pos[0]])) v = v * 10 + (f[pos[0]++] - '0');
        return v;
    }

    /** Every number of the (possibly nested) array or the number under "key", in order. */
    static double[] numbers(String doc, String key) {
        int at = valueStart(doc, key);
        List<Double> out = new ArrayList<>();
        if (doc.charAt(at) != '[') {
            int end = at;
            while (end < doc.length() && "+-.eE0123456789".indexOf(doc.charAt(end)) >= 0) end++;
            return new double[] {Double.parseDouble(doc.substring(at, end))};
        }
        int depth = 0;
        for (int i = at; i < doc.length(); i++) {
            char ch = doc.charAt(i);
            if (ch == '[') depth++;
            else if (ch == ']') {
                if (--depth == 0) break;
            } else if (ch == '-' || ch == '.' || Character.isDigit(ch)) {
                int end = i;
                while (end < doc.length() && "+-.eE0123456789".indexOf(doc.charAt(end)) >= 0) end++;
                out.add(Double.parseDouble(doc.substring(i, end)));
                i = end - 1;
            }
        }
        double[] r = new double[out.size()];
        for (int i = 0; i < r.length; i++) r[i] = out.get(i);
        return r;
    }

    static String string(String doc, String key) {
        int at = valueStart(doc, key);
        return doc.substring(at + 1, doc.indexOf('"', at + 1));
    }

    private static int valueStart(String doc, String key) {
        int at = doc.indexOf("\"" + key + "\"");
        if (at < 0) throw new IllegalArgumentException("golden case lacks \"" + key + "\"");
        at = doc.indexOf(':', at) + 1;
        while (Character.isWhitespace(doc.charAt(at))) at++;
        return at;
    }
}
