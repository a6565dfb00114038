/**
 * What the status bar item says: the server's phase (starting, loading the model with its
 * progress, ready, error, stopped) and, once completions arrive, the last one's latency.
 *
 * `render` is pure (state → text, tooltip, error flag); `StatusBar` puts it on a VS Code status
 * bar item. The model's figures come from the server's `pingti/status` request (server/lsp.py
 * `status`): `{state, version, model: {name, backend, device, quantization, contextWindow},
 * error?, lastCompletion?: {source, mode, candidates, promptTokens, generatedTokens,
 * reusedTokens, prefillS, decodeS, totalS, finish, syntax}}`.
 */

import * as vscode from "vscode";

export const STATUS_REQUEST = "pingti/status";

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

export interface ServerStatus {
    state: "not_loaded" | "loading" | "ready" | "failed";
    version?: string;
    model?: { name: string; backend: string; device: string; quantization?: string; contextWindow?: number };
    error?: string;
    lastCompletion?: LastCompletion | null;
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
            text = `$(sparkle) pingti${latency}`;
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
