/*
 * Test driver for the portable C core alone (no Python): compiled by tests/test_codec_c.py
 * with the system C compiler against sdk/codec/csrc/facelm_dark.c.
 *
 * stdin:  int32 dtype (0 float32, 1 int8, 2 uint8), layout, method, blur_kernel, n, k, h, w;
 *         float64 scale; int32 zero_point; then the n*k*h*w map values.
 * stdout: n*k*2 float32 coords, then n*k float32 scores. Exit status = 0 or the core's code.
 */
#include <stdio.h>
#include <stdlib.h>

#include "facelm_dark.h"

int main(void)
{
    int32_t hdr[8], zp;
    double scale;
    size_t count, item, ws_bytes;
    void *maps, *ws;
    float *coords, *scores;
    facelm_decode_params p;
    int rc;
    if (fread(hdr, sizeof(int32_t), 8, stdin) != 8 || fread(&scale, sizeof(double), 1, stdin) != 1 ||
        fread(&zp, sizeof(int32_t), 1, stdin) != 1)
        return 90;
    count = (size_t)hdr[4] * hdr[5] * hdr[6] * hdr[7];
    item = hdr[0] == 0 ? 4 : 1;
    maps = malloc(count * item);
    coords = malloc(sizeof(float) * 2 * hdr[4] * hdr[5]);
    scores = malloc(sizeof(float) * hdr[4] * hdr[5]);
    ws_bytes = facelm_workspace_size(hdr[5], hdr[3]);
    ws = malloc(ws_bytes);
    if (!maps || !coords || !scores || !ws || fread(maps, item, count, stdin) != count) return 91;
    p.layout = hdr[1];
    p.method = hdr[2];
    p.blur_kernel = hdr[3];
    if (hdr[0] == 0)
        rc = facelm_decode_f32((const float *)maps, hdr[4], hdr[5], hdr[6], hdr[7], &p, coords, scores, ws, ws_bytes);
    else if (hdr[0] == 1)
        rc = facelm_decode_i8((const int8_t *)maps, hdr[4], hdr[5], hdr[6], hdr[7], scale, zp, &p, coords, scores,
                              ws, ws_bytes);
    else
        rc = facelm_decode_u8((const uint8_t *)maps, hdr[4], hdr[5], hdr[6], hdr[7], scale, zp, &p, coords,
                              scores, ws, ws_bytes);
    if (rc != FACELM_OK) return 100 - rc;
    fwrite(coords, sizeof(float), 2 * (size_t)hdr[4] * hdr[5], stdout);
    fwrite(scores, sizeof(float), (size_t)hdr[4] * hdr[5], stdout);
    free(maps);
    free(coords);
    free(scores);
    free(ws);
    return 0;
}
