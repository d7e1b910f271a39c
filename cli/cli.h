/* The mplb binary's subcommands: one file each, dispatched by main.c's
 * table. Each takes argv from the subcommand's name on and returns the
 * process exit status (0 ok, 1 runtime error, 2 usage error). */
#ifndef MPLB_CLI_H
#define MPLB_CLI_H
#include <stddef.h>
#include <stdio.h>
#include "mplb/config.h"
int mplb_cmd_run(int argc, char **argv);
int mplb_cmd_inspect(int argc, char **argv);
int mplb_cmd_calibrate(int argc, char **argv);
int mplb_cmd_policy(int argc, char **argv);
int mplb_cmd_trace(int argc, char **argv);
int mplb_cmd_report(int argc, char **argv);
int mplb_cmd_sweep(int argc, char **argv);
int mplb_cmd_validate(int argc, char **argv);
int mplb_cmd_place(int argc, char **argv);
/* Read a small text file; 0 and *out (malloc'd) or -1. */
/* The usage text main.c prints for help and usage errors. */
extern const char *mplb_usage_text;

/* cli/common.c. Exit status of every subcommand: 0 ok, 1 runtime error (a
 * bad experiment, a failed run, a missing file), 2 usage error. */
/* 1 (after printing usage to stdout) when argv asks for --help or -h. */
int mplb_cli_help(int argc, char **argv, const char *usage);
/* "mplb CMD: <fmt with arg>" and the usage on stderr; returns 2. */
int mplb_cli_usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg);
/* Create the folder of path (dir = 0) or path itself (dir = 1) with parents. */
int mplb_cli_mkdirs(const char *path, int dir);
/* An integer option's value: the whole of s, or *bad = opt (the first bad
 * option, for one usage error after the parse; atoi took "4x" as 4). */
/* exec python -m module args[0..n-1] ($MPLB_PYTHON, else the project's .venv,
 * else python3; the source tree's analysis/ first on PYTHONPATH); returns 1
 * with a message only when the exec fails. */
int mplb_cli_exec_python(const char *cmd, const char *module, int n, char **args);
void mplb_cli_int(const char *opt, const char *s, int *out, const char **bad);
/* A whole file into a malloc'd NUL-terminated buffer; 0 or -1. */
int mplb_cli_slurp(const char *path, char **out);
/* Print an experiment's warnings to stderr. */
void mplb_cli_warnings(const mplb_exp *x);
/* --policy "NAME,k=v,...": NAME out, one malloc'd "policies[i].k=v" per
 * param appended to sets; -1 on a malformed spec. */
int mplb_cli_policy_spec(const char *spec, int i, char *name, size_t cap, const char **sets, int *n_sets);
/* Print s as a JSON string literal on stdout. */
void mplb_cli_json_str(const char *s);
/* The same to f. */
void mplb_cli_json_str_to(FILE *f, const char *s);
#endif
