/* cmd_trial.c — `repsweep trial`: one trial from the command line. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "json.h"
#include "options.h"
#include "repsweep/blas.h"
#include "repsweep/job.h"
#include "repsweep/ncio.h"
#include "repsweep/status.h"
#include "repsweep/trial.h"

static void trial_usage(FILE *out)
{
    fprintf(out,
        "usage: repsweep trial [options]\n"
        "\n"
        "Train one network on the two-point dataset (inputs -1 and -1+input_gap, targets 0.6\n"
        "and 0.6+target_gap), record dh2, dyhat2, w and the loss every epoch before the\n"
        "update, fit the effective theory's rates (Eq. 49) and predict the final dh2 (Eq. 10).\n"
        "\n"
        "  --arch NAME          architecture from the architectures file (default: default)\n"
        "  --arch-file FILE     architectures file (default: $REPSWEEP_ARCHITECTURES or the\n"
        "                       installed share/repsweep/jobs/architectures.cfg)\n"
        "  --gain G             initial weight gain (default: the architecture's Table 1 value)\n"
        "  --lr LR              learning rate (default: Table 1)\n"
        "  --epochs N           maximum epochs (default: Table 1, 6000)\n"
        "  --input-gap DX       |x2 - x1| (default 1, the authors' code)\n"
        "  --target-gap DY      |y2 - y1| (default sqrt(0.5) = 0.7071..., the authors' code)\n"
        "  --seed S             seed of the initial weights (default 0)\n"
        "  --precision P        float64 (default) or float32\n"
        "  --all-layers         record dh2 at every hidden layer and fit each (depth study)\n"
        "  --converge-loss X    converged iff the final loss < X (default 1e-3)\n"
        "  --stop-loss X        stop early once the loss < X (default: run all epochs)\n"
        "  --no-fit             train and record only\n"
        "  --threads T          threads (default: $OMP_NUM_THREADS, else 1; OpenMP): the\n"
        "                       dense layers' row blocks (at most 8 threads) and the\n"
        "                       convolutions' two halves;\n"
        "                       results do not depend on it (OpenBLAS runs single-threaded)\n"
        "  --out FILE.nc        write trajectories, theory curves and results as netCDF\n"
        "  --export-weights F   write the initial weights as netCDF (PyTorch layouts)\n"
        "  --json               print one JSON object instead of the summary\n"
        "  -h, --help           this text\n"
        "\n"
        "Exit status: 0 when the trial ran (its status may still be 'diverged' or 'fit\n"
        "failed': see the output), 1 when it could not run, 2 for bad options.\n");
}

typedef struct {
    const char *arch_name, *arch_file, *out, *export_weights;
    int json, threads;
    double gain, lr, stop_loss, converge_loss, input_gap, target_gap;
    long epochs, seed;
    int all_layers, no_fit;
    const char *precision;
} trial_options;

enum { O_ARCH = 256, O_ARCH_FILE, O_GAIN, O_LR, O_EPOCHS, O_INPUT_GAP, O_TARGET_GAP, O_SEED,
       O_PRECISION, O_ALL_LAYERS, O_CONVERGE, O_STOP, O_NO_FIT, O_THREADS, O_OUT, O_EXPORT,
       O_JSON, O_HELP };

static const struct option long_options[] = {
    {"arch", required_argument, 0, O_ARCH},
    {"arch-file", required_argument, 0, O_ARCH_FILE},
    {"gain", required_argument, 0, O_GAIN},
    {"lr", required_argument, 0, O_LR},
    {"epochs", required_argument, 0, O_EPOCHS},
    {"input-gap", required_argument, 0, O_INPUT_GAP},
    {"target-gap", required_argument, 0, O_TARGET_GAP},
    {"seed", required_argument, 0, O_SEED},
    {"precision", required_argument, 0, O_PRECISION},
    {"all-layers", no_argument, 0, O_ALL_LAYERS},
    {"converge-loss", required_argument, 0, O_CONVERGE},
    {"stop-loss", required_argument, 0, O_STOP},
    {"no-fit", no_argument, 0, O_NO_FIT},
    {"threads", required_argument, 0, O_THREADS},
    {"out", required_argument, 0, O_OUT},
    {"export-weights", required_argument, 0, O_EXPORT},
    {"json", no_argument, 0, O_JSON},
    {"help", no_argument, 0, O_HELP},
    {0, 0, 0, 0}};

/* Returns -1 to exit 2, 1 to exit 0 (help), 0 to go on. */
static int parse(int argc, char **argv, trial_options *o)
{
    memset(o, 0, sizeof *o);
    o->arch_name = "default";
    if (opt_default_threads("trial", &o->threads) != 0)
        return -1;
    o->gain = o->lr = o->input_gap = o->target_gap = o->converge_loss = NAN;
    o->epochs = -1;
    o->precision = "float64";
    opterr = 0;
    optind = 1;
    int c;
    long threads;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        const char *f = argv[optind - 1];
        int bad = 0;
        switch (c) {
        case O_ARCH: o->arch_name = optarg; break;
        case O_ARCH_FILE: o->arch_file = optarg; break;
        case O_GAIN: bad = opt_double("trial", "--gain", optarg, 1e-12, 1e6, &o->gain); break;
        case O_LR: bad = opt_double("trial", "--lr", optarg, 1e-300, 1e6, &o->lr); break;
        case O_EPOCHS: bad = opt_long("trial", "--epochs", optarg, 1, 100000000, &o->epochs); break;
        case O_INPUT_GAP:
            bad = opt_double("trial", "--input-gap", optarg, 1e-300, 1e6, &o->input_gap);
            break;
        case O_TARGET_GAP:
            bad = opt_double("trial", "--target-gap", optarg, 0, 1e6, &o->target_gap);
            break;
        case O_SEED: bad = opt_long("trial", "--seed", optarg, 0, 2147483647L, &o->seed); break;
        case O_PRECISION: o->precision = optarg; break;
        case O_ALL_LAYERS: o->all_layers = 1; break;
        case O_CONVERGE:
            bad = opt_double("trial", "--converge-loss", optarg, 0, 1e300, &o->converge_loss);
            break;
        case O_STOP: bad = opt_double("trial", "--stop-loss", optarg, 0, 1e300, &o->stop_loss); break;
        case O_NO_FIT: o->no_fit = 1; break;
        case O_THREADS:
            bad = opt_long("trial", "--threads", optarg, 1, 1024, &threads);
            o->threads = (int)threads;
            break;
        case O_OUT: bad = opt_path("trial", "--out", optarg, &o->out); break;
        case O_EXPORT:
            bad = opt_path("trial", "--export-weights", optarg, &o->export_weights);
            break;
        case O_JSON: o->json = 1; break;
        case 'h': /* -h, as --help */
        case O_HELP: trial_usage(stdout); return 1;
        default:
            fprintf(stderr, "repsweep trial: unknown or incomplete option '%s' (see --help)\n", f);
            return -1;
        }
        if (bad)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "repsweep trial: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    return 0;
}

static const char *status_word(int status)
{
    switch (status) {
    case RS_OK: return "ok";
    case RS_S_DIVERGED: return "diverged";
    case RS_S_FIT_FAILED: return "fit_failed";
    default: return "error";
    }
}

static void print_json(const rs_trial_spec *s, const rs_trial_result *r)
{
    json_writer w;
    json_begin(&w, stdout, 1);
    json_open_object(&w, NULL);
    json_string(&w, "arch", s->arch.name);
    json_string(&w, "precision", rs_precision_name(s->precision));
    json_string(&w, "status", status_word(r->status));
    json_bool(&w, "converged", r->converged);
    json_int(&w, "epochs_run", r->epochs_run);
    json_int(&w, "seed", s->seed);
    json_int(&w, "observed_stage", r->observed_stage);
    json_bool(&w, "fit_converged", r->fit.converged);
    json_int(&w, "fit_iterations", r->fit.iterations);
    json_bool(&w, "fit_rate_at_floor", r->fit.at_floor);
    const struct { const char *key; double v; } numbers[] = {
        {"gain", s->gain}, {"lr", s->lr}, {"input_gap", s->input_gap},
        {"target_gap", s->target_gap}, {"dh2_initial", r->dh2_initial},
        {"dyhat2_initial", r->dyhat2_initial}, {"w_initial", r->w_initial},
        {"loss_initial", r->loss_initial}, {"dh2_final", r->dh2_final},
        {"dyhat2_final", r->dyhat2_final}, {"w_final", r->w_final},
        {"loss_final", r->loss_final}, {"rate_h", r->fit.rate_h}, {"rate_y", r->fit.rate_y},
        {"rate_ybar", r->fit_ybar.rate_ybar}, {"fit_loss", r->fit.fit_loss},
        {"fit_loss_rel", r->fit.fit_loss_rel}, {"loss_fit_rel", r->fit_ybar.fit_loss_rel},
        {"A_high", r->A_high}, {"A_low", r->A_low}, {"dh2_predicted", r->dh2_predicted}};
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++)
        json_number(&w, numbers[i].key, numbers[i].v);
    if (r->n_stages > 0) {
        json_open_array(&w, "stages");
        for (int i = 0; i < r->n_stages; i++) {
            const rs_fit_result *f = &r->stage_fit[i];
            json_open_object(&w, NULL);
            json_int(&w, "stage", i);
            json_number_digits(&w, "rate_h", f->rate_h, 10);
            json_number_digits(&w, "rate_y", f->rate_y, 10);
            json_number_digits(&w, "fit_loss_rel", f->fit_loss_rel, 10);
            json_number_digits(&w, "dh2_final", r->stage_dh2_final[i], 10);
            json_number_digits(&w, "dh2_predicted", r->stage_dh2_predicted[i], 10);
            json_close(&w);
        }
        json_close(&w);
    }
    json_number(&w, "net_bytes", (double)r->net_bytes);
    json_number(&w, "train_seconds", r->train_seconds);
    json_number(&w, "fit_seconds", r->fit_seconds);
    json_number(&w, "peak_memory_bytes", (double)opt_peak_memory_bytes());
    json_close(&w);
    json_end(&w);
}

static void print_summary(const rs_trial_spec *s, const rs_trial_result *r)
{
    printf("trial  arch=%s gain=%g lr=%g input_gap=%g target_gap=%g seed=%ld %s\n", s->arch.name,
           s->gain, s->lr, s->input_gap, s->target_gap, s->seed, rs_precision_name(s->precision));
    printf("status %s; %s after %ld epochs (final loss %.3e, threshold %.0e)\n",
           rs_strerror(r->status), r->converged ? "converged" : "NOT converged", r->epochs_run,
           r->loss_final, s->converge_loss);
    printf("         %12s %12s %12s %12s\n", "dh2", "dyhat2", "w", "loss");
    printf("initial  %12.5g %12.5g %12.5g %12.5g\n", r->dh2_initial, r->dyhat2_initial,
           r->w_initial, r->loss_initial);
    printf("final    %12.5g %12.5g %12.5g %12.5g\n", r->dh2_final, r->dyhat2_final, r->w_final,
           r->loss_final);
    if (s->fit && r->status != RS_S_DIVERGED) {
        printf("fit      1/tau_h = %.4g, 1/tau_y = %.4g, 1/tau_ybar = %.4g per epoch (%s, %d "
               "iterations)\n", r->fit.rate_h, r->fit.rate_y, r->fit_ybar.rate_ybar,
               r->fit.converged ? "converged" : "not converged", r->fit.iterations);
        printf("         fit loss %.4g (relative %.3g); loss-curve fit relative %.3g\n",
               r->fit.fit_loss, r->fit.fit_loss_rel, r->fit_ybar.fit_loss_rel);
        if (r->fit.at_floor)
            printf("         warning: a fitted rate sits at its floor (1e-12 per epoch): the "
                   "data do not constrain it\n");
        printf("theory   A_high = %.5g, A_low = %.5g; predicted final dh2 %.5g vs measured "
               "%.5g (ratio %.4f)\n", r->A_high, r->A_low, r->dh2_predicted, r->dh2_final,
               r->dh2_predicted / r->dh2_final);
    }
    printf("time     training %.2f s (%.3f ms/epoch), fits %.2f s; network %.1f MB, peak "
           "memory %.1f MiB\n", r->train_seconds, 1e3 * r->train_seconds / (double)r->epochs_run,
           r->fit_seconds, (double)r->net_bytes / 1e6,
           (double)opt_peak_memory_bytes() / (1024.0 * 1024.0));
}

static int build_spec(const trial_options *o, const rs_arch_table *table, rs_trial_spec *s)
{
    const rs_arch *arch = rs_arch_table_find(table, o->arch_name);
    if (!arch) {
        fprintf(stderr, "repsweep trial: --arch: no architecture '%s' in %s (known:",
                o->arch_name, opt_arch_file(o->arch_file));
        for (int i = 0; i < table->count; i++)
            fprintf(stderr, " %s", table->arch[i].name);
        fprintf(stderr, ")\n");
        return -1;
    }
    rs_trial_spec_default(s, arch);
    if (!isnan(o->gain)) s->gain = o->gain;
    if (!isnan(o->lr)) s->lr = o->lr;
    if (o->epochs > 0) s->epochs = o->epochs;
    if (!isnan(o->input_gap)) s->input_gap = o->input_gap;
    if (!isnan(o->target_gap)) s->target_gap = o->target_gap;
    if (!isnan(o->converge_loss)) s->converge_loss = o->converge_loss;
    s->stop_loss = o->stop_loss;
    s->seed = o->seed;
    s->all_layers = o->all_layers;
    s->fit = !o->no_fit;
    if (rs_precision_from_name(o->precision, &s->precision) != RS_OK) {
        fprintf(stderr, "repsweep trial: --precision expects float64 or float32, got '%s'\n",
                o->precision);
        return -1;
    }
    return 0;
}

int cmd_trial(int argc, char **argv)
{
    trial_options o;
    int p = parse(argc, argv, &o);
    if (p)
        return p > 0 ? 0 : 2;
    rs_blas_single_thread(); /* --threads goes to the network (rs_net_set_threads) */
    int cpus_short = opt_cpus_short(o.threads);
    opt_warn_threads("trial", o.threads, cpus_short > 0, 0, cpus_short);

    char err[1024];
    rs_arch_table table;
    const char *arch_file = opt_arch_file(o.arch_file);
    if (rs_arch_table_load(arch_file, &table, err, sizeof err) != RS_OK) {
        fprintf(stderr, "repsweep trial: %s\n", err);
        return 2;
    }
    rs_trial_spec spec;
    int bad = build_spec(&o, &table, &spec);
    rs_arch_table_free(&table);
    if (bad)
        return 2;
    spec.threads = o.threads;
    /* before the training, whose result would otherwise be lost */
    if (o.out && rs_ncio_check_creatable(o.out, err, sizeof err) != RS_OK) {
        fprintf(stderr, "repsweep trial: --out: %s\n", err);
        return 2;
    }
    if (o.export_weights && rs_ncio_check_creatable(o.export_weights, err, sizeof err) != RS_OK) {
        fprintf(stderr, "repsweep trial: --export-weights: %s\n", err);
        return 2;
    }

    if (o.export_weights) {
        rs_net *net = rs_trial_net_alloc(&spec);
        int st = net ? rs_ncio_write_weights(o.export_weights, net, &spec, err, sizeof err)
                     : RS_E_NOMEM;
        rs_net_free(net);
        if (st != RS_OK) {
            char note[128];
            fprintf(stderr, "repsweep trial: --export-weights: %s%s\n",
                    st == RS_E_NOMEM ? "out of memory" : err,
                    st == RS_E_NOMEM ? "" : opt_full_disk_note(o.export_weights, note));
            opt_exit_after_failed_write(1);
        }
    }

    rs_trajectory traj;
    int n_stages = spec.all_layers ? rs_arch_stage_count(&spec.arch) : 0;
    if (rs_trajectory_alloc(&traj, spec.epochs, n_stages) != RS_OK) {
        fprintf(stderr, "repsweep trial: cannot allocate a trajectory of %ld epochs\n",
                spec.epochs);
        return 1;
    }
    rs_trial_result res;
    int st = rs_trial_run(&spec, &traj, &res);
    if (st != RS_OK) {
        fprintf(stderr, "repsweep trial: %s\n", rs_strerror(st));
        rs_trajectory_free(&traj);
        rs_trial_result_free(&res);
        return 1;
    }
    int rc = 0;
    if (o.out) {
        char cmdline[4096];
        opt_command_line(argc, argv, cmdline, sizeof cmdline);
        if (rs_ncio_write_trial(o.out, &spec, &traj, &res, cmdline, err, sizeof err) != RS_OK) {
            char note[128];
            fprintf(stderr, "repsweep trial: --out: %s%s\n", err,
                    opt_full_disk_note(o.out, note));
            rc = 1;
        }
    }
    if (o.json)
        print_json(&spec, &res);
    else
        print_summary(&spec, &res);
    rs_trajectory_free(&traj);
    rs_trial_result_free(&res);
    if (rc)
        opt_exit_after_failed_write(rc);
    return rc;
}
