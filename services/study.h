/* study.h — `srlm study`: run a list of post-training pipelines from one starting model,
 * evaluate each result on held-out problems, and write a report (prefix st_).
 *
 * Steps (docs/study.md has the config keys and an example):
 *   1. RUN_DIR/ gets config.json (as run), models/ (tiny models created with the model's
 *      random init from configs/models/ files, or a given directory), data.lmdb (synthetic
 *      tasks from `srlm data synth`, imported sets from `srlm data import`).
 *   2. teacher: its stages run first (SFT); it then writes traces (`srlm eval` over the
 *      train problems; correct completions kept) that become the KD data.
 *   3. every pipeline × seed: its stages in order, each through the stage runner
 *      (st_stage_run: `srlm run` with a generated pipeline config), the output model of
 *      one stage feeding the next.
 *   4. every result × evaluation set: `srlm eval` (scored by the sandboxed reward
 *      scorers); summary.json per evaluation.
 *   5. report.md (comparison table with mean ± seed spread, Δ vs base, settings,
 *      timings), plots (loss_curves.svg: SFT/KD loss, reward_curves.svg: GRPO mean
 *      reward, each per trained stage against its own step; accuracy.svg), results.json;
 *      the table is printed.
 * With `only`, the teacher (2.) runs only when a selected pipeline has a KD stage. */
#ifndef SRLM_STUDY_H
#define SRLM_STUDY_H

typedef struct {
    const char *config_path; /* study config JSON */
    const char *out_dir;     /* run directory, NULL = runs/NAME-YYYYmmdd-HHMMSS */
    const char *only;        /* comma-separated pipeline names, NULL = all */
    const char *seeds;       /* "1,2,3" overrides the config's seeds, NULL = config */
    int keep_going;          /* a failing pipeline is reported and the study continues */
    const char *model;       /* starting model dir: overrides models.STUDENT (NULL = config) */
    int check_only;          /* validate the config and every stage in a temporary dir; leave nothing */
    const char *teacher;     /* teacher model dir: overrides the teacher's model (NULL = config) */
    int jobs;                /* stages/evaluations run at once (0 = the config's "jobs", default 1) */
} st_opts;

/* Run a study. Errors: SRLM_EINVAL (config: message names the key), SRLM_ENOTFOUND,
 * SRLM_EIO (a stage or evaluation failed: message names it and its log file). */
int st_run(const st_opts *o);

#endif
