/* store.c — the LMDB dataset store (see store.h for the layout and contracts). */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

struct ds_store {
    MDB_env *env;
    MDB_dbi rec, ord, meta, cursor;
    int rdonly;
    char *path;
    MDB_txn *rtxn; /* ds_read_begin .. ds_read_end */
};

static int lmdb_err(int rc, const char *what, const char *path) {
    return srlm_set_error(rc == MDB_MAP_FULL ? SRLM_ENOMEM : SRLM_EIO, "dataset store %s: %s: %s", path ? path : "",
                          what, mdb_strerror(rc));
}

const char *ds_path(const ds_store *s) { return s->path; }

int ds_open(const char *path, int flags, ds_store **out) {
    *out = NULL;
    int rdonly = (flags & DS_RDONLY) != 0;
    if (!rdonly) {
        int rc = srlm_mkdir_p(path);
        if (rc) return rc;
    } else if (!srlm_file_exists(path)) {
        return srlm_set_error(SRLM_ENOTFOUND, "dataset store %s does not exist (run `srlm data import`)", path);
    }
    ds_store *s = srlm_xcalloc(1, sizeof *s);
    s->path = srlm_xstrdup(path);
    s->rdonly = rdonly;
    int rc = mdb_env_create(&s->env);
    if (rc) { ds_close(s); return lmdb_err(rc, "mdb_env_create", path); }
    mdb_env_set_maxdbs(s->env, 8);
    mdb_env_set_maxreaders(s->env, 126);
    mdb_env_set_mapsize(s->env, (size_t)8 << 30); /* sparse: 8 GiB of address space */
    const char *ns = getenv("SRLM_DS_NOSYNC");
    unsigned eflags = MDB_NOTLS;
    if (rdonly) eflags |= MDB_RDONLY;
    if ((flags & DS_NOSYNC) || (ns && !strcmp(ns, "1"))) eflags |= MDB_NOSYNC;
    rc = mdb_env_open(s->env, path, eflags, 0644);
    if (rc) { ds_close(s); return lmdb_err(rc, "open", path); }
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* free reader slots of killed processes */
    if (dead) SRLM_DEBUG("dataset store %s: cleared %d stale reader slots", path, dead);
    MDB_txn *txn;
    rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
    if (rc) { ds_close(s); return lmdb_err(rc, "begin", path); }
    unsigned cf = rdonly ? 0 : MDB_CREATE;
    if ((rc = mdb_dbi_open(txn, "rec", cf, &s->rec)) || (rc = mdb_dbi_open(txn, "ord", cf, &s->ord)) ||
        (rc = mdb_dbi_open(txn, "meta", cf, &s->meta)) || (rc = mdb_dbi_open(txn, "cursor", cf, &s->cursor))) {
        mdb_txn_abort(txn);
        ds_close(s);
        if (rc == MDB_NOTFOUND)
            return srlm_set_error(SRLM_ENOTFOUND, "%s is not a dataset store (no records database)", path);
        return lmdb_err(rc, "open databases", path);
    }
    MDB_val k = {14, "schema_version"}, v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0) {
        char buf[16] = {0};
        memcpy(buf, v.mv_data, v.mv_size < 15 ? v.mv_size : 15);
        if (atoi(buf) > DS_SCHEMA_VERSION)
            SRLM_WARN("dataset store %s was written by schema %s (this build: %d); newer fields are ignored", path, buf,
                      DS_SCHEMA_VERSION);
    } else if (rc == MDB_NOTFOUND && !rdonly) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", DS_SCHEMA_VERSION);
        v.mv_data = buf;
        v.mv_size = strlen(buf);
        rc = mdb_put(txn, s->meta, &k, &v, 0);
    } else {
        rc = 0;
    }
    if (rc) { mdb_txn_abort(txn); ds_close(s); return lmdb_err(rc, "init", path); }
    rc = mdb_txn_commit(txn);
    if (rc) { ds_close(s); return lmdb_err(rc, "commit", path); }
    *out = s;
    return 0;
}

void ds_close(ds_store *s) {
    if (!s) return;
    if (s->rtxn) mdb_txn_abort(s->rtxn);
    if (s->env) mdb_env_close(s->env);
    free(s->path);
    free(s);
}

/* ---- records ------------------------------------------------------------------------ */

void ds_record_free(Dataset__Record *r) {
    if (r) dataset__record__free_unpacked(r, NULL);
}

Dataset__Record *ds_record_new(void) {
    Dataset__Record *r = srlm_xmalloc(sizeof *r);
    dataset__record__init(r);
    r->has_schema_version = 1;
    r->schema_version = DS_SCHEMA_VERSION;
    return r;
}

void ds_set_str(char **field, const char *v) {
    free(*field);
    *field = v ? srlm_xstrdup(v) : NULL;
}

void ds_push_str(char ***arr, size_t *n, const char *v) {
    *arr = srlm_xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[(*n)++] = srlm_xstrdup(v);
}

void ds_push_message(Dataset__Record *r, const char *role, const char *content) {
    Dataset__ChatMessage *m = srlm_xmalloc(sizeof *m);
    dataset__chat_message__init(m);
    m->role = srlm_xstrdup(role);
    m->content = srlm_xstrdup(content);
    r->messages = srlm_xrealloc(r->messages, (r->n_messages + 1) * sizeof *r->messages);
    r->messages[r->n_messages++] = m;
}

static void jset_str(json_t *o, const char *k, const char *v) {
    if (v) json_object_set_new(o, k, json_string(v));
}

json_t *ds_record_to_jsonobj(const Dataset__Record *r) {
    json_t *o = json_object();
    jset_str(o, "id", r->id);
    jset_str(o, "source", r->source);
    jset_str(o, "split", r->split);
    jset_str(o, "kind", r->kind);
    jset_str(o, "prompt", r->prompt);
    jset_str(o, "answer", r->answer);
    jset_str(o, "solution", r->solution);
    jset_str(o, "solution_clean", r->solution_clean);
    jset_str(o, "tests", r->tests);
    if (r->n_test_list) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_test_list; i++) json_array_append_new(a, json_string(r->test_list[i]));
        json_object_set_new(o, "test_list", a);
    }
    jset_str(o, "setup_code", r->setup_code);
    jset_str(o, "entry_point", r->entry_point);
    jset_str(o, "code_format", r->code_format);
    if (r->n_messages) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_messages; i++) {
            json_t *m = json_object();
            jset_str(m, "role", r->messages[i]->role ? r->messages[i]->role : "");
            jset_str(m, "content", r->messages[i]->content ? r->messages[i]->content : "");
            json_array_append_new(a, m);
        }
        json_object_set_new(o, "messages", a);
    }
    jset_str(o, "completion", r->completion);
    if (r->metadata_json) {
        json_t *m = json_loads(r->metadata_json, JSON_DECODE_ANY, NULL);
        if (m) json_object_set_new(o, "metadata", m);
        else json_object_set_new(o, "metadata", json_string(r->metadata_json));
    }
    return o;
}

int ds_record_to_json(const Dataset__Record *r, char **out) {
    json_t *o = ds_record_to_jsonobj(r);
    *out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!*out) return srlm_set_error(SRLM_ENOMEM, "record %s: JSON encoding failed", r->id ? r->id : "?");
    return 0;
}

static char **str_field(Dataset__Record *r, const char *k) {
    if (!strcmp(k, "id")) return &r->id;
    if (!strcmp(k, "source")) return &r->source;
    if (!strcmp(k, "split")) return &r->split;
    if (!strcmp(k, "kind")) return &r->kind;
    if (!strcmp(k, "prompt")) return &r->prompt;
    if (!strcmp(k, "answer")) return &r->answer;
    if (!strcmp(k, "solution")) return &r->solution;
    if (!strcmp(k, "solution_clean")) return &r->solution_clean;
    if (!strcmp(k, "tests")) return &r->tests;
    if (!strcmp(k, "setup_code")) return &r->setup_code;
    if (!strcmp(k, "entry_point")) return &r->entry_point;
    if (!strcmp(k, "code_format")) return &r->code_format;
    if (!strcmp(k, "completion")) return &r->completion;
    return NULL;
}

int ds_record_from_jsonobj(const json_t *o, Dataset__Record **out, char *err, size_t errlen) {
    *out = NULL;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "record is not a JSON object");
        return SRLM_EFORMAT;
    }
    Dataset__Record *r = ds_record_new();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        char **f = str_field(r, k);
        if (f) {
            if (!json_is_string(v)) { snprintf(err, errlen, "%s: expected a string", k); goto bad; }
            ds_set_str(f, json_string_value(v));
        } else if (!strcmp(k, "test_list")) {
            if (!json_is_array(v)) { snprintf(err, errlen, "test_list: expected an array of strings"); goto bad; }
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_string(e)) { snprintf(err, errlen, "test_list[%zu]: expected a string", i); goto bad; }
                ds_push_str(&r->test_list, &r->n_test_list, json_string_value(e));
            }
        } else if (!strcmp(k, "messages")) {
            if (!json_is_array(v)) { snprintf(err, errlen, "messages: expected an array of {role, content}"); goto bad; }
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                json_t *ro = json_object_get(e, "role"), *co = json_object_get(e, "content");
                if (!json_is_string(ro) || !json_is_string(co)) {
                    snprintf(err, errlen, "messages[%zu]: expected {\"role\": string, \"content\": string}", i);
                    goto bad;
                }
                ds_push_message(r, json_string_value(ro), json_string_value(co));
            }
        } else if (!strcmp(k, "metadata")) {
            if (!json_is_object(v)) { snprintf(err, errlen, "metadata: expected an object"); goto bad; }
            r->metadata_json = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        } else {
            snprintf(err, errlen, "%s: unknown field (records.md lists the fields)", k);
            goto bad;
        }
    }
    *out = r;
    return 0;
bad:
    ds_record_free(r);
    return SRLM_EFORMAT;
}

/* ---- writes ------------------------------------------------------------------------- */

static size_t ord_key(char *buf, size_t cap, const char *source, const char *split, uint32_t ordinal) {
    size_t a = strlen(source), b = strlen(split);
    if (a + b + 6 > cap) return 0;
    memcpy(buf, source, a + 1);
    memcpy(buf + a + 1, split, b + 1);
    unsigned char *p = (unsigned char *)buf + a + b + 2;
    p[0] = (unsigned char)(ordinal >> 24);
    p[1] = (unsigned char)(ordinal >> 16);
    p[2] = (unsigned char)(ordinal >> 8);
    p[3] = (unsigned char)ordinal;
    return a + b + 6;
}

static int bump_generation(MDB_txn *txn, MDB_dbi meta) {
    MDB_val k = {10, "generation"}, v;
    uint64_t g = 0;
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8) memcpy(&g, v.mv_data, 8);
    g++;
    v.mv_data = &g;
    v.mv_size = 8;
    return mdb_put(txn, meta, &k, &v, 0);
}

uint64_t ds_generation(ds_store *s) {
    MDB_txn *txn;
    uint64_t g = 0;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) return 0;
    MDB_val k = {10, "generation"}, v;
    if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == 8) memcpy(&g, v.mv_data, 8);
    mdb_txn_abort(txn);
    return g;
}

static int replace_group(ds_store *s, MDB_txn *txn, const ds_group *g);

int ds_replace(ds_store *s, const ds_group *groups, int n_groups) {
    if (s->rdonly) return srlm_set_error(SRLM_EINVAL, "dataset store %s is open read-only", s->path);
    for (int gi = 0; gi < n_groups; gi++) {
        const ds_group *g = &groups[gi];
        if (!*g->source || !*g->split || strchr(g->source, '/') || strchr(g->split, '/') || strchr(g->source, ',') ||
            strchr(g->split, ','))
            return srlm_set_error(SRLM_EINVAL, "bad source/split name '%s'/'%s' (no '/' or ',', not empty)",
                                  g->source, g->split);
        for (size_t i = 0; i < g->n; i++) {
            Dataset__Record *r = g->recs[i];
            if (!r->id || !r->source || !r->split || strcmp(r->source, g->source) || strcmp(r->split, g->split))
                return srlm_set_error(SRLM_EINTERNAL, "record %zu: id/source/split missing or not %s/%s", i,
                                      g->source, g->split);
        }
    }
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, "begin write", s->path);
    for (int gi = 0; gi < n_groups; gi++) {
        rc = replace_group(s, txn, &groups[gi]);
        if (rc) { mdb_txn_abort(txn); return rc; }
    }
    if ((rc = bump_generation(txn, s->meta))) { mdb_txn_abort(txn); return lmdb_err(rc, "write", s->path); }
    rc = mdb_txn_commit(txn);
    if (rc) return lmdb_err(rc, "commit", s->path);
    return 0;
}

uint64_t ds_total(ds_store *s) {
    MDB_txn *txn;
    MDB_stat st;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) return 0;
    int rc = mdb_stat(txn, s->rec, &st);
    mdb_txn_abort(txn);
    return rc ? 0 : st.ms_entries;
}

/* Delete the old (source, split) and write the group's records, inside txn. */
static int replace_group(ds_store *s, MDB_txn *txn, const ds_group *g) {
    const char *source = g->source, *split = g->split;
    Dataset__Record **recs = g->recs;
    size_t n = g->n;
    const ds_import_meta *meta = g->meta;
    int rc;
    char kb[1024];
    MDB_cursor *cur = NULL;
    /* 1. delete the old records of (source, split) and their index */
    size_t plen = ord_key(kb, sizeof kb, source, split, 0);
    if (!plen) return srlm_set_error(SRLM_EINVAL, "source/split names too long");
    plen -= 4;
    rc = mdb_cursor_open(txn, s->ord, &cur);
    if (rc) goto lmdb_fail;
    MDB_val k = {plen, kb}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0 && k.mv_size == plen + 4 && memcmp(k.mv_data, kb, plen) == 0) {
        MDB_val rk = v;
        int drc = mdb_del(txn, s->rec, &rk, NULL);
        if (drc && drc != MDB_NOTFOUND) { rc = drc; goto lmdb_fail; }
        if ((rc = mdb_cursor_del(cur, 0))) goto lmdb_fail;
        k.mv_size = plen;
        k.mv_data = kb;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    cur = NULL;
    /* 2. put the new records */
    size_t bufcap = 4096;
    unsigned char *buf = srlm_xmalloc(bufcap);
    for (size_t i = 0; i < n; i++) {
        Dataset__Record *r = recs[i];
        r->has_schema_version = 1;
        r->schema_version = DS_SCHEMA_VERSION;
        r->has_ordinal = 1;
        r->ordinal = (uint32_t)i;
        size_t len = dataset__record__get_packed_size(r);
        if (len > bufcap) { bufcap = len * 2; buf = srlm_xrealloc(buf, bufcap); }
        dataset__record__pack(r, buf);
        size_t idlen = strlen(r->id);
        if (idlen == 0 || idlen > 500) {
            free(buf);
            return srlm_set_error(SRLM_EINVAL, "record %zu: id '%.60s' is empty or longer than 500 bytes", i, r->id);
        }
        MDB_val rk = {idlen, r->id}, rv = {len, buf};
        rc = mdb_put(txn, s->rec, &rk, &rv, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            free(buf);
            return srlm_set_error(SRLM_EFORMAT, "%s/%s record %zu: duplicate id '%s' (already in the store or in this import)",
                                  source, split, i, r->id);
        }
        if (rc) { free(buf); goto lmdb_fail; }
        size_t kl = ord_key(kb, sizeof kb, source, split, (uint32_t)i);
        MDB_val ok = {kl, kb}, ov = {idlen, r->id};
        if ((rc = mdb_put(txn, s->ord, &ok, &ov, 0))) { free(buf); goto lmdb_fail; }
    }
    free(buf);
    /* 3. import metadata */
    if (meta) {
        json_t *m = json_object();
        json_object_set_new(m, "format", json_string(meta->format ? meta->format : ""));
        json_t *fa = json_array();
        for (int i = 0; i < meta->n_files; i++) {
            json_t *f = json_object();
            json_object_set_new(f, "path", json_string(meta->files[i]));
            if (meta->sha256) json_object_set_new(f, "sha256", json_string(meta->sha256[i]));
            if (meta->content_sha256 && meta->content_sha256[i])
                json_object_set_new(f, "content_sha256", json_string(meta->content_sha256[i]));
            if (meta->bytes) json_object_set_new(f, "bytes", json_integer((json_int_t)meta->bytes[i]));
            if (meta->records) json_object_set_new(f, "records", json_integer((json_int_t)meta->records[i]));
            json_array_append_new(fa, f);
        }
        json_object_set_new(m, "files", fa);
        json_object_set_new(m, "records", json_integer((json_int_t)n));
        json_object_set_new(m, "schema_version", json_integer(DS_SCHEMA_VERSION));
        char ts[40];
        srlm_iso_time(ts, sizeof ts);
        json_object_set_new(m, "time", json_string(ts));
        if (meta->extra_json) {
            json_t *x = json_loads(meta->extra_json, 0, NULL);
            if (json_is_object(x)) json_object_update(m, x);
            json_decref(x);
        }
        char *txt = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(m);
        char mk[600];
        snprintf(mk, sizeof mk, "import/%s/%s", source, split);
        MDB_val mkv = {strlen(mk), mk}, mv = {strlen(txt), txt};
        rc = mdb_put(txn, s->meta, &mkv, &mv, 0);
        free(txt);
        if (rc) goto lmdb_fail;
    }
    return 0;
lmdb_fail:
    if (cur) mdb_cursor_close(cur);
    return lmdb_err(rc, "write", s->path);
}

/* ---- reads -------------------------------------------------------------------------- */

static int unpack_record(const MDB_val *v, const char *id, Dataset__Record **out) {
    *out = dataset__record__unpack(NULL, v->mv_size, v->mv_data);
    if (!*out) return srlm_set_error(SRLM_EFORMAT, "record %s: stored bytes do not decode", id);
    return 0;
}

int ds_get(ds_store *s, const char *id, Dataset__Record **out) {
    *out = NULL;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(rc, "begin read", s->path);
    MDB_val k = {strlen(id), (void *)id}, v;
    rc = mdb_get(txn, s->rec, &k, &v);
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return srlm_set_error(SRLM_ENOTFOUND, "no record with id '%s'", id);
    }
    if (rc) { mdb_txn_abort(txn); return lmdb_err(rc, "get", s->path); }
    rc = unpack_record(&v, id, out);
    mdb_txn_abort(txn);
    return rc;
}

int ds_read_begin(ds_store *s) {
    if (s->rtxn) return 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
    if (rc) { s->rtxn = NULL; return lmdb_err(rc, "begin read", s->path); }
    return 0;
}

int ds_read_packed(ds_store *s, const char *id, const void **data, size_t *len) {
    MDB_val k = {strlen(id), (void *)id}, v;
    int rc = mdb_get(s->rtxn, s->rec, &k, &v);
    if (rc == MDB_NOTFOUND) return srlm_set_error(SRLM_ENOTFOUND, "no record with id '%s'", id);
    if (rc) return lmdb_err(rc, "get", s->path);
    *data = v.mv_data;
    *len = v.mv_size;
    return 0;
}

void ds_read_end(ds_store *s) {
    if (s->rtxn) mdb_txn_abort(s->rtxn);
    s->rtxn = NULL;
}

/* Split a comma list into a sorted, deduplicated array of heap strings. */
static size_t split_list(const char *s, char ***out) {
    *out = NULL;
    size_t n = 0;
    if (!s) return 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        while (l && (*p == ' ')) { p++; l--; }
        while (l && p[l - 1] == ' ') l--;
        if (l) {
            *out = srlm_xrealloc(*out, (n + 1) * sizeof **out);
            char *x = srlm_xmalloc(l + 1);
            memcpy(x, p, l);
            x[l] = 0;
            (*out)[n++] = x;
        }
        if (!e) break;
        p = e + 1;
    }
    if (n > 1) qsort(*out, n, sizeof **out, srlm_cmp_strp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !strcmp((*out)[m - 1], (*out)[i])) { free((*out)[i]); continue; }
        (*out)[m++] = (*out)[i];
    }
    return m;
}

static void free_list(char **l, size_t n) {
    for (size_t i = 0; i < n; i++) free(l[i]);
    free(l);
}

static int in_list(char **l, size_t n, const char *x) {
    if (!n) return 1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(l[i], x)) return 1;
    return 0;
}

/* Walk the ord index; for each entry whose source/split pass the filters call fn. */
typedef int (*ord_fn)(void *ctx, const char *source, const char *split, const MDB_val *id);

static int walk_ord(ds_store *s, MDB_txn *txn, char **src, size_t nsrc, char **spl, size_t nspl, ord_fn fn,
                    void *ctx) {
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->ord, &cur);
    if (rc) return lmdb_err(rc, "cursor", s->path);
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    char seek[1100];
    while (mrc == 0) {
        const char *source = k.mv_data;
        size_t a = strnlen(source, k.mv_size);
        if (a + 6 > k.mv_size) { mdb_cursor_close(cur); return srlm_set_error(SRLM_EFORMAT, "corrupt index key"); }
        const char *split = source + a + 1;
        size_t b = strnlen(split, k.mv_size - a - 1);
        int pass = in_list(src, nsrc, source) && in_list(spl, nspl, split);
        if (!pass) {
            /* skip the whole (source, split) range: seek past prefix + 0xFFFFFFFF */
            if (a + b + 6 > sizeof seek) break;
            memcpy(seek, k.mv_data, a + b + 2);
            memset(seek + a + b + 2, 0xff, 4);
            MDB_val sk = {a + b + 6, seek};
            mrc = mdb_cursor_get(cur, &sk, &v, MDB_SET_RANGE);
            if (mrc == 0 && sk.mv_size == a + b + 6 && !memcmp(sk.mv_data, seek, a + b + 6))
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            else
                k = sk;
            continue;
        }
        rc = fn(ctx, source, split, &v);
        if (rc) { mdb_cursor_close(cur); return rc; }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return 0;
}

typedef struct {
    Dataset__Count **c;
    size_t n;
    uint64_t total;
} counts_ctx;

static int count_fn(void *vctx, const char *source, const char *split, const MDB_val *id) {
    counts_ctx *c = vctx;
    c->total++;
    if (c->n && !strcmp(c->c[c->n - 1]->source, source) && !strcmp(c->c[c->n - 1]->split, split)) {
        c->c[c->n - 1]->n++;
        return 0;
    }
    Dataset__Count *x = srlm_xmalloc(sizeof *x);
    dataset__count__init(x);
    x->source = srlm_xstrdup(source);
    x->split = srlm_xstrdup(split);
    x->has_n = 1;
    x->n = 1;
    c->c = srlm_xrealloc(c->c, (c->n + 1) * sizeof *c->c);
    c->c[c->n++] = x;
    return 0;
}

int ds_counts(ds_store *s, Dataset__Count ***counts, size_t *n, uint64_t *total) {
    counts_ctx c = {0};
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(rc, "begin read", s->path);
    rc = walk_ord(s, txn, NULL, 0, NULL, 0, count_fn, &c);
    mdb_txn_abort(txn);
    if (rc) { ds_counts_free(c.c, c.n); return rc; }
    *counts = c.c;
    *n = c.n;
    if (total) *total = c.total;
    return 0;
}

void ds_counts_free(Dataset__Count **counts, size_t n) {
    for (size_t i = 0; i < n; i++) dataset__count__free_unpacked(counts[i], NULL);
    free(counts);
}

int ds_import_info(ds_store *s, const char *source, const char *split, char **out) {
    char mk[600];
    snprintf(mk, sizeof mk, "import/%s/%s", source, split);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(rc, "begin read", s->path);
    MDB_val k = {strlen(mk), mk}, v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc) {
        mdb_txn_abort(txn);
        return srlm_set_error(SRLM_ENOTFOUND, "no import metadata for %s/%s", source, split);
    }
    *out = srlm_xmalloc(v.mv_size + 1);
    memcpy(*out, v.mv_data, v.mv_size);
    (*out)[v.mv_size] = 0;
    mdb_txn_abort(txn);
    return 0;
}

typedef struct {
    ds_store *s;
    MDB_txn *txn;
    int (*fn)(void *, const Dataset__Record *);
    void *ctx;
} foreach_ctx;

static int foreach_fn(void *vctx, const char *source, const char *split, const MDB_val *id) {
    foreach_ctx *c = vctx;
    MDB_val v;
    int rc = mdb_get(c->txn, c->s->rec, (MDB_val *)id, &v);
    if (rc) return srlm_set_error(SRLM_EFORMAT, "index of %s/%s names a missing record", source, split);
    Dataset__Record *r = dataset__record__unpack(NULL, v.mv_size, v.mv_data);
    if (!r) return srlm_set_error(SRLM_EFORMAT, "a record of %s/%s does not decode", source, split);
    rc = c->fn(c->ctx, r);
    ds_record_free(r);
    return rc;
}

int ds_foreach(ds_store *s, const char *sources, const char *splits, int (*fn)(void *, const Dataset__Record *),
               void *ctx) {
    char **src, **spl;
    size_t nsrc = split_list(sources, &src), nspl = split_list(splits, &spl);
    foreach_ctx c = {s, NULL, fn, ctx};
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &c.txn);
    if (rc) { free_list(src, nsrc); free_list(spl, nspl); return lmdb_err(rc, "begin read", s->path); }
    rc = walk_ord(s, c.txn, src, nsrc, spl, nspl, foreach_fn, &c);
    mdb_txn_abort(c.txn);
    free_list(src, nsrc);
    free_list(spl, nspl);
    return rc;
}

/* ---- selections --------------------------------------------------------------------- */

#define SEL_CACHE 2
struct ds_selection {
    char **ids;
    uint64_t n;
    uint64_t generation;
    uint64_t seed;
    int shuffle;
    struct {
        uint64_t epoch;
        uint32_t *perm; /* NULL = empty slot */
    } cache[SEL_CACHE];
    int next_slot;
};

typedef struct {
    char **ids;
    uint64_t n, cap;
} ids_ctx;

static int ids_fn(void *vctx, const char *source, const char *split, const MDB_val *id) {
    ids_ctx *c = vctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->ids = srlm_xrealloc(c->ids, c->cap * sizeof *c->ids);
    }
    char *x = srlm_xmalloc(id->mv_size + 1);
    memcpy(x, id->mv_data, id->mv_size);
    x[id->mv_size] = 0;
    c->ids[c->n++] = x;
    return 0;
}

static char *join_spec_list(char **l, size_t n) {
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += strlen(l[i]) + 1;
    char *s = srlm_xmalloc(len);
    s[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(s, ",");
        strcat(s, l[i]);
    }
    return s;
}

static size_t spec_list(char *const *items, size_t n, char ***out) {
    /* join then split: normalizes both "a,b" items and repeated items */
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += strlen(items[i]) + 1;
    char *s = srlm_xmalloc(len);
    s[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(s, ",");
        strcat(s, items[i]);
    }
    size_t m = split_list(s, out);
    free(s);
    return m;
}

void ds_spec_key(const Dataset__StreamSpec *spec, char *out, size_t outlen) {
    char **src, **spl;
    size_t nsrc = spec_list(spec->sources, spec->n_sources, &src), nspl = spec_list(spec->splits, spec->n_splits, &spl);
    char *a = join_spec_list(src, nsrc), *b = join_spec_list(spl, nspl);
    snprintf(out, outlen, "sources=%s;splits=%s;seed=%llu;shuffle=%d", a, b, (unsigned long long)spec->seed,
             spec->has_shuffle ? (int)spec->shuffle : 1);
    free(a);
    free(b);
    free_list(src, nsrc);
    free_list(spl, nspl);
}

int ds_selection_build(ds_store *s, const Dataset__StreamSpec *spec, ds_selection **out) {
    *out = NULL;
    char **src, **spl;
    size_t nsrc = spec_list(spec->sources, spec->n_sources, &src), nspl = spec_list(spec->splits, spec->n_splits, &spl);
    ids_ctx c = {0};
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    uint64_t gen = 0;
    if (!rc) {
        MDB_val k = {10, "generation"}, v;
        if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == 8) memcpy(&gen, v.mv_data, 8);
        rc = walk_ord(s, txn, src, nsrc, spl, nspl, ids_fn, &c);
        mdb_txn_abort(txn);
    } else {
        rc = lmdb_err(rc, "begin read", s->path);
    }
    if (!rc && c.n == 0) {
        char key[512];
        ds_spec_key(spec, key, sizeof key);
        rc = srlm_set_error(SRLM_ENOTFOUND, "the stream %s selects no record", key);
    }
    if (!rc && c.n > UINT32_MAX) rc = srlm_set_error(SRLM_EUNSUPPORTED, "stream of more than 2^32 records");
    free_list(src, nsrc);
    free_list(spl, nspl);
    if (rc) {
        free_list(c.ids, c.n);
        return rc;
    }
    ds_selection *sel = srlm_xcalloc(1, sizeof *sel);
    sel->ids = c.ids;
    sel->n = c.n;
    sel->generation = gen;
    sel->seed = spec->seed;
    sel->shuffle = spec->has_shuffle ? spec->shuffle : 1;
    *out = sel;
    return 0;
}

void ds_selection_free(ds_selection *sel) {
    if (!sel) return;
    free_list(sel->ids, sel->n);
    for (int i = 0; i < SEL_CACHE; i++) free(sel->cache[i].perm);
    free(sel);
}

uint64_t ds_selection_size(const ds_selection *sel) { return sel->n; }
uint64_t ds_selection_generation(const ds_selection *sel) { return sel->generation; }

const char *ds_selection_at(ds_selection *sel, uint64_t p) {
    uint64_t e = p / sel->n, i = p % sel->n;
    if (!sel->shuffle) return sel->ids[i];
    for (int j = 0; j < SEL_CACHE; j++)
        if (sel->cache[j].perm && sel->cache[j].epoch == e) return sel->ids[sel->cache[j].perm[i]];
    int slot = sel->next_slot;
    sel->next_slot = (slot + 1) % SEL_CACHE;
    uint32_t *perm = sel->cache[slot].perm;
    if (!perm) perm = srlm_xmalloc(sel->n * sizeof *perm);
    for (uint64_t k = 0; k < sel->n; k++) perm[k] = (uint32_t)k;
    srlm_rng rng;
    srlm_rng_seed(&rng, sel->seed ^ ((e + 1) * 0x9E3779B97F4A7C15ULL));
    for (uint64_t k = sel->n - 1; k > 0; k--) {
        uint64_t j = srlm_rng_below(&rng, k + 1);
        uint32_t t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
    sel->cache[slot].perm = perm;
    sel->cache[slot].epoch = e;
    return sel->ids[perm[i]];
}

/* ---- consumers ---------------------------------------------------------------------- */

int ds_consumer_get(ds_store *s, const char *name, Dataset__ConsumerState **out) {
    *out = NULL;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(rc, "begin read", s->path);
    MDB_val k = {strlen(name), (void *)name}, v;
    rc = mdb_get(txn, s->cursor, &k, &v);
    if (rc) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND) return srlm_set_error(SRLM_ENOTFOUND, "unknown consumer '%s'", name);
        return lmdb_err(rc, "get consumer", s->path);
    }
    *out = dataset__consumer_state__unpack(NULL, v.mv_size, v.mv_data);
    mdb_txn_abort(txn);
    if (!*out) return srlm_set_error(SRLM_EFORMAT, "consumer '%s': stored state does not decode", name);
    return 0;
}

static int put_state(ds_store *s, MDB_txn *txn, const char *name, const Dataset__ConsumerState *st) {
    size_t len = dataset__consumer_state__get_packed_size(st);
    unsigned char *buf = srlm_xmalloc(len ? len : 1);
    dataset__consumer_state__pack(st, buf);
    MDB_val k = {strlen(name), (void *)name}, v = {len, buf};
    int rc = mdb_put(txn, s->cursor, &k, &v, 0);
    free(buf);
    return rc;
}

static int commit_sync(ds_store *s, MDB_txn *txn) {
    int rc = mdb_txn_commit(txn);
    if (rc) return lmdb_err(rc, "commit", s->path);
    rc = mdb_env_sync(s->env, 1);
    if (rc) return lmdb_err(rc, "sync", s->path);
    return 0;
}

int ds_consumer_put(ds_store *s, const char *name, const Dataset__ConsumerState *st) {
    if (!*name || strlen(name) > 200 || name[0] == '\1')
        return srlm_set_error(SRLM_EINVAL, "bad consumer name '%.40s' (1..200 bytes)", name);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, "begin write", s->path);
    rc = put_state(s, txn, name, st);
    if (rc) { mdb_txn_abort(txn); return lmdb_err(rc, "put consumer", s->path); }
    return commit_sync(s, txn);
}

static size_t alloc_key(char *buf, size_t cap, const char *name, const char *client) {
    size_t a = strlen(name), b = client ? strlen(client) : 0;
    if (a + b + 8 > cap) return 0;
    memcpy(buf, "\1alloc", 7); /* includes NUL */
    memcpy(buf + 7, name, a + 1);
    if (client) memcpy(buf + 7 + a + 1, client, b);
    return 7 + a + 1 + b;
}

int ds_consumer_delete(ds_store *s, const char *name) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, "begin write", s->path);
    MDB_val k = {strlen(name), (void *)name}, v;
    rc = mdb_del(txn, s->cursor, &k, NULL);
    if (rc && rc != MDB_NOTFOUND) { mdb_txn_abort(txn); return lmdb_err(rc, "delete consumer", s->path); }
    char kb[512];
    size_t pl = alloc_key(kb, sizeof kb, name, NULL);
    MDB_cursor *cur;
    if (pl && !mdb_cursor_open(txn, s->cursor, &cur)) {
        k.mv_size = pl;
        k.mv_data = kb;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        while (mrc == 0 && k.mv_size >= pl && !memcmp(k.mv_data, kb, pl)) {
            mdb_cursor_del(cur, 0);
            k.mv_size = pl;
            k.mv_data = kb;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        }
        mdb_cursor_close(cur);
    }
    return commit_sync(s, txn);
}

int ds_consumer_alloc(ds_store *s, const char *name, const char *client_id, uint64_t seq, uint32_t count,
                      uint64_t *start) {
    char kb[512];
    size_t kl = alloc_key(kb, sizeof kb, name, client_id);
    if (!kl || !*client_id) return srlm_set_error(SRLM_EINVAL, "bad client id for consumer '%s'", name);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return lmdb_err(rc, "begin write", s->path);
    MDB_val ak = {kl, kb}, av;
    uint64_t prev[3];
    if (mdb_get(txn, s->cursor, &ak, &av) == 0 && av.mv_size == sizeof prev) {
        memcpy(prev, av.mv_data, sizeof prev);
        if (prev[0] == seq && prev[2] == count) {
            *start = prev[1];
            mdb_txn_abort(txn);
            return 0;
        }
    }
    MDB_val k = {strlen(name), (void *)name}, v;
    rc = mdb_get(txn, s->cursor, &k, &v);
    if (rc) {
        mdb_txn_abort(txn);
        return rc == MDB_NOTFOUND ? srlm_set_error(SRLM_ENOTFOUND, "unknown consumer '%s' (open it first)", name)
                                  : lmdb_err(rc, "get consumer", s->path);
    }
    Dataset__ConsumerState *st = dataset__consumer_state__unpack(NULL, v.mv_size, v.mv_data);
    if (!st) { mdb_txn_abort(txn); return srlm_set_error(SRLM_EFORMAT, "consumer '%s' does not decode", name); }
    *start = st->head;
    st->has_head = 1;
    st->head += count;
    st->has_updated = 1;
    st->updated = srlm_wall_time();
    rc = put_state(s, txn, name, st);
    dataset__consumer_state__free_unpacked(st, NULL);
    uint64_t now[3] = {seq, *start, count};
    av.mv_size = sizeof now;
    av.mv_data = now;
    if (!rc) rc = mdb_put(txn, s->cursor, &ak, &av, 0);
    if (rc) { mdb_txn_abort(txn); return lmdb_err(rc, "alloc", s->path); }
    return commit_sync(s, txn);
}
