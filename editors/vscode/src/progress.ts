/**
 * Work-done progress from the server, handled by the extension instead of vscode-languageclient's
 * built-in handler, for two reasons:
 *
 * - model loading ("pingti: loading model") is shown in pingti's own status bar item, with its
 *   messages and percentage, instead of a second, anonymous spinner;
 * - "Generate tests" is cancellable, but the built-in handler shows every progress in the window
 *   status bar, where VS Code offers no cancel button: here a cancellable progress becomes a
 *   notification with one, which sends `window/workDoneProgress/cancel`.
 *
 * NOTE: vscode-languageclient registers its own `window/workDoneProgress/create` handler in its
 * ProgressFeature's `initialize`. Features are initialized in registration order and a later
 * handler for a method replaces an earlier one, so registering this feature (after the client's
 * built-in ones, i.e. any time before `start()`) makes it the handler. The client initializes
 * its features right after it has sent `initialized` (which is when the server starts loading
 * the model and asks for a progress token), before it handles the server's next message in
 * practice; were the server's request ever handled first, it would be refused, the server
 * loads without progress, and the status bar still follows the load by polling `pingti/status`.
 */

import * as vscode from "vscode";
import {
    type BaseLanguageClient,
    type ClientCapabilities,
    type FeatureState,
    type StaticFeature,
    type WorkDoneProgressBegin,
    type WorkDoneProgressReport,
    WorkDoneProgress,
    WorkDoneProgressCancelNotification,
    WorkDoneProgressCreateRequest,
} from "vscode-languageclient/node";

/** The title the server gives the model-loading progress (server/lsp.py `_load`). */
export const LOADING_TITLE = /loading model/i;

export interface LoadingSink {
    loading(message: string | undefined, percentage: number | undefined): void;
    loaded(message: string | undefined): void;
}

type Value = WorkDoneProgressBegin | WorkDoneProgressReport | { kind: "end"; message?: string };

export class ProgressFeature implements StaticFeature {
    private readonly active = new Map<string | number, vscode.Disposable>();

    constructor(private readonly client: BaseLanguageClient, private readonly sink: LoadingSink) {}

    getState(): FeatureState {
        return { kind: "static" };
    }

    fillClientCapabilities(capabilities: ClientCapabilities): void {
        capabilities.window = { ...capabilities.window, workDoneProgress: true };
    }

    initialize(): void {
        this.client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
            this.track(token);
        });
    }

    clear(): void {
        for (const d of this.active.values()) d.dispose();
        this.active.clear();
    }

    private track(token: string | number): void {
        let handler: ((value: Value) => void) | undefined;
        const subscription = this.client.onProgress(WorkDoneProgress.type, token, (value: Value) => {
            if (value.kind === "begin") {
                handler = LOADING_TITLE.test(value.title) ? this.loading() : this.notification(token, value);
            }
            handler?.(value);
            if (value.kind === "end") this.finish(token);
        });
        this.active.set(token, subscription);
    }

    private finish(token: string | number): void {
        this.active.get(token)?.dispose();
        this.active.delete(token);
    }

    private loading(): (value: Value) => void {
        return (value) => {
            if (value.kind === "end") this.sink.loaded(value.message);
            else this.sink.loading(value.message, value.percentage);
        };
    }

    /** A VS Code progress for anything else (Generate tests), cancellable when the server allows. */
    private notification(token: string | number, begin: WorkDoneProgressBegin): (value: Value) => void {
        let progress: vscode.Progress<{ message?: string; increment?: number }> | undefined;
        let reported = 0;
        let done: () => void = () => undefined;
        const pending: Value[] = [];
        const show = (value: Value) => {
            if (value.kind === "end") {
                done();
                return;
            }
            if (!progress) {
                pending.push(value);
                return;
            }
            let increment: number | undefined;
            if (value.percentage !== undefined) {
                const pct = Math.max(0, Math.min(100, value.percentage));
                increment = Math.max(0, pct - reported);
                reported += increment;
            }
            progress.report({ message: value.message, increment });
        };
        void vscode.window.withProgress({
            location: begin.cancellable ? vscode.ProgressLocation.Notification : vscode.ProgressLocation.Window,
            title: begin.title,
            cancellable: begin.cancellable ?? false,
        }, (p, cancel) => new Promise<void>((resolve) => {
            progress = p;
            done = resolve;
            cancel.onCancellationRequested(() => {
                void this.client.sendNotification(WorkDoneProgressCancelNotification.type, { token });
            });
            for (const v of pending.splice(0)) show(v);
            if (!this.active.has(token)) resolve(); // ended before VS Code showed it
        }));
        return show;
    }
}
