"""The simulation behind bench.generate: aisha-api (four uvicorn workers, avatar trainings on
fal.ai with their webhooks, the incident's status bug, duplicate deliveries, stalls, late ends,
crashes), nginx and aisha-bot (whose look-alike lines must not count), as a discrete-event
simulation on a heap. Every line's time is decided when it is scheduled; entries come out in
time order, strictly increasing. Only what is in flight is in memory."""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from bench import lines as L  # noqa: N812 - the texts, used everywhere
from bench.truth import Truth

Export = Callable[[str, int, str, int, int], bytes]

S = 1_000_000
MS = 1_000
EPOCH_US = 1_795_737_600 * S  # 2026-11-27T00:00:00Z
BOOT_US = EPOCH_US - 6 * 3600 * S  # monotonic time counts from a boot 6h earlier
WARMUP_US = 45 * 60 * S
API, NGINX, BOT = "aisha-api.service", "nginx.service", "aisha-bot.service"
API_PIDS = (2817, 2818, 2819, 2820)
NGINX_PIDS = (1204, 1205)
BOT_PID = 1811
KNOWN = ("in_progress", "completed", "failed")  # what the (regressed) router compares against
BUG_VARIANTS = {
    "in_progress": (("IN_PROGRESS", 3), ("Processing", 1), ("in-progress", 1), ("weird_x", 2)),
    "completed": (("COMPLETED", 4), ("OK", 2), ("Completed", 2), ("weird_x", 1)),
    "failed": (("FAILED", 2), ("ERROR", 2)),
}
PRIORITY = {"INFO": 6, "WARNING": 4, "ERROR": 3}


@dataclass(frozen=True, slots=True)
class Mix:
    """Rates, per second of simulated time and as probabilities, of what the services do."""

    api_rate: float = 14.0  # aisha-api entries per second, all sources together
    trainings_per_entry: float = 0.009
    access_share: float = 0.49  # background uvicorn access lines (webhooks add ~5%)
    filler_share: float = 0.20
    asgi_errors_per_entry: float = 0.0001
    other_ratio: float = 0.3
    nginx_share_of_other: float = 0.62
    p_bug: float = 0.01  # webhook bodies whose status the router does not know
    p_operator_redelivers: float = 0.5  # a dropped completion re-sent by hand later
    p_duplicate: float = 0.03
    p_crash: float = 0.005  # background task of an in_progress webhook crashes
    p_stall: float = 0.02
    p_late: float = 0.015
    p_failed: float = 0.06
    p_lookalike_body: float = 0.01
    p_bot_lookalike: float = 0.03
    p_api_lookalike: float = 0.004


@dataclass(frozen=True, slots=True)
class Line:
    unit: str
    pid: int
    text: str
    logger: str = ""  # set: aisha-api's logging prefix goes in front of text
    level: str = "INFO"
    tag: tuple[str, ...] | None = None  # what truth.py records: start, end, unknown, crash


@dataclass(slots=True)
class Training:
    rid: str
    avatar: str
    user: int
    ttype: str
    submitted: int
    final: int | None  # when the final webhook comes; None: it never does (stalled)
    quiet_after: int  # a stalled training's webhooks stop here
    outcome: str
    error: str = ""


class Simulation:
    """The services, driven by one random.Random(seed); `entries()` yields export-format
    entries made by `export(message, realtime_us, unit, pid, priority)`."""

    def __init__(self, size: int, seed: int, mix: Mix, truth: Truth, export: Export) -> None:
        self.size, self.mix, self.truth, self.export = size, mix, truth, export
        self.other_quota = round(size * mix.other_ratio)
        self.rng = random.Random(seed)
        self.clock = L.Clock()
        self.heap: list[tuple[int, int, Callable[[int], None] | None, Line | None]] = []
        self.seq = 0
        self.busy = dict.fromkeys(API_PIDS, 0)
        self.inflight: dict[str, Training] = {}
        self.counts: dict[str, int] = dict.fromkeys((API, NGINX, BOT), 0)
        self.stats: dict[str, int] = {}
        self.first = self.last = self.final_api = 0
        self.max_api_gap = 0
        self.max_shift = 0
        self._errs: deque[int] = deque()
        self.max_err_5m = 0
        self._access = (
            [w for w, *_ in L.ACCESS_MIX],
            [(m, p, s) for _, m, p, s in L.ACCESS_MIX],
        )
        self._filler = ([w for w, *_ in L.FILLER_MIX], [rest for _, *rest in L.FILLER_MIX])
        self._bot = ([w for w, *_ in L.BOT_MIX], [rest for _, *rest in L.BOT_MIX])

    # --- scheduling -------------------------------------------------------------------------

    def at(self, t: int, line: Line) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, None, line))

    def act(self, t: int, fn: Callable[[int], None]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, fn, None))

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    def every(self, rate: float, fn: Callable[[int], None]) -> Callable[[int], None]:
        """A Poisson stream: fn at exponential gaps of mean 1/rate seconds."""

        def step(t: int) -> None:
            fn(t)
            self.act(t + int(self.rng.expovariate(rate) * S) + 1, step)

        return step

    def entries(self) -> Iterator[bytes]:
        m = self.mix
        start = EPOCH_US - WARMUP_US
        other = m.api_rate * m.other_ratio
        streams = (
            (m.api_rate * m.trainings_per_entry, self.new_training),
            (m.api_rate * m.access_share, self.api_access),
            (m.api_rate * m.filler_share, self.api_filler),
            (m.api_rate * m.asgi_errors_per_entry, self.api_asgi_error),
            (other * m.nginx_share_of_other - self._tied_nginx(), self.nginx),
            (other * (1 - m.nginx_share_of_other) - self._tied_bot(), self.bot),
        )
        for rate, fn in streams:
            self.act(start + int(self.rng.expovariate(rate) * S), self.every(rate, fn))
        while self.counts[API] < self.size or self._others() < self.other_quota:
            t, _, action, line = heapq.heappop(self.heap)
            if action is not None:
                action(t)
            elif line is not None and t >= EPOCH_US:
                data = self.emit(t, line)
                if data is not None:
                    yield data

    def _tied_nginx(self) -> float:  # one nginx line per webhook delivery (~4.8 per training)
        return self.mix.api_rate * self.mix.trainings_per_entry * 4.8

    def _tied_bot(self) -> float:  # two bot lines per training
        return self.mix.api_rate * self.mix.trainings_per_entry * 2

    def _others(self) -> int:
        return self.counts[NGINX] + self.counts[BOT]

    # --- emission -----------------------------------------------------------------------------

    def emit(self, t: int, line: Line) -> bytes | None:
        if (
            (self.counts[API] >= self.size)
            if line.unit == API
            else (self._others() >= self.other_quota)
        ):
            return None
        if t <= self.last:  # a tie or an overlap: keep entry times strictly increasing
            self.stats["shifted_entries"] = self.stats.get("shifted_entries", 0) + 1
            self.max_shift = max(self.max_shift, self.last + 1 - t)
            t = self.last + 1
        if not self.first:
            self.first = t
        self.last = t
        self.counts[line.unit] += 1
        text = line.text
        if line.logger:
            text = self.clock.logging_prefix(t, line.logger, line.level) + text
        priority = PRIORITY[line.level]
        if line.unit == API:
            self._observe_api(t, line, priority)
        return self.export(text, t, line.unit, line.pid, priority)

    def _observe_api(self, t: int, line: Line, priority: int) -> None:
        if self.final_api:
            self.max_api_gap = max(self.max_api_gap, t - self.final_api)
        self.final_api = t
        if text_is_access(line.text):
            self.count("emitted_access_lines")
        if priority <= 3:
            errs = self._errs
            errs.append(t)
            while errs[0] <= t - 300 * S:
                errs.popleft()
            self.max_err_5m = max(self.max_err_5m, len(errs))
        tag = line.tag
        if tag is None:
            return
        kind, rid = tag[0], tag[1]
        self.count(f"emitted_{kind}_lines")
        if kind == "start":
            self.truth.start(rid, t)
        elif kind == "end":
            self.truth.end(rid, t)
        elif kind == "unknown":
            self.truth.unknown_status(rid, tag[2], t)
        else:
            self.truth.crash(rid)

    # --- aisha-api background traffic ---------------------------------------------------------

    def api_access(self, t: int) -> None:
        rng = self.rng
        method, path, status = rng.choices(self._access[1], self._access[0])[0]
        path = path.format(uid=L.uid(rng), uuid=L.uuid4(rng))
        self.at(t, Line(API, rng.choice(API_PIDS), L.access(rng, method, path, status)))

    def api_filler(self, t: int) -> None:
        rng = self.rng
        pid = rng.choice(API_PIDS)
        if self.inflight and rng.random() < self.mix.p_api_lookalike:
            # quotes the catalogue after some other text: anchored rules must ignore it
            rid = rng.choice(list(self.inflight))
            text = f'Отправлено уведомление: "[TRAINING COMPLETED] {rid}: обучение завершено"'
            if rng.random() < 0.5:
                text = "Проверка: [WEBHOOK BACKGROUND] Неизвестный статус: completed не найден"
            self.at(t, Line(API, pid, text, "app.services.notify"))
            self.count("api_lookalikes")
            return
        logger, level, template = rng.choices(self._filler[1], self._filler[0])[0]
        self.at(t, Line(API, pid, L.fill(rng, template), logger, level))

    def api_asgi_error(self, t: int) -> None:
        pid = self.rng.choice(API_PIDS)
        self.at(t, Line(API, pid, L.ASGI_TRACEBACK, level="ERROR"))
        path = "/api/v1/generation/create"
        self.at(t + 2 * MS, Line(API, pid, L.access(self.rng, "POST", path, 500)))
        self.count("asgi_tracebacks")

    # --- other units --------------------------------------------------------------------------

    def nginx(self, t: int) -> None:
        rng = self.rng
        net = rng.choice((5, 31, 46, 77, 94, 178, 185))
        ip = f"{net}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        method, path, status = rng.choice(
            (
                ("GET", "/", 200),
                ("GET", f"/static/app.{rng.randrange(1000):03d}.js", 200),
                ("GET", "/api/v1/avatar/list", 200),
                ("GET", "/wp-login.php", 404),
                ("GET", "/.env", 404),
            )
        )
        text = L.nginx_line(self.clock, t, ip, method, path, status, "Mozilla/5.0")
        self.at(t, Line(NGINX, rng.choice(NGINX_PIDS), text))

    def bot(self, t: int) -> None:
        rng = self.rng
        if rng.random() < self.mix.p_bot_lookalike:
            self.count("bot_lookalikes")
            r = rng.random()
            if r < 0.6:
                self.at(t, Line(BOT, BOT_PID, "[WEBHOOK BACKGROUND] Неизвестный статус: completed"))
                return
            if r < 0.8 and self.inflight:
                rid = rng.choice(list(self.inflight))
                text = f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"
                self.at(t, Line(BOT, BOT_PID, text, "app.services.notify"))
                return
            text = f"Запуск обучения аватара {L.uuid4(rng)} отправлен в FAL AI, request_id: bot-x"
            self.at(t, Line(BOT, BOT_PID, text, "app.services.avatar"))
            return
        logger, level, template = rng.choices(self._bot[1], self._bot[0])[0]
        self.at(t, Line(BOT, BOT_PID, L.fill(rng, template), logger, level))

    # --- trainings ----------------------------------------------------------------------------

    def new_training(self, t: int) -> None:
        rng, m = self.rng, self.mix
        rid, avatar, user = L.uuid4(rng), L.uuid4(rng), L.uid(rng)
        ttype = "portrait" if rng.random() < 0.7 else "style"
        pid = rng.choice(API_PIDS)
        submitted = t + rng.randrange(900, 2100) * MS
        r = rng.random()
        final: int | None
        if r < m.p_stall:
            final, quiet = None, submitted + rng.randrange(2 * 60, 40 * 60) * S
            self.count("trainings_stalled_by_provider")
        elif r < m.p_stall + m.p_late:
            final = quiet = submitted + rng.randrange(62 * 60, 150 * 60) * S
            self.count("trainings_late")
        else:
            seconds = min(max(rng.lognormvariate(6.3, 0.45), 180), 45 * 60)  # median ~9 min
            final = quiet = submitted + int(seconds * S)
        outcome, error = "completed", ""
        if rng.random() < m.p_failed:
            outcome, error = "failed", f"Training failed: {rng.choice(L.TRAINING_ERRORS)}"
        tr = Training(rid, avatar, user, ttype, submitted, final, quiet, outcome, error)
        self.inflight[rid] = tr
        self.count("trainings")
        bot_text = f"Пользователь {user} запустил обучение аватара {avatar}"
        self.at(t, Line(BOT, BOT_PID, bot_text, "app.handlers.avatar_training"))
        text = (
            f"[TRAINING START] Запуск обучения аватара {avatar} для пользователя {user}, "
            f"тип: {ttype}"
        )
        self.at(t + 300 * MS, Line(API, pid, text, "app.services.avatar.training_service"))
        model = L.MODELS[ttype]
        text = f'HTTP Request: POST https://queue.fal.run/{model} "HTTP/1.1 200 OK"'
        self.at(submitted - 5 * MS, Line(API, pid, text, "httpx"))
        text = f"Запуск обучения аватара {avatar} отправлен в FAL AI, request_id: {rid}"
        line = Line(API, pid, text, "app.services.avatar.training_service", tag=("start", rid))
        self.at(submitted, line)
        access = L.access(rng, "POST", f"/api/v1/avatar/{avatar}/train", 200)
        self.at(submitted + 4 * MS, Line(API, pid, access))
        self.at(submitted + 40 * MS, Line(BOT, BOT_PID, f"Обучение запущено: {rid}", "app.bot"))
        self.next_webhook(tr, submitted + rng.randrange(30, 90) * S)

    def next_webhook(self, tr: Training, t: int) -> None:
        """Schedule the progress report due at `t`, or the final webhook if that comes first
        (never an action in the past: its lines would pile up on the current time)."""
        end = tr.final if tr.final is not None else tr.quiet_after
        if t < end:
            self.act(t, partial(self.progress, tr))
        elif tr.final is not None:
            self.act(tr.final, partial(self.finish, tr))
        else:  # the provider went silent: nothing more will come for it
            self.act(tr.quiet_after, partial(self.forget, tr))

    def forget(self, tr: Training, t: int) -> None:
        self.inflight.pop(tr.rid, None)

    def progress(self, tr: Training, t: int) -> None:
        end = tr.final if tr.final is not None else tr.quiet_after
        pct = max(1, min(99, 100 * (t - tr.submitted) // max(1, end - tr.submitted)))
        self.webhook(t, tr, "in_progress", pct)
        late = tr.final is not None and tr.final - tr.submitted > 3600 * S
        gap = self.rng.randrange(300, 720) if late else self.rng.randrange(120, 300)
        self.next_webhook(tr, t + gap * S)

    def finish(self, tr: Training, t: int) -> None:
        self.inflight.pop(tr.rid, None)
        raw = self.webhook(t, tr, tr.outcome, 100)
        if raw not in KNOWN and self.rng.random() < self.mix.p_operator_redelivers:
            later = t + self.rng.randrange(10 * 60, 100 * 60) * S
            self.act(later, partial(self.redeliver, tr))

    def redeliver(self, tr: Training, t: int) -> None:
        self.count("operator_redeliveries")
        self.deliver(t, tr, tr.outcome, tr.outcome, 100, None, duplicate=True)

    def webhook(self, t: int, tr: Training, kind: str, pct: int) -> str:
        """One webhook body from fal.ai; its status is sometimes one the router does not know."""
        rng = self.rng
        raw = kind
        if rng.random() < self.mix.p_bug:
            variants = BUG_VARIANTS[kind]
            raw = rng.choices([v for v, _ in variants], [w for _, w in variants])[0]
        lookalike = kind == "in_progress" and rng.random() < self.mix.p_lookalike_body
        body = L.webhook_body(rng, tr.rid, raw, kind, pct, tr.error, lookalike)
        self.deliver(t, tr, kind, raw, pct, body)
        if rng.random() < self.mix.p_duplicate:
            self.count("duplicate_deliveries")
            again = partial(self.deliver_at, tr, kind, raw, pct, body)
            self.act(t + rng.randrange(1, 90) * S, again)
        return raw

    def deliver_at(self, tr: Training, kind: str, raw: str, pct: int, body: str, t: int) -> None:
        self.deliver(t, tr, kind, raw, pct, body, duplicate=True)

    def deliver(
        self,
        t: int,
        tr: Training,
        kind: str,
        raw: str,
        pct: int,
        body: str | None,
        duplicate: bool = False,
    ) -> None:
        """The lines of one delivery, on one worker: none of its other webhooks interleave, so
        the unknown-status line always follows its own "Начинаем обработку" on that _PID."""
        rng = self.rng
        if body is None:
            body = L.webhook_body(rng, tr.rid, raw, kind, pct, tr.error, False)
        pid = rng.choice(API_PIDS)
        t0 = max(t, self.busy[pid] + MS)
        rid, router = tr.rid, "app.routers.fal_webhook"
        self.count("webhook_processings")
        self.at(t0, Line(API, pid, f"[WEBHOOK] Получен webhook от FAL AI: {body}", router))
        t1 = t0 + rng.randrange(500, 3000)
        dispatch = f"[WEBHOOK] Обработка статуса '{raw}' для request_id: {rid}, тип: {tr.ttype}"
        is_start = raw.casefold() in ("in_progress", "in progress")
        self.at(t1, Line(API, pid, dispatch, router, tag=("start", rid) if is_start else None))
        ta = t1 + rng.randrange(3000, 15000)
        self.at(ta, Line(API, pid, L.access(rng, "POST", "/api/v1/avatar/status_update", 200)))
        ip = rng.choice(L.FAL_IPS)
        path = "/api/v1/avatar/status_update"
        nginx = L.nginx_line(self.clock, ta, ip, "POST", path, 200, "python-httpx/0.27.0")
        self.at(ta + 300, Line(NGINX, rng.choice(NGINX_PIDS), nginx))
        tb = ta + rng.randrange(500, 3000)
        text = f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {raw}"
        self.at(tb, Line(API, pid, text, router))
        done = f"[WEBHOOK BACKGROUND] Обработка завершена для {rid}"
        if raw not in KNOWN:
            self.count("bug_processings")
            tc = tb + rng.randrange(300, 3000)
            text = f"[WEBHOOK BACKGROUND] Неизвестный статус: {raw}"
            self.at(tc, Line(API, pid, text, router, "WARNING", ("unknown", rid, raw)))
        elif kind == "in_progress" and not duplicate and rng.random() < self.mix.p_crash:
            self.count("crashes")
            tc = tb + rng.randrange(20, 300) * MS
            trace = L.background_traceback(rid)
            self.at(tc, Line(API, pid, trace, router, "ERROR", ("crash", rid)))
            self.busy[pid] = tc
            return
        elif kind == "in_progress":
            tc = tb + rng.randrange(10, 80) * MS
            text = f"[WEBHOOK BACKGROUND] Обучение в процессе для {rid}, прогресс: {pct}%"
            self.at(tc, Line(API, pid, text, router, tag=("start", rid)))
        elif kind == "completed":
            tc = tb + rng.randrange(50, 900) * MS
            text = f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"
            self.at(tc, Line(API, pid, text, router, tag=("end", rid)))
        else:
            tc = tb + rng.randrange(50, 400) * MS
            text = f"[TRAINING FAILED] {rid}: ошибка обучения: {tr.error}"
            self.at(tc, Line(API, pid, text, router, "ERROR", ("end", rid)))
        td = tc + rng.randrange(300, 5000)
        self.at(td, Line(API, pid, done, router))
        self.busy[pid] = td


def text_is_access(text: str) -> bool:
    return text.startswith("INFO:     127.0.0.1:")
