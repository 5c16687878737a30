"""The peers' programs, each the equivalent of the shipped rules it is compared on, anchored after
aisha-api's optional logging prefix: mtail's counters, sec's rules (a Single per unknown status;
trainings paired as a PairWithWindow and with contexts) and fail2ban's failregex."""

from __future__ import annotations

# aisha-api's optional logging prefix, as in the shipped config.yaml
PREFIX = r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - [\w.]+ - [A-Z]+ - )?"
UNKNOWN = r"\[WEBHOOK BACKGROUND\] Неизвестный статус: "
STARTS = (
    r"Запуск обучения аватара \S+ отправлен в FAL AI, request_id: ([^\s,]+)",
    r"\[WEBHOOK\] Обработка статуса '(?i:in[_ ]progress)' для request_id: ([^\s,]+)",
    r"\[WEBHOOK BACKGROUND\] Обучение в процессе для ([^\s,]+),",
)
END = r"\[TRAINING (?:COMPLETED|FAILED)\] "

MTAIL = f"""# aisha-api's lines, anchored after its optional logging prefix (mtail's const
# concatenation does not take a leading identifier, so the prefix is written out)
counter unknown_status_total by status
counter webhooks_total by status, training_type
counter trainings_started_total
counter trainings_ended_total by outcome

/{PREFIX}{UNKNOWN}(?P<status>.*)$/ {{
  unknown_status_total[$status]++
}}
/{PREFIX}\\[WEBHOOK\\] Обработка статуса '(?P<wstatus>[^']*)' для request_id: [^\\s,]+, \
тип: (?P<ttype>\\S+)/ {{
  webhooks_total[$wstatus][$ttype]++
}}
/{PREFIX}Запуск обучения аватара \\S+ отправлен в FAL AI, request_id: [^\\s,]+/ {{
  trainings_started_total++
}}
/{PREFIX}\\[TRAINING (?P<outcome>COMPLETED|FAILED)\\] [^\\s:]+:/ {{
  trainings_ended_total[$outcome]++
}}
""".replace("\\\n", "")

SEC_SINGLE = f"""# the incident's line: one output line per unknown status
type=Single
ptype=RegExp
pattern={PREFIX}{UNKNOWN}(.*)$
desc=unknown status $1
action=write - unknown $1
"""

# Perl's branch reset (?|…) numbers the request_id of every start form $1
_START = PREFIX + "(?|" + "|".join(STARTS) + ")"

SEC_PAIR = f"""# a training must end within 1h of its first start (window: sec's wall clock)
type=PairWithWindow
ptype=RegExp
pattern={_START}
desc=training $1
action=write - stalled $1
ptype2=RegExp
pattern2={PREFIX}{END}$1:
desc2=training %1 ended
action2=write - closed %1
window=3600
"""

SEC_CONTEXTS = f"""# the same pairing with one context per open training: a hash lookup per line
type=Single
ptype=RegExp
pattern={_START}
context=!training_$1
desc=training $1 opened
action=create training_$1 3600 (write - stalled $1)

type=Single
ptype=RegExp
pattern={PREFIX}{END}([^\\s:]+):
context=training_$1
desc=training $1 ended
action=delete training_$1; write - closed $1
"""

F2B_REGEX = r"^\S+ aisha-api\[\d+\]: " + PREFIX[1:] + UNKNOWN + r"<F-ID>[^\n]*</F-ID>$"
