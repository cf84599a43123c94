#!/usr/bin/env python3
"""Would a trained late-interaction reranker lift LoCoMo's multi-hop questions?

Development analysis only (SPEC.md §12.7, "What bounds multi-hop"); nothing here trains a shipped model.

    psm eval locomo DATA.json --model M --store DIR --k 200 --candidates C.jsonl
    python3 Scripts/late_interaction_probe.py DATA.json C.jsonl MINILM_DIR [STEPS ...]

MINILM_DIR is the encoder package's `model/` folder (model.safetensors, vocab.txt). The script runs
all-MiniLM-L6-v2 in numpy (fp32; the engine runs it quantized), takes the last-layer token states of every
candidate turn ("speaker: text [shares a photo: …]") and of each question's content tokens (stop words and
the candidates' speaker names left out, as the engine's token match does), and learns a projection W
(384 × 384, from the identity) so that

    score = engine weight + beta * z(mean over question tokens of the best cosine(W q_i, W t_j))

(z: standardized over the question's pooled candidates) ranks evidence first: a listwise loss over each
question's 60 best candidates and its pooled evidence, Adam, L2 pull 1e-3 towards the identity. Trained on
four conversations and scored on the fifth (leave one conversation out), for each STEPS (default 6 10 20),
then fitted and scored on every question (in-sample: what the projection can memorise). Needs numpy and
scipy; several minutes on 2 cores.
"""
import collections, json, re, struct, sys, unicodedata

import numpy as np
import scipy.sparse as sp
from scipy.special import erf

if len(sys.argv) < 4:
    sys.exit(__doc__)
DATA, CANDIDATES, MODEL = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/") + "/"
STEPS = [int(x) for x in sys.argv[4:]] or [6, 10, 20]

# all-MiniLM-L6-v2 in numpy
blob = open(MODEL + "model.safetensors", "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
W0 = {k.removeprefix("bert."): np.frombuffer(blob[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32).reshape(v["shape"])
      for k, v in json.loads(blob[8:8 + n]).items() if k != "__metadata__" and v["dtype"] == "F32"}
vocab = [l.rstrip("\n") for l in open(MODEL + "vocab.txt", encoding="utf-8")]
V = {w: i for i, w in enumerate(vocab)}
CLS, SEP = V["[CLS]"], V["[SEP]"]

def words(t):
    t = "".join(c for c in unicodedata.normalize("NFD", t.lower()) if unicodedata.category(c) != "Mn")
    return re.findall(r"\w+|[^\w\s]", t)

def pieces(w):
    out, s = [], 0
    while s < len(w):
        e = len(w)
        while e > s and (w[s:e] if s == 0 else "##" + w[s:e]) not in V:
            e -= 1
        if e == s:
            return [V["[UNK]"]]
        out.append(V[w[s:e] if s == 0 else "##" + w[s:e]])
        s = e
    return out

def tokenize(t):
    return [CLS] + [p for w in words(t) for p in pieces(w)][:254] + [SEP]

def layer_norm(x, p):
    m = x.mean(-1, keepdims=True)
    return (x - m) / np.sqrt(((x - m) ** 2).mean(-1, keepdims=True) + 1e-12) * W0[p + ".weight"] + W0[p + ".bias"]

def states(ids):
    T = len(ids)
    x = W0["embeddings.word_embeddings.weight"][ids] + W0["embeddings.position_embeddings.weight"][:T] + W0["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, "embeddings.LayerNorm")
    lin = lambda x, p: x @ W0[p + ".weight"].T + W0[p + ".bias"]
    for l in range(6):
        p = f"encoder.layer.{l}."
        q, k, v = (lin(x, p + "attention.self." + m).reshape(T, 12, 32).transpose(1, 0, 2) for m in ("query", "key", "value"))
        a = q @ k.transpose(0, 2, 1) / np.sqrt(32)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = layer_norm(x + lin((a @ v).transpose(1, 0, 2).reshape(T, 384), p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        x = layer_norm(x + lin(0.5 * h * (1 + erf(h / np.sqrt(2))), p + "output.dense"), p + "output.LayerNorm")
    return x

# the questions, their candidates and token states
STOP = set("a an and are as at be been but by for from had ha has have he her hi him his i if in into is it its me my of on or our s she so "
           "t than that the their them then there these they thi this to wa was we were what when which who whom why will with would you your "
           "do did doe does am about just can could should how where all any some up out not no yes oh ll ve re d m".split())
content = lambda i: i not in (CLS, SEP) and not vocab[i].startswith("[") and re.search(r"[a-z0-9]", vocab[i]) and vocab[i].removeprefix("##") not in STOP
text, question = {}, {}
for conv in json.load(open(DATA)):
    sid = conv["sample_id"]
    for key, session in conv["conversation"].items():
        if key.startswith("session_") and isinstance(session, list):
            for t in session:
                caption = t.get("blip_caption")
                text[(sid, t["dia_id"])] = t["speaker"] + ": " + t["text"] + (f" [shares a photo: {caption}]" if caption else "")
    for i, qa in enumerate(conv["qa"]):
        question[f"{sid}:{i}"] = qa["question"]
Q = []
for line in open(CANDIDATES):
    r = json.loads(line)
    if r["category"] != 5:
        c = r["candidates"]
        Q.append(dict(qid=r["qa_id"], sid=r["qa_id"].split(":")[0], cat=r["category"], ev=set(r["evidence"]), src=[m["sources"] for m in c],
                      mem=[m["memory"] for m in c], w=np.array([m["weight"] for m in c]), pooled=np.array([m["pooled"] for m in c]),
                      names={m["speaker"] for m in c if m["speaker"]}))
keys = sorted({(q["sid"], s) for q in Q for src in q["src"] for s in src})
print(f"{len(Q)} questions, encoding {len(keys)} turns …", file=sys.stderr, flush=True)
turn_states = [states(tokenize(text[k]))[1:-1].astype(np.float32) for k in keys]
offset = np.concatenate([[0], np.cumsum([len(s) for s in turn_states])])
X = np.concatenate(turn_states)
index = {k: i for i, k in enumerate(keys)}
for q in Q:
    ids = tokenize(question[q["qid"]])
    drop = {p for name in q["names"] for p in tokenize(name)[1:-1]}
    keep = [i for i, t in enumerate(ids) if content(t) and t not in drop]
    q["Q"] = states(ids)[keep].astype(np.float32)
    toks = [np.concatenate([np.arange(offset[index[(q["sid"], s)]], offset[index[(q["sid"], s)] + 1]) for s in src]) for src in q["src"]]
    q["pad"] = np.full((len(toks), max(map(len, toks))), -1)
    for j, t in enumerate(toks):
        q["pad"][j, :len(t)] = t
    q["y"] = np.array([any(s in q["ev"] for s in src) for src in q["src"]], float)

def unit(A):
    n = np.sqrt(np.einsum("ij,ij->i", A, A))[:, None] + 1e-9
    return A / n, n

def match(pad, Pn, Qn):
    """Mean over query tokens of the best cosine in each candidate, and the argmax token (nq × C)."""
    S = (Qn @ Pn[np.maximum(pad, 0)].reshape(-1, Pn.shape[1]).T).reshape(len(Qn), *pad.shape)
    S[:, pad < 0] = -np.inf
    a = S.argmax(2)
    return np.take_along_axis(S, a[:, :, None], 2)[:, :, 0].mean(0), pad[np.arange(pad.shape[0])[None, :], a]

def train(questions, steps, lr=1e-2, l2=1e-3, top=60):
    W, beta, eye = np.eye(384, dtype=np.float32), 1.0, np.eye(384, dtype=np.float32)
    questions = [q for q in questions if q["y"][q["pooled"]].sum() > 0]
    cands = []
    for q in questions:
        best = np.argsort(-q["w"])[:top]
        cands.append(np.concatenate([best, np.setdiff1d(np.nonzero(q["y"] * q["pooled"])[0], best)]))
    Qall = np.concatenate([q["Q"] for q in questions])
    qoff = np.concatenate([[0], np.cumsum([len(q["Q"]) for q in questions])])
    m, v = [np.zeros_like(W), 0.0], [np.zeros_like(W), 0.0]
    for step in range(steps):
        Pn, Pnorm = unit(X @ W.T)
        Qn, Qnorm = unit(Qall @ W.T)
        rows, cols, g, dbeta = [], [], [], 0.0
        for i, (q, c) in enumerate(zip(questions, cands)):
            qn = Qn[qoff[i]:qoff[i + 1]]
            li, am = match(q["pad"][c], Pn, qn)
            sd = li.std() + 1e-6
            z = (li - li.mean()) / sd
            s = q["w"][c] + beta * z
            p = np.exp(s - s.max())
            p /= p.sum()
            y = q["y"][c]
            ds = p - y / y.sum()
            dbeta += ds @ z
            dz = ds * beta
            dli = (dz - dz.mean() - z * (dz * z).mean()) / sd / len(qn)
            rows.append(am.ravel()); cols.append(np.repeat(np.arange(qoff[i], qoff[i + 1]), len(c))); g.append(np.tile(dli, len(qn)))
        A = sp.csr_matrix((np.concatenate(g), (np.concatenate(rows), np.concatenate(cols))), shape=(len(Pn), len(Qn)))
        dPn, dQn = A @ Qn / len(questions), A.T @ Pn / len(questions)
        dP = (dPn - Pn * (Pn * dPn).sum(1, keepdims=True)) / Pnorm
        dQ = (dQn - Qn * (Qn * dQn).sum(1, keepdims=True)) / Qnorm
        for j, grad in enumerate([dP.T @ X + dQ.T @ Qall + l2 * (W - eye), dbeta / len(questions)]):
            m[j] = 0.9 * m[j] + 0.1 * grad
            v[j] = 0.999 * v[j] + 0.001 * grad * grad
            step_ = lr * (m[j] / (1 - 0.9 ** (step + 1))) / (np.sqrt(v[j] / (1 - 0.999 ** (step + 1))) + 1e-8)
            if j == 0:
                W = (W - step_).astype(np.float32)
            else:
                beta -= step_
    return W, beta

def scores(questions, W, beta):
    Pn, _ = unit(X @ W.T)
    out = {}
    for q in questions:
        li, _ = match(q["pad"], Pn, unit(q["Q"] @ W.T)[0])
        pool = q["pooled"] > 0
        out[q["qid"]] = q["w"] + (beta * (li - li[pool].mean()) / (li[pool].std() + 1e-6) if pool.any() else 0)
    return out

def report(name, s):
    res = collections.defaultdict(list)
    for q in Q:
        ids = []
        for i in sorted(range(len(q["w"])), key=lambda i: (-s[q["qid"]][i], q["mem"][i])):
            ids += [x for x in q["src"][i] if x not in ids]
        res[q["cat"]].append((q["ev"] <= set(ids[:10]), bool(ids) and ids[0] in q["ev"], bool(q["ev"] & set(ids[:10]))))
    every = [x for v in res.values() for x in v]
    m = lambda v, j: sum(x[j] for x in v) / len(v)
    print(f"{name:44s} R_all@10 {m(every, 0):.3f}  R_any@1 {m(every, 1):.3f}  R_any@10 {m(every, 2):.3f}  "
          f"multi-hop {m(res[1], 0):.3f} ({sum(x[0] for x in res[1])} of {len(res[1])})", flush=True)

report("engine weights", {q["qid"]: q["w"] for q in Q})
eye = np.eye(384, dtype=np.float32)
for beta in [0.25, 0.5, 1.0]:
    report(f"+ untrained match, beta {beta}", scores(Q, eye, beta))
for steps in STEPS:
    s = {}
    for held in sorted({q["sid"] for q in Q}):
        W, beta = train([q for q in Q if q["sid"] != held], steps)
        s.update(scores([q for q in Q if q["sid"] == held], W, beta))
    report(f"trained W, {steps} steps, leave one out", s)
W, beta = train(Q, max(STEPS))
report(f"trained W, {max(STEPS)} steps, in-sample", scores(Q, W, beta))
