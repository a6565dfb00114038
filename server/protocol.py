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

It also keeps its own document store (see :mod:`server.documents`) instead of pygls' workspace
documents, whose ``splitlines`` treats ``\\u2028`` and form feeds as line breaks.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
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
        super().__init__(server, converter)
        self.documents = DocumentStore()
        self.initialize_received = False

    # --- decoding -------------------------------------------------------------------------

    def structure_message(self, data: dict[str, Any]) -> Any:
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
        caps = getattr(self, "server_capabilities", None)
        return PositionEncoding.from_lsp(getattr(caps, "position_encoding", None))

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        td = params.text_document
        self.documents.open(td.uri, td.text, td.version, td.language_id)

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


async def read_messages(reader: Any, protocol: PingtiProtocol, stop: threading.Event) -> None:
    """pygls' read loop, made tolerant: headers are searched for (so a header glued to garbage
    still resynchronises), case-insensitive, and any failure answers instead of going deaf."""
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

