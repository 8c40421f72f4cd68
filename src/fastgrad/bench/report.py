"""The markdown tables, the targets of issues 3, 4 and 5, and the JSON payload.

The ``scalar`` workload adds a section under its table (:func:`scalar_figures`):
the replayed tape's time per instruction and per graph node, the eager steps'
parts, the speed-ups over micrograd and the drift within the run, all
computed from the samples of that one run.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

from fastgrad.bench.harness import STEP_TOLERANCE, TOLERANCE, Result, fmt_time

__all__ = ["format_table", "evaluate_targets", "format_targets", "to_json", "scalar_figures"]

# (issue, what, workload, numerator, denominator, comparison, bound)
#   "time<=":   numerator's time / denominator's time <= bound
#   "speedup>=": denominator's time / numerator's time >= bound (numerator is micrograd)
#   "abs<=":    numerator's time per unit <= bound seconds
TARGETS = [
    ("3", "scalar tape replay >= 1000x faster than micrograd GC off", "w1",
     "micrograd_gc_off", "fastgrad_replay", "speedup>=", 1000.0),
    ("3", "eager scalar >= 25x faster than micrograd GC off", "w1",
     "micrograd_gc_off", "fastgrad_eager", "speedup>=", 25.0),
    ("4", "per-op overhead, replayed forward <= 0.1 µs", "ops",
     "fastgrad_tape_forward", None, "abs<=", 1e-7),
    ("4", "per-op overhead, replayed backward <= 0.1 µs", "ops",
     "fastgrad_tape_backward", None, "abs<=", 1e-7),
    ("4", "W3 compiled step <= 0.85x numpy hand-written", "w3",
     "fastgrad_compiled", "numpy", "time<=", 0.85),
    ("4", "W4 compiled step <= 1.05x the 8 bare GEMMs", "w4",
     "fastgrad_compiled", "fastgrad_gemms", "time<=", 1.05),
    ("5", "W1 compiled step <= 0.2x numpy hand-written", "w1",
     "fastgrad_compiled", "numpy", "time<=", 0.2),
    ("5", "W1 compiled step <= 0.05x PyTorch eager", "w1",
     "fastgrad_compiled", "torch", "time<=", 0.05),
    ("5", "W2 compiled step <= 0.6x numpy hand-written", "w2",
     "fastgrad_compiled", "numpy", "time<=", 0.6),
    ("5", "W3 compiled step (+ SGD) <= 0.85x numpy hand-written", "w3",
     "fastgrad_compiled", "numpy", "time<=", 0.85),
]


def _ratio(x: float) -> str:
    if x != x:
        return "—"
    if x >= 100:
        return f"{x:,.0f}×"
    if x >= 10:
        return f"{x:.1f}×"
    return f"{x:.2f}×"


def _check_cell(r: Result) -> str:
    if r.status == "skipped":
        how = f" — `{r.install}`" if r.install else ""
        return f"skipped: {r.message}{how}"
    if r.status in ("mismatch", "error"):
        return r.message if r.status == "mismatch" else f"error: {r.message}"
    if not r.engine.has_loss:
        return "floor (no loss)"
    err = r.check.get("rel_err")
    return "ok" if err is None else f"ok ({err:.0e})"


def _per_round_ratios(num: Result, den: Result) -> list[float]:
    """num's time / den's time, round by round (both measured in that round)."""
    other = dict(den.samples)
    return [s / other[k] for k, s in num.samples if other.get(k)]


def _per_round_speedup(num: Result, den: Result) -> float:
    """Median over rounds of num's time / den's time in the same round."""
    ratios = _per_round_ratios(num, den)
    return statistics.median(ratios) if ratios else math.nan


def format_table(w, results: list[Result]) -> list[str]:
    unit = w.unit
    by_key = {r.engine.key: r for r in results}
    versus = by_key.get(w.versus[0]) if w.versus else None
    versus_ok = versus is not None and versus.timed
    head = ["engine", f"median / {unit}", "IQR", "min – max", "× fastgrad"]
    if w.versus:
        head.append(w.versus[1])
    head += ["first call", "loss check"]
    lines = [f"### {w.key}: {w.title}", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i in (0, len(head) - 1) else "---:"
                            for i in range(len(head))) + "|"]
    for r in results:
        e = r.engine
        name = f"**{e.label}**" if e.key == w.baseline else e.label
        if r.timed:
            s = r.stats
            cells = [name, fmt_time(s["median"]), f"±{s['iqr_rel'] * 50:.1f}%",
                     f"{fmt_time(s['min'])} – {fmt_time(s['max'])}", _ratio(s["ratio"])]
            if w.versus:   # a sweep that does not update is not a step: no speed-up
                cells.append(_ratio(versus.stats["median"] / s["median"])
                             if versus_ok and e.updates else "—")
        else:
            cells = [name, "—", "—", "—", "—"] + (["—"] if w.versus else [])
        cells += [fmt_time(r.first_call_s) if r.first_call_s is not None else "",
                  _check_cell(r)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    timed = [r for r in results if r.timed]
    if timed:
        batches = ", ".join(f"{re.sub(r' [(].*?[)]', '', r.engine.label)} {r.batch}"
                            for r in timed)
        lines.append(f"{len(timed[0].samples)} interleaved rounds; steps per timed batch: "
                     f"{batches}. IQR is ± half the interquartile range relative to the "
                     f"median; × fastgrad is this engine's median over fastgrad's "
                     f"(bold row), measured in the same run.")
    lines.append(f"Loss check: each engine's losses of its first two steps against "
                 f"fastgrad's, relative tolerance {TOLERANCE[w.dtype]:g}, and the change of "
                 f"the loss made by the first update, {STEP_TOLERANCE[w.dtype]:g} ({w.dtype}; "
                 f"the cell shows the larger relative error of the losses).")
    for r in results:
        if r.engine.note and r.status == "ok":
            lines.append(f"- {r.engine.note}")
    lines.append("")
    if w.key == "scalar":
        lines += format_scalar_figures(scalar_figures(results), results)
    return lines


# The scalar workload's speed-ups: (name, numerator key, denominator key).
SCALAR_RATIOS = [
    ("micrograd GC off / fastgrad replay", "micrograd_gc_off", "fastgrad_replay"),
    ("micrograd GC off / fastgrad eager GC off", "micrograd_gc_off", "fastgrad_eager_gc_off"),
    ("micrograd GC on / fastgrad replay", "micrograd_gc_on", "fastgrad_replay"),
    ("micrograd GC on / fastgrad eager GC on", "micrograd_gc_on", "fastgrad_eager"),
    ("micrograd GC on / fastgrad eager GC off", "micrograd_gc_on", "fastgrad_eager_gc_off"),
]
# The replayed tape: a whole step, and each sweep alone.
SCALAR_SWEEPS = (("step", "fastgrad_replay"), ("forward", "fastgrad_replay_forward"),
                 ("backward", "fastgrad_replay_backward"))


def _drift(r: Result) -> list[float | None]:
    """Median time in the first round, in rounds 2-5 and in the last 5 rounds."""
    by_round = dict(r.samples)
    n = max(by_round) + 1
    spans = ((0, 1), (1, 5), (max(n - 5, 0), n))
    return [statistics.median(xs) if xs else None
            for xs in ([by_round[k] for k in range(lo, hi) if k in by_round]
                       for lo, hi in spans)]


def scalar_figures(results: list[Result]) -> dict[str, Any]:
    """What the scalar workload derives from its rows, all from the same run."""
    rows = {r.engine.key: r for r in results if r.timed}
    replay = rows.get("fastgrad_replay")
    tape = dict(replay.engine.facts) if replay else {}
    sweeps = {name: rows[key].stats["median"] for name, key in SCALAR_SWEEPS if key in rows}
    per: dict[str, dict[str, float]] = {}
    for what, fact in (("per_instruction_s", "instructions"), ("per_node_s", "graph_nodes")):
        count = tape.get(fact)
        per[what] = {name: s / count for name, s in sweeps.items()} if count else {}
    ratios = []
    for name, num_key, den_key in SCALAR_RATIOS:
        if num_key in rows and den_key in rows:
            num, den = rows[num_key], rows[den_key]
            rounds = _per_round_ratios(num, den)
            ratios.append({"name": name, "numerator": num_key, "denominator": den_key,
                           "of_medians": num.stats["median"] / den.stats["median"],
                           "per_round": {"median": statistics.median(rounds),
                                         "min": min(rounds), "max": max(rounds)}})
    return {"tape": tape, **per,
            "step_minus_sweeps_s": (sweeps["step"] - sweeps["forward"] - sweeps["backward"]
                                    if len(sweeps) == len(SCALAR_SWEEPS) else None),
            "parts": {key: r.part_stats for key, r in rows.items() if r.part_stats},
            "ratios": ratios, "drift": {key: _drift(r) for key, r in rows.items()}}


def format_scalar_figures(fig: dict[str, Any], results: list[Result]) -> list[str]:
    labels = {r.engine.key: r.engine.label for r in results}
    lines = []
    tape = fig["tape"]
    if tape:
        lines += [(f"Tape: `{tape['tape']}`; built eagerly in {fmt_time(tape['build_s'])}, "
                   f"lowered in {fmt_time(tape['lower_s'])} (once)."), ""]
    for what, unit, fact in (("per_instruction_s", "tape instruction", "instructions"),
                             ("per_node_s", "graph node", "graph_nodes")):
        if fig[what]:
            lines.append(f"- replay per {unit} ({tape[fact]} {unit}s): " + ", ".join(
                f"{name} {fmt_time(s)}" for name, s in fig[what].items()))
    if fig["step_minus_sweeps_s"] is not None:
        lines.append(f"- replay step − forward − backward (zero_grad + arena update + "
                     f"Python loop): {fmt_time(fig['step_minus_sweeps_s'])}")
    parts = fig["parts"]
    if parts:
        names = list(next(iter(parts.values())))
        lines += ["", "| eager step, median per part | " + " | ".join(names) + " |",
                  "|---|" + "---:|" * len(names)]
        lines += [f"| {labels[key]} | " + " | ".join(fmt_time(p[n]) for n in names) + " |"
                  for key, p in parts.items()]
    if fig["ratios"]:
        heading = "| speed-up (same run) | ratio of medians | per-round median [min – max] |"
        lines += ["", heading, "|---|---:|---:|"]
        for x in fig["ratios"]:
            pr = x["per_round"]
            lines.append(f"| {x['name']} | {_ratio(x['of_medians'])} | {_ratio(pr['median'])} "
                         f"[{_ratio(pr['min'])} – {_ratio(pr['max'])}] |")
    lines += ["", "Drift within the run (median in round 1 → rounds 2–5 → last 5 rounds):"]
    lines += [f"- {labels[key]}: " + " → ".join(fmt_time(x) for x in d)
              for key, d in fig["drift"].items()]
    lines.append("")
    return lines


def evaluate_targets(all_results: dict[str, list[Result]]) -> list[dict[str, Any]]:
    out = []
    for issue, what, wl, num_key, den_key, kind, bound in TARGETS:
        entry: dict[str, Any] = {"issue": issue, "target": what, "workload": wl,
                                 "value": None, "per_round": None, "met": None}
        rows = {r.engine.key: r for r in all_results.get(wl, [])}
        num, den = rows.get(num_key), rows.get(den_key) if den_key else None
        if wl not in all_results:
            entry["why"] = f"workload {wl} not run"
        elif num is None or not num.timed or (den_key and (den is None or not den.timed)):
            missing = [k for k, r in ((num_key, num), (den_key, den))
                       if k and (r is None or not r.timed)]
            entry["why"] = f"not measured ({', '.join(missing)} missing)"
        elif kind == "abs<=":
            entry["value"] = num.stats["median"]
            entry["met"] = entry["value"] <= bound
        elif kind == "speedup>=":
            entry["value"] = num.stats["median"] / den.stats["median"]
            entry["per_round"] = _per_round_speedup(num, den)
            entry["met"] = entry["value"] >= bound
        else:
            entry["value"] = num.stats["median"] / den.stats["median"]
            entry["per_round"] = _per_round_speedup(num, den)
            entry["met"] = entry["value"] <= bound
        entry["kind"], entry["bound"] = kind, bound
        out.append(entry)
    return out


def format_targets(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["### Targets (issues 3, 4, 5)", "",
             "| issue | target | measured | per-round median | verdict |",
             "|---|---|---:|---:|---|"]
    for t in targets:
        if t["value"] is None:
            measured, per, verdict = "—", "—", t.get("why", "not measured")
        else:
            if t["kind"] == "abs<=":
                measured, per = fmt_time(t["value"]), "—"
            elif t["kind"] == "speedup>=":
                measured, per = f"{t['value']:,.0f}× faster", f"{t['per_round']:,.0f}×"
            else:
                measured, per = f"{t['value']:.3f}×", f"{t['per_round']:.3f}×"
            verdict = "met" if t["met"] else "**not met**"
        lines.append(f"| {t['issue']} | {t['target']} | {measured} | {per} | {verdict} |")
    lines.append("")
    return lines


def to_json(w, results: list[Result]) -> dict[str, Any]:
    engines = {}
    for r in results:
        e = r.engine
        engines[e.key] = {
            "label": e.label, "family": e.family, "status": r.status, "message": r.message,
            "install": r.install, "baseline": e.key == w.baseline,
            "losses": r.check.get("losses"), "loss_rel_err": r.check.get("rel_err"),
            "step_change_rel_err": r.check.get("step_rel_err"),
            "first_step_s": r.check.get("first_step_s"), "setup_s": e.setup_s,
            "first_call_s": r.first_call_s, "batch": r.batch, "unit": w.unit,
            "seconds_per_unit": r.stats or None,
            "samples": [{"round": k, "seconds": s} for k, s in r.samples],
            "parts": r.part_stats or None,
            "part_samples": [{"round": k, "seconds": dict(zip(e.parts, ps))}
                             for k, ps in r.part_samples],
            "facts": e.facts, "note": e.note,
        }
    out = {"title": w.title, "dtype": w.dtype, "unit": w.unit, "baseline": w.baseline,
           "tolerance": TOLERANCE[w.dtype], "step_tolerance": STEP_TOLERANCE[w.dtype],
           "engines": engines}
    if w.key == "scalar":
        out["figures"] = scalar_figures(results)
    return out
