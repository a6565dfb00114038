/**
 * `pingti/focus` (focus.ts): sent for the active editor once the server runs, at once when the
 * user switches documents, and after a pause when the cursor jumps within one; never for moves by
 * typing nor for languages pingti does not serve.
 */

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import * as fakes from "./fakes";

fakes.install();
const ext = require("../../src/extension") as typeof import("../../src/extension");
const focus = require("../../src/focus") as typeof import("../../src/focus");
const { FakeLanguageClient: Client, state } = fakes;

function focusSent(client: fakes.FakeLanguageClient) {
    return client.notifications.filter((n) => n.method === focus.FOCUS_NOTIFICATION).map((n) => n.params);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
    await ext.deactivate();
    fakes.reset();
    Client.responses.set("pingti/status", { state: "loading", version: "0.1.0" });
});

test("FocusTracker: another document always, the same one only after a jump", () => {
    const t = new focus.FocusTracker();
    assert.ok(t.shouldSend("file:///a.py", 10));
    t.sent("file:///a.py", 10);
    assert.ok(!t.shouldSend("file:///a.py", 11));
    assert.ok(!t.shouldSend("file:///a.py", 10 + focus.JUMP_LINES - 1));
    assert.ok(t.shouldSend("file:///a.py", 10 + focus.JUMP_LINES));
    assert.ok(t.shouldSend("file:///b.py", 10));
    t.reset();
    assert.ok(t.shouldSend("file:///a.py", 10));
});

test("the active editor at start, a switch at once, a jump after the cursor rests", async () => {
    state.activeTextEditor = fakes.editor("file:///w/a.py", "python", 40, 4);
    await ext.activate({ subscriptions: [] } as never);
    const client = Client.last;
    assert.deepEqual(focusSent(client), [{ textDocument: { uri: "file:///w/a.py" }, position: { line: 40, character: 4 } }]);

    fakes.switchTo(fakes.editor("file:///w/b.py", "python", 3, 0));
    assert.equal(focusSent(client).length, 2, "a switch is sent at once");
    assert.deepEqual(focusSent(client)[1], { textDocument: { uri: "file:///w/b.py" }, position: { line: 3, character: 0 } });

    // Typing moves the cursor a line at a time: nothing is sent.
    for (let line = 4; line < 10; line++) fakes.moveCursor(line, 2);
    await sleep(focus.FOCUS_DEBOUNCE_MS + 100);
    assert.equal(focusSent(client).length, 2);

    // A jump to line 200, through several moves in a row: one notification, after the pause.
    fakes.moveCursor(100);
    fakes.moveCursor(200, 7);
    assert.equal(focusSent(client).length, 2, "not before the cursor rests");
    await sleep(focus.FOCUS_DEBOUNCE_MS + 100);
    assert.deepEqual(focusSent(client).slice(2), [{ textDocument: { uri: "file:///w/b.py" }, position: { line: 200, character: 7 } }]);

    // Languages pingti does not serve, other schemes, and no editor at all: nothing.
    fakes.switchTo(fakes.editor("file:///w/notes.md", "markdown", 0));
    fakes.switchTo(fakes.editor("git:/w/a.py", "python", 0));
    fakes.switchTo(undefined);
    assert.equal(focusSent(client).length, 3);
});

test("nothing is sent while the server is not running, nor after deactivation", async () => {
    await ext.activate({ subscriptions: [] } as never);
    const client = Client.last;
    client.setState(fakes.State.Stopped);
    fakes.switchTo(fakes.editor("file:///w/a.py", "python", 1));
    assert.equal(focusSent(client).length, 0);
    client.setState(fakes.State.Running);
    await ext.deactivate();
    fakes.switchTo(fakes.editor("file:///w/c.py", "python", 1));
    assert.equal(focusSent(client).length, 0);
});
