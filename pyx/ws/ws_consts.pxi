# Tunables and internal enums of engine._ws, in one place (included by ws.pyx).

cdef enum:
    DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024   # bytes of one message, fragments together -> 1009
    MAX_CONTROL_PAYLOAD = 125                # RFC 6455 §5.5
    MSG_INITIAL = 4096                       # first allocation of the message buffer
    MSG_KEEP_CAPACITY = 1024 * 1024          # a larger message buffer is freed after its message

# Opcodes (RFC 6455 §5.2).
cdef enum:
    OPC_CONT = 0x0
    OPC_TEXT = 0x1
    OPC_BINARY = 0x2
    OPC_CLOSE = 0x8
    OPC_PING = 0x9
    OPC_PONG = 0xA

# Parser states: indexes into WS_TABLE.
cdef enum:
    WS_HEADER = 0        # collecting the 2-14 header bytes
    WS_PAYLOAD = 1       # payload bytes of the current frame
    WS_CLOSED = 2        # a close frame was received: input is ignored
    WS_ERROR = 3         # protocol error: every later feed raises it again
    WS_COUNT = 4

# UTF-8 validator: byte classes and DFA states.
cdef enum:
    U8C_ASCII = 0        # 00-7F
    U8C_CONT_80 = 1      # 80-8F
    U8C_CONT_90 = 2      # 90-9F
    U8C_CONT_A0 = 3      # A0-BF
    U8C_INVALID = 4      # C0-C1, F5-FF
    U8C_LEAD2 = 5        # C2-DF
    U8C_E0 = 6
    U8C_LEAD3 = 7        # E1-EC, EE-EF
    U8C_ED = 8
    U8C_F0 = 9
    U8C_LEAD4 = 10       # F1-F3
    U8C_F4 = 11

cdef enum:
    U8_ACCEPT = 0        # at a character boundary
    U8_NEED1 = 1         # one continuation byte to go
    U8_NEED2 = 2
    U8_NEED3 = 3
    U8_AFTER_E0 = 4      # next must be A0-BF
    U8_AFTER_ED = 5      # next must be 80-9F
    U8_AFTER_F0 = 6      # next must be 90-BF
    U8_AFTER_F4 = 7      # next must be 80-8F
    U8_REJECT = 8
    U8_STATES = 9
