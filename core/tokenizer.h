/* tokenizer.h — byte-level BPE tokenizer of Qwen2 / Qwen2.5 / Qwen3 (Hugging Face
 * `tokenizer.json`), the ChatML chat template of Qwen2.5-Instruct, and the byte-level
 * vocabulary used by tiny demo models.
 *
 * Spec: docs/qwen2.md §5 (docs/qwen2.md), user documentation: docs/tokenizer.md.
 *
 * Encoding (§5.3), per call:
 *   1. added-token split (parse_special=1): exact occurrences of the added-token strings
 *      (longest match first) become their ids and are never split or normalised;
 *   2. the text between them is cut into maximal valid-UTF-8 runs; every byte of an
 *      invalid UTF-8 sequence becomes its single byte token (so nothing is lost, see
 *      "Invalid UTF-8" below);
 *   3. each valid run is NFC-normalised (utf8proc), pre-tokenised with the Qwen2 regex
 *      (PCRE2, UTF + UCP, JIT), and each piece is mapped to GPT-2 byte-level symbols and
 *      merged by BPE (lowest merge rank first, leftmost first on ties).
 *   No BOS/EOS is added.
 *
 * Invalid UTF-8: bytes that are not part of a valid UTF-8 sequence (overlong forms,
 *   surrogates U+D800..DFFF encoded in UTF-8, code points > U+10FFFF, truncated
 *   sequences, stray continuation bytes) are each encoded as the byte token of that byte.
 *   Hence tok_decode(..., TOK_DECODE_RAW) of tok_encode(x) returns x byte for byte for
 *   EVERY byte string x whose valid runs are already in NFC (all ASCII text, and all
 *   ordinary text from editors); plain tok_decode replaces invalid UTF-8 by U+FFFD as
 *   Hugging Face does. For valid UTF-8 x: decode(encode(x)) == NFC(x).
 *
 * Thread safety: a loaded tok_tokenizer is immutable; all functions taking a const
 * tokenizer may be called from many threads at once.
 *
 * Errors: functions return 0 or a negative SRLM_E* code (util.h) with a message naming
 * the file / field / position in srlm_last_error().
 */
#ifndef SRLM_TOKENIZER_H
#define SRLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_tokenizer tok_tokenizer;

/* Load a tokenizer. path_or_dir is a directory holding tokenizer.json or
 * tokenizer.json.gz (a model directory works), or the path of such a file. If
 * tokenizer_config.json sits next to it, its eos_token / pad_token are read.
 * Supported: model.type "BPE" (vocab object, merges as "A B" strings or ["A","B"]
 * pairs), normalizer null or NFC, pre_tokenizer = Split(regex) / ByteLevel (its
 * regex is used, else the Qwen2 regex), byte-level decoder.
 * *out: new tokenizer, free with tok_free().
 * Errors: SRLM_ENOTFOUND (no tokenizer.json), SRLM_EIO, SRLM_EFORMAT (malformed JSON or
 * a missing / mistyped field: the message names it, e.g. "model.merges[12]"),
 * SRLM_EUNSUPPORTED (e.g. model.type "WordPiece"). */
int tok_load(const char *path_or_dir, tok_tokenizer **out);
void tok_free(tok_tokenizer *t);

/* Encode len bytes of text (need not be NUL-terminated; may contain NUL bytes and
 * invalid UTF-8) into token ids. parse_special=1: added tokens (e.g. "<|im_end|>")
 * written in the text are matched as single ids (HF behaviour); 0: they are encoded as
 * plain text (use this for untrusted user text). *ids: new array of *n_ids ids (caller
 * frees; non-NULL even when *n_ids == 0). Spec: qwen2.md §5.3.
 * Errors: SRLM_EINVAL (NULL arguments), SRLM_ENOMEM. */
int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int parse_special,
               int32_t **ids, size_t *n_ids);

/* Append-style variant for callers that build long sequences: encodes text and appends
 * the ids to (*ids, *n_ids, *cap), growing the array with realloc. */
int tok_encode_append(const tok_tokenizer *t, const char *text, size_t len, int parse_special,
                      int32_t **ids, size_t *n_ids, size_t *cap);

/* Decode flags (may be OR-ed; passing 1 keeps the meaning "skip special"). */
enum {
    TOK_DECODE_SKIP_SPECIAL = 1, /* drop added tokens flagged "special" (<|im_end|>, ...) */
    TOK_DECODE_RAW = 2,          /* return the raw bytes, no U+FFFD replacement */
};

/* Decode n ids to text. flags: TOK_DECODE_* (0 = keep special tokens, replace invalid
 * UTF-8 by U+FFFD per maximal invalid subpart, like HF / Python errors="replace").
 * Ids >= 0 that are not in the vocabulary (e.g. model padding rows 151665..151935)
 * contribute nothing, as in HF. *text: new NUL-terminated buffer of *len bytes (caller
 * frees). Errors: SRLM_EINVAL (negative id, NULL arguments). Spec: qwen2.md §5.3. */
int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int flags, char **text,
               size_t *len);

/* Raw bytes of one token (the byte-level decoding of a vocabulary entry, or the literal
 * text of an added token); NULL if id is not in the vocabulary. *len gets the length.
 * The pointer stays valid until tok_free. Use with tok_utf8_complete() to stream text. */
const char *tok_id_to_bytes(const tok_tokenizer *t, int32_t id, size_t *len);

/* For streaming decode: the length of the longest prefix of buf[0..len) that does not
 * end inside an incomplete (but so far valid) UTF-8 sequence. Print that prefix and keep
 * the remaining 0..3 bytes until more tokens arrive. */
size_t tok_utf8_complete(const char *buf, size_t len);

/* Id of a token given its text: an added token ("<|im_end|>") or a vocabulary entry in
 * its byte-level form ("Ġthe"). -1 if absent. */
int tok_token_to_id(const tok_tokenizer *t, const char *token);

/* Max id + 1 over vocabulary and added tokens (151665 for Qwen2.5; 259 for the
 * byte-level vocabulary). Model embeddings may have more rows. */
int tok_vocab_size(const tok_tokenizer *t);

/* 1 if id is an added token flagged "special" (skipped by TOK_DECODE_SKIP_SPECIAL). */
int tok_is_special(const tok_tokenizer *t, int32_t id);

/* End-of-sequence id: tokenizer_config.json "eos_token" if present, else "<|im_end|>",
 * else "<|endoftext|>"; -1 if none. Pad id: "pad_token", else "<|endoftext|>", else -1. */
int tok_eos_id(const tok_tokenizer *t);
int tok_pad_id(const tok_tokenizer *t);

/* ---- ChatML chat template (Qwen2.5-Instruct, qwen2.md §5.5) ------------------------ */

typedef struct {
    const char *role;    /* "system" | "user" | "assistant" | "tool" */
    const char *content; /* UTF-8, NUL-terminated */
} tok_message;

/* Default system prompt inserted when messages[0] is not a system message. */
#define TOK_DEFAULT_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

/* Render n messages with the Qwen2.5 ChatML template (no tools):
 *   <|im_start|>system\n{system or TOK_DEFAULT_SYSTEM}<|im_end|>\n
 *   <|im_start|>{role}\n{content}<|im_end|>\n        for each other message
 *   (consecutive "tool" messages become one user turn of
 *    \n<tool_response>\n{content}\n</tool_response> blocks)
 *   <|im_start|>assistant\n                             if add_generation_prompt
 * Outputs (each may be NULL if not wanted; caller frees):
 *   *text: the rendered string (NUL-terminated);
 *   *ids: token ids [*n_ids], equal to tok_encode(text, parse_special=1) except that
 *         special-token strings INSIDE message content are encoded as plain text (a
 *         message cannot inject turn boundaries);
 *   *assistant_mask: [*n_ids] bytes, 1 on the tokens of every assistant message's content
 *         and its closing <|im_end|>, 0 elsewhere (the "\n" after <|im_end|>, role
 *         headers, prompts). Use it for SFT labels (label = -100 where mask == 0).
 * Extension (not in the Qwen template): messages[0] = {"system", NULL} renders no system
 * turn at all — for tiny byte-level models with short contexts.
 * The tokenizer must have <|im_start|> and <|im_end|> (Qwen2.x, byte-level vocabulary).
 * Errors: SRLM_EINVAL (n < 1, NULL role/content, unknown role), SRLM_EUNSUPPORTED
 * (tokenizer lacks the ChatML tokens). */
int tok_chat_render(const tok_tokenizer *t, const tok_message *msgs, int n,
                    int add_generation_prompt, char **text, int32_t **ids,
                    uint8_t **assistant_mask, size_t *n_ids);

/* ---- byte-level vocabulary for tiny models ------------------------------------------ */

/* Ids of the byte-level vocabulary written by tok_write_byte_level(). */
enum { TOK_BYTE_ENDOFTEXT = 256, TOK_BYTE_IM_START = 257, TOK_BYTE_IM_END = 258, TOK_BYTE_VOCAB = 259 };

/* Write DIR/tokenizer.json (+ DIR/tokenizer_config.json), creating DIR: 256 byte tokens
 * (ids 0..255 = bytes 0x00..0xFF, each written as its GPT-2 byte-level character), no
 * merges, and the added special tokens <|endoftext|> 256, <|im_start|> 257,
 * <|im_end|> 258; NFC normaliser and Qwen2 pre-tokenizer as in Qwen2.5. Loadable by
 * tok_load and by Hugging Face tokenizers. eos_token = <|im_end|>, pad = <|endoftext|>.
 * Errors: SRLM_EIO. */
int tok_write_byte_level(const char *dir);

#endif
