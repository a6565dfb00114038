/**
 * The status bar's text and tooltip for the `backends` setting (status.ts `render`, pure): the
 * backend serving in the text once there is a choice, one tooltip line per backend, and a
 * `pingti/backendChanged` applied to the list.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import * as fakes from "./fakes";

fakes.install();
// Loaded after install(): status.ts imports `vscode` for its StatusBar class.
const status = require("../../src/status") as typeof import("../../src/status");
type BackendStatus = import("../../src/status").BackendStatus;

const GPU: BackendStatus = {
    name: "openai@gpu-box:8000", type: "openai", url: "http://gpu-box:8000/v1", state: "closed", active: true,
    requests: 12, errors: { timeout: 1, connect: 2, http: 0 }, latencyP50S: 0.31, latencyP99S: 1.2,
    ttftP50S: 0.1, tokensPerS: 40.2, lastError: "connection refused",
};
const LOCAL: BackendStatus = { name: "local", type: "local", state: "closed", active: false, requests: 0, errors: {} };
const MODEL = { name: "qwen", backend: "llama.cpp", device: "cpu" };

function ready(backends?: BackendStatus[]) {
    return status.render({ phase: "ready", server: { state: "ready", model: MODEL, backends } });
}

test("the text names the backend serving, and those that are down", () => {
    assert.equal(ready([GPU, LOCAL]).text, "$(sparkle) pingti: gpu-box");
    const failedOver = [{ ...GPU, state: "open" as const, active: false }, { ...LOCAL, active: true }];
    assert.equal(ready(failedOver).text, "$(sparkle) pingti: local (gpu-box down)");
    // A name the user gave is shown as it is; a remote backend alone is worth naming too.
    assert.equal(ready([{ ...GPU, name: "big gpu" }]).text, "$(sparkle) pingti: big gpu");
    // With the latency of the last completion after it.
    const view = status.render({ phase: "ready", server: { state: "ready", backends: [GPU, LOCAL] },
        last: { source: "model", mode: "single_line", totalS: 0.42 } });
    assert.equal(view.text, "$(sparkle) pingti: gpu-box 420 ms");
});

test("no choice of backend: the text is as before", () => {
    assert.equal(ready(undefined).text, "$(sparkle) pingti");
    assert.equal(ready([{ ...LOCAL, active: true }]).text, "$(sparkle) pingti");
    assert.doesNotMatch(ready([{ ...LOCAL, active: true }]).tooltip, /Backends/);
});

test("the tooltip lists each backend: state, p50/p99 latency, requests and errors", () => {
    const tooltip = ready([{ ...GPU, state: "half_open" }, LOCAL]).tooltip;
    assert.match(tooltip, /Backends:/);
    assert.match(tooltip, /\*\*openai@gpu-box:8000\*\* \(serving\) · retrying · p50 310 ms · p99 1\.20 s · 12 requests · errors: connect 2, timeout 1 · last error: connection refused/);
    assert.match(tooltip, /\*\*local\*\* · up · 0 requests(\n|$)/);
    const down = ready([{ ...GPU, state: "open", active: false }, { ...LOCAL, active: true }]).tooltip;
    assert.match(down, /gpu-box:8000\*\* · down/);
    assert.match(down, /\*\*local\*\* \(serving\) · up/);
});

test("the server's figures: cache hit rate, queue, memory", () => {
    const view = status.render({ phase: "ready", server: { state: "ready",
        metrics: { cacheHitRate: 0.31, queueDepth: 0, rssBytes: 123456789 } } });
    assert.match(view.tooltip, /Server: cache hits 31% · queue 0 · memory 118 MiB/);
});

test("shortName: the host of a derived name, a given name as it is", () => {
    assert.equal(status.shortName(GPU), "gpu-box");
    assert.equal(status.shortName({ name: "llama.cpp@10.0.0.5:8080", type: "llama.cpp" }), "10.0.0.5");
    assert.equal(status.shortName({ name: "openai@[::1]:8000", type: "openai" }), "[::1]");
    assert.equal(status.shortName({ name: "local", type: "local" }), "local");
    assert.equal(status.shortName({ name: "my-box", type: "openai" }), "my-box");
});

test("a backendChanged notification moves the state and the serving backend", () => {
    const after = status.applyBackendChange([GPU, LOCAL], {
        backend: "openai@gpu-box:8000", state: "open", active: "local",
        message: "openai@gpu-box:8000 is down (connection refused); answering with local",
    });
    assert.deepEqual(after.map((b) => [b.name, b.state, b.active]),
        [["openai@gpu-box:8000", "open", false], ["local", "closed", true]]);
    assert.equal(after[0].requests, 12, "the figures stay until the next status");
    assert.equal(GPU.state, "closed", "the server's list is not changed in place");
});
