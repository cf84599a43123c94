#!/usr/bin/env python3
"""Counts pixels in a PNG screenshot (8-bit RGB or RGBA, non-interlaced, as Chromium writes them).

Usage: png_colours.py FILE [#rrggbb ...]  → prints JSON {"width", "height", "non_white", "distinct",
"colours": {"#rrggbb": count}} where each listed colour counts pixels within ±24 per channel.
Standard library only (zlib), so the report test needs no imaging package.
"""
import json, struct, sys, zlib

def read(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT": idat += body
        elif kind == b"IEND": break
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG: depth {depth} colour type {ctype}"
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    return w, h, bpp, rows

def main():
    w, h, bpp, rows = read(sys.argv[1])
    targets = [(t, tuple(int(t[k:k + 2], 16) for k in (1, 3, 5))) for t in sys.argv[2:]]
    counts = {t: 0 for t, _ in targets}
    non_white, distinct = 0, set()
    for line in rows:
        for x in range(0, w * bpp, bpp):
            r, g, b = line[x], line[x + 1], line[x + 2]
            if r < 245 or g < 245 or b < 245: non_white += 1
            distinct.add((r >> 4, g >> 4, b >> 4))
            for t, (tr, tg, tb) in targets:
                if abs(r - tr) <= 24 and abs(g - tg) <= 24 and abs(b - tb) <= 24: counts[t] += 1
    print(json.dumps({"width": w, "height": h, "non_white": non_white, "distinct": len(distinct), "colours": counts}))

main()
