/* pipeline.h — the pipeline services: generator (gen_), trainer service (ts_), launcher
 * (ln_) and the data helpers they share (pd_). Architecture: docs/DESIGN.md; user guide:
 * docs/pipeline.md; wire messages: proto/pipeline.proto; broker: broker.h. */
#ifndef SRLM_PIPELINE_H
#define SRLM_PIPELINE_H

#include <signal.h>
#include <stdint.h>
#include <jansson.h>

#include "pipeline_config.h"
#include "tokenizer.h"

/* ---- shared data helpers ------------------------------------------------------------ */
/* Render record `rec` for stage st: prompt tokens (and, with want_target, the SFT/KD
 * target appended: target tokens + EOS in plain mode; chat targets end with <|im_end|>).
 * *ids heap [*n] (caller frees); *prompt_len = number of prompt tokens; *fmt_out (may be
 * NULL) gets the prompt format used. Sequences are truncated to st->max_seq_len when
 * want_target. Errors: those of pf_render_* and tok_encode. */
int pd_render(const tok_tokenizer *tok, const pc_stage *st, const json_t *rec, int want_target,
              int32_t **ids, int *n, int *prompt_len, int *fmt_out);

/* Dataset stream consumer name and seed of stage i for role ("gen" | "trainer"). */
void pd_consumer_name(const char *role, int stage_index, char *out, size_t n);
uint64_t pd_stream_seed(const pc_config *c, int stage_index);
/* Sampling seed of group `seq` of stage i: a hash of (seed, stage, seq) — independent of
 * timing, so a regenerated group is identical. */
uint64_t pd_group_seed(const pc_config *c, int stage_index, uint64_t seq);

/* ---- generator (services/generator.c) ------------------------------------------------ */
/* role "policy": follow the trainer's updates (SUB), sample GRPO groups from the dataset
 * stream, push them to the broker; exits 0 on the trainer's stop message or *stop.
 * role "teacher": load model_dir (or the config's model) and answer TeacherRequest on
 * endpoints.teacher (ROUTER) with top-k log-probabilities until *stop. */
int gen_run(const pc_config *cfg, const char *role, const char *model_dir, volatile sig_atomic_t *stop);

/* ---- trainer service (services/trainer_service.c) ------------------------------------ */
/* Run every stage of cfg in order in run_dir (checkpoints/, metrics.jsonl, weights/);
 * resume from the newest checkpoint when resume is set. Returns 0 when all stages are
 * done, SRLM_EINTR on *stop (after a clean shutdown), other negative codes on failure. */
int ts_run(const pc_config *cfg, const char *run_dir, int resume, volatile sig_atomic_t *stop);

/* Newest checkpoints/step_N directory of run_dir with a trainer_state.json into out;
 * returns N, or -1 if none. */
long ts_latest_checkpoint(const char *run_dir, char *out, size_t n);

/* ---- launcher (services/launcher.c) -------------------------------------------------- */
typedef struct {
    const char *config_path;   /* config file (run) or NULL with resume */
    const char *run_dir;       /* NULL: runs/<config name> */
    int resume;
    int quiet;                 /* no live progress line */
} ln_options;
int ln_run(const ln_options *o, volatile sig_atomic_t *stop);

#endif
