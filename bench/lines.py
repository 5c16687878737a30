"""The texts the simulated services print: aisha-api (the seed's log line catalogue, uvicorn
access lines, filler application lines, tracebacks), nginx and aisha-bot (with look-alikes)."""

from __future__ import annotations

import random
import time

UVICORN_ACCESS = 'INFO:     127.0.0.1:{port} - "{method} {path} HTTP/1.1" {status}'
STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    404: "404 Not Found",
    422: "422 Unprocessable Entity",
    500: "500 Internal Server Error",
}
MODELS = {
    "portrait": "fal-ai/flux-lora-portrait-trainer",
    "style": "fal-ai/flux-lora-fast-training",
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FAL_IPS = ("34.117.59.81", "34.120.195.249", "35.186.241.51")
TRAINING_ERRORS = (
    "CUDA out of memory",
    "Недостаточно фотографий для обучения",
    "Timeout: training exceeded 3600s",
    "Invalid image archive",
)
# (weight, method, path template, status) of the API's own traffic (webhooks come separately)
ACCESS_MIX = (
    (30, "GET", "/health", 200),
    (15, "GET", "/api/v1/users/{uid}", 200),
    (14, "GET", "/api/v1/avatar/list?user_id={uid}", 200),
    (10, "GET", "/api/v1/avatar/{uuid}", 200),
    (1, "GET", "/api/v1/avatar/{uuid}", 404),
    (8, "POST", "/api/v1/generation/create", 200),
    (10, "GET", "/api/v1/generation/{uuid}/status", 200),
    (5, "POST", "/api/v1/avatar/{uuid}/photos", 201),
    (0.5, "POST", "/api/v1/avatar/{uuid}/photos", 422),
    (3, "GET", "/api/v1/transactions?user_id={uid}", 200),
    (2, "GET", "/metrics", 200),
)
# (weight, logger, level, text template) of aisha-api's ordinary application lines
FILLER_MIX = (
    (12, "app.database", "INFO", "Пул соединений: занято {a}/20, ожидают {b}"),
    (14, "app.routers.avatar", "INFO", "Получен список аватаров пользователя {uid}: {k} шт."),
    (10, "app.routers.users", "INFO", "Пользователь {uid} запросил баланс: {bal} монет"),
    (
        16,
        "httpx",
        "INFO",
        'HTTP Request: GET https://queue.fal.run/{model}/requests/{uuid}/status "HTTP/1.1 200 OK"',
    ),
    (10, "app.services.storage.minio", "INFO", "Файл загружен в MinIO: avatars/{uid}/{uuid}.jpg"),
    (
        12,
        "app.services.generation",
        "INFO",
        "Генерация изображения {uuid} для пользователя {uid} завершена за {sec}s",
    ),
    (8, "app.services.generation", "INFO", "Генерация {uuid}: стиль {style}, 1024x1024"),
    (1, "app.services.fal", "WARNING", "FAL AI ответил медленно: {sec}s на запрос статуса {uuid}"),
    (1, "app.routers.avatar", "WARNING", "Аватар {uuid} не найден для пользователя {uid}"),
)
STYLES = ("cinematic", "anime", "portrait_pro", "watercolor", "cyberpunk")
BOT_MIX = (
    (40, "aiogram.event", "INFO", "Update id={upd} is handled. Duration {ms} ms by bot id=70123"),
    (15, "app.handlers.avatar", "INFO", "Пользователь {uid} открыл меню аватаров"),
    (15, "app.handlers.generation", "INFO", "Пользователь {uid} запустил генерацию: {style}"),
    (10, "app.handlers.main_menu", "INFO", "Пользователь {uid} открыл главное меню"),
    (5, "app.services.payments", "INFO", "Пользователь {uid} пополнил баланс на {bal} монет"),
)


class Clock:
    """Timestamp texts, cached per second (the generator formats one per line)."""

    def __init__(self) -> None:
        self._sec = -1
        self._log = self._nginx = ""

    def _at(self, sec: int) -> None:
        if sec != self._sec:
            self._sec = sec
            tm = time.gmtime(sec)
            self._log = time.strftime("%Y-%m-%d %H:%M:%S", tm)
            month = MONTHS[tm.tm_mon - 1]
            self._nginx = f"{tm.tm_mday:02d}/{month}/{tm.tm_year}:{time.strftime('%H:%M:%S', tm)}"

    def logging_prefix(self, t_us: int, logger: str, level: str) -> str:
        """aisha-api's `%(asctime)s - %(name)s - %(levelname)s - ` (the machine runs in UTC)."""
        self._at(t_us // 1_000_000)
        return f"{self._log},{t_us // 1000 % 1000:03d} - {logger} - {level} - "

    def nginx(self, t_us: int) -> str:
        self._at(t_us // 1_000_000)
        return f"{self._nginx} +0000"


def uid(rng: random.Random) -> int:
    return rng.randrange(100_000_000, 999_999_999)


def uuid4(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def access(rng: random.Random, method: str, path: str, status: int) -> str:
    port = rng.randrange(30000, 61000)
    return UVICORN_ACCESS.format(port=port, method=method, path=path, status=STATUS_TEXT[status])


def fill(rng: random.Random, template: str) -> str:
    return template.format(
        uid=uid(rng),
        uuid=uuid4(rng),
        a=rng.randrange(1, 20),
        b=rng.randrange(0, 3),
        k=rng.randrange(0, 6),
        bal=rng.randrange(0, 5000),
        sec=f"{rng.uniform(0.4, 9.0):.1f}",
        style=rng.choice(STYLES),
        model=rng.choice(tuple(MODELS.values())),
        upd=rng.randrange(10**8, 10**9),
        ms=rng.randrange(3, 900),
    )


def webhook_body(
    rng: random.Random, rid: str, status: str, kind: str, progress: int, error: str, lookalike: bool
) -> str:
    """The Python repr of a fal.ai webhook body, as the router logs it."""
    body: dict[str, object] = {"request_id": rid, "gateway_request_id": rid, "status": status}
    if kind == "in_progress":
        step = progress * 10
        logs = [{"message": f"Training step {step}/1000, loss={rng.uniform(0.05, 0.4):.4f}"}]
        if lookalike:  # a provider log quoting our own line: anchored patterns must skip it
            logs.append({"message": f"[TRAINING COMPLETED] {rid}: checkpoint {step} saved"})
        body["progress"] = progress
        body["logs"] = logs
    elif kind == "completed":
        base = f"https://v3.fal.media/files/{uuid4(rng)}"
        body["payload"] = {
            "diffusers_lora_file": {
                "url": f"{base}/pytorch_lora_weights.safetensors",
                "content_type": "application/octet-stream",
                "file_name": "pytorch_lora_weights.safetensors",
                "file_size": rng.randrange(80_000_000, 95_000_000),
            },
            "config_file": {"url": f"{base}/config.json", "content_type": "application/json"},
        }
        body["error"] = None
    else:
        body["payload"] = None
        body["error"] = error
    return repr(body)


def background_traceback(rid: str) -> str:
    return (
        f"[WEBHOOK BACKGROUND] Ошибка обработки {rid}\n"
        "Traceback (most recent call last):\n"
        '  File "/opt/aisha-backend/api_server/app/routers/fal_webhook.py", line 142, '
        "in process_webhook_background\n"
        "    await handle_training_progress(webhook_data, training_type, session)\n"
        '  File "/opt/aisha-backend/api_server/app/routers/fal_webhook.py", line 201, '
        "in handle_training_progress\n"
        "    await session.commit()\n"
        "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) "
        "server closed the connection unexpectedly"
    )


ASGI_TRACEBACK = (
    "ERROR:    Exception in ASGI application\n"
    "Traceback (most recent call last):\n"
    '  File "/opt/aisha-backend/.venv/lib/python3.11/site-packages/uvicorn/protocols/http/'
    'h11_impl.py", line 408, in run_asgi\n'
    "    result = await app(  # type: ignore[func-returns-value]\n"
    '  File "/opt/aisha-backend/api_server/app/routers/generation.py", line 88, in create\n'
    "    balance = await users.charge(user_id, cost)\n"
    "asyncpg.exceptions.TooManyConnectionsError: sorry, too many clients already"
)


def nginx_line(clock: Clock, t: int, ip: str, method: str, path: str, status: int, ua: str) -> str:
    size = 2 if status == 200 and method == "POST" else 153 + len(path)
    return f'{ip} - - [{clock.nginx(t)}] "{method} {path} HTTP/1.1" {status} {size} "-" "{ua}"'
