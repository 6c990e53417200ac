/* passk.h — sample-based evaluation metrics: the unbiased pass@k estimator and maj@k.
 *
 * pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", eq. 1 and
 * Fig. 3): with n ≥ k samples of which c are correct, the probability that at least one
 * of k samples drawn without replacement is correct is
 *     pass@k = 1 − C(n−c, k) / C(n, k) = 1 − ∏_{i=n−c+1}^{n} (1 − k/i),
 * computed as the product (no large binomials, stable for n in the thousands).
 *
 * maj@k (self-consistency, Wang et al. 2022): the answer extracted most often among the
 * first k samples wins (ties: the answer that reached the top count first); the problem
 * counts as solved when that answer's samples were judged correct. Samples without an
 * extracted answer (NULL or "") abstain. */
#ifndef SRLM_PASSK_H
#define SRLM_PASSK_H

/* Unbiased pass@k for one problem. n: samples (≥ 1), c: correct among them (0..n),
 * k: 1..n. Returns a value in [0, 1], or -1.0 when the arguments are invalid (k > n,
 * c > n, negative values). */
double pk_pass_at_k(int n, int c, int k);

/* Majority vote over the first k of n samples (k ≤ 0 or k > n means all n).
 * answers[i]: extracted answer of sample i (borrowed; NULL or "" abstains).
 * correct[i]: 1 when sample i was judged correct.
 * Returns the index of the first sample carrying the winning answer, or -1 when every
 * sample abstained. *solved (may be NULL) is set to correct[winner] (0 when -1). */
int pk_majority(const char *const *answers, const int *correct, int n, int k, int *solved);

/* Mean of pk_pass_at_k over problems: ns[i], cs[i] per problem, m problems; problems with
 * ns[i] < k are skipped. Returns -1.0 when no problem has n ≥ k. */
double pk_mean_pass_at_k(const int *ns, const int *cs, int m, int k);

#endif
