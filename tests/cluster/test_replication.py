"""Issue 5, tests 2-4: a stopped follower catches up and rejoins the ISR with the leader's data;
a former leader truncates the divergent tail it took with acks=1; acks=all is refused with
NOT_ENOUGH_REPLICAS while the ISR is below min.insync.replicas (2) and accepted once a broker
returns."""
import os
import signal
import subprocess
import time

import pytest

from .harness import BROKER_IDS, FAILOVER_TIMEOUT, REJOIN_TIMEOUT, consume_all, produce


def history(cluster, topic, via=None):
    """[(offset, value)] of partition 0, read up to its high watermark."""
    bootstrap = cluster.bootstrap() if via is None else cluster.brokers[via].address
    return [(o, v) for o, _, v in consume_all(bootstrap, topic, 1)[0]]


def first_difference(got, expected):
    for i in range(max(len(got), len(expected))):
        g = got[i] if i < len(got) else None
        e = expected[i] if i < len(expected) else None
        if g != e:
            return f"record {i}: got {g}, expected {e} ({len(got)} vs {len(expected)} records)"
    return "none"


def test_stopped_follower_catches_up_and_rejoins(cluster3, topic_name):
    cluster3.create_topic(topic_name, 1, 3)
    cluster3.wait_full_isr(topic_name, 1)
    produce(cluster3.bootstrap(), topic_name, [f"a{i}".encode() for i in range(200)])
    leader = cluster3.leader(topic_name, 0)
    follower, other = [i for i in BROKER_IDS if i != leader]

    cluster3.terminate(follower)
    cluster3.wait_isr(topic_name, 0, lambda isr: follower not in isr, f"broker {follower} out", timeout=FAILOVER_TIMEOUT)
    # Two in-sync replicas are enough for min.insync.replicas=2: writes go on without the follower.
    acks = produce(cluster3.bootstrap(), topic_name, [f"b{i}".encode() for i in range(2000)])
    assert [o for _, o in acks] == list(range(200, 2200))

    cluster3.restart(follower)
    started = time.monotonic()
    cluster3.wait_isr(topic_name, 0, lambda isr: follower in isr, f"broker {follower} back", timeout=REJOIN_TIMEOUT)
    print(f"broker {follower} rejoined the ISR {time.monotonic() - started:.2f}s after its restart")
    expected = history(cluster3, topic_name)
    assert len(expected) == 2200

    # Read the follower's copy: with the other two gone it is the only replica, so it leads.
    stopped = cluster3.lead_alone(topic_name, 0, follower)
    assert set(stopped) == {leader, other}
    assert history(cluster3, topic_name, via=follower) == expected


def test_follower_behind_the_leaders_log_start_starts_over_there(cluster3, topic_name):
    """While a follower is down, retention on the leader deletes everything it holds; back, it
    cannot fetch from its log end, so it starts over at the leader's log start and rejoins."""
    from confluent_kafka import Consumer, TopicPartition

    cluster3.create_topic(topic_name, 1, 3, config={"segment.bytes": "4096", "retention.bytes": "16384"})
    cluster3.wait_full_isr(topic_name, 1)
    produce(cluster3.bootstrap(), topic_name, [f"a{i:03}".encode() * 25 for i in range(20)])
    leader = cluster3.leader(topic_name, 0)
    follower = next(i for i in BROKER_IDS if i != leader)
    cluster3.terminate(follower)
    cluster3.wait_isr(topic_name, 0, lambda isr: follower not in isr, f"broker {follower} out", timeout=FAILOVER_TIMEOUT)
    for round_ in range(10):
        produce(cluster3.bootstrap(), topic_name, [f"b{round_}-{i:04}".encode() * 10 for i in range(200)])

    c = Consumer({"bootstrap.servers": cluster3.brokers[leader].address, "group.id": "watermarks"})
    try:
        deadline = time.monotonic() + 30
        low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
        while low <= 20 and time.monotonic() < deadline:
            time.sleep(0.5)
            low, high = c.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10)
    finally:
        c.close()
    assert low > 20, f"retention never moved the leader's log start past the follower's end ({low}..{high})"

    cluster3.restart(follower)
    cluster3.wait_isr(topic_name, 0, lambda isr: follower in isr, f"broker {follower} back", timeout=REJOIN_TIMEOUT)
    expected = history(cluster3, topic_name)
    assert expected and expected[-1][0] == high - 1
    stopped = cluster3.lead_alone(topic_name, 0, follower)
    assert leader in stopped
    got = history(cluster3, topic_name, via=follower)
    assert got and got[0][0] > 20, f"the follower kept offsets below the leader's log start: {got[:1]}"
    # Retention may have trimmed either copy's head further meanwhile; the tails must agree.
    n = min(len(got), len(expected))
    assert got[-n:] == expected[-n:], first_difference(got[-n:], expected[-n:])


def test_leader_sigterm_exits_promptly_and_hands_over(cluster3, topic_name):
    """A clean shutdown of a partition leader whose followers are fetching from it: the broker
    exits within a bound and, having closed its keeper session, loses its leadership at once
    (no wait for the session timeout)."""
    cluster3.create_topic(topic_name, 1, 3)
    cluster3.wait_full_isr(topic_name, 1)
    produce(cluster3.bootstrap(), topic_name, [f"s{i}".encode() for i in range(100)])
    leader = cluster3.leader(topic_name, 0)
    proc = cluster3.brokers[leader].process.proc
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"broker {leader}, leader of {topic_name}-0 with two fetching followers, "
                    f"still running 15 s after SIGTERM")
    finally:
        cluster3.brokers[leader].kill9()
    exited = time.monotonic() - stopped_at
    new_leader = cluster3.wait_leader_change(topic_name, 0, leader)
    moved = time.monotonic() - stopped_at
    print(f"SIGTERM of leader {leader}: exited after {exited:.2f}s, {topic_name}-0 led by {new_leader} after {moved:.2f}s")
    assert moved < 3.0, f"leadership moved {moved:.2f}s after a clean shutdown: the keeper session was not closed"
    assert [v for _, v in history(cluster3, topic_name)] == [f"s{i}".encode() for i in range(100)]


def test_former_leader_truncates_divergent_tail(cluster3, topic_name):
    cluster3.create_topic(topic_name, 1, 3)
    cluster3.wait_full_isr(topic_name, 1)
    base = [f"base{i}".encode() for i in range(100)]
    produce(cluster3.bootstrap(), topic_name, base)
    cluster3.wait_full_isr(topic_name, 1)  # every replica has fetched `base`
    old_leader = cluster3.leader(topic_name, 0)
    followers = [i for i in BROKER_IDS if i != old_leader]

    # Freeze the followers, then write with acks=1 to the leader in two steps. The first record
    # answers the followers' pending long-poll fetches: that response may still reach them
    # (it is in their sockets' buffers even though they are stopped). The tail written after
    # it cannot: a stopped follower sends no next fetch. The leader then dies with a tail
    # that exists nowhere else.
    for f in followers:
        os.kill(cluster3.pid(f), signal.SIGSTOP)
    try:
        first = produce(cluster3.brokers[old_leader].address, topic_name, [b"tail-first"], partition=0, acks="1")
        assert first == [(0, 100)]
        time.sleep(0.5)  # let the leader answer the pending fetches with `first`
        tail = produce(cluster3.brokers[old_leader].address, topic_name,
                       [f"tail{i}".encode() for i in range(50)], partition=0, acks="1")
        assert [o for _, o in tail] == list(range(101, 151))
        cluster3.kill9(old_leader)
    finally:
        for f in followers:
            os.kill(cluster3.pid(f), signal.SIGCONT)
    new_leader = cluster3.wait_leader_change(topic_name, 0, old_leader)
    assert new_leader in followers
    after = [f"new{i}".encode() for i in range(100)]
    acks = produce(cluster3.bootstrap(), topic_name, after)
    # The new leader may have `first` (offset 100) but never the tail: its records take the
    # tail's offsets, so the old leader's offsets 101..150 now mean different records.
    start = acks[0][1]
    assert start in (100, 101), f"the new leader had the old leader's acks=1 tail: next offset {start}"
    assert [o for _, o in acks] == list(range(start, start + 100))

    cluster3.restart(old_leader)
    cluster3.wait_isr(topic_name, 0, lambda isr: sorted(isr) == list(BROKER_IDS), "the old leader back",
                      timeout=REJOIN_TIMEOUT)
    expected = list(enumerate(base + ([b"tail-first"] if start == 101 else []) + after))
    assert history(cluster3, topic_name) == expected

    # One history on every replica: each in turn becomes the only live replica and is read.
    for b in BROKER_IDS:
        stopped = cluster3.lead_alone(topic_name, 0, b)
        got = history(cluster3, topic_name, via=b)
        assert got == expected, f"broker {b} disagrees: {first_difference(got, expected)}"
        for i in stopped:
            cluster3.restart(i)
        cluster3.wait_full_isr(topic_name, 1)


def test_acks_all_refused_below_min_insync_replicas(cluster3, topic_name):
    from kafka import KafkaProducer
    from kafka.errors import NotEnoughReplicasError

    cluster3.create_topic(topic_name, 1, 3)
    cluster3.wait_full_isr(topic_name, 1)
    leader = cluster3.leader(topic_name, 0)
    others = [i for i in BROKER_IDS if i != leader]
    for i in others:
        cluster3.kill9(i)
    cluster3.wait_isr(topic_name, 0, lambda isr: isr == [leader], "only the leader", timeout=FAILOVER_TIMEOUT)

    def producer(acks):
        # retries=0: the broker's error code reaches the caller instead of being retried away.
        return KafkaProducer(bootstrap_servers=cluster3.brokers[leader].address, acks=acks, retries=0,
                             request_timeout_ms=10000, max_block_ms=10000)

    all_producer = producer("all")
    one_producer = producer(1)
    try:
        with pytest.raises(NotEnoughReplicasError):
            all_producer.send(topic_name, b"refused", partition=0).get(timeout=20)
        # min.insync.replicas only governs acks=all.
        assert one_producer.send(topic_name, b"acks=1", partition=0).get(timeout=20).offset == 0

        cluster3.restart(others[0])
        cluster3.wait_isr(topic_name, 0, lambda isr: sorted(isr) == sorted([leader, others[0]]), "two replicas",
                          timeout=REJOIN_TIMEOUT)
        meta = all_producer.send(topic_name, b"accepted", partition=0).get(timeout=20)
        assert meta.offset == 1
    finally:
        all_producer.close(timeout=5)
        one_producer.close(timeout=5)
    assert [v for _, v in history(cluster3, topic_name)] == [b"acks=1", b"accepted"]
