/* Running under Slurm: what the job looks like (SLURM_* variables), and the
 * launch mistake that must stop a job at once.
 *
 * srun starts N tasks. With an MPI plugin that this Open MPI understands
 * (srun --mpi=pmix) they form one job of N ranks; without one (--mpi=none,
 * or a site default of none) each task is an MPI singleton, "rank 0 of 1",
 * and N copies would train the same model side by side, overwriting each
 * other's checkpoints. The rule (docs/cluster.md):
 *
 *   inside an srun step (SLURM_STEP_ID is a number, not the batch script)
 *   with more than one task (SLURM_STEP_NUM_TASKS, else SLURM_NTASKS), a
 *   process that no MPI launcher started (no OMPI_COMM_WORLD_SIZE, PMIX_RANK,
 *   PMI_RANK or PMI_SIZE), or that ends up as a world of 1, is an error:
 *   exit code 2 with a message that says how to launch.
 *
 * Not errors: mpirun inside the allocation with any -np (its ranks carry
 * OMPI_COMM_WORLD_SIZE; SLURM_NTASKS is the allocation, not the job), and a
 * single process started by the batch script itself (no step id; a note is
 * printed when the allocation has more tasks). */
#ifndef FTUNE_SLURM_H
#define FTUNE_SLURM_H

#include <stdio.h>

#include "runtime.h"

typedef struct ft_slurm {
    int in_job;         /* SLURM_JOB_ID is set */
    char job_id[32];    /* SLURM_JOB_ID */
    char array_job[32]; /* SLURM_ARRAY_JOB_ID ("" when not an array) */
    long array_task;    /* SLURM_ARRAY_TASK_ID, -1 when not an array */
    int nodes;          /* SLURM_JOB_NUM_NODES (or SLURM_NNODES), 0 if unknown */
    int ntasks;         /* SLURM_NTASKS, 0 if unset */
    int procid;         /* SLURM_PROCID, -1 if unset */
    int restart_count;  /* SLURM_RESTART_COUNT, 0 if unset */
    int cpus_per_task;  /* SLURM_CPUS_PER_TASK, 0 if unset */
    int in_step;        /* started by srun: SLURM_STEP_ID is a job step number */
    int step_tasks;     /* SLURM_STEP_NUM_TASKS (else SLURM_NTASKS) */
    int mpi_launched;   /* an MPI launcher set up this process (see above) */
    int by_mpirun;      /* Open MPI's mpirun/orted started it (OMPI_COMM_WORLD_SIZE) */
} ft_slurm;

/* Reads the environment (no MPI needed). */
void ft_slurm_read(ft_slurm *s);

/* Before MPI_Init: an srun step with several tasks and no MPI launcher
 * would give N singletons (and Debian's Open MPI aborts in MPI_Init under
 * srun --mpi=none). Prints the explanation (task 0 only) and returns 2;
 * else 0. cmd names the command in the message ("ftune train"). */
int ft_slurm_precheck(const char *cmd);

/* After MPI_Init, on every rank: repeats the launch check with the world
 * size (returns 2 on every rank of a wrong launch; all ranks see the same
 * environment, so they agree) and, on rank 0, writes one line to log:
 * "slurm: job J (array task T), N nodes, R ranks, restart K". Prints nothing
 * outside Slurm. */
int ft_slurm_check(const ft_mpi *w, const char *cmd, FILE *log);

#endif
