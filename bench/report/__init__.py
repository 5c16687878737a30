"""`bench/results/<date>.md` and `.json`, and PNG plots, from the results of `python -m bench`.

`python -m bench.report RESULTS.json` re-renders the Markdown and the plots from a saved JSON
(matplotlib: `pip install matplotlib`, the `bench` extra)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.report.catchup import catchup_section
from bench.report.live import live_section
from bench.report.plots import plot_lag, plot_latency, plot_rss
from bench.report.scale import scale_section


def markdown(res: dict[str, Any], pngs: dict[str, str]) -> str:
    out: list[str] = []
    w = out.append
    env = res["env"]
    w(f"# aisha-monitor benchmark, {res['date']}{' (quick)' if res['quick'] else ''}\n")
    w(
        f"`{res['command']}` on {env['host']}: {env['cpus']} cores, {env['mem_gb']:.0f} GB, "
        f"{env['kernel']}; aisha-monitor {env['version']} at commit `{env['commit']}`; "
        f"Python {env['python']}; {env['tools']}. Load average before the run: "
        f"{' '.join(env['load_before'])}. The machine is shared with other people's test runs: "
        f"every figure carries their noise. The whole run took {res['seconds'] / 60:.1f} min.\n"
    )
    c = res.get("catchup")
    if c:
        catchup_section(c, w, out)
    lv = res.get("live")
    if lv:
        live_section(lv, res, pngs, w, out)
    sc = res.get("scale")
    if sc:
        scale_section(sc, w, out)
    w("## Commands\n")
    w("```sh")
    out.extend(res["commands"])
    w("```")
    return "\n".join(out) + "\n"


def write(res: dict[str, Any], out_dir: Path) -> Path:
    """DATE.md, DATE.json and DATE-*.png into out_dir; returns the Markdown's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = res["date"] + ("-quick" if res["quick"] else "")
    pngs: dict[str, str] = {}
    lv = res.get("live")
    if lv:
        for key, fn in (("latency", plot_latency), ("lag", plot_lag), ("rss", plot_rss)):
            name = f"{stem}-{key}.png"
            fn(lv, out_dir / name)
            pngs[key] = name
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    md = out_dir / f"{stem}.md"
    md.write_text(markdown(res, pngs), encoding="utf-8")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, help="default: the JSON's directory")
    args = parser.parse_args(argv)
    res = json.loads(args.results.read_text())
    print(write(res, args.out or args.results.parent))
    return 0
