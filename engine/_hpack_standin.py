"""TEMPORARY stand-in for engine._hpack (branch `hpack`) over the PyPI `hpack` library, so
engine._h2 can be developed before that branch lands. Never shipped: removed when `hpack` is
merged."""
from __future__ import annotations

from typing import Any

import hpack  # type: ignore[import-not-found,unused-ignore]


class HpackError(Exception):
    pass


class HeaderListTooLarge(HpackError):
    pass


class Decoder:
    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = 65536) -> None:
        self.max_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        self._d = hpack.Decoder(max_header_list_size=max_header_list_size or 2**31)
        self._d.max_allowed_table_size = max_table_size

    def decode(self, data: Any) -> list[tuple[bytes, bytes]]:
        try:
            return [(bytes(n), bytes(v)) for n, v in self._d.decode(bytes(data), raw=True)]
        except hpack.OversizedHeaderListError as exc:
            raise HeaderListTooLarge(str(exc)) from None
        except (hpack.HPACKError, ValueError, IndexError) as exc:
            raise HpackError(str(exc)) from None

    def set_max_table_size(self, n: int) -> None:
        self.max_table_size = n
        self._d.max_allowed_table_size = n


class Encoder:
    def __init__(self, max_table_size: int = 4096) -> None:
        self._e = hpack.Encoder()
        self._e.header_table_size = max_table_size

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return bytes(self._e.encode([(h[0], h[1]) for h in headers], huffman=huffman))

    def set_max_table_size(self, n: int) -> None:
        self._e.header_table_size = n
