/** The server's stderr lines reach the output channel at their own level. */

import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { classify, pipeServerLog } from "../../src/serverLog";

test("a log line's level and text, without the server's timestamp", () => {
    assert.deepEqual(classify("2026-11-29 01:25:34,122 INFO server.lsp: model ready: fake", undefined),
        { level: "info", text: "server.lsp: model ready: fake" });
    assert.deepEqual(classify("2026-11-29 01:25:34,122 WARNING server.lsp: pingti: Unknown setting", "info"),
        { level: "warn", text: "server.lsp: pingti: Unknown setting" });
    assert.deepEqual(classify("2026-11-29 01:25:34,122 DEBUG server.engine: x", undefined).level, "debug");
    assert.deepEqual(classify("2026-11-29 01:25:34,122 CRITICAL server: x", undefined).level, "error");
    // Continuation lines keep the level before them; on their own they are errors.
    assert.deepEqual(classify("Traceback (most recent call last):", "warn"), { level: "warn", text: "Traceback (most recent call last):" });
    assert.deepEqual(classify("pingti-ls: error: unrecognized arguments: --stdio", undefined).level, "error");
});

test("piping stderr into a log channel", async () => {
    const got: Array<[string, string]> = [];
    const channel = Object.fromEntries(["debug", "info", "warn", "error"].map((level) =>
        [level, (text: string) => got.push([level, text])]));
    const input = new PassThrough();
    pipeServerLog(input, channel as never);
    input.end("2026-11-29 01:25:34,122 INFO server.lsp: ready\n" +
        "2026-11-29 01:25:35,000 ERROR server.lsp: generation failed\nTraceback (most recent call last):\n  boom\n");
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(got, [["info", "server.lsp: ready"], ["error", "server.lsp: generation failed"],
        ["error", "Traceback (most recent call last):"], ["error", "  boom"]]);
});
