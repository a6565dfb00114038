/**
 * The real `pingti-ls` (the repository's .venv, or $PINGTI_LS) over stdio, driven with the same
 * protocol library vscode-languageclient is built on, sending what the extension sends: its
 * default settings as initializationOptions (with the deterministic `fake` backend, so no model
 * is needed), a settings change, the requests behind ghost text, the palette's code action
 * request and the status bar's `pingti/status`.
 */

import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { after, before, test } from "node:test";
import {
    CodeActionRequest, CodeActionTriggerKind, DidChangeConfigurationNotification, DidOpenTextDocumentNotification,
    ExitNotification, InitializedNotification, InitializeRequest, type InitializeResult, InlineCompletionRequest,
    InlineCompletionTriggerKind, type ProtocolConnection, ShowMessageNotification, type ShowMessageParams,
    ShutdownRequest, StreamMessageReader, StreamMessageWriter, WorkDoneProgress, WorkDoneProgressCreateRequest,
    createProtocolConnection,
} from "vscode-languageserver-protocol/node";
import { readSettings } from "../../src/settings";
import type { ServerStatus } from "../../src/status";

// out/test/protocol → the extension's folder → the repository.
const EXTENSION = path.resolve(__dirname, "..", "..", "..");
const SERVER = process.env.PINGTI_LS ?? path.resolve(EXTENSION, "..", "..", ".venv", "bin", "pingti-ls");
const TIMEOUT = 30_000;

const SAMPLE = [
    "def add(a, b):",
    "    return a + b",
    "",
    "",
    "def add_three(a, b, c):",
    "    return a",
    "",
].join("\n");
// The fake backend copies what followed the longest earlier match of the text before the cursor
// (server/backends/fake.py): at the end of the last line, "):\n    return a" matched in `add`,
// so it suggests " + b" (up to the end of the line).

let proc: ChildProcessWithoutNullStreams;
let conn: ProtocolConnection;
let init: InitializeResult;
let stderr = "";
const messages: ShowMessageParams[] = [];
const progress = new Map<string | number, Array<{ kind: string; title?: string; message?: string }>>();
let workspace: string;
let uri: string;

function waitFor<T>(what: string, probe: () => T | undefined | false, ms = TIMEOUT): Promise<T> {
    const deadline = Date.now() + ms;
    return new Promise((resolve, reject) => {
        const tick = () => {
            const value = probe();
            if (value) return resolve(value);
            if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}\nserver stderr:\n${stderr}`));
            setTimeout(tick, 20);
        };
        tick();
    });
}

function withTimeout<T>(what: string, promise: Promise<T>, ms = TIMEOUT): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
        promise.finally(() => clearTimeout(timer)),
        new Promise<T>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out: ${what}\nserver stderr:\n${stderr}`)), ms);
        }),
    ]);
}

const status = (params: object = {}) => withTimeout("pingti/status", conn.sendRequest<ServerStatus>("pingti/status", params));

function inline(line: number, character: number) {
    return withTimeout("inlineCompletion", conn.sendRequest(InlineCompletionRequest.type, {
        textDocument: { uri }, position: { line, character },
        context: { triggerKind: InlineCompletionTriggerKind.Invoked, selectedCompletionInfo: undefined },
    }));
}

before(async () => {
    assert.ok(existsSync(SERVER), `no pingti-ls at ${SERVER}: run scripts/test.sh (or scripts/run.sh) at the ` +
        "repository root once to create .venv, or set PINGTI_LS");
    workspace = mkdtempSync(path.join(tmpdir(), "pingti-vscode-protocol-"));
    const file = path.join(workspace, "sample.py");
    writeFileSync(file, SAMPLE);
    uri = pathToFileURL(file).toString();

    proc = spawn(SERVER, ["--log-level", "debug"], { env: { ...process.env, PYTHONUNBUFFERED: "1" } });
    proc.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    conn = createProtocolConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
    conn.onNotification(ShowMessageNotification.type, (m) => { messages.push(m); });
    conn.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
        progress.set(token, []);
        conn.onProgress(WorkDoneProgress.type, token, (v) => { progress.get(token)?.push(v); });
    });
    conn.listen();

    // What the extension sends by default, with the model-free backend.
    const { settings, errors } = readSettings({ get: () => undefined });
    assert.deepEqual(errors, []);
    init = await withTimeout("initialize", conn.sendRequest(InitializeRequest.type, {
        processId: process.pid,
        clientInfo: { name: "pingti-vscode protocol test" },
        rootUri: pathToFileURL(workspace).toString(),
        workspaceFolders: [{ uri: pathToFileURL(workspace).toString(), name: "ws" }],
        capabilities: {
            window: { workDoneProgress: true },
            workspace: { applyEdit: true, workspaceEdit: { documentChanges: true, resourceOperations: ["create"] } },
            textDocument: {
                inlineCompletion: { dynamicRegistration: true },
                codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ["source"] } } },
                synchronization: { dynamicRegistration: true },
            },
        },
        initializationOptions: { ...settings.server, backend: "fake" },
    }));
    await conn.sendNotification(InitializedNotification.type, {});
    await conn.sendNotification(DidOpenTextDocumentNotification.type, {
        textDocument: { uri, languageId: "python", version: 1, text: SAMPLE },
    });
});

after(async () => {
    if (proc && proc.exitCode === null) proc.kill();
    conn?.dispose();
    if (workspace) rmSync(workspace, { recursive: true, force: true });
});

test("initialize: the capabilities the extension relies on", () => {
    const caps = init.capabilities;
    assert.equal(init.serverInfo?.name, "pingti-ls");
    assert.ok(caps.inlineCompletionProvider, "inline completions (ghost text)");
    assert.ok(caps.completionProvider, "completion items");
    assert.ok(caps.textDocumentSync, "document sync");
    const codeActions = caps.codeActionProvider;
    assert.ok(codeActions && typeof codeActions === "object" &&
        codeActions.codeActionKinds?.includes("source.generateTests"), JSON.stringify(codeActions));
    assert.ok(caps.executeCommandProvider?.commands.includes("pingti.generateTests"),
        "the client registers the pingti.generateTests command from this list");
});

test("the model loads with work-done progress and pingti/status reports ready", { timeout: TIMEOUT }, async () => {
    const load = await waitFor("the model-loading progress to end", () =>
        [...progress.values()].find((vs) => vs[0]?.title?.match(/loading model/) && vs.at(-1)?.kind === "end"));
    assert.equal(load[0].kind, "begin");
    const st = await status();
    assert.equal(st.state, "ready", JSON.stringify(st));
    assert.equal(st.model?.backend, "fake");
    assert.equal(typeof st.version, "string");
    // The extension's default settings were all accepted: no "Invalid value"/"Unknown setting".
    assert.deepEqual(messages.filter((m) => m.type <= 2), []);
});

test("inlineCompletion returns the suggestion as an item at the cursor", { timeout: TIMEOUT }, async () => {
    const result = await inline(5, 12);
    assert.ok(result && "items" in result, JSON.stringify(result));
    assert.ok(result.items.length >= 1, JSON.stringify(result));
    const item = result.items[0];
    assert.equal(typeof item.insertText, "string");
    assert.equal(item.insertText, " + b");
    assert.deepEqual(item.range, { start: { line: 5, character: 12 }, end: { line: 5, character: 12 } });
    const st = await status({ uri });
    assert.equal(st.lastCompletion?.source, "model");
    assert.equal(typeof st.lastCompletion?.totalS, "number");
    assert.ok(st.lastCompletion!.totalS >= 0);
    assert.equal(typeof st.lastCompletion?.promptTokens, "number");
    const other = await status({ uri: "file:///nowhere.py" });
    assert.equal(other.lastCompletion, null);
});

test("pingti/focus as the extension sends it starts a prefetch", { timeout: TIMEOUT }, async () => {
    // What focus.ts sends (it imports vscode, so it cannot be loaded here).
    type Prefetch = { batching?: { prefetch?: { requested: number } } };
    const requested = async () => ((await status()) as Prefetch).batching?.prefetch?.requested ?? 0;
    const before = await requested();
    await conn.sendNotification("pingti/focus", { textDocument: { uri }, position: { line: 5, character: 12 } });
    const deadline = Date.now() + TIMEOUT;
    while (await requested() <= before) {
        assert.ok(Date.now() < deadline, "the server took no prefetch");
        await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal((await status()).state, "ready");
    assert.deepEqual(messages.filter((m) => m.type <= 2), []);
});

test("a settings change reaches the server (maxTokensSingleLine, constraints)", { timeout: TIMEOUT }, async () => {
    // Two tokens of the fake model are two characters: " +". With the syntax constraint on, a
    // suggestion that leaves `return a +` broken is cut back (to whitespace, i.e. nothing).
    const values: Record<string, unknown> = { maxTokensSingleLine: 2, constraints: "off" };
    const { settings } = readSettings({ get: (k: string) => values[k] });
    await conn.sendNotification(DidChangeConfigurationNotification.type, { settings: { ...settings.server, backend: "fake" } });
    const result = await inline(5, 12);
    assert.ok(result && "items" in result);
    assert.equal(result.items[0]?.insertText, " +");
    assert.deepEqual(messages.filter((m) => m.type <= 2), []);
});

test("codeAction at a def offers Generate tests with the command the palette runs", { timeout: TIMEOUT }, async () => {
    const actions = await withTimeout("codeAction", conn.sendRequest(CodeActionRequest.type, {
        textDocument: { uri }, range: { start: { line: 4, character: 6 }, end: { line: 4, character: 6 } },
        context: { diagnostics: [], only: ["source.generateTests"], triggerKind: CodeActionTriggerKind.Invoked },
    }));
    assert.ok(actions && actions.length === 1, JSON.stringify(actions));
    const action = actions[0];
    assert.ok("kind" in action);
    assert.equal(action.title, "Generate tests for add_three");
    assert.equal(action.kind, "source.generateTests");
    assert.equal(action.command?.command, "pingti.generateTests");
    assert.deepEqual(action.command?.arguments, [uri, { line: 4, character: 6 }]);
    // Not on a def: nothing.
    const none = await conn.sendRequest(CodeActionRequest.type, {
        textDocument: { uri }, range: { start: { line: 2, character: 0 }, end: { line: 2, character: 0 } },
        context: { diagnostics: [], only: ["source.generateTests"] },
    });
    assert.deepEqual(none, []);
});

test("shutdown and exit end the server cleanly", { timeout: TIMEOUT }, async () => {
    await withTimeout("shutdown", conn.sendRequest(ShutdownRequest.type));
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    await conn.sendNotification(ExitNotification.type);
    assert.equal(await withTimeout("exit", exited), 0);
});
