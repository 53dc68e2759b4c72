"""`python -m training.motion`: the registry as a Markdown table (sequence, frames, rate, rotations, split, package,
licence) with totals per source and split; `--check` also loads every sequence from the assets."""

from __future__ import annotations

import argparse
from collections import defaultdict

from training.motion.registry import SEQUENCES, load_sequence


def registry_table() -> str:
    lines = ["| sequence | frames | fps | rotations | split | package | licence |", "|---|---|---|---|---|---|---|"]
    for s in SEQUENCES:
        lines.append(f"| {s.name} | {s.frames} | {s.fps:g} | {'yes' if s.has_rotations else 'no'} | {s.split} | "
                     f"{s.package} | {s.licence} |")
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for s in SEQUENCES:
        totals[(s.source, s.split)] += s.frames
    lines.append("")
    lines.append("| source | train frames | held-out frames |")
    lines.append("|---|---|---|")
    for source in dict.fromkeys(s.source for s in SEQUENCES):
        lines.append(f"| {source} | {totals[(source, 'train')]} | {totals[(source, 'held_out')]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="load every sequence and compare with the registry")
    ap.add_argument("--assets", default=None, help="assets folder (default: $PETR_ASSETS or <repo>/assets)")
    args = ap.parse_args(argv)
    print(registry_table())
    if args.check:
        bad = []
        for s in SEQUENCES:
            seq = load_sequence(s.name, args.assets)
            if seq.num_frames != s.frames or abs(seq.fps - s.fps) > 1e-3 * s.fps:
                bad.append(f"{s.name}: {seq.num_frames} frames at {seq.fps:.3f} fps")
        print("\nall sequences load as registered" if not bad else "\nMISMATCH:\n" + "\n".join(bad))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
