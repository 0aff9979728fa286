# TEMPORARY STAND-IN (branch h2asgi) for part B's engine._h2: the H2Connection API of
# /work/h2-contract.md on top of the PyPI `h2` library, so that engine._asgi's H2Session can be
# built and tested end to end before branch h2core lands. Not the real core (pure Python, slow):
# branch h2core owns pyx/h2/ and replaces this file when it is merged.
#
# Differences from the contract kept small: GOAWAY from goaway() is serialized here (the h2
# library refuses to send on a connection it has closed), and new streams after it are refused
# here; data_frame_header() is not available (NotImplementedError).

from h2.config import H2Configuration as _Config
from h2.connection import H2Connection as _Conn
from h2 import events as _ev
from h2 import exceptions as _exc
from h2.settings import SettingCodes as _SC
from hyperframe.frame import GoAwayFrame as _GoAway

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xa
ENHANCE_YOUR_CALM = 0xb
INADEQUATE_SECURITY = 0xc
HTTP_1_1_REQUIRED = 0xd


cdef class H2Limits:
    def __init__(self, *, max_concurrent_streams=100, initial_window_size=65535,
                 max_frame_size=16384, max_header_list_size=65536, header_table_size=4096):
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.max_frame_size = max_frame_size
        self.max_header_list_size = max_header_list_size
        self.header_table_size = header_table_size


cdef class H2Connection:

    def __init__(self, H2Limits limits=None):
        self._limits = limits if limits is not None else H2Limits()
        self._conn = _Conn(config=_Config(client_side=False, header_encoding=None,
                                          validate_inbound_headers=True))
        self._out = bytearray()

    cdef int on_request(self, unsigned int stream_id, list headers, bint end_stream) except -1:
        return 0

    cdef int on_data(self, unsigned int stream_id, object data, bint end_stream) except -1:
        return 0

    cdef int on_trailers(self, unsigned int stream_id, list headers) except -1:
        return 0

    cdef int on_stream_reset(self, unsigned int stream_id, unsigned int error_code) except -1:
        return 0

    cdef int on_window_open(self, unsigned int stream_id) except -1:
        return 0

    cdef int on_goaway(self, unsigned int last_stream_id, unsigned int error_code) except -1:
        return 0

    cdef int on_connection_error(self, unsigned int error_code, str reason) except -1:
        return 0

    cdef int _pull(self) except -1:
        self._out += self._conn.data_to_send()
        self.open_streams = self._conn.open_inbound_streams
        return 0

    cpdef initiate(self):
        cdef H2Limits l = self._limits
        c = self._conn
        c.local_settings = type(c.local_settings)(client=False, initial_values={
            _SC.MAX_CONCURRENT_STREAMS: l.max_concurrent_streams,
            _SC.INITIAL_WINDOW_SIZE: l.initial_window_size,
            _SC.MAX_FRAME_SIZE: l.max_frame_size,
            _SC.MAX_HEADER_LIST_SIZE: l.max_header_list_size,
            _SC.HEADER_TABLE_SIZE: l.header_table_size})
        c.initiate_connection()
        self._pull()

    cpdef receive(self, data):
        try:
            events = self._conn.receive_data(bytes(data))
        except _exc.ProtocolError as exc:
            code = getattr(exc, "error_code", PROTOCOL_ERROR)
            try:
                self._conn.close_connection(int(code))
            except Exception:
                pass
            self.closed = True
            self._pull()
            self.on_connection_error(int(code), str(exc))
            return
        for ev in events:
            t = type(ev)
            if t is _ev.RequestReceived:
                sid = ev.stream_id
                if self._goaway_sent and sid > self.last_stream_id:
                    self._conn.reset_stream(sid, REFUSED_STREAM)
                    continue
                self.last_stream_id = max(self.last_stream_id, sid)
                self._pull()
                self.on_request(sid, list(ev.headers), ev.stream_ended is not None)
            elif t is _ev.DataReceived:
                pad = ev.flow_controlled_length - len(ev.data)
                if pad:
                    self._conn.acknowledge_received_data(pad, ev.stream_id)
                self._pull()
                self.on_data(ev.stream_id, ev.data, ev.stream_ended is not None)
            elif t is _ev.TrailersReceived:
                self._pull()
                self.on_trailers(ev.stream_id, list(ev.headers))
            elif t is _ev.StreamReset:
                self._pull()
                self.on_stream_reset(ev.stream_id, ev.error_code)
            elif t is _ev.WindowUpdated:
                self._pull()
                self.on_window_open(ev.stream_id)
            elif t is _ev.RemoteSettingsChanged:
                self._pull()
                self.on_window_open(0)
            elif t is _ev.ConnectionTerminated:
                self.closed = ev.error_code != 0
                self._pull()
                self.on_goaway(ev.last_stream_id or 0, ev.error_code)
        self._pull()

    cpdef bytes data_to_send(self):
        self._pull()
        out = bytes(self._out)
        self._out.clear()
        return out

    cpdef send_headers(self, unsigned int stream_id, list headers, bint end_stream):
        self._conn.send_headers(stream_id, headers, end_stream=end_stream)
        self._pull()

    cpdef Py_ssize_t send_data(self, unsigned int stream_id, data, bint end_stream):
        cdef Py_ssize_t n = len(data), taken = 0, k
        c = self._conn
        view = memoryview(data)
        while taken < n:
            k = min(c.local_flow_control_window(stream_id), c.max_outbound_frame_size,
                    n - taken)
            if k <= 0:
                break
            c.send_data(stream_id, bytes(view[taken:taken + k]),
                        end_stream=end_stream and taken + k == n)
            taken += k
        if n == 0 and end_stream:
            c.end_stream(stream_id)
        self._pull()
        return taken

    cpdef bytes data_frame_header(self, unsigned int stream_id, Py_ssize_t n, bint end_stream):
        raise NotImplementedError("the stand-in core has no data_frame_header")

    cpdef Py_ssize_t send_window(self, unsigned int stream_id):
        try:
            return self._conn.local_flow_control_window(stream_id)
        except _exc.StreamClosedError:
            return 0

    cpdef send_trailers(self, unsigned int stream_id, list headers):
        self._conn.send_headers(stream_id, headers, end_stream=True)
        self._pull()

    cpdef reset_stream(self, unsigned int stream_id, unsigned int error_code):
        try:
            self._conn.reset_stream(stream_id, error_code)
        except _exc.StreamClosedError:
            pass
        self._pull()

    cpdef consume(self, unsigned int stream_id, Py_ssize_t n):
        if n <= 0:
            return
        try:
            self._conn.acknowledge_received_data(n, stream_id)
        except (_exc.StreamClosedError, KeyError):
            self._conn.increment_flow_control_window(n)
        self._pull()

    cpdef goaway(self, unsigned int error_code=NO_ERROR):
        if self._goaway_sent:
            return
        self._goaway_sent = True
        self._pull()
        f = _GoAway(0)
        f.last_stream_id = self.last_stream_id
        f.error_code = error_code
        self._out += f.serialize()
        if error_code:
            self.closed = True
