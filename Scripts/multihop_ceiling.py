#!/usr/bin/env python3
"""How far can re-ranking the candidates a recall returns take LoCoMo's multi-hop questions?

Development analysis only (SPEC.md §12.7, "What bounds multi-hop"); nothing here trains a shipped model.

    psm eval locomo DATA.json --model M --store DIR --k 200 --candidates C.jsonl
    python3 Scripts/multihop_ceiling.py DATA.json C.jsonl

It re-ranks each question's candidates (R_all@10 etc. over the source ids, as `psm eval` scores them) by:
1. the engine's own weights (must reproduce `psm eval`'s figures);
2. the weights plus text signals of each candidate's turn, each added with the coefficient a logistic
   regression fitted on the same dev questions gives it (in-sample: an upper bound for that signal):
   `recent` (the turn names a recent past time: yesterday, last week, …, ago, recently, lately),
   `opener` (the first turn of its speaker in its session), `specific` (ln(1 + the turn's terms that
   occur in at most three turns of the conversation)), `length` (ln(1 + bytes)), `photo` (shares a photo);
3. with scikit-learn installed, gradient-boosted trees over every recall feature, the weight and those
   signals, trained on four conversations and scored on the fifth (leave one conversation out).
Needs numpy.
"""
import collections, json, math, re, sys

import numpy as np

if len(sys.argv) != 3:
    sys.exit(__doc__)
data = json.load(open(sys.argv[1]))
turns, first = {}, set()
for conv in data:
    sid = conv["sample_id"]
    for key, session in conv["conversation"].items():
        if not key.startswith("session_") or not isinstance(session, list):
            continue
        seen = set()
        for t in session:
            caption = t.get("blip_caption")
            turns[(sid, t["dia_id"])] = t["text"] + (f" [shares a photo: {caption}]" if caption else "")
            if t["speaker"] not in seen:
                first.add((sid, t["dia_id"]))
                seen.add(t["speaker"])

DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
RECENT = re.compile(r"\b(yesterday|today|tonight|the other day|this (morning|afternoon|evening)|last (week|weekend|month|year|night|"
                    r"summer|winter|spring|fall|autumn|" + DAYS + r")|ago|recently|lately)\b", re.I)
STOP = set("a an the and or but if of to in on at for with from by is are was were be been am i you he she it we they me my your our "
           "their his her its this that these those so just really very too also not no yes yeah oh wow hey hi thanks thank what how "
           "when where who why which do does did have has had can could would will should i'm it's that's you're i've we're don't can't".split())
terms = lambda t: {w for w in re.findall(r"[a-z0-9']+", t.lower()) if w not in STOP and len(w) > 2}
df = collections.Counter()
for (sid, _), t in turns.items():
    for w in terms(t):
        df[(sid, w)] += 1

SIGNALS = ["recent", "opener", "specific", "length", "photo"]
def signals(sid, source):
    t = turns.get((sid, source), "")
    return [float(bool(RECENT.search(t))), float((sid, source) in first),
            math.log1p(sum(1 for w in terms(t) if df[(sid, w)] <= 3)), math.log1p(len(t)), float("[shares a photo" in t)]

Q = []
for line in open(sys.argv[2]):
    r = json.loads(line)
    if r["category"] == 5:
        continue
    sid, c = r["qa_id"].split(":")[0], r["candidates"]
    Q.append(dict(qid=r["qa_id"], sid=sid, cat=r["category"], ev=set(r["evidence"]), src=[m["sources"] for m in c],
                  mem=[m["memory"] for m in c], w=np.array([m["weight"] for m in c]), f=np.array([m["features"] for m in c]),
                  s=np.array([signals(sid, m["sources"][0]) for m in c])))

def report(name, score):
    res = collections.defaultdict(list)
    for q in Q:
        s = score(q)
        ids = []
        for i in sorted(range(len(s)), key=lambda i: (-s[i], q["mem"][i])):
            ids += [x for x in q["src"][i] if x not in ids]
        res[q["cat"]].append((q["ev"] <= set(ids[:10]), bool(ids) and ids[0] in q["ev"], bool(q["ev"] & set(ids[:10]))))
    every = [x for v in res.values() for x in v]
    m = lambda v, j: sum(x[j] for x in v) / len(v)
    print(f"{name:42s} R_all@10 {m(every, 0):.3f}  R_any@1 {m(every, 1):.3f}  R_any@10 {m(every, 2):.3f}  "
          f"multi-hop {m(res[1], 0):.3f} ({sum(x[0] for x in res[1])} of {len(res[1])})")

TOP = 60
def logistic_coefficients(columns, categories):
    X, Y = [], []
    for q in Q:
        if q["cat"] not in categories:
            continue
        top = np.argsort(-q["w"])[:TOP]
        X.append(np.column_stack([q["w"][top]] + [q["s"][top, j] for j in columns]))
        Y.append(np.array([any(s in q["ev"] for s in q["src"][i]) for i in top], float))
    X, Y = np.concatenate(X), np.concatenate(Y)
    mu, sd = X.mean(0), X.std(0) + 1e-9
    Z, w, b = (X - mu) / sd, np.zeros(X.shape[1]), 0.0
    weight = np.where(Y > 0, (len(Y) - Y.sum()) / Y.sum(), 1.0)
    for _ in range(2000):
        g = (1 / (1 + np.exp(-(Z @ w + b))) - Y) * weight
        w -= 0.5 * (Z.T @ g) / weight.sum()
        b -= 0.5 * g.sum() / weight.sum()
    c = w / sd
    return c[1:] / c[0]

report("engine weights", lambda q: q["w"])
for columns in [[0], [1], [2], [3], [4], list(range(len(SIGNALS)))]:
    for categories, label in [((1,), "fit on multi-hop"), ((1, 2, 3, 4), "fit on all")]:
        c = logistic_coefficients(columns, categories)
        report(f"+ {'+'.join(SIGNALS[j] for j in columns)} ({label})", lambda q, c=c, columns=columns: q["w"] + q["s"][:, columns] @ c)

try:
    from sklearn.ensemble import HistGradientBoostingClassifier
except ImportError:
    print("(scikit-learn not installed: no gradient-boosted trees)")
    sys.exit(0)
for with_signals in [False, True]:
    scores = {}
    for held in sorted({q["sid"] for q in Q}):
        X, Y = [], []
        def rows(q, top):
            x = np.column_stack([q["f"][top], q["w"][top]])
            return np.column_stack([x, q["s"][top]]) if with_signals else x
        for q in Q:
            if q["sid"] != held:
                top = np.argsort(-q["w"])[:TOP]
                X.append(rows(q, top))
                Y.append(np.array([any(s in q["ev"] for s in q["src"][i]) for i in top], int))
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=0)
        model.fit(np.concatenate(X), np.concatenate(Y))
        for q in Q:
            if q["sid"] == held:
                top = np.argsort(-q["w"])[:TOP]
                s = q["w"] - 1000
                s[top] = model.predict_proba(rows(q, top))[:, 1]
                scores[q["qid"]] = s
    report(f"trees, leave one conversation out{' + signals' if with_signals else ''}", lambda q: scores[q["qid"]])
