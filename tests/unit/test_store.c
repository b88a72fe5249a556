/* test_store.c — the store's records (store.h): the extras' table (names, offsets, sizes)
 * with trajectories and all layers, that a real trial's record carries its measured and
 * fitted-theory curves at the recorded epochs (NaN where there is no fit: a diverged trial),
 * and that the journal refuses a journal of another format version with a clear message
 * instead of misreading its records. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "repsweep/grid.h"
#include "repsweep/job.h"
#include "repsweep/status.h"
#include "repsweep/store.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* One tiny network block (gain 0.8 trains; gain 40 with lr 5 diverges), stride 7 over 60
 * epochs (9 recorded epochs), all layers (3 stages). */
static const char *const job_text =
    "name = \"store-test\";\n"
    "record = { all_layers = true; trajectory_stride = 7; };\n"
    "blocks = (\n"
    "  { name = \"a\";\n"
    "    architectures = ( { name = \"tiny\"; hidden_layers = 3; units = 6; gain = 0.8;\n"
    "                        lr = 0.05; epochs = 60; } );\n"
    "    gains = [0.8, 40.0];\n"
    "    lr = [0.05, 5.0];\n"
    "    input_gaps = [1.0];\n"
    "    target_gaps = [0.7071067811865476];\n"
    "    seeds = [0]; }\n"
    ");\n";

static const char *const epoch_names[] = {"dh2_traj", "dyhat2_traj", "w_traj", "loss_traj",
                                          "dh2_theory_traj", "dyhat2_theory_traj",
                                          "w_theory_traj", "loss_theory_traj"};

static const rs_store_extra *find_extra(const rs_store_extra *ex, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ex[i].name, name) == 0)
            return &ex[i];
    return NULL;
}

static void test_extras_table(const rs_store_layout *l)
{
    rs_store_extra ex[RS_STORE_EXTRAS_MAX];
    int n = rs_store_extras(l, ex);
    CHECK(l->n_stages == 3 && l->stride == 7 && l->n_epochs == 9, "layout %d %ld %ld",
          l->n_stages, l->stride, l->n_epochs);
    CHECK(n == 5 + 8 + 1 && n <= RS_STORE_EXTRAS_MAX, "%d extras", n);
    /* contiguous, in order, covering exactly the record's extras */
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        CHECK(ex[i].offset == at, "%s at %zu, want %zu", ex[i].name, ex[i].offset, at);
        at += ex[i].count;
    }
    CHECK(at == rs_store_layout_doubles(l), "extras %zu doubles, layout %zu", at,
          rs_store_layout_doubles(l));
    for (size_t k = 0; k < sizeof epoch_names / sizeof *epoch_names; k++) {
        const rs_store_extra *e = find_extra(ex, n, epoch_names[k]);
        CHECK(e && e->shape == RS_STORE_PER_EPOCH && e->count == 9, "%s", epoch_names[k]);
    }
    const rs_store_extra *st = find_extra(ex, n, "dh2_stage_traj");
    CHECK(st && st->count == 27 && st->shape == RS_STORE_PER_EPOCH_STAGE, "dh2_stage_traj");
    /* without trajectories: no per-epoch arrays at all */
    rs_store_layout none = {3, 0, 0};
    n = rs_store_extras(&none, ex);
    CHECK(n == 5 && rs_store_layout_doubles(&none) == 15, "stages only: %d extras", n);
}

/* Run trial `index` of the grid and turn it into a record; returns the record (malloc'ed),
 * the trajectory stays in *traj for comparison. */
static rs_store_record *run_record(const rs_grid *grid, const rs_store_layout *l,
                                   uint64_t index, rs_trajectory *traj, rs_trial_result *res,
                                   rs_trial_spec *spec)
{
    rs_grid_coords c;
    rs_grid_trial t;
    CHECK_OK(rs_grid_coords_of(grid, index, &c));
    CHECK_OK(rs_grid_trial_at(grid, &c, &t));
    CHECK_OK(rs_grid_trial_spec(grid, &t, spec));
    CHECK_OK(rs_trajectory_alloc(traj, spec->epochs, rs_arch_stage_count(&spec->arch)));
    CHECK_OK(rs_trial_run(spec, traj, res));
    rs_store_record *rec = malloc(rs_store_record_bytes(l));
    if (rec)
        rs_store_record_from_trial(index, l, spec, traj, res, rec);
    return rec;
}

static void test_record_curves(const rs_grid *grid, const rs_store_layout *l)
{
    rs_store_extra ex[RS_STORE_EXTRAS_MAX];
    int n = rs_store_extras(l, ex);
    rs_trajectory traj;
    rs_trial_result res;
    rs_trial_spec spec;

    /* gain 0.8: fitted; every recorded epoch holds the trajectory's values exactly */
    rs_store_record *rec = run_record(grid, l, 0, &traj, &res, &spec);
    CHECK(rec != NULL, "record");
    if (!rec)
        return;
    CHECK(res.status == RS_OK, "gain 0.8: status %d", res.status);
    const double *x = rs_store_record_extras(rec);
    const double *src[8] = {traj.dh2, traj.dyhat2, traj.w, traj.loss, traj.dh2_theory,
                            traj.dyhat2_theory, traj.w_theory, traj.loss_theory};
    for (int a = 0; a < 8; a++) {
        const rs_store_extra *e = find_extra(ex, n, epoch_names[a]);
        if (!e)
            continue;
        for (long k = 0; k < l->n_epochs; k++) {
            long ep = k * l->stride;
            double want = ep < traj.epochs_run ? src[a][ep] : NAN;
            double got = x[e->offset + (size_t)k];
            CHECK(isnan(want) ? isnan(got) : got == want, "%s[%ld] = %g, want %g",
                  epoch_names[a], k, got, want);
        }
    }
    /* the theory starts at the measured epoch-0 state and is finite where there was a fit */
    const rs_store_extra *th = find_extra(ex, n, "dh2_theory_traj");
    const rs_store_extra *lt = find_extra(ex, n, "loss_theory_traj");
    if (th && lt) {
        CHECK(x[th->offset] == rec->dh2_initial, "dh2_theory(0) %g vs dh2(0) %g",
              x[th->offset], rec->dh2_initial);
        for (long k = 0; k < l->n_epochs; k++)
            CHECK(isfinite(x[th->offset + (size_t)k]) && isfinite(x[lt->offset + (size_t)k]),
                  "theory curve not finite at %ld", k);
    }
    free(rec);
    rs_trajectory_free(&traj);
    rs_trial_result_free(&res);

    /* gain 40, lr 5: diverges; no fit, so the theory curves are NaN (never uninitialised) */
    rec = run_record(grid, l, 1, &traj, &res, &spec);
    CHECK(rec != NULL, "record");
    if (!rec)
        return;
    CHECK(res.status == RS_S_DIVERGED, "gain 40: status %d (want diverged)", res.status);
    x = rs_store_record_extras(rec);
    for (int a = 4; a < 8; a++) {
        const rs_store_extra *e = find_extra(ex, n, epoch_names[a]);
        for (long k = 0; e && k < l->n_epochs; k++)
            CHECK(isnan(x[e->offset + (size_t)k]), "diverged: %s[%ld] = %g, want NaN",
                  epoch_names[a], k, x[e->offset + (size_t)k]);
    }
    const rs_store_extra *m = find_extra(ex, n, "dh2_traj");
    CHECK(m && isfinite(x[m->offset]), "diverged: the measured dh2 at epoch 0 is kept");
    free(rec);
    rs_trajectory_free(&traj);
    rs_trial_result_free(&res);
}

/* A journal of format 1 or 2 (before the theory curves) of a job with trajectories has
 * shorter records: it is refused, naming the file, its format and what to do. The header is
 * forged from a current one: version 1, CRC-32 at byte 112, the old record size (four fewer
 * arrays per recorded epoch). */
static void test_journal_version(const rs_store_layout *l)
{
    char path[] = "/tmp/test_store_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    close(fd);
    unlink(path); /* rs_store_open creates it */
    rs_store *s = NULL;
    char err[512] = "";
    uint64_t hash = rs_store_hash_text(job_text);
    const rs_grid_shard whole = {0, 1};
    CHECK(l->n_epochs > 0, "the test job records trajectories");
    CHECK_OK(rs_store_open(path, "store-test", hash, 0, 2, l, &whole, &s, err, sizeof err));
    rs_store_close(&s);
    /* reopening the same format works */
    CHECK_OK(rs_store_open(path, "store-test", hash, 0, 2, l, &whole, &s, err, sizeof err));
    rs_store_close(&s);

    FILE *f = fopen(path, "r+b");
    unsigned char h[128];
    CHECK(f && fread(h, 1, sizeof h, f) == sizeof h, "read header");
    if (!f)
        return;
    uint32_t version = 1, crc, rec_bytes;
    memcpy(h + 8, &version, 4);
    memcpy(&rec_bytes, h + 12, 4);
    rec_bytes -= (uint32_t)(4 * l->n_epochs * sizeof(double));
    memcpy(h + 12, &rec_bytes, 4);
    memset(h + 112, 0, 16);
    crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 112);
    memcpy(h + 112, &crc, 4);
    rewind(f);
    CHECK(fwrite(h, 1, sizeof h, f) == sizeof h, "write header");
    fclose(f);
    int st = rs_store_open(path, "store-test", hash, 0, 2, l, &whole, &s, err, sizeof err);
    CHECK(st == RS_E_INVALID && s == NULL, "format-1 journal opened: %d", st);
    CHECK(strstr(err, path) && strstr(err, "format 1") && strstr(err, "older") &&
              strstr(err, "theory curves"),
          "message: %s", err);
    unlink(path);
}

int main(void)
{
    char path[] = "/tmp/test_store_job_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || check_write_file(path, job_text) != 0)
        return 1;
    close(fd);
    rs_job job;
    char err[512];
    int st = rs_job_load(path, &job, err, sizeof err);
    unlink(path);
    CHECK(st == RS_OK, "job: %s", err);
    if (st != RS_OK)
        return CHECK_REPORT("test_store");
    rs_grid grid;
    CHECK_OK(rs_grid_init(&grid, &job));
    rs_store_layout l;
    rs_store_layout_of(&grid, &l);
    test_extras_table(&l);
    test_record_curves(&grid, &l);
    test_journal_version(&l);
    rs_grid_free(&grid);
    rs_job_free(&job);
    return CHECK_REPORT("test_store");
}
