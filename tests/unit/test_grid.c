/* test_grid.c — the grid (grid.h) over a job file (job.h): counts per block, index <->
 * coordinates round trip over a multi-block job, the documented order (seed fastest), the
 * values at given coordinates, out-of-range coordinates, the cost estimates, and that the
 * shape-only parameter count and workspace (the cost model's inputs) match the allocated
 * network's. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "repsweep/grid.h"
#include "repsweep/job.h"
#include "repsweep/status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Two network blocks (one with gains and a parallel lr list, one with each architecture's
 * own gain) and a theory-only block, with inline architectures only. */
static const char *const job_text =
    "name = \"grid-test\";\n"
    "record = { all_layers = false; trajectory_stride = 100; };\n"
    "blocks = (\n"
    "  { name = \"a\";\n"
    "    architectures = ( { name = \"tiny\"; hidden_layers = 2; units = 3; gain = 0.5;\n"
    "                        lr = 0.1; epochs = 50; },\n"
    "                      { name = \"small\"; hidden_layers = 4; units = 8; gain = 0.7;\n"
    "                        lr = 0.2; epochs = 60; } );\n"
    "    gains = [0.5, 1.0, 1.5];\n"
    "    lr = [0.01, 0.02, 0.03];\n"
    "    input_gaps = [0.5, 1.0];\n"
    "    target_gaps = [0.0, 0.25, 0.5];\n"
    "    seeds = [7, 3, 11, 5]; },\n"
    "  { name = \"b\";\n"
    "    architectures = ( { name = \"tiny\"; hidden_layers = 2; units = 3; gain = 0.5;\n"
    "                        lr = 0.1; epochs = 50; } );\n"
    "    epochs = 25;\n"
    "    input_gaps = 1.0;\n"
    "    target_gaps = [0.7];\n"
    "    seeds = { first = 100; count = 6; }; },\n"
    "  { name = \"t\"; theory_only = true;\n"
    "    rate_h = [1e-3, 1e-2]; rate_y = [1e-3]; dh2_0 = [0.5, 1.0]; dyhat2_0 = [0.04];\n"
    "    input_gaps = [1.0]; target_gaps = [0.0, 0.5, 1.0]; epochs = 600; }\n"
    ");\n";

/* Lexicographic comparison of two trials' coordinates in the documented axis order. */
static int coords_cmp(const rs_grid_coords *x, const rs_grid_coords *y)
{
    long a[] = {x->block, x->arch, x->gain, x->rate_h, x->rate_y, x->dh2_0, x->dyhat2_0, x->w_0,
                x->input_gap, x->target_gap, x->seed};
    long b[] = {y->block, y->arch, y->gain, y->rate_h, y->rate_y, y->dh2_0, y->dyhat2_0, y->w_0,
                y->input_gap, y->target_gap, y->seed};
    for (size_t i = 0; i < sizeof a / sizeof *a; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

static void test_grid_counts_order_round_trip(const rs_job *job)
{
    rs_grid grid;
    CHECK_OK(rs_grid_init(&grid, job));
    CHECK(rs_grid_block_count(&grid, 0) == 2 * 3 * 2 * 3 * 4, "block a: %llu",
          (unsigned long long)rs_grid_block_count(&grid, 0));
    CHECK(rs_grid_block_count(&grid, 1) == 1 * 1 * 1 * 1 * 6, "block b: %llu",
          (unsigned long long)rs_grid_block_count(&grid, 1));
    CHECK(rs_grid_block_count(&grid, 2) == 2 * 1 * 2 * 1 * 1 * 1 * 3, "block t: %llu",
          (unsigned long long)rs_grid_block_count(&grid, 2));
    uint64_t total = rs_grid_count(&grid);
    CHECK(total == 144 + 6 + 12, "total %llu", (unsigned long long)total);

    rs_grid_coords prev, c;
    memset(&prev, 0, sizeof prev);
    int round_trip_failures = 0, order_failures = 0;
    for (uint64_t i = 0; i < total; i++) {
        uint64_t back = UINT64_MAX;
        CHECK_OK(rs_grid_coords_of(&grid, i, &c));
        CHECK_OK(rs_grid_index_of(&grid, &c, &back));
        round_trip_failures += back != i;
        if (i > 0)
            order_failures += coords_cmp(&prev, &c) >= 0;
        prev = c;
    }
    CHECK(round_trip_failures == 0, "%d indices did not survive index -> coords -> index",
          round_trip_failures);
    CHECK(order_failures == 0, "%d consecutive trials out of lexicographic order",
          order_failures);

    /* seed fastest, then target_gap, input_gap, gain, arch */
    CHECK_OK(rs_grid_coords_of(&grid, 1, &c));
    CHECK(c.block == 0 && c.seed == 1 && c.target_gap == 0, "index 1: seed %ld target %ld",
          c.seed, c.target_gap);
    CHECK_OK(rs_grid_coords_of(&grid, 4, &c));
    CHECK(c.seed == 0 && c.target_gap == 1, "index 4: seed %ld target %ld", c.seed,
          c.target_gap);
    CHECK_OK(rs_grid_coords_of(&grid, 72, &c));
    CHECK(c.arch == 1 && c.gain == 0 && c.seed == 0, "index 72: arch %ld gain %ld", c.arch,
          c.gain);
    CHECK_OK(rs_grid_coords_of(&grid, 144, &c));
    CHECK(c.block == 1 && c.seed == 0, "index 144: block %d", c.block);
    CHECK_OK(rs_grid_coords_of(&grid, total - 1, &c));
    CHECK(c.block == 2 && c.rate_h == 1 && c.dh2_0 == 1 && c.target_gap == 2,
          "last: block %d rate_h %ld dh2_0 %ld target %ld", c.block, c.rate_h, c.dh2_0,
          c.target_gap);

    /* out of range */
    uint64_t idx;
    CHECK(rs_grid_coords_of(&grid, total, &c) == RS_E_INVALID, "index == count accepted");
    memset(&c, 0, sizeof c);
    c.seed = 4;
    CHECK(rs_grid_index_of(&grid, &c, &idx) == RS_E_INVALID, "seed index 4 of 4 accepted");
    memset(&c, 0, sizeof c);
    c.rate_h = 1;
    CHECK(rs_grid_index_of(&grid, &c, &idx) == RS_E_INVALID,
          "a theory axis set in a network block accepted");
    c.block = 3;
    CHECK(rs_grid_index_of(&grid, &c, &idx) == RS_E_INVALID, "block 3 of 3 accepted");
    rs_grid_free(&grid);
}

static void test_grid_values(const rs_job *job)
{
    rs_grid grid;
    CHECK_OK(rs_grid_init(&grid, job));
    rs_grid_coords c;
    rs_grid_trial t;
    /* block a: arch small, gain 1.5 with its lr, input 1.0, target 0.5, seed list[3] = 5 */
    memset(&c, 0, sizeof c);
    c.arch = 1, c.gain = 2, c.input_gap = 1, c.target_gap = 2, c.seed = 3;
    CHECK_OK(rs_grid_trial_at(&grid, &c, &t));
    CHECK(t.kind == RS_BLOCK_NETWORK && strcmp(t.arch->name, "small") == 0, "arch %s",
          t.arch ? t.arch->name : "(null)");
    CHECK(t.gain == 1.5 && t.lr == 0.03 && t.epochs == 60, "gain %g lr %g epochs %ld", t.gain,
          t.lr, t.epochs);
    CHECK(t.input_gap == 1.0 && t.target_gap == 0.5 && t.seed == 5, "gaps %g %g seed %ld",
          t.input_gap, t.target_gap, t.seed);
    rs_trial_spec spec;
    CHECK_OK(rs_grid_trial_spec(&grid, &t, &spec));
    CHECK(spec.gain == 1.5 && spec.lr == 0.03 && spec.seed == 5 && spec.epochs == 60 &&
          spec.converge_loss == 1e-3, "spec gain %g lr %g seed %ld", spec.gain, spec.lr,
          spec.seed);
    /* block b: the architecture's own gain and lr, the block's epochs, seeds first + i */
    memset(&c, 0, sizeof c);
    c.block = 1, c.seed = 5;
    CHECK_OK(rs_grid_trial_at(&grid, &c, &t));
    CHECK(t.gain == 0.5 && t.lr == 0.1 && t.epochs == 25 && t.seed == 105,
          "block b: gain %g lr %g epochs %ld seed %ld", t.gain, t.lr, t.epochs, t.seed);
    /* block t: w_0 derived with f2 - f1 = +sqrt(dyhat2_0) */
    memset(&c, 0, sizeof c);
    c.block = 2, c.rate_h = 1, c.target_gap = 1;
    CHECK_OK(rs_grid_trial_at(&grid, &c, &t));
    CHECK(t.kind == RS_BLOCK_THEORY && t.rate_h == 1e-2 && t.epochs == 600,
          "theory: rate_h %g epochs %ld", t.rate_h, t.epochs);
    CHECK_CLOSE(t.w_0, 0.04 - 0.2 * 0.5, 1e-15, 1e-12, "derived w_0");
    CHECK(rs_grid_trial_spec(&grid, &t, &spec) == RS_E_INVALID, "spec of a theory trial");
    rs_grid_free(&grid);
}

static void test_grid_estimates(const rs_job *job)
{
    rs_grid grid;
    CHECK_OK(rs_grid_init(&grid, job));
    rs_grid_estimate total, one;
    double seconds = 0, output = 0;
    uint64_t trials = 0;
    CHECK_OK(rs_grid_estimate_of(&grid, -1, &total));
    for (int b = 0; b < grid.n_blocks; b++) {
        CHECK_OK(rs_grid_estimate_of(&grid, b, &one));
        CHECK(one.trials == rs_grid_block_count(&grid, b), "block %d trials", b);
        CHECK(one.seconds > 0 && one.rank_bytes > 0 && one.output_bytes > 0,
              "block %d: seconds %g bytes %g output %g", b, one.seconds, one.rank_bytes,
              one.output_bytes);
        trials += one.trials, seconds += one.seconds, output += one.output_bytes;
    }
    CHECK(total.trials == trials, "total trials %llu", (unsigned long long)total.trials);
    CHECK_CLOSE(total.seconds, seconds, 1e-12, 1e-300, "total seconds = sum of blocks");
    CHECK_CLOSE(total.output_bytes, output, 1e-12, 1e-300, "total output = sum of blocks");
    /* block b: 6 trials of 25 epochs, one fit each, summary + 1 recorded epoch in 100 */
    CHECK_OK(rs_grid_estimate_of(&grid, 1, &one));
    double per = 25 * rs_grid_epoch_seconds(&job->blocks[1].arch[0], RS_PRECISION_FLOAT64);
    CHECK(one.seconds > 6 * per && one.seconds < 6 * (per + 1.0), "block b seconds %g",
          one.seconds);
    /* 8 arrays per recorded epoch: dh2, dyhat2, w, loss, measured and of the theory */
    CHECK_CLOSE(one.output_bytes, 6.0 * (40 + 1 * 8) * 8, 1e-12, 1, "block b output bytes");
    CHECK(rs_grid_estimate_of(&grid, 3, &one) == RS_E_INVALID, "estimate of block 3");
    rs_grid_free(&grid);
}

/* The cost model's shape-only parameter count and workspace bytes against the allocated
 * network's in both precisions, and the model's ordering: a 20 x 500 net costs more per
 * epoch than the narrow one. */
static void test_shape_estimates_match_net(void)
{
    rs_arch_table table;
    char err[512];
    CHECK_OK(rs_arch_table_load(REPSWEEP_SOURCE_DIR "/jobs/architectures.cfg", &table, err,
                                sizeof err));
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < table.count; i++) {
            const rs_arch *a = &table.arch[i];
            rs_net *net = rs_net_alloc(a, (rs_precision)p);
            CHECK(net != NULL, "alloc %s", a->name);
            if (!net)
                continue;
            CHECK(rs_arch_param_count(a) == rs_net_param_count(net), "%s: %zu vs %zu", a->name,
                  rs_arch_param_count(a), rs_net_param_count(net));
            CHECK(rs_arch_workspace_bytes(a, (rs_precision)p) == rs_net_bytes(net),
                  "%s %s: workspace estimate %zu vs rs_net_bytes %zu", a->name,
                  rs_precision_name((rs_precision)p), rs_arch_workspace_bytes(a, (rs_precision)p),
                  rs_net_bytes(net));
            CHECK((rs_arch_conv_macs(a) > 0) == (a->conv_channels > 0), "%s: conv macs %g",
                  a->name, rs_arch_conv_macs(a));
            rs_net_free(net);
        }
    const rs_arch *narrow = rs_arch_table_find(&table, "narrow");
    const rs_arch *deflt = rs_arch_table_find(&table, "default");
    CHECK(narrow && deflt &&
          rs_grid_epoch_seconds(deflt, RS_PRECISION_FLOAT64) >
              50 * rs_grid_epoch_seconds(narrow, RS_PRECISION_FLOAT64),
          "default vs narrow epoch cost");
    rs_arch_table_free(&table);
}

int main(void)
{
    char path[] = "/tmp/repsweep_test_grid_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return CHECK_REPORT("test_grid");
    fclose(fdopen(fd, "w"));
    CHECK(check_write_file(path, job_text) == 0, "write %s", path);
    rs_job job;
    char err[1024] = "";
    int st = rs_job_load(path, &job, err, sizeof err);
    CHECK(st == RS_OK, "rs_job_load: %s", err);
    if (st == RS_OK) {
        CHECK(job.text && strcmp(job.text, job_text) == 0, "the job's full text is kept");
        CHECK(job.n_blocks == 3 && strcmp(job.name, "grid-test") == 0, "blocks %d name %s",
              job.n_blocks, job.name);
        test_grid_counts_order_round_trip(&job);
        test_grid_values(&job);
        test_grid_estimates(&job);
        rs_job_free(&job);
    }
    remove(path);
    test_shape_estimates_match_net();
    return CHECK_REPORT("test_grid");
}
