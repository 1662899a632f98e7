#include "slurm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Slurm's special step ids (batch script, extern step, ...) are the top of
 * the uint32 range: SLURM_BATCH_SCRIPT = 0xfffffffb and friends. */
#define FT_SLURM_MAX_STEP 0xfffffff0UL

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < -1 || x > 1000000000L)
        return dflt;
    return (int)x;
}

static void env_str(const char *name, char *out, size_t len)
{
    const char *v = getenv(name);
    snprintf(out, len, "%s", v ? v : "");
}

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

void ft_slurm_read(ft_slurm *s)
{
    memset(s, 0, sizeof *s);
    env_str("SLURM_JOB_ID", s->job_id, sizeof s->job_id);
    if (!s->job_id[0])
        env_str("SLURM_JOBID", s->job_id, sizeof s->job_id);
    s->in_job = s->job_id[0] != '\0';
    env_str("SLURM_ARRAY_JOB_ID", s->array_job, sizeof s->array_job);
    s->array_task = env_int("SLURM_ARRAY_TASK_ID", -1);
    s->nodes = env_int("SLURM_JOB_NUM_NODES", 0);
    if (s->nodes <= 0)
        s->nodes = env_int("SLURM_NNODES", 0);
    s->ntasks = env_int("SLURM_NTASKS", 0);
    if (s->ntasks <= 0)
        s->ntasks = env_int("SLURM_NPROCS", 0);
    s->procid = env_int("SLURM_PROCID", -1);
    s->restart_count = env_int("SLURM_RESTART_COUNT", 0);
    s->cpus_per_task = env_int("SLURM_CPUS_PER_TASK", 0);

    const char *step = getenv("SLURM_STEP_ID");
    if (!step || !*step)
        step = getenv("SLURM_STEPID");
    if (step && *step) {
        char *end;
        errno = 0;
        unsigned long id = strtoul(step, &end, 10);
        s->in_step = !errno && !*end && id < FT_SLURM_MAX_STEP;
    }
    s->step_tasks = env_int("SLURM_STEP_NUM_TASKS", 0);
    if (s->step_tasks <= 0)
        s->step_tasks = s->ntasks;
    /* mpirun/orted (Open MPI), srun --mpi=pmix (PMIx), srun --mpi=pmi2 and
     * MPICH-style launchers (PMI) */
    s->by_mpirun = env_set("OMPI_COMM_WORLD_SIZE");
    s->mpi_launched =
        s->by_mpirun || env_set("PMIX_RANK") || env_set("PMI_RANK") || env_set("PMI_SIZE");
}

static void explain(const ft_slurm *s, const char *cmd, int world)
{
    char why[160];
    if (world <= 0)
        snprintf(why, sizeof why,
                 "no MPI process-management interface was given to the tasks (srun --mpi=none, "
                 "or a site default without PMIx)");
    else
        snprintf(why, sizeof why, "MPI started a world of %d rank%s", world,
                 world == 1 ? " (each task alone, rank 0 of 1)" : "s");
    fprintf(stderr,
            "%s: srun started %d tasks (SLURM_STEP_NUM_TASKS=%d) but %s; the tasks would not "
            "train one model together.\n"
            "Launch one MPI job instead:\n"
            "  srun --mpi=pmix %s ...   (direct launch through PMIx)\n"
            "  mpirun %s ...            (inside the allocation, e.g. in an sbatch script)\n"
            "If 'srun --mpi=list' shows no pmix, use mpirun. See docs/cluster.md and "
            "slurm/README.md.\n",
            cmd, s->step_tasks, s->step_tasks, why, cmd, cmd);
    fflush(stderr);
}

static ft_slurm pre; /* the environment before MPI_Init changed it */
static int pre_read = 0;

int ft_slurm_precheck(const char *cmd)
{
    ft_slurm_read(&pre);
    pre_read = 1;
    if (pre.in_step && pre.step_tasks > 1 && !pre.mpi_launched) {
        if (pre.procid <= 0)
            explain(&pre, cmd, 0);
        return 2;
    }
    return 0;
}

int ft_slurm_check(const ft_mpi *w, const char *cmd, FILE *log)
{
    ft_slurm s;
    if (pre_read)
        s = pre;
    else
        ft_slurm_read(&s);
    if (!s.in_job)
        return 0;
    /* a direct srun launch must give one world with every task in it */
    if (s.in_step && s.step_tasks > 1 &&
        (w->size == 1 || (!s.by_mpirun && w->size != s.step_tasks))) {
        if (w->rank == 0 && s.procid <= 0)
            explain(&s, cmd, w->size);
        return 2;
    }
    if (w->rank != 0 || !log)
        return 0;
    char array[64] = "";
    if (s.array_task >= 0)
        snprintf(array, sizeof array, " (array task %ld)", s.array_task);
    fprintf(log, "slurm: job %s%s, %d node%s, %d rank%s, restart %d", s.job_id, array, s.nodes,
            s.nodes == 1 ? "" : "s", w->size, w->size == 1 ? "" : "s", s.restart_count);
    if (s.cpus_per_task > 0)
        fprintf(log, ", %d CPU%s per task", s.cpus_per_task, s.cpus_per_task == 1 ? "" : "s");
    fputc('\n', log);
    if (w->size == 1 && !s.in_step && s.ntasks > 1)
        fprintf(log,
                "slurm: note: the allocation has %d tasks but %s runs as 1 rank; start the "
                "ranks with mpirun or srun --mpi=pmix\n",
                s.ntasks, cmd);
    fflush(log);
    return 0;
}
