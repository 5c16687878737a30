"""The load generator, run as its own process (`python -m bench.live --writer PLAN`, so that its
work does not share the measuring process's GIL): aisha-api's mix and the markers, streamed in
export format to journal-remote over one TCP connection, paced in 5 ms ticks."""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path
from typing import Any, TextIO

from bench import lines as L  # noqa: N812 - the texts
from bench.generate import Exporter
from bench.live.plan import API, MARKER_STATUS, Phase, marker_times
from bench.simulate import BOOT_US, EPOCH_US

API_PIDS = (2817, 2818, 2819, 2820)
MARKER_PID = 2899
TICK_S = 0.005
ROUTER = "app.routers.fal_webhook"
SERVICE = "app.services.avatar.training_service"

Item = tuple[int, int, str, str, str]  # pid, priority, logger, level, text


def mix_pool(seed: int = 7, size: int = 20_000) -> list[Item]:
    """(pid, priority, logger, level, text) of aisha-api's traffic, cycled by the writer: access
    lines, filler, webhook deliveries (in_progress and completed) and training submissions."""
    rng = random.Random(seed)
    pool: list[Item] = []
    access_w = [w for w, *_ in L.ACCESS_MIX]
    access = [(m, p, s) for _, m, p, s in L.ACCESS_MIX]
    filler_w = [w for w, *_ in L.FILLER_MIX]
    filler = [rest for _, *rest in L.FILLER_MIX]
    rids = [L.uuid4(rng) for _ in range(400)]
    while len(pool) < size:
        pid = rng.choice(API_PIDS)
        r = rng.random()
        if r < 0.56:
            method, path, status = rng.choices(access, access_w)[0]
            path = path.format(uid=L.uid(rng), uuid=L.uuid4(rng))
            pool.append((pid, 6, "", "INFO", L.access(rng, method, path, status)))
        elif r < 0.80:
            logger, level, template = rng.choices(filler, filler_w)[0]
            pool.append((pid, 4 if level == "WARNING" else 6, logger, level, L.fill(rng, template)))
        elif r < 0.98:
            pool += _delivery(rng, pid, rids)
        else:
            pool += _training_start(rng, pid, rids)
    return pool


def _delivery(rng: random.Random, pid: int, rids: list[str]) -> list[Item]:
    """One webhook delivery: six lines on one worker."""
    rid = rng.choice(rids)
    done = rng.random() < 0.1
    status = "completed" if done else "in_progress"
    body = L.webhook_body(rng, rid, status, status, rng.randrange(1, 99), "", False)
    ttype = rng.choice(("portrait", "style"))
    access = L.access(rng, "POST", "/api/v1/avatar/status_update", 200)
    progress = (
        f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"
        if done
        else f"[WEBHOOK BACKGROUND] Обучение в процессе для {rid}, прогресс: 50%"
    )
    texts = [
        f"[WEBHOOK] Получен webhook от FAL AI: {body}",
        f"[WEBHOOK] Обработка статуса '{status}' для request_id: {rid}, тип: {ttype}",
        f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}",
        progress,
        f"[WEBHOOK BACKGROUND] Обработка завершена для {rid}",
    ]
    lines: list[Item] = [(pid, 6, ROUTER, "INFO", text) for text in texts]
    lines.insert(2, (pid, 6, "", "INFO", access))  # uvicorn logs the POST once it is answered
    return lines


def _training_start(rng: random.Random, pid: int, rids: list[str]) -> list[Item]:
    avatar, rid = L.uuid4(rng), rng.choice(rids)
    user = L.uid(rng)
    texts = (
        f"[TRAINING START] Запуск обучения аватара {avatar} для пользователя {user}, тип: portrait",
        f"Запуск обучения аватара {avatar} отправлен в FAL AI, request_id: {rid}",
    )
    return [(pid, 6, SERVICE, "INFO", text) for text in texts]


class Encoder:
    """Export-format bytes for pool items, fast: the fields that repeat and the message text are
    encoded once per item; per entry only the timestamps and aisha-api's logging prefix time
    (`2026-11-27 10:15:02,113`, fixed length) are formatted. Checked against Exporter (the
    generator's, itself checked against monitor.tools.export) for every item at start-up."""

    def __init__(self, pool: list[Item]) -> None:
        ex, clock = Exporter(), L.Clock()
        self.items: list[tuple[bytes, bool, bytes]] = []
        self._sec, self._sec_text = -1, b""
        for pid, priority, logger, level, text in pool:
            if "\n" in text:
                raise ValueError("the writer's pool has single-line messages only")
            ex.entry("-", EPOCH_US, API, pid, priority)  # fills the cache of repeated fields
            head = ex._middle[(API, pid, priority)] + b"MESSAGE="
            tail = (f" - {logger} - {level} - {text}" if logger else text).encode() + b"\n\n"
            self.items.append((head, bool(logger), tail))
            t = EPOCH_US + 123_456 * len(self.items)
            full = clock.logging_prefix(t, logger, level) + text if logger else text
            if self.entry(len(self.items) - 1, t) != ex.entry(full, t, API, pid, priority):
                raise RuntimeError(f"Encoder differs from Exporter for {text!r}")

    def entry(self, i: int, t: int) -> bytes:
        head, prefixed, tail = self.items[i]
        stamp = b""
        if prefixed:
            sec = t // 1_000_000
            if sec != self._sec:
                self._sec = sec
                self._sec_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)).encode()
            stamp = self._sec_text + b",%03d" % (t // 1000 % 1000)
        return (
            b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (t, t - BOOT_US)
            + head
            + stamp
            + tail
        )


class Markers:
    """The marker pairs: `Начинаем обработку <key>, статус: bench_marker`, then `Неизвестный
    статус: bench_marker`, from a worker pid of their own. Each key is new (bench-marker-N), or
    with `keys` one of that many."""

    def __init__(self, keys: int) -> None:
        self.ex, self.clock = Exporter(), L.Clock()
        self.keys, self.k = keys, 0

    def next(self, t: int, phase: str) -> tuple[list[bytes], dict[str, Any]]:
        """The two entries, at t and t + 1, and the log line of the marker (its time: the
        second entry's)."""
        self.k += 1
        k, keys = self.k, self.keys
        key = f"bench-marker-{k:05d}" if not keys else f"bench-marker-key{k % keys:02d}"
        first = f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: {MARKER_STATUS}"
        second = f"[WEBHOOK BACKGROUND] Неизвестный статус: {MARKER_STATUS}"
        prefix = self.clock.logging_prefix
        entries = [
            self.ex.entry(prefix(t, ROUTER, "INFO") + first, t, API, MARKER_PID, 6),
            self.ex.entry(prefix(t + 1, ROUTER, "WARNING") + second, t + 1, API, MARKER_PID, 4),
        ]
        return entries, {"k": k, "key": key, "t": (t + 1) / 1e6, "t_us": t + 1, "phase": phase}


class Stream:
    """The connection to journal-remote and where the writer is: the next pool item, the last
    timestamp sent (entries strictly increase), the markers."""

    def __init__(self, port: int, marker_keys: int, log: TextIO) -> None:
        self.enc = Encoder(mix_pool())
        self.markers = Markers(marker_keys)
        self.log = log
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.i, self.last_us = 0, 0

    def phase(self, phase: Phase) -> tuple[int, float]:
        """Write one phase at its rate, a tick at a time; (entries sent, seconds blocked)."""
        markers = marker_times(phase)
        sent, next_progress, blocked = 0, phase.start + 1, 0.0
        while (now := time.time()) < phase.end:
            due = max(min(int(phase.rate * (now - phase.start)) - sent, phase.rate // 10 + 1), 0)
            t = max(int(now * 1_000_000), self.last_us + 1)
            chunk = self._mix(due, t)
            t += due
            sent += due
            marker = None
            if markers and now >= markers[0]:
                markers.pop(0)
                entries, marker = self.markers.next(t, phase.name)
                chunk += entries
                t += 2
            self.last_us = t - 1
            if chunk:
                before = time.time()
                self.sock.sendall(b"".join(chunk))
                blocked += time.time() - before
            if marker:
                self.log.write(json.dumps(marker) + "\n")
            if now >= next_progress:
                self.log.write(json.dumps({"progress": phase.name, "t": now, "sent": sent}) + "\n")
                next_progress += 1
            time.sleep(max(0.0, TICK_S - (time.time() - now)))
        return sent, blocked

    def _mix(self, n: int, t: int) -> list[bytes]:
        """The next n pool entries, at t, t + 1, …"""
        chunk = []
        n_pool = len(self.enc.items)
        for j in range(n):
            chunk.append(self.enc.entry(self.i, t + j))
            self.i = (self.i + 1) % n_pool
        return chunk


def writer_main(plan_path: Path) -> int:
    """Stream the plan's phases into journal-remote; log markers and progress as JSON lines."""
    spec = json.loads(plan_path.read_text())
    phases = [Phase(**p) for p in spec["phases"]]
    with open(spec["log"], "w", buffering=1) as out:
        stream = Stream(spec["port"], int(spec.get("marker_keys", 0)), out)
        total = 0
        for phase in phases:
            while (wait := phase.start - time.time()) > 0:
                time.sleep(min(wait, 0.5))
            sent, blocked = stream.phase(phase)
            total += sent
            done = {"done": phase.name, "sent": sent, "t": time.time(), "blocked_s": blocked}
            out.write(json.dumps(done) + "\n")
        stream.sock.close()
        out.write(json.dumps({"total": total + stream.markers.k * 2}) + "\n")
    return 0
