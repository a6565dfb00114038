// Bundles the extension with esbuild (dist/extension.js), or with --tests the test files
// (out/test/**.test.js; packages stay external so tests can substitute `vscode` and the client).
import { build } from "esbuild";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
const common = { bundle: true, platform: "node", format: "cjs", target: "node20", logLevel: "warning" };

if (args.has("--tests")) {
    const entryPoints = ["unit", "protocol"].flatMap((dir) =>
        readdirSync(join(root, "test", dir)).filter((f) => f.endsWith(".test.ts"))
            .map((f) => join(root, "test", dir, f)));
    await build({
        ...common,
        entryPoints,
        outdir: join(root, "out", "test"),
        outbase: join(root, "test"),
        packages: "external",
        sourcemap: "inline",
    });
} else {
    await build({
        ...common,
        entryPoints: [join(root, "src", "extension.ts")],
        outfile: join(root, "dist", "extension.js"),
        external: ["vscode"],
        minify: args.has("--production"),
        sourcemap: args.has("--production") ? false : "linked",
    });
}
