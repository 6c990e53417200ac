#!/usr/bin/python3
"""PyTorch peer of bench_model.c: the same Qwen2 shape in float32 with a KV cache —
prefill tokens/s and batch-1 decode tokens/s at the same thread count. Plain torch
(the transformers package is not needed)."""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = json.load(open(a.config))
    D, F, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
    d = D // H
    std = 0.02
    E = torch.randn(V, D) * std
    layers = []
    for _ in range(L):
        layers.append(dict(q=torch.randn(H * d, D) * std, bq=torch.zeros(H * d), k=torch.randn(Hkv * d, D) * std,
                           bk=torch.zeros(Hkv * d), v=torch.randn(Hkv * d, D) * std, bv=torch.zeros(Hkv * d),
                           o=torch.randn(D, H * d) * std, g=torch.randn(F, D) * std, u=torch.randn(F, D) * std,
                           dn=torch.randn(D, F) * std, n1=torch.ones(D), n2=torch.ones(D)))
    nf = torch.ones(D)
    theta = c.get("rope_theta", 1e6)
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))

    def rms(x, w):
        return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6))

    def rope(x, pos):
        ang = pos[:, None].float() * inv[None]
        cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def step(ids, cache):
        T = ids.shape[0]
        past = cache[0][0].shape[1] if cache[0] is not None else 0
        pos = torch.arange(past, past + T)
        h = E[ids]
        for i, w in enumerate(layers):
            x = rms(h, w["n1"])
            q = (x @ w["q"].T + w["bq"]).view(T, H, d).transpose(0, 1)
            k = (x @ w["k"].T + w["bk"]).view(T, Hkv, d).transpose(0, 1)
            v = (x @ w["v"].T + w["bv"]).view(T, Hkv, d).transpose(0, 1)
            q, k = rope(q, pos), rope(k, pos)
            if cache[i] is not None:
                k = torch.cat([cache[i][0], k], 1)
                v = torch.cat([cache[i][1], v], 1)
            cache[i] = (k, v)
            kk = k.repeat_interleave(H // Hkv, 0)
            vv = v.repeat_interleave(H // Hkv, 0)
            s = (q @ kk.transpose(-1, -2)) / (d ** 0.5)
            if T > 1:
                S = kk.shape[1]
                mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
                s = s.masked_fill(~mask, float("-inf"))
            o = torch.softmax(s, -1) @ vv
            h = h + o.transpose(0, 1).reshape(T, H * d) @ w["o"].T
            x = rms(h, w["n2"])
            h = h + (torch.nn.functional.silu(x @ w["g"].T) * (x @ w["u"].T)) @ w["dn"].T
        return rms(h[-1:], nf) @ E.T

    ids = torch.arange(a.prompt) % 1000 + 10
    with torch.no_grad():
        step(ids[:16], [None] * L)
        cache = [None] * L
        t0 = time.time()
        step(ids, cache)
        tp = time.time() - t0
        t0 = time.time()
        for _ in range(a.steps):
            step(torch.tensor([11]), cache)
        td = time.time() - t0
    print(f"torch prefill {a.prompt} tokens: {a.prompt / tp:.1f} tokens/s")
    print(f"torch decode batch 1 (context {a.prompt}): {a.steps / td:.2f} tokens/s")


if __name__ == "__main__":
    main()
