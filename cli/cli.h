/* The mplb binary's subcommands: one file each, dispatched by main.c's
 * table. Each takes argv from the subcommand's name on and returns the
 * process exit status (0 ok, 1 runtime error, 2 usage error). */
#ifndef MPLB_CLI_H
#define MPLB_CLI_H
int mplb_cmd_run(int argc, char **argv);
int mplb_cmd_inspect(int argc, char **argv);
int mplb_cmd_calibrate(int argc, char **argv);
int mplb_cmd_policy(int argc, char **argv);
int mplb_cmd_trace(int argc, char **argv);
int mplb_cmd_report(int argc, char **argv);
int mplb_cmd_sweep(int argc, char **argv);
/* Read a small text file; 0 and *out (malloc'd) or -1. */
/* The usage text main.c prints for help and usage errors. */
extern const char *mplb_usage_text;
int mplb_read_file_text(const char *path, char **out);
#endif
