#!/usr/bin/python3
"""Peer for bench/bench_reward_math.c: the common SymPy-based answer check of RL
recipes (last \\boxed{} of the solution, a LaTeX -> SymPy rewrite, string equality or
sympy.simplify(a - b) == 0), on the MATH-500 solutions against their answers.
usage: peer_reward_math_sympy.py MATH500.jsonl.gz SECONDS [own|shifted]
(shifted: solution i against answer i+1, so every check must parse and simplify)
prints: checks_per_s X correct K total N"""
import gzip, json, re, sys, time

import sympy
from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application,
                                        parse_expr, standard_transformations)

TRANS = standard_transformations + (implicit_multiplication_application, convert_xor)


def group(s, i):
    """s[i] == '{': return (content, index after the closing brace)."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == '{':
            depth += 1
        elif s[j] == '}':
            depth -= 1
            if depth == 0:
                return s[i + 1:j], j + 1
    raise ValueError("unbalanced")


def last_boxed(s):
    i = s.rfind("\\boxed")
    if i < 0:
        return None
    j = s.find("{", i)
    return group(s, j)[0] if j >= 0 else None


def arg(s, i):
    while i < len(s) and s[i] == ' ':
        i += 1
    if s[i] == '{':
        return group(s, i)
    return s[i], i + 1


def to_sympy(s):
    for a, b in [("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("$", ""),
                 ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""),
                 ("\\%", ""), ("\\cdot", "*"), ("\\times", "*"), ("\\pi", "pi"), ("\\infty", "oo")]:
        s = s.replace(a, b)
    s = re.sub(r"\\(text|mbox|mathrm)\{[^{}]*\}", "", s)
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            a, i = arg(s, i + 5)
            b, i = arg(s, i)
            out.append("((%s)/(%s))" % (to_sympy(a), to_sympy(b)))
        elif s.startswith("\\sqrt", i):
            a, i = arg(s, i + 5)
            out.append("sqrt(%s)" % to_sympy(a))
        elif s[i] == '{':
            a, i = group(s, i)
            out.append("(%s)" % to_sympy(a))
        else:
            out.append(s[i])
            i += 1
    return "".join(out).replace("\\", "")


def equiv(gold, sol):
    pred = last_boxed(sol)
    if pred is None:
        return False
    if pred.strip() == gold.strip():
        return True
    try:
        a = parse_expr(to_sympy(gold), transformations=TRANS)
        b = parse_expr(to_sympy(pred), transformations=TRANS)
        return sympy.simplify(a - b) == 0
    except Exception:
        return False


def main():
    rows = [json.loads(l) for l in gzip.open(sys.argv[1], "rt")]
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    if len(sys.argv) > 3 and sys.argv[3] == "shifted":
        rows = [{"answer": rows[(i + 1) % len(rows)]["answer"], "solution": r["solution"]} for i, r in enumerate(rows)]
    t0 = time.perf_counter()
    n = correct = 0
    while time.perf_counter() - t0 < budget:
        r = rows[n % len(rows)]
        ok = equiv(r["answer"], r["solution"])
        if n < len(rows):
            correct += ok
        n += 1
        if n >= 4 * len(rows):
            break
    dt = time.perf_counter() - t0
    print("checks_per_s %.1f correct %d total %d" % (n / dt, correct, min(n, len(rows))))


if __name__ == "__main__":
    main()
