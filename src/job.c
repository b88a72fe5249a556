/* job.c — configuration files through libconfig (see job.h). */
#include "repsweep/job.h"

#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repsweep/status.h"

static int fail_at(char *err, size_t len, const char *file, int line, int status,
                   const char *fmt, ...)
{
    char msg[512];
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
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *key = config_setting_name(s);
        int kline = (int)config_setting_source_line(s), known = 0;
        for (size_t k = 0; k < sizeof arch_keys / sizeof *arch_keys; k++)
            known |= strcmp(key, arch_keys[k]) == 0;
        if (!known)
            return fail_at(err, len, file, kline, RS_E_PARSE,
                           "unknown key '%s' in architecture (expected one of name, activation, "
                           "hidden_layers, units, conv_channels, conv_kernel, skip, dropout, "
                           "gain, lr, epochs)", key);
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
        if (integral && (v != (double)(long)v || v < 0))
            return fail_at(err, len, file, kline, RS_E_PARSE,
                           "'%s' must be a non-negative integer", key);
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
    FILE *f = fopen(path, "r");
    if (!f)
        return fail_at(err, len, path, 0, RS_E_IO, "cannot open the architectures file");
    fclose(f);
    config_t cfg;
    config_init(&cfg);
    int st = RS_OK;
    if (config_read_file(&cfg, path) != CONFIG_TRUE) {
        st = fail_at(err, len, path, config_error_line(&cfg), RS_E_PARSE, "%s",
                     config_error_text(&cfg));
        goto done;
    }
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

const rs_arch *rs_arch_table_find(const rs_arch_table *table, const char *name)
{
    for (int i = 0; i < table->count; i++)
        if (strcmp(table->arch[i].name, name) == 0)
            return &table->arch[i];
    return NULL;
}
