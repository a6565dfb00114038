/**
 * `pingti/focus`: tells the server which document the user is looking at, and where the cursor
 * is, so it can evaluate the prompt of a suggestion there while the user reads (prefetch,
 * server/batching.py). LSP has no notification for this: didOpen does not say where the cursor is
 * and nothing at all is sent when the user switches tabs or jumps within a file.
 *
 * Sent when the active editor changes (at once) and when the cursor jumps to another part of the
 * same document (after the cursor has rested FOCUS_DEBOUNCE_MS). Cursor moves by typing are not
 * sent: the completion requests that follow each keystroke keep the server's cache warm.
 */

import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";

export const FOCUS_NOTIFICATION = "pingti/focus";
/** How long the cursor must rest before a jump within a document is reported. */
export const FOCUS_DEBOUNCE_MS = 300;
/** A move of at least this many lines is a jump to another part of the file. */
export const JUMP_LINES = 20;

export interface FocusParams {
    textDocument: { uri: string };
    position: { line: number; character: number };
}

/** Which cursor positions are worth a notification (pure: no VS Code in it). */
export class FocusTracker {
    private last: { uri: string; line: number } | undefined;

    /** A different document always; the same one only after a jump of JUMP_LINES or more. */
    shouldSend(uri: string, line: number): boolean {
        const last = this.last;
        return !last || last.uri !== uri || Math.abs(last.line - line) >= JUMP_LINES;
    }

    sent(uri: string, line: number): void {
        this.last = { uri, line };
    }

    /** Forget the last position (a restarted server knows nothing). */
    reset(): void {
        this.last = undefined;
    }
}

type Editor = Pick<vscode.TextEditor, "document" | "selection">;

/**
 * Wires the tracker to VS Code's events. `client()` is the running client (or undefined);
 * `accepts(document)` says whether pingti serves the document's language.
 */
export function registerFocus(client: () => LanguageClient | undefined,
    accepts: (document: vscode.TextDocument) => boolean): vscode.Disposable & { sendNow(): void; tracker: FocusTracker } {
    const tracker = new FocusTracker();
    let timer: ReturnType<typeof setTimeout> | undefined;

    const send = (editor: Editor | undefined, force: boolean) => {
        const c = client();
        if (!editor || !c?.isRunning() || !accepts(editor.document)) return;
        const uri = editor.document.uri.toString();
        const pos = editor.selection.active;
        if (!force && !tracker.shouldSend(uri, pos.line)) return;
        tracker.sent(uri, pos.line);
        const params: FocusParams = { textDocument: { uri }, position: { line: pos.line, character: pos.character } };
        c.sendNotification(FOCUS_NOTIFICATION, params).catch(() => undefined);
    };

    const subscriptions = [
        vscode.window.onDidChangeActiveTextEditor((editor) => {
            clearTimeout(timer);
            send(editor, false);
        }),
        vscode.window.onDidChangeTextEditorSelection((e) => {
            if (e.textEditor !== vscode.window.activeTextEditor) return;
            clearTimeout(timer);
            timer = setTimeout(() => send(e.textEditor, false), FOCUS_DEBOUNCE_MS);
        }),
    ];
    return {
        tracker,
        /** The active editor now (after the server started). */
        sendNow: () => {
            tracker.reset();
            send(vscode.window.activeTextEditor, true);
        },
        dispose: () => {
            clearTimeout(timer);
            for (const s of subscriptions) s.dispose();
        },
    };
}
