"""`?quality=auto`: a viewer moved between the high and the low rendition as its link allows.

Down is read from what the viewer's browser reports (LinkMonitor): receiver reports' loss,
NACKs, and its REMB estimate against what the high rendition needs. Two bad seconds in a row
move the viewer down, on the low rendition's next keyframe.

Up cannot be read from the same reports: a REMB estimate follows what is sent (libwebrtc
caps it at 1.5× the incoming rate), so a viewer on the low rendition never reports room for
the high one. So the link is probed as libwebrtc's own sender does: padding (recent packets
sent again as RTX) raises what the viewer receives in steps of 1.5× towards what the high
rendition needs plus a margin. Loss, NACKs or a falling REMB (the estimator saw the queue
grow) end the probe at once; a probe that holds the target moves the viewer up.

No flapping: the first probe waits PROBE_FIRST_S after going down, each failed one doubles
the wait (to PROBE_WAIT_MAX_S); a viewer that comes down again within TRIAL_S of going up
counts as a failed probe. The policy (`AutoPolicy`) is plain arithmetic on samples, tested by
itself; `AutoRendition` feeds it once a second and paces the padding.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

TICK_S = 1.0
BAD_TICKS = 2             # bad seconds in a row that move a viewer down
DOWN_LOSS = 0.10          # a receiver report's fraction lost
DOWN_NACKS = 0.10         # packets NACKed per packet sent
DOWN_REMB = 0.70          # the viewer's estimate below this share of what the high rendition needs
MIN_HIGH_FOR_REMB = 600_000  # below this the high rendition is no heavier than the low one
PROBE_FIRST_S = 8.0
PROBE_WAIT_MAX_S = 30.0
PROBE_STEP = 1.5          # each probe step: what the viewer receives × this
PROBE_STEP_TICKS = 2      # ticks per step
PROBE_HOLD_TICKS = 2      # ticks at the target that move the viewer up
PROBE_MARGIN = 1.25       # the target: what the high rendition needs × this
PROBE_LOSS = 0.08          # (one tick: ~50 packets of the low rendition, so not less)
PROBE_NACKS = 0.08
PROBE_REMB_FALL = 0.90    # a REMB below this share of the probe's highest …
PROBE_REMB_BELOW = 0.95   # … and below this share of what is sent: the link is full
PROBE_DELAY_S = 0.08      # the round trip grew this much over the link's own (or by half): a queue
TRIAL_S = 15.0
PAD_INTERVAL_S = 0.02


class AutoState(enum.Enum):
    HIGH = "high"
    LOW = "low"
    PROBING = "probing"   # on the low rendition, padding to see if the link carries the high one


@dataclass(frozen=True)
class LinkSample:
    """One tick of what is known about a viewer's link."""

    loss: float | None       # the worst receiver report's fraction lost since the last tick
    nack_rate: float         # packets NACKed per packet sent since the last tick
    remb_bps: int | None     # the viewer's latest estimate (None: none recent)
    remb_low_bps: int | None  # the lowest estimate since the last tick
    media_bps: float         # what was sent to the viewer but padding (media, retransmissions)
    high_bps: float          # what the high rendition needs (its incoming rate)
    rtt_s: float | None = None       # the highest round trip since the last tick
    base_rtt_s: float | None = None  # the link's own (the lowest lately)


class AutoPolicy:
    def __init__(self) -> None:
        self.state = AutoState.HIGH
        self.reason = ""            # why the viewer is on the low rendition, in words
        self.probe_bps = 0.0        # while probing: what the viewer should receive in all
        self.failed_probes = 0
        self.next_probe_at = 0.0
        self.went_up_at: float | None = None
        self.last_probe = ""        # how the last probe ended, in words
        self._bad = 0
        self._last_remb: int | None = None
        self._step_ticks = 0
        self._hold = 0
        self._probe_peak = 0

    def tick(self, now: float, sample: LinkSample) -> str | None:
        """"down", "up" or None."""
        if self.state is AutoState.HIGH:
            return self._on_high(now, sample)
        if self.state is AutoState.LOW:
            clean = (sample.loss is None or sample.loss < PROBE_LOSS) and sample.nack_rate < PROBE_NACKS
            if now >= self.next_probe_at and sample.high_bps > 0 and clean:  # (a losing link: not yet)
                self._start_probe(sample)
            return None
        return self._probing(now, sample)

    def _on_high(self, now: float, sample: LinkSample) -> str | None:
        why = self._why_bad(sample)
        self._bad = self._bad + 1 if why else 0
        if self._bad < BAD_TICKS:
            if self.went_up_at is not None and now - self.went_up_at > TRIAL_S:
                self.went_up_at = None
                self.failed_probes = 0  # it held: the next fall starts the waits afresh
            return None
        self._bad = 0
        if self.went_up_at is not None and now - self.went_up_at <= TRIAL_S:
            self.failed_probes += 1  # up too soon: wait longer before the next try
        self.went_up_at = None
        self.state = AutoState.LOW
        self.reason = why
        self.next_probe_at = now + self._wait()
        return "down"

    def _why_bad(self, sample: LinkSample) -> str:
        if sample.loss is not None and sample.loss >= DOWN_LOSS:
            return f"{sample.loss:.0%} of packets lost"
        if sample.nack_rate >= DOWN_NACKS:
            return f"{sample.nack_rate:.0%} of packets asked for again"
        # a low estimate that is not rising (libwebrtc's estimate grows some 8 % a second after
        # a move up, from what the low rendition carried: that is not a slow link)
        remb, last, self._last_remb = sample.remb_bps, self._last_remb, sample.remb_bps
        if (remb is not None and sample.high_bps >= MIN_HIGH_FOR_REMB and remb < DOWN_REMB * sample.high_bps
                and (last is None or remb <= last * 1.02)):
            return (f"the connection carries about {remb // 1000} kbit/s; "
                    f"the full picture needs {sample.high_bps / 1000:.0f}")
        return ""

    def _probe_failure(self, sample: LinkSample) -> str:
        if sample.loss is not None and sample.loss >= PROBE_LOSS:
            return f"{sample.loss:.0%} of packets lost"
        if sample.nack_rate >= PROBE_NACKS:
            return f"{sample.nack_rate:.0%} of packets asked for again"
        if sample.rtt_s is not None and sample.base_rtt_s is not None:
            grown = sample.rtt_s - sample.base_rtt_s
            if grown > max(PROBE_DELAY_S, sample.base_rtt_s / 2):
                return f"the round trip grew by {grown * 1000:.0f} ms (a queue filled)"
        # the estimator saw its queue grow: it says less than before, and less than is sent (an
        # estimate that wanders above what is sent is only its 1.5× cap following the traffic)
        low = sample.remb_low_bps
        if low is not None and low < PROBE_REMB_FALL * self._probe_peak and low < PROBE_REMB_BELOW * self.probe_bps:
            return f"the viewer's estimate fell to {low // 1000} kbit/s"
        return ""

    def _wait(self) -> float:
        return min(PROBE_FIRST_S * 2.0 ** min(self.failed_probes, 8), PROBE_WAIT_MAX_S)

    def _start_probe(self, sample: LinkSample) -> None:
        self.state = AutoState.PROBING
        self.probe_bps = max(sample.media_bps, 1.0) * PROBE_STEP
        self._step_ticks = self._hold = 0
        self._probe_peak = sample.remb_bps or 0

    def _probing(self, now: float, sample: LinkSample) -> str | None:
        failed = self._probe_failure(sample)
        if failed:
            self.failed_probes += 1
            self.state = AutoState.LOW
            self.last_probe = f"{self.probe_bps / 1000:.0f} kbit/s did not pass: {failed}"
            self.probe_bps = 0.0
            self.next_probe_at = now + self._wait()
            return None
        self._probe_peak = max(self._probe_peak, sample.remb_bps or 0)
        target = sample.high_bps * PROBE_MARGIN
        if (sample.remb_bps is not None and sample.remb_bps >= target) or (
                self.probe_bps >= target and self._hold >= PROBE_HOLD_TICKS):
            self.state = AutoState.HIGH
            self.reason = ""
            self.went_up_at = now
            self.last_probe = f"{max(self.probe_bps, sample.remb_bps or 0) / 1000:.0f} kbit/s passed"
            self.probe_bps = 0.0
            return "up"
        if self.probe_bps >= target:
            self._hold += 1
        else:
            self._step_ticks += 1
            if self._step_ticks >= PROBE_STEP_TICKS:
                self._step_ticks = 0
                self.probe_bps = min(self.probe_bps * PROBE_STEP, target)
        return None

    def status(self, now: float) -> dict[str, object]:
        return {"state": self.state.value, "reason": self.reason, "last_probe": self.last_probe,
                "probe_kbps": round(self.probe_bps / 1000) if self.probe_bps else None,
                "next_probe_in_s": (round(max(0.0, self.next_probe_at - now), 1)
                                    if self.state is AutoState.LOW else None)}


class AutoMeter:
    """What AutoRendition reads from the viewer's video consumer and the feed, per tick."""

    def __init__(self, high_bytes: Callable[[], int], sent_bytes: Callable[[], int],
                 sent_packets: Callable[[], int], nacked: Callable[[], int]) -> None:
        self.high_bytes, self.sent_bytes, self.sent_packets, self.nacked = high_bytes, sent_bytes, sent_packets, nacked
        self._window: deque[tuple[float, int, int, int, int]] = deque(maxlen=4)

    def measure(self, now: float) -> tuple[float, float, float]:
        """(high rendition bit/s, bit/s sent to the viewer but padding, NACKs per packet) over
        the last three ticks (keyframes make single seconds jumpy)."""
        point = (now, self.high_bytes(), self.sent_bytes(), self.sent_packets(), self.nacked())
        self._window.append(point)
        first = self._window[0]
        seconds = now - first[0]
        if seconds <= 0:
            return 0.0, 0.0, 0.0
        high = (point[1] - first[1]) * 8 / seconds
        sent = (point[2] - first[2]) * 8 / seconds
        packets = point[3] - first[3]
        nacks = point[4] - first[4]
        return high, sent, (nacks / packets if packets > 0 else 0.0)


# loss, latest REMB, lowest REMB, highest round trip, the link's own round trip (see LinkSample)
LinkReadings = tuple[float | None, int | None, int | None, float | None, float | None]


class AutoRendition:
    """The runtime of one `auto` viewer: a tick a second through the policy, switches made by
    `switch` ("high" or "low"), padding sent through `pad(budget_bytes) -> bytes sent`."""

    def __init__(self, name: str, meter: AutoMeter, sample_link: Callable[[float], LinkReadings],
                 switch: Callable[[str], None], pad: Callable[[int], int]) -> None:
        self.name = name
        self.policy = AutoPolicy()
        self.meter = meter
        self.sample_link = sample_link
        self.switch = switch
        self.pad = pad
        self.switches = 0
        self._tick: asyncio.TimerHandle | None = None
        self._pad_timer: asyncio.TimerHandle | None = None
        self._pad_credit = 0.0
        self._pad_at = 0.0
        self._media_bps = 0.0
        self._stopped = False

    def start(self) -> None:
        if not self._stopped and self._tick is None:
            self._tick = asyncio.get_running_loop().call_later(TICK_S, self._on_tick)

    def stop(self) -> None:
        """Idempotent."""
        self._stopped = True
        for timer in (self._tick, self._pad_timer):
            if timer is not None:
                timer.cancel()
        self._tick = self._pad_timer = None

    def _on_tick(self) -> None:
        self._tick = None
        if self._stopped:
            return
        now = time.monotonic()
        try:
            high_bps, media_bps, nack_rate = self.meter.measure(now)
            loss, remb, remb_low, rtt, base_rtt = self.sample_link(now)
            self._media_bps = media_bps
            sample = LinkSample(loss, nack_rate, remb, remb_low, media_bps, high_bps, rtt, base_rtt)
            probed = self.policy.probe_bps
            was = self.policy.state
            decision = self.policy.tick(now, sample)
            if decision is not None:
                self.switches += 1
                logger.info("%s: auto quality %s (%s)", self.name, decision,
                            self.policy.reason or f"the link carried {probed / 1000:.0f} kbit/s")
                self.switch("low" if decision == "down" else "high")
            elif was is AutoState.PROBING and self.policy.state is AutoState.LOW:
                logger.info("%s: the link did not carry %d kbit/s (the probe ended); staying on the low "
                            "rendition for %.0f s", self.name, round(probed / 1000), self.policy.next_probe_at - now)
            if self.policy.state is AutoState.PROBING and self._pad_timer is None:
                self._pad_at = now
                self._pad_credit = 0.0
                self._pad_timer = asyncio.get_running_loop().call_later(PAD_INTERVAL_S, self._on_pad)
        except Exception:  # the policy must never take the viewer's connection down
            logger.exception("%s: the auto quality tick failed", self.name)
        self._tick = asyncio.get_running_loop().call_later(TICK_S, self._on_tick)

    def _on_pad(self) -> None:
        self._pad_timer = None
        if self._stopped or self.policy.state is not AutoState.PROBING:
            return
        now = time.monotonic()
        rate = max(0.0, self.policy.probe_bps - self._media_bps)  # padding makes up the rest
        # credit for at most 100 ms: a late timer does not make a burst
        self._pad_credit = min(self._pad_credit + rate / 8 * (now - self._pad_at), rate / 8 * 0.1)
        self._pad_at = now
        try:
            self._pad_credit -= self.pad(int(self._pad_credit))
        except Exception:
            logger.exception("%s: padding failed; the probe ends", self.name)
            return
        self._pad_timer = asyncio.get_running_loop().call_later(PAD_INTERVAL_S, self._on_pad)

    def status(self) -> dict[str, object]:
        return self.policy.status(time.monotonic()) | {"switches": self.switches}
