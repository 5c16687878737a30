"""The simulation behind bench.generate: aisha-api (four uvicorn workers, avatar trainings on
fal.ai with their webhooks, the incident's status bug, duplicate deliveries, stalls, late ends,
crashes), nginx and aisha-bot (whose look-alike lines must not count), as a discrete-event
simulation on a heap. Every line's time is decided when it is scheduled; entries come out in
time order, strictly increasing. Only what is in flight is in memory."""

from __future__ import annotations

from collections.abc import Iterator

from bench.simulate.model import API, BOOT_US, EPOCH_US, Line, Mix, S
from bench.simulate.traffic import Traffic
from bench.simulate.trainings import Trainings

# what bench.generate, bench.scale and bench.live use
__all__ = ["API", "BOOT_US", "EPOCH_US", "Line", "Mix", "S", "Simulation"]


class Simulation(Trainings, Traffic):
    """The services, driven by one random.Random(seed); `entries()` yields export-format
    entries made by `export(message, realtime_us, unit, pid, priority)`."""

    def entries(self) -> Iterator[bytes]:
        m = self.mix
        other = m.api_rate * m.other_ratio
        streams = (
            (m.api_rate * m.trainings_per_entry, self.new_training),
            (m.api_rate * m.access_share, self.api_access),
            (m.api_rate * m.filler_share, self.api_filler),
            (m.api_rate * m.asgi_errors_per_entry, self.api_asgi_error),
            (other * m.nginx_share_of_other - self._tied_nginx(), self.nginx),
            (other * (1 - m.nginx_share_of_other) - self._tied_bot(), self.bot),
        )
        yield from self.run(streams)

    def _tied_nginx(self) -> float:  # one nginx line per webhook delivery (~4.8 per training)
        return self.mix.api_rate * self.mix.trainings_per_entry * 4.8

    def _tied_bot(self) -> float:  # two bot lines per training
        return self.mix.api_rate * self.mix.trainings_per_entry * 2
