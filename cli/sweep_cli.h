/* Subcommands implemented outside main.c. */
#ifndef MPLB_SWEEP_CLI_H
#define MPLB_SWEEP_CLI_H
int mplb_cmd_sweep(int argc, char **argv);
/* Read a small text file; 0 and *out (malloc'd) or -1. */
int mplb_read_file_text(const char *path, char **out);
#endif
