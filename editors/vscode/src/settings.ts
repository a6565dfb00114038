/**
 * The extension's settings: read, validated against the schema in package.json, and split into
 * what the extension itself uses (how to start the server, which languages) and what it sends to
 * the server (initializationOptions and workspace/didChangeConfiguration).
 *
 * package.json `contributes.configuration` is the single source of truth: its types, enums,
 * minimum/maximum and defaults are what VS Code's settings editor shows, and this module checks
 * the same schema at run time, because settings.json is free text and VS Code does not enforce
 * it. An invalid value is reported and replaced by its default; the other settings still apply
 * (the server behaves the same way, server/config.py). The server-side names are the server's own
 * camelCase names: `pingti.maxTokensSingleLine` is sent as `maxTokensSingleLine`. A list of
 * objects (`pingti.backends`) is checked entry by entry and sent as it is; its value is never
 * shown in a message, since an entry may hold an API key.
 *
 * Pure: no `vscode` import, so it is tested without an editor.
 */

import * as os from "node:os";
import * as path from "node:path";
import manifest from "../package.json";

export const SECTION = "pingti";

/** The subset of JSON Schema that package.json's settings use. */
export interface SettingSchema {
    type: string | string[];
    default: unknown;
    enum?: unknown[];
    minimum?: number;
    maximum?: number;
    minLength?: number;
    items?: ItemSchema;
    uniqueItems?: boolean;
}

/** The items of a list setting: strings, or objects with known keys (no others). */
export interface ItemSchema {
    type: string;
    pattern?: string;
    properties?: Record<string, { type: string; enum?: unknown[] }>;
    required?: string[];
}

export const SCHEMA: Readonly<Record<string, SettingSchema>> =
    manifest.contributes.configuration.properties as Record<string, SettingSchema>;

/** Keys (without the `pingti.` prefix) that configure the extension, not the server. */
const CLIENT_PREFIXES = ["server.", "trace."];
const CLIENT_KEYS = new Set(["languages"]);

export function isServerSetting(key: string): boolean {
    return !CLIENT_KEYS.has(key) && !CLIENT_PREFIXES.some((p) => key.startsWith(p));
}

/** Setting keys without the `pingti.` prefix, in package.json order. */
export const KEYS: readonly string[] = Object.keys(SCHEMA).map((k) => k.slice(SECTION.length + 1));
export const SERVER_KEYS: readonly string[] = KEYS.filter(isServerSetting);

/** A list setting's value: strings, or objects (backends) sent as they are. */
export type ServerValue = string | number | unknown[];
export type ServerSettings = Record<string, ServerValue>;

export interface Settings {
    /** argv of the server process. */
    command: string[];
    /** Where the command came from, for messages. */
    commandSource: "pingti.server.command" | "pingti.server.python" | "default";
    languages: string[];
    /** Sent to the server as initializationOptions and on every change. */
    server: ServerSettings;
}

export interface ReadResult {
    settings: Settings;
    /** One human-readable message per invalid value. */
    errors: string[];
}

/** How settings are read: `WorkspaceConfiguration.get` has this shape. */
export interface ConfigurationReader {
    get(key: string): unknown;
}

export interface Environment {
    home?: string;
    workspaceFolder?: string;
}

function typeOf(value: unknown): string {
    if (Array.isArray(value)) return "array";
    if (value === null) return "null";
    if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
    return typeof value;
}

function show(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
}

function fits(types: readonly string[], value: unknown): boolean {
    const actual = typeOf(value);
    return types.includes(actual) || (actual === "integer" && types.includes("number"));
}

function article(type: string): string {
    return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** Why a list of objects does not fit `items`; names the entry and key, never a value. */
function objectsProblem(items: ItemSchema, value: unknown[]): string | undefined {
    const properties = items.properties ?? {};
    for (const [i, entry] of value.entries()) {
        const where = `entry ${i + 1}`;
        if (typeOf(entry) !== "object") return `${where}: expected an object`;
        const object = entry as Record<string, unknown>;
        const unknown = Object.keys(object).filter((k) => !Object.hasOwn(properties, k));
        if (unknown.length > 0) {
            return `${where}: unknown keys ${unknown.join(", ")} (known: ${Object.keys(properties).join(", ")})`;
        }
        const missing = (items.required ?? []).filter((k) => object[k] === undefined || object[k] === null);
        if (missing.length > 0) return `${where}: no ${missing.join(", ")}`;
        for (const [key, property] of Object.entries(properties)) {
            const v = object[key];
            if (v === undefined || v === null) continue;
            if (!fits([property.type], v)) return `${where}: ${key} must be ${article(property.type)}`;
            if (property.enum && !property.enum.includes(v)) {
                return `${where}: ${key} must be one of ${property.enum.map(show).join(", ")}`;
            }
        }
    }
    return undefined;
}

/** Why `value` does not fit `schema`, or undefined when it does. */
export function problem(schema: SettingSchema, value: unknown): string | undefined {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!fits(types, value)) {
        return `expected ${types.map(article).join(" or ")}`;
    }
    if (schema.enum && !schema.enum.includes(value)) {
        return `expected one of ${schema.enum.map(show).join(", ")}`;
    }
    if (typeof value === "number") {
        if (!Number.isFinite(value)) return "expected a finite number";
        const { minimum: lo, maximum: hi } = schema;
        if ((lo !== undefined && value < lo) || (hi !== undefined && value > hi)) {
            return `expected a value between ${lo ?? "-∞"} and ${hi ?? "∞"}`;
        }
    }
    if (typeof value === "string" && schema.minLength !== undefined && value.trim().length < schema.minLength) {
        return "expected a non-empty string";
    }
    if (Array.isArray(value) && schema.items?.type === "object") {
        return objectsProblem(schema.items, value);
    }
    if (Array.isArray(value) && schema.items) {
        const items = schema.items;
        const bad = value.find((v) => typeof v !== items.type ||
            (items.pattern !== undefined && !new RegExp(items.pattern).test(v as string)));
        if (bad !== undefined) {
            return `expected a list of ${items.type}s${items.pattern ? ` matching ${items.pattern}` : ""}, got ${show(bad)}`;
        }
        if (schema.uniqueItems && new Set(value).size !== value.length) {
            return "expected no repeated entries";
        }
    }
    return undefined;
}

/** `key`'s value if valid, else its default (and a message in `errors`). */
export function validated(key: string, raw: unknown, errors: string[]): unknown {
    const schema = SCHEMA[`${SECTION}.${key}`];
    if (schema === undefined) throw new Error(`no such pingti setting: ${key}`);
    if (raw === undefined || raw === null) return schema.default;
    const why = problem(schema, raw);
    if (why === undefined) return raw;
    // A list of objects (backends) may hold an API key: say where it is wrong, not what it is.
    const shown = schema.items?.type === "object" ? "(not shown)" : show(raw);
    errors.push(`Invalid value ${shown} for setting "${SECTION}.${key}": ${why}; ` +
        `using the default ${show(schema.default)}.`);
    return schema.default;
}

/** Expand a leading `~` and `${workspaceFolder}` (the variables users put in paths). */
export function expandPath(value: string, env: Environment): string {
    let out = value;
    if (env.workspaceFolder !== undefined) out = out.split("${workspaceFolder}").join(env.workspaceFolder);
    const home = env.home ?? os.homedir();
    if (out === "~") return home;
    if (out.startsWith("~/")) return path.join(home, out.slice(2));
    return out;
}

/** argv of the server: pingti.server.command, else pingti.server.python -m server, else pingti-ls. */
export function serverCommand(commandSetting: unknown, python: unknown, env: Environment
): Pick<Settings, "command" | "commandSource"> {
    const argv = typeof commandSetting === "string"
        ? (commandSetting.trim() ? [commandSetting.trim()] : [])
        : (commandSetting as string[]).filter((a) => a !== "");
    if (argv.length > 0) {
        return { command: [expandPath(argv[0], env), ...argv.slice(1)], commandSource: "pingti.server.command" };
    }
    if (typeof python === "string" && python.trim()) {
        return { command: [expandPath(python.trim(), env), "-m", "server"], commandSource: "pingti.server.python" };
    }
    return { command: ["pingti-ls"], commandSource: "default" };
}

export function readSettings(config: ConfigurationReader, env: Environment = {}): ReadResult {
    const errors: string[] = [];
    const get = (key: string) => validated(key, config.get(key), errors);
    const server: ServerSettings = {};
    for (const key of SERVER_KEYS) {
        let value = get(key) as ServerValue;
        if (key === "model" && typeof value === "string" && value !== "default") {
            value = expandPath(value.trim(), env);
        }
        server[key] = value;
    }
    const settings: Settings = {
        ...serverCommand(get("server.command"), get("server.python"), env),
        languages: get("languages") as string[],
        server,
    };
    return { settings, errors };
}

/** The settings whose change needs a new server process (the rest are sent to the running one). */
export function needsRestart(before: Settings, after: Settings): boolean {
    return JSON.stringify([before.command, before.languages]) !== JSON.stringify([after.command, after.languages]);
}

export function serverSettingsChanged(before: Settings, after: Settings): boolean {
    return JSON.stringify(before.server) !== JSON.stringify(after.server);
}
