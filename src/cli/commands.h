/* commands.h — the subcommands of `repsweep`; each parses its own argv and returns the
 * process exit status (0 success, 1 runtime failure, 2 usage error; `run` also 3:
 * interrupted by a signal, resumable). */
#ifndef REPSWEEP_CLI_COMMANDS_H
#define REPSWEEP_CLI_COMMANDS_H

int cmd_trial(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_fit(int argc, char **argv);

#endif
