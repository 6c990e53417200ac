/* fuzz_dataset.c — libFuzzer target for the dataset importers (datasets/import.c) and the
 * record JSON parser (datasets/store.c). Input: one format byte, then file content. The
 * content is parsed as that format (gsm8k, math, math500, humaneval, mbpp, mbpp-sanitized,
 * jsonl with a mapping); every record produced is converted to JSON and parsed back.
 * Any crash, leak or sanitizer report is a bug. Build and run:
 * `make fuzz FUZZ_TARGET=fuzz_dataset`. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "import.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const F[] = {"gsm8k", "math", "math500", "humaneval", "mbpp", "mbpp-sanitized", "jsonl"};
    if (size < 1 || size > 256 * 1024) return 0;
    int fd = memfd_create("fuzz", 0);
    if (fd < 0) return 0;
    if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) { close(fd); return 0; }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    const char *fmt = F[data[0] % 7];
    ds_import_opts o = {fmt, (data[0] & 8) && !strncmp(fmt, "mbpp", 4) ? NULL : "train",
                        !strcmp(fmt, "jsonl") ? "fz" : NULL,
                        !strcmp(fmt, "jsonl") && (data[0] & 16) ? "prompt=q,answer=a,messages=m,id=i" : NULL, NULL};
    ds_recvec rv = {0};
    uint32_t ord = 0;
    if (ds_parse_file(&o, path, &rv, &ord) == 0) {
        for (size_t i = 0; i < rv.n; i++) {
            char *js;
            if (ds_record_to_json(rv.v[i], &js)) continue;
            json_t *j = json_loads(js, 0, NULL);
            Dataset__Record *back = NULL;
            char err[128];
            if (j && ds_record_from_jsonobj(j, &back, err, sizeof err) != 0) abort(); /* must round-trip */
            ds_record_free(back);
            json_decref(j);
            free(js);
        }
    }
    ds_recvec_free(&rv);
    close(fd);
    return 0;
}
