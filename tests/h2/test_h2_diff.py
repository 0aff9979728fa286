"""engine._h2 differentially against the PyPI `h2` library (and its frame layer, `hyperframe`).

h2's client-side connection generates the traffic (requests with bodies, trailers, many
streams, flow control, settings changes mid-exchange) and our server answers; the requests our
core reports must be exactly what the client sent, and h2's client must see exactly the
responses we sent, each stream ended on both sides. Hypothesis generates the exchanges."""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame as hf
import pytest
from h2_wire import PREFACE, frame, read_frames, settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from engine import _h2
from engine._h2 import H2EventConnection, H2Limits

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
# h2 strips surrounding whitespace (Python's idea of it) from values it sends: none here
VALUE = st.binary(min_size=0, max_size=40).map(
    lambda b: bytes(c for c in b if 0x21 <= c <= 0x7e or c >= 0x80 or c == 0x20).strip())


@dataclass
class Req:
    method: bytes
    path: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    trailers: list[tuple[bytes, bytes]]
    chunk: int
    response_size: int

    def header_list(self) -> list[tuple[bytes, bytes]]:
        return [(b":method", self.method), (b":scheme", b"https"), (b":path", self.path),
                (b":authority", b"example.com")] + self.headers


@st.composite
def requests(draw: Any) -> Req:
    names = draw(st.lists(TOKEN, max_size=6, unique=True))
    names = [n for n in names if n not in ("connection", "keep-alive", "proxy-connection",
                                           "transfer-encoding", "upgrade", "te", "host",
                                           "content-length")]
    headers = [(n.encode(), draw(VALUE)) for n in names]
    body = draw(st.one_of(st.just(b""), st.binary(max_size=300),
                          st.integers(1000, 150000).map(lambda n: bytes(range(256)) * (n // 256))))
    if body and draw(st.booleans()):
        headers.append((b"content-length", str(len(body)).encode()))
    trailers = [(b"x-trailer-" + n.encode(), draw(VALUE))
                for n in draw(st.lists(TOKEN, max_size=2, unique=True))]
    return Req(method=draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"])),
               path=b"/" + draw(TOKEN).encode(), headers=headers, body=body,
               trailers=trailers, chunk=draw(st.integers(100, 70000)),
               response_size=draw(st.sampled_from([0, 5, 1000, 70000, 200000])))


@dataclass
class Outcome:
    server_requests: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    server_bodies: dict[int, bytearray] = field(default_factory=lambda: defaultdict(bytearray))
    server_trailers: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    server_ended: set[int] = field(default_factory=set)
    client_headers: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    client_bodies: dict[int, bytearray] = field(default_factory=lambda: defaultdict(bytearray))
    client_trailers: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    client_ended: set[int] = field(default_factory=set)
    sent_headers: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    sent_bodies: dict[int, bytes] = field(default_factory=dict)
    sent_trailers: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    server_output: bytearray = field(default_factory=bytearray)


def exchange(reqs: list[Req], limits: H2Limits, client_settings: dict[int, int],
             mid_settings: dict[int, int], seed: int) -> Outcome:
    rnd = random.Random(seed)
    cl = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                              header_encoding=None))
    cl.initiate_connection()
    if client_settings:
        cl.update_settings(client_settings)         # a second SETTINGS frame
    srv = H2EventConnection(limits)
    srv.initiate()
    out = Outcome()
    ids = [2 * i + 1 for i in range(len(reqs))]
    by_id = dict(zip(ids, reqs, strict=True))
    body_left = {sid: bytearray(r.body) for sid, r in by_id.items()}
    req_done: set[int] = set()
    responses: dict[int, list[Any]] = {}         # sid -> [body remaining, trailers]

    def on_server_events(events: list[tuple[Any, ...]]) -> None:
        for ev in events:
            kind, sid = ev[0], ev[1]
            assert kind != "connection_error", ev
            assert kind != "reset", ev
            if kind == "request":
                out.server_requests[sid] = ev[2]
                end = ev[3]
            elif kind == "data":
                out.server_bodies[sid] += ev[2]
                srv.consume(sid, len(ev[2]))
                end = ev[3]
            elif kind == "trailers":
                out.server_trailers[sid] = ev[2]
                end = True
            else:
                continue
            if end:
                out.server_ended.add(sid)
                r = by_id[sid]
                body = (bytes(out.server_bodies[sid][::-1]) + b"r" * r.response_size)
                hdrs = [(b":status", b"200"), (b"x-got", str(len(out.server_bodies[sid])).encode())]
                trailers = [(b"x-done", b"1")] if r.trailers else []
                out.sent_headers[sid] = hdrs
                out.sent_bodies[sid] = body
                out.sent_trailers[sid] = trailers
                srv.send_headers(sid, hdrs, not body and not trailers)
                if body or trailers:
                    responses[sid] = [memoryview(body), trailers]

    def server_send() -> None:
        for sid in list(responses):
            rest, trailers = responses[sid]
            n = srv.send_data(sid, rest, not trailers)
            rest = rest[n:]
            responses[sid][0] = rest
            if not len(rest):
                if trailers:
                    srv.send_trailers(sid, trailers)
                del responses[sid]

    for sid, r in by_id.items():
        cl.send_headers(sid, r.header_list(), end_stream=not r.body and not r.trailers)
        if not r.body and not r.trailers:
            req_done.add(sid)
    for step in range(100000):
        progress = False
        if step == 3 and mid_settings:
            cl.update_settings(mid_settings)
        for sid, left in body_left.items():
            if sid in req_done or sid in out.client_ended:
                continue
            r = by_id[sid]
            while left:
                w = min(cl.local_flow_control_window(sid), cl.max_outbound_frame_size,
                        len(left), r.chunk)
                if w <= 0:
                    break
                cl.send_data(sid, bytes(left[:w]))
                del left[:w]
                progress = True
                if rnd.random() < 0.3:
                    break                       # interleave the streams
            if not left:
                if r.trailers:
                    cl.send_headers(sid, r.trailers, end_stream=True)
                else:
                    cl.end_stream(sid)
                req_done.add(sid)
                progress = True
        data = cl.data_to_send()
        if data:
            progress = True
            cut = rnd.randrange(len(data) + 1)         # any split of the byte stream
            on_server_events(srv.receive(data[:cut]))
            on_server_events(srv.receive(data[cut:]))
        server_send()
        sdata = srv.data_to_send()
        if sdata:
            progress = True
            out.server_output += sdata
            # one frame per call: h2 applies a SETTINGS ACK's new inbound frame size only
            # from its next receive_data() call
            events = []
            for f in read_frames(sdata):
                events += cl.receive_data(bytes([len(f[3]) >> 16, (len(f[3]) >> 8) & 255,
                                                 len(f[3]) & 255, f[0], f[1]])
                                          + f[2].to_bytes(4, "big") + f[3])
            for ev in events:
                if isinstance(ev, h2.events.ResponseReceived):
                    out.client_headers[ev.stream_id] = list(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    out.client_bodies[ev.stream_id] += ev.data
                    cl.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.TrailersReceived):
                    out.client_trailers[ev.stream_id] = list(ev.headers)
                elif isinstance(ev, h2.events.StreamEnded):
                    out.client_ended.add(ev.stream_id)
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise AssertionError(ev)
            # h2's window manager does not look again at bytes it already processed when a
            # SETTINGS ACK shrinks its window (engine._h2 does): nudge it, or it stalls
            for sid in ids:
                if sid not in out.client_ended and sid in cl.streams:
                    cl.acknowledge_received_data(0, sid)
        if not progress:
            break
    else:
        raise AssertionError("the exchange did not settle")
    assert not srv.closed
    return out


def check(out: Outcome, reqs: list[Req]) -> None:
    for i, r in enumerate(reqs):
        sid = 2 * i + 1
        assert out.server_requests[sid] == r.header_list()
        assert bytes(out.server_bodies[sid]) == r.body
        assert out.server_trailers.get(sid, []) == r.trailers
        assert sid in out.server_ended
        assert out.client_headers[sid] == out.sent_headers[sid]
        assert bytes(out.client_bodies[sid]) == out.sent_bodies[sid]
        assert out.client_trailers.get(sid, []) == out.sent_trailers[sid]
        assert sid in out.client_ended


SC = h2.settings.SettingCodes


@hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(reqs=st.lists(requests(), min_size=1, max_size=8),
       initial=st.sampled_from([65535, 1000, 1 << 20]),
       frame=st.sampled_from([16384, 20000, 1 << 20]),
       conn=st.sampled_from([65535, 1 << 20]),
       client_window=st.sampled_from([65535, 100, 1 << 20]),
       client_frame=st.sampled_from([16384, 100000]),
       table=st.sampled_from([4096, 0, 256]),
       mid=st.sampled_from([{}, {SC.INITIAL_WINDOW_SIZE: 50}, {SC.INITIAL_WINDOW_SIZE: 300000},
                            {SC.HEADER_TABLE_SIZE: 0}, {SC.MAX_FRAME_SIZE: 65536}]),
       seed=st.integers(0, 2**32))
def test_exchange_with_h2_client(reqs: list[Req], initial: int, frame: int, conn: int,
                                 client_window: int, client_frame: int, table: int,
                                 mid: dict[int, int], seed: int) -> None:
    limits = H2Limits(initial_window_size=initial, max_frame_size=frame,
                      connection_window_size=conn, header_table_size=table)
    out = exchange(reqs, limits, {SC.INITIAL_WINDOW_SIZE: client_window,
                                  SC.MAX_FRAME_SIZE: client_frame}, mid, seed)
    check(out, reqs)


def test_exchange_many_streams_fixed() -> None:
    """A deterministic large case: 60 streams with bodies of every size, small windows."""
    rnd = random.Random(7)
    reqs = [Req(method=b"POST", path=b"/p%d" % i, headers=[(b"x-i", str(i).encode())],
                body=rnd.randbytes(rnd.choice([0, 1, 100, 20000, 70000])),
                trailers=[(b"x-t", b"v")] if i % 3 == 0 else [], chunk=rnd.randint(1, 20000),
                response_size=rnd.choice([0, 100, 70000])) for i in range(60)]
    out = exchange(reqs, H2Limits(initial_window_size=5000, connection_window_size=65535),
                   {SC.INITIAL_WINDOW_SIZE: 3000}, {SC.INITIAL_WINDOW_SIZE: 70000}, 1)
    check(out, reqs)


def test_our_frames_parse_with_hyperframe() -> None:
    """The frame layer the other way: everything we sent in an exchange parses with
    hyperframe and serializes back to the same bytes."""
    rnd = random.Random(3)
    reqs = [Req(method=b"POST", path=b"/x", headers=[], body=rnd.randbytes(30000),
                trailers=[(b"x-t", b"1")], chunk=5000, response_size=50000) for _ in range(5)]
    out = exchange(reqs, H2Limits(), {}, {}, 2)
    check(out, reqs)
    buf = bytes(out.server_output)
    kinds = set()
    pos = 0
    while pos < len(buf):
        f, length = hf.Frame.parse_frame_header(memoryview(buf[pos:pos + 9]))
        f.parse_body(memoryview(buf[pos + 9:pos + 9 + length]))
        assert f.serialize() == buf[pos:pos + 9 + length]
        kinds.add(type(f).__name__)
        pos += 9 + length
    assert {"SettingsFrame", "HeadersFrame", "DataFrame", "WindowUpdateFrame"} <= kinds


FRAME_KINDS = ["data", "headers", "priority", "rst", "settings", "ping", "window_update",
               "unknown"]


@st.composite
def hyperframe_sequences(draw: Any) -> list[tuple[str, Any]]:
    """Valid client frame sequences made by hyperframe: (kind, frame) with fields random."""
    seq: list[tuple[str, Any]] = []
    sid = 1
    open_ids: list[int] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(FRAME_KINDS))
        pad = draw(st.one_of(st.none(), st.integers(0, 255)))
        flags = ["PADDED"] if pad is not None else []
        if kind == "headers" or not open_ids and kind in ("data", "rst"):
            f = hf.HeadersFrame(sid, flags=flags + ["END_HEADERS"]
                                + (["PRIORITY"] if draw(st.booleans()) else []))
            f.pad_length = pad or 0
            f.depends_on = draw(st.sampled_from([0, sid + 2]))
            f.stream_weight = draw(st.integers(0, 255))
            f.exclusive = draw(st.booleans())
            seq.append(("headers", f))
            open_ids.append(sid)
            sid += 2
        elif kind == "data":
            f = hf.DataFrame(draw(st.sampled_from(open_ids)), data=draw(st.binary(max_size=200)),
                             flags=flags)
            f.pad_length = pad or 0
            seq.append(("data", f))
        elif kind == "rst":
            target = draw(st.sampled_from(open_ids))
            open_ids.remove(target)
            seq.append(("rst", hf.RstStreamFrame(target, error_code=draw(st.integers(0, 13)))))
        elif kind == "priority":
            f = hf.PriorityFrame(draw(st.integers(1, 1000)) * 2 + 1)
            f.depends_on = 0
            f.stream_weight = draw(st.integers(0, 255))
            seq.append(("priority", f))
        elif kind == "settings":
            seq.append(("settings", hf.SettingsFrame(0, settings={
                hf.SettingsFrame.MAX_FRAME_SIZE: draw(st.integers(16384, 2**24 - 1)),
                hf.SettingsFrame.ENABLE_PUSH: draw(st.integers(0, 1)),
                0x99: draw(st.integers(0, 2**32 - 1))})))
        elif kind == "ping":
            seq.append(("ping", hf.PingFrame(0, opaque_data=draw(st.binary(min_size=8,
                                                                          max_size=8)))))
        elif kind == "window_update":
            seq.append(("window_update", hf.WindowUpdateFrame(
                0, window_increment=draw(st.integers(1, 1000)))))
        else:
            # (hyperframe's ExtensionFrame.serialize() writes length 0 before a body: built here)
            seq.append(("unknown", frame(draw(st.integers(10, 255)), draw(st.integers(0, 255)),
                                         draw(st.integers(0, 99)), draw(st.binary(max_size=20)))))
    return seq


@hsettings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(seq=hyperframe_sequences())
def test_frames_made_by_hyperframe(seq: list[tuple[str, Any]]) -> None:
    """Frames serialized by hyperframe (padding, priority fields, unknown types and settings)
    are read as hyperframe meant them: payloads with padding stripped, pings echoed."""
    import hpack
    enc = hpack.Encoder()
    c = H2EventConnection()
    c.receive(PREFACE + settings() + settings(ack=True))
    c.data_to_send()
    for kind, f in seq:
        if kind == "headers":
            f.data = enc.encode([(b":method", b"POST"), (b":scheme", b"http"),
                                 (b":path", b"/"), (b"x-s", str(f.stream_id).encode())])
        ev = c.receive(f if kind == "unknown" else f.serialize())
        frames = read_frames(c.data_to_send())
        assert not c.closed, (kind, ev)
        if kind == "headers":
            assert ev[0][:2] == ("request", f.stream_id)
            assert ev[0][2][-1] == (b"x-s", str(f.stream_id).encode())
        elif kind == "data":
            if f.data:
                assert ev == [("data", f.stream_id, f.data, False)]
            else:
                assert ev == []
        elif kind == "rst":
            assert ev == [("reset", f.stream_id, f.error_code)]
        elif kind == "ping":
            assert frames == [(_h2.PING, _h2.ACK, 0, f.opaque_data)]
        elif kind == "settings":
            assert frames == [(_h2.SETTINGS, _h2.ACK, 0, b"")]
            assert c.peer_max_frame_size == f.settings[hf.SettingsFrame.MAX_FRAME_SIZE]
        elif kind == "window_update":
            assert ev == [("window", 0)]
        else:
            assert ev == [] and frames == []


@pytest.mark.parametrize("size", [0, 1, 9, 100])
def test_byte_by_byte_equals_whole(size: int) -> None:
    """Any split of the input gives the same events as the whole (carry buffer)."""
    import hpack
    enc = hpack.Encoder()
    block = enc.encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/")])
    raw = (PREFACE + settings() + hf.HeadersFrame(1, data=block, flags=["END_HEADERS"])
           .serialize() + hf.DataFrame(1, data=b"y" * size, flags=["END_STREAM"]).serialize())
    whole = H2EventConnection()
    ev_whole = whole.receive(raw)
    pieces = H2EventConnection()
    ev_pieces: list[Any] = []
    for i in range(len(raw)):
        ev_pieces += pieces.receive(raw[i:i + 1])
    merged = [e for e in ev_pieces if e[0] != "data"]
    body = b"".join(e[2] for e in ev_pieces if e[0] == "data")
    assert merged == [e for e in ev_whole if e[0] != "data"]
    assert body == b"y" * size
    assert whole.data_to_send() == pieces.data_to_send()
