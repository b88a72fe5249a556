/* test_shard.c — shards of a grid (grid.h): membership and counts over index ranges, the
 * overlap test of two shards of different N, and the per-architecture trial counts of a
 * shard, each checked against a brute-force walk over the indices. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "repsweep/grid.h"
#include "repsweep/job.h"
#include "repsweep/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Two network blocks that share the architecture "tiny" and a theory-only block between
 * them: "tiny" must be counted once, over both blocks, and "theory" once. */
static const char *const job_text =
    "name = \"shard-test\";\n"
    "blocks = (\n"
    "  { name = \"a\";\n"
    "    architectures = ( { name = \"tiny\"; hidden_layers = 2; units = 3; gain = 0.5;\n"
    "                        lr = 0.1; epochs = 50; },\n"
    "                      { name = \"small\"; hidden_layers = 4; units = 8; gain = 0.7;\n"
    "                        lr = 0.2; epochs = 60; } );\n"
    "    gains = [0.5, 1.0, 1.5]; lr = [0.01, 0.02, 0.03];\n"
    "    input_gaps = [1.0]; target_gaps = [0.0, 0.5]; seeds = [7, 3, 11]; },\n"
    "  { name = \"t\"; theory_only = true;\n"
    "    rate_h = [1e-3, 1e-2]; rate_y = [1e-3]; dh2_0 = [0.5]; dyhat2_0 = [0.04];\n"
    "    input_gaps = [1.0]; target_gaps = [0.0, 0.5, 1.0]; epochs = 600; },\n"
    "  { name = \"b\";\n"
    "    architectures = ( { name = \"tiny\"; hidden_layers = 2; units = 3; gain = 0.5;\n"
    "                        lr = 0.1; epochs = 50; } );\n"
    "    epochs = 25; input_gaps = 1.0; target_gaps = [0.7];\n"
    "    seeds = { first = 100; count = 5; }; }\n"
    ");\n";

static void test_shard_counts_match_brute_force(void)
{
    for (uint64_t count = 1; count <= 7; count++)
        for (uint64_t index = 0; index < count; index++) {
            rs_grid_shard s = {index, count};
            for (uint64_t begin = 0; begin < 30; begin++)
                for (uint64_t end = 0; end < 30; end++) {
                    uint64_t brute = 0;
                    for (uint64_t k = begin; k < end; k++)
                        brute += k % count == index;
                    CHECK(rs_grid_shard_trials(&s, begin, end) == brute,
                          "shard %llu/%llu in [%llu, %llu): got %llu want %llu",
                          (unsigned long long)index, (unsigned long long)count,
                          (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)rs_grid_shard_trials(&s, begin, end),
                          (unsigned long long)brute);
                }
        }
    /* the shards of one N partition the grid */
    rs_grid_shard s = {0, 5};
    uint64_t sum = 0;
    for (s.index = 0; s.index < 5; s.index++)
        sum += rs_grid_shard_trials(&s, 0, 1003);
    CHECK(sum == 1003, "shards of 5 hold %llu of 1003 trials", (unsigned long long)sum);
}

static void test_shard_overlap_matches_brute_force(void)
{
    for (uint64_t n = 1; n <= 8; n++)
        for (uint64_t m = 1; m <= 8; m++)
            for (uint64_t i = 0; i < n; i++)
                for (uint64_t j = 0; j < m; j++)
                    for (uint64_t trials = 0; trials <= 40; trials += 7) {
                        rs_grid_shard a = {i, n}, b = {j, m};
                        int brute = 0;
                        for (uint64_t k = 0; k < trials && !brute; k++)
                            brute = rs_grid_shard_has(&a, k) && rs_grid_shard_has(&b, k);
                        CHECK(rs_grid_shards_overlap(&a, &b, trials) == brute &&
                                  rs_grid_shards_overlap(&b, &a, trials) == brute,
                              "%llu/%llu and %llu/%llu below %llu: want %d",
                              (unsigned long long)i, (unsigned long long)n,
                              (unsigned long long)j, (unsigned long long)m,
                              (unsigned long long)trials, brute);
                    }
    /* large counts over a huge grid: answered without walking it (a walk would take
     * ~10^9 steps here) */
    rs_grid_shard a = {5, 4000000000ULL}, b = {7, 2000000000ULL};
    CHECK(!rs_grid_shards_overlap(&a, &b, UINT64_C(1) << 62), "5 mod 4e9 vs 7 mod 2e9");
    b.index = 5;
    CHECK(rs_grid_shards_overlap(&a, &b, UINT64_C(1) << 62), "5 mod 4e9 vs 5 mod 2e9");
    rs_grid_shard c = {6, 3999999999ULL}; /* coprime: they meet at 4e9 + 5 */
    CHECK(rs_grid_shards_overlap(&a, &c, UINT64_C(4000000006)), "meet at 4e9 + 5");
    CHECK(!rs_grid_shards_overlap(&a, &c, UINT64_C(4000000005)), "not below 4e9 + 5");
}

/* The trials of `shard` per architecture name, by walking every index of the grid. */
static uint64_t brute_arch_trials(const rs_grid *grid, const rs_grid_shard *shard,
                                  const char *name)
{
    uint64_t n = 0;
    for (uint64_t k = 0; k < rs_grid_count(grid); k++) {
        rs_grid_coords c;
        rs_grid_trial t;
        if (rs_grid_coords_of(grid, k, &c) != RS_OK || rs_grid_trial_at(grid, &c, &t) != RS_OK)
            return (uint64_t)-1;
        const char *trial_name = t.kind == RS_BLOCK_NETWORK ? t.arch->name : "theory";
        n += rs_grid_shard_has(shard, k) && strcmp(trial_name, name) == 0;
    }
    return n;
}

static void test_arch_trials_match_brute_force(const rs_job *job)
{
    rs_grid grid;
    CHECK_OK(rs_grid_init(&grid, job));
    int slots = rs_grid_arch_slots(&grid);
    CHECK(slots == 4, "slots %d (3 network architectures + theory)", slots);
    const char *names[8];
    uint64_t in_shard[8], in_grid[8];
    for (uint64_t count = 1; count <= 5; count++)
        for (uint64_t index = 0; index < count; index++) {
            rs_grid_shard s = {index, count}, all = {0, 1};
            int n = rs_grid_arch_trials(&grid, &s, names, in_shard, in_grid);
            CHECK(n == 3, "%d names", n);
            if (n != 3)
                continue;
            CHECK(strcmp(names[0], "tiny") == 0 && strcmp(names[1], "small") == 0 &&
                      strcmp(names[2], "theory") == 0,
                  "names in grid order of first appearance: %s %s %s", names[0], names[1],
                  names[2]);
            uint64_t sum = 0;
            for (int i = 0; i < n; i++) {
                uint64_t want = brute_arch_trials(&grid, &s, names[i]);
                uint64_t want_all = brute_arch_trials(&grid, &all, names[i]);
                CHECK(in_shard[i] == want && in_grid[i] == want_all,
                      "shard %llu/%llu, %s: %llu and %llu trials, want %llu and %llu",
                      (unsigned long long)index, (unsigned long long)count, names[i],
                      (unsigned long long)in_shard[i], (unsigned long long)in_grid[i],
                      (unsigned long long)want, (unsigned long long)want_all);
                sum += in_shard[i];
            }
            CHECK(sum == rs_grid_shard_trials(&s, 0, rs_grid_count(&grid)),
                  "the names hold every trial of the shard");
        }
    rs_grid_free(&grid);
}

int main(void)
{
    test_shard_counts_match_brute_force();
    test_shard_overlap_matches_brute_force();
    char path[] = "/tmp/repsweep_test_shard_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return CHECK_REPORT("test_shard");
    FILE *f = fdopen(fd, "w");
    fputs(job_text, f);
    fclose(f);
    rs_job job;
    char err[1024] = "";
    int st = rs_job_load(path, &job, err, sizeof err);
    CHECK(st == RS_OK, "rs_job_load: %s", err);
    if (st == RS_OK) {
        test_arch_trials_match_brute_force(&job);
        rs_job_free(&job);
    }
    remove(path);
    return CHECK_REPORT("test_shard");
}
