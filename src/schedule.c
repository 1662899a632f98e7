/* Learning-rate schedules: linear warmup, then constant, step decay or cosine
 * decay to min_lr. Computed in double from the step number alone, so a
 * resumed run gets exactly the rate it would have had. */
#include <math.h>

#include "ftune/optim.h"

float ft_schedule_lr(const ft_schedule_cfg *s, float base_lr, long step)
{
    const double base = base_lr;
    if (!s)
        return base_lr;
    if (step < 0)
        step = 0;
    /* Warmup reaches base at its last step rather than one step after it. */
    if (step < s->warmup_steps)
        return (float)(base * (double)(step + 1) / (double)s->warmup_steps);
    const long warm = s->warmup_steps > 0 ? s->warmup_steps : 0;
    const long since = step - warm;
    switch (s->type) {
    case FT_SCHED_STEP:
        if (s->step_size <= 0)
            return base_lr;
        return (float)(base * pow((double)s->gamma, (double)(since / s->step_size)));
    case FT_SCHED_COSINE: {
        long span = s->total_steps - warm;
        if (span < 1)
            span = 1;
        double frac = (double)since / (double)span;
        if (frac > 1.0)
            frac = 1.0; /* stays at min_lr past total_steps */
        const double min_lr = s->min_lr;
        return (float)(min_lr + (base - min_lr) * 0.5 * (1.0 + cos(M_PI * frac)));
    }
    case FT_SCHED_CONSTANT:
    default: return base_lr;
    }
}
