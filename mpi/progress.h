/* Rank 0's progress display: a bar on a terminal, plain lines otherwise
 * (batch jobs), never both. */
#ifndef FTUNE_PROGRESS_H
#define FTUNE_PROGRESS_H

typedef struct ft_progress {
    int bar;
    int drawn;
    double t_start, t_draw;
    long total_steps;
} ft_progress;

/* mode: -1 auto (bar when stderr is a terminal), 0 plain, 1 bar. */
void ft_progress_init(ft_progress *p, int mode, long total_steps);
/* Redraws the bar (at most 10 times a second). */
void ft_progress_update(ft_progress *p, int epoch, int epochs, long step, double loss,
                        double samples_per_s);
/* Prints a line of text, keeping the bar below it. */
void ft_progress_print(ft_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ft_progress_done(ft_progress *p);

double ft_now(void);

#endif
