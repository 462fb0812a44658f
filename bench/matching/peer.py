#!/usr/bin/env python3
"""Peers for Tapestry's matching benchmarks, run on the instances match_bench wrote.

B1: a vectorised numpy instant matcher with the same hard filters, score and
    tie-break (score desc, index asc), top-5, first choice takes a place.
B2: scipy LAPJVsp (min_weight_full_bipartite_matching) and scipy
    linear_sum_assignment on the slot-expanded graph, and OR-Tools SimpleMinCostFlow.
Dense n = 2,000: scipy linear_sum_assignment.

Usage: peer.py OUT_DIR. Results are compared with rust_results.json FIRST; any
difference exits with status 1 before a single timing is printed.
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from ortools.graph.python import min_cost_flow
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

RANK_WEIGHTS = [3, 2, 1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * p)]


# ----------------------------------------------------------------------------- B1


def b1(out: Path):
    c = json.loads((out / "b1_clinicians.json").read_text())
    lic = np.array(c["lic_valid"], dtype=np.uint64)
    lang = np.array(c["lang"], dtype=np.int64)
    fmt = np.array(c["fmt"], dtype=np.int64)
    pop = np.array(c["pop"], dtype=np.int64)
    risk = np.array(c["risk"], dtype=bool)
    slots = np.array(c["slots"], dtype=np.int64)
    spec = np.array(c["spec"], dtype=np.int64)
    eff = np.array(c["eff"], dtype=np.int64)
    neu = np.array(c["neu"], dtype=np.int64)
    inef = np.array(c["inef"], dtype=np.int64)
    appr = np.array(c["appr"], dtype=np.int64)
    chars = np.array(c["chars"], dtype=np.int64)
    h0 = np.array(c["hours0"], dtype=np.uint64)
    h12 = np.array(c["hours12"], dtype=np.uint64)
    h1 = np.ascontiguousarray(h12[:, 0])
    h2 = np.ascontiguousarray(h12[:, 1])
    queries = json.loads((out / "b1_queries.json").read_text())

    def score_and_take(q, idx, top_mask, slots):
        """Score the clinicians `idx` that passed every filter; top-5; take a place."""
        sp, ef, ne = spec[idx], eff[idx], neu[idx]
        s = np.zeros(len(idx), dtype=np.int64)
        for d, w in zip(q["top"], RANK_WEIGHTS):
            b = 1 << d
            s += w * (4 * ((sp & b) != 0) + 6 * ((ef & b) != 0) + ((ne & b) != 0))
        if top_mask:
            s += 10 * ((ef & top_mask) == top_mask)
        for a in q["appr"]:
            s += 5 * ((appr[idx] >> a) & 1)
        for ch in q["chars"]:
            s += 4 * ((chars[idx] >> ch) & 1)
        if q["hours"] is not None:
            w0, w1, w2 = (np.uint64(x) for x in q["hours"])
            ov = (
                np.bitwise_count(h0[idx] & w0).astype(np.int64)
                + np.bitwise_count(h1[idx] & w1)
                + np.bitwise_count(h2[idx] & w2)
            )
            s += np.minimum(ov, 10)
        order = np.argsort(-s, kind="stable")[:5]
        top = [[int(idx[o]), int(s[o])] for o in order]
        if top:
            slots[top[0][0]] -= 1
        return top

    def top_mask_of(q):
        top_mask = 0
        for d in q["top"]:
            top_mask |= 1 << d
        return top_mask

    def match(q, slots):
        """Full scan: every filter over all 35,000 clinicians."""
        m = ((lic >> np.uint64(q["jur"])) & np.uint64(1)).astype(bool)
        m &= (lang & q["lang"]) != 0
        m &= ((fmt >> q["fmt"]) & 1) == 1
        m &= ((pop >> q["pop"]) & 1) == 1
        m &= slots > 0
        if q["needs_risk"]:
            m &= risk
        top_mask = top_mask_of(q)
        m &= (inef & top_mask) == 0
        return score_and_take(q, np.flatnonzero(m), top_mask, slots)

    # The per-jurisdiction peer precomputes, once, for every jurisdiction the ids of the
    # clinicians holding a licence valid on the match day and a copy of their filter
    # columns (the same precomputation Tapestry's index does, minus the date check,
    # which the export has already applied).
    by_jur = []
    for j in range(64):
        ids = np.flatnonzero((lic >> np.uint64(j)) & np.uint64(1))
        by_jur.append((ids, lang[ids], fmt[ids], pop[ids], risk[ids], inef[ids]))

    def match_by_jurisdiction(q, slots):
        """Filters over the jurisdiction's clinicians only."""
        ids, jl, jf, jp, jr, ji = by_jur[q["jur"]]
        m = (jl & q["lang"]) != 0
        m &= ((jf >> q["fmt"]) & 1) == 1
        m &= ((jp >> q["pop"]) & 1) == 1
        m &= slots[ids] > 0
        if q["needs_risk"]:
            m &= jr
        top_mask = top_mask_of(q)
        m &= (ji & top_mask) == 0
        return score_and_take(q, ids[m], top_mask, slots)

    rust = json.loads((out / "b1_rust_top5.json").read_text())
    result = {}
    for name, fn in [("numpy", match), ("numpy_jur", match_by_jurisdiction)]:
        s0 = slots.copy()
        warm = s0.copy()
        for q in queries[:50]:
            fn(q, warm)
        answers, times = [], []
        cpu0 = time.thread_time()
        for q in queries:
            t = time.perf_counter()
            answers.append(fn(q, s0))
            times.append(time.perf_counter() - t)
        cpu_mean_us = (time.thread_time() - cpu0) * 1e6 / len(queries)
        same = sum(1 for a, b in zip(answers, rust) if a == b)
        us = [t * 1e6 for t in times]
        result[name] = {
            "equal": same == len(queries) == len(rust),
            "detail": f"{same}/{len(queries)} identical top-5 lists (indices and scores)",
            "p50_us": pct(us, 0.5),
            "p99_us": pct(us, 0.99),
            "mean_us": sum(us) / len(us),
            "cpu_mean_us": cpu_mean_us,
        }
    return result


# ----------------------------------------------------------------------------- B2


def load(out: Path, name: str):
    meta = json.loads((out / f"{name}.meta.json").read_text())
    e = np.fromfile(out / f"{name}.edges.i32", dtype="<i4").reshape(-1, 3).astype(np.int64)
    caps = np.fromfile(out / f"{name}.caps.i32", dtype="<i4").astype(np.int64)
    rust_assign = np.fromfile(out / f"{name}.rust_assignment.i32", dtype="<i4")
    return meta, e[:, 0], e[:, 1], e[:, 2], caps, rust_assign


def check_rust_assignment(n, rows, cols, scores, caps, assign):
    """Recompute K and S from Rust's assignment; check edges and capacities."""
    score_of = dict(zip(zip(rows.tolist(), cols.tolist()), scores.tolist()))
    used = np.zeros(len(caps), dtype=np.int64)
    k, s = 0, 0
    for r in range(n):
        j = int(assign[r])
        if j < 0:
            continue
        if (r, j) not in score_of:
            return None
        used[j] += 1
        k += 1
        s += score_of[(r, j)]
    if (used > caps).any():
        return None
    return k, s


def slot_expand(rows, cols, scores, caps):
    caps = np.minimum(caps, np.bincount(cols, minlength=len(caps)))
    offset = np.concatenate([[0], np.cumsum(caps)])
    rep = caps[cols]
    r = np.repeat(rows, rep)
    s = np.repeat(scores, rep)
    start = np.repeat(np.cumsum(rep) - rep, rep)
    slot = np.repeat(offset[cols], rep) + (np.arange(len(r)) - start)
    owner = np.repeat(np.arange(len(caps)), caps)
    return r, slot, s, int(offset[-1]), owner


def scipy_sparse(n, rows, cols, scores, caps):
    t0 = time.perf_counter()
    r, slot, s, nslots, owner = slot_expand(rows, cols, scores, caps)
    hi = int(scores.max()) if len(scores) else 0
    lo = int(scores.min()) if len(scores) else 0
    penalty = float(n * (hi - lo + 1) + 1)
    # Weights must be non-zero (zero = no edge): 1 + (hi - score) ≥ 1.
    w = np.concatenate([1.0 + (hi - s), np.full(n, penalty)])
    rr = np.concatenate([r, np.arange(n)])
    cc = np.concatenate([slot, nslots + np.arange(n)])
    g = csr_matrix((w, (rr, cc)), shape=(n, nslots + n))
    build = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(3):
        c, t = time.thread_time(), time.perf_counter()
        ri, ci = min_weight_full_bipartite_matching(g)
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    real = ci < nslots
    k = int(real.sum())
    w_chosen = np.asarray(g[ri[real], ci[real]]).ravel()
    total = int(((hi + 1) - w_chosen).sum())
    return {"assigned": k, "total_score": total, "build_s": build, "solve_s": sorted(times)[1], "cpu_s": sorted(cpu)[1]}


def scipy_lsa_slots(n, rows, cols, scores, caps):
    t0 = time.perf_counter()
    r, slot, s, nslots, _ = slot_expand(rows, cols, scores, caps)
    big = float(n * (int(scores.max()) - int(scores.min()) + 1) + 1) if len(scores) else 1.0
    m = np.full((n, nslots), -big)
    m[r, slot] = s
    build = time.perf_counter() - t0
    c, t = time.thread_time(), time.perf_counter()
    ri, ci = linear_sum_assignment(m, maximize=True)
    solve = time.perf_counter() - t
    cpu = time.thread_time() - c
    v = m[ri, ci]
    real = v > -big / 2
    del m
    return {"assigned": int(real.sum()), "total_score": int(v[real].sum()), "build_s": build, "solve_s": solve, "cpu_s": cpu}


def ortools_flow(n, rows, cols, scores, caps):
    t0 = time.perf_counter()
    m = len(caps)
    hi = int(scores.max()) if len(scores) else 0
    lo = int(scores.min()) if len(scores) else 0
    penalty = n * (hi - lo + 1) + 1
    src, sink = 0, n + m + 1
    client = 1 + np.arange(n)
    tails = np.concatenate([np.zeros(n, np.int64), 1 + rows, n + 1 + np.arange(m), client])
    heads = np.concatenate([client, n + 1 + cols, np.full(m, sink), np.full(n, sink)])
    capac = np.concatenate([np.ones(n, np.int64), np.ones(len(rows), np.int64), caps, np.ones(n, np.int64)])
    costs = np.concatenate([np.zeros(n, np.int64), hi - scores, np.zeros(m, np.int64), np.full(n, penalty)])
    f = min_cost_flow.SimpleMinCostFlow()
    arcs = f.add_arcs_with_capacity_and_unit_cost(tails, heads, capac, costs)
    f.set_node_supply(src, n)
    f.set_node_supply(sink, -n)
    build = time.perf_counter() - t0
    c, t = time.thread_time(), time.perf_counter()
    status = f.solve()
    solve = time.perf_counter() - t
    cpu = time.thread_time() - c
    if status != f.OPTIMAL:
        raise SystemExit(f"OR-Tools status {status}")
    flows = f.flows(arcs[n : n + len(rows)])
    return {"assigned": int(flows.sum()), "total_score": int((flows * scores).sum()), "build_s": build, "solve_s": solve, "cpu_s": cpu}


def dense_lsa(n, rows, cols, scores):
    m = np.zeros((n, n))
    m[rows, cols] = scores
    times, cpu = [], []
    for _ in range(3):
        c, t = time.thread_time(), time.perf_counter()
        ri, ci = linear_sum_assignment(m, maximize=True)
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return {"assigned": len(ri), "total_score": int(m[ri, ci].sum()), "solve_s": sorted(times)[1], "cpu_s": sorted(cpu)[1]}


def print_b1(b1rust, b1r):
    rk, ex = b1rust["rank"], b1rust["explained"]
    print("B1 instant match, 35,000 clinicians, one sign-up at a time (hard filters + score + top-5 + take a place)")
    print(f"  Rust rank      : p50 {rk['p50_us']:7.2f} µs  p99 {rk['p99_us']:7.2f} µs  mean {rk['mean_us']:6.2f} µs  CPU mean {b1rust['rank_cpu_mean_us']:6.2f} µs  ({b1rust['queries']} sign-ups)")
    print(f"  Rust explained : p50 {ex['p50_us']:7.2f} µs  p99 {ex['p99_us']:7.2f} µs  mean {ex['mean_us']:6.2f} µs  CPU mean {b1rust['explained_cpu_mean_us']:6.2f} µs  (with reasons)")
    for name, label in [("numpy", "numpy full scan"), ("numpy_jur", "numpy per-jurisdiction")]:
        r = b1r[name]
        print(f"  {label:23}: p50 {r['p50_us']:7.1f} µs  p99 {r['p99_us']:7.1f} µs  mean {r['mean_us']:6.1f} µs  CPU mean {r['cpu_mean_us']:6.1f} µs  (1,000 sign-ups)")
        print(f"    {label} / Rust rank: p50 {r['p50_us'] / rk['p50_us']:.0f}×  p99 {r['p99_us'] / rk['p99_us']:.0f}×  CPU mean {r['cpu_mean_us'] / b1rust['rank_cpu_mean_us']:.0f}×;"
              f"  / Rust explained: p50 {r['p50_us'] / ex['p50_us']:.0f}×")


def main():
    out = Path(sys.argv[1])
    rust = json.loads((out / "rust_results.json").read_text())
    problems, rows_out = [], []

    def same(label, peer, ours):
        ok = (peer["assigned"], peer["total_score"]) == (ours["assigned"], ours["total_score"])
        if not ok:
            problems.append(f"{label}: peer K={peer['assigned']} S={peer['total_score']} vs ours K={ours['assigned']} S={ours['total_score']}")
        return ok

    # B1
    b1r = b1(out)
    for name, r in b1r.items():
        if not r["equal"]:
            problems.append(f"B1 {name}: " + r["detail"])
    if rust.get("b2") is None:
        # MATCH_BENCH_ONLY=b1: the instant match only.
        if problems:
            print("RESULTS DIFFER — no timings reported:\n  " + "\n  ".join(problems))
            sys.exit(1)
        print("All results equal: B1 " + "; ".join(f"{n} {r['detail']}" for n, r in b1r.items()))
        print_b1(rust["b1"], b1r)
        return

    # B2 sparse
    meta, r, c, s, caps, ra = load(out, "b2_sparse")
    ours = rust["b2"]
    ks = check_rust_assignment(meta["clients"], r, c, s, caps, ra)
    if ks != (ours["assigned"], ours["total_score"]):
        problems.append(f"B2: Rust assignment file recomputes to {ks}, reported {ours['assigned']},{ours['total_score']}")
    sp = scipy_sparse(meta["clients"], r, c, s, caps)
    same("B2 scipy LAPJVsp", sp, ours)
    orr = ortools_flow(meta["clients"], r, c, s, caps)
    same("B2 OR-Tools", orr, ours)
    lsa = None
    if os.environ.get("MATCH_SKIP_DENSE_SLOTS") != "1":
        lsa = scipy_lsa_slots(meta["clients"], r, c, s, caps)
        same("B2 scipy linear_sum_assignment (slot-expanded, dense)", lsa, ours)

    # Dense
    dmeta, dr, dc, ds, dcaps, dra = load(out, "dense")
    dours = rust["dense"]
    dks = check_rust_assignment(dmeta["clients"], dr, dc, ds, dcaps, dra)
    if dks != (dours["assigned"], dours["total_score"]):
        problems.append(f"dense: Rust assignment file recomputes to {dks}")
    dl = dense_lsa(dmeta["clients"], dr, dc, ds)
    same("dense scipy linear_sum_assignment", dl, dours)

    if problems:
        print("RESULTS DIFFER — no timings reported:")
        for p in problems:
            print("  " + p)
        sys.exit(1)

    print("All results equal: B1 " + b1r["detail"] + f"; B2 K={ours['assigned']} S={ours['total_score']} (scipy LAPJVsp, "
          + ("scipy LSA slot-expanded, " if lsa else "") + f"OR-Tools); dense S={dours['total_score']} (scipy LSA).")
    print()
    print_b1(rust["b1"], b1r)
    print()
    print(f"B2 batch: {meta['clients']} clients × {meta['clinicians']} clinicians, capacities 0–3, {meta['edges']} edges (solve only; build separate)")
    rs, rc = ours["solve_s_median"], ours["solve_cpu_s_median"]
    print(f"  Rust sparse SSP      : {rs:7.3f} s  CPU {rc:7.3f} s  (median of {len(ours['solve_s_all'])})  build {ours['build_s']:.3f} s")
    print(f"  scipy LAPJVsp slots  : {sp['solve_s']:7.3f} s  CPU {sp['cpu_s']:7.3f} s  build {sp['build_s']:.3f} s   scipy/Rust {sp['solve_s'] / rs:.1f}× (CPU {sp['cpu_s'] / rc:.1f}×)")
    if lsa:
        print(f"  scipy LSA slots      : {lsa['solve_s']:7.3f} s  CPU {lsa['cpu_s']:7.3f} s  build {lsa['build_s']:.3f} s   scipy/Rust {lsa['solve_s'] / rs:.0f}× (CPU {lsa['cpu_s'] / rc:.0f}×)")
    print(f"  OR-Tools min-cost    : {orr['solve_s']:7.3f} s  CPU {orr['cpu_s']:7.3f} s  build {orr['build_s']:.3f} s   OR-Tools/Rust {orr['solve_s'] / rs:.0f}× (CPU {orr['cpu_s'] / rc:.0f}×)")
    print()
    ds, dc = dours["solve_s_median"], dours["solve_cpu_s_median"]
    print(f"Dense n = {dmeta['clients']}, integer scores 0–999")
    print(f"  Rust dense engine : {ds:7.3f} s  CPU {dc:7.3f} s  (median of {len(dours['solve_s_all'])}, includes filling the cost matrix)")
    print(f"  scipy LSA         : {dl['solve_s']:7.3f} s  CPU {dl['cpu_s']:7.3f} s  (median of 3)   Rust/scipy {ds / dl['solve_s']:.2f}× (CPU {dc / dl['cpu_s']:.2f}×)")


if __name__ == "__main__":
    main()
