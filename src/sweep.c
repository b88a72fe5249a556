/* sweep.c — one trial into a record, and the master/worker schedule (see sweep.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep */
#include "repsweep/sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repsweep/status.h"
#include "repsweep/theory.h"
#include "repsweep/trial.h"

/* Master -> worker messages are uint64 arrays on TAG_MASTER: {MSG_WORK, index...},
 * {MSG_STOP} (abandon the chunk: at most one per chunk, sent only while the worker is busy)
 * or {MSG_DONE} (the last message a worker gets). Worker -> master messages on TAG_RESULT are
 * bytes: a uint64 flags word (FLAG_STOPPED: the worker stopped early) then records. Every
 * worker result gets exactly one WORK or DONE in reply, so no message is left unmatched. */
enum { TAG_MASTER = 1, TAG_RESULT = 2 };
enum { MSG_WORK = 0, MSG_STOP = 1, MSG_DONE = 2 };
#define FLAG_STOPPED 1u

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void rs_sweep_options_default(rs_sweep_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_chunk = 64;
    o->chunk_seconds = 2.0;
    o->progress_seconds = 10.0;
    o->checkpoint_seconds = 300.0;
    o->threads = 1;
}

/* --- one trial --- */

static int network_trial(const rs_grid *grid, const rs_store_layout *l, const rs_grid_trial *t,
                         uint64_t index, const rs_sweep_options *o, rs_store_record *rec)
{
    rs_trial_spec spec;
    rs_trial_result res;
    rs_trajectory traj;
    int st = rs_grid_trial_spec(grid, t, &spec);
    if (st != RS_OK)
        return st;
    spec.stop = o->stop;
    spec.threads = o->threads;
    int n_stages = spec.all_layers ? rs_arch_stage_count(&spec.arch) : 0;
    st = rs_trajectory_alloc(&traj, spec.epochs, n_stages);
    if (st == RS_OK)
        st = rs_trial_run(&spec, &traj, &res);
    if (st == RS_OK) {
        rs_store_record_from_trial(index, l, &spec, &traj, &res, rec);
    } else if (st != RS_S_STOPPED) {
        rs_store_record_clear(index, l, rec); /* could not run: recorded as such */
        rec->status = st;
        rec->lr = spec.lr;
    }
    if (traj.capacity > 0)
        rs_trajectory_free(&traj);
    if (st == RS_OK || st == RS_S_STOPPED)
        rs_trial_result_free(&res);
    return st == RS_S_STOPPED ? RS_S_STOPPED : RS_OK;
}

/* Theory-only: Eq. 7 from the block's initial state over `epochs`, and Eq. 10-11. */
static int theory_trial(const rs_store_layout *l, const rs_grid_trial *t, uint64_t index,
                        rs_store_record *rec)
{
    rs_theory_params p = {t->rate_h, t->rate_y, t->input_gap * t->input_gap,
                          t->target_gap * t->target_gap};
    rs_theory_state init = {t->dh2_0, t->dyhat2_0, t->w_0}, out[2];
    double times[2] = {0.0, (double)t->epochs};
    rs_theory_solver *solver = rs_theory_solver_alloc(1e-10);
    int st = solver ? rs_theory_solve(solver, &p, init, times, 2, out) : RS_E_NOMEM;
    rs_theory_solver_free(solver);
    rs_store_record_from_theory(index, l, &p, init, t->epochs, st, &out[1], rec);
    return RS_OK;
}

int rs_sweep_trial(const rs_grid *grid, uint64_t index, const rs_sweep_options *o,
                   rs_store_record *rec)
{
    rs_grid_coords c;
    rs_grid_trial t;
    int st = rs_grid_coords_of(grid, index, &c);
    if (st == RS_OK)
        st = rs_grid_trial_at(grid, &c, &t);
    if (st != RS_OK)
        return st;
    rs_store_layout l;
    rs_store_layout_of(grid, &l); /* cheap beside a trial: a loop over the job's axes */
    return t.kind == RS_BLOCK_NETWORK ? network_trial(grid, &l, &t, index, o, rec)
                                      : theory_trial(&l, &t, index, rec);
}

/* --- the plan: pending trials, most expensive first, cut into chunks --- */

typedef struct {
    uint64_t index;
    double cost;
} pending_trial;

_Static_assert(sizeof(pending_trial) == RS_SWEEP_PLAN_BYTES, "sweep.h states the plan's size");

typedef struct {
    pending_trial *todo;
    size_t n, next;          /* todo[next..n) not yet handed out */
    double cost_todo;
} plan;

static int by_cost(const void *a, const void *b)
{
    const pending_trial *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

/* The trials of the store's shard that it does not hold. */
static int plan_make(const rs_grid *grid, const rs_store *store, plan *p)
{
    uint64_t total = rs_grid_count(grid);
    const rs_grid_shard *shard = rs_store_shard(store);
    memset(p, 0, sizeof *p);
    p->todo = malloc((size_t)(rs_store_expected_count(store) - rs_store_done_count(store) + 1) *
                     sizeof *p->todo);
    if (!p->todo)
        return RS_E_NOMEM;
    for (uint64_t i = shard->index; i < total; i += shard->count) {
        rs_grid_coords c;
        rs_grid_trial t;
        if (rs_store_is_done(store, i))
            continue;
        if (rs_grid_coords_of(grid, i, &c) != RS_OK || rs_grid_trial_at(grid, &c, &t) != RS_OK)
            return RS_E_INVALID;
        p->todo[p->n].index = i;
        p->todo[p->n].cost = rs_grid_trial_seconds(grid, &t);
        p->cost_todo += p->todo[p->n].cost;
        p->n++;
    }
    qsort(p->todo, p->n, sizeof *p->todo, by_cost);
    return RS_OK;
}

/* The next chunk into idx (room for o->max_chunk); returns its size (0: nothing left) and
 * its estimated cost in *cost. */
static size_t plan_next(plan *p, const rs_sweep_options *o, uint64_t *idx, double *cost)
{
    size_t k = 0;
    *cost = 0;
    while (p->next < p->n && k < o->max_chunk && (k == 0 || *cost < o->chunk_seconds)) {
        idx[k++] = p->todo[p->next].index;
        *cost += p->todo[p->next].cost;
        p->next++;
    }
    return k;
}

/* --- the master's bookkeeping, shared by the one-rank and the many-rank loops --- */

typedef struct {
    const rs_grid *grid;
    rs_store *store;
    const rs_sweep_options *o;
    rs_sweep_progress prog;
    double start, next_progress, next_checkpoint;
    int stopping, status;
    char error[512];            /* why the store failed (status) */
} master;

static void master_init(master *m, const rs_grid *grid, rs_store *store,
                        const rs_sweep_options *o, const plan *p, int ranks)
{
    memset(m, 0, sizeof *m);
    m->grid = grid;
    m->store = store;
    m->o = o;
    m->start = seconds_now();
    m->next_progress = m->start + o->progress_seconds;
    m->next_checkpoint = m->start + o->checkpoint_seconds;
    m->prog.total = rs_store_expected_count(store);
    m->prog.done = rs_store_done_count(store);
    m->prog.cost_todo = p->cost_todo;
    m->prog.ranks = ranks;
    m->prog.failures = rs_store_failed_count(store);
    m->status = RS_OK;
}

/* Store finished records; a failed append stops the sweep with that status. */
static void master_store(master *m, const void *recs, size_t n, double cost)
{
    m->prog.cost_done += cost;
    if (n == 0 || m->status != RS_OK)
        return;
    int st = rs_store_append(m->store, recs, n, m->error, sizeof m->error);
    if (st != RS_OK) {
        m->status = st;
        m->stopping = 1;
        return;
    }
    m->prog.done += n;
    m->prog.done_here += n;
    for (size_t i = 0; i < n; i++)
        m->prog.failures +=
            rs_store_record_at(recs, rs_store_layout_get(m->store), i)->status != RS_OK;
}

/* Progress and checkpoints when due; the stop flag. */
static void master_tick(master *m)
{
    double now = seconds_now();
    const rs_sweep_options *o = m->o;
    if (o->stop && *o->stop)
        m->stopping = 1;
    if (o->progress && o->progress_seconds > 0 && now >= m->next_progress) {
        m->prog.seconds = now - m->start;
        o->progress(&m->prog, o->ctx);
        m->next_progress = now + o->progress_seconds;
    }
    if (o->checkpoint && o->checkpoint_seconds > 0 && now >= m->next_checkpoint &&
        m->status == RS_OK) {
        /* the journal holds every finished trial: a failed checkpoint is the callback's to
         * report, never a reason to stop */
        o->checkpoint(m->store, o->ctx);
        m->next_checkpoint = seconds_now() + o->checkpoint_seconds;
    }
}

/* One rank: the master computes its own chunks, storing each chunk as it finishes. */
static void master_alone(master *m, plan *p, uint64_t *idx, unsigned char *recs, double *busy)
{
    size_t rec_bytes = rs_store_record_bytes(rs_store_layout_get(m->store));
    double cost;
    size_t k;
    while (!m->stopping && (k = plan_next(p, m->o, idx, &cost)) > 0) {
        size_t n = 0;
        for (size_t i = 0; i < k && !m->stopping; i++) {
            double t0 = seconds_now();
            if (rs_sweep_trial(m->grid, idx[i], m->o,
                               (rs_store_record *)(recs + n * rec_bytes)) == RS_OK)
                n++;
            *busy += seconds_now() - t0;
            master_tick(m);
        }
        master_store(m, recs, n, cost);
        master_tick(m);
    }
}

static void send_master_msg(int rank, uint64_t *msg, size_t n, MPI_Comm comm)
{
    MPI_Send(msg, (int)n, MPI_UINT64_T, rank, TAG_MASTER, comm);
}

/* Hand `worker` its next chunk, or DONE; returns 1 if it got work. */
static int master_dispatch(master *m, plan *p, int worker, uint64_t *msg, double *cost,
                           MPI_Comm comm)
{
    size_t k = m->stopping ? 0 : plan_next(p, m->o, msg + 1, cost);
    msg[0] = k ? MSG_WORK : MSG_DONE;
    send_master_msg(worker, msg, k + 1, comm);
    return k > 0;
}

static void sleep_briefly(void)
{
    struct timespec ts = {0, 200000}; /* 0.2 ms: idle polling must not steal a core */
    nanosleep(&ts, NULL);
}

/* Many ranks: rank 0 only schedules and stores. Every worker starts with an empty result
 * ("ready"); `busy`/`stop_sent` track who holds a chunk and who was told to drop it. */
static int master_many(master *m, plan *p, int ranks, unsigned char *buf, size_t buf_bytes,
                       MPI_Comm comm)
{
    int active = ranks - 1;
    char *busy = calloc((size_t)ranks, 1), *stop_sent = calloc((size_t)ranks, 1);
    double *chunk_cost = calloc((size_t)ranks, sizeof *chunk_cost);
    uint64_t *msg = malloc((m->o->max_chunk + 1) * sizeof *msg);
    if (!busy || !stop_sent || !chunk_cost || !msg) {
        free(busy);
        free(stop_sent);
        free(chunk_cost);
        free(msg);
        return RS_E_NOMEM; /* MPI_Abort follows in the caller: workers are waiting */
    }
    while (active > 0) {
        master_tick(m);
        for (int r = 1; m->stopping && r < ranks; r++)
            if (busy[r] && !stop_sent[r]) {
                uint64_t stop_msg = MSG_STOP;
                send_master_msg(r, &stop_msg, 1, comm);
                stop_sent[r] = 1;
            }
        int flag;
        MPI_Status s;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, comm, &flag, &s);
        if (!flag) {
            sleep_briefly();
            continue;
        }
        int bytes, r = s.MPI_SOURCE;
        MPI_Get_count(&s, MPI_BYTE, &bytes);
        MPI_Recv(buf, (int)buf_bytes, MPI_BYTE, r, TAG_RESULT, comm, MPI_STATUS_IGNORE);
        uint64_t flags;
        memcpy(&flags, buf, sizeof flags);
        if (flags & FLAG_STOPPED)
            m->stopping = 1; /* a worker got the signal: the job is being stopped */
        size_t n = ((size_t)bytes - sizeof flags) /
                   rs_store_record_bytes(rs_store_layout_get(m->store));
        master_store(m, buf + sizeof flags, n, chunk_cost[r]);
        chunk_cost[r] = 0;
        busy[r] = (char)master_dispatch(m, p, r, msg, &chunk_cost[r], comm);
        stop_sent[r] = 0;
        if (!busy[r])
            active--;
    }
    free(busy);
    free(stop_sent);
    free(chunk_cost);
    free(msg);
    return RS_OK;
}

/* Has the master sent STOP? (Only STOP can arrive while a worker holds a chunk.) */
static int stop_requested(MPI_Comm comm)
{
    int flag;
    MPI_Iprobe(0, TAG_MASTER, comm, &flag, MPI_STATUS_IGNORE);
    if (flag) {
        uint64_t m;
        MPI_Recv(&m, 1, MPI_UINT64_T, 0, TAG_MASTER, comm, MPI_STATUS_IGNORE);
    }
    return flag;
}

/* The next WORK chunk into msg (its size in *k), skipping a STOP that arrived after the
 * last chunk ended; returns 0 on DONE. */
static int next_chunk(uint64_t *msg, size_t max_chunk, size_t *k, MPI_Comm comm)
{
    for (;;) {
        MPI_Status s;
        int count;
        MPI_Recv(msg, (int)max_chunk + 1, MPI_UINT64_T, 0, TAG_MASTER, comm, &s);
        MPI_Get_count(&s, MPI_UINT64_T, &count);
        if (msg[0] == MSG_DONE)
            return 0;
        if (msg[0] == MSG_WORK) {
            *k = (size_t)count - 1;
            return 1;
        }
    }
}

/* A worker: results back, chunks in, until DONE. Between trials it looks for STOP; its own
 * stop flag ends the trial in progress within an epoch (the trial is dropped). */
static int worker(const rs_grid *grid, const rs_sweep_options *o, unsigned char *buf,
                  size_t rec_bytes, MPI_Comm comm, double *busy)
{
    uint64_t *msg = malloc((o->max_chunk + 1) * sizeof *msg);
    unsigned char *recs = buf + sizeof(uint64_t);
    uint64_t flags = 0;
    size_t n = 0, k;
    if (!msg)
        return RS_E_NOMEM;
    for (;;) {
        memcpy(buf, &flags, sizeof flags);
        MPI_Send(buf, (int)(sizeof flags + n * rec_bytes), MPI_BYTE, 0,
                 TAG_RESULT, comm);
        if (!next_chunk(msg, o->max_chunk, &k, comm))
            break;
        n = 0;
        for (size_t i = 0; i < k; i++) {
            if ((o->stop && *o->stop) || stop_requested(comm)) {
                flags |= FLAG_STOPPED;
                break;
            }
            double t0 = seconds_now();
            if (rs_sweep_trial(grid, msg[1 + i], o,
                               (rs_store_record *)(recs + n * rec_bytes)) == RS_OK)
                n++;
            *busy += seconds_now() - t0;
        }
    }
    free(msg);
    return RS_OK;
}

/* Every rank's compute time and wall time of the sweep, gathered on rank 0 into the report
 * (collective). Measures load balance: a rank's busy fraction is busy / wall. */
static void gather_busy(MPI_Comm comm, int rank, int ranks, double busy, double wall,
                        rs_sweep_report *report)
{
    double mine[2] = {busy, wall};
    double *all = rank == 0 ? malloc(2 * (size_t)ranks * sizeof *all) : NULL;
    if (rank == 0 && !all) { /* still take part in the collective, with a dummy buffer */
        double dummy[2];
        MPI_Gather(mine, 2, MPI_DOUBLE, dummy, 2, MPI_DOUBLE, 0, comm);
        return;
    }
    MPI_Gather(mine, 2, MPI_DOUBLE, all, 2, MPI_DOUBLE, 0, comm);
    if (rank == 0) {
        report->rank_times = all;
        report->ranks = ranks;
    }
}

void rs_sweep_report_free(rs_sweep_report *report)
{
    free(report->rank_times);
    report->rank_times = NULL;
    report->ranks = 0;
}

int rs_sweep_run(MPI_Comm comm, const rs_grid *grid, rs_store *store,
                 const rs_sweep_options *o, rs_sweep_report *report)
{
    int rank, ranks, st = RS_OK;
    double started = seconds_now(), busy = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &ranks);
    rs_store_layout layout;
    rs_store_layout_of(grid, &layout);
    size_t rec_bytes = rs_store_record_bytes(&layout);
    size_t buf_bytes = sizeof(uint64_t) + o->max_chunk * rec_bytes;
    unsigned char *buf = malloc(buf_bytes);
    uint64_t *idx = malloc(o->max_chunk * sizeof *idx);
    if (!buf || !idx)
        st = RS_E_NOMEM;
    /* every rank must agree to start, or none does (no rank may wait for a missing peer) */
    MPI_Allreduce(MPI_IN_PLACE, &st, 1, MPI_INT, MPI_MIN, comm);
    if (st != RS_OK) {
        free(buf);
        free(idx);
        return RS_E_NOMEM;
    }
    if (rank != 0) {
        st = worker(grid, o, buf, rec_bytes, comm, &busy);
        free(buf);
        free(idx);
        if (st != RS_OK)
            MPI_Abort(comm, 1); /* the master waits on this rank: nothing else is safe */
        gather_busy(comm, rank, ranks, busy, seconds_now() - started, NULL);
        return st;
    }
    plan p;
    master m;
    memset(report, 0, sizeof *report);
    st = plan_make(grid, store, &p);
    if (st != RS_OK)
        MPI_Abort(comm, 1); /* the workers are waiting for chunks */
    master_init(&m, grid, store, o, &p, ranks);
    if (ranks == 1)
        master_alone(&m, &p, idx, buf + sizeof(uint64_t), &busy);
    else if (master_many(&m, &p, ranks, buf, buf_bytes, comm) != RS_OK)
        MPI_Abort(comm, 1);
    report->computed = m.prog.done_here;
    if (m.status != RS_OK)
        snprintf(report->error, sizeof report->error, "%s", m.error);
    /* a trial not in the store now was abandoned or never handed out */
    report->interrupted = rs_store_done_count(store) < rs_store_expected_count(store);
    gather_busy(comm, rank, ranks, busy, seconds_now() - started, report);
    free(p.todo);
    free(buf);
    free(idx);
    return m.status;
}
