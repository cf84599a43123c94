#!/usr/bin/env python3
"""Writes Fixtures/tokenizer/wordpiece-cases.jsonl: >= 2,000 varied strings and the ids the reference
`tokenizers` implementation gives them with all-MiniLM-L6-v2's tokenizer.json (BERT uncased WordPiece,
[CLS] ... [SEP], no truncation).

Usage:  python3 Scripts/make_tokenizer_fixture.py MODEL_DIR [OUT]
Needs:  pip install tokenizers   (the version used is recorded in the output's first line)
The strings are generated from a fixed seed, so the same tokenizers version gives the same file.
"""
import json, random, sys
import tokenizers

model_dir = sys.argv[1]
out = sys.argv[2] if len(sys.argv) > 2 else "Fixtures/tokenizer/wordpiece-cases.jsonl"
tok = tokenizers.Tokenizer.from_file(model_dir + "/tokenizer.json")
tok.no_truncation()
tok.no_padding()
rng = random.Random(20261125)

words = ("memory remember forgot yesterday tomorrow Lisbon Kyoto sourdough marathon unbelievable "
         "antidisestablishmentarianism cat dog sister brother appointment dentist café naïve résumé "
         "coöperate Zürich São Paulo Ångström façade jalapeño piñata smörgåsbord Dvořák Łódź "
         "straße İstanbul ǅemal ﬁnance Ⅻ ½ ² µ ΑΒΓ Ωmega Привет мир Здравствуйте שלום مرحبا "
         "नमस्ते हिन्दी ภาษาไทย 한국어 안녕하세요 日本語 東京 中文 你好 世界 𠀋 🙂 😀 👍🏽 👨‍👩‍👧 🇵🇹 ❤️ "
         "e\u0301 a\u0308 n\u0303 i\u0307 \u200b zero\u200dwidth soft\u00adhyphen").split(" ")
punct = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»—–…“”‘’·•§¶†‡")
specials = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"]
code = ["def f(x): return x**2", "if (a && b) { c++; }", "SELECT * FROM users WHERE id=42;",
        "let x: [Int] = [1, 2, 3]", "<div class=\"a\">b</div>", "C:\\Users\\me\\file.txt", "https://example.com/a?b=c&d=e#f",
        "user@example.com", "λx.x+1", "a_b_c-d.e", "0xDEADBEEF", "1e-12", "3.14159", "-42", "1,234,567.89", "2026-11-25T10:00:00Z"]
controls = ["\t", "\n", "\r", "\u0000", "\u0001", "\u007f", "\u0085", "\u00a0", "\u2028", "\u3000", "\ufeff", "\ufffd", "\u202e", "\u00ad"]

def rand_word():
    r = rng.random()
    if r < 0.45: return rng.choice(words)
    if r < 0.55: return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 30)))
    if r < 0.62: return str(rng.randint(0, 10**rng.randint(1, 12)))
    if r < 0.70: return rng.choice(punct) * rng.randint(1, 3)
    if r < 0.75: return rng.choice(code)
    if r < 0.80: return rng.choice(controls)
    if r < 0.83: return rng.choice(specials)
    if r < 0.86: return chr(rng.randint(0x20, 0x2FFFF))  # any code point (surrogates avoided below)
    if r < 0.88: return "x" * rng.randint(95, 130)  # around max_input_chars_per_word
    return rng.choice(words).upper()

cases = ["", " ", "\n", "hello", "Hello, world!", "[CLS]", "a[MASK]b", "[mask]", "don't", "U.S.A.", "e\u0301", "ﬁ",
         "x" * 100, "x" * 101, "İ", "ß", "Σίσυφος", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "🙂🙂🙂", "\u0000\u0000", "a\tb\nc\rd"]
while len(cases) < 2400:
    n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
    sep = rng.choice([" ", " ", " ", "", "  ", "\t", "\n"])
    s = sep.join(rand_word() for _ in range(n))
    s = "".join(c for c in s if not (0xD800 <= ord(c) <= 0xDFFF))
    cases.append(s)

with open(out, "w", encoding="utf-8") as f:
    f.write(json.dumps({"tokenizers": tokenizers.__version__, "model": "all-MiniLM-L6-v2", "cases": len(cases)}) + "\n")
    for s in cases:
        f.write(json.dumps({"text": s, "ids": tok.encode(s).ids}, ensure_ascii=True) + "\n")
print(f"wrote {len(cases)} cases to {out}")
