/**
 * "Generate tests" from the command palette.
 *
 * The server owns the command `pingti.generateTests` (server/testgen_lsp.py): it offers it as a
 * code action of kind `source.generateTests` on a Python def or class, with the arguments
 * `[uri, {line, character}]`, and vscode-languageclient registers a VS Code command of the same
 * id that forwards to `workspace/executeCommand`. Code actions call it with those arguments.
 * From the palette it comes without arguments; the client's `executeCommand` middleware then
 * asks the server for its code action at the cursor and runs that action's command, so the
 * palette and the light bulb do exactly the same thing.
 */

import * as vscode from "vscode";
import {
    type BaseLanguageClient,
    type CodeAction,
    CodeActionRequest,
    CodeActionTriggerKind,
    type Command,
} from "vscode-languageclient/node";

export const GENERATE_TESTS = "pingti.generateTests";
export const GENERATE_TESTS_KIND = "source.generateTests";

type Next = (command: string, args: unknown[]) => vscode.ProviderResult<unknown>;

function commandOf(action: Command | CodeAction): Command | undefined {
    if (typeof (action as Command).command === "string") return action as Command;
    return (action as CodeAction).command;
}

/** The server's "Generate tests" command for the cursor of `editor`, if it offers one. */
export async function findGenerateTestsCommand(client: BaseLanguageClient, editor: vscode.TextEditor
): Promise<Command | undefined> {
    const c2p = client.code2ProtocolConverter;
    const position = c2p.asPosition(editor.selection.active);
    const actions = await client.sendRequest(CodeActionRequest.type, {
        textDocument: c2p.asTextDocumentIdentifier(editor.document),
        range: { start: position, end: position },
        context: { diagnostics: [], only: [GENERATE_TESTS_KIND], triggerKind: CodeActionTriggerKind.Invoked },
    });
    for (const action of actions ?? []) {
        const command = commandOf(action);
        if (command?.command === GENERATE_TESTS) return command;
    }
    return undefined;
}

/** `executeCommand` middleware: fill in the arguments of a palette invocation. */
export function executeCommandMiddleware(getClient: () => BaseLanguageClient | undefined) {
    return async (command: string, args: unknown[], next: Next): Promise<unknown> => {
        if (command !== GENERATE_TESTS || args.length > 0) return next(command, args);
        const client = getClient();
        const editor = vscode.window.activeTextEditor;
        if (!client || !editor) {
            void vscode.window.showInformationMessage(
                "pingti: open a Python file and put the cursor on a def or class to generate tests for it.");
            return undefined;
        }
        const found = await findGenerateTestsCommand(client, editor);
        if (!found) {
            void vscode.window.showInformationMessage(
                "pingti: no function or class at the cursor to generate tests for (Python files only).");
            return undefined;
        }
        return next(found.command, found.arguments ?? []);
    };
}
