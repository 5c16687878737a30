"""The report's sections on scale: 100k open trainings, the alert book, 50 rules."""

from __future__ import annotations

from typing import Any

from bench import scale as scale_mod
from bench.report.text import table


def scale_section(sc: dict[str, Any], w: Any, out: list[str]) -> None:
    o, d = sc["open"], sc["open"]["delta"]
    w(f"## Scale of state: {sc['open_trainings']:,} trainings open at once\n")
    if sc.get("commit"):
        w(f"(This part was run again at commit `{sc['commit']}`, after the rest of the run.)\n")
    w(
        f"Three journals from bench/simulate/ at {sc['api_rate']:.0f} aisha-api entries/s of "
        f"simulated time (seed {sc['seed']}): base ({o['base']['entries']:,} entries), mass "
        f"(the same plus {sc['open_trainings']:,} submissions in its first 5 minutes, never "
        "ended), bulk (the submissions alone). Replay with the shipped config, "
        f"{sc['runs']} interleaved runs, median; µs/entry from the replay's own loop time "
        "(start-up excluded).\n"
    )
    out += _open_table(o)
    w(
        f"\n- RssAnon **+{d['anon_mb']:.0f} MB** with 100k open, "
        f"~{d['bytes_per_open_training']:.0f} bytes per open training."
    )
    w(
        f"- Per ordinary entry with 100k open: {d['extra_us_per_ordinary_entry']:+.2f} µs "
        f"((mass - base - bulk) / base entries; base {d['us_per_entry_base']:.2f} µs/entry); "
        f"a submission line itself costs {d['us_per_bulk_start']:.2f} µs."
    )
    w(
        "- `max_open: 100000` caps the open pairs: the ordinary trainings push out as many bulk "
        f"ones (`evicted` {o['mass']['pair'].get('evicted', '-')})."
    )
    for k, x in o["daemon"].items():
        w(
            f"- The daemon catching up on {k} (`start: head`, once): {x['entries']:,} entries "
            f"in {x['seconds']:.1f} s ({x['entries_per_s']:,.0f}/s), peak RssAnon "
            f"{x['peak_anon_mb']:.0f} MB, state file {x['state_file_mb']:.1f} MB."
        )
    book = sc.get("alert_book")
    if book:
        _alert_book(book, w, out)
    _rules(sc, w, out)


def _alert_book(book: list[dict[str, Any]], w: Any, out: list[str]) -> None:
    w(
        "\n### The alert book, per committed batch\n\n"
        + " ".join((scale_mod.alert_book_cost.__doc__ or "").split())
        + " Median of 20, in this process.\n"
    )
    out += table(
        ["active unknown-status keys", "ms per batch, book unchanged",
         "ms per batch, one new key", "JSON written when it changed", "bytes/key"],
        "rrrrr",
        [
            [f"{b['keys']:,}", f"{b['ms_per_batch']:.3f}",
             f"{b.get('ms_per_batch_one_new_key', float('nan')):.2f}",
             f"{b['json_bytes']:,} B", f"{b['bytes_per_key']:.0f}"]
            for b in book
        ],
    )  # fmt: skip


def _rules(sc: dict[str, Any], w: Any, out: list[str]) -> None:
    s9, s50, dd = sc["rules"]["shipped"], sc["rules"]["fifty"], sc["rules"]["delta"]
    w(f"\n## Scale of rules: 50 instead of 9, on {sc['big']}\n")
    hits = dd["synthetic_matches"]
    n_hit = sum(1 for v in hits.values() if v)
    w(
        f"41 `match` rules added to a copy of the shipped config, each with its own literal: "
        f"{n_hit} of them match ordinary aisha-api lines ({sum(hits.values()):,} matches in "
        f"all), the rest never. {sc['runs']} interleaved runs, median.\n"
    )
    out += table(
        ["config", "replay entries/s", "µs/entry", "peak RSS MB (anon)"],
        "lrrr",
        [
            [
                name,
                f"{x['entries_per_s']:,.0f}",
                f"{x['us_per_entry']:.2f}",
                f"{x['max_rss_mb']:.0f} ({x['max_anon_mb']:.0f})",
            ]
            for name, x in (("shipped, 9 rules", s9), ("50 rules", s50))
        ],
    )
    w(
        f"\nThe loop is {dd['loop_slowdown']:.2f}x slower: +{dd['extra_us_per_entry']:.2f} µs "
        f"per entry, {dd['extra_us_per_entry_per_rule']:.3f} µs per entry per added rule.\n"
    )


def _open_table(o: dict[str, Any]) -> list[str]:
    rows = []
    for k in ("base", "mass", "bulk"):
        x = o[k]
        rows.append(
            [
                k,
                f"{x['entries']:,}",
                f"{x['entries_per_s']:,.0f}",
                f"{x['us_per_entry']:.2f}",
                f"{x['max_rss_mb']:.0f} ({x['max_anon_mb']:.0f})",
                str(x["pair"].get("open", "-")),
                str(x["pair"].get("evicted", "-")),
            ]
        )
    return table(
        [
            "journal",
            "entries",
            "replay entries/s",
            "µs/entry",
            "peak RSS MB (anon)",
            "open at the end",
            "evicted",
        ],
        "lrrrrrr",
        rows,
    )
