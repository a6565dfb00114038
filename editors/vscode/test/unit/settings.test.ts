/**
 * Settings: the run-time validator agrees with package.json's schema, invalid values become
 * defaults with a message, and the server gets exactly the server's own setting names.
 * (That those names, defaults, enums and ranges are the server's is checked against
 * server/config.py by tests/editors/test_vscode.py.)
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import {
    KEYS, SCHEMA, SERVER_KEYS, expandPath, needsRestart, problem, readSettings, serverCommand,
    serverSettingsChanged,
} from "../../src/settings";

const reader = (values: Record<string, unknown>) => ({ get: (key: string) => values[key] });

test("every default is valid against its own schema", () => {
    for (const [key, schema] of Object.entries(SCHEMA)) {
        assert.equal(problem(schema, schema.default), undefined, key);
    }
});

test("server settings are the server's names; client settings stay in the extension", () => {
    assert.deepEqual([...SERVER_KEYS].sort(), [
        "backend", "backends", "candidates", "candidatesWhen", "constraints", "contextTokens", "debounceMs", "device",
        "logLevel", "maxTokensMultiLine", "maxTokensSingleLine", "model", "prefetch", "quantization",
        "repoContext", "repoContextTokens", "rerank", "rerankEncoder", "sandbox", "temperature",
        "testgenRegressionTests", "testgenTimeBudgetS", "threads",
    ]);
    assert.deepEqual(KEYS.filter((k) => !SERVER_KEYS.includes(k)).sort(),
        ["languages", "server.command", "server.python", "trace.server"]);
});

test("no settings: defaults, no errors, pingti-ls from PATH", () => {
    const { settings, errors } = readSettings(reader({}));
    assert.deepEqual(errors, []);
    assert.deepEqual(settings.command, ["pingti-ls"]);
    assert.equal(settings.commandSource, "default");
    assert.deepEqual(settings.server, {
        model: "default", backend: "auto", quantization: "auto", device: "auto", threads: 0,
        constraints: "syntax", candidates: 4, candidatesWhen: "auto", rerank: "full",
        rerankEncoder: "none", temperature: 0, contextTokens: 768,
        maxTokensSingleLine: 48, maxTokensMultiLine: 160, debounceMs: 150, prefetch: "on", sandbox: "auto",
        testgenTimeBudgetS: 300, testgenRegressionTests: "ask", logLevel: "info", backends: [],
        repoContext: "workspace", repoContextTokens: 512,
    });
    assert.ok(settings.languages.includes("python"));
});

test("valid values pass through, at the bounds too", () => {
    const { settings, errors } = readSettings(reader({
        backend: "llama.cpp", quantization: "nf4", constraints: "off", candidates: 16, temperature: 0.4,
        maxTokensSingleLine: 1, maxTokensMultiLine: 4096, debounceMs: 0, model: "/models/x.gguf",
    }));
    assert.deepEqual(errors, []);
    assert.equal(settings.server.backend, "llama.cpp");
    assert.equal(settings.server.quantization, "nf4");
    assert.equal(settings.server.constraints, "off");
    assert.equal(settings.server.candidates, 16);
    assert.equal(settings.server.temperature, 0.4);
    assert.equal(settings.server.maxTokensSingleLine, 1);
    assert.equal(settings.server.maxTokensMultiLine, 4096);
    assert.equal(settings.server.debounceMs, 0);
    assert.equal(settings.server.model, "/models/x.gguf");
});

test("invalid values are reported and replaced by their defaults; the rest still applies", () => {
    const { settings, errors } = readSettings(reader({
        maxTokensSingleLine: 0, // below the minimum
        maxTokensMultiLine: 12.5, // not an integer
        debounceMs: "fast", // wrong type
        backend: "gpu", // not in the enum
        quantization: "NF4", // enums are exact
        candidates: 17, // above the maximum
        temperature: Number.NaN,
        model: "   ", // empty
        languages: ["python", 3],
        "server.command": 42,
        contextTokens: 1024, // valid
    }));
    const about = (key: string) => errors.filter((e) => e.includes(`"pingti.${key}"`));
    for (const key of ["maxTokensSingleLine", "maxTokensMultiLine", "debounceMs", "backend", "quantization",
        "candidates", "temperature", "model", "languages", "server.command"]) {
        assert.equal(about(key).length, 1, `one message about ${key}: ${errors.join("\n")}`);
    }
    assert.equal(errors.length, 10);
    assert.match(about("maxTokensSingleLine")[0], /between 1 and 1024; using the default 48/);
    assert.match(about("backend")[0], /expected one of "auto", "transformers", "llama.cpp", "fake"/);
    assert.match(about("debounceMs")[0], /expected an integer/);
    assert.equal(settings.server.maxTokensSingleLine, 48);
    assert.equal(settings.server.maxTokensMultiLine, 160);
    assert.equal(settings.server.debounceMs, 150);
    assert.equal(settings.server.backend, "auto");
    assert.equal(settings.server.quantization, "auto");
    assert.equal(settings.server.candidates, 4);
    assert.equal(settings.server.temperature, 0);
    assert.equal(settings.server.model, "default");
    assert.equal(settings.server.contextTokens, 1024);
    assert.ok(settings.languages.includes("python") && settings.languages.length > 1);
    assert.deepEqual(settings.command, ["pingti-ls"]);
});

test("backends: a list of objects, checked entry by entry and sent as it is", () => {
    const backends = [
        { type: "openai", url: "http://gpu-box:8000/v1", model: "qwen2.5-coder-1.5b", apiKeyEnv: "GPU_KEY", timeoutMs: 2000 },
        { type: "local" },
    ];
    const { settings, errors } = readSettings(reader({ backends }));
    assert.deepEqual(errors, []);
    assert.equal(settings.server.backends, backends, "the very value, not a copy or a string");
});

test("backends: an invalid entry is named, the value (it may hold an API key) is not", () => {
    const key = "sk-secret-123";
    const cases: Array<[unknown, RegExp]> = [
        [{ type: "local" }, /expected an array/],
        [["local"], /entry 1: expected an object/],
        [[{ type: "local" }, { url: "http://gpu-box:8000/v1", apiKey: key }], /entry 2: no type/],
        [[{ type: "vllm", apiKey: key }], /entry 1: type must be one of "openai", "llama.cpp", "local"/],
        [[{ type: "openai", url: 8000, apiKey: key }], /entry 1: url must be a string/],
        [[{ type: "openai", timeoutMs: "3000", apiKey: key }], /entry 1: timeoutMs must be an integer/],
        [[{ type: "openai", timeoutMs: 1.5, apiKey: key }], /entry 1: timeoutMs must be an integer/],
        [[{ type: "local", apikey: key, constructor: 1 }], /entry 1: unknown keys apikey, constructor \(known: type, url/],
    ];
    for (const [value, expected] of cases) {
        const { settings, errors } = readSettings(reader({ backends: value }));
        assert.equal(errors.length, 1, JSON.stringify(value));
        assert.match(errors[0], expected);
        assert.match(errors[0], /^Invalid value \(not shown\) for setting "pingti.backends": .*; using the default \[\]\.$/);
        assert.ok(!errors[0].includes(key), errors[0]);
        assert.deepEqual(settings.server.backends, []);
    }
});

test("server command: an array, a string, a Python interpreter, or pingti-ls", () => {
    const env = { home: "/home/u", workspaceFolder: "/ws" };
    assert.deepEqual(serverCommand(["~/pingti/.venv/bin/pingti-ls", "--log-level", "debug"], "", env),
        { command: ["/home/u/pingti/.venv/bin/pingti-ls", "--log-level", "debug"], commandSource: "pingti.server.command" });
    assert.deepEqual(serverCommand("${workspaceFolder}/.venv/bin/pingti-ls", "/usr/bin/python3", env),
        { command: ["/ws/.venv/bin/pingti-ls"], commandSource: "pingti.server.command" });
    assert.deepEqual(serverCommand([], "~/venv/bin/python", env),
        { command: ["/home/u/venv/bin/python", "-m", "server"], commandSource: "pingti.server.python" });
    assert.deepEqual(serverCommand("", "", env), { command: ["pingti-ls"], commandSource: "default" });
});

test("paths in settings: ~ and ${workspaceFolder}", () => {
    const env = { home: "/home/u", workspaceFolder: "/ws" };
    assert.equal(expandPath("~/m.gguf", env), "/home/u/m.gguf");
    assert.equal(expandPath("${workspaceFolder}/models/m.gguf", env), "/ws/models/m.gguf");
    assert.equal(expandPath("/abs/m.gguf", env), "/abs/m.gguf");
    const { settings } = readSettings(reader({ model: "~/m.gguf" }), env);
    assert.equal(settings.server.model, "/home/u/m.gguf");
});

test("which changes restart the server and which are sent to it", () => {
    const base = readSettings(reader({})).settings;
    const tokens = readSettings(reader({ maxTokensSingleLine: 20 })).settings;
    const command = readSettings(reader({ "server.command": ["/x/pingti-ls"] })).settings;
    const langs = readSettings(reader({ languages: ["python"] })).settings;
    assert.equal(needsRestart(base, tokens), false);
    assert.equal(serverSettingsChanged(base, tokens), true);
    assert.equal(needsRestart(base, command), true);
    assert.equal(needsRestart(base, langs), true);
    assert.equal(serverSettingsChanged(base, command), false);
});
