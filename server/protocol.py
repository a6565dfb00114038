"""JSON-RPC robustness that pygls 2.1 leaves to the server.

What pygls does by itself, checked against its source, and what this module changes:

| input                                   | pygls 2.1.1                      | here                          |
|-----------------------------------------|----------------------------------|-------------------------------|
| body that is not JSON                   | logged, no response              | -32700 ParseError, id null    |
| JSON that is not a request object       | AttributeError logged, no answer | -32600 InvalidRequest         |
| request whose params do not validate    | logged, **no response**          | -32602 InvalidParams, with id |
| request before ``initialize``           | handled as if initialized        | -32002 ServerNotInitialized   |
| request after ``shutdown``              | dropped silently                 | -32600 InvalidRequest         |
| unknown method                          | -32601                           | (kept)                        |
| ``$/cancelRequest`` of an async handler | task cancelled, -32800           | (kept; our handler also stops |
|                                         |                                  | the worker via a CancelToken) |
| header glued to a previous body         | never matches again: deaf        | header found by search        |
| stdin, a burst of messages              | a thread-pool trip per line read | read in chunks                |
| ``didChange`` (one per keystroke)       | cattrs + generic dispatch        | built and applied directly    |

It also keeps its own document store (see :mod:`server.documents`) instead of pygls' workspace
documents, whose ``splitlines`` treats ``\\u2028`` and form feeds as line breaks.

The last two rows are about cost: 3,000 keystrokes in a row must be read and applied in a
fraction of a second, or the completion request behind them waits for seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    FeatureNotificationError,
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.io_ import StdinAsyncReader
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from server.documents import DocumentStore, PositionEncoding

logger = logging.getLogger(__name__)

_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)\s*$", re.IGNORECASE)
# An upper bound on a message body; a bigger Content-Length is garbage, not a document.
_MAX_BODY = 256 << 20


class _Invalid:
    """A message that failed validation; kept so the request still gets its error response."""

    def __init__(self, msg_id: Any, method: str, error: JsonRpcException) -> None:
        self.id = msg_id
        self.method = method
        self.error = error


class PingtiProtocol(LanguageServerProtocol):
    def __init__(self, server: Any, converter: Any) -> None:
        # Before super().__init__: pygls reads every attribute (properties too) to find features.
        self._encoding: tuple[Any, PositionEncoding] | None = None
        super().__init__(server, converter)
        self.documents = DocumentStore()
        self.initialize_received = False

    # --- decoding -------------------------------------------------------------------------

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" not in data:
            return data  # a dict inside a message (json.loads' object_hook sees them first)
        if data.get("method") == types.TEXT_DOCUMENT_DID_CHANGE and "id" not in data:
            fast = _did_change(data)
            if fast is not None:
                return fast
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data and \
                    self.get_message_type(str(data["method"])) is None and \
                    str(data["method"]) not in self.fm.features:
                # pygls' generic request type requires `params`; an unknown method without
                # them is still an unknown method.
                return _Invalid(data.get("id"), str(data["method"]),
                                JsonRpcMethodNotFound.of(str(data["method"])))
            if isinstance(data, dict) and "id" in data and "method" in data:
                err = exc if isinstance(exc, JsonRpcInvalidParams) else JsonRpcInvalidParams()
                err.message = f"Invalid params for {data.get('method')!r}"
                return _Invalid(data.get("id"), str(data.get("method")), err)
            if isinstance(data, dict) and "method" in data:
                # A notification that does not validate: drop it, it has nobody to answer.
                return _Invalid(None, str(data.get("method")), exc)
            raise

    def _reply_error(self, msg_id: Any, error: JsonRpcException) -> None:
        if msg_id is None:
            # pygls' serializer drops None fields, but JSON-RPC requires `"id": null` when the
            # id could not be read: write this one by hand.
            self._send_data({"jsonrpc": self.VERSION, "id": None,
                             "error": {"code": error.code, "message": error.message}})
        else:
            self._send_response(msg_id, None, error.to_response_error())

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Invalid):
            if message.id is not None:
                logger.warning("invalid params for %s (id %r)", message.method, message.id)
                self._reply_error(message.id, message.error)
            else:
                logger.warning("dropping invalid notification %s", message.method)
            return
        if not hasattr(message, "jsonrpc"):
            msg_id = message.get("id") if isinstance(message, dict) else None
            logger.warning("not a JSON-RPC 2.0 message: %.200r", message)
            if not isinstance(message, dict) or "method" in message or "id" in message:
                self._reply_error(msg_id, JsonRpcInvalidRequest())
            return
        method = getattr(message, "method", None)
        is_request = method is not None and getattr(message, "id", None) is not None
        if method is not None and is_request:
            if message.jsonrpc != self.VERSION:
                self._reply_error(message.id, JsonRpcInvalidRequest())
                return
            if not self.initialize_received and method != types.INITIALIZE:
                self._reply_error(message.id, JsonRpcServerNotInitialized(
                    message="The server is not initialized: send 'initialize' first"))
                return
            if self._shutdown and method != types.EXIT:
                self._reply_error(message.id, JsonRpcInvalidRequest(
                    message="The server is shutting down"))
                return
            if method == types.INITIALIZE:
                if self.initialize_received:
                    self._reply_error(message.id, JsonRpcInvalidRequest(
                        message="'initialize' may only be sent once"))
                    return
                self.initialize_received = True
        elif method is not None and not self.initialize_received and method != types.EXIT:
            logger.warning("dropping notification %s sent before initialize", method)
            return
        if method == types.TEXT_DOCUMENT_DID_CHANGE and not is_request:
            # The one message that comes in bursts, one per keystroke: handled here rather
            # than through pygls' generic dispatch (typing-protocol isinstance checks, a uuid
            # and a future per notification), which would cost more than the edit itself.
            try:
                self.lsp_text_document__did_change(message.params)
            except Exception as exc:
                logger.exception("didChange failed")
                self._server._report_server_error(exc, FeatureNotificationError)
            return
        super().handle_message(message)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Any:
        # UTF-16 is the default; UTF-8 whenever the client offers it, whatever its order
        # (cheaper to map, and what most non-JS editors use internally). pygls picks the
        # client's first supported encoding, so put UTF-8 first.
        general = params.capabilities.general
        offered = list(general.position_encodings or []) if general else []
        if general and types.PositionEncodingKind.Utf8 in offered:
            general.position_encodings = [types.PositionEncodingKind.Utf8] + [
                e for e in offered if e != types.PositionEncodingKind.Utf8]
        return (yield from super().lsp_initialize(params))

    # --- documents ------------------------------------------------------------------------

    @property
    def position_encoding(self) -> PositionEncoding:
        raw = getattr(getattr(self, "server_capabilities", None), "position_encoding", None)
        cached = self._encoding
        if cached is None or cached[0] is not raw:
            cached = self._encoding = (raw, PositionEncoding.from_lsp(raw))
        return cached[1]

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        td = params.text_document
        self.documents.open(td.uri, td.text, td.version, td.language_id)
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            handler(params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        doc = self.documents.get(params.text_document.uri)
        if doc is None:
            logger.warning("didChange for a document that is not open: %s",
                           params.text_document.uri)
            return
        enc = self.position_encoding
        for change in params.content_changes:
            rng = getattr(change, "range", None)
            if rng is None:
                doc.apply_change(change.text, None, None, enc)
            else:
                doc.apply_change(change.text, (rng.start.line, rng.start.character),
                                 (rng.end.line, rng.end.character), enc)
        doc.version = params.text_document.version
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            handler(params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        self.documents.close(params.text_document.uri)
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            handler(params)


class ChunkedStdinReader:
    """pygls' ``StdinAsyncReader`` interface (``readline``, ``readexactly``), reading stdin in
    chunks of whatever has arrived: one trip to the reader thread per chunk, not one per line.

    Why: pygls' reader hands every ``readline`` and ``read`` to a thread pool, three trips per
    message. A burst of 3,000 keystrokes (3,000 ``didChange`` notifications) then costs seconds
    of thread hand-offs on 2 cores before the next completion request is even read.
    """

    _CHUNK = 1 << 16

    def __init__(self, stdin: Any, executor: Any = None) -> None:
        self._read = getattr(stdin, "read1", None) or stdin.read
        self._executor = executor
        self._buf = bytearray()
        self._pos = 0  # start of the unread bytes in _buf
        self._eof = False

    async def _fill(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._executor, self._read, self._CHUNK)
        if data:
            self._buf += data
        else:
            self._eof = True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[self._pos:self._pos + n])
        self._pos += len(data)
        return data

    async def readline(self) -> bytes:
        while True:
            end = self._buf.find(b"\n", self._pos)
            if end != -1:
                return self._take(end + 1 - self._pos)
            if self._eof:
                return self._take(len(self._buf) - self._pos)
            await self._fill()

    async def readexactly(self, n: int) -> bytes:
        """``n`` bytes, or fewer at the end of the stream (as ``stdin.read(n)``)."""
        while len(self._buf) - self._pos < n and not self._eof:
            await self._fill()
        return self._take(n)


def _did_change(data: dict[str, Any]) -> types.DidChangeTextDocumentNotification | None:
    """A ``didChange`` notification built directly from its JSON (lsprotocol's validators
    still check every field); None when anything is off, for the generic path to judge.
    cattrs' generic structuring is the larger part of handling a keystroke otherwise."""
    try:
        params = data["params"]
        doc = params["textDocument"]
        changes: list[types.TextDocumentContentChangeEvent] = []
        for change in params["contentChanges"]:
            rng = change.get("range")
            if rng is None:
                changes.append(types.TextDocumentContentChangeWholeDocument(text=change["text"]))
                continue
            start, end = rng["start"], rng["end"]
            if not all(type(v) is int for v in (start["line"], start["character"],
                                                end["line"], end["character"])):
                return None
            changes.append(types.TextDocumentContentChangePartial(
                range=types.Range(
                    start=types.Position(line=start["line"], character=start["character"]),
                    end=types.Position(line=end["line"], character=end["character"])),
                text=change["text"], range_length=change.get("rangeLength")))
        if type(doc["version"]) is not int:
            return None
        return types.DidChangeTextDocumentNotification(
            params=types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=doc["uri"],
                                                                    version=doc["version"]),
                content_changes=changes),
            jsonrpc=data["jsonrpc"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


async def read_messages(reader: Any, protocol: PingtiProtocol, stop: threading.Event) -> None:
    """pygls' read loop, made tolerant: headers are searched for (so a header glued to garbage
    still resynchronises), case-insensitive, and any failure answers instead of going deaf.
    pygls' stdin reader is replaced by :class:`ChunkedStdinReader` (same stream, same thread
    pool), which reads a burst of messages in a few chunks."""
    if isinstance(reader, StdinAsyncReader):
        reader = ChunkedStdinReader(reader.stdin, reader.executor)
    content_length = 0
    while not stop.is_set():
        header = await reader.readline()
        if not header:
            break
        if not content_length:
            match = _CONTENT_LENGTH.search(header.rstrip(b"\r\n"))
            if match:
                content_length = int(match.group(1))
                if content_length > _MAX_BODY:
                    logger.error("ignoring message with Content-Length %d", content_length)
                    content_length = 0
            continue
        if header.strip():
            continue  # another header (Content-Type): ignored
        body = await reader.readexactly(content_length)
        content_length = 0
        if not body:
            break
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
        except (ValueError, UnicodeDecodeError) as exc:
            logger.warning("unparseable message body: %s", exc)
            protocol._reply_error(None, JsonRpcParseError())
            continue
        except Exception:
            logger.exception("could not decode a message")
            protocol._reply_error(None, JsonRpcInvalidRequest())
            continue
        try:
            protocol.handle_message(message)
        except Exception:
            logger.exception("unable to handle message")
            msg_id = getattr(message, "id", None)
            if msg_id is not None and getattr(message, "method", None):
                from pygls.exceptions import JsonRpcInternalError

                protocol._send_response(msg_id, None, JsonRpcInternalError(
                    message="internal error while handling the request").to_response_error())

