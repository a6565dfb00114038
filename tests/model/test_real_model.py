"""The real default model through the real server: the one thing a fake backend cannot prove.

Slow on a CPU (first run on a machine also assembles and converts the model, about a minute),
so it checks several things per server start.
"""

from __future__ import annotations

import ast
import asyncio
import textwrap

import pytest

from server.lspclient import PingtiClient

pytestmark = pytest.mark.model

PREFIX = textwrap.dedent('''\
    def running_max(values: list[int]) -> list[int]:
        """Return a list whose i-th item is the maximum of values[0..i]."""
        result = []
        best = None
        for v in values:
    ''')
SUFFIX = textwrap.dedent('''\

        return result


    assert running_max([1, 3, 2, 5, 4]) == [1, 3, 3, 5, 5]
    ''')


async def _session(options: dict[str, str]) -> PingtiClient:
    client = PingtiClient()
    await client.start(options)
    await client.wait_ready(timeout=900)
    return client


@pytest.mark.parametrize("options", [{}, {"backend": "transformers"}],
                         ids=["default-backend", "transformers"])
def test_real_model_completes_a_function_through_lsp(options: dict[str, str]) -> None:
    async def run() -> None:
        client = await _session(options)
        try:
            uri = "file:///real/running_max.py"
            client.open(uri, PREFIX + "        " + SUFFIX)
            body = await asyncio.wait_for(client.inline(uri, 5, 8), 300)
            assert body.strip(), "the real model gave no suggestion"
            program = PREFIX + "        " + body + SUFFIX
            ast.parse(program)  # the completed file parses
            namespace: dict[str, object] = {}
            exec(compile(program, "<completed>", "exec"), namespace)  # the tiny check passes
            # A single-line request mid-line: the suggestion stays on one line.
            line_doc = "import os\n\npath = os.path.join(\n"
            client.open("file:///real/single.py", line_doc)
            single = await asyncio.wait_for(client.inline("file:///real/single.py", 2, 20), 300)
            assert "\n" not in single
            assert client.log.progress, "model loading reported no work-done progress"
            rss = client.peak_rss_bytes()
            assert rss is not None and rss < 6 << 30
        finally:
            await client.stop()

    asyncio.run(run())
