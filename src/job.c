/* job.c — configuration files through libconfig (see job.h): architecture records and job
 * files. Every error goes through fail_at, so that it reads "file:line: what was expected". */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "repsweep/job.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* access */

#include "repsweep/status.h"

#define N_OF(a) (sizeof(a) / sizeof *(a))

/* "file:line: message" into err (line <= 0: "file: message"); returns status. */
static int fail_at(char *err, size_t len, const char *file, int line, int status,
                   const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && len && line > 0)
        snprintf(err, len, "%s:%d: %s", file, line, msg);
    else if (err && len)
        snprintf(err, len, "%s: %s", file, msg);
    return status;
}

static int line_of(const config_setting_t *s)
{
    return (int)config_setting_source_line(s);
}

/* The whole of `path` into *text, NUL-terminated (the caller frees it). `what` names the
 * file's role in messages ("job file", "architectures file"). */
static int read_text(const char *path, const char *what, char **text, char *err, size_t len)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail_at(err, len, path, 0, RS_E_IO, "cannot open the %s (%s)", what,
                       strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int read_errno = 0;
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (ferror(f)) {
            read_errno = errno;
            break;
        }
        if (n < cap - 1)
            break;
        char *grown = realloc(buf, cap *= 2);
        if (!grown)
            free(buf);
        buf = grown;
    }
    fclose(f);
    if (!buf)
        return RS_E_NOMEM;
    if (read_errno) {
        free(buf);
        return fail_at(err, len, path, 0, RS_E_IO, "cannot read the %s (%s)", what,
                       strerror(read_errno));
    }
    buf[n] = 0;
    if (strlen(buf) != n) {
        free(buf);
        return fail_at(err, len, path, 0, RS_E_PARSE, "the %s is not a text file", what);
    }
    *text = buf;
    return RS_OK;
}

/* The setting name that line `line` (1-based) of `text` starts with, into key (empty if
 * the line does not start with one). */
static void line_key(const char *text, int line, char *key, size_t key_len)
{
    for (int l = 1; l < line && text; l++) {
        text = strchr(text, '\n');
        text = text ? text + 1 : NULL;
    }
    size_t n = 0;
    while (text && (*text == ' ' || *text == '\t'))
        text++;
    while (text && n + 1 < key_len &&
           (isalnum((unsigned char)text[n]) || text[n] == '_' || text[n] == '-' || text[n] == '*'))
        n++;
    if (key_len > 0) {
        if (n > 0)
            memcpy(key, text, n);
        key[n] = 0;
    }
}

/* libconfig 1.5 reads an integer literal without the L suffix into 32 bits and one with it
 * into 64, silently wrapping what does not fit (`units = 4294967346` becomes 50,
 * 2147483648 becomes -2147483648). So every integer literal of the text is checked here, in
 * full width, before a value is used: RS_OK, or "file:line: KEY = LITERAL is out of range
 * ...". Strings and comments (#, //, slash-star) are skipped; a decimal point or an exponent
 * makes a float, which libconfig reads as a double. */
static int check_integer_literals(const char *path, const char *text, char *err, size_t len)
{
    char key[64] = "", ident[64] = "";
    int line = 1;
    for (const char *p = text; *p;) {
        if (*p == '\n') {
            line++;
            p++;
        } else if (*p == '"') { /* a string: up to the closing quote, past escapes */
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (*p == '\n')
                    line++;
            }
            p += *p == '"';
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            p += strcspn(p, "\n");
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            const char *stop = end ? end + 2 : p + strlen(p);
            for (; p < stop; p++)
                line += *p == '\n';
        } else if (isalpha((unsigned char)*p) || *p == '*') { /* a setting's name or a word */
            size_t n = 0;
            while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '-' || p[n] == '*')
                n++;
            snprintf(ident, sizeof ident, "%.*s", (int)n, p);
            p += n;
        } else if (*p == '=' || *p == ':') {
            snprintf(key, sizeof key, "%s", ident);
            p++;
        } else if (isdigit((unsigned char)*p) || ((*p == '-' || *p == '+' || *p == '.') &&
                                                  isdigit((unsigned char)p[1]))) {
            const char *start = p;
            int hex = (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')), is_float = 0;
            p += (*p == '-' || *p == '+');
            while (isalnum((unsigned char)*p) || *p == '.' ||
                   ((*p == '-' || *p == '+') && !hex && (p[-1] == 'e' || p[-1] == 'E'))) {
                is_float |= *p == '.' || (!hex && (*p == 'e' || *p == 'E'));
                p++;
            }
            if (is_float)
                continue;
            const int wide = p[-1] == 'L' || p[-1] == 'l';
            char literal[64];
            snprintf(literal, sizeof literal, "%.*s", (int)(p - start), start);
            errno = 0;
            char *end;
            long long v = strtoll(literal, &end, hex ? 16 : 10);
            const int overflow = errno == ERANGE;
            if (!overflow && (wide || (v >= INT32_MIN && v <= INT32_MAX)))
                continue;
            char shown[96];
            snprintf(shown, sizeof shown, "%s%s%s", key[0] ? "'" : "", key[0] ? key : "a value",
                     key[0] ? "'" : "");
            if (wide)
                return fail_at(err, len, path, line, RS_E_PARSE, "%s = %s is out of range: a "
                               "64-bit integer (L suffix) must be in [%lld, %lld]", shown,
                               literal, (long long)INT64_MIN, (long long)INT64_MAX);
            return fail_at(err, len, path, line, RS_E_PARSE, "%s = %s is out of range: an "
                           "integer must be in [%d, %d] (libconfig would silently wrap it)",
                           shown, literal, INT32_MIN, INT32_MAX);
        } else {
            p++;
        }
    }
    return RS_OK;
}

/* Parse `text` (read from `path`) into cfg (initialised by the caller). */
static int parse_text(config_t *cfg, const char *path, const char *text, char *err, size_t len)
{
    if (config_read_string(cfg, text) == CONFIG_TRUE)
        return check_integer_literals(path, text, err, len);
    const char *msg = config_error_text(cfg);
    const int line = config_error_line(cfg);
    char key[64] = "", hint[160] = "";
    if (strstr(msg, "mismatched element type")) /* libconfig 1.5 rejects [1, 2.5] */
        snprintf(hint, sizeof hint, " (every element of an array [...] must have the same "
                 "type: write 1.0, not 1, among decimals)");
    else if (strstr(msg, "duplicate setting name")) { /* libconfig does not say which */
        line_key(text, line, key, sizeof key);
        if (key[0])
            snprintf(hint, sizeof hint, " '%s' (a key may appear once in each group)", key);
    }
    return fail_at(err, len, path, line, RS_E_PARSE, "%s%s", msg, hint);
}

/* RS_OK if every member of group g is one of keys[0..n); else names the unknown key, where
 * it is and the keys that are allowed there. */
static int check_keys(const config_setting_t *g, const char *const *keys, size_t n,
                      const char *where, const char *file, char *err, size_t len)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(s);
        size_t k = 0;
        while (k < n && strcmp(key, keys[k]) != 0)
            k++;
        if (k < n)
            continue;
        char expected[512];
        size_t used = 0;
        expected[0] = 0;
        for (k = 0; k < n && used < sizeof expected; k++)
            used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s",
                                     k ? ", " : "", keys[k]);
        return fail_at(err, len, file, line_of(s), RS_E_PARSE,
                       "unknown key '%s' in %s (expected one of %s)", key, where, expected);
    }
    return RS_OK;
}

static const char *const arch_keys[] = {"name", "activation", "hidden_layers", "units",
                                        "conv_channels", "conv_kernel", "skip", "dropout",
                                        "gain", "lr", "epochs"};

/* A number setting (int or float) as double; RS_E_PARSE if it has another type. */
static int number_of(const config_setting_t *s, double *out)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT: *out = config_setting_get_int(s); return RS_OK;
    case CONFIG_TYPE_INT64: *out = (double)config_setting_get_int64(s); return RS_OK;
    case CONFIG_TYPE_FLOAT: *out = config_setting_get_float(s); return RS_OK;
    default: return RS_E_PARSE;
    }
}

static int parse_arch(const config_setting_t *g, const char *file, rs_arch *a, char *err,
                      size_t len)
{
    memset(a, 0, sizeof *a);
    int line = (int)config_setting_source_line(g);
    int st = check_keys(g, arch_keys, N_OF(arch_keys), "architecture", file, err, len);
    if (st != RS_OK)
        return st;
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(s);
        int kline = (int)config_setting_source_line(s);
        if (strcmp(key, "name") == 0 || strcmp(key, "activation") == 0) {
            const char *v = config_setting_get_string(s);
            if (!v)
                return fail_at(err, len, file, kline, RS_E_PARSE, "'%s' must be a string", key);
            if (key[0] == 'n') {
                if (strlen(v) == 0 || strlen(v) >= sizeof a->name)
                    return fail_at(err, len, file, kline, RS_E_PARSE,
                                   "name must have 1 to %d characters", RS_ARCH_NAME_MAX - 1);
                snprintf(a->name, sizeof a->name, "%s", v);
            } else if (rs_activation_from_name(v, &a->activation) != RS_OK) {
                return fail_at(err, len, file, kline, RS_E_PARSE,
                               "unknown activation '%s' (expected leaky_relu, relu, elu, tanh, "
                               "swish or identity)", v);
            }
            continue;
        }
        if (strcmp(key, "skip") == 0) {
            if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return fail_at(err, len, file, kline, RS_E_PARSE, "'skip' must be true or false");
            a->skip = config_setting_get_bool(s);
            continue;
        }
        double v;
        if (number_of(s, &v) != RS_OK)
            return fail_at(err, len, file, kline, RS_E_PARSE, "'%s' must be a number", key);
        int integral = strcmp(key, "dropout") && strcmp(key, "gain") && strcmp(key, "lr");
        /* checked in full width before the narrowing casts below */
        const double max = strcmp(key, "epochs") == 0 ? 1e8 : (double)INT32_MAX;
        if (integral && !(v >= 0 && v <= max && v == floor(v)))
            return fail_at(err, len, file, kline, RS_E_PARSE,
                           "'%s' must be an integer in [0, %.0f], got %.17g", key, max, v);
        if (strcmp(key, "hidden_layers") == 0) a->hidden_layers = (int)v;
        else if (strcmp(key, "units") == 0) a->units = (int)v;
        else if (strcmp(key, "conv_channels") == 0) a->conv_channels = (int)v;
        else if (strcmp(key, "conv_kernel") == 0) a->conv_kernel = (int)v;
        else if (strcmp(key, "epochs") == 0) a->epochs = (long)v;
        else if (strcmp(key, "dropout") == 0) a->dropout = v;
        else if (strcmp(key, "gain") == 0) a->gain = v;
        else if (strcmp(key, "lr") == 0) a->lr = v;
    }
    if (a->name[0] == 0)
        return fail_at(err, len, file, line, RS_E_PARSE, "architecture without a 'name'");
    char why[256];
    if (rs_arch_validate(a, why, sizeof why) != RS_OK)
        return fail_at(err, len, file, line, RS_E_PARSE, "architecture '%s': %s", a->name, why);
    if (!(a->gain > 0) || !(a->lr > 0) || a->epochs < 1)
        return fail_at(err, len, file, line, RS_E_PARSE,
                       "architecture '%s': gain, lr and epochs must be positive", a->name);
    return RS_OK;
}

int rs_arch_table_load(const char *path, rs_arch_table *table, char *err, size_t len)
{
    memset(table, 0, sizeof *table);
    char *text;
    int st = read_text(path, "architectures file", &text, err, len);
    if (st != RS_OK)
        return st;
    config_t cfg;
    config_init(&cfg);
    st = parse_text(&cfg, path, text, err, len);
    free(text);
    if (st != RS_OK)
        goto done;
    const config_setting_t *list = config_lookup(&cfg, "architectures");
    if (!list || !config_setting_is_list(list)) {
        st = fail_at(err, len, path, 1, RS_E_PARSE,
                     "expected a list 'architectures = ( { name = ...; ... }, ... );'");
        goto done;
    }
    int n = config_setting_length(list);
    table->arch = calloc(n > 0 ? (size_t)n : 1, sizeof *table->arch);
    if (!table->arch) {
        st = RS_E_NOMEM;
        goto done;
    }
    for (int i = 0; i < n && st == RS_OK; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (!config_setting_is_group(g)) {
            st = fail_at(err, len, path, (int)config_setting_source_line(g), RS_E_PARSE,
                         "expected a group { ... } for each architecture");
            break;
        }
        st = parse_arch(g, path, &table->arch[i], err, len);
        if (st == RS_OK && rs_arch_table_find(table, table->arch[i].name))
            st = fail_at(err, len, path, (int)config_setting_source_line(g), RS_E_PARSE,
                         "architecture '%s' defined twice", table->arch[i].name);
        if (st == RS_OK)
            table->count = i + 1;
    }
done:
    config_destroy(&cfg);
    if (st != RS_OK)
        rs_arch_table_free(table);
    return st;
}

void rs_arch_table_free(rs_arch_table *table)
{
    free(table->arch);
    table->arch = NULL;
    table->count = 0;
}

#define RS_STR2(x) #x
#define RS_STR(x) RS_STR2(x)
const char *rs_job_libconfig_version(void)
{
    return RS_STR(LIBCONFIG_VER_MAJOR) "." RS_STR(LIBCONFIG_VER_MINOR) "." RS_STR(
        LIBCONFIG_VER_REVISION);
}

const rs_arch *rs_arch_table_find(const rs_arch_table *table, const char *name)
{
    for (int i = 0; i < table->count; i++)
        if (strcmp(table->arch[i].name, name) == 0)
            return &table->arch[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Job files (jobs/README.md documents every key). */

/* What a number must be: for the check and for the message ("a number > 0"). */
typedef struct {
    double min, max;
    int min_open;       /* 1: min itself is excluded */
    int integral;
    const char *text;
} num_rule;

static const num_rule POSITIVE = {0, HUGE_VAL, 1, 0, "a number > 0"};
static const num_rule NON_NEGATIVE = {0, HUGE_VAL, 0, 0, "a number >= 0"};
static const num_rule ANY_NUMBER = {-HUGE_VAL, HUGE_VAL, 0, 0, "a finite number"};
static const num_rule EPOCHS = {1, 1e8, 0, 1, "an integer in [1, 100000000]"};
static const num_rule SEED = {0, 2147483647.0, 0, 1, "an integer in [0, 2147483647]"};
static const num_rule SEED_COUNT = {1, 2147483647.0, 0, 1, "an integer >= 1"};
static const num_rule STRIDE = {0, 1e8, 0, 1, "an integer >= 0"};

/* Loading state: the job file's name for messages, and the architectures file, read on the
 * first architecture looked up by name. */
typedef struct {
    const char *file;
    char *err;
    size_t len;
    rs_job *job;
    rs_arch_table table;
    int table_loaded;
    int arch_file_default;      /* the job does not set architectures_file */
    const char *fallback;       /* used when it doesn't and none is beside the job, or NULL */
} job_ctx;

static int fail(job_ctx *c, int line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail_at(c->err, c->len, c->file, line, RS_E_PARSE, "%s", msg);
}

/* A short description of what a setting holds, for "expected X, got Y". */
static void describe(const config_setting_t *s, char *buf, size_t len)
{
    double v;
    if (number_of(s, &v) == RS_OK)
        snprintf(buf, len, "%.17g", v);
    else if (config_setting_type(s) == CONFIG_TYPE_STRING)
        snprintf(buf, len, "the string \"%.40s\"", config_setting_get_string(s));
    else if (config_setting_type(s) == CONFIG_TYPE_BOOL)
        snprintf(buf, len, "%s", config_setting_get_bool(s) ? "true" : "false");
    else if (config_setting_is_group(s))
        snprintf(buf, len, "a group { ... }");
    else
        snprintf(buf, len, "a list");
}

static int get_number(job_ctx *c, const config_setting_t *s, const num_rule *r,
                      const char *what, double *out)
{
    double v;
    if (number_of(s, &v) != RS_OK || !isfinite(v) || v < r->min || v > r->max ||
        (r->min_open && v == r->min) || (r->integral && v != floor(v))) {
        char got[96];
        describe(s, got, sizeof got);
        return fail(c, line_of(s), "%s must be %s, got %s", what, r->text, got);
    }
    *out = v;
    return RS_OK;
}

static int get_string(job_ctx *c, const config_setting_t *s, const char *what,
                      const char **out)
{
    *out = config_setting_get_string(s);
    if (*out)
        return RS_OK;
    char got[96];
    describe(s, got, sizeof got);
    return fail(c, line_of(s), "%s must be a string \"...\", got %s", what, got);
}

static int get_bool(job_ctx *c, const config_setting_t *s, const char *what, int *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        char got[96];
        describe(s, got, sizeof got);
        return fail(c, line_of(s), "%s must be true or false, got %s", what, got);
    }
    *out = config_setting_get_bool(s);
    return RS_OK;
}

static int get_name(job_ctx *c, const config_setting_t *s, const char *what, char *out)
{
    const char *v;
    int st = get_string(c, s, what, &v);
    if (st != RS_OK)
        return st;
    if (strlen(v) == 0 || strlen(v) >= RS_JOB_NAME_MAX)
        return fail(c, line_of(s), "%s must have 1 to %d characters", what, RS_JOB_NAME_MAX - 1);
    snprintf(out, RS_JOB_NAME_MAX, "%s", v);
    return RS_OK;
}

/* A list of numbers under `key`: an array [...] or list (...) of at least one number, or a
 * single number (one value). With `distinct`, no value may appear twice (a grid axis). */
static int get_values(job_ctx *c, const config_setting_t *s, const char *key,
                      const num_rule *r, int distinct, rs_values *out)
{
    char what[96];
    int n = config_setting_is_aggregate(s) ? config_setting_length(s) : 1;
    if (config_setting_is_group(s) || config_setting_type(s) == CONFIG_TYPE_STRING ||
        config_setting_type(s) == CONFIG_TYPE_BOOL) {
        char got[96];
        describe(s, got, sizeof got);
        return fail(c, line_of(s), "'%s' must be a list of numbers [...] (each %s), got %s",
                    key, r->text, got);
    }
    if (n == 0)
        return fail(c, line_of(s), "'%s' is empty (expected at least one value, each %s)",
                    key, r->text);
    out->v = malloc((size_t)n * sizeof *out->v);
    if (!out->v)
        return RS_E_NOMEM;
    out->n = n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e =
            config_setting_is_aggregate(s) ? config_setting_get_elem(s, (unsigned)i) : s;
        if (config_setting_is_aggregate(s))
            snprintf(what, sizeof what, "element %d of '%s'", i + 1, key);
        else
            snprintf(what, sizeof what, "'%s'", key);
        int st = get_number(c, e, r, what, &out->v[i]);
        if (st != RS_OK)
            return st;
        for (int j = 0; distinct && j < i; j++)
            if (out->v[j] == out->v[i])
                return fail(c, line_of(e),
                            "'%s' lists %.15g twice (the values of a grid axis must differ)",
                            key, out->v[i]);
    }
    return RS_OK;
}

/* g, the value of `key`, must be a group holding only keys[0..n). */
static int check_group(job_ctx *c, const config_setting_t *g, const char *key,
                       const char *const *keys, size_t n)
{
    if (!config_setting_is_group(g))
        return fail(c, line_of(g), "'%s' must be a group { %s = ...; ... }", key, keys[0]);
    char where[64];
    snprintf(where, sizeof where, "'%s'", key);
    return check_keys(g, keys, n, where, c->file, c->err, c->len);
}

/* seeds = [0, 1, 2]; or seeds = { first = 0; count = 50; }; */
static int get_seeds(job_ctx *c, const config_setting_t *s, rs_seeds *out)
{
    static const char *const seed_keys[] = {"first", "count"};
    if (config_setting_is_group(s)) {
        int st = check_group(c, s, "seeds", seed_keys, N_OF(seed_keys));
        const config_setting_t *first = config_setting_get_member(s, "first");
        const config_setting_t *count = config_setting_get_member(s, "count");
        double v = 0;
        if (st == RS_OK && !count)
            st = fail(c, line_of(s), "'seeds' needs 'count' (%s)", SEED_COUNT.text);
        if (st == RS_OK && first)
            st = get_number(c, first, &SEED, "'first' of 'seeds'", &v);
        out->first = (long)v;
        if (st == RS_OK)
            st = get_number(c, count, &SEED_COUNT, "'count' of 'seeds'", &v);
        out->count = (long)v;
        if (st == RS_OK && (double)out->first + (double)out->count - 1 > SEED.max)
            st = fail(c, line_of(s), "'seeds' run past %.0f", SEED.max);
        return st;
    }
    rs_values list = {NULL, 0};
    int st = get_values(c, s, "seeds", &SEED, 1, &list);
    if (st == RS_OK && !(out->list = malloc((size_t)list.n * sizeof *out->list)))
        st = RS_E_NOMEM;
    for (int i = 0; st == RS_OK && i < list.n; i++)
        out->list[i] = (long)list.v[i];
    if (st == RS_OK)
        out->count = list.n;
    free(list.v);
    return st;
}

static int arch_same(const rs_arch *a, const rs_arch *b)
{
    return strcmp(a->name, b->name) == 0 && a->activation == b->activation &&
           a->hidden_layers == b->hidden_layers && a->units == b->units &&
           a->conv_channels == b->conv_channels && a->conv_kernel == b->conv_kernel &&
           a->skip == b->skip && a->dropout == b->dropout && a->gain == b->gain &&
           a->lr == b->lr && a->epochs == b->epochs;
}

/* Load the architectures file once; errors name the job file's line that needed it. */
static int need_table(job_ctx *c, int line)
{
    if (c->table_loaded)
        return RS_OK;
    char inner[768];
    int st = rs_arch_table_load(c->job->architectures_file, &c->table, inner, sizeof inner);
    if (st != RS_OK)
        return fail_at(c->err, c->len, c->file, line, st, "architectures file: %s%s", inner,
                       c->arch_file_default ? " (the default: architectures.cfg beside the job "
                       "file, else the installed one: set architectures_file to the one you "
                       "mean, e.g. the path of jobs/architectures.cfg)" : "");
    c->table_loaded = 1;
    return RS_OK;
}

/* One element of a block's `architectures`: a name from the architectures file or an inline
 * record, into *a; then checked against the job's other architectures. */
static int get_arch(job_ctx *c, const config_setting_t *e, int block, rs_arch *a)
{
    int st;
    if (config_setting_is_group(e)) {
        st = parse_arch(e, c->file, a, c->err, c->len);
    } else {
        const char *name;
        st = get_string(c, e, "each element of 'architectures' (a name or an inline "
                              "{ name = ...; ... })", &name);
        if (st == RS_OK)
            st = need_table(c, line_of(e));
        if (st != RS_OK)
            return st;
        const rs_arch *found = rs_arch_table_find(&c->table, name);
        if (!found) {
            char known[512];
            size_t used = 0;
            known[0] = 0;
            for (int i = 0; i < c->table.count && used < sizeof known; i++)
                used += (size_t)snprintf(known + used, sizeof known - used, "%s%s",
                                         i ? ", " : "", c->table.arch[i].name);
            return fail(c, line_of(e), "unknown architecture '%s' (not in %s; known: %s)", name,
                        c->job->architectures_file, known);
        }
        *a = *found;
    }
    if (st != RS_OK)
        return st;
    const rs_job_block *b = &c->job->blocks[block];
    for (int i = 0; i < b->n_arch; i++)
        if (strcmp(b->arch[i].name, a->name) == 0)
            return fail(c, line_of(e), "architecture '%s' appears twice in block '%s'", a->name,
                        b->name);
    for (int k = 0; k < block; k++)
        for (int i = 0; i < c->job->blocks[k].n_arch; i++) {
            const rs_arch *o = &c->job->blocks[k].arch[i];
            if (strcmp(o->name, a->name) == 0 && !arch_same(o, a))
                return fail(c, line_of(e),
                            "architecture '%s' differs from the one of that name in block "
                            "'%s' (give a changed architecture its own name)",
                            a->name, c->job->blocks[k].name);
        }
    return RS_OK;
}

static int get_architectures(job_ctx *c, const config_setting_t *s, int block)
{
    rs_job_block *b = &c->job->blocks[block];
    int n = config_setting_is_aggregate(s) ? config_setting_length(s) : 1;
    if (config_setting_is_group(s) || (!config_setting_is_aggregate(s) &&
                                       config_setting_type(s) != CONFIG_TYPE_STRING)) {
        char got[96];
        describe(s, got, sizeof got);
        return fail(c, line_of(s), "'architectures' must be a list of names [\"narrow\", ...] "
                    "or ( \"narrow\", { name = ...; ... } ), got %s", got);
    }
    if (n == 0)
        return fail(c, line_of(s), "'architectures' is empty (expected at least one name)");
    b->arch = calloc((size_t)n, sizeof *b->arch);
    if (!b->arch)
        return RS_E_NOMEM;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e =
            config_setting_is_aggregate(s) ? config_setting_get_elem(s, (unsigned)i) : s;
        int st = get_arch(c, e, block, &b->arch[i]);
        if (st != RS_OK)
            return st;
        b->n_arch = i + 1;
    }
    return RS_OK;
}

/* lr or epochs of a network block: one number for every gain, or a list parallel to gains. */
static int get_per_gain(job_ctx *c, const config_setting_t *s, const char *key,
                        const num_rule *r, const rs_job_block *b, rs_values *out)
{
    int st = get_values(c, s, key, r, 0, out);
    if (st == RS_OK && config_setting_is_aggregate(s) && out->n != b->gains.n)
        st = b->gains.n == 0
                 ? fail(c, line_of(s), "'%s' is a list but the block has no 'gains' (give one "
                        "number, or 'gains' with one %s per gain)", key, key)
                 : fail(c, line_of(s), "'%s' has %d values but 'gains' has %d (give one %s per "
                        "gain, or a single number for all)", key, out->n, b->gains.n, key);
    return st;
}

/* A member of group g that must be there. */
static int required(job_ctx *c, const config_setting_t *g, const char *key, const char *where,
                    const char *expected, const config_setting_t **out)
{
    *out = config_setting_get_member(g, key);
    if (*out)
        return RS_OK;
    return fail(c, line_of(g), "%s needs '%s' (%s)", where, key, expected);
}

static const char *const network_keys[] = {"name", "theory_only", "architectures", "gains",
                                           "lr", "epochs", "input_gaps", "target_gaps",
                                           "seeds"};
static const char *const theory_keys[] = {"name", "theory_only", "rate_h", "rate_y", "dh2_0",
                                          "dyhat2_0", "w_0", "input_gaps", "target_gaps",
                                          "epochs"};

static int parse_network_block(job_ctx *c, const config_setting_t *g, int block,
                               const char *where)
{
    rs_job_block *b = &c->job->blocks[block];
    const config_setting_t *s;
    int st = required(c, g, "architectures", where, "a list of architecture names", &s);
    if (st == RS_OK)
        st = get_architectures(c, s, block);
    if (st == RS_OK && (s = config_setting_get_member(g, "gains")))
        st = get_values(c, s, "gains", &POSITIVE, 1, &b->gains);
    if (st == RS_OK && (s = config_setting_get_member(g, "lr")))
        st = get_per_gain(c, s, "lr", &POSITIVE, b, &b->lr);
    if (st == RS_OK && (s = config_setting_get_member(g, "epochs"))) {
        rs_values epochs = {NULL, 0};
        st = get_per_gain(c, s, "epochs", &EPOCHS, b, &epochs);
        if (st == RS_OK && !(b->epochs = malloc((size_t)epochs.n * sizeof *b->epochs)))
            st = RS_E_NOMEM;
        for (int i = 0; st == RS_OK && i < epochs.n; i++)
            b->epochs[i] = (long)epochs.v[i];
        if (st == RS_OK)
            b->n_epochs = epochs.n;
        free(epochs.v);
    }
    if (st == RS_OK)
        st = required(c, g, "seeds", where, "[0, 1, 2] or { first = 0; count = 50; }", &s);
    if (st == RS_OK)
        st = get_seeds(c, s, &b->seeds);
    return st;
}

static int parse_theory_block(job_ctx *c, const config_setting_t *g, rs_job_block *b,
                              const char *where)
{
    struct { const char *key; const num_rule *rule; rs_values *out; } axes[] = {
        {"rate_h", &POSITIVE, &b->rate_h}, {"rate_y", &POSITIVE, &b->rate_y},
        {"dh2_0", &POSITIVE, &b->dh2_0}, {"dyhat2_0", &NON_NEGATIVE, &b->dyhat2_0}};
    const config_setting_t *s;
    int st = RS_OK;
    for (size_t i = 0; st == RS_OK && i < N_OF(axes); i++) {
        char expected[64];
        snprintf(expected, sizeof expected, "a list of values, each %s", axes[i].rule->text);
        st = required(c, g, axes[i].key, where, expected, &s);
        if (st == RS_OK)
            st = get_values(c, s, axes[i].key, axes[i].rule, 1, axes[i].out);
    }
    if (st == RS_OK && (s = config_setting_get_member(g, "w_0")))
        st = get_values(c, s, "w_0", &ANY_NUMBER, 1, &b->w_0);
    double epochs = 0;
    if (st == RS_OK)
        st = required(c, g, "epochs", where, "the integration horizon, " "an integer >= 1", &s);
    if (st == RS_OK)
        st = get_number(c, s, &EPOCHS, "'epochs' of a theory-only block", &epochs);
    b->theory_epochs = (long)epochs;
    return st;
}

static int parse_block(job_ctx *c, const config_setting_t *g, int block)
{
    rs_job_block *b = &c->job->blocks[block];
    if (!config_setting_is_group(g))
        return fail(c, line_of(g), "expected a group { name = ...; ... } for each block");
    b->line = line_of(g);
    const config_setting_t *s = config_setting_get_member(g, "theory_only");
    int theory = 0, st = s ? get_bool(c, s, "'theory_only'", &theory) : RS_OK;
    b->kind = theory ? RS_BLOCK_THEORY : RS_BLOCK_NETWORK;
    const char *kind = theory ? "theory-only block" : "network block";
    if (st == RS_OK)
        st = theory ? check_keys(g, theory_keys, N_OF(theory_keys), kind, c->file, c->err,
                                 c->len)
                    : check_keys(g, network_keys, N_OF(network_keys), kind, c->file, c->err,
                                 c->len);
    if (st == RS_OK)
        st = required(c, g, "name", kind, "a string naming the block", &s);
    if (st == RS_OK)
        st = get_name(c, s, "a block's 'name'", b->name);
    for (int k = 0; st == RS_OK && k < block; k++)
        if (strcmp(c->job->blocks[k].name, b->name) == 0)
            st = fail(c, line_of(s), "block name '%s' is used twice (first at line %d)",
                      b->name, c->job->blocks[k].line);
    char where[RS_JOB_NAME_MAX + 32];
    snprintf(where, sizeof where, "block '%s'", b->name);
    if (st == RS_OK)
        st = theory ? parse_theory_block(c, g, b, where)
                    : parse_network_block(c, g, block, where);
    if (st == RS_OK)
        st = required(c, g, "input_gaps", where, "a list of values, each > 0", &s);
    if (st == RS_OK)
        st = get_values(c, s, "input_gaps", &POSITIVE, 1, &b->input_gaps);
    if (st == RS_OK)
        st = required(c, g, "target_gaps", where, "a list of values, each >= 0", &s);
    if (st == RS_OK)
        st = get_values(c, s, "target_gaps", &NON_NEGATIVE, 1, &b->target_gaps);
    return st;
}

/* The architectures file: `value` relative to the job file's directory (absolute as is). */
static int resolve_arch_file(job_ctx *c, const char *value)
{
    const char *slash = strrchr(c->file, '/');
    size_t dir = value[0] == '/' ? 0 : slash ? (size_t)(slash - c->file) + 1 : 0;
    char *path = malloc(dir + strlen(value) + 1);
    if (!path)
        return RS_E_NOMEM;
    memcpy(path, c->file, dir);
    strcpy(path + dir, value);
    c->job->architectures_file = path;
    return RS_OK;
}

static int parse_record(job_ctx *c, const config_setting_t *g)
{
    static const char *const keys[] = {"all_layers", "trajectory_stride"};
    int st = check_group(c, g, "record", keys, N_OF(keys));
    const config_setting_t *s;
    if (st == RS_OK && (s = config_setting_get_member(g, "all_layers")))
        st = get_bool(c, s, "'all_layers'", &c->job->all_layers);
    double stride = 0;
    if (st == RS_OK && (s = config_setting_get_member(g, "trajectory_stride")))
        st = get_number(c, s, &STRIDE, "'trajectory_stride'", &stride);
    c->job->trajectory_stride = (long)stride;
    return st;
}

static int parse_convergence(job_ctx *c, const config_setting_t *g)
{
    static const char *const keys[] = {"converge_loss", "stop_loss"};
    int st = check_group(c, g, "convergence", keys, N_OF(keys));
    const config_setting_t *s;
    if (st == RS_OK && (s = config_setting_get_member(g, "converge_loss")))
        st = get_number(c, s, &POSITIVE, "'converge_loss'", &c->job->converge_loss);
    if (st == RS_OK && (s = config_setting_get_member(g, "stop_loss")))
        st = get_number(c, s, &NON_NEGATIVE, "'stop_loss'", &c->job->stop_loss);
    return st;
}

static const char *const job_keys[] = {"name", "architectures_file", "precision", "record",
                                       "convergence", "blocks"};

static int parse_job(job_ctx *c, const config_setting_t *root)
{
    rs_job *job = c->job;
    int st = check_keys(root, job_keys, N_OF(job_keys), "the job file", c->file, c->err, c->len);
    const config_setting_t *s;
    if (st == RS_OK && !(s = config_setting_get_member(root, "name")))
        st = fail(c, 0, "missing required key 'name' (a string identifying the job)");
    if (st == RS_OK)
        st = get_name(c, s, "'name'", job->name);
    const char *value = "architectures.cfg";
    s = st == RS_OK ? config_setting_get_member(root, "architectures_file") : NULL;
    if (s)
        st = get_string(c, s, "'architectures_file'", &value);
    c->arch_file_default = s == NULL;
    if (st == RS_OK)
        st = resolve_arch_file(c, value);
    if (st == RS_OK && !s && c->fallback && access(job->architectures_file, R_OK) != 0) {
        char *fallback = strdup(c->fallback); /* not beside the job: the installed default */
        if (!fallback)
            return RS_E_NOMEM;
        free(job->architectures_file);
        job->architectures_file = fallback;
    }
    if (st == RS_OK && s) /* named explicitly: it must be readable even if no block uses it */
        st = need_table(c, line_of(s));
    if (st == RS_OK && (s = config_setting_get_member(root, "precision"))) {
        const char *p = "";
        st = get_string(c, s, "'precision'", &p);
        if (st == RS_OK && rs_precision_from_name(p, &job->precision) != RS_OK)
            st = fail(c, line_of(s), "'precision' must be \"float64\" or \"float32\", got \"%s\"",
                      p);
    }
    if (st == RS_OK && (s = config_setting_get_member(root, "record")))
        st = parse_record(c, s);
    if (st == RS_OK && (s = config_setting_get_member(root, "convergence")))
        st = parse_convergence(c, s);
    if (st == RS_OK && !(s = config_setting_get_member(root, "blocks")))
        st = fail(c, 0, "missing required key 'blocks' (a list ( { name = ...; ... }, ... ))");
    if (st != RS_OK)
        return st;
    if (!config_setting_is_list(s))
        return fail(c, line_of(s), "'blocks' must be a list ( { name = ...; ... }, ... )");
    int n = config_setting_length(s);
    if (n == 0)
        return fail(c, line_of(s), "'blocks' is empty: the job has no trials (expected at "
                    "least one block)");
    if (!(job->blocks = calloc((size_t)n, sizeof *job->blocks)))
        return RS_E_NOMEM;
    for (int i = 0; i < n && st == RS_OK; i++) {
        job->n_blocks = i + 1;
        st = parse_block(c, config_setting_get_elem(s, (unsigned)i), i);
    }
    return st;
}

int rs_job_load(const char *path, rs_job *job, char *err, size_t len)
{
    return rs_job_load_with_default(path, NULL, job, err, len);
}

int rs_job_load_with_default(const char *path, const char *default_arch_file, rs_job *job,
                             char *err, size_t len)
{
    memset(job, 0, sizeof *job);
    job->precision = RS_PRECISION_FLOAT64;
    job->converge_loss = 1e-3; /* the authors' threshold */
    job_ctx c = {path, err, len, job, {NULL, 0}, 0, 0, default_arch_file};
    int st = read_text(path, "job file", &job->text, err, len);
    if (st == RS_OK && !(job->path = strdup(path)))
        st = RS_E_NOMEM;
    if (st != RS_OK) {
        rs_job_free(job);
        return st;
    }
    config_t cfg;
    config_init(&cfg);
    st = parse_text(&cfg, path, job->text, err, len);
    if (st == RS_OK)
        st = parse_job(&c, config_root_setting(&cfg));
    if (st == RS_E_NOMEM)
        fail_at(err, len, path, 0, st, "out of memory");
    config_destroy(&cfg);
    rs_arch_table_free(&c.table);
    if (st != RS_OK)
        rs_job_free(job);
    return st;
}

/* FNV-1a over the records' fields written out as text (doubles to 17 digits: exact). */
uint32_t rs_job_arch_digest(const rs_job *job)
{
    uint64_t h = 1469598103934665603ULL;
    for (int b = 0; b < job->n_blocks; b++)
        for (int i = 0; i < job->blocks[b].n_arch; i++) {
            const rs_arch *a = &job->blocks[b].arch[i];
            char line[512];
            int n = snprintf(line, sizeof line, "%s %s %d %d %d %d %d %.17g %.17g %.17g %ld\n",
                             a->name, rs_activation_name(a->activation), a->hidden_layers,
                             a->units, a->conv_channels, a->conv_kernel, a->skip, a->dropout,
                             a->gain, a->lr, a->epochs);
            for (int k = 0; k < n && k < (int)sizeof line - 1; k++) {
                h ^= (unsigned char)line[k];
                h *= 1099511628211ULL;
            }
        }
    return (uint32_t)(h ^ (h >> 32));
}

void rs_job_free(rs_job *job)
{
    for (int i = 0; i < job->n_blocks; i++) {
        rs_job_block *b = &job->blocks[i];
        free(b->arch);
        free(b->gains.v);
        free(b->lr.v);
        free(b->epochs);
        free(b->seeds.list);
        free(b->rate_h.v);
        free(b->rate_y.v);
        free(b->dh2_0.v);
        free(b->dyhat2_0.v);
        free(b->w_0.v);
        free(b->input_gaps.v);
        free(b->target_gaps.v);
    }
    free(job->blocks);
    free(job->path);
    free(job->text);
    free(job->architectures_file);
    memset(job, 0, sizeof *job);
}

int rs_job_block_gain_count(const rs_job_block *b)
{
    return b->gains.n > 0 ? b->gains.n : 1;
}

double rs_job_block_gain(const rs_job_block *b, int arch, int gain)
{
    return b->gains.n > 0 ? b->gains.v[gain] : b->arch[arch].gain;
}

double rs_job_block_lr(const rs_job_block *b, int arch, int gain)
{
    return b->lr.n == 0 ? b->arch[arch].lr : b->lr.v[b->lr.n == 1 ? 0 : gain];
}

long rs_job_block_epochs(const rs_job_block *b, int arch, int gain)
{
    return b->n_epochs == 0 ? b->arch[arch].epochs : b->epochs[b->n_epochs == 1 ? 0 : gain];
}

long rs_seeds_at(const rs_seeds *s, long i)
{
    return s->list ? s->list[i] : s->first + i;
}
