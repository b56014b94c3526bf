/*
 * facelm.codec._cdark: a thin CPython wrapper over the portable core (facelm_dark.c).
 *
 * decode(maps, coords_out, scores_out, method, blur_kernel, nhwc, scale, zero_point)
 *   maps        C-contiguous 4-D buffer, format 'f' (float32), 'b' (int8) or 'B' (uint8)
 *   coords_out  writable C-contiguous float32 buffer of n*k*2 values
 *   scores_out  writable C-contiguous float32 buffer of n*k values
 * Shapes and dtypes are validated in sdk/codec/core.py; this layer only re-checks what
 * would otherwise make the core read or write out of bounds. The GIL is released while
 * the core runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#include "facelm_dark.h"

static int format_is(const Py_buffer *b, char c)
{
    const char *f = b->format ? b->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    return f[0] == c && f[1] == '\0';
}

static PyObject *py_decode(PyObject *self, PyObject *args)
{
    PyObject *maps_obj, *coords_obj, *scores_obj;
    int method, blur_kernel, nhwc, zero_point, rc = FACELM_EINVAL, n, k, h, w;
    double scale;
    Py_buffer maps, coords, scores;
    facelm_decode_params params;
    void *ws = NULL;
    size_t ws_bytes;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOiipdi", &maps_obj, &coords_obj, &scores_obj, &method,
                          &blur_kernel, &nhwc, &scale, &zero_point))
        return NULL;
    if (PyObject_GetBuffer(maps_obj, &maps, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(coords_obj, &coords, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&maps);
        return NULL;
    }
    if (PyObject_GetBuffer(scores_obj, &scores, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&maps);
        PyBuffer_Release(&coords);
        return NULL;
    }
    if (maps.ndim != 4) {
        PyErr_SetString(PyExc_ValueError, "maps must be 4-D");
        goto done;
    }
    n = (int)maps.shape[0];
    if (nhwc) {
        h = (int)maps.shape[1];
        w = (int)maps.shape[2];
        k = (int)maps.shape[3];
    } else {
        k = (int)maps.shape[1];
        h = (int)maps.shape[2];
        w = (int)maps.shape[3];
    }
    if (!format_is(&coords, 'f') || !format_is(&scores, 'f') ||
        coords.len != (Py_ssize_t)sizeof(float) * 2 * n * k ||
        scores.len != (Py_ssize_t)sizeof(float) * n * k) {
        PyErr_SetString(PyExc_ValueError, "coords_out/scores_out must be float32 of n*k*2 / n*k values");
        goto done;
    }
    params.method = method;
    params.blur_kernel = blur_kernel;
    params.layout = nhwc ? FACELM_LAYOUT_NHWC : FACELM_LAYOUT_NCHW;
    ws_bytes = facelm_workspace_size(k, blur_kernel);
    ws = PyMem_Malloc(ws_bytes ? ws_bytes : 1);
    if (!ws) {
        PyErr_NoMemory();
        goto done;
    }
    if (format_is(&maps, 'f') && maps.itemsize == 4) {
        Py_BEGIN_ALLOW_THREADS
        rc = facelm_decode_f32((const float *)maps.buf, n, k, h, w, &params, (float *)coords.buf,
                               (float *)scores.buf, ws, ws_bytes);
        Py_END_ALLOW_THREADS
    } else if (format_is(&maps, 'b') && maps.itemsize == 1) {
        Py_BEGIN_ALLOW_THREADS
        rc = facelm_decode_i8((const int8_t *)maps.buf, n, k, h, w, scale, zero_point, &params,
                              (float *)coords.buf, (float *)scores.buf, ws, ws_bytes);
        Py_END_ALLOW_THREADS
    } else if (format_is(&maps, 'B') && maps.itemsize == 1) {
        Py_BEGIN_ALLOW_THREADS
        rc = facelm_decode_u8((const uint8_t *)maps.buf, n, k, h, w, scale, zero_point, &params,
                              (float *)coords.buf, (float *)scores.buf, ws, ws_bytes);
        Py_END_ALLOW_THREADS
    } else {
        PyErr_Format(PyExc_TypeError, "maps must be float32, int8 or uint8 (format %s)",
                     maps.format ? maps.format : "?");
        goto done;
    }
    if (rc != FACELM_OK) PyErr_Format(PyExc_ValueError, "facelm_decode failed with code %d", rc);
done:
    PyMem_Free(ws);
    PyBuffer_Release(&maps);
    PyBuffer_Release(&coords);
    PyBuffer_Release(&scores);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS,
     "decode(maps, coords_out, scores_out, method, blur_kernel, nhwc, scale, zero_point)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cdark", "C twin of the numpy DARK decoder (sdk/codec/csrc).", -1, methods,
};

PyMODINIT_FUNC PyInit__cdark(void)
{
    return PyModule_Create(&module);
}
