"""Bad input from a raw socket: the broker answers with the right error code or closes only
that connection, and keeps serving other clients. Requests are framed by hand on purpose."""
import socket
import struct
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

# --- tiny encoders for the few (non-flexible) request versions used here ---------------------


def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def request(api_key, version, correlation_id, body, client_id="bad-input-test"):
    msg = struct.pack(">hhi", api_key, version, correlation_id) + string(client_id) + body
    return struct.pack(">i", len(msg)) + msg


def varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_CRC32C = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _CRC32C.append(c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def record_batch(values, timestamp=1_700_000_000_000):
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    after_crc = (struct.pack(">hiqqqhi", 0, len(values) - 1, timestamp, timestamp, -1, -1, -1)
                 + struct.pack(">i", len(values)) + records)
    crc = crc32c(after_crc)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce_v3(topic, partition, records, correlation_id=1):
    body = (struct.pack(">hhi", -1, 1, 10000) + struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1)
            + struct.pack(">i", partition) + struct.pack(">i", len(records)) + records)
    return request(0, 3, correlation_id, body)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_response(sock):
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)


def produce_error(resp):
    """Error code of the single partition in a Produce v3 response."""
    pos = 4  # correlation id
    (n_topics,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    assert n_topics == 1
    (name_len,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + name_len
    (n_parts,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    assert n_parts == 1
    _, error = struct.unpack_from(">ih", resp, pos)
    return error


def connect(cluster):
    s = socket.create_connection(("127.0.0.1", cluster.broker_port), timeout=10)
    s.settimeout(10)
    return s


def closed_by_peer(sock, timeout=10):
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def api_versions_ok(cluster):
    with connect(cluster) as s:
        s.sendall(request(18, 0, 99, b""))
        resp = read_response(s)
        corr, err = struct.unpack_from(">ih", resp, 0)
        return corr == 99 and err == 0


def make_topic(cluster, name):
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with connect(cluster) as s:
            s.sendall(produce_v3(name, 0, record_batch([b"probe"])))
            if produce_error(read_response(s)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{name} never accepted a produce")


# --- the tests ---------------------------------------------------------------------------------


def test_valid_hand_built_batch_is_accepted(cluster, topic_name):
    make_topic(cluster, topic_name)
    with connect(cluster) as s:
        s.sendall(produce_v3(topic_name, 0, record_batch([b"a", b"b"]), correlation_id=5))
        resp = read_response(s)
        assert struct.unpack_from(">i", resp, 0)[0] == 5
        assert produce_error(resp) == 0


def test_bad_crc_gets_corrupt_message(cluster, topic_name):
    make_topic(cluster, topic_name)
    batch = bytearray(record_batch([b"hello", b"world"]))
    batch[-3] ^= 0xFF  # a value byte: the stored CRC no longer matches
    with connect(cluster) as s:
        s.sendall(produce_v3(topic_name, 0, bytes(batch)))
        assert produce_error(read_response(s)) == 2  # CORRUPT_MESSAGE
        # The same connection stays usable.
        s.sendall(produce_v3(topic_name, 0, record_batch([b"fine"]), correlation_id=2))
        assert produce_error(read_response(s)) == 0
    assert api_versions_ok(cluster)


def test_batch_over_message_max_bytes_is_rejected(cluster, topic_name):
    make_topic(cluster, topic_name)
    with connect(cluster) as s:
        s.sendall(produce_v3(topic_name, 0, record_batch([b"x" * (2 * 1024 * 1024)])))
        assert produce_error(read_response(s)) == 10  # MESSAGE_TOO_LARGE
    assert api_versions_ok(cluster)


def test_malformed_frame_closes_only_that_connection(cluster):
    with connect(cluster) as bystander:
        with connect(cluster) as s:
            # A Metadata v1 request whose topic array claims more entries than the frame holds.
            s.sendall(request(3, 1, 7, struct.pack(">i", 1000)))
            assert closed_by_peer(s)
        bystander.sendall(request(18, 0, 11, b""))
        assert struct.unpack_from(">ih", read_response(bystander), 0) == (11, 0)
    assert api_versions_ok(cluster)


def test_oversized_request_closes_connection(cluster):
    with connect(cluster) as s:
        s.sendall(struct.pack(">i", 1 << 30) + b"\x00" * 64)  # > socket.request.max.bytes
        assert closed_by_peer(s)
    assert api_versions_ok(cluster)


def test_unknown_api_version_is_answered(cluster):
    with connect(cluster) as s:
        # As a KIP-511 client sends it: header v2 (tagged fields), flexible v3-style body.
        header = struct.pack(">hhi", 18, 999, 3) + string("bad-input-test") + b"\x00"
        body = b"\x05test" + b"\x021" + b"\x00"
        s.sendall(struct.pack(">i", len(header + body)) + header + body)
        resp = read_response(s)
        corr, err = struct.unpack_from(">ih", resp, 0)
        assert (corr, err) == (3, 35)  # UNSUPPORTED_VERSION, with the v0 api list
        (n,) = struct.unpack_from(">i", resp, 6)
        assert n > 0
        s.sendall(request(18, 0, 4, b""))
        assert struct.unpack_from(">ih", read_response(s), 0) == (4, 0)


def test_invalid_topic_name(cluster):
    bad = "bad topic/name!"
    with connect(cluster) as s:
        # CreateTopics v2: topics[name, partitions, rf, assignments[], configs[]], timeout, validate_only
        body = (struct.pack(">i", 1) + string(bad) + struct.pack(">ihii", 1, 1, 0, 0)
                + struct.pack(">ib", 5000, 0))
        s.sendall(request(19, 2, 8, body))
        resp = read_response(s)
        pos = 4 + 4  # correlation id, throttle time
        (n,) = struct.unpack_from(">i", resp, pos)
        pos += 4
        assert n == 1
        (name_len,) = struct.unpack_from(">h", resp, pos)
        pos += 2
        assert resp[pos:pos + name_len].decode() == bad
        pos += name_len
        (error,) = struct.unpack_from(">h", resp, pos)
        assert error == 17  # INVALID_TOPIC_EXCEPTION

        # Produce to an invalid name: the partition answers with an error, the connection lives.
        s.sendall(produce_v3(bad, 0, record_batch([b"x"]), correlation_id=9))
        assert produce_error(read_response(s)) in (17, 3)
    assert api_versions_ok(cluster)
