"""PII scan throughput: mlcd's vectorised scanner vs a plain ``re``-per-value scan.

Generates ~200 MB of string data (mostly free text with PII sprinkled into ~1% of the
rows, plus e-mail, phone, card, IP and IBAN columns), pins the process to one core,
and measures MB/s of string data scanned:

* mlcd: ``mlcd_actions.data.pii.scan_frame`` (pyarrow RE2 union pass, per-kind passes on
  candidate rows, numpy Luhn / mod-97), on the whole data;
* peer: the Presidio-style baseline, every value through every Python ``re`` pattern
  with the same validators (``mlcd_actions.data.pii.find_all``). The peer runs on a slice of
  the rows (``--peer-fraction``, default 5%) because at its speed the whole set takes
  minutes; MB/s is a rate, and the slice has the same mix as the whole.

Both are run on that slice too, and their per-(column, kind) counts are compared: the
fast path must find exactly what the per-value loop finds.

    python benchmarks/bench_pii.py [--mb 200] [--peer-fraction 0.05]

Target: mlcd >= 100 MB/s on one core. Rates are given per CPU second of this process
(pinned to one core, pyarrow limited to one thread), so other load on a shared machine
does not count against either side; wall-clock rates are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

WORDS = ("the of and to in is was for on that with as by at from his her an which or be "
         "this are had not but have were been their one all would there they we more when "
         "who will no if out so said what up its about into than them can only other new "
         "some could time these two may then do first any my now such like our over man me "
         "even most made after also did many before must through back years where much your "
         "way well down should because each just those people how too little state good very "
         "make world still own see men work long get here between both life being under never "
         "day same another know while last might us great old year off come since against go "
         "came right used take three customer order delivery refund account package invoice "
         "shipped arrived damaged support ticket thanks please call number item price total "
         "version release build error warning server client request response").split()


def _pii(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return f"{rng.choice(['john', 'mary', 'a.b', 'x_y'])}{rng.randrange(999)}@example.com"
    if kind == 1:
        return f"+1 {rng.randrange(200, 999)}-{rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"
    if kind == 2:
        return rng.choice(["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"])
    if kind == 3:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
    if kind == 4:
        return f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"
    return "DE89 3704 0044 0532 0130 00"


def _sentence(rng: random.Random, pii: bool) -> str:
    n = rng.randint(15, 60)
    words = []
    for _ in range(n):
        r = rng.random()
        if r < 0.03:
            words.append(str(rng.randrange(1, 5000)))        # numbers in text: years, prices
        elif r < 0.035:
            words.append(f"{rng.randrange(24)}:{rng.randrange(10, 60)}")   # times
        elif r < 0.037:
            words.append(f"v{rng.randrange(9)}.{rng.randrange(20)}.{rng.randrange(9)}")
        else:
            words.append(rng.choice(WORDS))
    if pii:
        words.insert(rng.randrange(len(words)), _pii(rng))
    return " ".join(words)


def make_frame(target_mb: float, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    clean = np.array([_sentence(rng, False) for _ in range(20000)], dtype=object)
    dirty = np.array([_sentence(rng, True) for _ in range(2000)], dtype=object)
    avg = np.mean([len(s) for s in clean[:2000]]) * 2 + 60   # two text columns + short ones
    rows = int(target_mb * 1e6 / avg)
    notes = clean[nprng.integers(0, len(clean), rows)]
    hit = nprng.random(rows) < 0.01
    notes[hit] = dirty[nprng.integers(0, len(dirty), int(hit.sum()))]
    comments = clean[nprng.integers(0, len(clean), rows)]
    emails = np.array([f"user{i}@mail{i % 97}.example.org" for i in range(5000)], dtype=object)
    phones = np.array([f"+44 20 {rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}"
                       for _ in range(5000)], dtype=object)
    cards = np.array(["4111111111111111", "5500000000000004", "4012888888881881",
                      "1234567812345678"], dtype=object)
    ips = np.array([f"192.168.{i % 256}.{i // 256 % 256}" for i in range(5000)]
                   + [f"2001:db8::{i:x}" for i in range(5000)], dtype=object)
    df = pd.DataFrame({
        "notes": pd.array(notes, dtype="str"),
        "comment": pd.array(comments, dtype="str"),
        "email": pd.array(emails[nprng.integers(0, len(emails), rows)], dtype="str"),
        "phone": pd.array(phones[nprng.integers(0, len(phones), rows)], dtype="str"),
        "card": pd.array(cards[nprng.integers(0, len(cards), rows)], dtype="str"),
        "ip": pd.array(ips[nprng.integers(0, len(ips), rows)], dtype="str"),
        "amount": nprng.random(rows),
    })
    return df


def peer_scan(df) -> tuple[dict, int]:
    """Every value through every pattern, Python ``re`` + the same validators."""
    from mlcd_actions.data import pii

    counts: dict[tuple[str, str], int] = {}
    nbytes = 0
    for col in df.columns:
        if df[col].dtype == "float64":
            continue
        for value in df[col].tolist():
            if value is None or value != value:
                continue
            text = str(value)
            nbytes += len(text.encode())
            for kind in pii.find_all(text):
                counts[(col, kind)] = counts.get((col, kind), 0) + 1
    return counts, nbytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200.0, help="size of the string data, MB")
    ap.add_argument("--peer-fraction", type=float, default=0.05,
                    help="share of rows the slower peer scans (MB/s is a rate)")
    args = ap.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from mlcd_actions.data import pii

    t = time.perf_counter()
    df = make_frame(args.mb)
    print(f"generated {len(df):,} rows in {time.perf_counter() - t:.1f}s", flush=True)

    t, c = time.perf_counter(), time.process_time()
    res = pii.scan_frame(df)
    ours_wall, ours_s = time.perf_counter() - t, time.process_time() - c
    ours_mb = res.bytes_scanned / 1e6
    print(f"mlcd scan : {ours_mb:8.1f} MB in {ours_s:6.2f}s CPU = {ours_mb / ours_s:8.1f} MB/s "
          f"(wall {ours_wall:.2f}s = {ours_mb / ours_wall:.1f} MB/s; {len(res.hits)} findings)",
          flush=True)
    for h in res.hits:
        print(f"    {h.column:8s} {h.kind:14s} {h.count:>10,}  e.g. {', '.join(h.examples[:2])}")

    n = max(1000, int(len(df) * args.peer_fraction))
    part = df.iloc[:n].reset_index(drop=True)
    t, c = time.perf_counter(), time.process_time()
    peer_counts, peer_bytes = peer_scan(part)
    peer_wall, peer_s = time.perf_counter() - t, time.process_time() - c
    peer_mb = peer_bytes / 1e6
    print(f"peer (re) : {peer_mb:8.1f} MB in {peer_s:6.2f}s CPU = {peer_mb / peer_s:8.1f} MB/s "
          f"(wall {peer_wall:.2f}s = {peer_mb / peer_wall:.1f} MB/s; plain re per value, "
          f"{n:,} rows)", flush=True)

    ours_part = pii.scan_frame(part)
    ours_counts = {(h.column, h.kind): h.count for h in ours_part.hits}
    same = ours_counts == peer_counts
    print(f"agreement on the peer's slice: {'identical counts' if same else 'DIFFERENT'}")
    if not same:
        for key in sorted(set(ours_counts) | set(peer_counts)):
            if ours_counts.get(key) != peer_counts.get(key):
                print(f"    {key}: mlcd {ours_counts.get(key)} vs peer {peer_counts.get(key)}")
    ratio = (ours_mb / ours_s) / (peer_mb / peer_s)
    print(f"ratio mlcd/peer: {ratio:.1f}x   target >= 100 MB/s: "
          f"{'met' if ours_mb / ours_s >= 100 else 'MISSED'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
