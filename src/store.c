/* store.c — trial records and the append-only journal (see store.h). */
#define _DEFAULT_SOURCE /* flock, fsync, ftruncate, pread */
#include "repsweep/store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "repsweep/status.h"

_Static_assert(sizeof(rs_store_record) == RS_STORE_RECORD_BYTES,
               "rs_store_record must be 25 unpadded 8-byte fields");

/* status.h's codes a record can hold: a trial's outcome, or (< 0) why it could not run */
static const long long STATUS_VALUES[] = {RS_OK, RS_S_DIVERGED, RS_S_FIT_FAILED,
                                          RS_S_COLLAPSED, RS_E_NOMEM, RS_E_INVALID, RS_E_ODE,
                                          RS_E_IO, RS_E_PARSE, RS_E_NOTFOUND, RS_E_NETCDF};
static const char STATUS_MEANINGS[] =
    "ok diverged fit_failed ode_collapsed error_out_of_memory error_invalid_argument "
    "error_ode_failed error_io error_parse error_not_found error_netcdf";
static const long long BOOL_VALUES[] = {0, 1};

#define FIELD(name, long_name, units, comment, is_int, timing) \
    {#name, long_name, units, comment, offsetof(rs_store_record, name), is_int, timing, 0, NULL, NULL}
#define FLAGS(name, long_name, comment, values, meanings)                                   \
    {#name, long_name, "1", comment, offsetof(rs_store_record, name), 1, 0,                 \
     (int)(sizeof values / sizeof *values), values, meanings}
#define RATE_COMMENT " per epoch (one full-batch gradient step): units 1 stand for 1/epoch, " \
                     "which UDUNITS cannot express"

static const rs_store_field fields[] = {
    FLAGS(status, "trial status", "ode_collapsed: theory-only, dh2 reached 0; error_*: the "
          "trial could not run", STATUS_VALUES, STATUS_MEANINGS),
    FLAGS(converged, "converged", "the final loss is below the job's converge_loss",
          BOOL_VALUES, "false true"),
    FLAGS(fit_converged, "rate fit converged", "the Levenberg-Marquardt fit of the rates "
          "(Eq. 49) met its tolerance", BOOL_VALUES, "false true"),
    FLAGS(fit_rate_at_floor, "fitted rate at floor", "a fitted rate sits at its floor, so "
          "the data do not constrain it", BOOL_VALUES, "false true"),
    FIELD(epochs_run, "epochs run", "1", "gradient steps recorded; theory-only: the "
          "integration horizon", 1, 0),
    FIELD(lr, "learning rate", "1", NULL, 0, 0),
    FIELD(dh2_initial, "initial dh2", "1", "dh2 = ||h(x2)-h(x1)||^2 at the observed layer, "
          "epoch 0; theory-only: the block's initial state", 0, 0),
    FIELD(dyhat2_initial, "initial dyhat2", "1", "dyhat2 = ||f(x2)-f(x1)||^2, the predicted "
          "output difference (not the target gap), epoch 0", 0, 0),
    FIELD(w_initial, "initial w", "1", "w = dyhat2 - (f(x2)-f(x1))(y2-y1), epoch 0", 0, 0),
    FIELD(loss_initial, "initial loss", "1", "training loss at epoch 0", 0, 0),
    FIELD(dh2_final, "final dh2", "1", "dh2 at the last epoch; theory-only: the ODE's (Eq. 7)",
          0, 0),
    FIELD(dyhat2_final, "final dyhat2", "1", "dyhat2 at the last epoch; theory-only: the ODE's",
          0, 0),
    FIELD(w_final, "final w", "1", "w at the last epoch; theory-only: the ODE's", 0, 0),
    FIELD(loss_final, "final loss", "1", "training loss at the last epoch", 0, 0),
    FIELD(rate_h, "encoder rate", "1", "1/tau_h" RATE_COMMENT "; fitted (Eq. 49), "
          "theory-only: given", 0, 0),
    FIELD(rate_y, "decoder rate", "1", "1/tau_y" RATE_COMMENT "; fitted (Eq. 49), "
          "theory-only: given", 0, 0),
    FIELD(rate_ybar, "mean-output rate", "1", "1/tau_ybar" RATE_COMMENT "; fitted to the loss "
          "(Eq. 9)", 0, 0),
    FIELD(fit_loss, "fit loss", "1", "Eq. 49's sum of squared residuals of dh2, dyhat2, w", 0,
          0),
    FIELD(fit_loss_rel, "relative fit loss", "1", "fit_loss / sum of dh2^2 + dyhat2^2 + w^2",
          0, 0),
    FIELD(A_high, "A_high", "1", "Eq. 11 from the rates and the epoch-0 state", 0, 0),
    FIELD(A_low, "A_low", "1", "Eq. 11 from the rates and the epoch-0 state", 0, 0),
    FIELD(dh2_predicted, "predicted final dh2", "1", "the stable fixed point (Eq. 10)", 0, 0),
    FIELD(train_seconds, "training time", "s", "wall time of training", 0, 1),
    FIELD(fit_seconds, "fit time", "s", "wall time of the fits", 0, 1),
};

const rs_store_field *rs_store_fields(int *count)
{
    *count = (int)(sizeof fields / sizeof *fields);
    return fields;
}

/* --- the layout of the extras --- */

enum { STAGE_ARRAYS = 5, EPOCH_ARRAYS = 8 };

void rs_store_layout_of(const rs_grid *grid, rs_store_layout *l)
{
    const rs_job *job = grid->job;
    long max_epochs = 0;
    memset(l, 0, sizeof *l);
    for (int b = 0; b < job->n_blocks; b++) {
        const rs_job_block *blk = &job->blocks[b];
        if (blk->kind != RS_BLOCK_NETWORK)
            continue;
        for (int a = 0; a < blk->n_arch; a++) {
            int stages = rs_arch_stage_count(&blk->arch[a]);
            if (job->all_layers && stages > l->n_stages)
                l->n_stages = stages;
            for (int g = 0; g < rs_job_block_gain_count(blk); g++) {
                long e = rs_job_block_epochs(blk, a, g);
                if (e > max_epochs)
                    max_epochs = e;
            }
        }
    }
    if (job->trajectory_stride > 0 && max_epochs > 0) {
        l->stride = job->trajectory_stride;
        l->n_epochs = (max_epochs + l->stride - 1) / l->stride;
    }
}

size_t rs_store_layout_doubles(const rs_store_layout *l)
{
    size_t S = (size_t)l->n_stages, E = (size_t)l->n_epochs;
    return STAGE_ARRAYS * S + EPOCH_ARRAYS * E + E * S;
}

size_t rs_store_record_bytes(const rs_store_layout *l)
{
    return RS_STORE_RECORD_BYTES + sizeof(double) * rs_store_layout_doubles(l);
}

const rs_store_record *rs_store_record_at(const void *recs, const rs_store_layout *l, size_t i)
{
    return (const rs_store_record *)((const char *)recs + i * rs_store_record_bytes(l));
}

const double *rs_store_record_extras(const rs_store_record *rec)
{
    return (const double *)(rec + 1); /* the summary is 8-byte fields: no padding between */
}

static double *extras_of(rs_store_record *rec)
{
    return (double *)(rec + 1);
}

int rs_store_extras(const rs_store_layout *l, rs_store_extra *out)
{
    static const struct {
        const char *name, *long_name, *units, *comment;
        rs_store_shape shape;
    } all[] = {
        {"stage_rate_h", "encoder rate per stage", "1", "1/tau_h" RATE_COMMENT "; fitted to "
         "dh2 at each stage (Eq. 49)", RS_STORE_PER_STAGE},
        {"stage_rate_y", "decoder rate per stage", "1", "1/tau_y" RATE_COMMENT "; fitted with "
         "dh2 at each stage (Eq. 49)", RS_STORE_PER_STAGE},
        {"stage_fit_loss_rel", "relative fit loss per stage", "1", "relative Eq. 49 fit loss "
         "with dh2 at each stage", RS_STORE_PER_STAGE},
        {"stage_dh2_final", "final dh2 per stage", "1", "dh2 = ||h(x2)-h(x1)||^2 at each stage "
         "at the last epoch", RS_STORE_PER_STAGE},
        {"stage_dh2_predicted", "predicted final dh2 per stage", "1", "the stable fixed point "
         "(Eq. 10) at each stage", RS_STORE_PER_STAGE},
        {"dh2_traj", "dh2", "1", "dh2 = ||h(x2)-h(x1)||^2 at the observed layer at the recorded "
         "epochs", RS_STORE_PER_EPOCH},
        {"dyhat2_traj", "dyhat2", "1", "dyhat2 = ||f(x2)-f(x1)||^2 (predicted output "
         "difference, not the target gap) at the recorded epochs", RS_STORE_PER_EPOCH},
        {"w_traj", "w", "1", "w = dyhat2 - (f(x2)-f(x1))(y2-y1) at the recorded epochs",
         RS_STORE_PER_EPOCH},
        {"loss_traj", "loss", "1", "training loss at the recorded epochs", RS_STORE_PER_EPOCH},
        {"dh2_theory_traj", "theory dh2", "1", "dh2 of the effective theory (Eq. 7) with the "
         "trial's fitted rates from its measured epoch-0 state; missing where there was no "
         "fit", RS_STORE_PER_EPOCH},
        {"dyhat2_theory_traj", "theory dyhat2", "1", "dyhat2 (predicted output difference) of "
         "the effective theory (Eq. 7) with the fitted rates; missing where there was no fit",
         RS_STORE_PER_EPOCH},
        {"w_theory_traj", "theory w", "1", "w of the effective theory (Eq. 7) with the fitted "
         "rates; missing where there was no fit", RS_STORE_PER_EPOCH},
        {"loss_theory_traj", "theory loss", "1", "loss of the effective theory (Eq. 9) with "
         "the fitted rates and 1/tau_ybar; missing where there was no fit",
         RS_STORE_PER_EPOCH},
        {"dh2_stage_traj", "dh2 per stage", "1", "dh2 at each stage at the recorded epochs",
         RS_STORE_PER_EPOCH_STAGE},
    };
    size_t counts[3] = {(size_t)l->n_stages, (size_t)l->n_epochs,
                        (size_t)l->n_epochs * (size_t)l->n_stages};
    size_t offset = 0;
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        size_t count = counts[all[i].shape];
        if (count == 0)
            continue;
        out[n] = (rs_store_extra){all[i].name, all[i].long_name, all[i].units, all[i].comment,
                                  all[i].shape, offset, count};
        offset += count;
        n++;
    }
    return n;
}

void rs_store_record_clear(uint64_t index, const rs_store_layout *l, rs_store_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->index = index;
    int n;
    const rs_store_field *f = rs_store_fields(&n);
    for (int i = 0; i < n; i++)
        if (!f[i].is_int)
            *(double *)((char *)rec + f[i].offset) = NAN;
    double *x = extras_of(rec);
    for (size_t i = 0, m = rs_store_layout_doubles(l); i < m; i++)
        x[i] = NAN;
}

/* The per-stage results and the subsampled trajectory into the extras (already NaN), in
 * the order rs_store_extras lists them. Stages or epochs beyond the trial's stay NaN; so do
 * the per-stage fit results and the theory curves when there was no fit (as the summary's:
 * rs_trial_run then never wrote t's *_theory, so they must not be read). */
static void extras_from_trial(const rs_store_layout *l, const rs_trial_spec *s,
                              const rs_trajectory *t, const rs_trial_result *r,
                              rs_store_record *rec)
{
    size_t S = (size_t)l->n_stages, E = (size_t)l->n_epochs;
    double *x = extras_of(rec), *traj = x + STAGE_ARRAYS * S;
    int fitted = r->status != RS_S_DIVERGED && s->fit && r->epochs_run >= 3;
    for (size_t k = 0; k < S && k < (size_t)r->n_stages; k++) {
        const rs_fit_result *f = &r->stage_fit[k];
        if (fitted && f->status != RS_S_FIT_FAILED) {
            x[k] = f->rate_h;
            x[S + k] = f->rate_y;
            x[2 * S + k] = f->fit_loss_rel;
        }
        x[3 * S + k] = r->stage_dh2_final[k];
        if (fitted)
            x[4 * S + k] = r->stage_dh2_predicted[k];
    }
    for (size_t k = 0; k < E && (long)k * l->stride < t->epochs_run; k++) {
        size_t e = k * (size_t)l->stride;
        traj[k] = t->dh2[e];
        traj[E + k] = t->dyhat2[e];
        traj[2 * E + k] = t->w[e];
        traj[3 * E + k] = t->loss[e];
        if (fitted) { /* NaN already where the fit failed (trial.c's theory_curves) */
            traj[4 * E + k] = t->dh2_theory[e];
            traj[5 * E + k] = t->dyhat2_theory[e];
            traj[6 * E + k] = t->w_theory[e];
            traj[7 * E + k] = t->loss_theory[e];
        }
        for (size_t j = 0; j < S && j < (size_t)t->n_stages; j++)
            traj[EPOCH_ARRAYS * E + k * S + j] = t->dh2_stages[e * (size_t)t->n_stages + j];
    }
}

void rs_store_record_from_trial(uint64_t index, const rs_store_layout *l,
                                const rs_trial_spec *s, const rs_trajectory *t,
                                const rs_trial_result *r, rs_store_record *rec)
{
    rs_store_record_clear(index, l, rec);
    extras_from_trial(l, s, t, r, rec);
    rec->status = r->status;
    rec->converged = r->converged;
    rec->epochs_run = r->epochs_run;
    rec->lr = s->lr;
    rec->dh2_initial = r->dh2_initial;
    rec->dyhat2_initial = r->dyhat2_initial;
    rec->w_initial = r->w_initial;
    rec->loss_initial = r->loss_initial;
    rec->dh2_final = r->dh2_final;
    rec->dyhat2_final = r->dyhat2_final;
    rec->w_final = r->w_final;
    rec->loss_final = r->loss_final;
    rec->train_seconds = r->train_seconds;
    rec->fit_seconds = r->fit_seconds;
    /* rs_trial_run leaves the fit zeroed when it did not fit (diverged, too few epochs) */
    if (r->status == RS_S_DIVERGED || !s->fit || r->epochs_run < 3)
        return;
    rec->fit_converged = r->fit.converged;
    rec->fit_rate_at_floor = r->fit.at_floor;
    if (r->fit.status != RS_S_FIT_FAILED) {
        rec->rate_h = r->fit.rate_h;
        rec->rate_y = r->fit.rate_y;
        rec->fit_loss = r->fit.fit_loss;
        rec->fit_loss_rel = r->fit.fit_loss_rel;
        if (r->fit_ybar.status != RS_S_FIT_FAILED)
            rec->rate_ybar = r->fit_ybar.rate_ybar;
    }
    rec->A_high = r->A_high;
    rec->A_low = r->A_low;
    rec->dh2_predicted = r->dh2_predicted;
}

uint64_t rs_store_hash_text(const char *text)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

/* --- the journal --- */

/* Header layout (bytes): magic 0-7, version 8, record size 12, byte-order mark 16,
 * architectures' digest 20 (rs_job_arch_digest; zero before format 4), job hash 24,
 * trials 32, created 40, job name 48-111 (NUL-padded), shard index 112 and shard count 116
 * (uint32), zero 120, CRC-32 of bytes 0-123 at 124. Format 1 (before
 * shards) had its CRC-32 of bytes 0-111 at 112 and zeros after: it is read as shard 0/1. */
#define HEADER_BYTES 128
#define HEADER_CRC_AT 124
#define HEADER_CRC_AT_V1 112
/* Formats: 1 the first; 2 added the shard to the header; 3 added the fitted theory's curves
 * to the records' extras (dh2_theory_traj, ...); 4 added the architectures' digest to the
 * header (checked only in format 4 and later). Formats 1 and 2 are still read when their
 * records have this job's size, which is when the job records no trajectories (the only
 * records that changed); otherwise they are refused with what to do. */
#define JOURNAL_VERSION 4u
#define RECORDS_VERSION 3u /* the last format whose records changed */
#define BYTE_ORDER_MARK 0x01020304u
/* on disk a record (rs_store_record_bytes) is followed by its CRC-32 */
static const char MAGIC[8] = {'R', 'S', 'J', 'R', 'N', 'L', '\r', '\n'};

/* Where a stored record is: its trial and its slot (offset HEADER_BYTES + slot x (record
 * bytes + 4)). 16 bytes per finished trial are all the store keeps of a record. */
typedef struct {
    uint64_t index, slot;
} store_entry;

_Static_assert(sizeof(store_entry) == RS_STORE_ENTRY_BYTES, "store.h states the entry size");

struct rs_store {
    int fd;
    char *path;
    uint64_t trials, done, dropped, damaged;
    uint32_t arch_digest;       /* rs_job_arch_digest of the job */
    int64_t created;
    rs_grid_shard shard;
    rs_store_layout layout;
    size_t rec_bytes;           /* rs_store_record_bytes(&layout) */
    unsigned char *done_bits;   /* one bit per grid index */
    uint64_t failures;          /* stored trials whose last record's status is not RS_OK */
    rs_store_counts counts;     /* the same, by kind */
    uint64_t slots;             /* record slots in the file (damaged ones included) */
    store_entry *entries;       /* per stored trial (its last record), in journal order */
    size_t n_entries, cap_entries;
    /* trials whose last record could not run (rs_store_could_not_run): a bit per grid index
     * (so that most look-ups cost nothing), and how many records the journal holds for
     * each (a retry's record takes the trial's entry) */
    unsigned char *failed_bits;
    uint64_t *failed_index;
    uint32_t *failed_attempts;
    size_t n_failed, cap_failed;
};

/* A header's fields. */
typedef struct {
    uint32_t version, rec_bytes, bom, arch_digest;
    uint64_t hash, trials;
    int64_t created;
    rs_grid_shard shard;
    char name[65];
} journal_header;

static uint32_t crc_of(const void *p, size_t n)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

static void encode_header(unsigned char *h, const char *name, uint64_t hash,
                          uint32_t arch_digest, uint64_t trials, int64_t created, uint32_t rec,
                          const rs_grid_shard *shard)
{
    uint32_t version = JOURNAL_VERSION, bom = BYTE_ORDER_MARK;
    uint32_t shard_index = (uint32_t)shard->index, shard_count = (uint32_t)shard->count;
    memset(h, 0, HEADER_BYTES);
    memcpy(h, MAGIC, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &rec, 4);
    memcpy(h + 16, &bom, 4);
    memcpy(h + 20, &arch_digest, 4);
    memcpy(h + 24, &hash, 8);
    memcpy(h + 32, &trials, 8);
    memcpy(h + 40, &created, 8);
    strncpy((char *)h + 48, name, 63);
    memcpy(h + 112, &shard_index, 4);
    memcpy(h + 116, &shard_count, 4);
    uint32_t crc = crc_of(h, HEADER_CRC_AT);
    memcpy(h + HEADER_CRC_AT, &crc, 4);
}

/* Decode a header read from `path`: the magic and the CRC (where the header's format puts
 * it) are checked, nothing else. */
static int decode_header(const unsigned char *h, const char *path, journal_header *d,
                         char *err, size_t len)
{
    uint32_t crc, shard_index, shard_count;
    memset(d, 0, sizeof *d);
    if (memcmp(h, MAGIC, 8) != 0) {
        snprintf(err, len, "%s is not a repsweep journal (bad magic): move it away or use "
                 "another --out", path);
        return RS_E_INVALID;
    }
    memcpy(&d->version, h + 8, 4);
    memcpy(&d->rec_bytes, h + 12, 4);
    memcpy(&d->bom, h + 16, 4);
    memcpy(&d->arch_digest, h + 20, 4);
    memcpy(&d->hash, h + 24, 8);
    memcpy(&d->trials, h + 32, 8);
    memcpy(&d->created, h + 40, 8);
    memcpy(d->name, h + 48, 64);
    size_t crc_at = d->version == 1 ? HEADER_CRC_AT_V1 : HEADER_CRC_AT;
    memcpy(&crc, h + crc_at, 4);
    if (crc != crc_of(h, crc_at)) {
        snprintf(err, len, "%s: the journal header is corrupt (CRC mismatch): its results "
                 "cannot be trusted; move it away or use another --out", path);
        return RS_E_INVALID;
    }
    memcpy(&shard_index, h + 112, 4);
    memcpy(&shard_count, h + 116, 4);
    d->shard.index = d->version == 1 ? 0 : shard_index;
    d->shard.count = d->version == 1 ? 1 : shard_count;
    if (d->bom != BYTE_ORDER_MARK || d->version < 1 || d->version > JOURNAL_VERSION ||
        d->shard.count == 0 || d->shard.index >= d->shard.count) {
        snprintf(err, len, "%s: journal format %u from another repsweep version or machine; "
                 "this one reads formats 1 to %u", path, d->version, JOURNAL_VERSION);
        return RS_E_INVALID;
    }
    return RS_OK;
}

/* "shard I/N", or "the whole job (no --shard)" for 0/1. */
static void shard_text(const rs_grid_shard *s, char *buf, size_t len)
{
    if (s->count == 1)
        snprintf(buf, len, "the whole job (no --shard)");
    else
        snprintf(buf, len, "shard %llu/%llu", (unsigned long long)s->index,
                 (unsigned long long)s->count);
}

/* Check a header read from `path` against the job and shard; fills *created. */
static int check_header(const unsigned char *h, const char *path, const char *name,
                        uint64_t hash, uint32_t arch_digest, uint64_t trials, uint32_t rec_bytes,
                        const rs_grid_shard *shard, int64_t *created, char *err, size_t len)
{
    journal_header d;
    int st = decode_header(h, path, &d, err, len);
    if (st != RS_OK)
        return st;
    *created = d.created;
    if (d.hash != hash || strcmp(d.name, name) != 0) {
        snprintf(err, len, "%s was written by job '%s' (hash %016llx); this job is '%s' "
                 "(hash %016llx)%s: use another --out", path, d.name,
                 (unsigned long long)d.hash, name, (unsigned long long)hash,
                 strcmp(d.name, name) == 0 ? " (the job file's text differs)" : "");
        return RS_E_INVALID;
    }
    if (d.version >= 4 && d.arch_digest != arch_digest) {
        snprintf(err, len, "%s: the architecture records job '%s' uses have changed since it "
                 "was written (digest %08x, now %08x: was its architectures file edited?); "
                 "resuming would mix two different networks in one results file: restore the "
                 "file, or use another --out", path, name, (unsigned)d.arch_digest,
                 (unsigned)arch_digest);
        return RS_E_INVALID;
    }
    if (d.rec_bytes != rec_bytes && d.version < RECORDS_VERSION) {
        snprintf(err, len, "%s: journal format %u, written by an older repsweep whose records "
                 "(%u bytes) lack the theory curves this one records (%u bytes): finish that "
                 "run with the repsweep that started it, or start over with another --out (or "
                 "delete the journal)", path, d.version, d.rec_bytes, rec_bytes);
        return RS_E_INVALID;
    }
    if (d.rec_bytes != rec_bytes) {
        snprintf(err, len, "%s: journal records of %u bytes; this job's are %u bytes (a "
                 "different repsweep version?): use another --out", path, d.rec_bytes,
                 rec_bytes);
        return RS_E_INVALID;
    }
    if (d.trials != trials) {
        snprintf(err, len, "%s: job '%s' had %llu trials when the journal was written, now "
                 "%llu (a different repsweep version?): use another --out", path, name,
                 (unsigned long long)d.trials, (unsigned long long)trials);
        return RS_E_INVALID;
    }
    if (d.shard.index != shard->index || d.shard.count != shard->count) {
        char theirs[64], ours[64];
        shard_text(&d.shard, theirs, sizeof theirs);
        shard_text(shard, ours, sizeof ours);
        snprintf(err, len, "%s holds %s of job '%s', but this run is %s: every shard needs "
                 "its own --out; use another --out or the --shard it was made for", path,
                 theirs, name, ours);
        return RS_E_INVALID;
    }
    return RS_OK;
}

/* Read exactly n bytes unless the file ends; returns the bytes read or -1. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Write all n bytes (0) or fail (-1, errno set); *written (may be NULL) receives the bytes
 * written either way. */
static int write_full_counted(int fd, const void *buf, size_t n, size_t *written)
{
    size_t put = 0;
    int st = 0;
    while (put < n) {
        ssize_t w = write(fd, (const char *)buf + put, n - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            st = -1;
            break;
        }
        put += (size_t)w;
    }
    if (written)
        *written = put;
    return st;
}

static int write_full(int fd, const void *buf, size_t n)
{
    return write_full_counted(fd, buf, n, NULL);
}

int rs_store_sync_path(const char *path, int dir)
{
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return -1;
    if (dir) {
        char *slash = strrchr(buf, '/');
        if (!slash)
            snprintf(buf, sizeof buf, ".");
        else if (slash == buf)
            slash[1] = 0;
        else
            *slash = 0;
    }
    int fd = open(buf, O_RDONLY);
    if (fd < 0)
        return -1;
    int st = fsync(fd);
    close(fd);
    return st;
}

int rs_store_could_not_run(int64_t status)
{
    return status < 0 && status != RS_E_ODE;
}

static int failed_bit(const rs_store *s, uint64_t index)
{
    return (s->failed_bits[index / 8] >> (index % 8)) & 1u;
}

/* The position of `index` among the trials whose last record could not run, or n_failed.
 * Linear, but only for trials whose failed bit is set (few, and each looked up rarely). */
static size_t failed_at(const rs_store *s, uint64_t index)
{
    if (index >= s->trials || !failed_bit(s, index))
        return s->n_failed;
    size_t i = 0;
    while (i < s->n_failed && s->failed_index[i] != index)
        i++;
    return i;
}

/* Is a record of `index` a retry of a stored trial whose last record could not run? */
static int is_retry(const rs_store *s, uint64_t index)
{
    return rs_store_is_done(s, index) && failed_at(s, index) < s->n_failed;
}

/* Count a trial's last record by kind (sign +1), or take it back (-1). */
static void count_status(rs_store *s, int64_t status, int sign)
{
    rs_store_counts *c = &s->counts;
    uint64_t *k = status == RS_OK                 ? &c->ok
                  : rs_store_could_not_run(status) ? &c->could_not_run
                  : status == RS_S_DIVERGED        ? &c->diverged
                  : status == RS_S_FIT_FAILED      ? &c->fit_failed
                  : status == RS_S_COLLAPSED       ? &c->collapsed
                  : status == RS_E_ODE             ? &c->ode_error
                                                   : &c->other;
    *k += (uint64_t)(int64_t)sign;
    if (status != RS_OK)
        s->failures += (uint64_t)(int64_t)sign;
    if (sign > 0 && rs_store_could_not_run(status))
        c->could_not_run_example = status;
}

/* Keep the failed-trial list in step with record `rec` (a first record or a retry). */
static int note_failure(rs_store *s, const rs_store_record *rec)
{
    size_t at = failed_at(s, rec->index);
    uint32_t attempts = at < s->n_failed ? s->failed_attempts[at] + 1 : 1;
    if (at < s->n_failed && !rs_store_could_not_run(rec->status)) { /* ran: off the list */
        s->n_failed--;
        s->failed_index[at] = s->failed_index[s->n_failed];
        s->failed_attempts[at] = s->failed_attempts[s->n_failed];
        s->failed_bits[rec->index / 8] &= (unsigned char)~(1u << (rec->index % 8));
        return RS_OK;
    }
    if (!rs_store_could_not_run(rec->status))
        return RS_OK;
    if (at == s->n_failed) {
        if (s->n_failed == s->cap_failed) {
            size_t cap = s->cap_failed ? 2 * s->cap_failed : 64;
            uint64_t *ix = realloc(s->failed_index, cap * sizeof *ix);
            if (ix)
                s->failed_index = ix;
            uint32_t *na = ix ? realloc(s->failed_attempts, cap * sizeof *na) : NULL;
            if (!na)
                return RS_E_NOMEM;
            s->failed_attempts = na;
            s->cap_failed = cap;
        }
        s->failed_index[s->n_failed++] = rec->index;
        s->failed_bits[rec->index / 8] |= (unsigned char)(1u << (rec->index % 8));
    }
    s->failed_attempts[at] = attempts;
    return RS_OK;
}

/* A retry's record, stored in `slot`, takes its trial's entry: the results hold the last
 * attempt. Linear in the stored trials, once per retried trial. */
static int replace_entry(rs_store *s, const rs_store_record *r, uint64_t slot)
{
    for (size_t i = s->n_entries; i-- > 0;)
        if (s->entries[i].index == r->index) {
            s->entries[i].slot = slot;
            /* the record replaced could not run (is_retry) */
            count_status(s, RS_E_NOMEM, -1);
            count_status(s, r->status, +1);
            return note_failure(s, r);
        }
    return RS_E_INVALID; /* not reached: the index is marked done */
}

/* Note a record stored in `slot`: its entry (or a retry's replacement), its done bit, the
 * counts. */
static int mark_done(rs_store *s, const void *rec, uint64_t slot)
{
    const rs_store_record *r = rec;
    if (is_retry(s, r->index))
        return replace_entry(s, r, slot);
    if (s->n_entries == s->cap_entries) {
        size_t cap = s->cap_entries ? 2 * s->cap_entries : 1024;
        store_entry *p = realloc(s->entries, cap * sizeof *p);
        if (!p)
            return RS_E_NOMEM;
        s->entries = p;
        s->cap_entries = cap;
    }
    s->entries[s->n_entries++] = (store_entry){r->index, slot};
    s->done_bits[r->index / 8] |= (unsigned char)(1u << (r->index % 8));
    s->done++;
    count_status(s, r->status, +1);
    return note_failure(s, r);
}

/* Is `index` a trial of the journal's grid and shard? */
static int belongs(const rs_store *s, uint64_t index)
{
    return index < s->trials && rs_grid_shard_has(&s->shard, index);
}

/* Read the records after the header. A bad slot (CRC mismatch, or a trial outside this job
 * or shard, or one already read) is skipped, never a reason to stop: appends are sequential,
 * so a kill mid-append can only leave bad bytes after the last good record, and that tail is
 * truncated; a bad slot with a good record after it was damaged in place (counted in
 * s->damaged; its trial runs again) and every good record after it is kept. */
static int read_records(rs_store *s, char *err, size_t len)
{
    size_t slot_bytes = s->rec_bytes + 4;
    unsigned char *slot = malloc(slot_bytes);
    off_t at = HEADER_BYTES, good_end = HEADER_BYTES;
    uint64_t bad_since_good = 0;
    if (!slot)
        return RS_E_NOMEM;
    for (;; at += (off_t)slot_bytes) {
        ssize_t got = read_full(s->fd, slot, slot_bytes);
        if (got < 0) {
            snprintf(err, len, "%s: cannot read: %s", s->path, strerror(errno));
            free(slot);
            return RS_E_IO;
        }
        if ((size_t)got < slot_bytes)
            break;
        rs_store_record r;
        uint32_t crc;
        memcpy(&r, slot, RS_STORE_RECORD_BYTES);
        memcpy(&crc, slot + s->rec_bytes, 4);
        if (crc != crc_of(slot, s->rec_bytes) || !belongs(s, r.index) ||
            (rs_store_is_done(s, r.index) && !is_retry(s, r.index))) {
            bad_since_good++;
            continue;
        }
        if (mark_done(s, slot, (uint64_t)(at - HEADER_BYTES) / slot_bytes) != RS_OK) {
            free(slot);
            return RS_E_NOMEM;
        }
        s->damaged += bad_since_good;
        bad_since_good = 0;
        good_end = at + (off_t)slot_bytes;
    }
    free(slot);
    s->slots = (uint64_t)(good_end - HEADER_BYTES) / slot_bytes;
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        snprintf(err, len, "%s: cannot stat: %s", s->path, strerror(errno));
        return RS_E_IO;
    }
    if (st.st_size > good_end) {
        /* what follows the last good record is a kill mid-append: drop it */
        if (ftruncate(s->fd, good_end) != 0 || fsync(s->fd) != 0) {
            snprintf(err, len, "%s: cannot truncate its damaged tail: %s", s->path,
                     strerror(errno));
            return RS_E_IO;
        }
        s->dropped = (uint64_t)(st.st_size - good_end);
    }
    if (lseek(s->fd, 0, SEEK_END) < 0) {
        snprintf(err, len, "%s: cannot seek: %s", s->path, strerror(errno));
        return RS_E_IO;
    }
    return RS_OK;
}

static int open_existing(rs_store *s, const char *name, uint64_t hash, char *err, size_t len)
{
    unsigned char h[HEADER_BYTES];
    ssize_t got = read_full(s->fd, h, HEADER_BYTES);
    if (got < 0) {
        snprintf(err, len, "%s: cannot read: %s", s->path, strerror(errno));
        return RS_E_IO;
    }
    if (got < HEADER_BYTES) {
        snprintf(err, len, "%s is not a repsweep journal (%zd bytes, shorter than its "
                 "%d-byte header): move it away or use another --out", s->path, got,
                 HEADER_BYTES);
        return RS_E_INVALID;
    }
    int st = check_header(h, s->path, name, hash, s->arch_digest, s->trials,
                          (uint32_t)s->rec_bytes,
                          &s->shard, &s->created, err, len);
    return st == RS_OK ? read_records(s, err, len) : st;
}

static int create_new(rs_store *s, const char *name, uint64_t hash, char *err, size_t len)
{
    unsigned char h[HEADER_BYTES];
    s->created = (int64_t)time(NULL);
    encode_header(h, name, hash, s->arch_digest, s->trials, s->created,
                  (uint32_t)s->rec_bytes, &s->shard);
    if (write_full(s->fd, h, HEADER_BYTES) != 0 || fsync(s->fd) != 0) {
        snprintf(err, len, "%s: cannot write: %s", s->path, strerror(errno));
        return RS_E_IO;
    }
    rs_store_sync_path(s->path, 1); /* the new journal's directory entry */
    return RS_OK;
}

int rs_store_open(const char *path, const char *job_name, uint64_t job_hash,
                  uint32_t arch_digest, uint64_t trials,
                  const rs_store_layout *l, const rs_grid_shard *shard, rs_store **out,
                  char *err, size_t len)
{
    *out = NULL;
    if (shard->count == 0 || shard->count > UINT32_MAX || shard->index >= shard->count) {
        snprintf(err, len, "%s: shard %llu/%llu: expected 0 <= I < N < 2^32", path,
                 (unsigned long long)shard->index, (unsigned long long)shard->count);
        return RS_E_INVALID;
    }
    rs_store *s = calloc(1, sizeof *s);
    if (!s)
        return RS_E_NOMEM;
    s->fd = -1;
    s->trials = trials;
    s->arch_digest = arch_digest;
    s->shard = *shard;
    s->layout = *l;
    s->rec_bytes = rs_store_record_bytes(l);
    s->path = strdup(path);
    s->done_bits = calloc((size_t)(trials / 8 + 1), 1);
    s->failed_bits = calloc((size_t)(trials / 8 + 1), 1);
    if (!s->path || !s->done_bits || !s->failed_bits) {
        rs_store_close(&s);
        return RS_E_NOMEM;
    }
    int created = 0;
    s->fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (s->fd >= 0)
        created = 1;
    else if (errno == EEXIST)
        s->fd = open(path, O_RDWR);
    if (s->fd < 0) {
        snprintf(err, len, "cannot create %s: %s", path, strerror(errno));
        rs_store_close(&s);
        return RS_E_IO;
    }
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, len, "%s is in use by another repsweep run (locked)", path);
        rs_store_close(&s);
        return RS_E_IO;
    }
    int st = created ? create_new(s, job_name, job_hash, err, len)
                     : open_existing(s, job_name, job_hash, err, len);
    if (st != RS_OK) {
        if (created)
            unlink(path); /* never leave a headerless journal behind */
        rs_store_close(&s);
        return st;
    }
    *out = s;
    return RS_OK;
}

void rs_store_close(rs_store **store)
{
    rs_store *s = *store;
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd); /* releases the lock */
    free(s->path);
    free(s->done_bits);
    free(s->entries);
    free(s->failed_bits);
    free(s->failed_index);
    free(s->failed_attempts);
    free(s);
    *store = NULL;
}

/* After a failed append (a full disk): keep the k slots written whole if they can be made
 * durable, drop the partial one after them (truncating frees its space), and put the file
 * offset at the new end. Returns the slots kept (0 if even that fails: the next open finds
 * whatever is intact anyway). */
static size_t keep_complete_slots(rs_store *s, size_t k)
{
    off_t end = HEADER_BYTES + (off_t)((s->slots + k) * (s->rec_bytes + 4));
    if (ftruncate(s->fd, end) != 0 || fsync(s->fd) != 0 || lseek(s->fd, end, SEEK_SET) < 0)
        return 0;
    return k;
}

int rs_store_append(rs_store *s, const void *recs, size_t n, char *err, size_t len)
{
    if (n == 0)
        return RS_OK;
    for (size_t i = 0; i < n; i++) {
        uint64_t index = rs_store_record_at(recs, &s->layout, i)->index;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = rs_store_record_at(recs, &s->layout, j)->index == index;
        if (!belongs(s, index) || (rs_store_is_done(s, index) && !is_retry(s, index)) || dup) {
            snprintf(err, len, "%s: trial %llu is outside the grid or the shard, or already "
                     "stored (and ran)", s->path, (unsigned long long)index);
            return RS_E_INVALID;
        }
    }
    size_t slot_bytes = s->rec_bytes + 4;
    unsigned char *buf = malloc(n * slot_bytes);
    if (!buf)
        return RS_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        unsigned char *slot = buf + i * slot_bytes;
        memcpy(slot, rs_store_record_at(recs, &s->layout, i), s->rec_bytes);
        uint32_t crc = crc_of(slot, s->rec_bytes);
        memcpy(slot + s->rec_bytes, &crc, 4);
    }
    size_t written = 0;
    int bad = write_full_counted(s->fd, buf, n * slot_bytes, &written) != 0 ||
              fsync(s->fd) != 0;
    free(buf);
    size_t stored = n;
    if (bad) {
        int reason = errno;
        stored = keep_complete_slots(s, written / slot_bytes);
        snprintf(err, len, "%s: cannot append: %s (%zu of the %zu records of this batch kept)",
                 s->path, strerror(reason), stored, n);
    }
    for (size_t i = 0; i < stored; i++)
        if (mark_done(s, rs_store_record_at(recs, &s->layout, i), s->slots + i) != RS_OK)
            return RS_E_NOMEM;
    s->slots += stored;
    return bad ? RS_E_IO : RS_OK;
}

int rs_store_is_done(const rs_store *s, uint64_t index)
{
    return index < s->trials && (s->done_bits[index / 8] >> (index % 8)) & 1u;
}

unsigned rs_store_failed_attempts(const rs_store *s, uint64_t index)
{
    size_t at = failed_at(s, index);
    return at < s->n_failed ? s->failed_attempts[at] : 0;
}

int rs_store_wants(const rs_store *s, uint64_t index, unsigned max_attempts)
{
    if (!rs_store_is_done(s, index))
        return 1;
    unsigned attempts = rs_store_failed_attempts(s, index);
    return attempts > 0 && attempts < max_attempts;
}

uint64_t rs_store_done_count(const rs_store *s) { return s->done; }
uint64_t rs_store_trial_count(const rs_store *s) { return s->trials; }
uint64_t rs_store_dropped_bytes(const rs_store *s) { return s->dropped; }
uint64_t rs_store_damaged_records(const rs_store *s) { return s->damaged; }
int64_t rs_store_created(const rs_store *s) { return s->created; }

uint64_t rs_store_failed_count(const rs_store *s) { return s->failures; }

void rs_store_counts_get(const rs_store *s, unsigned max_attempts, rs_store_counts *c)
{
    *c = s->counts;
    c->retries = 0;
    for (size_t i = 0; i < s->n_failed; i++)
        c->retries += s->failed_attempts[i] < max_attempts;
}

/* --- snapshots: the stored records, streamed back in grid order --- */

struct rs_store_snapshot {
    int fd;                     /* the journal, opened read-only for the snapshot */
    char *path;
    rs_store_layout layout;
    size_t rec_bytes, n, sorted;
    store_entry *entries;       /* n, sorted by grid index on the first read */
    unsigned char *slots;       /* scratch: SNAPSHOT_RUN slots */
};

enum { SNAPSHOT_RUN = 256 }; /* slots read by one pread at most */

static int by_entry_index(const void *a, const void *b)
{
    uint64_t x = ((const store_entry *)a)->index, y = ((const store_entry *)b)->index;
    return (x > y) - (x < y);
}

int rs_store_snapshot_take(const rs_store *s, rs_store_snapshot **out, char *err, size_t len)
{
    rs_store_snapshot *snap = calloc(1, sizeof *snap);
    *out = NULL;
    if (!snap)
        return RS_E_NOMEM;
    snap->fd = -1;
    snap->layout = s->layout;
    snap->rec_bytes = s->rec_bytes;
    snap->n = s->n_entries;
    snap->path = strdup(s->path);
    snap->entries = malloc((snap->n ? snap->n : 1) * sizeof *snap->entries);
    snap->slots = malloc(SNAPSHOT_RUN * (s->rec_bytes + 4));
    if (!snap->path || !snap->entries || !snap->slots) {
        rs_store_snapshot_free(&snap);
        return RS_E_NOMEM;
    }
    memcpy(snap->entries, s->entries, snap->n * sizeof *snap->entries);
    if ((snap->fd = open(s->path, O_RDONLY)) < 0) {
        snprintf(err, len, "cannot open %s: %s", s->path, strerror(errno));
        rs_store_snapshot_free(&snap);
        return RS_E_IO;
    }
    *out = snap;
    return RS_OK;
}

size_t rs_store_snapshot_count(const rs_store_snapshot *snap) { return snap->n; }

const rs_store_layout *rs_store_snapshot_layout(const rs_store_snapshot *snap)
{
    return &snap->layout;
}

int rs_store_snapshot_read(rs_store_snapshot *snap, size_t first, size_t n, void *recs,
                           char *err, size_t len)
{
    size_t slot_bytes = snap->rec_bytes + 4;
    if (!snap->sorted) {
        qsort(snap->entries, snap->n, sizeof *snap->entries, by_entry_index);
        snap->sorted = 1;
    }
    if (first > snap->n || n > snap->n - first) {
        snprintf(err, len, "%s: records %zu..%zu of a snapshot of %zu", snap->path, first,
                 first + n, snap->n);
        return RS_E_INVALID;
    }
    for (size_t i = 0; i < n;) {
        /* a run of consecutive slots (a one-rank sweep stores most trials in grid order)
         * is one read */
        const store_entry *e = &snap->entries[first + i];
        size_t run = 1;
        while (i + run < n && run < SNAPSHOT_RUN && e[run].slot == e[0].slot + run)
            run++;
        off_t at = HEADER_BYTES + (off_t)(e[0].slot * slot_bytes);
        size_t want = run * slot_bytes, got = 0;
        while (got < want) {
            ssize_t r = pread(snap->fd, snap->slots + got, want - got, at + (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                snprintf(err, len, "%s: cannot read: %s", snap->path,
                         r < 0 ? strerror(errno) : "the journal is shorter than its records");
                return RS_E_IO;
            }
            got += (size_t)r;
        }
        for (size_t k = 0; k < run; k++) {
            const unsigned char *slot = snap->slots + k * slot_bytes;
            uint32_t crc;
            uint64_t index;
            memcpy(&crc, slot + snap->rec_bytes, 4);
            memcpy(&index, slot, 8);
            if (crc != crc_of(slot, snap->rec_bytes) || index != e[k].index) {
                snprintf(err, len, "%s: the record of trial %llu changed on disk since it was "
                         "stored (slot %llu): rerun to recheck the journal", snap->path,
                         (unsigned long long)e[k].index, (unsigned long long)e[k].slot);
                return RS_E_IO;
            }
            memcpy((unsigned char *)recs + (i + k) * snap->rec_bytes, slot, snap->rec_bytes);
        }
        i += run;
    }
    return RS_OK;
}

void rs_store_snapshot_free(rs_store_snapshot **snap)
{
    rs_store_snapshot *s = *snap;
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s->entries);
    free(s->slots);
    free(s);
    *snap = NULL;
}

const rs_store_layout *rs_store_layout_get(const rs_store *s) { return &s->layout; }

const rs_grid_shard *rs_store_shard(const rs_store *s) { return &s->shard; }

uint64_t rs_store_expected_count(const rs_store *s)
{
    return rs_grid_shard_trials(&s->shard, 0, s->trials);
}

int rs_store_peek(const char *path, rs_store_peek_info *info, char *err, size_t len)
{
    unsigned char h[HEADER_BYTES];
    journal_header d;
    struct stat st;
    memset(info, 0, sizeof *info);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, len, "cannot open %s: %s", path, strerror(errno));
        return RS_E_IO;
    }
    ssize_t got = read_full(fd, h, HEADER_BYTES);
    int fst = fstat(fd, &st);
    close(fd);
    if (got < 0 || fst != 0) {
        snprintf(err, len, "%s: cannot read: %s", path, strerror(errno));
        return RS_E_IO;
    }
    if (got < HEADER_BYTES) {
        snprintf(err, len, "%s is not a repsweep journal (%zd bytes, shorter than its %d-byte "
                 "header)", path, got, HEADER_BYTES);
        return RS_E_INVALID;
    }
    int status = decode_header(h, path, &d, err, len);
    if (status != RS_OK)
        return status;
    info->job_hash = d.hash;
    info->trials = d.trials;
    info->shard = d.shard;
    /* by size: damaged slots kept between intact records are counted too, so clamp to the
     * trials the journal can hold */
    uint64_t slots = (uint64_t)(st.st_size - HEADER_BYTES) / (d.rec_bytes + 4u);
    uint64_t most = rs_grid_shard_trials(&d.shard, 0, d.trials);
    info->records = slots < most ? slots : most;
    return RS_OK;
}
