"""The `auto` policy on made-up links: down on two bad seconds, never on 1 % loss; up only
after a probe that held; probes that fail wait longer (no flapping)."""

from __future__ import annotations

from broadcast.webrtc.autorendition import (
    PROBE_FIRST_S,
    PROBE_MARGIN,
    PROBE_WAIT_MAX_S,
    TRIAL_S,
    AutoMeter,
    AutoPolicy,
    AutoState,
    LinkSample,
)

HIGH = 2_500_000
LOW = 520_000


def good(media: float = HIGH, remb: int | None = 3_000_000) -> LinkSample:
    return LinkSample(loss=0.01, nack_rate=0.01, remb_bps=remb, remb_low_bps=remb, media_bps=media, high_bps=HIGH)


def congested() -> LinkSample:
    return LinkSample(loss=0.3, nack_rate=0.25, remb_bps=850_000, remb_low_bps=800_000, media_bps=HIGH, high_bps=HIGH)


def run(policy: AutoPolicy, start: float, samples: list[LinkSample]) -> list[str | None]:
    return [policy.tick(start + i, s) for i, s in enumerate(samples)]


def test_one_percent_loss_keeps_the_feed_as_published() -> None:
    policy = AutoPolicy()
    assert run(policy, 0, [good()] * 120) == [None] * 120
    assert policy.state is AutoState.HIGH


def test_two_bad_seconds_in_a_row_move_down_one_does_not() -> None:
    policy = AutoPolicy()
    assert run(policy, 0, [good(), congested(), good(), congested(), good()]) == [None] * 5
    assert run(policy, 10, [congested(), congested()]) == [None, "down"]
    assert policy.state is AutoState.LOW and "lost" in policy.reason


def test_a_low_estimate_alone_moves_down_unless_the_feed_is_light() -> None:
    slow = LinkSample(loss=0.0, nack_rate=0.0, remb_bps=900_000, remb_low_bps=900_000, media_bps=HIGH, high_bps=HIGH)
    policy = AutoPolicy()
    assert run(policy, 0, [slow, slow]) == [None, "down"]
    assert "900 kbit/s" in policy.reason
    light = LinkSample(loss=0.0, nack_rate=0.0, remb_bps=300_000, remb_low_bps=300_000,
                       media_bps=400_000, high_bps=400_000)
    assert run(AutoPolicy(), 0, [light] * 5) == [None] * 5


def test_a_probe_that_holds_moves_up_in_steps_towards_the_target() -> None:
    policy = AutoPolicy()
    run(policy, 0, [congested(), congested()])
    down_at = 1
    # on the low rendition with a link that now carries anything: REMB follows what is sent
    t = down_at + 1
    probes = []
    while policy.state is not AutoState.HIGH and t < 60:
        was = policy.state
        sent = LOW + (policy.probe_bps - LOW if policy.state is AutoState.PROBING else 0)
        decision = policy.tick(t, good(media=LOW, remb=int(sent * 1.2)))
        if policy.state is AutoState.PROBING:
            probes.append(round(policy.probe_bps))
        assert was is not AutoState.LOW or t >= down_at + PROBE_FIRST_S or policy.state is AutoState.LOW
        t += 1
        if decision == "up":
            break
    assert policy.state is AutoState.HIGH, probes
    assert probes[0] == round(LOW * 1.5) and max(probes) <= HIGH * PROBE_MARGIN
    assert probes == sorted(probes), "the probe only rises"
    assert t - down_at < PROBE_FIRST_S + 16


def test_a_failed_probe_waits_longer_each_time_and_a_quick_fall_counts_as_one() -> None:
    policy = AutoPolicy()
    run(policy, 0, [congested(), congested()])
    waits = []
    t = 2.0
    for _ in range(5):
        start = policy.next_probe_at
        waits.append(round(start - t, 1))
        t = start
        policy.tick(t, good(media=LOW, remb=700_000))  # starts the probe
        assert policy.state is AutoState.PROBING
        t += 1
        policy.tick(t, LinkSample(loss=0.08, nack_rate=0.08, remb_bps=600_000, remb_low_bps=600_000,
                                  media_bps=LOW, high_bps=HIGH))
        assert policy.state is AutoState.LOW and policy.probe_bps == 0
    assert waits[0] == PROBE_FIRST_S - 2 + 1 and waits[1:] == [16.0, PROBE_WAIT_MAX_S, PROBE_WAIT_MAX_S,
                                                               PROBE_WAIT_MAX_S], waits
    # a REMB that falls during a probe ends it too (the estimator saw the queue grow)
    t = policy.next_probe_at
    policy.tick(t, good(media=LOW, remb=800_000))
    policy.tick(t + 1, LinkSample(loss=0.0, nack_rate=0.0, remb_bps=700_000, remb_low_bps=650_000,
                                  media_bps=LOW, high_bps=HIGH))
    assert policy.state is AutoState.LOW
    # up, then down again within the trial: the next probe waits as after a failure
    fresh = AutoPolicy()
    run(fresh, 0, [congested(), congested()])
    fresh.state, fresh.went_up_at = AutoState.HIGH, 100.0
    run(fresh, 100 + TRIAL_S / 2, [congested(), congested()])
    assert fresh.failed_probes == 1 and fresh.next_probe_at - (101 + TRIAL_S / 2) == 2 * PROBE_FIRST_S


def test_the_meter_reads_rates_over_the_last_ticks() -> None:
    counters = {"high": 0, "sent": 0, "packets": 0, "nacks": 0}
    meter = AutoMeter(lambda: counters["high"], lambda: counters["sent"], lambda: counters["packets"],
                      lambda: counters["nacks"])
    assert meter.measure(0.0) == (0.0, 0.0, 0.0)
    for t in range(1, 6):
        counters["high"] += 312_500   # 2.5 Mbit/s
        counters["sent"] += 62_500    # 500 kbit/s
        counters["packets"] += 100
        counters["nacks"] += 5
        high, sent, nack_rate = meter.measure(float(t))
    assert (round(high), round(sent), round(nack_rate, 3)) == (2_500_000, 500_000, 0.05)
