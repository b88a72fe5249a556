/* dataset.c — the data sets of dataset.h. */
#include "repsweep/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "repsweep/net.h"
#include "repsweep/status.h"


/* The one allocation path: the struct and its arrays, zeroed; NULL on failure. */
static rs_dataset *dataset_alloc(const char *name, size_t n, int in_dim, int out_dim,
                                 int with_labels)
{
    rs_dataset *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    snprintf(d->name, sizeof d->name, "%s", name);
    d->n = n;
    d->in_dim = in_dim;
    d->out_dim = out_dim;
    d->x = calloc(n * (size_t)in_dim, sizeof *d->x);
    d->y = calloc(n * (size_t)out_dim, sizeof *d->y);
    d->label = with_labels ? calloc(n, sizeof *d->label) : NULL;
    if (!d->x || !d->y || (with_labels && !d->label)) {
        rs_dataset_free(d);
        return NULL;
    }
    return d;
}

void rs_dataset_free(rs_dataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    free(d->label);
    free(d);
}

int rs_dataset_two_point(double input_gap, double target_gap, rs_dataset **out)
{
    *out = NULL;
    rs_dataset *d = dataset_alloc("two_point", 2, 1, 1, 0);
    if (!d)
        return RS_E_NOMEM;
    rs_pair p; /* the two-point engine's own construction, so both engines see the same data */
    rs_pair_from_gaps(&p, input_gap, target_gap);
    for (int i = 0; i < 2; i++) {
        d->x[i] = p.x[i];
        d->y[i] = p.y[i];
    }
    *out = d;
    return RS_OK;
}

int rs_dataset_xor(rs_dataset **out)
{
    /* App. B.2, in the paper's order */
    static const double x[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    static const double y[4] = {0, 1, 1, 0};
    *out = NULL;
    rs_dataset *d = dataset_alloc("xor", 4, 2, 1, 0);
    if (!d)
        return RS_E_NOMEM;
    for (int i = 0; i < 4; i++) {
        d->x[2 * i] = x[i][0];
        d->x[2 * i + 1] = x[i][1];
        d->y[i] = y[i];
    }
    *out = d;
    return RS_OK;
}

/* App. B.3 says: 2 x 30 x 30 points, 5 x 5 pixel images of Gaussian blobs with varying x and
 * y position of the mean and constant variance, two one-hot context inputs (27 inputs), one
 * output equal to the x position in the first context and the y position in the second. It
 * does not give the pixel coordinates, the range of the means or the variance. Our reading:
 * pixels and means share the coordinates [-1, 1] (so the target has the scale of the two-point
 * targets), the 30 means per axis run over the whole image, centres included at the border
 * pixels, and sigma is one pixel spacing, so a blob covers about three pixels and moving its
 * mean by 1/29 of the image changes the picture smoothly (the data are a 2-d sheet in pixel
 * space, whose collapse along the irrelevant axis is the paper's Fig. 8). */
int rs_dataset_orthogonal_features(int positions, double sigma, rs_dataset **out, char *why,
                                   size_t why_len)
{
    enum { SIDE = 5, PIXELS = SIDE * SIDE, CONTEXTS = 2 };
    *out = NULL;
    if (positions < 2 || !(sigma > 0))
        return rs_fail(why, why_len, RS_E_INVALID,
                    "orthogonal_features: positions must be >= 2 and sigma > 0 (got %d, %g)",
                    positions, sigma);
    size_t n = (size_t)CONTEXTS * (size_t)positions * (size_t)positions;
    rs_dataset *d = dataset_alloc("orthogonal_features", n, PIXELS + CONTEXTS, 1, 0);
    if (!d)
        return RS_E_NOMEM;
    double pixel[SIDE], mean[positions];
    for (int k = 0; k < SIDE; k++)
        pixel[k] = -1.0 + 2.0 * k / (SIDE - 1);
    for (int k = 0; k < positions; k++)
        mean[k] = -1.0 + 2.0 * k / (positions - 1);
    size_t i = 0;
    for (int c = 0; c < CONTEXTS; c++)
        for (int iy = 0; iy < positions; iy++)
            for (int ix = 0; ix < positions; ix++, i++) {
                double *x = d->x + i * (size_t)d->in_dim;
                for (int v = 0; v < SIDE; v++)
                    for (int u = 0; u < SIDE; u++) {
                        double du = pixel[u] - mean[ix], dv = pixel[v] - mean[iy];
                        x[v * SIDE + u] = exp(-(du * du + dv * dv) / (2 * sigma * sigma));
                    }
                x[PIXELS + c] = 1.0;
                d->y[i] = c == 0 ? mean[ix] : mean[iy];
            }
    *out = d;
    return RS_OK;
}

/* ---- IDX ---- */

/* Read exactly len bytes; 1 on success, 0 at a short read (EOF or error). */
static int gz_read_all(gzFile f, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got <= 0)
            return 0;
        p += got;
        len -= (size_t)got;
    }
    return 1;
}

/* Open an IDX file of unsigned bytes and read its header: rank and dims (at most 4).
 * Returns the open file positioned at the payload, or NULL with why set. */
static gzFile idx_open(const char *path, int *rank, uint32_t dims[4], int *status, char *why,
                       size_t why_len)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        *status = rs_fail(why, why_len, RS_E_IO, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    unsigned char magic[4];
    if (!gz_read_all(f, magic, 4)) {
        *status = rs_fail(why, why_len, RS_E_PARSE, "%s: shorter than an IDX header (4 bytes)", path);
        gzclose(f);
        return NULL;
    }
    if (magic[0] != 0 || magic[1] != 0 || magic[3] < 1 || magic[3] > 4) {
        *status = rs_fail(why, why_len, RS_E_PARSE,
                       "%s: not an IDX file: magic %02x %02x %02x %02x (expected 00 00 type "
                       "rank, rank 1..4)",
                       path, magic[0], magic[1], magic[2], magic[3]);
        gzclose(f);
        return NULL;
    }
    if (magic[2] != 0x08) {
        *status = rs_fail(why, why_len, RS_E_PARSE,
                       "%s: IDX element type 0x%02x not supported (only 0x08, unsigned byte, "
                       "as MNIST)",
                       path, magic[2]);
        gzclose(f);
        return NULL;
    }
    *rank = magic[3];
    for (int k = 0; k < *rank; k++) {
        unsigned char b[4];
        if (!gz_read_all(f, b, 4)) {
            *status = rs_fail(why, why_len, RS_E_PARSE,
                           "%s: header ends before dimension %d of %d", path, k + 1, *rank);
            gzclose(f);
            return NULL;
        }
        dims[k] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (dims[k] == 0) {
            *status = rs_fail(why, why_len, RS_E_PARSE, "%s: dimension %d is 0", path, k + 1);
            gzclose(f);
            return NULL;
        }
    }
    return f;
}

/* Read the payload of `count` bytes and check that nothing follows it. */
static int idx_payload(gzFile f, const char *path, unsigned char *buf, size_t count, char *why,
                       size_t why_len)
{
    if (!gz_read_all(f, buf, count))
        return rs_fail(why, why_len, RS_E_PARSE,
                    "%s: payload shorter than the header's %zu bytes (truncated file?)", path,
                    count);
    unsigned char extra;
    if (gzread(f, &extra, 1) > 0)
        return rs_fail(why, why_len, RS_E_PARSE,
                    "%s: bytes after the header's %zu-byte payload (wrong dims?)", path, count);
    return RS_OK;
}

int rs_dataset_load_idx(const char *images_path, const char *labels_path, int classes,
                        size_t limit, rs_dataset **out, char *why, size_t why_len)
{
    *out = NULL;
    if (classes < 2)
        return rs_fail(why, why_len, RS_E_INVALID, "IDX labels: classes must be >= 2 (got %d)",
                    classes);
    int st = RS_OK, irank = 0, lrank = 0;
    uint32_t idims[4], ldims[4];
    unsigned char *pix = NULL, *lab = NULL;
    rs_dataset *d = NULL;
    gzFile fi = NULL, fl = NULL;
    fi = idx_open(images_path, &irank, idims, &st, why, why_len);
    if (!fi)
        goto done;
    fl = idx_open(labels_path, &lrank, ldims, &st, why, why_len);
    if (!fl)
        goto done;
    if (lrank != 1) {
        st = rs_fail(why, why_len, RS_E_PARSE, "%s: labels must have rank 1 (got %d)", labels_path,
                  lrank);
        goto done;
    }
    if (ldims[0] != idims[0]) {
        st = rs_fail(why, why_len, RS_E_PARSE, "%s: %u labels for %u images in %s", labels_path,
                  ldims[0], idims[0], images_path);
        goto done;
    }
    size_t n_all = idims[0], width = 1;
    for (int k = 1; k < irank; k++) {
        width *= idims[k]; /* both below 2^31 here: no overflow */
        if (width > INT32_MAX / 2) {
            st = rs_fail(why, why_len, RS_E_PARSE, "%s: images of more than %d values each",
                      images_path, INT32_MAX / 2);
            goto done;
        }
    }
    pix = malloc(n_all * width);
    lab = malloc(n_all);
    if (!pix || !lab) {
        st = rs_fail(why, why_len, RS_E_NOMEM,
                  "%s: cannot allocate the header's %zu x %zu bytes (a corrupt header?)",
                  images_path, n_all, width);
        goto done;
    }
    if ((st = idx_payload(fi, images_path, pix, n_all * width, why, why_len)) != RS_OK ||
        (st = idx_payload(fl, labels_path, lab, n_all, why, why_len)) != RS_OK)
        goto done;
    size_t n = limit > 0 && limit < n_all ? limit : n_all;
    for (size_t i = 0; i < n; i++)
        if (lab[i] >= classes) {
            st = rs_fail(why, why_len, RS_E_PARSE, "%s: label %u of point %zu is not below %d classes",
                      labels_path, lab[i], i, classes);
            goto done;
        }
    d = dataset_alloc("idx", n, (int)width, classes, 1);
    if (!d) {
        st = RS_E_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n * width; i++)
        d->x[i] = pix[i] / 255.0;
    for (size_t i = 0; i < n; i++) {
        d->label[i] = lab[i];
        d->y[i * (size_t)classes + lab[i]] = 1.0;
    }
    *out = d;
done:
    if (fi)
        gzclose(fi);
    if (fl)
        gzclose(fl);
    free(pix);
    free(lab);
    return st;
}

/* ---- CSV ---- */

/* Split a header into columns and count x/y names; returns 0 on a malformed header. */
static int csv_header(char *line, int *in_dim, int *out_dim, char *bad, size_t bad_len)
{
    *in_dim = *out_dim = 0;
    for (char *save = NULL, *tok = strtok_r(line, ",\r\n", &save); tok;
         tok = strtok_r(NULL, ",\r\n", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        if (tok[0] == 'x' && *out_dim == 0)
            (*in_dim)++;
        else if (tok[0] == 'y')
            (*out_dim)++;
        else {
            snprintf(bad, bad_len, "%s", tok);
            return 0;
        }
    }
    return *in_dim > 0 && *out_dim > 0;
}

int rs_dataset_load_csv(const char *path, rs_dataset **out, char *why, size_t why_len)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return rs_fail(why, why_len, RS_E_IO, "%s: cannot open: %s", path, strerror(errno));
    char line[65536], bad[64] = "";
    int st = RS_OK, in_dim = 0, out_dim = 0, header_line = 0;
    long lineno = 0;
    rs_dataset *d = NULL;
    /* pass 1: header and point count; pass 2: the numbers */
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            st = rs_fail(why, why_len, RS_E_PARSE, "%s:%ld: line longer than %zu characters", path,
                      lineno, sizeof line - 1);
            goto done;
        }
        if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
            continue;
        if (!header_line) {
            header_line = (int)lineno;
            if (!csv_header(line, &in_dim, &out_dim, bad, sizeof bad)) {
                st = rs_fail(why, why_len, RS_E_PARSE,
                          "%s:%ld: header must name inputs x... then outputs y... (at least one "
                          "of each)%s%s",
                          path, lineno, bad[0] ? "; bad column " : "", bad);
                goto done;
            }
            continue;
        }
        n++;
    }
    if (!header_line || n == 0) {
        st = rs_fail(why, why_len, RS_E_PARSE, "%s: %s", path,
                  header_line ? "no data lines after the header" : "empty (no header line)");
        goto done;
    }
    d = dataset_alloc("csv", n, in_dim, out_dim, 0);
    if (!d) {
        st = RS_E_NOMEM;
        goto done;
    }
    rewind(f);
    lineno = 0;
    size_t i = 0;
    int cols = in_dim + out_dim;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (lineno <= header_line || line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
            continue;
        char *p = line;
        for (int c = 0; c < cols; c++) {
            char *end;
            errno = 0;
            double v = strtod(p, &end);
            if (end == p || errno == ERANGE || !isfinite(v)) {
                st = rs_fail(why, why_len, RS_E_PARSE, "%s:%ld: column %d: expected a finite number",
                          path, lineno, c + 1);
                goto done;
            }
            while (*end == ' ' || *end == '\t')
                end++;
            int last = c == cols - 1;
            if (last ? (*end != '\0' && *end != '\n' && *end != '\r') : *end != ',') {
                st = rs_fail(why, why_len, RS_E_PARSE, "%s:%ld: %s after column %d (header has %d)",
                          path, lineno, last ? "extra columns" : "missing columns", c + 1, cols);
                goto done;
            }
            p = end + 1;
            if (c < in_dim)
                d->x[i * (size_t)in_dim + (size_t)c] = v;
            else
                d->y[i * (size_t)out_dim + (size_t)(c - in_dim)] = v;
        }
        i++;
    }
    *out = d;
    d = NULL;
done:
    rs_dataset_free(d);
    fclose(f);
    return st;
}

void rs_dataset_first_sorted(const rs_dataset *d, size_t m, size_t *idx)
{
    for (size_t i = 0; i < m; i++)
        idx[i] = i;
    if (!d->label)
        return;
    for (size_t i = 1; i < m; i++) { /* insertion sort: stable, m is small */
        size_t v = idx[i], j = i;
        while (j > 0 && d->label[idx[j - 1]] > d->label[v]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}
