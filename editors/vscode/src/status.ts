/**
 * What the status bar item says: the server's phase (starting, loading the model with its
 * progress, ready, error, stopped), the backend serving when there are several (or a remote
 * one) and, once completions arrive, the last one's latency.
 *
 * `render` is pure (state → text, tooltip, error flag); `StatusBar` puts it on a VS Code status
 * bar item. The model's figures come from the server's `pingti/status` request (server/lsp.py
 * `status`): `{state, version, model: {name, backend, device, quantization, contextWindow},
 * error?, lastCompletion?: {source, mode, candidates, promptTokens, generatedTokens,
 * reusedTokens, prefillS, decodeS, totalS, finish, syntax}, backends?: [...], metrics?: {...}}`.
 * `pingti/backendChanged` (a backend went down or came back) changes the item at once.
 */

import * as vscode from "vscode";

export const STATUS_REQUEST = "pingti/status";
export const BACKEND_CHANGED = "pingti/backendChanged";

/** `lastCompletion` of pingti/status (server/lsp.py `remember_outcome`). */
export interface LastCompletion {
    source: string; // "model" | "cache" | "typed_through"
    mode: string; // "single_line" | "multi_line" | ...
    candidates?: number;
    promptTokens?: number;
    generatedTokens?: number;
    reusedTokens?: number;
    prefillS?: number;
    decodeS?: number;
    totalS: number;
    finish?: string;
}

/** A backend's circuit breaker: closed = up, open = down (skipped), half_open = being retried. */
export type BreakerState = "closed" | "open" | "half_open";

/** One entry of `backends` in pingti/status (the `backends` setting, in its order). */
export interface BackendStatus {
    name: string; // "openai@gpu-box:8000", "local" or the entry's own name
    type: string; // "openai" | "llama.cpp" | "local"
    url?: string | null;
    state: BreakerState;
    active: boolean; // the one serving now
    requests?: number;
    errors?: Record<string, number>; // by kind: timeout, connect, ...
    latencyP50S?: number | null;
    latencyP99S?: number | null;
    ttftP50S?: number | null;
    tokensPerS?: number | null;
    lastError?: string | null;
}

export interface Metrics {
    cacheHitRate?: number;
    queueDepth?: number;
    rssBytes?: number;
}

/** Params of `pingti/backendChanged`: a backend's breaker changed state. */
export interface BackendChange {
    backend: string;
    state: BreakerState;
    active: string; // the backend serving now
    message: string; // for people: "openai@gpu-box:8000 is down (...); answering with local"
}

export interface ServerStatus {
    state: "not_loaded" | "loading" | "ready" | "failed";
    version?: string;
    model?: { name: string; backend: string; device: string; quantization?: string; contextWindow?: number };
    error?: string;
    lastCompletion?: LastCompletion | null;
    backends?: BackendStatus[];
    metrics?: Metrics;
}

export type Phase = "starting" | "loading" | "ready" | "error" | "stopped";

export interface StatusState {
    phase: Phase;
    /** Loading: the progress message; error/stopped: what went wrong. */
    detail?: string;
    percentage?: number;
    server?: ServerStatus;
    last?: LastCompletion;
    /** Round trip of the last inline completion request as the extension saw it. */
    lastRoundTripMs?: number;
}

export interface View {
    text: string;
    tooltip: string; // Markdown
    error: boolean;
}

export function formatSeconds(s: number): string {
    return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(s < 10 ? 2 : 1)} s`;
}

/** Escape text that goes into the Markdown tooltip. */
function md(text: string): string {
    return text.replace(/[\\`*_[\]<>|]/g, "\\$&");
}

/** "openai@gpu-box:8000" → "gpu-box"; a name the user gave stays as it is. */
export function shortName(backend: Pick<BackendStatus, "name" | "type">): string {
    const prefix = `${backend.type}@`;
    return backend.name.startsWith(prefix) ? backend.name.slice(prefix.length).replace(/:\d+$/, "") : backend.name;
}

const STATE_WORDS: Record<string, string> = { closed: "up", open: "down", half_open: "retrying" };

/** The backend part of the item's text ("gpu-box", "local (gpu-box down)"), or undefined when
 * there is nothing to choose from (no `backends` setting, or only the local model). */
export function backendLabel(backends: readonly BackendStatus[] | undefined): string | undefined {
    if (!backends || !(backends.length > 1 || backends.some((b) => b.type !== "local"))) return undefined;
    const active = backends.find((b) => b.active);
    const down = backends.filter((b) => !b.active && b.state === "open").map(shortName);
    const label = active ? shortName(active) : "no backend";
    return down.length > 0 ? `${label} (${down.join(", ")} down)` : label;
}

/** One tooltip line per backend: state, latency percentiles, requests and errors. */
export function backendLines(backends: readonly BackendStatus[]): string[] {
    return backends.map((b) => {
        const parts = [`**${md(b.name)}**${b.active ? " (serving)" : ""}`, STATE_WORDS[b.state] ?? md(b.state)];
        if (typeof b.latencyP50S === "number") parts.push(`p50 ${formatSeconds(b.latencyP50S)}`);
        if (typeof b.latencyP99S === "number") parts.push(`p99 ${formatSeconds(b.latencyP99S)}`);
        if (b.requests !== undefined) parts.push(`${b.requests} requests`);
        const errors = Object.entries(b.errors ?? {}).filter(([, n]) => n > 0).sort(([a], [c]) => a.localeCompare(c));
        if (errors.length > 0) parts.push(`errors: ${errors.map(([kind, n]) => `${md(kind)} ${n}`).join(", ")}`);
        if (b.lastError) parts.push(`last error: ${md(b.lastError)}`);
        return parts.join(" · ");
    });
}

/** The server's list with `change` applied: the changed backend's state, and which one serves. */
export function applyBackendChange(backends: readonly BackendStatus[], change: BackendChange): BackendStatus[] {
    return backends.map((b) => ({
        ...b,
        state: b.name === change.backend ? change.state : b.state,
        active: b.name === change.active,
    }));
}

export function render(state: StatusState): View {
    const model = state.server?.model;
    const lines: string[] = [];
    let text: string;
    let error = false;
    switch (state.phase) {
        case "starting":
            text = "$(loading~spin) pingti";
            lines.push("**pingti**: starting the language server…");
            break;
        case "loading": {
            const pct = state.percentage !== undefined ? ` ${Math.round(state.percentage)}%` : "";
            text = `$(loading~spin) pingti: loading model${pct}`;
            lines.push("**pingti**: loading the model…");
            if (state.detail) lines.push(md(state.detail));
            break;
        }
        case "ready": {
            const last = state.last;
            const latency = last ? ` ${last.source === "model" ? formatSeconds(last.totalS) : "cached"}` : "";
            const backend = backendLabel(state.server?.backends);
            text = `$(sparkle) pingti${backend ? `: ${backend}` : ""}${latency}`;
            lines.push("**pingti**: ready");
            break;
        }
        case "error":
            text = "$(error) pingti";
            error = true;
            lines.push(`**pingti**: ${md(state.detail ?? state.server?.error ?? "error")}`);
            break;
        case "stopped":
            text = "$(circle-slash) pingti";
            error = true;
            lines.push(`**pingti**: the language server is not running${state.detail ? ` (${md(state.detail)})` : ""}`);
            break;
    }
    if (model) {
        lines.push(`Model: ${md(model.name)} · ${md(model.backend)} on ${md(model.device)}` +
            (model.quantization ? ` · ${md(model.quantization)}` : ""));
    }
    const backends = state.server?.backends;
    if (backends && backendLabel(backends) !== undefined) {
        lines.push(["Backends:", ...backendLines(backends)].join("  \n"));
    }
    const metrics = state.server?.metrics;
    if (metrics) {
        const parts: string[] = [];
        if (metrics.cacheHitRate !== undefined) parts.push(`cache hits ${Math.round(metrics.cacheHitRate * 100)}%`);
        if (metrics.queueDepth !== undefined) parts.push(`queue ${metrics.queueDepth}`);
        if (metrics.rssBytes !== undefined) parts.push(`memory ${Math.round(metrics.rssBytes / 2 ** 20)} MiB`);
        if (parts.length > 0) lines.push(`Server: ${parts.join(" · ")}`);
    }
    const last = state.last;
    if (last && state.phase === "ready") {
        const parts = [`${md(last.mode.replace(/_/g, " "))} from ${md(last.source.replace(/_/g, " "))}`,
            `total ${formatSeconds(last.totalS)}`];
        if (last.source === "model") {
            if (last.prefillS !== undefined) parts.push(`prefill ${formatSeconds(last.prefillS)}`);
            if (last.decodeS !== undefined) parts.push(`decode ${formatSeconds(last.decodeS)}`);
            if (last.promptTokens !== undefined) {
                parts.push(`${last.promptTokens} prompt tokens (${last.reusedTokens ?? 0} reused), ` +
                    `${last.generatedTokens ?? 0} generated`);
            }
        }
        lines.push(`Last completion: ${parts.join(" · ")}`);
        if (state.lastRoundTripMs !== undefined) lines.push(`Round trip in the editor: ${state.lastRoundTripMs} ms`);
    }
    if (state.server?.version) lines.push(`pingti-ls ${md(state.server.version)}`);
    lines.push("Click for actions");
    return { text, tooltip: lines.join("\n\n"), error };
}

/** The status bar item, driven by `update` with partial state changes. */
export class StatusBar implements vscode.Disposable {
    private readonly item: vscode.StatusBarItem;
    private current: StatusState = { phase: "starting" };

    constructor(command: string) {
        this.item = vscode.window.createStatusBarItem("pingti.status", vscode.StatusBarAlignment.Right, 100);
        this.item.name = "pingti";
        this.item.command = command;
        this.apply();
        this.item.show();
    }

    get state(): StatusState {
        return this.current;
    }

    update(change: Partial<StatusState>): void {
        this.current = { ...this.current, ...change };
        this.apply();
    }

    /** Take the server's own report (pingti/status). */
    fromServer(status: ServerStatus): void {
        const last = status.lastCompletion ?? this.current.last;
        switch (status.state) {
            case "ready":
                this.update({ phase: "ready", server: status, last: last ?? undefined, detail: undefined, percentage: undefined });
                break;
            case "failed":
                this.update({ phase: "error", server: status, detail: `model not available: ${status.error ?? "unknown error"}` });
                break;
            default: // not_loaded, loading: keep the progress message we may have
                this.update({ phase: "loading", server: status });
        }
    }

    /** A backend went down or came back (pingti/backendChanged): show it before the next status. */
    backendChanged(change: BackendChange): void {
        const server = this.current.server;
        if (!server?.backends) return; // the status asked for next brings the list
        this.update({ server: { ...server, backends: applyBackendChange(server.backends, change) } });
    }

    private apply(): void {
        const view = render(this.current);
        this.item.text = view.text;
        const tooltip = new vscode.MarkdownString(view.tooltip, true);
        this.item.tooltip = tooltip;
        this.item.backgroundColor = view.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    }

    dispose(): void {
        this.item.dispose();
    }
}
