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
    o->hang_floor_seconds = 120.0;
    o->hang_factor = 10.0;
    o->stop_wait_seconds = 30.0;
    o->max_attempts = 3;
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
    rs_store_record_clear(index, l, rec);
    rs_theory_solver *solver = rs_theory_solver_alloc(1e-10);
    int st = solver ? rs_theory_solve(solver, &p, init, times, 2, out) : RS_E_NOMEM;
    rs_theory_solver_free(solver);
    rec->status = st;
    rec->epochs_run = t->epochs;
    rec->rate_h = t->rate_h;
    rec->rate_y = t->rate_y;
    rec->dh2_initial = init.dh2;
    rec->dyhat2_initial = init.dyhat2;
    rec->w_initial = init.w;
    if (st == RS_OK || st == RS_S_COLLAPSED) {
        rec->dh2_final = out[1].dh2;
        rec->dyhat2_final = out[1].dyhat2;
        rec->w_final = out[1].w;
    }
    rs_theory_fixed_point(&p, init, &rec->A_high, &rec->A_low, &rec->dh2_predicted);
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
    pending_trial *again;    /* chunks of lost workers, handed out before todo (a stack) */
    size_t n_again, cap_again;
    uint64_t *retry;         /* stored trials that could not run, to run again: ascending */
    char *retry_stored;      /* ... and whether this run has stored the retry */
    size_t n_retry;
    double cost_todo;
} plan;

static int by_cost(const void *a, const void *b)
{
    const pending_trial *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

/* The trials of the store's shard that it does not hold, and the retries (rs_store_wants). */
static int plan_make(const rs_grid *grid, const rs_store *store, unsigned max_attempts,
                     plan *p)
{
    uint64_t total = rs_grid_count(grid);
    const rs_grid_shard *shard = rs_store_shard(store);
    memset(p, 0, sizeof *p);
    uint64_t retries = 0;
    for (uint64_t i = shard->index; i < total && max_attempts > 1; i += shard->count)
        retries += rs_store_is_done(store, i) && rs_store_wants(store, i, max_attempts);
    size_t room = (size_t)(rs_store_expected_count(store) - rs_store_done_count(store) +
                           retries + 1);
    p->todo = malloc(room * sizeof *p->todo);
    p->retry = malloc((size_t)(retries + 1) * sizeof *p->retry);
    p->retry_stored = calloc((size_t)(retries + 1), 1);
    if (!p->todo || !p->retry || !p->retry_stored)
        return RS_E_NOMEM;
    for (uint64_t i = shard->index; i < total; i += shard->count) {
        rs_grid_coords c;
        rs_grid_trial t;
        if (!rs_store_wants(store, i, max_attempts))
            continue;
        if (rs_store_is_done(store, i))
            p->retry[p->n_retry++] = i;
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

static void plan_free(plan *p)
{
    free(p->todo);
    free(p->again);
    free(p->retry);
    free(p->retry_stored);
}

/* The position of `index` among the plan's retries, or n_retry. */
static size_t retry_at(const plan *p, uint64_t index)
{
    size_t lo = 0, hi = p->n_retry;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->retry[mid] < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n_retry && p->retry[lo] == index ? lo : p->n_retry;
}

/* Is trial `index` still to be stored by this run: not in the store, or a retry not yet
 * stored (a lost worker's late answer, or the rerun of its chunk, is stored once)? */
static int plan_wants(const plan *p, const rs_store *store, uint64_t index)
{
    if (!rs_store_is_done(store, index))
        return 1;
    size_t at = retry_at(p, index);
    return at < p->n_retry && !p->retry_stored[at];
}

static void plan_stored(plan *p, uint64_t index)
{
    size_t at = retry_at(p, index);
    if (at < p->n_retry)
        p->retry_stored[at] = 1;
}

/* Put a lost worker's chunk back (handed out next). RS_E_NOMEM if it cannot grow. */
static int plan_return(plan *p, const pending_trial *chunk, size_t k)
{
    if (p->n_again + k > p->cap_again) {
        size_t cap = 2 * (p->n_again + k);
        pending_trial *a = realloc(p->again, cap * sizeof *a);
        if (!a)
            return RS_E_NOMEM;
        p->again = a;
        p->cap_again = cap;
    }
    for (size_t i = k; i-- > 0;) /* a stack: the chunk comes back in its order */
        p->again[p->n_again++] = chunk[i];
    return RS_OK;
}

/* The next chunk into out (room for o->max_chunk), skipping trials the store now holds (a
 * lost worker's late answer); returns its size (0: nothing left) and its estimated cost in
 * *cost. */
static size_t plan_next(plan *p, const rs_store *store, const rs_sweep_options *o,
                        pending_trial *out, double *cost)
{
    size_t k = 0;
    *cost = 0;
    while (k < o->max_chunk && (k == 0 || *cost < o->chunk_seconds)) {
        pending_trial t;
        if (p->n_again > 0)
            t = p->again[--p->n_again];
        else if (p->next < p->n)
            t = p->todo[p->next++];
        else
            break;
        if (!plan_wants(p, store, t.index))
            continue;
        out[k++] = t;
        *cost += t.cost;
    }
    return k;
}

/* --- the master's bookkeeping, shared by the one-rank and the many-rank loops --- */

typedef struct {
    const rs_grid *grid;
    rs_store *store;
    plan *plan;
    const rs_sweep_options *o;
    rs_sweep_progress prog;
    double start, next_progress, next_checkpoint;
    int stopping, status;
    char message[1024];      /* the cause of a status other than RS_OK */
} master;

static void master_init(master *m, const rs_grid *grid, rs_store *store,
                        const rs_sweep_options *o, plan *p, int ranks)
{
    memset(m, 0, sizeof *m);
    m->grid = grid;
    m->store = store;
    m->plan = p;
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

/* Stop the sweep with `status`, keeping the first cause. */
static void master_fail(master *m, int status, const char *why)
{
    if (m->status == RS_OK) {
        m->status = status;
        snprintf(m->message, sizeof m->message, "%s", why);
    }
    m->stopping = 1;
}

/* Store finished records, dropping any the store already holds (a lost worker's late
 * answer, or the rerun of its chunk); a failed append stops the sweep with its cause. */
static void master_store(master *m, unsigned char *recs, size_t n, double cost)
{
    char err[1024];
    const rs_store_layout *l = rs_store_layout_get(m->store);
    size_t rec_bytes = rs_store_record_bytes(l), kept = 0;
    m->prog.cost_done += cost;
    if (n == 0 || m->status != RS_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!plan_wants(m->plan, m->store, rs_store_record_at(recs, l, i)->index))
            continue;
        if (kept != i)
            memmove(recs + kept * rec_bytes, recs + i * rec_bytes, rec_bytes);
        kept++;
    }
    if (kept == 0)
        return;
    int st = rs_store_append(m->store, recs, kept, err, sizeof err);
    if (st != RS_OK) {
        master_fail(m, st, err);
        return;
    }
    for (size_t i = 0; i < kept; i++) {
        const rs_store_record *r = rs_store_record_at(recs, l, i);
        if (retry_at(m->plan, r->index) < m->plan->n_retry) { /* replaces a failed record */
            m->prog.failures--;
            m->prog.done--;
        }
        plan_stored(m->plan, r->index);
        m->prog.failures += r->status != RS_OK;
    }
    m->prog.done += kept;
    m->prog.done_here += kept;
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

static int call_trial(const rs_grid *grid, uint64_t index, const rs_sweep_options *o,
                      rs_store_record *rec)
{
    return o->trial ? o->trial(grid, index, o, rec, o->trial_params)
                    : rs_sweep_trial(grid, index, o, rec);
}

/* One rank: the master computes its own chunks, storing each chunk as it finishes. */
static void master_alone(master *m, plan *p, pending_trial *chunk, unsigned char *recs,
                         double *busy)
{
    size_t rec_bytes = rs_store_record_bytes(rs_store_layout_get(m->store));
    double cost;
    size_t k;
    while (!m->stopping && (k = plan_next(p, m->store, m->o, chunk, &cost)) > 0) {
        size_t n = 0;
        for (size_t i = 0; i < k && !m->stopping; i++) {
            double t0 = seconds_now();
            if (call_trial(m->grid, chunk[i].index, m->o,
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

static void sleep_briefly(void)
{
    struct timespec ts = {0, 200000}; /* 0.2 ms: idle polling must not steal a core */
    nanosleep(&ts, NULL);
}

/* What the master knows of one worker. A worker is "busy" from when it is handed a chunk
 * (or, at the start, until its first "ready") until its answer arrives; "lost" when it
 * missed the deadline while busy; "parked" when it answered, there was no work for it and
 * other chunks are still out (a lost worker's chunk may come back): it gets WORK or DONE
 * later. */
typedef struct {
    char busy, stop_sent, lost, parked;
    double handed, deadline, cost;
    size_t n;                /* trials of its chunk (held[r * max_chunk ...]) */
} worker_state;

static void master_notice(const master *m, const char *fmt, int rank, double seconds,
                          size_t trials)
{
    char text[256];
    if (!m->o->notice)
        return;
    snprintf(text, sizeof text, fmt, rank, seconds, trials);
    m->o->notice(text, m->o->ctx);
}

/* Hand worker r its next chunk; returns 1 if it got one. */
static int master_dispatch(master *m, plan *p, worker_state *w, pending_trial *held, int r,
                           uint64_t *msg, MPI_Comm comm)
{
    size_t k = m->stopping ? 0 : plan_next(p, m->store, m->o, held, &w->cost);
    if (k == 0)
        return 0;
    msg[0] = MSG_WORK;
    for (size_t i = 0; i < k; i++)
        msg[1 + i] = held[i].index;
    send_master_msg(r, msg, k + 1, comm);
    w->busy = 1;
    w->stop_sent = 0;
    w->parked = 0;
    w->n = k;
    w->handed = seconds_now();
    w->deadline = w->handed + m->o->hang_floor_seconds + m->o->hang_factor * w->cost;
    return 1;
}

/* Many ranks: rank 0 only schedules and stores. Every worker starts with an empty result
 * ("ready"). Returns the number of workers lost at the end (never sent DONE). */
static int master_many(master *m, plan *p, int ranks, unsigned char *buf, size_t buf_bytes,
                       worker_state *ws, pending_trial *held, uint64_t *msg,
                       uint64_t *reassigned, MPI_Comm comm)
{
    size_t rec_bytes = rs_store_record_bytes(rs_store_layout_get(m->store));
    size_t max_chunk = m->o->max_chunk;
    double stop_at = 0;
    for (int r = 1; r < ranks; r++) {
        memset(&ws[r], 0, sizeof ws[r]);
        ws[r].busy = 1;
        ws[r].handed = m->start;
        ws[r].deadline = m->start + m->o->hang_floor_seconds;
    }
    for (;;) {
        master_tick(m);
        double now = seconds_now();
        if (m->stopping && stop_at == 0)
            stop_at = now;
        int live_busy = 0;
        for (int r = 1; r < ranks; r++) {
            worker_state *w = &ws[r];
            if (!w->busy || w->lost)
                continue;
            if (m->stopping && w->n > 0 && !w->stop_sent) {
                uint64_t stop_msg = MSG_STOP;
                send_master_msg(r, &stop_msg, 1, comm);
                w->stop_sent = 1;
            }
            double limit = w->deadline;
            if (m->stopping && stop_at + m->o->stop_wait_seconds < limit)
                limit = stop_at + m->o->stop_wait_seconds;
            if (now > limit) {
                w->lost = 1;
                m->prog.lost++;
                if (w->n > 0 && !m->stopping) {
                    if (plan_return(p, held + (size_t)r * max_chunk, w->n) != RS_OK)
                        master_fail(m, RS_E_NOMEM, "out of memory while reassigning the "
                                    "chunk of a rank that stopped answering");
                    else
                        (*reassigned)++, m->prog.reassigned++;
                    m->prog.cost_todo += w->cost;
                }
                master_notice(m, "rank %d has not answered for %.1f s (past its chunk's "
                              "deadline): it is treated as lost and its %zu trial(s) go to "
                              "other ranks", r, now - w->handed, w->n);
                continue;
            }
            live_busy++;
        }
        /* chunks that came back go to parked workers first */
        for (int r = 1; r < ranks && !m->stopping; r++)
            if (ws[r].parked &&
                master_dispatch(m, p, &ws[r], held + (size_t)r * max_chunk, r, msg, comm))
                live_busy++;
        if (live_busy == 0)
            break;
        int flag;
        MPI_Status s;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, comm, &flag, &s);
        if (!flag) {
            sleep_briefly();
            continue;
        }
        int bytes, r = s.MPI_SOURCE;
        worker_state *w = &ws[r];
        MPI_Get_count(&s, MPI_BYTE, &bytes);
        MPI_Recv(buf, (int)buf_bytes, MPI_BYTE, r, TAG_RESULT, comm, MPI_STATUS_IGNORE);
        if (w->lost) {
            w->lost = 0;
            m->prog.lost--;
            master_notice(m, "rank %d answered again after %.1f s; of its %zu trial(s), those "
                          "already stored elsewhere are dropped", r, seconds_now() - w->handed,
                          w->n);
        }
        uint64_t flags;
        memcpy(&flags, buf, sizeof flags);
        if (flags & FLAG_STOPPED)
            m->stopping = 1; /* a worker got the signal: the job is being stopped */
        size_t n = ((size_t)bytes - sizeof flags) / rec_bytes;
        master_store(m, buf + sizeof flags, n, w->cost);
        w->busy = 0;
        w->n = 0;
        w->cost = 0;
        if (!master_dispatch(m, p, w, held + (size_t)r * max_chunk, r, msg, comm))
            w->parked = 1;
    }
    /* nothing is out with a live worker: the parked ones are done; lost ones get nothing
     * (a message to a stopped process is never read, and it must not be waited on) */
    int lost = 0;
    for (int r = 1; r < ranks; r++) {
        if (ws[r].parked) {
            uint64_t done_msg = MSG_DONE;
            send_master_msg(r, &done_msg, 1, comm);
        }
        lost += ws[r].lost;
    }
    return lost;
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
static void worker(const rs_grid *grid, const rs_sweep_options *o, unsigned char *buf,
                   size_t rec_bytes, uint64_t *msg, MPI_Comm comm, double *busy)
{
    unsigned char *recs = buf + sizeof(uint64_t);
    uint64_t flags = 0;
    size_t n = 0, k;
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
            if (call_trial(grid, msg[1 + i], o, (rs_store_record *)(recs + n * rec_bytes)) ==
                RS_OK)
                n++;
            *busy += seconds_now() - t0;
        }
    }
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
    uint64_t *msg = malloc((o->max_chunk + 1) * sizeof *msg);
    worker_state *ws = NULL;
    pending_trial *held = NULL;
    plan p;
    memset(&p, 0, sizeof p);
    if (rank == 0) {
        memset(report, 0, sizeof *report);
        ws = calloc((size_t)ranks, sizeof *ws);
        held = malloc((size_t)ranks * o->max_chunk * sizeof *held);
    }
    if (!buf || !msg || (rank == 0 && (!ws || !held)))
        st = RS_E_NOMEM;
    if (rank == 0 && st == RS_OK)
        st = plan_make(grid, store, o->max_attempts ? o->max_attempts : 1, &p);
    /* every rank must agree to start, or none does (no rank may wait for a missing peer) */
    int agreed = st;
    MPI_Allreduce(MPI_IN_PLACE, &agreed, 1, MPI_INT, MPI_MIN, comm);
    if (agreed != RS_OK) {
        if (rank == 0)
            snprintf(report->message, sizeof report->message, "%s",
                     st == RS_E_INVALID ? "a trial of the shard is outside the grid"
                     : st == RS_OK ? "another rank is out of memory for its buffers"
                     : "out of memory for the sweep's buffers and plan");
        plan_free(&p);
        free(buf);
        free(msg);
        free(ws);
        free(held);
        return agreed == RS_E_INVALID ? RS_E_INVALID : RS_E_NOMEM;
    }
    if (rank != 0) {
        worker(grid, o, buf, rec_bytes, msg, comm, &busy);
        free(buf);
        free(msg);
        gather_busy(comm, rank, ranks, busy, seconds_now() - started, NULL);
        return RS_OK;
    }
    master m;
    master_init(&m, grid, store, o, &p, ranks);
    int lost = 0;
    if (ranks == 1)
        master_alone(&m, &p, held, buf + sizeof(uint64_t), &busy);
    else
        lost = master_many(&m, &p, ranks, buf, buf_bytes, ws, held, msg, &report->reassigned,
                           comm);
    report->computed = m.prog.done_here;
    report->lost_ranks = lost;
    /* a trial not in the store now was abandoned or never handed out */
    report->interrupted = rs_store_done_count(store) < rs_store_expected_count(store);
    if (lost == 0) /* a lost rank would never join the collective */
        gather_busy(comm, rank, ranks, busy, seconds_now() - started, report);
    snprintf(report->message, sizeof report->message, "%s", m.message);
    plan_free(&p);
    free(buf);
    free(msg);
    free(ws);
    free(held);
    return m.status;
}
