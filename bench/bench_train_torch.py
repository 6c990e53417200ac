#!/usr/bin/python3
"""PyTorch peer of bench_train.c: the same Qwen2 shape in float32, one training step =
forward + token cross-entropy (tied LM head) + backward + AdamW, at the same batch,
sequence length and thread count. Prints one JSON line: tokens/s and peak RSS.
Plain torch (no transformers); eager attention with a causal mask."""
import argparse
import json
import resource
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = json.load(open(a.config))
    D, F, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
    d = D // H
    std = 0.02

    def P(*shape, init=None):
        t = torch.ones(*shape) if init == "one" else torch.zeros(*shape) if init == "zero" else torch.randn(*shape) * std
        return torch.nn.Parameter(t)
    E = P(V, D)
    layers = [dict(q=P(H * d, D), bq=P(H * d, init="zero"), k=P(Hkv * d, D), bk=P(Hkv * d, init="zero"),
                   v=P(Hkv * d, D), bv=P(Hkv * d, init="zero"), o=P(D, H * d), g=P(F, D), u=P(F, D), dn=P(D, F),
                   n1=P(D, init="one"), n2=P(D, init="one")) for _ in range(L)]
    nf = P(D, init="one")
    params = [E, nf] + [p for l in layers for p in l.values()]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    theta = c.get("rope_theta", 1e6)
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    B, T = a.batch, a.seq
    pos = torch.arange(T)
    ang = pos[:, None].float() * inv[None]
    cos = torch.cat([ang.cos(), ang.cos()], -1)
    sin = torch.cat([ang.sin(), ang.sin()], -1)
    mask = torch.full((T, T), float("-inf")).triu(1)

    def rms(x, w):
        return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6))

    def rope(x):
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    tokens = torch.randint(0, V, (B, T))

    def step():
        h = E[tokens]
        for l in layers:
            x = rms(h, l["n1"])
            q = (x @ l["q"].T + l["bq"]).view(B, T, H, d).transpose(1, 2)
            k = (x @ l["k"].T + l["bk"]).view(B, T, Hkv, d).transpose(1, 2)
            v = (x @ l["v"].T + l["bv"]).view(B, T, Hkv, d).transpose(1, 2)
            q, k = rope(q), rope(k)
            k = k.repeat_interleave(H // Hkv, 1)
            v = v.repeat_interleave(H // Hkv, 1)
            s = (q @ k.transpose(-1, -2)) / d ** 0.5 + mask
            o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, H * d)
            h = h + o @ l["o"].T
            x = rms(h, l["n2"])
            h = h + (torch.nn.functional.silu(x @ l["g"].T) * (x @ l["u"].T)) @ l["dn"].T
        y = rms(h, nf)
        logits = y[:, :-1] @ E.T
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    step()  # warm-up (allocations, optimizer state)
    t0 = time.time()
    for _ in range(a.steps):
        step()
    dt = time.time() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB -> GB
    print(json.dumps({"tokens_per_s": B * T * a.steps / dt, "peak_rss_gb": rss, "threads": a.threads}))


if __name__ == "__main__":
    main()
