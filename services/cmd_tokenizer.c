/* cmd_tokenizer.c — `srlm tokenize`, `srlm detokenize`, `srlm tokenizer init-bytes|info`.
 * Documentation: docs/tokenizer.md. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tokenizer.h"
#include "util.h"

/* Load --tokenizer DIR, or the bundled Qwen2.5 tokenizer when dir is NULL. */
static int load_tokenizer(const char *cmd, const char *dir, tok_tokenizer **t) {
    char path[4096];
    if (!dir) {
        if (srlm_resource_path("tokenizers/qwen2.5", path, sizeof path)) {
            fprintf(stderr, "srlm %s: %s (or pass --tokenizer DIR)\n", cmd, srlm_last_error());
            return 1;
        }
        dir = path;
    }
    if (tok_load(dir, t)) {
        fprintf(stderr, "srlm %s: %s\n", cmd, srlm_last_error());
        return 1;
    }
    return 0;
}

static void print_ids(FILE *f, const int32_t *ids, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", ids[i]);
    fputc(']', f);
}

/* Messages from a parsed JSON array of {role, content}; pointers borrow from j. */
static int messages_from_json(json_t *j, tok_message **out, int *n, char *err, size_t errlen) {
    size_t k = json_array_size(j);
    if (!json_is_array(j) || k == 0) { snprintf(err, errlen, "expected a non-empty JSON array of messages"); return -1; }
    tok_message *m = calloc(k, sizeof *m);
    if (!m) { snprintf(err, errlen, "out of memory"); return -1; }
    for (size_t i = 0; i < k; i++) {
        json_t *o = json_array_get(j, i);
        m[i].role = json_string_value(json_object_get(o, "role"));
        m[i].content = json_string_value(json_object_get(o, "content"));
        if (!m[i].role || !m[i].content) {
            snprintf(err, errlen, "message %zu: expected an object with string \"role\" and \"content\"", i);
            free(m);
            return -1;
        }
        if (strlen(m[i].content) != json_string_length(json_object_get(o, "content"))) {
            snprintf(err, errlen, "message %zu: \"content\" contains a NUL character (\\u0000)", i);
            free(m);
            return -1;
        }
    }
    *out = m;
    *n = (int)k;
    return 0;
}

typedef struct {
    int chat, parse_special, gen_prompt, mask;
} tokenize_opts;

/* Encode one input (a JSON value for --jsonl/--chat, or raw text) and print one line. */
static int tokenize_one(const tok_tokenizer *t, const tokenize_opts *o, const char *text, size_t len, json_t *msgs,
                        const char *where) {
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    size_t n = 0;
    int rc;
    if (o->chat) {
        tok_message one = {"user", text}, *m = &one;
        int nm = 1;
        char err[256];
        if (msgs && messages_from_json(msgs, &m, &nm, err, sizeof err)) {
            fprintf(stderr, "srlm tokenize: %s: %s\n", where, err);
            return 1;
        }
        int gp = o->gen_prompt && strcmp(m[nm - 1].role, "assistant");
        rc = tok_chat_render(t, m, nm, gp, NULL, &ids, o->mask ? &mask : NULL, &n);
        if (m != &one) free(m);
    } else {
        rc = tok_encode(t, text, len, o->parse_special, &ids, &n);
    }
    if (rc) {
        fprintf(stderr, "srlm tokenize: %s: %s\n", where, srlm_last_error());
        return 1;
    }
    if (mask) {
        fputs("{\"ids\":", stdout);
        print_ids(stdout, ids, n);
        fputs(",\"mask\":[", stdout);
        for (size_t i = 0; i < n; i++) fprintf(stdout, i ? ",%d" : "%d", mask[i]);
        fputs("]}\n", stdout);
    } else {
        print_ids(stdout, ids, n);
        fputc('\n', stdout);
    }
    free(ids);
    free(mask);
    return 0;
}

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: srlm tokenize [--tokenizer DIR] [--chat] [--no-special] TEXT\n"
            "       srlm tokenize [--tokenizer DIR] [--chat] [--no-special] --jsonl < in.jsonl > out.jsonl\n\n"
            "Prints the token ids of TEXT as a JSON array (no BOS/EOS is added).\n\n"
            "  -t, --tokenizer DIR  tokenizer directory (tokenizer.json[.gz]) or file;\n"
            "                       default: the bundled Qwen2.5 tokenizer (tokenizers/qwen2.5)\n"
            "      --chat           render with the Qwen2.5 ChatML template first: TEXT is a JSON array\n"
            "                       of {\"role\",\"content\"} messages, or else the content of one user\n"
            "                       message; the generation prompt is added unless the last message\n"
            "                       is from the assistant\n"
            "      --no-generation-prompt  with --chat: never add \"<|im_start|>assistant\\n\"\n"
            "      --mask           with --chat: print {\"ids\": [...], \"mask\": [...]} where mask marks\n"
            "                       assistant content + its <|im_end|> (SFT labels)\n"
            "      --no-special     treat added-token strings (\"<|im_end|>\") in TEXT as plain text\n"
            "      --jsonl          stream: each stdin line is a JSON string (with --chat also a JSON\n"
            "                       array of messages); each output line is the JSON array of its ids\n"
            "      --field NAME     with --jsonl: each line is a JSON object; encode its field NAME\n"
            "                       (e.g. --field question on GSM8K)\n"
            "  -h, --help           this help\n\n"
            "exit status: 0 ok, 1 bad input / tokenizer error (names the line), 2 usage error\n");
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"tokenizer", required_argument, 0, 't'}, {"chat", no_argument, 0, 'c'},
        {"no-special", no_argument, 0, 'S'},      {"jsonl", no_argument, 0, 'j'},
        {"no-generation-prompt", no_argument, 0, 'G'}, {"mask", no_argument, 0, 'm'},
        {"field", required_argument, 0, 'f'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dir = NULL, *field = NULL;
    tokenize_opts o = {.parse_special = 1, .gen_prompt = 1};
    int jsonl = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (c) {
        case 't': dir = optarg; break;
        case 'c': o.chat = 1; break;
        case 'S': o.parse_special = 0; break;
        case 'j': jsonl = 1; break;
        case 'G': o.gen_prompt = 0; break;
        case 'm': o.mask = 1; break;
        case 'f': field = optarg; break;
        case 'h': tokenize_usage(stdout); return 0;
        default: tokenize_usage(stderr); return 2;
        }
    }
    if (jsonl ? optind != argc : optind != argc - 1) {
        fprintf(stderr, "srlm tokenize: %s\n", jsonl ? "--jsonl reads stdin; no TEXT argument" : "expected one TEXT argument");
        tokenize_usage(stderr);
        return 2;
    }
    if (field && !jsonl) {
        fprintf(stderr, "srlm tokenize: --field needs --jsonl\n");
        return 2;
    }
    if (o.mask && !o.chat) {
        fprintf(stderr, "srlm tokenize: --mask needs --chat\n");
        return 2;
    }
    tok_tokenizer *t;
    if (load_tokenizer("tokenize", dir, &t)) return 1;
    int rc = 0;
    if (!jsonl) {
        const char *text = argv[optind];
        json_t *msgs = NULL;
        if (o.chat) {
            msgs = json_loads(text, JSON_DECODE_ANY, NULL);
            if (!json_is_array(msgs)) { json_decref(msgs); msgs = NULL; }
        }
        rc = tokenize_one(t, &o, text, strlen(text), msgs, "TEXT");
        json_decref(msgs);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        long lineno = 0;
        while (!rc && (len = getline(&line, &cap, stdin)) >= 0) {
            lineno++;
            char where[64];
            snprintf(where, sizeof where, "stdin:%ld", lineno);
            char *l = line;
            if (lineno == 1 && len >= 3 && !memcmp(l, "\xEF\xBB\xBF", 3)) { /* UTF-8 byte order mark */
                l += 3;
                len -= 3;
            }
            if ((size_t)len == strspn(l, " \t\r\n")) continue; /* blank line: no output */
            json_error_t e;
            /* JSON_ALLOW_NUL: "\u0000" in a string is an ordinary byte for tok_encode */
            json_t *j = json_loadb(l, (size_t)len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
            if (field && j) {
                json_t *v = json_object_get(j, field);
                if (!v) {
                    fprintf(stderr, "srlm tokenize: %s: no field \"%s\" in this line\n", where, field);
                    json_decref(j);
                    rc = 1;
                    break;
                }
                json_incref(v);
                json_decref(j);
                j = v;
            }
            if (json_is_string(j)) {
                rc = tokenize_one(t, &o, json_string_value(j), json_string_length(j), NULL, where);
            } else if (o.chat && json_is_array(j)) {
                rc = tokenize_one(t, &o, NULL, 0, j, where);
            } else {
                fprintf(stderr, "srlm tokenize: %s: expected a JSON string%s%s%s\n", where,
                        o.chat ? " or an array of messages" : "", j ? "" : ": ", j ? "" : e.text);
                rc = 1;
            }
            json_decref(j);
        }
        free(line);
    }
    tok_free(t);
    if (fflush(stdout) != 0) { perror("srlm tokenize: stdout"); rc = 1; }
    return rc;
}

static void detokenize_usage(FILE *f) {
    fprintf(f,
            "usage: srlm detokenize [--tokenizer DIR] [--skip-special] [--raw] [-n] IDS\n"
            "       srlm detokenize [--tokenizer DIR] [--skip-special] --jsonl < ids.jsonl\n\n"
            "Prints the text of token ids. IDS is \"1,2,3\" or \"[1,2,3]\".\n\n"
            "  -t, --tokenizer DIR  tokenizer directory or file (default: bundled Qwen2.5)\n"
            "      --skip-special   drop special added tokens (<|im_start|>, <|im_end|>, ...)\n"
            "      --raw            write the raw bytes (invalid UTF-8 is not replaced by U+FFFD)\n"
            "  -n, --no-newline     do not print a newline after the text\n"
            "      --jsonl          stream: each stdin line is a JSON array of ids, each output line\n"
            "                       the JSON string of its text\n"
            "  -h, --help           this help\n\n"
            "Ids not in the vocabulary (model padding rows) decode to nothing; negative ids are an\n"
            "error. exit status: 0 ok, 1 bad input, 2 usage error\n");
}

static int parse_ids(const char *s, int32_t **ids, size_t *n, char *err, size_t errlen) {
    while (*s == ' ') s++;
    json_t *j = NULL;
    if (*s == '[') {
        json_error_t e;
        j = json_loads(s, 0, &e);
        if (!json_is_array(j)) { snprintf(err, errlen, "invalid JSON array: %s", e.text); json_decref(j); return -1; }
    }
    if (j) {
        size_t k = json_array_size(j);
        *ids = malloc((k ? k : 1) * sizeof **ids);
        for (size_t i = 0; i < k; i++) {
            json_t *v = json_array_get(j, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
                snprintf(err, errlen, "element %zu is not a token id (non-negative integer)", i);
                free(*ids); *ids = NULL; json_decref(j);
                return -1;
            }
            (*ids)[i] = (int32_t)json_integer_value(v);
        }
        *n = k;
        json_decref(j);
        return 0;
    }
    int *v = NULL, k = 0;
    if (!*s) { *ids = malloc(sizeof **ids); *n = 0; return 0; }
    if (srlm_parse_int_list(s, &v, &k)) { snprintf(err, errlen, "%s", srlm_last_error()); return -1; }
    *ids = malloc((k ? (size_t)k : 1) * sizeof **ids);
    for (int i = 0; i < k; i++) {
        if (v[i] < 0) { snprintf(err, errlen, "element %d is negative", i); free(v); free(*ids); *ids = NULL; return -1; }
        (*ids)[i] = v[i];
    }
    *n = (size_t)k;
    free(v);
    return 0;
}

int cmd_detokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"tokenizer", required_argument, 0, 't'}, {"skip-special", no_argument, 0, 's'},
        {"raw", no_argument, 0, 'r'},             {"no-newline", no_argument, 0, 'n'},
        {"jsonl", no_argument, 0, 'j'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dir = NULL;
    int flags = 0, newline = 1, jsonl = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:nh", opts, NULL)) != -1) {
        switch (c) {
        case 't': dir = optarg; break;
        case 's': flags |= TOK_DECODE_SKIP_SPECIAL; break;
        case 'r': flags |= TOK_DECODE_RAW; break;
        case 'n': newline = 0; break;
        case 'j': jsonl = 1; break;
        case 'h': detokenize_usage(stdout); return 0;
        default: detokenize_usage(stderr); return 2;
        }
    }
    if (jsonl ? optind != argc : optind != argc - 1) {
        fprintf(stderr, "srlm detokenize: %s\n", jsonl ? "--jsonl reads stdin; no IDS argument" : "expected one IDS argument");
        detokenize_usage(stderr);
        return 2;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    char err[256];
    if (!jsonl && parse_ids(argv[optind], &ids, &n, err, sizeof err)) {
        fprintf(stderr, "srlm detokenize: IDS: %s\n", err);
        return 2;
    }
    tok_tokenizer *t;
    if (load_tokenizer("detokenize", dir, &t)) { free(ids); return 1; }
    int rc = 0;
    if (!jsonl) {
        char *text;
        size_t len;
        if (tok_decode(t, ids, n, flags, &text, &len)) {
            fprintf(stderr, "srlm detokenize: %s\n", srlm_last_error());
            rc = 1;
        } else {
            fwrite(text, 1, len, stdout);
            if (newline) fputc('\n', stdout);
            free(text);
        }
    } else {
        char *line = NULL;
        size_t cap = 0;
        long lineno = 0;
        while (!rc && getline(&line, &cap, stdin) >= 0) {
            lineno++;
            char *text;
            size_t len;
            line[strcspn(line, "\r\n")] = 0;
            if (parse_ids(line, &ids, &n, err, sizeof err)) {
                fprintf(stderr, "srlm detokenize: stdin:%ld: %s\n", lineno, err);
                rc = 1;
                break;
            }
            if (tok_decode(t, ids, n, flags & ~TOK_DECODE_RAW, &text, &len)) {
                fprintf(stderr, "srlm detokenize: stdin:%ld: %s\n", lineno, srlm_last_error());
                rc = 1;
            } else {
                json_t *js = json_stringn(text, len);
                char *out = json_dumps(js, JSON_ENCODE_ANY);
                puts(out ? out : "\"\"");
                free(out);
                json_decref(js);
                free(text);
            }
            free(ids);
            ids = NULL;
        }
        free(line);
    }
    free(ids);
    tok_free(t);
    if (fflush(stdout) != 0) { perror("srlm detokenize: stdout"); rc = 1; }
    return rc;
}

static void tokenizer_usage(FILE *f) {
    fprintf(f,
            "usage: srlm tokenizer init-bytes --out DIR\n"
            "       srlm tokenizer info [--tokenizer DIR]\n\n"
            "  init-bytes  write DIR/tokenizer.json + tokenizer_config.json of a byte-level vocabulary\n"
            "              (ids 0..255 = bytes, 256 <|endoftext|>, 257 <|im_start|>, 258 <|im_end|>;\n"
            "              no merges) for tiny models\n"
            "  info        print vocabulary size and the eos, pad and ChatML ids as JSON\n"
            "  -o, --out DIR        output directory (created)\n"
            "  -t, --tokenizer DIR  tokenizer to describe (default: bundled Qwen2.5)\n"
            "  -h, --help           this help\n");
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        tokenizer_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"tokenizer", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    const char *out = NULL, *dir = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't': dir = optarg; break;
        case 'h': tokenizer_usage(stdout); return 0;
        default: tokenizer_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "srlm tokenizer: unexpected argument '%s'\n", argv[1 + optind]);
        return 2;
    }
    if (!strcmp(sub, "init-bytes")) {
        if (!out) {
            fprintf(stderr, "srlm tokenizer init-bytes: --out DIR is required\n");
            return 2;
        }
        if (tok_write_byte_level(out)) {
            fprintf(stderr, "srlm tokenizer init-bytes: %s\n", srlm_last_error());
            return 1;
        }
        printf("%s/tokenizer.json\n", out);
        return 0;
    }
    if (!strcmp(sub, "info")) {
        tok_tokenizer *t;
        if (load_tokenizer("tokenizer info", dir, &t)) return 1;
        printf("{\"vocab_size\":%d,\"eos_id\":%d,\"pad_id\":%d,\"im_start_id\":%d,\"im_end_id\":%d}\n",
               tok_vocab_size(t), tok_eos_id(t), tok_pad_id(t), tok_token_to_id(t, "<|im_start|>"),
               tok_token_to_id(t, "<|im_end|>"));
        tok_free(t);
        return 0;
    }
    fprintf(stderr, "srlm tokenizer: unknown subcommand '%s' (init-bytes, info)\n", sub);
    return 2;
}
