"""Work-done progress (``$/progress``) for long work: model loading, test generation.

A client that did not say it supports ``window.workDoneProgress``, or that refuses to create a
token, gets no progress and the work goes on without it. :meth:`LspProgress.report` may be
called from any thread (loading and test generation run on worker threads).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from lsprotocol import types

logger = logging.getLogger(__name__)


def supports_progress(client_capabilities: Any) -> bool:
    caps = client_capabilities
    return bool(caps and caps.window and caps.window.work_done_progress)


class LspProgress:
    def __init__(self, server: Any, token: str, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self.token = token
        self._loop = loop
        self._ended = False

    @classmethod
    async def begin(cls, server: Any, title: str, message: str | None = None,
                    cancellable: bool = False, percentage: int | None = None,
                    prefix: str = "pingti") -> LspProgress | None:
        """Create a token with the client and begin; None when the client has no progress."""
        if not supports_progress(server.protocol.client_capabilities):
            return None
        token = f"{prefix}-{uuid.uuid4().hex[:8]}"
        try:
            await asyncio.wait_for(server.work_done_progress.create_async(token), 10)
        except Exception as exc:  # noqa: BLE001 - a client may refuse; work goes on without
            logger.info("work-done progress unavailable: %s", exc)
            return None
        server.work_done_progress.begin(token, types.WorkDoneProgressBegin(
            title=title, message=message, cancellable=cancellable, percentage=percentage))
        return cls(server, token, asyncio.get_running_loop())

    def report(self, message: str, percentage: int | None = None) -> None:
        params = types.WorkDoneProgressReport(message=message, percentage=percentage)
        self._loop.call_soon_threadsafe(self._send_report, params)

    def _send_report(self, params: types.WorkDoneProgressReport) -> None:
        if not self._ended:
            self._server.work_done_progress.report(self.token, params)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """``callback`` runs when the user cancels the progress (``window/workDoneProgress/
        cancel``)."""
        fut = self._server.work_done_progress.tokens.get(self.token)
        if fut is not None:
            fut.add_done_callback(lambda f: callback() if f.cancelled() else None)

    def end(self, message: str) -> None:
        if not self._ended:
            self._ended = True
            self._server.work_done_progress.end(self.token,
                                                types.WorkDoneProgressEnd(message=message))
