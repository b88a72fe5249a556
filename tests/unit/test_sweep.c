/* test_sweep.c — the schedule of rs_sweep_run driven by fake trials (the trial callback),
 * without training networks: trials that fail, finish out of order, and a worker that hangs.
 * Run alone (one rank: the master computes) and under `mpirun -n 3` (test_sweep_mpi: ranks 1
 * and 2 compute). Under MPI:
 *   - rank 1's first trial hangs for 1.5 s past its chunk's 0.5 s deadline: rank 0 declares
 *     rank 1 lost, rank 2 reruns the chunk, rank 1's late answer is not stored twice, and
 *     rank 1 gets work again; every trial is stored once, the run ends collectively;
 *   - a stop flag set while rank 1 hangs (for 4 s): rs_sweep_run returns on rank 0 within the
 *     stop wait (0.5 s) with lost_ranks 1, and the test ends as cmd_run does, with MPI_Abort
 *     (a hung rank never joins MPI_Finalize). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "repsweep/grid.h"
#include "repsweep/job.h"
#include "repsweep/status.h"
#include "repsweep/store.h"
#include "repsweep/sweep.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRIALS 16

static const char *const job_text =
    "name = \"sweep-test\";\n"
    "blocks = (\n"
    "  { name = \"a\";\n"
    "    architectures = ( { name = \"tiny\"; hidden_layers = 2; units = 3; gain = 0.5;\n"
    "                        lr = 0.1; epochs = 50; } );\n"
    "    gains = [0.5, 1.0]; input_gaps = [1.0]; target_gaps = [0.5];\n"
    "    seeds = { first = 0; count = 8; }; }\n"
    ");\n";

typedef struct {
    int rank;
    double hang_seconds;   /* this rank's first trial sleeps this long (0: no hang) */
    int calls;
} fake;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Trials 3 and 7 could not run (out of memory); the others are ok with lr = 1.5 x index.
 * Later indices take less time, so they finish out of order across workers. */
static int fake_trial(const rs_grid *grid, uint64_t index, const rs_sweep_options *o,
                      rs_store_record *rec, void *params)
{
    fake *f = params;
    rs_store_layout l;
    (void)o;
    rs_store_layout_of(grid, &l);
    if (f->calls++ == 0 && f->hang_seconds > 0)
        sleep_seconds(f->hang_seconds);
    sleep_seconds(0.01 * (double)(TRIALS - index) + 0.05);
    rs_store_record_clear(index, &l, rec);
    rec->status = index == 3 || index == 7 ? RS_E_NOMEM : RS_OK;
    rec->lr = 1.5 * (double)index;
    return RS_OK;
}

typedef struct {
    int lost_notices, again_notices;
    double stop_after;            /* set *stop this long after start (0: never) */
    double start;
    volatile sig_atomic_t *stop;
} watcher;

static void on_notice(const char *text, void *ctx)
{
    watcher *w = ctx;
    printf("notice: %s\n", text);
    w->lost_notices += strstr(text, "has not answered") != NULL;
    w->again_notices += strstr(text, "answered again") != NULL;
}

static void on_progress(const rs_sweep_progress *p, void *ctx)
{
    watcher *w = ctx;
    (void)p;
    if (w->stop_after > 0 && now() - w->start >= w->stop_after)
        *w->stop = 1;
}

static int open_store(const rs_grid *grid, const char *path, rs_store **store)
{
    rs_store_layout l;
    rs_grid_shard all = {0, 1};
    char err[1024];
    rs_store_layout_of(grid, &l);
    unlink(path);
    int st = rs_store_open(path, "sweep-test", 1, 0, rs_grid_count(grid), &l, &all, store, err,
                           sizeof err);
    CHECK(st == RS_OK, "rs_store_open: %s", err);
    return st;
}

/* Every trial stored once with the fake's outcome. */
static void check_store(const rs_store *store)
{
    char err[1024];
    rs_store_snapshot *snap = NULL;
    int st = rs_store_snapshot_take(store, &snap, err, sizeof err);
    CHECK(st == RS_OK, "rs_store_snapshot_take: %s", err);
    if (st != RS_OK)
        return;
    size_t n = rs_store_snapshot_count(snap);
    const rs_store_layout *l = rs_store_layout_get(store);
    void *recs = malloc((n ? n : 1) * rs_store_record_bytes(l));
    st = recs ? rs_store_snapshot_read(snap, 0, n, recs, err, sizeof err) : RS_E_NOMEM;
    CHECK(st == RS_OK, "rs_store_snapshot_read: %s", err);
    rs_store_snapshot_free(&snap);
    if (st != RS_OK) {
        free(recs);
        return;
    }
    int seen[TRIALS] = {0};
    CHECK(n == TRIALS, "%zu records stored, want %d", n, TRIALS);
    for (size_t i = 0; i < n; i++) {
        const rs_store_record *r = rs_store_record_at(recs, l, i);
        CHECK(r->index < TRIALS, "index %llu", (unsigned long long)r->index);
        if (r->index >= TRIALS)
            continue;
        seen[r->index]++;
        int64_t want = r->index == 3 || r->index == 7 ? RS_E_NOMEM : RS_OK;
        CHECK(r->status == want && r->lr == 1.5 * (double)r->index,
              "trial %llu: status %lld lr %g", (unsigned long long)r->index,
              (long long)r->status, r->lr);
    }
    for (int i = 0; i < TRIALS; i++)
        CHECK(seen[i] == 1, "trial %d stored %d times", i, seen[i]);
    free(recs);
}

/* Failures, out-of-order completion and (under MPI) a worker that hangs and comes back. */
static void test_hung_worker_is_replaced_and_its_late_answer_dropped(const rs_grid *grid,
                                                                      int rank, int ranks)
{
    rs_store *store = NULL;
    int st = RS_OK;
    if (rank == 0)
        st = open_store(grid, "/tmp/repsweep_test_sweep_1.journal", &store);
    MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (st != RS_OK)
        return;
    fake f = {rank, rank == 1 ? 1.5 : 0, 0};
    watcher w = {0};
    rs_sweep_options o;
    rs_sweep_report rep;
    rs_sweep_options_default(&o);
    o.max_chunk = 1;
    o.progress_seconds = 0;
    o.checkpoint_seconds = 0;
    o.trial = fake_trial;
    o.trial_params = &f;
    o.hang_floor_seconds = 0.5;
    o.hang_factor = 0;
    o.notice = on_notice;
    o.ctx = &w;
    st = rs_sweep_run(MPI_COMM_WORLD, grid, store, &o, &rep);
    CHECK(st == RS_OK, "rs_sweep_run: %d", st);
    if (rank == 0) {
        check_store(store);
        CHECK(!rep.interrupted && rep.lost_ranks == 0, "interrupted %d, lost %d",
              rep.interrupted, rep.lost_ranks);
        if (ranks > 1) {
            CHECK(rep.reassigned == 1, "%llu chunks reassigned, want 1",
                  (unsigned long long)rep.reassigned);
            CHECK(w.lost_notices == 1 && w.again_notices == 1, "notices: %d lost, %d again",
                  w.lost_notices, w.again_notices);
            CHECK(rep.rank_times != NULL, "the collective end gathered the ranks' times");
        }
        rs_sweep_report_free(&rep);
        rs_store_close(&store);
        unlink("/tmp/repsweep_test_sweep_1.journal");
    }
}

/* A stop while rank 1 hangs: rank 0 returns within the stop wait. Ends the job (abort). */
static void test_stop_with_hung_worker_returns_within_the_wait(const rs_grid *grid, int rank)
{
    static volatile sig_atomic_t stop = 0;
    rs_store *store = NULL;
    int st = RS_OK;
    if (rank == 0)
        st = open_store(grid, "/tmp/repsweep_test_sweep_2.journal", &store);
    MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (st != RS_OK)
        return;
    fake f = {rank, rank == 1 ? 4.0 : 0, 0};
    watcher w = {0};
    rs_sweep_options o;
    rs_sweep_report rep;
    rs_sweep_options_default(&o);
    o.max_chunk = 1;
    o.progress_seconds = 0.02;
    o.progress = on_progress;
    o.checkpoint_seconds = 0;
    o.trial = fake_trial;
    o.trial_params = &f;
    o.hang_floor_seconds = 100; /* only the stop wait can end the wait for rank 1 */
    o.stop_wait_seconds = 0.5;
    o.stop = &stop;
    o.notice = on_notice;
    o.ctx = &w;
    w.stop = &stop;
    w.start = now();
    w.stop_after = 0.3;
    st = rs_sweep_run(MPI_COMM_WORLD, grid, store, &o, &rep);
    if (rank != 0)
        return; /* rank 2 waits in the collective end, rank 1 for a reply: the abort ends them */
    double took = now() - w.start;
    CHECK(st == RS_OK, "rs_sweep_run: %d", st);
    CHECK(rep.lost_ranks == 1 && rep.interrupted, "lost %d interrupted %d", rep.lost_ranks,
          rep.interrupted);
    CHECK(took < 0.3 + 0.5 + 1.0, "returned %.2f s after the start (stop at 0.3 s, wait 0.5 s)",
          took);
    CHECK(w.lost_notices == 1, "%d lost notices", w.lost_notices);
    printf("stop with a hung worker: returned after %.2f s\n", took);
    rs_sweep_report_free(&rep);
    rs_store_close(&store);
    unlink("/tmp/repsweep_test_sweep_2.journal");
}

int main(int argc, char **argv)
{
    int rank, ranks;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    char path[64];
    snprintf(path, sizeof path, "/tmp/repsweep_test_sweep_%d.cfg", rank);
    CHECK(check_write_file(path, job_text) == 0, "cannot write %s", path);
    rs_job job;
    rs_grid grid;
    char err[1024] = "";
    int st = rs_job_load(path, &job, err, sizeof err);
    CHECK(st == RS_OK, "rs_job_load: %s", err);
    remove(path);
    if (st == RS_OK && rs_grid_init(&grid, &job) == RS_OK) {
        CHECK(rs_grid_count(&grid) == TRIALS, "%llu trials",
              (unsigned long long)rs_grid_count(&grid));
        test_hung_worker_is_replaced_and_its_late_answer_dropped(&grid, rank, ranks);
        if (ranks == 3) {
            test_stop_with_hung_worker_returns_within_the_wait(&grid, rank);
            if (rank == 0) {
                int code = CHECK_REPORT("test_sweep (3 ranks)");
                fflush(stdout);
                fflush(stderr);
                MPI_Abort(MPI_COMM_WORLD, code); /* rank 1 still hangs: no MPI_Finalize */
            }
            for (;;) /* ranks 1 and 2 are ended by the abort */
                sleep(1);
        }
        rs_grid_free(&grid);
    }
    rs_job_free(&job);
    MPI_Finalize();
    return CHECK_REPORT("test_sweep");
}
