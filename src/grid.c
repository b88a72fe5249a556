/* grid.c — a job's trials in one fixed order, and the cost model (see grid.h). */
#include "repsweep/grid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "repsweep/status.h"

/* ------------------------------------------------------------------------------------------
 * Cost model. An epoch of full-batch gradient descent on two points streams every weight
 * through the cache about twice (forward, fused backward + update), so a dense net costs
 * in proportion to the bytes of its weights; a convolution's cost is its multiply-adds,
 * which its few weights do not tell. Hence
 *     ms per epoch = MS_PER_WEIGHT_BYTE * bytes_of_weights
 *                  + MS_PER_CONV_MAC[precision] * conv_macs + MS_PER_EPOCH_FLOOR
 * (bytes_of_weights = rs_arch_param_count * sizeof(precision); conv_macs = rs_arch_conv_macs,
 * one point's forward pass).
 * Measured on the development machine (2 cores, idle; one thread, OPENBLAS_NUM_THREADS=1;
 * `repsweep trial --arch A --no-fit --epochs N --json`, train_seconds / N, best of 3; N =
 * 20000 for narrow and shallow, 400 (dropout 600) otherwise), in ms per epoch:
 *     architecture   params     float64  float32   model f64  model f32
 *     narrow           48,601    0.0355   0.0278     0.063      0.034
 *     shallow         252,001    0.128    0.079      0.305      0.155
 *     default       4,761,001    5.52     3.01       5.68       2.84
 *     skip          4,761,001    5.77     2.68       5.68       2.84
 *     dropout       2,256,001    3.22     1.02       2.70       1.35
 *     convolution      41,632    7.07     4.78       7.07       4.78   (17.6 M conv MACs)
 * MS_PER_WEIGHT_BYTE is set by the 20 x 500 dense nets (13 of Table 1's 15 rows and the bulk
 * of any sweep's cost; 6.7 GB/s of weights, the same in both precisions); the conv
 * coefficient by the convolution net after its dense part; the floor by the narrow net.
 * Small nets whose weights stay in cache (narrow, shallow) run up to 2.4x faster than the
 * model says, dropout nets (a second, masked forward pass) 0.8-1.3x: good to a factor 2,
 * and within 5-25% where the core-hours are. Re-measure on a new machine (tests/bench).
 * A fit (Eq. 49 scan + Levenberg-Marquardt + the loss fit) took 0.007-0.0125 s (median; 90th
 * percentile 0.010-0.019 s, largest 0.065 s) over the 1196 network trials of four reproduction
 * jobs (results of 9f6981a: all 15 architectures, the phase diagram's gains, the narrow and
 * shallow final-distance grids): FIT_SECONDS per fitted layer. One ODE solve of
 * Eq. 7 over 6000 epochs with a state per epoch (rs_theory_solve, rel_tol 1e-8) took
 * 1.7 ms for rates from 1e-4 to 1e-2: THEORY_SECONDS_PER_EPOCH. */
static const double MS_PER_WEIGHT_BYTE = 1.49e-7;
static const double MS_PER_CONV_MAC[2] = {3.98e-7, 2.70e-7}; /* float64, float32 */
static const double MS_PER_EPOCH_FLOOR = 0.005;
static const double FIT_SECONDS = 0.01;
static const double THEORY_SECONDS_PER_EPOCH = 1.7e-3 / 6000;

/* Sizes behind the memory and output estimates (check's report). */
enum {
    TRAJECTORY_ARRAYS = 9,    /* per-epoch arrays of rs_trajectory (measured and theory) */
    SUMMARY_DOUBLES = 40,     /* one trial's results in a results file */
    STAGE_SUMMARY_DOUBLES = 5,/* per-stage results with all_layers (store.h extras) */
    RECORDED_DOUBLES = 8      /* dh2, dyhat2, w, loss per recorded epoch, measured and of
                               * the fitted theory (store.h extras) */
};

#define MAX_AXES 7

/* The axes of block b in grid order (the last varies fastest): their lengths, and the
 * coordinate of c each one sets. Returns the number of axes. */
static int block_axes(const rs_job_block *b, long len[MAX_AXES], long *coord[MAX_AXES],
                      rs_grid_coords *c)
{
    if (b->kind == RS_BLOCK_NETWORK) {
        long l[] = {b->n_arch, rs_job_block_gain_count(b), b->input_gaps.n, b->target_gaps.n,
                    b->seeds.count};
        long *p[] = {&c->arch, &c->gain, &c->input_gap, &c->target_gap, &c->seed};
        memcpy(len, l, sizeof l);
        memcpy(coord, p, sizeof p);
        return 5;
    }
    long l[] = {b->rate_h.n, b->rate_y.n, b->dh2_0.n, b->dyhat2_0.n, b->w_0.n ? b->w_0.n : 1,
                b->input_gaps.n, b->target_gaps.n};
    long *p[] = {&c->rate_h, &c->rate_y, &c->dh2_0, &c->dyhat2_0, &c->w_0, &c->input_gap,
                 &c->target_gap};
    memcpy(len, l, sizeof l);
    memcpy(coord, p, sizeof p);
    return 7;
}

int rs_grid_init(rs_grid *grid, const rs_job *job)
{
    memset(grid, 0, sizeof *grid);
    grid->block_start = malloc(((size_t)job->n_blocks + 1) * sizeof *grid->block_start);
    if (!grid->block_start)
        return RS_E_NOMEM;
    grid->job = job;
    grid->n_blocks = job->n_blocks;
    const uint64_t limit = UINT64_C(1) << 63;
    uint64_t start = 0;
    for (int i = 0; i < job->n_blocks; i++) {
        grid->block_start[i] = start;
        long len[MAX_AXES], *coord[MAX_AXES];
        rs_grid_coords c;
        int n = block_axes(&job->blocks[i], len, coord, &c);
        uint64_t count = 1;
        for (int k = 0; k < n; k++) {
            if (len[k] < 1 || count > limit / (uint64_t)len[k])
                goto too_many;
            count *= (uint64_t)len[k];
        }
        if (count > limit - start)
            goto too_many;
        start += count;
    }
    grid->block_start[job->n_blocks] = start;
    return RS_OK;
too_many:
    rs_grid_free(grid);
    return RS_E_INVALID;
}

void rs_grid_free(rs_grid *grid)
{
    free(grid->block_start);
    memset(grid, 0, sizeof *grid);
}

uint64_t rs_grid_count(const rs_grid *grid)
{
    return grid->block_start ? grid->block_start[grid->n_blocks] : 0;
}

uint64_t rs_grid_block_count(const rs_grid *grid, int block)
{
    if (block < 0 || block >= grid->n_blocks)
        return 0;
    return grid->block_start[block + 1] - grid->block_start[block];
}

int rs_grid_coords_of(const rs_grid *grid, uint64_t index, rs_grid_coords *c)
{
    if (index >= rs_grid_count(grid))
        return RS_E_INVALID;
    memset(c, 0, sizeof *c);
    int b = 0;
    while (index >= grid->block_start[b + 1])
        b++;
    c->block = b;
    uint64_t rest = index - grid->block_start[b];
    long len[MAX_AXES], *coord[MAX_AXES];
    for (int k = block_axes(&grid->job->blocks[b], len, coord, c) - 1; k >= 0; k--) {
        *coord[k] = (long)(rest % (uint64_t)len[k]);
        rest /= (uint64_t)len[k];
    }
    return RS_OK;
}

int rs_grid_index_of(const rs_grid *grid, const rs_grid_coords *c, uint64_t *index)
{
    if (c->block < 0 || c->block >= grid->n_blocks)
        return RS_E_INVALID;
    rs_grid_coords copy = *c, zero;
    memset(&zero, 0, sizeof zero);
    zero.block = c->block;
    long len[MAX_AXES], *coord[MAX_AXES], *zero_coord[MAX_AXES];
    int n = block_axes(&grid->job->blocks[c->block], len, coord, &copy);
    block_axes(&grid->job->blocks[c->block], len, zero_coord, &zero);
    uint64_t rest = 0;
    for (int k = 0; k < n; k++) {
        if (*coord[k] < 0 || *coord[k] >= len[k])
            return RS_E_INVALID;
        rest = rest * (uint64_t)len[k] + (uint64_t)*coord[k];
        *zero_coord[k] = *coord[k];
    }
    /* the axes the block does not have must be 0 */
    if (memcmp(&zero, &copy, sizeof zero) != 0)
        return RS_E_INVALID;
    *index = grid->block_start[c->block] + rest;
    return RS_OK;
}

int rs_grid_trial_at(const rs_grid *grid, const rs_grid_coords *c, rs_grid_trial *t)
{
    uint64_t index;
    int st = rs_grid_index_of(grid, c, &index);
    if (st != RS_OK)
        return st;
    const rs_job_block *b = &grid->job->blocks[c->block];
    memset(t, 0, sizeof *t);
    t->kind = b->kind;
    t->input_gap = b->input_gaps.v[c->input_gap];
    t->target_gap = b->target_gaps.v[c->target_gap];
    if (b->kind == RS_BLOCK_NETWORK) {
        int a = (int)c->arch, g = (int)c->gain;
        t->arch = &b->arch[a];
        t->gain = rs_job_block_gain(b, a, g);
        t->lr = rs_job_block_lr(b, a, g);
        t->epochs = rs_job_block_epochs(b, a, g);
        t->seed = rs_seeds_at(&b->seeds, c->seed);
        return RS_OK;
    }
    t->epochs = b->theory_epochs;
    t->rate_h = b->rate_h.v[c->rate_h];
    t->rate_y = b->rate_y.v[c->rate_y];
    t->dh2_0 = b->dh2_0.v[c->dh2_0];
    t->dyhat2_0 = b->dyhat2_0.v[c->dyhat2_0];
    /* default: f2 - f1 = +sqrt(dyhat2_0), so w = dyhat2 - (f2 - f1)(y2 - y1) */
    t->w_0 = b->w_0.n ? b->w_0.v[c->w_0] : t->dyhat2_0 - sqrt(t->dyhat2_0) * t->target_gap;
    return RS_OK;
}

int rs_grid_trial_spec(const rs_grid *grid, const rs_grid_trial *t, rs_trial_spec *spec)
{
    if (t->kind != RS_BLOCK_NETWORK || !t->arch)
        return RS_E_INVALID;
    const rs_job *job = grid->job;
    rs_trial_spec_default(spec, t->arch);
    spec->gain = t->gain;
    spec->lr = t->lr;
    spec->epochs = t->epochs;
    spec->input_gap = t->input_gap;
    spec->target_gap = t->target_gap;
    spec->seed = t->seed;
    spec->precision = job->precision;
    spec->all_layers = job->all_layers;
    spec->converge_loss = job->converge_loss;
    spec->stop_loss = job->stop_loss;
    return RS_OK;
}

double rs_grid_epoch_seconds(const rs_arch *arch, rs_precision precision)
{
    double bytes = (double)rs_arch_param_count(arch) *
                   (precision == RS_PRECISION_FLOAT32 ? sizeof(float) : sizeof(double));
    double ms = MS_PER_WEIGHT_BYTE * bytes +
                MS_PER_CONV_MAC[precision == RS_PRECISION_FLOAT32] * rs_arch_conv_macs(arch) +
                MS_PER_EPOCH_FLOOR;
    return 1e-3 * ms;
}

/* Stages whose dh2 is recorded and fitted beside the observed layer's (all_layers). */
static int extra_stages(const rs_grid *grid, const rs_grid_trial *t)
{
    return t->kind == RS_BLOCK_NETWORK && grid->job->all_layers ? rs_arch_stage_count(t->arch)
                                                                : 0;
}

/* An upper bound: a trial that meets stop_loss early costs less. */
double rs_grid_trial_seconds(const rs_grid *grid, const rs_grid_trial *t)
{
    if (t->kind == RS_BLOCK_THEORY)
        return THEORY_SECONDS_PER_EPOCH * (double)t->epochs;
    return (double)t->epochs * rs_grid_epoch_seconds(t->arch, grid->job->precision) +
           FIT_SECONDS * (1 + extra_stages(grid, t));
}

/* What one trial holds while it runs: the network workspace (weights, activations and
 * scratch: rs_arch_workspace_bytes; not parameters x 1.1, since the convolution net's
 * activations are 25 times its weights) and the per-epoch trajectories (rs_trajectory); a
 * theory trial its states. */
static double trial_bytes(const rs_grid *grid, const rs_grid_trial *t)
{
    double epochs = (double)t->epochs;
    if (t->kind == RS_BLOCK_THEORY)
        return epochs * (RECORDED_DOUBLES + 1) * sizeof(double);
    return (double)rs_arch_workspace_bytes(t->arch, grid->job->precision) +
           epochs * (TRAJECTORY_ARRAYS + extra_stages(grid, t)) * sizeof(double);
}

/* What one trial adds to a results file: its summary, and its trajectories if recorded. */
static double output_bytes(const rs_grid *grid, const rs_grid_trial *t)
{
    int stages = extra_stages(grid, t);
    double doubles = SUMMARY_DOUBLES + STAGE_SUMMARY_DOUBLES * stages;
    long stride = grid->job->trajectory_stride;
    if (stride > 0)
        doubles += (double)((t->epochs + stride - 1) / stride) * (RECORDED_DOUBLES + stages);
    return doubles * sizeof(double);
}

static void estimate_block(const rs_grid *grid, int block, rs_grid_estimate *e)
{
    const rs_job_block *b = &grid->job->blocks[block];
    memset(e, 0, sizeof *e);
    e->trials = rs_grid_block_count(grid, block);
    rs_grid_coords c;
    memset(&c, 0, sizeof c);
    c.block = block;
    /* trials differ in cost only by architecture and gain (its epochs); theory trials not */
    long n_arch = b->kind == RS_BLOCK_NETWORK ? b->n_arch : 1;
    long n_gain = b->kind == RS_BLOCK_NETWORK ? rs_job_block_gain_count(b) : 1;
    double per = (double)e->trials / (double)(n_arch * n_gain);
    for (c.arch = 0; c.arch < n_arch; c.arch++)
        for (c.gain = 0; c.gain < n_gain; c.gain++) {
            rs_grid_trial t;
            if (rs_grid_trial_at(grid, &c, &t) != RS_OK)
                continue;
            e->seconds += per * rs_grid_trial_seconds(grid, &t);
            e->output_bytes += per * output_bytes(grid, &t);
            e->rank_bytes = fmax(e->rank_bytes, trial_bytes(grid, &t));
        }
}

int rs_grid_estimate_of(const rs_grid *grid, int block, rs_grid_estimate *e)
{
    if (block >= grid->n_blocks || block < -1)
        return RS_E_INVALID;
    if (block >= 0) {
        estimate_block(grid, block, e);
        return RS_OK;
    }
    memset(e, 0, sizeof *e);
    for (int i = 0; i < grid->n_blocks; i++) {
        rs_grid_estimate one;
        estimate_block(grid, i, &one);
        e->trials += one.trials;
        e->seconds += one.seconds;
        e->output_bytes += one.output_bytes;
        e->rank_bytes = fmax(e->rank_bytes, one.rank_bytes);
    }
    return RS_OK;
}

/* --- shards --- */

int rs_grid_shard_has(const rs_grid_shard *s, uint64_t index)
{
    return index % s->count == s->index;
}

/* The shard's trials among [0, end). */
static uint64_t shard_trials_below(const rs_grid_shard *s, uint64_t end)
{
    return end / s->count + (end % s->count > s->index);
}

uint64_t rs_grid_shard_trials(const rs_grid_shard *s, uint64_t begin, uint64_t end)
{
    return end > begin ? shard_trials_below(s, end) - shard_trials_below(s, begin) : 0;
}

static uint64_t gcd(uint64_t x, uint64_t y)
{
    while (y) {
        uint64_t r = x % y;
        x = y;
        y = r;
    }
    return x;
}

/* Two residue classes k = I mod N and k = J mod M meet iff I = J mod gcd(N, M) (Chinese
 * remainder theorem), first at some k0 < lcm(N, M); whether k0 < trials is found by walking
 * the sparser shard, which reaches k0 within M / gcd steps, and stops at `trials`: at most
 * min(M, trials / N + 1) steps with N >= M (~sqrt(trials) at worst). */
int rs_grid_shards_overlap(const rs_grid_shard *a, const rs_grid_shard *b, uint64_t trials)
{
    if (a->count < b->count) {
        const rs_grid_shard *t = a;
        a = b;
        b = t;
    }
    uint64_t g = gcd(a->count, b->count);
    if (a->index % g != b->index % g)
        return 0;
    for (uint64_t k = a->index, step = 0; k < trials && step < b->count; k += a->count, step++)
        if (rs_grid_shard_has(b, k))
            return 1;
    return 0;
}

int rs_grid_arch_slots(const rs_grid *grid)
{
    int slots = 1; /* "theory" */
    for (int b = 0; b < grid->n_blocks; b++)
        if (grid->job->blocks[b].kind == RS_BLOCK_NETWORK)
            slots += grid->job->blocks[b].n_arch;
    return slots;
}

/* The entry called `name`, added (with zero counts) if new; returns its position. */
static int arch_entry(const char *name, const char **names, uint64_t *shard_trials,
                      uint64_t *grid_trials, int *n)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    names[*n] = name;
    shard_trials[*n] = grid_trials[*n] = 0;
    return (*n)++;
}

int rs_grid_arch_trials(const rs_grid *grid, const rs_grid_shard *shard, const char **names,
                        uint64_t *shard_trials, uint64_t *grid_trials)
{
    int n = 0;
    for (int b = 0; b < grid->n_blocks; b++) {
        const rs_job_block *blk = &grid->job->blocks[b];
        uint64_t start = grid->block_start[b], count = rs_grid_block_count(grid, b);
        /* the architecture is a network block's outermost axis: arch a holds a contiguous
         * range of count / n_arch indices */
        int n_arch = blk->kind == RS_BLOCK_NETWORK ? blk->n_arch : 1;
        uint64_t per = count / (uint64_t)n_arch;
        for (int a = 0; a < n_arch; a++) {
            const char *name = blk->kind == RS_BLOCK_NETWORK ? blk->arch[a].name : "theory";
            int i = arch_entry(name, names, shard_trials, grid_trials, &n);
            uint64_t begin = start + (uint64_t)a * per;
            shard_trials[i] += rs_grid_shard_trials(shard, begin, begin + per);
            grid_trials[i] += per;
        }
    }
    return n;
}
