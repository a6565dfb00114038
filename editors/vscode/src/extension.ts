/**
 * pingti for VS Code: starts `pingti-ls` and connects it through vscode-languageclient.
 *
 * What the client library does on its own, once the server advertises it: inline completions
 * (`textDocument/inlineCompletion`, shown as ghost text; several items are cycled with
 * Alt+] / Alt+[), completion items, the "Generate tests for …" code action and the
 * `pingti.generateTests` command it runs, messages and logs.
 *
 * What this module adds: settings validated before they reach the server (settings.ts) and sent
 * as initializationOptions and on every change; a status bar item with the model's state, the
 * backend serving and the last completion's latency (status.ts, fed by `pingti/status`, by the
 * model-loading progress, progress.ts, and by `pingti/backendChanged` when a backend goes down
 * or comes back, which is also logged); "Generate tests" from the palette (generateTests.ts);
 * `pingti/focus` when the user moves to a file or another part of one, so the server
 * prefetches (focus.ts); restart and log commands.
 */

import * as vscode from "vscode";
import {
    CancellationTokenSource,
    DidChangeConfigurationNotification,
    type DocumentSelector,
    LanguageClient,
    type LanguageClientOptions,
    type ServerOptions,
    State,
} from "vscode-languageclient/node";
import { registerFocus } from "./focus";
import { executeCommandMiddleware } from "./generateTests";
import { ProgressFeature } from "./progress";
import { pipeServerLog } from "./serverLog";
import { readSettings, SECTION, type Settings, needsRestart, serverSettingsChanged } from "./settings";
import { BACKEND_CHANGED, type BackendChange, STATUS_REQUEST, type ServerStatus, StatusBar } from "./status";

export const COMMANDS = {
    restart: "pingti.restartServer",
    showOutput: "pingti.showOutput",
    showStatus: "pingti.showStatus",
} as const;

/** While the model loads, how often pingti/status is asked (progress usually arrives first). */
const LOADING_POLL_MS = 1000;
/** pingti/status is answered on the server's event loop, in milliseconds; this is a safety net. */
const STATUS_TIMEOUT_MS = 5000;

export function documentSelector(languages: readonly string[]): DocumentSelector {
    return languages.flatMap((language) => [
        { scheme: "file", language },
        { scheme: "untitled", language },
    ]);
}

export function serverOptions(settings: Settings, cwd: string | undefined): ServerOptions {
    const [command, ...args] = settings.command;
    // NOTE: no `transport`: with TransportKind.stdio the client appends `--stdio` to the
    // arguments, which pingti-ls before 2026-11-29 rejected (stdio is its default), and a
    // user's own command may not take it. Without one it talks over the process'
    // stdin/stdout all the same.
    return { command, args, options: { cwd, env: { ...process.env } } };
}

export class PingtiExtension implements vscode.Disposable {
    readonly output: vscode.LogOutputChannel;
    readonly status: StatusBar;
    client: LanguageClient | undefined;
    settings: Settings;
    private reportedErrors = new Set<string>();
    private pollTimer: ReturnType<typeof setTimeout> | undefined;
    private refreshing: Promise<void> | undefined;
    private refreshAgain = false;
    private statusFailures = 0;
    private lastUri: string | undefined;
    private stopping = false;
    private readonly disposables: vscode.Disposable[] = [];
    private readonly focus: ReturnType<typeof registerFocus>;

    constructor() {
        this.output = vscode.window.createOutputChannel("pingti", { log: true });
        this.status = new StatusBar(COMMANDS.showStatus);
        this.settings = this.readSettings();
        this.focus = registerFocus(() => this.client,
            (document) => this.settings.languages.includes(document.languageId)
                && ["file", "untitled"].includes(document.uri.scheme));
        this.disposables.push(
            this.output,
            this.status,
            this.focus,
            vscode.commands.registerCommand(COMMANDS.restart, () => this.restart()),
            vscode.commands.registerCommand(COMMANDS.showOutput, () => this.output.show(true)),
            vscode.commands.registerCommand(COMMANDS.showStatus, () => this.showStatusMenu()),
            vscode.workspace.onDidChangeConfiguration((e) => {
                if (e.affectsConfiguration(SECTION)) void this.onConfigurationChanged();
            }),
        );
    }

    private readSettings(): Settings {
        const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        const { settings, errors } = readSettings(vscode.workspace.getConfiguration(SECTION),
            { workspaceFolder: folder });
        const fresh = errors.filter((e) => !this.reportedErrors.has(e));
        this.reportedErrors = new Set(errors);
        for (const error of fresh) {
            this.output.warn(error);
            void vscode.window.showWarningMessage(`pingti: ${error}`, "Open Settings").then((choice) => {
                if (choice) void vscode.commands.executeCommand("workbench.action.openSettings", SECTION);
            });
        }
        return settings;
    }

    private clientOptions(): LanguageClientOptions {
        return {
            documentSelector: documentSelector(this.settings.languages),
            initializationOptions: this.settings.server,
            outputChannel: this.output,
            stdioOptions: {
                stdout: (input, channel) => pipeServerLog(input, channel),
                stderr: (input, channel) => pipeServerLog(input, channel),
            },
            middleware: {
                provideInlineCompletionItems: async (document, position, context, token, next) => {
                    const started = Date.now();
                    const result = await next(document, position, context, token);
                    if (!token.isCancellationRequested) {
                        this.status.update({ lastRoundTripMs: Date.now() - started });
                        this.lastUri = document.uri.toString();
                        void this.refreshStatus();
                    }
                    return result;
                },
                executeCommand: executeCommandMiddleware(() => this.client),
            },
        };
    }

    async start(): Promise<void> {
        const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
        const client = new LanguageClient(SECTION, "pingti", serverOptions(this.settings, folder), this.clientOptions());
        client.registerFeature(new ProgressFeature(client, {
            loading: (message, percentage) => {
                this.status.update({ phase: "loading", detail: message, percentage });
            },
            loaded: () => void this.refreshStatus(),
        }));
        client.onNotification(BACKEND_CHANGED, (change: BackendChange) => {
            if (this.client === client) this.onBackendChanged(change);
        });
        client.onDidChangeState(({ newState }) => {
            if (this.stopping || this.client !== client) return;
            // After a crash the client restarts the server by itself (up to 4 times in 3 minutes).
            if (newState === State.Stopped) {
                this.status.update({ phase: "stopped", detail: "see the pingti output" });
            } else if (newState === State.Starting) {
                this.status.update({ phase: "starting", detail: undefined, percentage: undefined });
            } else if (newState === State.Running) {
                void this.refreshStatus();
            }
        });
        this.client = client;
        this.status.update({ phase: "starting", detail: undefined, percentage: undefined });
        this.output.info(`starting ${JSON.stringify(this.settings.command)} (from ${this.settings.commandSource})`);
        try {
            await client.start();
        } catch (error) {
            const why = error instanceof Error ? error.message : String(error);
            const hint = this.settings.commandSource === "default"
                ? " Install pingti (its .venv/bin must be on PATH) or set pingti.server.command."
                : "";
            this.output.error(`could not start the server: ${why}`);
            this.status.update({ phase: "error", detail: `could not start ${this.settings.command[0]}` });
            void vscode.window.showErrorMessage(`pingti: could not start the language server ` +
                `${JSON.stringify(this.settings.command[0])}: ${why}.${hint}`, "Open Settings").then((choice) => {
                if (choice) void vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.server`);
            });
            return;
        }
        this.focus.sendNow();
        await this.refreshStatus();
    }

    async stop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        clearTimeout(this.pollTimer);
        if (client) {
            this.stopping = true;
            try {
                if (client.isRunning()) await client.stop(5000);
                await client.dispose();
            } catch (error) {
                this.output.warn(`stopping the server: ${error instanceof Error ? error.message : String(error)}`);
            } finally {
                this.stopping = false;
            }
        }
    }

    async restart(): Promise<void> {
        await this.stop();
        this.settings = this.readSettings();
        await this.start();
    }

    async onConfigurationChanged(): Promise<void> {
        const before = this.settings;
        const after = this.readSettings();
        this.settings = after;
        if (needsRestart(before, after)) {
            this.output.info("server command or languages changed: restarting the server");
            await this.stop();
            await this.start();
        } else if (serverSettingsChanged(before, after) && this.client?.isRunning()) {
            await this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: after.server });
            await this.refreshStatus();
        }
    }

    /** Ask the server how it is doing (with the last completed document, for its latency). */
    async refreshStatus(): Promise<void> {
        // One request at a time; one asked for meanwhile runs once the current one is answered,
        // so the newest completion's figures are never missed.
        if (this.refreshing) {
            this.refreshAgain = true;
            return this.refreshing;
        }
        this.refreshing = (async () => {
            do {
                this.refreshAgain = false;
                await this.queryStatus();
            } while (this.refreshAgain);
        })().finally(() => {
            this.refreshing = undefined;
        });
        return this.refreshing;
    }

    private async queryStatus(): Promise<void> {
        const client = this.client;
        if (!client?.isRunning()) return;
        clearTimeout(this.pollTimer);
        const params = this.lastUri ? { uri: this.lastUri } : {};
        // Bounded: a status request that is never answered must not stop the status bar.
        const timeout = new CancellationTokenSource();
        const timer = setTimeout(() => timeout.cancel(), STATUS_TIMEOUT_MS);
        let status: ServerStatus | undefined;
        try {
            status = await client.sendRequest<ServerStatus>(STATUS_REQUEST, params, timeout.token);
            this.statusFailures = 0;
        } catch (error) {
            if (this.statusFailures++ === 0) {
                this.output.warn(`${STATUS_REQUEST} failed: ${error instanceof Error ? error.message : String(error)}`);
            }
        } finally {
            clearTimeout(timer);
            timeout.dispose();
        }
        if (client !== this.client) return;
        if (status) {
            const before = this.status.state.phase;
            this.status.fromServer(status);
            this.logTransition(before, status);
        }
        // Keep asking while the model loads: progress usually says when it is done, but it may
        // not arrive (a client that answered the server's progress request too early, a status
        // request that failed).
        const phase = this.status.state.phase;
        if (phase === "loading" || phase === "starting") {
            this.pollTimer = setTimeout(() => void this.refreshStatus(), LOADING_POLL_MS);
        }
    }

    /** A backend's circuit breaker changed: logged (no popup: failover is routine), shown at
     * once, then the full figures asked for. */
    private onBackendChanged(change: BackendChange): void {
        if (change.state === "open") this.output.warn(change.message);
        else this.output.info(change.message);
        this.status.backendChanged(change);
        void this.refreshStatus();
    }

    private logTransition(before: string, status: ServerStatus): void {
        const after = this.status.state.phase;
        if (after === before) return;
        if (after === "ready" && status.model) {
            const m = status.model;
            this.output.info(`model ready: ${m.name} (${m.backend} on ${m.device}, ${m.quantization ?? "-"})`);
        } else if (after === "error") {
            this.output.error(`model not available: ${status.error ?? "unknown error"}`);
        } else if (after === "loading") {
            this.output.info("model loading");
        }
    }

    private async showStatusMenu(): Promise<void> {
        const actions: Array<vscode.QuickPickItem & { run: () => unknown }> = [
            { label: "$(output) Show log", run: () => this.output.show(true) },
            { label: "$(debug-restart) Restart the language server", run: () => this.restart() },
            { label: "$(beaker) Generate tests for the function at the cursor",
                run: () => vscode.commands.executeCommand("pingti.generateTests") },
            { label: "$(settings-gear) Open pingti settings",
                run: () => vscode.commands.executeCommand("workbench.action.openSettings", SECTION) },
        ];
        const state = this.status.state;
        const picked = await vscode.window.showQuickPick(actions, {
            title: `pingti: ${state.phase}${state.server?.model ? ` · ${state.server.model.name}` : ""}`,
        });
        await picked?.run();
    }

    dispose(): void {
        for (const d of this.disposables) d.dispose();
    }
}

let extension: PingtiExtension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<PingtiExtension> {
    extension = new PingtiExtension();
    context.subscriptions.push(extension);
    // Awaited so that the commands the server brings (pingti.generateTests) exist once the
    // extension is active: VS Code runs a palette command right after activating for it.
    await extension.start();
    return extension;
}

export async function deactivate(): Promise<void> {
    const ext = extension;
    extension = undefined;
    await ext?.stop();
}
