/* bench_train.c — training throughput of the C trainer: tokens/s for one optimizer step
 * (forward + cross-entropy through the tied LM head + backward + AdamW) at a small shape
 * and at the Qwen2.5-0.5B shape, each beside its peers measured in the same run:
 *   - achieved GFLOP/s (6·N_matmul + attention FLOPs per token, qwen2.md §6.3) as a
 *     fraction of measured OpenBLAS sgemm GFLOP/s at the MLP shape;
 *   - PyTorch (bench/bench_train_torch.py, /usr/bin/python3) on the same model, batch,
 *     sequence and threads, as a ratio;
 *   - peak RSS (full fine-tune, and with --lora R the LoRA run).
 * usage: bench_train [--quick] [--threads N] [--steps N] [--no-torch] [--lora R]
 *   default: small shape (configs/models/tiny-qwen2-small.json, B 4, T 256) and the 0.5B
 *   shape (configs/models/qwen2.5-0.5b.json, B 1, T 512);
 *   --quick: small shape and the 0.5B shape at B 1, T 64, one step. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "model.h"
#include "trainer.h"
#include "util.h"

static void fill_params(lm_model *m) {
    float a = 0.02f * sqrtf(3.0f);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < m->n_tensors; i++) {
        const lm_tensor *t = &m->tensors[i];
        float *x = m->params + t->offset;
        uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
        int norm = t->kind == LM_T_LN1 || t->kind == LM_T_LN2 || t->kind == LM_T_NORM;
        for (size_t j = 0; j < t->numel; j++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            x[j] = norm ? 1.0f : a * (2.0f * (float)(s >> 40) / (float)(1 << 24) - 1.0f);
        }
    }
}

static double sgemm_gflops(int M, int N, int K) {
    float *a = srlm_alloc_floats((size_t)M * K), *b = srlm_alloc_floats((size_t)N * K), *c = srlm_alloc_floats((size_t)M * N);
    if (!a || !b || !c) return 0;
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = 0.001f * (float)(i % 13);
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = 0.001f * (float)(i % 7);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = srlm_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
        double g = 2.0 * M * N * K / (srlm_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a); free(b); free(c);
    return best;
}

/* VmHWM of this process (GB): the peak resident set since it started. */
static double peak_rss_gb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1e6;
}

/* training FLOPs per token: 3 × (2 · matmul params + attention 4·H·d·S_avg per layer) */
static double flops_per_token(const lm_config *c, int T) {
    double D = c->hidden_size, F = c->intermediate_size, Hd = (double)c->num_heads * c->head_dim;
    double Kd = (double)c->num_kv_heads * c->head_dim, L = c->num_layers, V = c->vocab_size;
    double mm = L * (D * Hd + 2 * D * Kd + Hd * D + 3 * D * F) + V * D;
    double att = L * 4.0 * Hd * (T + 1) / 2.0;
    return 3.0 * (2.0 * mm + att);
}

/* Run one shape in a child process (so each peak RSS is its own). */
static void run_shape(const char *cfg_path, int B, int T, int steps, int threads, int lora, int torch,
                      double sgemm) {
    lm_config cfg;
    if (lm_config_load(cfg_path, &cfg)) {
        fprintf(stderr, "bench_train: %s\n", srlm_last_error());
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        lm_model *m;
        if (lm_model_create(&cfg, &m)) { fprintf(stderr, "%s\n", srlm_last_error()); _exit(1); }
        fill_params(m);
        tr_config tc;
        tr_config_default(&tc);
        tc.micro_batch = B;
        tc.threads = threads;
        tc.lora_rank = lora;
        tc.lora_alpha = 2.0f * (lora > 0 ? lora : 1);
        tr_trainer *t;
        if (tr_create_from_model(m, NULL, &tc, &t)) { fprintf(stderr, "%s\n", srlm_last_error()); _exit(1); }
        int32_t **rows = malloc(sizeof(int32_t *) * B);
        int *len = malloc(sizeof(int) * B), *plen = malloc(sizeof(int) * B);
        srlm_rng r;
        srlm_rng_seed(&r, 1);
        for (int b = 0; b < B; b++) {
            rows[b] = malloc(sizeof(int32_t) * T);
            for (int i = 0; i < T; i++) rows[b][i] = (int32_t)srlm_rng_below(&r, (uint64_t)cfg.vocab_size);
            len[b] = T;
            plen[b] = 1; /* loss on every next token, as the torch peer */
        }
        tr_batch bt = {B, (const int32_t *const *)rows, len, plen, NULL};
        tr_metrics mt;
        if (tr_sft_step(t, &bt, &mt)) { fprintf(stderr, "%s\n", srlm_last_error()); _exit(1); } /* warm-up */
        double t0 = srlm_now();
        for (int s = 0; s < steps; s++) tr_sft_step(t, &bt, &mt);
        double dt = srlm_now() - t0;
        double tps = (double)B * T * steps / dt;
        /* LoRA skips the base weight gradients: forward + dX only (2/3 of a full step) */
        double gf = tps * flops_per_token(&cfg, T) * (lora ? 2.0 / 3.0 : 1.0) / 1e9;
        printf("  C trainer%s: %8.1f tokens/s  %7.1f GFLOP/s = %4.0f%% of sgemm (%.1f)  peak RSS %.2f GB  (%.2f s/step)\n",
               lora ? " (LoRA)" : "", tps, gf, 100 * gf / sgemm, sgemm, peak_rss_gb(), dt / steps);
        FILE *f = fopen("/tmp/srlm_bench_train.tps", "w");
        if (f) { fprintf(f, "%f\n", tps); fclose(f); }
        tr_free(t);
        for (int b = 0; b < B; b++) free(rows[b]);
        free(rows); free(len); free(plen);
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) { printf("  C trainer failed\n"); return; }
    double ctps = 0;
    FILE *f = fopen("/tmp/srlm_bench_train.tps", "r");
    if (f) { if (fscanf(f, "%lf", &ctps) != 1) ctps = 0; fclose(f); }
    if (!torch || lora) return;
    char cmd[8192], line[1024] = "";
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import torch' 2>/dev/null && /usr/bin/python3 %s/bench/bench_train_torch.py "
             "--config %s --threads %d --batch %d --seq %d --steps %d",
             SRLM_SOURCE_DIR, cfg_path, threads, B, T, steps);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(line, sizeof line, p)) {
        printf("  PyTorch: unavailable\n");
        if (p) pclose(p);
        return;
    }
    pclose(p);
    char *q = strstr(line, "\"tokens_per_s\": ");
    char *rr = strstr(line, "\"peak_rss_gb\": ");
    double ttps = q ? atof(q + 16) : 0, trss = rr ? atof(rr + 15) : 0;
    printf("  PyTorch  : %8.1f tokens/s  peak RSS %.2f GB   → C / PyTorch = %.2fx\n", ttps, trss,
           ttps > 0 ? ctps / ttps : 0);
}

int main(int argc, char **argv) {
    int quick = 0, threads = 0, steps = 2, torch = 1, lora = 16, c;
    static const struct option opts[] = {{"quick", 0, 0, 'q'}, {"threads", 1, 0, 't'}, {"steps", 1, 0, 's'},
                                         {"no-torch", 0, 0, 'n'}, {"lora", 1, 0, 'l'}, {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'q': quick = 1; break;
        case 't': threads = atoi(optarg); break;
        case 's': steps = atoi(optarg); break;
        case 'n': torch = 0; break;
        case 'l': lora = atoi(optarg); break;
        default: fprintf(stderr, "usage: bench_train [--quick] [--threads N] [--steps N] [--no-torch] [--lora R]\n"); return 2;
        }
    }
    if (threads <= 0) threads = omp_get_max_threads();
    lm_set_threads(threads);
    char small[4096], big[4096];
    snprintf(small, sizeof small, "%s/configs/models/tiny-qwen2-small.json", SRLM_SOURCE_DIR);
    snprintf(big, sizeof big, "%s/configs/models/qwen2.5-0.5b.json", SRLM_SOURCE_DIR);
    lm_config bc;
    if (lm_config_load(big, &bc)) { fprintf(stderr, "%s\n", srlm_last_error()); return 1; }
    double sg = sgemm_gflops(512, bc.intermediate_size, bc.hidden_size);
    printf("bench_train: %d threads; sgemm [512 x %d x %d] %.1f GFLOP/s\n", threads, bc.intermediate_size,
           bc.hidden_size, sg);
    printf("small shape (%s), B 4, T %d:\n", "tiny-qwen2-small", quick ? 128 : 256);
    run_shape(small, 4, quick ? 128 : 256, quick ? 2 : 4, threads, 0, torch, sg);
    int T = quick ? 64 : 512;
    printf("Qwen2.5-0.5B shape, B 1, T %d, full fine-tune + AdamW:\n", T);
    run_shape(big, 1, T, quick ? 1 : steps, threads, 0, torch, sg);
    if (lora > 0) {
        printf("Qwen2.5-0.5B shape, B 1, T %d, LoRA r %d on all 7 projections:\n", T, lora);
        run_shape(big, 1, T, 1, threads, lora, 0, sg);
    }
    return 0;
}
