/* mplb report: figures and tables of run files, drawn by the Python package
 * (analysis/mplb/report.py; the interpreter as mplb_cli_exec_python finds it). */
#include "mplb.h"
#include "cli.h"

int mplb_cmd_report(int argc, char **argv) {
    return mplb_cli_exec_python("report", "mplb.report", argc - 1, argv + 1);
}
