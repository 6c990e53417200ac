/* passk.c — pass@k and maj@k (see passk.h). */
#include "passk.h"

#include <string.h>

double pk_pass_at_k(int n, int c, int k) {
    if (n < 1 || c < 0 || k < 1 || c > n || k > n) return -1.0;
    if (n - c < k) return 1.0; /* every k-subset contains a correct sample */
    double fail = 1.0;         /* C(n-c, k) / C(n, k) */
    for (int i = n - c + 1; i <= n; i++) fail *= 1.0 - (double)k / (double)i;
    return 1.0 - fail;
}

int pk_majority(const char *const *answers, const int *correct, int n, int k, int *solved) {
    if (solved) *solved = 0;
    if (k <= 0 || k > n) k = n;
    int best = -1, best_count = 0;
    for (int i = 0; i < k; i++) {
        const char *a = answers[i];
        if (!a || !*a) continue;
        int first = i, count = 0;
        for (int j = 0; j < k; j++) {
            if (!answers[j] || strcmp(answers[j], a)) continue;
            if (j < first) first = j;
            count++;
        }
        if (first != i) continue; /* counted at its first occurrence */
        /* ties: the answer whose count-th occurrence comes first */
        if (count > best_count) {
            best = i;
            best_count = count;
        } else if (count == best_count && best >= 0) {
            int seen_a = 0, pos_a = 0, seen_b = 0, pos_b = 0;
            for (int j = 0; j < k; j++) {
                if (answers[j] && !strcmp(answers[j], a) && ++seen_a == count) pos_a = j;
                if (answers[j] && !strcmp(answers[j], answers[best]) && ++seen_b == count) pos_b = j;
            }
            if (pos_a < pos_b) best = i;
        }
    }
    if (best >= 0 && solved) *solved = correct[best] ? 1 : 0;
    return best;
}

double pk_mean_pass_at_k(const int *ns, const int *cs, int m, int k) {
    double s = 0;
    int used = 0;
    for (int i = 0; i < m; i++) {
        double p = pk_pass_at_k(ns[i], cs[i], k);
        if (p < 0) continue;
        s += p;
        used++;
    }
    return used ? s / used : -1.0;
}
