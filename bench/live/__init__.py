"""`python -m bench.live [--quick]`: the daemon following a journal directory that the real
`systemd-journal-remote --listen-raw` writes, at offered loads of 1k, 10k and 30k entries/s.

Set-up, all on 127.0.0.1 and in a temporary directory: journal-remote listens on a free port and
writes into D/; the daemon runs `aisha-monitor run -c <copy of config.yaml with start: tail, no
health checks, no Alertmanager> --journal-dir D --state-dir S --listen 127.0.0.1:P`; a writer
process (`--writer`, its own interpreter so its work does not share the measuring process's GIL)
streams export-format aisha-api entries with current, strictly increasing timestamps under one
boot id over one TCP connection, paced in 5 ms ticks. The mix is aisha-api's (uvicorn access lines
~56%, application filler, webhook deliveries with known statuses, training starts); every 0.25 s
it writes a marker: `Начинаем обработку bench-marker-N, статус: bench_marker` and `Неизвестный
статус: bench_marker` from a worker pid of its own, which the shipped `unknown_status` rule counts
and reports (the status normalizes to nothing: no handler runs).

Measured, in this process:
- write → /metrics: from the marker entry's timestamp (taken just before it is sent) until a
  GET /metrics shows `aisha_monitor_unknown_status_total{status="bench_marker"}` at N. Polled from
  the marker's scheduled time every 5 ms for 100 ms, then every 25 ms (every request costs the
  daemon GIL time): the resolution is 5 ms (25 ms past 100 ms) plus one request.
- write → event: the same until GET /api/v1/events?limit=20 has the marker's unknown_value event
  (known by its time, the entry's own timestamp to the microsecond).
- lag: `aisha_monitor_journal_lag_seconds` scraped every 0.5 s (the daemon's own figure, 0 while
  it is caught up), and the true lag during a load: scrape time minus the later of
  `journal.last_entry_time` of /api/v1/state and the load's start (the writer stamps entries
  with the wall clock, so this is the age of the oldest entry not yet read, pipeline included);
  and how long after a load the daemon had read everything written.
- batches: `aisha_monitor_batch_duration_seconds` count and sum, per load.
- CPU% and RSS (VmRSS, RssAnon, RssFile) of the daemon, journal-remote and the writer from /proc
  every 0.5 s, and the whole machine's busy CPU (/proc/stat; 2 cores shared with other runs).

Each marker has a new request_id (`--marker-keys N` cycles through N instead): like an incident,
every one stays an active key of the AishaUnknownWebhookStatus alert for one_off_ttl (1h).
Without --quick a 180 s soak at 10k/s follows the three loads, long enough for the daemon's
in-memory list of the last 1000 events to fill: its second half tells whether RSS levels off.
"""

from bench.live.probes import free_port, http_get, proc_sample
from bench.live.profile import PY_SPY, profile_summary
from bench.live.repeat import run_repeated
from bench.live.rig import run
from bench.live.stats import percentile
from bench.live.table import RSS_FLAT_MB_PER_MIN, print_table, verdicts

__all__ = [
    "PY_SPY",
    "RSS_FLAT_MB_PER_MIN",
    "free_port",
    "http_get",
    "percentile",
    "print_table",
    "proc_sample",
    "profile_summary",
    "run",
    "run_repeated",
    "verdicts",
]
