// Drives code-server (a real VS Code in the browser) with headless chromium: open a Python file,
// start the body of a function, and check what the user would see: pingti's ghost text, the
// status bar's latency, and the suggestion in the document after Tab. Run by scripts/test-real.sh
// (with Node 24 and puppeteer-core from the toolchain cache).
//
// The document's text is read from the DOM (`.view-lines`, without the ghost-text elements, whose
// spans VS Code renders inside the same lines); its lines are ordered by their `top`, since VS Code
// reuses line elements out of order.
"use strict";

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");

const env = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
};
const URL = env("URL");
const FILE = env("FILE");
const MODE = env("MODE"); // "fake": the deterministic backend; "real": the default model
const ARTIFACTS = env("ARTIFACTS");
const TESTGEN = process.env.TESTGEN === "1"; // run "Generate tests" from the palette too
const puppeteer = require(env("PUPPETEER"));

// The fake backend copies what followed the longest earlier match of the text before the cursor:
// after `"""\n    ` that is the body of `add` (server/backends/fake.py).
const EXPECTED_FAKE = "return a + b";
const GHOST_TIMEOUT = MODE === "real" ? 180_000 : 30_000;

const log = (...args) => console.log("[drive]", ...args);

async function main() {
    const browser = await puppeteer.launch({
        executablePath: env("CHROMIUM"),
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", `--user-data-dir=${env("BROWSER_PROFILE")}`, "--window-size=1200,720"],
        defaultViewport: { width: 1200, height: 720 },
    });
    const page = await browser.newPage();
    page.on("pageerror", (e) => log("page error:", e.message));
    try {
        await run(page);
    } catch (error) {
        await page.screenshot({ path: path.join(ARTIFACTS, "failure.png") }).catch(() => undefined);
        fs.writeFileSync(path.join(ARTIFACTS, "failure-dom.txt"),
            await page.evaluate(() => document.body.innerText).catch(() => ""));
        fs.writeFileSync(path.join(ARTIFACTS, "failure-editor.html"), await page.evaluate(() =>
            [...document.querySelectorAll(".monaco-editor")].map((e) => e.outerHTML).join("\n\n")).catch(() => ""));
        throw error;
    } finally {
        await browser.close();
    }
}

/** Text of the pingti status bar item ("" if absent), its icon written as in the API: $(name). */
function statusText(page) {
    return page.evaluate(() => {
        const items = [...document.querySelectorAll(".statusbar-item")];
        const item = items.find((el) => /pingti/.test(el.textContent ?? ""));
        if (!item) return "";
        const icon = [...(item.querySelector(".codicon")?.classList ?? [])]
            .find((c) => c.startsWith("codicon-") && c !== "codicon-modifier-spin");
        return `${icon ? `$(${icon.slice(8)}) ` : ""}${(item.textContent ?? "").replace(/\s+/g, " ").trim()}`;
    });
}

/** The editor's text (without ghost text), lines in order. */
function documentText(page) {
    return page.evaluate(() => {
        const lines = [...document.querySelectorAll(".monaco-editor .view-lines .view-line")];
        return lines
            .map((line) => {
                const copy = line.cloneNode(true);
                copy.querySelectorAll("[class*='ghost-text']").forEach((g) => g.remove());
                return { top: parseFloat(line.style.top || "0"), text: (copy.textContent ?? "").replace(/\u00a0/g, " ") };
            })
            .sort((a, b) => a.top - b.top)
            .map((l) => l.text)
            .join("\n");
    });
}

/** The ghost text on screen: its spans (one per syntax token) grouped by screen line. */
function ghostText(page) {
    return page.evaluate(() => {
        const lines = new Map();
        for (const el of document.querySelectorAll(".monaco-editor [class*='ghost-text']")) {
            if (el.parentElement?.closest("[class*='ghost-text']")) continue; // counted with its parent
            const line = el.closest(".view-line") ?? el;
            const top = Math.round(line.getBoundingClientRect().top);
            lines.set(top, (lines.get(top) ?? "") + (el.textContent ?? "").replace(/\u00a0/g, " "));
        }
        return [...lines.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]).join("\n");
    });
}

async function waitUntil(what, probe, timeout) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        last = await probe();
        if (last) return last;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
        await new Promise((r) => setTimeout(r, 200));
    }
}

async function run(page) {
    log("open", URL);
    await page.goto(URL, { waitUntil: "domcontentloaded", timeout: 60_000 });
    await page.waitForSelector(".monaco-workbench", { timeout: 60_000 });
    await page.waitForSelector(".explorer-folders-view .monaco-list-row", { timeout: 60_000 });

    log("open", FILE, "with Quick Open");
    await page.click(".monaco-workbench .part.editor");
    await waitUntil("the file to open", async () => {
        await page.keyboard.down("Control");
        await page.keyboard.press("KeyP");
        await page.keyboard.up("Control");
        const input = await page.waitForSelector(".quick-input-widget input", { visible: true, timeout: 5_000 }).catch(() => null);
        if (!input) return false;
        await page.keyboard.type(FILE, { delay: 20 });
        await page.waitForSelector(".quick-input-list .monaco-list-row", { timeout: 10_000 });
        await page.keyboard.press("Enter");
        return page.waitForFunction(() => /is_prime/.test(document.querySelector(".monaco-editor .view-lines")?.textContent ?? ""),
            { timeout: 10_000 }).then(() => true, () => false);
    }, 60_000);

    // The extension activates on the Python file and starts pingti-ls; wait until the model is
    // loaded (the status bar item leaves "loading").
    const ready = await waitUntil("the pingti status bar item to say ready", async () => {
        const text = await statusText(page);
        return text && !/loading/i.test(text) ? text : false;
    }, MODE === "real" ? 120_000 : 60_000);
    log("status bar:", JSON.stringify(ready));
    assert.match(ready, /^\$\(sparkle\) pingti$/, `status bar item: ${ready}`);

    const before = await documentText(page);
    log("document before:\n" + before);

    // Start the body of is_prime: the end of its docstring (the last line; the file ends with a
    // newline), Enter (VS Code indents).
    await page.click(".monaco-editor .view-lines");
    await page.keyboard.down("Control");
    await page.keyboard.press("End");
    await page.keyboard.up("Control");
    await page.keyboard.press("ArrowUp");
    await page.keyboard.press("End");
    await page.keyboard.press("Enter");

    const ghost = await waitUntil("ghost text from pingti", async () => {
        const text = await ghostText(page);
        return text.trim() ? text : false;
    }, GHOST_TIMEOUT);
    log("ghost text:", JSON.stringify(ghost));
    if (MODE === "fake") assert.equal(ghost.trim(), EXPECTED_FAKE);

    // The status bar shows the completion's latency (from pingti/status lastCompletion).
    const latency = await waitUntil("the latency in the status bar", async () => {
        const text = await statusText(page);
        return /^\$\(sparkle\) pingti (\d+ ms|[\d.]+ s|cached)$/.test(text) ? text : false;
    }, 15_000);
    log("status bar:", JSON.stringify(latency));

    // Let the suggestion settle (the real model may still refine it), then take the picture.
    await new Promise((r) => setTimeout(r, 500));
    const shown = (await ghostText(page)).trim() ? await ghostText(page) : ghost;
    await page.screenshot({ path: path.join(ARTIFACTS, "vscode.png") });
    log("screenshot:", path.join(ARTIFACTS, "vscode.png"));

    await page.keyboard.press("Tab");
    const firstLine = shown.split("\n").map((l) => l.trim()).find((l) => l) ?? "";
    const count = (text) => text.split(firstLine).length - 1;
    const after = await waitUntil("the accepted suggestion in the document", async () => {
        const text = await documentText(page);
        return count(text) > count(before) ? text : false;
    }, 10_000);
    log("document after Tab:\n" + after);
    assert.equal((await ghostText(page)).trim(), "", "the ghost text is gone once accepted");
    if (MODE === "fake") {
        assert.match(after, /"""Return True if n is a prime number\."""\n {4}return a \+ b/);
    }
    fs.writeFileSync(path.join(ARTIFACTS, "document.txt"), after);
    log("ghost text accepted");

    if (TESTGEN) await generateTests(page);
}

/** Text of the notification toasts on screen. */
function notifications(page) {
    return page.evaluate(() => [...document.querySelectorAll(".notifications-toasts .notification-list-item-message")]
        .map((t) => (t.textContent ?? "").replace(/\s+/g, " ").trim()));
}

/** "Generate tests" from the command palette with the cursor in `add`: the extension asks the
 * server for its code action at the cursor and runs it; the server writes tests/test_primes.py
 * through a workspace edit and reports a summary. */
async function generateTests(page) {
    await page.keyboard.down("Control");
    await page.keyboard.press("Home");
    await page.keyboard.up("Control");
    await page.keyboard.press("F1");
    await page.waitForSelector(".quick-input-widget input", { visible: true, timeout: 10_000 });
    await page.keyboard.type("pingti: Generate tests", { delay: 20 });
    await waitUntil("the palette entry", () => page.evaluate(() =>
        [...document.querySelectorAll(".quick-input-list .monaco-list-row")]
            .some((r) => /pingti: Generate tests for the function at the cursor/.test(r.textContent ?? ""))), 10_000);
    await page.keyboard.press("Enter");
    const summary = await waitUntil("the server's Generate tests summary", async () =>
        (await notifications(page)).find((t) => /pingti: .*kept \d+ of \d+/.test(t)) ?? false, 120_000);
    log("notification:", JSON.stringify(summary));
    await waitUntil("tests/ in the explorer", () => page.evaluate(() =>
        [...document.querySelectorAll(".explorer-folders-view .monaco-list-row")]
            .some((r) => (r.textContent ?? "").trim() === "tests")), 10_000);
    const shown = await notifications(page);
    assert.ok(!shown.some((t) => /could not|failed|no function or class/i.test(t)), JSON.stringify(shown));
    log("tests generated");
}

main().then(() => process.exit(0), (error) => {
    console.error("[drive] FAILED:", error && error.stack || error);
    process.exit(1);
});
