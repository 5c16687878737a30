"""What the services do all the time: aisha-api's access lines, filler and ASGI errors (with its
look-alikes), nginx and aisha-bot (with theirs)."""

from __future__ import annotations

from bench import lines as L  # noqa: N812 - the texts
from bench.simulate.engine import Engine
from bench.simulate.model import API, API_PIDS, BOT, BOT_PID, MS, NGINX, NGINX_PIDS, Line

# (weights, choices) of each mix, for random.choices
ACCESS = ([w for w, *_ in L.ACCESS_MIX], [(m, p, s) for _, m, p, s in L.ACCESS_MIX])
FILLER = ([w for w, *_ in L.FILLER_MIX], [rest for _, *rest in L.FILLER_MIX])
BOT_MIX = ([w for w, *_ in L.BOT_MIX], [rest for _, *rest in L.BOT_MIX])


class Traffic(Engine):
    # --- aisha-api background traffic ---------------------------------------------------------

    def api_access(self, t: int) -> None:
        rng = self.rng
        method, path, status = rng.choices(ACCESS[1], ACCESS[0])[0]
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
        logger, level, template = rng.choices(FILLER[1], FILLER[0])[0]
        self.at(t, Line(API, pid, L.fill(rng, template), logger, level))

    def api_asgi_error(self, t: int) -> None:
        pid = self.rng.choice(API_PIDS)
        self.at(t, Line(API, pid, L.ASGI_TRACEBACK, level="ERROR"))
        path = "/api/v1/generation/create"
        self.at(t + 2 * MS, Line(API, pid, L.access(self.rng, "POST", path, 500)))
        self.count("asgi_tracebacks")

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
        logger, level, template = rng.choices(BOT_MIX[1], BOT_MIX[0])[0]
        self.at(t, Line(BOT, BOT_PID, L.fill(rng, template), logger, level))
