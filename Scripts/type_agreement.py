#!/usr/bin/env python3
"""How well a store's memory types agree with a reading of the turns (development only; SPEC.md §12.7,
"Type head").

    python3 Scripts/type_agreement.py DATA.json STORE [--psm PATH] [--json] [--wrong]

DATA.json is LoCoMo's dev file (../shared/data/locomo-dev.json); STORE a store `psm eval locomo DATA.json
--store STORE` built. The script draws the same seeded sample of turns every time (Python 3's
random.sample: 170 turns with seed 18, then 140 of 200 with seed 19 not already drawn) and compares the
type of each turn's memory (`psm tiers --json`, tenant `locomo`) with LABELS below: one letter per sampled
turn, in sample order, from one person's reading of it — F fact, P preference, L plan (an intention or
goal), E event (something that happened), C small talk, ? too ambiguous to say. The labels hold no text
or ids of the data; they are not training data (nothing here trains on LoCoMo).

It prints, per label, how the store typed those turns (`-` no memory: the gate dropped it), and the share
of the F/P/L/E turns kept as non-small-talk whose type is right.
"""
import argparse
import json
import random
import subprocess
from collections import Counter

LABELS = (
    "CCFCE?CECFCFCECCCCCCCCCEPPCCCCCCEL?CE?LFPPCC?CCC?EECCCCCF?C?CCCLPECCCCC??CCECCCCCPC?CCCCCEC?L??FCECCFCC?PCCPCCCCCCCFC?P?CCCL??EPCCCCCEECFCLELC?PC?EEPCCCECPECCEPCCP?CCCCPE"
    "FEC???CCCCCCCCCCC?CCCC??E??CCCCCCLLCCCC?CCCC?CC?E?CLCCP?PECPCCCC?PCCCC?E?E?CCPCC?CCCCCCEC?LL?CEC?CCFCEC?E?CCC?CC?ECECCC?CCCECPPCCECC?FEPPECF"
)
CODE = {"fact": "F", "preference": "P", "plan": "L", "event": "E", "small_talk": "C"}


def sample(data):
    turns = []
    for c in data:
        for k, v in c["conversation"].items():
            if k.startswith("session_") and isinstance(v, list):
                turns += [(c["sample_id"], t["dia_id"], t["text"]) for t in v]
    random.seed(18)
    first = random.sample(turns, 170)
    drawn = {(t[0], t[1]) for t in first}
    random.seed(19)
    second = [t for t in random.sample(turns, 200) if (t[0], t[1]) not in drawn][:140]
    return first + second


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data")
    ap.add_argument("store")
    ap.add_argument("--psm", default=".build/release/psm")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--wrong", action="store_true", help="list the typed turns typed wrong")
    a = ap.parse_args()
    turns = sample(json.load(open(a.data)))
    assert len(turns) == len(LABELS), f"{len(turns)} turns drawn for {len(LABELS)} labels: is this LoCoMo's dev file?"
    types = {}
    for user in sorted({t[0] for t in turns}):
        out = subprocess.run([a.psm, "tiers", "--store", a.store, "--tenant", "locomo", "--user", user, "--json", "--limit", "100000"],
                             capture_output=True, text=True, check=True).stdout
        for memories in json.loads(out)["tiers"].values():
            for m in memories:
                if len(m["source_ids"]) == 1:
                    types[(user, m["source_ids"][0])] = CODE.get(m["type"], "?")
    got = [types.get((t[0], t[1]), "-") for t in turns]
    confusion = Counter(zip(LABELS, got))
    typed = [(l, g) for l, g in zip(LABELS, got) if l in "FPLE" and g in "FPLE"]
    right = sum(l == g for l, g in typed)
    report = {
        "labelled": dict(Counter(LABELS)),
        "confusion": {l: {g: n for (x, g), n in sorted(confusion.items()) if x == l} for l in "FPLEC?"},
        "typed_kept": len(typed), "typed_right": right, "accuracy": round(right / max(1, len(typed)), 3),
    }
    if a.json:
        print(json.dumps(report, sort_keys=True))
        return
    print("label: predicted counts (F fact, P preference, L plan, E event, C small talk, - dropped)")
    for l in "FPLEC?":
        print(" ", l, " ".join(f"{g}:{n}" for g, n in report["confusion"][l].items()))
    print(f"typed turns kept as non-small-talk: {len(typed)}; type right: {right} ({report['accuracy']})")
    if a.wrong:
        for t, l, g in zip(turns, LABELS, got):
            if l in "FPLE" and g in "FPLE" and l != g:
                print(f"  {l} -> {g}  {t[2][:100]}")


if __name__ == "__main__":
    main()
