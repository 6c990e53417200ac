/* prompt.h — named prompt formats: turn a canonical record (docs/records.md) into the
 * prompt text a model is conditioned on, and into the SFT / KD target it should learn.
 *
 * Used by `srlm eval`, the generator (rollout prompts), the trainer (SFT / KD samples) and
 * `srlm study`, so a model is always trained and evaluated with the same text.
 *
 * Formats (docs/study.md lists them with examples):
 *
 *   name        prompt (plain)                                   target
 *   ---------   ----------------------------------------------   -------------------------
 *   gsm8k       "Question: Q\nAnswer:"                           " " + CoT ending "#### N"
 *   cot-boxed   "Q\nPlease reason step by step, and put your     solution with the final
 *                final answer within \boxed{}.\n"                 answer in \boxed{N}
 *   humaneval   the function prompt verbatim                     the function body
 *   mbpp        "TEXT\nYour code should pass this test:\n        code + "\n```"
 *                TEST0\n```python\n"
 *   plain       the prompt verbatim                              the target verbatim
 *
 * Chat mode (`chat` = 1) wraps the user turn in ChatML (Qwen2.5's template):
 *   "<|im_start|>system\nSYSTEM<|im_end|>\n<|im_start|>user\nUSER<|im_end|>\n<|im_start|>assistant\n"
 * with SYSTEM = PF_DEFAULT_SYSTEM (Qwen2.5's default, as tok_chat_render), and the target ends with "<|im_end|>". The user turn
 * carries an instruction that says how to answer (see pf_render_messages). A record with
 * `messages` uses its own turns: every message up to the last assistant message is the
 * prompt, the last assistant message is the target.
 *
 * In plain mode the target does not contain an end-of-sequence marker: the trainer
 * appends the tokenizer's EOS token id after the target tokens.
 *
 * Target selection (pf_render_target): `completion`, else `solution_clean`, else
 * `solution`, else (math) "#### ANSWER". For cot-boxed a trailing "#### N" line becomes
 * "The final answer is $\boxed{N}$."; for gsm8k a MATH-style solution whose last \boxed{}
 * holds the answer gets "\n#### N" appended.
 *
 * Errors: SRLM_EINVAL for an unknown format name or a record that lacks the fields the
 * format needs (message names the field), SRLM_EFORMAT for unparsable JSON.
 */
#ifndef SRLM_PROMPT_H
#define SRLM_PROMPT_H

#include <jansson.h>

typedef enum {
    PF_PLAIN = 0,
    PF_GSM8K = 1,
    PF_COT_BOXED = 2,
    PF_HUMANEVAL = 3,
    PF_MBPP = 4,
} pf_format;

#define PF_N_FORMATS 5
#define PF_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." /* = TOK_DEFAULT_SYSTEM */
#define PF_IM_START "<|im_start|>"
#define PF_IM_END "<|im_end|>"

/* Name ("gsm8k", "cot-boxed", "humaneval", "mbpp", "plain") -> format.
 * Error: SRLM_EINVAL (message lists the valid names). */
int pf_from_name(const char *name, pf_format *out);
/* Format -> its name (static string; "plain" for out-of-range values). */
const char *pf_name(pf_format f);

/* The format a record is evaluated with when none is given: gsm8k for sources gsm8k and
 * synth-arith (and math records whose answer is given as "#### N"), cot-boxed for
 * math/math500, humaneval for code records with code_format "humaneval", mbpp for
 * other code records, plain otherwise. rec: borrowed. */
pf_format pf_default_for(const json_t *rec);

/* Render the prompt text of rec. chat: 0 plain text, 1 ChatML (ending with the open
 * assistant turn). *out: heap string, caller frees. rec: borrowed. */
int pf_render_prompt(pf_format f, const json_t *rec, int chat, char **out);

/* The prompt as a JSON array of {role, content} messages (system + user, or the record's
 * own messages minus the final assistant turn). *out: new reference, caller decrefs. */
int pf_render_messages(pf_format f, const json_t *rec, json_t **out);

/* Render the SFT / KD target text of rec (see "Target selection" above); in chat mode it
 * ends with "<|im_end|>". *out: heap string, caller frees. Error: SRLM_EINVAL when the
 * record has no target field. */
int pf_render_target(pf_format f, const json_t *rec, int chat, char **out);

/* Same as the two above, from record JSON text (borrowed). Error: SRLM_EFORMAT on bad
 * JSON. */
int pf_render_prompt_str(pf_format f, const char *record_json, int chat, char **out);
int pf_render_target_str(pf_format f, const char *record_json, int chat, char **out);

/* Stop strings for generation with this format: a NULL-terminated static array (never
 * NULL itself). Chat: {"<|im_end|>", "<|endoftext|>"}. Plain gsm8k / cot-boxed:
 * {"\n\nQuestion:", "<|endoftext|>"}; humaneval: {"\ndef ", "\nclass ", "\nif __name__",
 * "\nprint(", "\n#"}; mbpp: {"```"}; plain: {}. The completion is cut before the first
 * stop string found (the generator or eval does the cut; pf_truncate_at_stop helps). */
const char *const *pf_stop_strings(pf_format f, int chat);

/* Cut text in place before the earliest occurrence of any stop string of (f, chat).
 * Returns the new length. */
size_t pf_truncate_at_stop(pf_format f, int chat, char *text);

#endif
