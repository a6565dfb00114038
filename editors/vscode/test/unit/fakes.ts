/**
 * Stand-ins for the `vscode` module (which only exists inside VS Code) and for
 * `vscode-languageclient/node` (whose LanguageClient would need the whole editor API), installed
 * by intercepting `require` before the extension is loaded. They record what the extension does
 * so that tests can assert on it; the LSP protocol types are the real ones.
 *
 * Only the API surface the extension uses is here; a call to anything else fails loudly.
 */

import Module from "node:module";
import * as protocol from "vscode-languageserver-protocol";

// --- vscode ---------------------------------------------------------------------------------

export interface Message {
    level: "info" | "warning" | "error";
    text: string;
    items: string[];
}

export interface FakeStatusBarItem {
    id: string;
    text: string;
    tooltip: unknown;
    command: unknown;
    name?: string;
    backgroundColor: unknown;
    visible: boolean;
    disposed: boolean;
    show(): void;
    hide(): void;
    dispose(): void;
}

type Listener<T> = (e: T) => unknown;

export const state = {
    settings: {} as Record<string, unknown>,
    commands: new Map<string, (...args: unknown[]) => unknown>(),
    executed: [] as Array<{ command: string; args: unknown[] }>,
    messages: [] as Message[],
    logs: [] as Array<{ level: string; text: string }>,
    statusItems: [] as FakeStatusBarItem[],
    progress: [] as Array<{ options: { location: number; title?: string; cancellable?: boolean };
        reports: Array<{ message?: string; increment?: number }>; cancel: () => void; done: Promise<unknown> }>,
    configListeners: [] as Array<Listener<{ affectsConfiguration(section: string): boolean }>>,
    activeTextEditor: undefined as unknown,
    workspaceFolders: undefined as unknown,
    activeEditorListeners: [] as Array<Listener<unknown>>,
    selectionListeners: [] as Array<Listener<{ textEditor: unknown }>>,
};

/** A text editor as the extension reads it: document (uri, languageId) and cursor. */
export function editor(uri: string, languageId: string, line: number, character = 0) {
    return {
        document: { uri: { toString: () => uri, scheme: uri.split(":")[0] }, languageId },
        selection: { active: { line, character } },
    };
}

/** The user switched to `e` (or to no editor). */
export function switchTo(e: unknown): void {
    state.activeTextEditor = e;
    for (const l of state.activeEditorListeners) l(e);
}

/** The cursor of the active editor moved to `line`. */
export function moveCursor(line: number, character = 0): void {
    const e = state.activeTextEditor as ReturnType<typeof editor>;
    e.selection = { active: { line, character } };
    for (const l of state.selectionListeners) l({ textEditor: e });
}

export function resetVscode(): void {
    state.settings = {};
    state.commands.clear();
    state.executed = [];
    state.messages = [];
    state.logs = [];
    state.statusItems = [];
    state.progress = [];
    state.configListeners = [];
    state.activeTextEditor = undefined;
    state.workspaceFolders = undefined;
    state.activeEditorListeners = [];
    state.selectionListeners = [];
}

/** Change settings (keys without `pingti.`) and fire onDidChangeConfiguration. */
export async function changeSettings(settings: Record<string, unknown>): Promise<void> {
    state.settings = settings;
    await Promise.all(state.configListeners.map((l) =>
        l({ affectsConfiguration: (section: string) => section === "pingti" || section.startsWith("pingti.") })));
}

export function statusItem(): FakeStatusBarItem {
    const item = state.statusItems.find((i) => i.id === "pingti.status");
    if (!item) throw new Error("no pingti status bar item");
    return item;
}

const disposable = () => ({ dispose() { /* nothing */ } });

function message(level: Message["level"]) {
    return (text: string, ...items: unknown[]) => {
        state.messages.push({ level, text, items: items.filter((i): i is string => typeof i === "string") });
        return Promise.resolve(undefined);
    };
}

function outputChannel(name: string) {
    const log = (level: string) => (text: string) => state.logs.push({ level, text });
    return {
        name, logLevel: 2, onDidChangeLogLevel: () => disposable(),
        trace: log("trace"), debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error"),
        append: log("append"), appendLine: log("append"), replace: log("replace"), clear() { /* */ },
        show() { state.executed.push({ command: "<show output>", args: [name] }); }, hide() { /* */ }, dispose() { /* */ },
    };
}

export const vscode = {
    StatusBarAlignment: { Left: 1, Right: 2 },
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    ThemeColor: class { constructor(readonly id: string) {} },
    MarkdownString: class { constructor(readonly value: string, readonly supportThemeIcons?: boolean) {} },
    window: {
        createOutputChannel: outputChannel,
        createStatusBarItem(id: string, _alignment?: number, _priority?: number): FakeStatusBarItem {
            const item: FakeStatusBarItem = {
                id, text: "", tooltip: undefined, command: undefined, backgroundColor: undefined,
                visible: false, disposed: false,
                show() { item.visible = true; }, hide() { item.visible = false; }, dispose() { item.disposed = true; },
            };
            state.statusItems.push(item);
            return item;
        },
        showInformationMessage: message("info"),
        showWarningMessage: message("warning"),
        showErrorMessage: message("error"),
        showQuickPick: () => Promise.resolve(undefined),
        withProgress(options: { location: number; title?: string; cancellable?: boolean },
            task: (progress: unknown, token: unknown) => Promise<unknown>) {
            const cancelListeners: Array<() => void> = [];
            const entry = {
                options, reports: [] as Array<{ message?: string; increment?: number }>,
                cancel: () => cancelListeners.forEach((l) => l()), done: Promise.resolve() as Promise<unknown>,
            };
            entry.done = task({ report: (r: { message?: string; increment?: number }) => entry.reports.push(r) },
                { isCancellationRequested: false, onCancellationRequested: (l: () => void) => { cancelListeners.push(l); return disposable(); } });
            state.progress.push(entry);
            return entry.done;
        },
        get activeTextEditor() { return state.activeTextEditor; },
        onDidChangeActiveTextEditor(listener: Listener<unknown>) {
            state.activeEditorListeners.push(listener);
            return { dispose: () => { state.activeEditorListeners = state.activeEditorListeners.filter((l) => l !== listener); } };
        },
        onDidChangeTextEditorSelection(listener: Listener<{ textEditor: unknown }>) {
            state.selectionListeners.push(listener);
            return { dispose: () => { state.selectionListeners = state.selectionListeners.filter((l) => l !== listener); } };
        },
    },
    workspace: {
        getConfiguration(section: string) {
            if (section !== "pingti") throw new Error(`unexpected configuration section ${section}`);
            return { get: (key: string) => state.settings[key] };
        },
        onDidChangeConfiguration(listener: Listener<{ affectsConfiguration(section: string): boolean }>) {
            state.configListeners.push(listener);
            return disposable();
        },
        get workspaceFolders() { return state.workspaceFolders; },
    },
    commands: {
        registerCommand(id: string, fn: (...args: unknown[]) => unknown) {
            if (state.commands.has(id)) throw new Error(`command '${id}' already exists`);
            state.commands.set(id, fn);
            return { dispose: () => state.commands.delete(id) };
        },
        executeCommand(command: string, ...args: unknown[]) {
            state.executed.push({ command, args });
            const fn = state.commands.get(command);
            return Promise.resolve(fn ? fn(...args) : undefined);
        },
    },
};

// --- vscode-languageclient/node ----------------------------------------------------------------

export const State = { Stopped: 1, Starting: 3, Running: 2 } as const;
export const TransportKind = { stdio: 0, ipc: 1, pipe: 2, socket: 3 } as const;

type Handler = (params: unknown) => unknown;
interface Feature {
    fillClientCapabilities(c: Record<string, unknown>): void;
    initialize(...args: unknown[]): void;
}

export class FakeLanguageClient {
    static instances: FakeLanguageClient[] = [];
    /** What sendRequest answers, by method; a function gets the params. */
    static responses = new Map<string, unknown>();
    static startError: Error | undefined;

    readonly features: Feature[] = [];
    readonly capabilities: Record<string, unknown> = {};
    readonly requestHandlers = new Map<string, Handler>();
    readonly notificationHandlers = new Map<string, Handler>();
    readonly progressHandlers = new Map<string | number, Handler>();
    readonly requests: Array<{ method: string; params: unknown }> = [];
    readonly notifications: Array<{ method: string; params: unknown }> = [];
    readonly stateListeners: Array<Listener<{ oldState: number; newState: number }>> = [];
    state: number = State.Stopped;
    disposed = false;

    readonly code2ProtocolConverter = {
        asUri: (uri: { toString(): string }) => uri.toString(),
        asPosition: (p: { line: number; character: number }) => ({ line: p.line, character: p.character }),
        asTextDocumentIdentifier: (d: { uri: { toString(): string } }) => ({ uri: d.uri.toString() }),
    };

    constructor(readonly id: string, readonly name: string, readonly serverOptions: unknown,
        readonly clientOptions: Record<string, any>) {
        FakeLanguageClient.instances.push(this);
    }

    static reset(): void {
        FakeLanguageClient.instances = [];
        FakeLanguageClient.responses = new Map();
        FakeLanguageClient.startError = undefined;
    }

    static get last(): FakeLanguageClient {
        const c = FakeLanguageClient.instances.at(-1);
        if (!c) throw new Error("no LanguageClient was created");
        return c;
    }

    registerFeature(feature: Feature): void {
        this.features.push(feature);
    }

    onDidChangeState(listener: Listener<{ oldState: number; newState: number }>) {
        this.stateListeners.push(listener);
        return disposable();
    }

    setState(newState: number): void {
        const oldState = this.state;
        this.state = newState;
        for (const l of this.stateListeners) l({ oldState, newState });
    }

    async start(): Promise<void> {
        this.setState(State.Starting);
        if (FakeLanguageClient.startError) {
            this.setState(State.Stopped);
            throw FakeLanguageClient.startError;
        }
        for (const f of this.features) f.fillClientCapabilities(this.capabilities);
        this.setState(State.Running);
        for (const f of this.features) f.initialize(this.capabilities, this.clientOptions.documentSelector);
    }

    isRunning(): boolean {
        return this.state === State.Running;
    }

    async stop(): Promise<void> {
        this.setState(State.Stopped);
    }

    async dispose(): Promise<void> {
        this.disposed = true;
        if (this.state !== State.Stopped) this.setState(State.Stopped);
    }

    async sendRequest(type: string | { method: string }, params: unknown): Promise<unknown> {
        const method = typeof type === "string" ? type : type.method;
        this.requests.push({ method, params });
        const answer = FakeLanguageClient.responses.get(method);
        if (answer === undefined) throw new Error(`no fake response for ${method}`);
        return typeof answer === "function" ? answer(params) : answer;
    }

    async sendNotification(type: string | { method: string }, params: unknown): Promise<void> {
        this.notifications.push({ method: typeof type === "string" ? type : type.method, params });
    }

    onRequest(type: string | { method: string }, handler: Handler) {
        this.requestHandlers.set(typeof type === "string" ? type : type.method, handler);
        return disposable();
    }

    onNotification(type: string | { method: string }, handler: Handler) {
        const method = typeof type === "string" ? type : type.method;
        this.notificationHandlers.set(method, handler);
        return { dispose: () => this.notificationHandlers.delete(method) };
    }

    /** What the server would do: send a notification to the client. */
    serverNotifies(method: string, params: unknown): void {
        const handler = this.notificationHandlers.get(method);
        if (!handler) throw new Error(`no handler for the notification ${method}`);
        handler(params);
    }

    onProgress(_type: unknown, token: string | number, handler: Handler) {
        this.progressHandlers.set(token, handler);
        return { dispose: () => this.progressHandlers.delete(token) };
    }

    /** What the server would do: create a progress token, then send its values. */
    progress(token: string, ...values: unknown[]): void {
        const create = this.requestHandlers.get("window/workDoneProgress/create");
        if (!create) throw new Error("no window/workDoneProgress/create handler");
        if (!this.progressHandlers.has(token)) create({ token });
        for (const v of values) {
            const h = this.progressHandlers.get(token);
            if (!h) throw new Error(`progress ${token} is not being listened to`);
            h(v);
        }
    }
}

export const languageclient = { ...protocol, LanguageClient: FakeLanguageClient, State, TransportKind };

// --- install ---------------------------------------------------------------------------------

let installed = false;

/** Make `require("vscode")` and `require("vscode-languageclient/node")` return the fakes. */
export function install(): void {
    if (installed) return;
    installed = true;
    const mod = Module as unknown as { _load(request: string, parent: unknown, isMain: boolean): unknown };
    const load = mod._load;
    mod._load = function (request: string, parent: unknown, isMain: boolean) {
        if (request === "vscode") return vscode;
        if (request === "vscode-languageclient/node") return languageclient;
        return load.call(this, request, parent, isMain);
    };
}

export function reset(): void {
    resetVscode();
    FakeLanguageClient.reset();
}

/** Let pending promise callbacks run. */
export function settle(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
}
