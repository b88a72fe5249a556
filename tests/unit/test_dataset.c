/* test_dataset.c — the data sets: the paper's constructions point by point, IDX files (plain
 * and gzip) written here byte by byte, CSV files, and the errors of each loader naming the
 * file and the cause. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "repsweep/dataset.h"
#include "repsweep/net.h"
#include "repsweep/status.h"

static char dir[] = "/tmp/repsweep_test_dataset_XXXXXX";

static const char *path_in_dir(const char *name)
{
    static char buf[8][256];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void test_two_point_is_the_two_point_engines_data(void)
{
    rs_dataset *d;
    CHECK_OK(rs_dataset_two_point(0.5, 0.25, &d));
    rs_pair p;
    rs_pair_from_gaps(&p, 0.5, 0.25);
    CHECK(d->n == 2 && d->in_dim == 1 && d->out_dim == 1, "shape %zu %d %d", d->n, d->in_dim,
          d->out_dim);
    CHECK(d->x[0] == -1.0 && d->x[1] == -0.5 && d->y[0] == 0.6 && d->y[1] == 0.6 + 0.25,
          "x %g %g y %g %g", d->x[0], d->x[1], d->y[0], d->y[1]);
    CHECK(d->x[1] == p.x[1] && d->y[1] == p.y[1], "differs from rs_pair_from_gaps");
    rs_dataset_free(d);
}

static void test_xor_is_appendix_b2(void)
{
    rs_dataset *d;
    CHECK_OK(rs_dataset_xor(&d));
    const double want_x[8] = {0, 0, 1, 0, 0, 1, 1, 1}, want_y[4] = {0, 1, 1, 0};
    CHECK(d->n == 4 && d->in_dim == 2 && d->out_dim == 1, "shape");
    CHECK(memcmp(d->x, want_x, sizeof want_x) == 0 && memcmp(d->y, want_y, sizeof want_y) == 0,
          "xor points differ from App. B.2");
    rs_dataset_free(d);
}

static void test_orthogonal_features_is_pinned_reading(void)
{
    rs_dataset *d;
    char why[256];
    CHECK_OK(rs_dataset_orthogonal_features(RS_ORTHO_POSITIONS, RS_ORTHO_SIGMA, &d, why,
                                            sizeof why));
    CHECK(d->n == 1800 && d->in_dim == 27 && d->out_dim == 1, "shape %zu %d", d->n, d->in_dim);
    /* point (context 0, iy = 0, ix = 29): mean (1, -1); pixel (u = 4, v = 0) sits on it */
    const double *x = d->x + 29 * 27;
    CHECK_CLOSE(x[0 * 5 + 4], 1.0, 1e-15, 0, "pixel at the mean");
    /* pixel (u = 3, v = 1): offset (-0.5, 0.5): exp(-0.5 / (2 * 0.25)) = e^-1 */
    CHECK_CLOSE(x[1 * 5 + 3], exp(-1.0), 1e-15, 0, "pixel one step off diagonally");
    CHECK(x[25] == 1.0 && x[26] == 0.0, "context 0 one-hot %g %g", x[25], x[26]);
    CHECK(d->y[29] == 1.0, "context 0 target is the x position: %g", d->y[29]);
    /* point (context 1, iy = 29, ix = 0): target is the y position, 1 */
    size_t i = 900 + 29 * 30 + 0;
    CHECK(d->x[i * 27 + 25] == 0.0 && d->x[i * 27 + 26] == 1.0, "context 1 one-hot");
    CHECK(d->y[i] == 1.0 && d->y[900 + 29] == -1.0, "context 1 target %g %g", d->y[i],
          d->y[900 + 29]);
    rs_dataset_free(d);
    CHECK(rs_dataset_orthogonal_features(1, 0.5, &d, why, sizeof why) == RS_E_INVALID &&
              d == NULL && strstr(why, "positions"),
          "positions 1 accepted: %s", why);
}

/* An IDX file of unsigned bytes, with the header as given (magic type/rank, dims). */
static void write_idx(const char *path, int gz, int type, int rank, const uint32_t *dims,
                      const unsigned char *payload, size_t len)
{
    unsigned char head[4 + 16] = {0, 0, (unsigned char)type, (unsigned char)rank};
    for (int k = 0; k < rank; k++)
        for (int b = 0; b < 4; b++)
            head[4 + 4 * k + b] = (unsigned char)(dims[k] >> (24 - 8 * b));
    size_t hlen = 4 + 4 * (size_t)rank;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, head, (unsigned)hlen);
        gzwrite(f, payload, (unsigned)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(head, 1, hlen, f);
        fwrite(payload, 1, len, f);
        fclose(f);
    }
}

static const unsigned char pix[3 * 4] = {0, 255, 51, 102, 1, 2, 3, 4, 9, 8, 7, 6};
static const unsigned char lab[3] = {7, 0, 3};

static void check_idx_data(const rs_dataset *d, const char *what)
{
    CHECK(d->n == 3 && d->in_dim == 4 && d->out_dim == 10 && d->label, "%s: shape", what);
    CHECK(d->x[1] == 1.0 && d->x[2] == 0.2 && d->x[11] == 6 / 255.0, "%s: pixels / 255", what);
    double ysum = 0;
    for (int k = 0; k < 30; k++)
        ysum += d->y[k];
    CHECK(ysum == 3 && d->y[7] == 1 && d->y[10] == 1 && d->y[23] == 1, "%s: one-hot", what);
    CHECK(d->label[0] == 7 && d->label[1] == 0 && d->label[2] == 3, "%s: labels", what);
}

static void test_idx_files_load_plain_and_gzip(void)
{
    uint32_t idims[3] = {3, 2, 2}, ldims[1] = {3};
    char why[512] = "";
    rs_dataset *d = NULL;
    write_idx(path_in_dir("img"), 0, 0x08, 3, idims, pix, sizeof pix);
    write_idx(path_in_dir("lab"), 0, 0x08, 1, ldims, lab, sizeof lab);
    CHECK_OK(rs_dataset_load_idx(path_in_dir("img"), path_in_dir("lab"), 10, 0, &d, why,
                                 sizeof why));
    if (d)
        check_idx_data(d, "plain");
    rs_dataset_free(d);
    write_idx(path_in_dir("img.gz"), 1, 0x08, 3, idims, pix, sizeof pix);
    write_idx(path_in_dir("lab.gz"), 1, 0x08, 1, ldims, lab, sizeof lab);
    d = NULL;
    CHECK_OK(rs_dataset_load_idx(path_in_dir("img.gz"), path_in_dir("lab.gz"), 10, 0, &d, why,
                                 sizeof why));
    if (d)
        check_idx_data(d, "gzip");
    rs_dataset_free(d);
    d = NULL;
    CHECK_OK(rs_dataset_load_idx(path_in_dir("img"), path_in_dir("lab"), 10, 2, &d, why,
                                 sizeof why));
    CHECK(d && d->n == 2, "limit 2 kept %zu points", d ? d->n : 0);
    rs_dataset_free(d);
}

/* The loader fails with `status` and a message holding the file's name and `cause`. */
static void expect_idx_error(const char *img, const char *labels, int classes, int status,
                             const char *named, const char *cause)
{
    char why[512] = "";
    rs_dataset *d = (rs_dataset *)1;
    int st = rs_dataset_load_idx(img, labels, classes, 0, &d, why, sizeof why);
    CHECK(st == status && d == NULL && strstr(why, named) && strstr(why, cause),
          "expected status %d naming %s with '%s'; got %d: %s", status, named, cause, st, why);
}

static void test_idx_errors_name_file_and_cause(void)
{
    uint32_t idims[3] = {3, 2, 2}, ldims[1] = {3}, ldims4[1] = {4};
    char img[256], labp[256];
    snprintf(img, sizeof img, "%s", path_in_dir("img"));
    snprintf(labp, sizeof labp, "%s", path_in_dir("lab"));
    write_idx(img, 0, 0x08, 3, idims, pix, sizeof pix);
    write_idx(labp, 0, 0x08, 1, ldims, lab, sizeof lab);
    expect_idx_error(path_in_dir("missing"), labp, 10, RS_E_IO, "missing", "cannot open");
    write_idx(path_in_dir("short"), 0, 0x08, 3, idims, pix, sizeof pix - 1);
    expect_idx_error(path_in_dir("short"), labp, 10, RS_E_PARSE, "short", "payload shorter");
    write_idx(path_in_dir("long"), 0, 0x08, 3, idims, pix, sizeof pix);
    FILE *f = fopen(path_in_dir("long"), "ab");
    fputc(0, f);
    fclose(f);
    expect_idx_error(path_in_dir("long"), labp, 10, RS_E_PARSE, "long", "bytes after");
    write_idx(path_in_dir("float"), 0, 0x0D, 3, idims, pix, sizeof pix);
    expect_idx_error(path_in_dir("float"), labp, 10, RS_E_PARSE, "float", "type 0x0d");
    check_write_file(path_in_dir("text"), "P5 not an idx file\n");
    expect_idx_error(path_in_dir("text"), labp, 10, RS_E_PARSE, "text", "not an IDX file");
    unsigned char lab4[4] = {1, 2, 3, 4};
    write_idx(path_in_dir("lab4"), 0, 0x08, 1, ldims4, lab4, 4);
    expect_idx_error(img, path_in_dir("lab4"), 10, RS_E_PARSE, "lab4", "4 labels for 3 images");
    expect_idx_error(img, labp, 5, RS_E_PARSE, "lab", "label 7 of point 0 is not below 5");
    expect_idx_error(img, img, 10, RS_E_PARSE, "img", "labels must have rank 1");
    /* headers that claim more than any file holds fail before reading, naming the file */
    uint32_t wide[3] = {3, 65536, 65536}, huge[3] = {1u << 31, 1000, 1000};
    uint32_t hugel[1] = {1u << 31};
    write_idx(path_in_dir("wide"), 0, 0x08, 3, wide, pix, sizeof pix);
    expect_idx_error(path_in_dir("wide"), labp, 10, RS_E_PARSE, "wide", "values each");
    write_idx(path_in_dir("huge"), 0, 0x08, 3, huge, pix, sizeof pix);
    write_idx(path_in_dir("hugel"), 0, 0x08, 1, hugel, lab, sizeof lab);
    expect_idx_error(path_in_dir("huge"), path_in_dir("hugel"), 10, RS_E_NOMEM, "huge",
                     "corrupt header");
}

static void test_csv_loads_and_errors_name_line(void)
{
    char why[512] = "";
    rs_dataset *d = NULL;
    check_write_file(path_in_dir("ok.csv"),
                     "# a user's data\nx0, x1,y\n\n1,2,3\n-0.5, 1e-3 ,4\r\n");
    CHECK_OK(rs_dataset_load_csv(path_in_dir("ok.csv"), &d, why, sizeof why));
    CHECK(d && d->n == 2 && d->in_dim == 2 && d->out_dim == 1, "csv shape: %s", why);
    if (d)
        CHECK(d->x[2] == -0.5 && d->x[3] == 1e-3 && d->y[0] == 3 && d->y[1] == 4,
              "csv values");
    rs_dataset_free(d);
    struct {
        const char *text, *cause;
    } bad[] = {
        {"x0,y0\n1,2\n1\n", "ok.csv:3: missing columns after column 1"},
        {"x0,y0\n1,2,3\n", ":2: extra columns after column 2"},
        {"x0,y0\n1,abc\n", ":2: column 2: expected a finite number"},
        {"x0,y0\n1,nan\n", ":2: column 2: expected a finite number"},
        {"y0,x0\n1,2\n", ":1: header must name inputs x... then outputs y"},
        {"x0,z\n1,2\n", "bad column z"},
        {"x0,y0\n", "no data lines"},
        {"", "empty"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        check_write_file(path_in_dir("ok.csv"), bad[k].text);
        d = (rs_dataset *)1;
        int st = rs_dataset_load_csv(path_in_dir("ok.csv"), &d, why, sizeof why);
        CHECK(st == RS_E_PARSE && d == NULL && strstr(why, bad[k].cause),
              "case %zu: want '%s', got %d: %s", k, bad[k].cause, st, why);
    }
    d = (rs_dataset *)1;
    CHECK(rs_dataset_load_csv(path_in_dir("none.csv"), &d, why, sizeof why) == RS_E_IO &&
              strstr(why, "none.csv: cannot open"),
          "missing csv: %s", why);
}

static void test_first_sorted_orders_by_label_stably(void)
{
    uint32_t idims[3] = {3, 2, 2}, ldims[1] = {3};
    const unsigned char lab2[3] = {3, 0, 3};
    write_idx(path_in_dir("img"), 0, 0x08, 3, idims, pix, sizeof pix);
    write_idx(path_in_dir("lab"), 0, 0x08, 1, ldims, lab2, sizeof lab2);
    rs_dataset *d = NULL;
    char why[256];
    CHECK_OK(rs_dataset_load_idx(path_in_dir("img"), path_in_dir("lab"), 10, 0, &d, why,
                                 sizeof why));
    size_t idx[3];
    if (d) {
        rs_dataset_first_sorted(d, 3, idx);
        CHECK(idx[0] == 1 && idx[1] == 0 && idx[2] == 2, "order %zu %zu %zu", idx[0], idx[1],
              idx[2]);
    }
    rs_dataset_free(d);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_two_point_is_the_two_point_engines_data();
    test_xor_is_appendix_b2();
    test_orthogonal_features_is_pinned_reading();
    test_idx_files_load_plain_and_gzip();
    test_idx_errors_name_file_and_cause();
    test_csv_loads_and_errors_name_line();
    test_first_sorted_orders_by_label_stably();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return CHECK_REPORT("test_dataset");
}
