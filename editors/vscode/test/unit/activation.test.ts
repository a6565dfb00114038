/**
 * Activation and the extension's behaviour, with `vscode` and the language client replaced by
 * recording fakes (fakes.ts): what server is started and with which options, what is sent when
 * settings change, what the status bar says through loading, completions and failures, and how
 * "Generate tests" from the palette finds its code action.
 */

import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import {
    CodeActionRequest, DidChangeConfigurationNotification, WorkDoneProgressCancelNotification,
} from "vscode-languageserver-protocol";
import * as fakes from "./fakes";

fakes.install();
// Loaded after install(): its `require("vscode")` must see the fake.
const ext = require("../../src/extension") as typeof import("../../src/extension");
const { FakeLanguageClient: Client, State, state, statusItem } = fakes;

const READY = {
    state: "ready", version: "0.1.0",
    model: { name: "fake (tests only)", backend: "fake", device: "cpu", quantization: "none", contextWindow: 2048 },
};

function context() {
    return { subscriptions: [] as Array<{ dispose(): unknown }> };
}

async function activate(settings: Record<string, unknown> = {}) {
    state.settings = settings;
    const ctx = context();
    const api = await ext.activate(ctx as never);
    return { api, ctx, client: Client.last };
}

beforeEach(async () => {
    await ext.deactivate();
    fakes.reset();
    Client.responses.set("pingti/status", { state: "loading", version: "0.1.0" });
});

test("activation starts pingti-ls with the validated settings as initializationOptions", async () => {
    const { api, ctx, client } = await activate({ backend: "fake", maxTokensSingleLine: 20 });
    assert.equal(Client.instances.length, 1);
    assert.equal(client.id, "pingti");
    // No `transport`: vscode-languageclient would append --stdio, which pingti-ls refuses.
    assert.deepEqual(client.serverOptions, {
        command: "pingti-ls", args: [], options: { cwd: undefined, env: { ...process.env } },
    });
    const opts = client.clientOptions;
    assert.deepEqual(opts.documentSelector.filter((s: { scheme: string }) => s.scheme === "file")
        .map((s: { language: string }) => s.language),
    ["python", "javascript", "javascriptreact", "typescript", "typescriptreact", "go", "rust", "java", "c", "cpp"]);
    assert.ok(opts.documentSelector.some((s: { scheme: string }) => s.scheme === "untitled"));
    assert.equal(opts.initializationOptions.backend, "fake");
    assert.equal(opts.initializationOptions.maxTokensSingleLine, 20);
    assert.equal(opts.initializationOptions.debounceMs, 150);
    assert.equal(opts.outputChannel.name, "pingti");
    assert.equal(typeof opts.stdioOptions.stderr, "function", "server logs at their own level");
    assert.equal(typeof opts.middleware.provideInlineCompletionItems, "function");
    assert.equal(typeof opts.middleware.executeCommand, "function");
    // Our own commands; pingti.generateTests is registered by the client from the server's
    // executeCommandProvider (registering it here too would make the client fail).
    assert.deepEqual([...state.commands.keys()].sort(),
        ["pingti.restartServer", "pingti.showOutput", "pingti.showStatus"]);
    assert.equal(client.state, State.Running);
    // The progress handler replaced the built-in one and advertises workDoneProgress.
    assert.ok(client.requestHandlers.has("window/workDoneProgress/create"));
    assert.deepEqual(client.capabilities.window, { workDoneProgress: true });
    // It asked for the status at once; the model is loading.
    assert.equal(client.requests[0].method, "pingti/status");
    assert.match(statusItem().text, /loading model/);
    assert.equal(statusItem().command, "pingti.showStatus");
    assert.ok(statusItem().visible);
    assert.equal(state.messages.length, 0);
    assert.equal(ctx.subscriptions[0], api);
});

test("server command from settings: array, string, or python -m server", async () => {
    state.workspaceFolders = [{ uri: { fsPath: "/ws" } }];
    await activate({ "server.command": ["${workspaceFolder}/.venv/bin/pingti-ls", "--log-level", "debug"] });
    assert.deepEqual(Client.last.serverOptions, {
        command: "/ws/.venv/bin/pingti-ls", args: ["--log-level", "debug"],
        options: { cwd: "/ws", env: { ...process.env } },
    });
    await ext.deactivate();
    fakes.reset();
    Client.responses.set("pingti/status", READY);
    await activate({ "server.python": "/opt/venv/bin/python" });
    const opts = Client.last.serverOptions as { command: string; args: string[] };
    assert.equal(opts.command, "/opt/venv/bin/python");
    assert.deepEqual(opts.args, ["-m", "server"]);
});

test("invalid settings: a warning each, defaults sent instead", async () => {
    const { client } = await activate({ maxTokensSingleLine: 0, backend: "gpu", debounceMs: "fast", candidates: 2 });
    const warnings = state.messages.filter((m) => m.level === "warning");
    assert.equal(warnings.length, 3, JSON.stringify(warnings));
    assert.ok(warnings.every((w) => w.text.startsWith("pingti: Invalid value") && w.items.includes("Open Settings")));
    assert.ok(warnings.some((w) => w.text.includes('"pingti.maxTokensSingleLine"')));
    const init = client.clientOptions.initializationOptions;
    assert.equal(init.maxTokensSingleLine, 48);
    assert.equal(init.backend, "auto");
    assert.equal(init.debounceMs, 150);
    assert.equal(init.candidates, 2);
    // The same invalid value is not reported again on an unrelated change.
    await fakes.changeSettings({ maxTokensSingleLine: 0, backend: "gpu", debounceMs: "fast", candidates: 3 });
    assert.equal(state.messages.filter((m) => m.level === "warning").length, 3);
});

test("a server setting change is sent to the running server; a command change restarts it", async () => {
    const { client } = await activate({ backend: "fake" });
    await fakes.changeSettings({ backend: "fake", maxTokensMultiLine: 64, constraints: "off" });
    assert.equal(Client.instances.length, 1, "no restart for a server setting");
    const sent = client.notifications.filter((n) => n.method === DidChangeConfigurationNotification.method);
    assert.equal(sent.length, 1);
    const settings = (sent[0].params as { settings: Record<string, unknown> }).settings;
    assert.equal(settings.maxTokensMultiLine, 64);
    assert.equal(settings.constraints, "off");
    assert.equal(settings.backend, "fake");
    // An invalid change is reported and sends the default.
    await fakes.changeSettings({ backend: "fake", maxTokensMultiLine: -1, constraints: "off" });
    const last = client.notifications.at(-1)?.params as { settings: Record<string, unknown> };
    assert.equal(last.settings.maxTokensMultiLine, 160);
    assert.equal(state.messages.filter((m) => m.level === "warning").length, 1);
    // Changing how the server starts needs a new process.
    await fakes.changeSettings({ backend: "fake", "server.command": "/other/pingti-ls" });
    assert.equal(Client.instances.length, 2);
    assert.ok(client.disposed);
    assert.equal(Client.last.state, State.Running);
    assert.equal((Client.last.serverOptions as { command: string }).command, "/other/pingti-ls");
    assert.doesNotMatch(statusItem().text, /circle-slash/, "a deliberate restart is not shown as a crash");
});

test("status bar: loading progress, then ready with the last completion's latency", async () => {
    const { client } = await activate();
    client.progress("load-1", { kind: "begin", title: "pingti: loading model", message: "default" });
    assert.match(statusItem().text, /^\$\(loading~spin\) pingti: loading model$/);
    assert.match(String((statusItem().tooltip as { value: string }).value), /default/);
    client.progress("load-1", { kind: "report", message: "verifying checksum", percentage: 40 });
    assert.equal(statusItem().text, "$(loading~spin) pingti: loading model 40%");
    Client.responses.set("pingti/status", READY);
    client.progress("load-1", { kind: "end", message: "ready" });
    await fakes.settle();
    assert.equal(statusItem().text, "$(sparkle) pingti");
    assert.match((statusItem().tooltip as { value: string }).value, /fake \(tests only\) · fake on cpu/);
    assert.equal(state.progress.length, 0, "loading is shown in our item, not as a second progress");

    // An inline completion goes through the middleware, which then asks for its figures.
    Client.responses.set("pingti/status", (params: { uri?: string }) => ({
        ...READY,
        lastCompletion: params.uri === "file:///w/a.py" ? {
            source: "model", mode: "single_line", candidates: 1, promptTokens: 120, generatedTokens: 7,
            reusedTokens: 100, prefillS: 0.05, decodeS: 0.37, totalS: 0.42, finish: "stop",
        } : null,
    }));
    const items = [{ insertText: "return a + b" }];
    const doc = { uri: { toString: () => "file:///w/a.py" } };
    const result = await client.clientOptions.middleware.provideInlineCompletionItems(
        doc, { line: 1, character: 4 }, {}, { isCancellationRequested: false }, async () => items);
    assert.equal(result, items, "the items are passed through unchanged");
    await fakes.settle();
    assert.deepEqual(client.requests.at(-1), { method: "pingti/status", params: { uri: "file:///w/a.py" } });
    assert.equal(statusItem().text, "$(sparkle) pingti 420 ms");
    const tooltip = (statusItem().tooltip as { value: string }).value;
    assert.match(tooltip, /single line from model/);
    assert.match(tooltip, /prefill 50 ms · decode 370 ms/);
    assert.match(tooltip, /120 prompt tokens \(100 reused\), 7 generated/);
    assert.equal(statusItem().backgroundColor, undefined);
});

test("status bar: a model that failed to load, a crash and restart, a server that cannot start", async () => {
    Client.responses.set("pingti/status", { state: "failed", version: "0.1.0", error: "checksum mismatch" });
    const { client } = await activate();
    assert.equal(statusItem().text, "$(error) pingti");
    assert.match((statusItem().tooltip as { value: string }).value, /checksum mismatch/);
    assert.ok(statusItem().backgroundColor);

    client.setState(State.Stopped);
    assert.equal(statusItem().text, "$(circle-slash) pingti");
    // The client restarts a crashed server by itself; the item follows.
    Client.responses.set("pingti/status", READY);
    client.setState(State.Starting);
    assert.equal(statusItem().text, "$(loading~spin) pingti");
    client.setState(State.Running);
    await fakes.settle();
    assert.equal(statusItem().text, "$(sparkle) pingti");
    assert.equal(statusItem().backgroundColor, undefined);

    await ext.deactivate();
    fakes.reset();
    Client.startError = new Error("Launching server using command pingti-ls failed. Error: spawn pingti-ls ENOENT");
    await activate();
    assert.equal(statusItem().text, "$(error) pingti");
    const error = state.messages.find((m) => m.level === "error");
    assert.ok(error, "an error message");
    assert.match(error.text, /could not start the language server "pingti-ls".*ENOENT.*pingti\.server\.command/);
    assert.ok(state.logs.some((l) => l.level === "error" && l.text.includes("ENOENT")));
});

test("status bar: the status is asked again while the model loads, also after a failed request", async () => {
    let calls = 0;
    Client.responses.set("pingti/status", () => {
        calls += 1;
        if (calls === 1) throw new Error("connection hiccup");
        return calls === 2 ? { state: "loading", version: "0.1.0" } : READY;
    });
    const { client } = await activate(); // no progress from the server at all
    assert.match(statusItem().text, /^\$\(loading~spin\) pingti/);
    const deadline = Date.now() + 5000;
    while (statusItem().text !== "$(sparkle) pingti" && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(statusItem().text, "$(sparkle) pingti");
    assert.equal(calls, 3);
    assert.equal(client.requests.filter((r) => r.method === "pingti/status").length, 3);
    assert.equal(state.logs.filter((l) => l.level === "warn" && l.text.includes("connection hiccup")).length, 1);
    assert.ok(state.logs.some((l) => l.level === "info" && l.text.startsWith("model ready: fake (tests only)")));
});

test("status bar: the backend serving, and pingti/backendChanged shown at once and logged", async () => {
    const gpu = { name: "openai@gpu-box:8000", type: "openai", url: "http://gpu-box:8000/v1", state: "closed",
        active: true, requests: 12, errors: { timeout: 1 }, latencyP50S: 0.31, latencyP99S: 1.2, lastError: null };
    const local = { name: "local", type: "local", state: "closed", active: false, requests: 0, errors: {} };
    Client.responses.set("pingti/status", { ...READY, backends: [gpu, local] });
    const { client } = await activate({ backends: [{ type: "openai", url: "http://gpu-box:8000/v1" }, { type: "local" }] });
    assert.deepEqual(client.clientOptions.initializationOptions.backends,
        [{ type: "openai", url: "http://gpu-box:8000/v1" }, { type: "local" }]);
    assert.equal(statusItem().text, "$(sparkle) pingti: gpu-box");
    assert.match((statusItem().tooltip as { value: string }).value,
        /\*\*openai@gpu-box:8000\*\* \(serving\) · up · p50 310 ms · p99 1\.20 s · 12 requests · errors: timeout 1/);

    // The server's next answer is slow: the notification alone changes the item.
    let answer: (value: unknown) => void = () => undefined;
    Client.responses.set("pingti/status", () => new Promise((resolve) => { answer = resolve; }));
    const asked = client.requests.length;
    client.serverNotifies("pingti/backendChanged", { backend: "openai@gpu-box:8000", state: "open", active: "local",
        message: "openai@gpu-box:8000 is down (connection refused); answering with local" });
    assert.equal(statusItem().text, "$(sparkle) pingti: local (gpu-box down)");
    assert.ok(state.logs.some((l) => l.level === "warn" && l.text.startsWith("openai@gpu-box:8000 is down")));
    assert.equal(state.messages.length, 0, "no popup");
    await fakes.settle();
    assert.equal(client.requests.length, asked + 1, "then the figures are asked for");
    answer({ ...READY, backends: [{ ...gpu, state: "open", active: false, errors: { timeout: 1, connect: 1 } },
        { ...local, active: true }] });
    await fakes.settle();
    await fakes.settle();
    assert.match((statusItem().tooltip as { value: string }).value, /errors: connect 1, timeout 1/);

    // Back up: logged as information.
    Client.responses.set("pingti/status", { ...READY, backends: [gpu, local] });
    client.serverNotifies("pingti/backendChanged", { backend: "openai@gpu-box:8000", state: "closed",
        active: "openai@gpu-box:8000", message: "openai@gpu-box:8000 is back" });
    assert.equal(statusItem().text, "$(sparkle) pingti: gpu-box");
    assert.ok(state.logs.some((l) => l.level === "info" && l.text === "openai@gpu-box:8000 is back"));
    assert.equal(state.messages.length, 0);
});

test("a cancellable server progress (Generate tests) is a notification with a working cancel", async () => {
    Client.responses.set("pingti/status", READY);
    const { client } = await activate();
    client.progress("tg-1", { kind: "begin", title: "pingti: generating tests", cancellable: true, percentage: 0 });
    await fakes.settle();
    assert.equal(state.progress.length, 1);
    const p = state.progress[0];
    assert.deepEqual(p.options, { location: 15, title: "pingti: generating tests", cancellable: true });
    client.progress("tg-1", { kind: "report", message: "running tests", percentage: 30 });
    client.progress("tg-1", { kind: "report", message: "coverage", percentage: 70 });
    assert.deepEqual(p.reports.map((r) => r.increment), [0, 30, 40]);
    p.cancel();
    assert.deepEqual(client.notifications.at(-1),
        { method: WorkDoneProgressCancelNotification.method, params: { token: "tg-1" } });
    client.progress("tg-1", { kind: "end", message: "cancelled" });
    await p.done; // the notification closes
    assert.equal(client.progressHandlers.size, 0);
    assert.equal(statusItem().text, "$(sparkle) pingti", "the status bar is not about test generation");
});

test("Generate tests from the palette runs the server's code action at the cursor", async () => {
    Client.responses.set("pingti/status", READY);
    const { client } = await activate();
    const executeCommand = client.clientOptions.middleware.executeCommand;
    const calls: Array<[string, unknown[]]> = [];
    const next = async (command: string, args: unknown[]) => { calls.push([command, args]); return { ok: true }; };

    // From a code action: arguments given, passed straight through.
    const args = ["file:///w/a.py", { line: 3, character: 4 }];
    assert.deepEqual(await executeCommand("pingti.generateTests", args, next), { ok: true });
    assert.deepEqual(calls, [["pingti.generateTests", args]]);

    // From the palette: no arguments; the code action at the cursor supplies them.
    state.activeTextEditor = {
        document: { uri: { toString: () => "file:///w/a.py" }, languageId: "python" },
        selection: { active: { line: 7, character: 2 } },
    };
    const action = { title: "Generate tests for add", kind: "source.generateTests",
        command: { title: "Generate tests for add", command: "pingti.generateTests",
            arguments: ["file:///w/a.py", { line: 7, character: 2 }] } };
    Client.responses.set(CodeActionRequest.method, [action]);
    calls.length = 0;
    await executeCommand("pingti.generateTests", [], next);
    assert.deepEqual(client.requests.at(-1), { method: CodeActionRequest.method, params: {
        textDocument: { uri: "file:///w/a.py" },
        range: { start: { line: 7, character: 2 }, end: { line: 7, character: 2 } },
        context: { diagnostics: [], only: ["source.generateTests"], triggerKind: 1 },
    } });
    assert.deepEqual(calls, [["pingti.generateTests", ["file:///w/a.py", { line: 7, character: 2 }]]]);

    // No def or class at the cursor: a message, nothing run.
    Client.responses.set(CodeActionRequest.method, []);
    calls.length = 0;
    await executeCommand("pingti.generateTests", [], next);
    assert.deepEqual(calls, []);
    assert.match(state.messages.at(-1)?.text ?? "", /no function or class at the cursor/);

    // No editor at all.
    state.activeTextEditor = undefined;
    await executeCommand("pingti.generateTests", [], next);
    assert.deepEqual(calls, []);
    assert.match(state.messages.at(-1)?.text ?? "", /open a Python file/);

    // Other server commands are untouched.
    await executeCommand("other.command", [], next);
    assert.deepEqual(calls, [["other.command", []]]);
});

test("restart command and deactivate stop the client", async () => {
    Client.responses.set("pingti/status", READY);
    const { client } = await activate();
    await state.commands.get("pingti.restartServer")?.();
    assert.ok(client.disposed);
    assert.equal(Client.instances.length, 2);
    assert.equal(Client.last.state, State.Running);
    await ext.deactivate();
    assert.ok(Client.last.disposed);
});
