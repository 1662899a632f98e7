/* Sub-commands of the ftune executable. Each returns the process exit code:
 * 0 success, 2 usage or input error, 1 runtime failure. MPI is initialised
 * (by main) only for the commands that run distributed: train and eval. */
#ifndef FTUNE_COMMANDS_H
#define FTUNE_COMMANDS_H

int cmd_train(int argc, char **argv);   /* mpi/cmd_train.c */
int cmd_eval(int argc, char **argv);    /* mpi/cmd_eval.c */
int cmd_inspect(int argc, char **argv); /* mpi/cmd_inspect.c (single process) */
int cmd_data(int argc, char **argv);    /* mpi/cmd_data.c (single process) */
int cmd_import(int argc, char **argv);  /* mpi/cmd_import.c: keras | safetensors */
int cmd_export(int argc, char **argv);  /* mpi/cmd_export.c */
int cmd_report(int argc, char **argv);  /* mpi/cmd_report.c: tabulate runs */

/* Commands still being written are weak so the tree links meanwhile; main
 * reports them as unavailable. TODO: drop once all are in. */
#pragma weak cmd_import
#pragma weak cmd_export
#pragma weak cmd_report

/* ftune import keras (mpi/cmd_import_keras.c), dispatched by cmd_import. */
int cmd_import_keras(int argc, char **argv);
#pragma weak cmd_import_keras

#endif
