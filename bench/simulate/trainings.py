"""Avatar trainings: the submission, the provider's webhooks until the final one (or none: a stall),
the incident's status bug, duplicate and redelivered webhooks, and each delivery's lines."""

from __future__ import annotations

from functools import partial

from bench import lines as L  # noqa: N812 - the texts
from bench.simulate.engine import Engine
from bench.simulate.model import (
    API,
    API_PIDS,
    BOT,
    BOT_PID,
    BUG_VARIANTS,
    KNOWN,
    MS,
    NGINX,
    NGINX_PIDS,
    Line,
    S,
    Training,
)

ROUTER = "app.routers.fal_webhook"


class Trainings(Engine):
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
        rid, router = tr.rid, ROUTER
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
        tc, finished = self._outcome(tr, kind, raw, pct, duplicate, pid, tb)
        if not finished:  # the background task crashed: no "Обработка завершена"
            self.busy[pid] = tc
            return
        done = f"[WEBHOOK BACKGROUND] Обработка завершена для {rid}"
        td = tc + rng.randrange(300, 5000)
        self.at(td, Line(API, pid, done, router))
        self.busy[pid] = td

    def _outcome(
        self, tr: Training, kind: str, raw: str, pct: int, duplicate: bool, pid: int, tb: int
    ) -> tuple[int, bool]:
        """The delivery's line after its "Начинаем обработку" at tb: the unknown status, a crash,
        the progress or the training's end; (its time, whether the task goes on to finish)."""
        rng, rid, router = self.rng, tr.rid, ROUTER
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
            return tc, False
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
        return tc, True
