/**
 * The server's stderr in the "pingti" output channel at the right level.
 *
 * vscode-languageclient logs every stderr line as an error; pingti-ls writes its whole log there
 * (stdout is the LSP transport), as `2026-01-01 12:00:00,123 INFO server.lsp: model ready ...`
 * (server/cli.py `_setup_logging`). Each line goes to the channel at its own level, without the
 * server's timestamp (the channel adds one). Lines without a header (tracebacks, argparse
 * errors) keep the level of the line before them, or are errors when nothing came before.
 */

import * as readline from "node:readline";
import type { Readable } from "node:stream";
import type { LogOutputChannel } from "vscode";

export type Level = "debug" | "info" | "warn" | "error";

const HEADER = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/;
const LEVELS: Record<string, Level> = { DEBUG: "debug", INFO: "info", WARNING: "warn", ERROR: "error", CRITICAL: "error" };

export function classify(line: string, previous: Level | undefined): { level: Level; text: string } {
    const m = HEADER.exec(line);
    if (m) return { level: LEVELS[m[1]], text: m[2] };
    return { level: previous ?? "error", text: line };
}

export function pipeServerLog(input: Readable, channel: LogOutputChannel): void {
    let previous: Level | undefined;
    readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", (line) => {
        const { level, text } = classify(line, previous);
        previous = level;
        channel[level](text);
    });
}
