/*
 * facelm_kit_io.h: file helpers for the kit's test driver and example (not part of the
 * library): read a whole file, a binary PPM (P6) image, and numbers or strings from the
 * JSON files (golden cases, the model's embedded metadata) by dotted key path. Header-only,
 * C99, stdio only.
 */
#ifndef FACELM_KIT_IO_H
#define FACELM_KIT_IO_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole file, NUL-terminated; *size = its byte count. NULL on error. Free with free(). */
static inline unsigned char *kit_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = (unsigned char *)malloc((size_t)n + 1u);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = 0;
            if (size) *size = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

static inline const unsigned char *kit_ppm_token(const unsigned char *p, const unsigned char *end, long *value) {
    while (p < end) {
        if (*p == '#') {
            while (p < end && *p != '\n') p++;
        } else if (isspace(*p)) {
            p++;
        } else {
            break;
        }
    }
    if (p >= end || !isdigit(*p)) return NULL;
    *value = 0;
    while (p < end && isdigit(*p) && *value < 1000000) *value = *value * 10 + (*p++ - '0');
    return p;
}

/* A binary PPM (P6, maxval 255) as RGB bytes (malloc'ed); NULL on error. */
static inline unsigned char *kit_read_ppm(const char *path, int *width, int *height) {
    size_t size = 0;
    unsigned char *file = kit_read_file(path, &size), *rgb = NULL;
    const unsigned char *p, *end;
    long w, h, maxval;
    if (!file) return NULL;
    end = file + size;
    p = file;
    if (size < 2 || p[0] != 'P' || p[1] != '6') goto done;
    p += 2;
    if (!(p = kit_ppm_token(p, end, &w)) || !(p = kit_ppm_token(p, end, &h)) || !(p = kit_ppm_token(p, end, &maxval)))
        goto done;
    if (w < 1 || h < 1 || maxval != 255 || p >= end || !isspace(*p)) goto done;
    p++;
    if ((size_t)(end - p) < (size_t)w * (size_t)h * 3u) goto done;
    rgb = (unsigned char *)malloc((size_t)w * (size_t)h * 3u);
    if (rgb) {
        memcpy(rgb, p, (size_t)w * (size_t)h * 3u);
        *width = (int)w;
        *height = (int)h;
    }
done:
    free(file);
    return rgb;
}

static inline const char *kit_json_ws(const char *p) {
    while (*p && isspace((unsigned char)*p)) p++;
    return p;
}

/* The end of the JSON value starting at p (after whitespace), or NULL if malformed. */
static inline const char *kit_json_skip(const char *p, int depth) {
    p = kit_json_ws(p);
    if (depth > 64) return NULL;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && !*++p) return NULL;
        return *p ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        const char close = *p == '{' ? '}' : ']';
        p = kit_json_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (!(p = kit_json_skip(p, depth + 1))) return NULL; /* key */
                p = kit_json_ws(p);
                if (*p++ != ':') return NULL;
            }
            if (!(p = kit_json_skip(p, depth + 1))) return NULL;
            p = kit_json_ws(p);
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
        }
    }
    if (!*p || strchr(",]}", *p)) return NULL;
    while (*p && !strchr(",]} \t\r\n", *p)) p++; /* number, true, false, null */
    return p;
}

/* The value at a dotted path of object keys ("tolerance.landmarks_px"), or NULL. */
static inline const char *kit_json_get(const char *json, const char *path) {
    const char *p = kit_json_ws(json);
    while (*path) {
        const char *dot = strchr(path, '.');
        const size_t n = dot ? (size_t)(dot - path) : strlen(path);
        int found = 0;
        if (*p != '{') return NULL;
        p = kit_json_ws(p + 1);
        while (*p == '"') {
            const char *key = p + 1, *after = kit_json_skip(p, 0);
            if (!after) return NULL;
            p = kit_json_ws(after);
            if (*p++ != ':') return NULL;
            p = kit_json_ws(p);
            if ((size_t)(after - key - 1) == n && strncmp(key, path, n) == 0) {
                found = 1;
                break;
            }
            if (!(p = kit_json_skip(p, 0))) return NULL;
            p = kit_json_ws(p);
            if (*p == ',') p = kit_json_ws(p + 1);
        }
        if (!found) return NULL;
        path += n + (dot ? 1 : 0);
    }
    return p;
}

/* Up to max numbers of the value at path (a number or a possibly nested array), in order.
 * Returns their count, or -1 when the path is absent or holds something else. */
static inline int kit_json_numbers(const char *json, const char *path, double *out, int max) {
    const char *p = kit_json_get(json, path), *end;
    int count = 0;
    if (!p || !(end = kit_json_skip(p, 0))) return -1;
    for (; p < end; p++) {
        if (*p == '-' || *p == '+' || *p == '.' || isdigit((unsigned char)*p)) {
            char *stop;
            const double v = strtod(p, &stop);
            if (stop == p) return -1;
            if (count < max) out[count] = v;
            count++;
            p = stop - 1;
        } else if (!strchr("[], \t\r\n", *p)) {
            return -1;
        }
    }
    return count;
}

/* The string at path (no escapes), copied into out (size cap). 0 on success, -1 otherwise. */
static inline int kit_json_string(const char *json, const char *path, char *out, size_t cap) {
    const char *p = kit_json_get(json, path), *q;
    if (!p || *p != '"') return -1;
    q = strchr(p + 1, '"');
    if (!q || (size_t)(q - p - 1) + 1 > cap) return -1;
    memcpy(out, p + 1, (size_t)(q - p - 1));
    out[q - p - 1] = 0;
    return 0;
}

/* dir of path (up to the last '/'), joined with name, into out. */
static inline void kit_sibling(const char *path, const char *name, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path + 1) : 0;
    if (n + strlen(name) + 1 > cap) {
        out[0] = 0;
        return;
    }
    memcpy(out, path, n);
    strcpy(out + n, name);
}

#endif /* FACELM_KIT_IO_H */
