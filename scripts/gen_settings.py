"""Write the settings lists of the README and the editors from the server's settings schema.

    .venv/bin/python scripts/gen_settings.py           # rewrite the artefacts that differ
    .venv/bin/python scripts/gen_settings.py --check   # exit 1 with a diff when any differs

``server.config.SETTINGS`` is the one declaration; this writes from it:

- README.md: the "Settings" table, between ``<!-- settings:begin -->`` and
  ``<!-- settings:end -->`` (the prose around it is the README's own);
- editors/vscode/package.json: ``pingti.<clientName>`` in ``contributes.configuration.properties``
  for the settings offered in editors (``Audience.EDITORS``). This script owns their type,
  default, enum, bounds and markdownDescription; other keys of an entry (``scope``,
  ``enumDescriptions``) are kept, enumDescriptions following their values. The extension's own
  settings (``languages``, ``server.*``, ``trace.*``: the split of editors/vscode/src/settings.ts)
  are left as they are;
- editors/nvim/lua/pingti/settings.lua: every setting as a Lua table (``:checkhealth`` reads it);
- editors/nvim/doc/pingti.txt: the section under ``*pingti-settings*``, up to the next rule.

Settings of ``Audience.TESTS`` appear only in the Lua table (marked), so a Neovim check knows
the name.

A setting that is a list of objects (``backends``: a tuple of dataclasses on :class:`Config`)
takes its keys from :data:`OBJECT_LISTS`, which names the table the server's parser reads
(``server.config.BACKEND_FIELDS``); required keys and enums come from the dataclass. A list of
a dataclass without an entry there is an error, not a list of strings.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import json
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: scripts/ is on sys.path, the repository is not
    sys.path.insert(0, str(ROOT))

from server.config import BACKEND_FIELDS, SETTINGS, Audience, BackendSpec, Setting  # noqa: E402

GENERATED_BY = "scripts/gen_settings.py"
RELOAD_NOTE = "Changing it reloads the model."

README = Path("README.md")
PACKAGE_JSON = Path("editors/vscode/package.json")
NVIM_LUA = Path("editors/nvim/lua/pingti/settings.lua")
NVIM_HELP = Path("editors/nvim/doc/pingti.txt")

README_BEGIN = "<!-- settings:begin -->"
README_END = "<!-- settings:end -->"
HELP_TAG = "*pingti-settings*"
HELP_WIDTH = 78

# The VS Code extension's own settings (editors/vscode/src/settings.ts, isServerSetting).
VSCODE_SECTION = "pingti"
VSCODE_CLIENT_KEYS = frozenset({"languages"})
VSCODE_CLIENT_PREFIXES = ("server.", "trace.")
# Keys of a server setting's entry that this script writes; any other key is kept.
VSCODE_OWNED = ("type", "items", "default", "enum", "minimum", "maximum", "minLength",
                "markdownDescription", "description")


class GenerateError(Exception):
    """An artefact cannot be written: its anchors are missing, or a doc would break its format."""


# Item dataclass → the keys clients send for it: key → (dataclass field, JSON type, Markdown
# description), the very table the server's parser reads. Which keys are required (a field
# without a default) and which take an Enum's values follow from the dataclass.
OBJECT_LISTS: dict[type, Mapping[str, tuple[str, str, str]]] = {BackendSpec: BACKEND_FIELDS}


@dataclass(frozen=True)
class ObjectKey:
    """One key of the objects of a list-of-objects setting."""

    key: str
    json_type: str  # "string" | "integer"
    description: str  # Markdown
    required: bool
    choices: tuple[str, ...]  # an Enum field's values, else ()


def _object_keys(s: Setting) -> list[ObjectKey] | None:
    """The keys of ``s``'s objects when it is a list of objects (a tuple of dataclasses)."""
    args = typing.get_args(s.type)
    if typing.get_origin(s.type) is not tuple or not args or not isinstance(args[0], type):
        return None
    cls = args[0]
    if not dataclasses.is_dataclass(cls):
        return None
    table = OBJECT_LISTS.get(cls)
    if table is None:
        raise GenerateError(f"{s.name} is a list of {cls.__name__}: add its keys to OBJECT_LISTS")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    keys = []
    for key, (fname, json_type, description) in table.items():
        f, hint = fields[fname], hints[fname]
        required = (f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING)
        is_enum = isinstance(hint, type) and issubclass(hint, enum.Enum)
        keys.append(ObjectKey(key, json_type, description, required,
                              tuple(m.value for m in hint) if is_enum else ()))
    return keys


def _documented() -> list[Setting]:
    return [s for s in SETTINGS if s.audience is not Audience.TESTS]


def _doc(s: Setting) -> str:
    return f"{s.doc} {RELOAD_NOTE}" if s.reload else s.doc


def _number(value: float) -> str:
    return json.dumps(value)


# --- README ----------------------------------------------------------------------------------


def _readme_values(s: Setting) -> str:
    keys = _object_keys(s)
    if keys is not None:
        shown = ", ".join(f"`{k.key}`" + (" (required)" if k.required else "") for k in keys)
        return f"a list of objects with the keys {shown} (see its meaning)"
    if isinstance(s.default, tuple):
        return "a list of " + ", ".join(f"`{c}`" for c in s.choices)
    if s.choices:
        return ", ".join(f"`{c}`" for c in s.choices)
    if s.range is not None:
        lo, hi = s.range
        return f"{_number(lo)}–{_number(hi)}"
    return "text or `null`" if s.type_doc == "string or null" else "text"


def _all_choices(s: Setting) -> bool:
    """The default is every choice (shown as "all")."""
    default = s.client_default
    return bool(s.choices) and isinstance(default, list) and tuple(default) == s.choices


def _readme_default(s: Setting) -> str:
    default = s.client_default
    if _all_choices(s):
        return "all"
    return f"`{json.dumps(default, ensure_ascii=False)}`"


def readme_table() -> str:
    rows = ["| setting | default | values | meaning |", "|---|---|---|---|"]
    for s in _documented():
        cells = [f"`{s.client_name}`", _readme_default(s), _readme_values(s), _doc(s)]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def render_readme(text: str) -> str:
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise GenerateError(f"{README}: no {README_BEGIN} … {README_END} around the settings table")
    note = f"<!-- generated by {GENERATED_BY} from server/config.py: edit the schema, not this -->"
    body = f"{README_BEGIN}\n{note}\n\n{readme_table()}\n\n"
    return text[:begin] + body + text[end:]


# --- VS Code ---------------------------------------------------------------------------------


def _item_schema(keys: list[ObjectKey]) -> dict[str, Any]:
    """One object of a list-of-objects setting; VS Code checks settings.json against it."""
    props: dict[str, Any] = {}
    for k in keys:
        prop: dict[str, Any] = {"type": k.json_type}
        if k.choices:
            prop["enum"] = list(k.choices)
        prop["markdownDescription"] = k.description
        props[k.key] = prop
    return {"type": "object", "properties": props,
            "required": [k.key for k in keys if k.required], "additionalProperties": False}


def _json_schema(s: Setting) -> dict[str, Any]:
    """type, items, enum, bounds: the JSON-schema form of the setting's type and checks."""
    ftype = s.type
    keys = _object_keys(s)
    if keys is not None:
        return {"type": "array", "items": _item_schema(keys)}
    if isinstance(ftype, type) and issubclass(ftype, enum.Enum):
        return {"type": "string", "enum": list(s.choices)}
    if isinstance(s.default, tuple):
        return {"type": "array", "items": {"type": "string"}}
    out: dict[str, Any] = {}
    if ftype is int:
        out["type"] = "integer"
    elif ftype is float:
        out["type"] = "number"
    elif ftype is str:
        out["type"] = "string"
    elif s.type_doc == "string or null":
        out["type"] = ["string", "null"]
    else:
        raise GenerateError(f"no JSON schema for {s.name}: {ftype!r}")
    if s.range is not None:
        out["minimum"], out["maximum"] = s.range
    if "string" in out["type"]:
        out["minLength"] = 1  # the server refuses an empty string
    return out


def _vscode_markdown(s: Setting, linked: set[str]) -> str:
    # `temperature` → `#pingti.temperature#`: a link in VS Code's settings editor. The keys of a
    # list-of-objects setting stay as they are: in its doc `model` is the object's key.
    keys = _object_keys(s)
    if keys is not None:
        linked = linked - {k.key for k in keys}

    def link(m: re.Match[str]) -> str:
        name = m.group(1)
        return f"`#{VSCODE_SECTION}.{name}#`" if name in linked else m.group(0)

    return re.sub(r"`(\w+)`", link, _doc(s))


def _enum_descriptions(key: str, old: dict[str, Any], choices: list[str]) -> list[str] | None:
    descriptions = old.get("enumDescriptions")
    if not isinstance(descriptions, list):
        return None
    by_value = dict(zip(old.get("enum", []), descriptions, strict=False))
    missing = [c for c in choices if c not in by_value]
    if missing:
        print(f"{PACKAGE_JSON}: {key} has no enumDescriptions for {missing}: add them there",
              file=sys.stderr)
    return [by_value.get(c, "") for c in choices]


def vscode_entry(s: Setting, old: dict[str, Any], linked: set[str]) -> dict[str, Any]:
    key = f"{VSCODE_SECTION}.{s.client_name}"
    schema = _json_schema(s)
    entry: dict[str, Any] = {"type": schema.pop("type")}
    for k in ("items", "enum"):
        if k in schema:
            entry[k] = schema.pop(k)
    entry["default"] = s.client_default
    if "enum" in entry:
        descriptions = _enum_descriptions(key, old, entry["enum"])
        if descriptions is not None:
            entry["enumDescriptions"] = descriptions
    entry.update(schema)
    for k, v in old.items():
        if k not in VSCODE_OWNED and k not in entry:
            entry[k] = v
    entry["markdownDescription"] = _vscode_markdown(s, linked)
    return entry


def _is_client_setting(key: str) -> bool:
    name = key.removeprefix(f"{VSCODE_SECTION}.")
    return name in VSCODE_CLIENT_KEYS or name.startswith(VSCODE_CLIENT_PREFIXES)


def render_package_json(text: str) -> str:
    manifest = json.loads(text)
    old_props: dict[str, Any] = manifest["contributes"]["configuration"]["properties"]
    offered = [s for s in SETTINGS if s.audience is Audience.EDITORS]
    linked = {s.client_name for s in offered}
    entries = {f"{VSCODE_SECTION}.{s.client_name}": s for s in offered}
    clash = [k for k in entries if _is_client_setting(k)]
    if clash:
        raise GenerateError(f"{PACKAGE_JSON}: {clash} would be both the extension's and the server's")
    # In the order the file has (the settings editor's order); new ones at the end. A server
    # setting no longer offered in editors goes.
    props = {}
    for key, old in old_props.items():
        if _is_client_setting(key):
            props[key] = old
        elif key in entries:
            props[key] = vscode_entry(entries[key], old, linked)
    for key, s in entries.items():
        if key not in props:
            props[key] = vscode_entry(s, {}, linked)
    manifest["contributes"]["configuration"]["properties"] = props
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


# --- Neovim ----------------------------------------------------------------------------------


def _lua(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        return f"'{escaped}'"
    if isinstance(value, (list, tuple)):
        return "{ " + ", ".join(_lua(v) for v in value) + " }" if value else "{}"
    raise GenerateError(f"no Lua form for {value!r}")


def render_nvim_lua(_old: str = "") -> str:
    lines = [
        "--- The pingti server's settings (server/config.py), in its order: the names the server",
        "--- accepts, their type, default, bounds and meaning. `reload`: a change loads the model",
        "--- again; `audience = 'tests'`: a knob of the test-suite, documented nowhere else; `keys`:",
        "--- the keys of each object of a list-of-objects setting (`backends`).",
        "---",
        f"--- Generated by {GENERATED_BY}; edit server/config.py, not this file.",
        "return {",
    ]
    for s in SETTINGS:
        fields: list[tuple[str, Any]] = [("name", s.client_name), ("field", s.name)]
        if s.aliases:
            fields.append(("aliases", list(s.aliases)))
        fields.append(("type", s.type_doc))
        if s.client_default is not None:
            fields.append(("default", s.client_default))
        if s.choices:
            fields.append(("choices", list(s.choices)))
        if s.range is not None:
            fields += [("min", s.range[0]), ("max", s.range[1])]
        keys = _object_keys(s)
        if keys is not None:
            fields.append(("keys", [k.key for k in keys]))
        fields += [("reload", s.reload), ("audience", s.audience.value), ("doc", s.doc)]
        lines.append("  {")
        lines += [f"    {k} = {_lua(v)}," for k, v in fields]
        lines.append("  },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _help_summary(s: Setting) -> str:
    quoted = ", ".join(json.dumps(c) for c in s.choices)
    if _object_keys(s) is not None:
        kind = s.type_doc  # the doc lists the keys
    elif isinstance(s.default, tuple):
        kind = f"{s.type_doc}: {quoted}"
    elif s.choices:
        kind = f"one of {quoted}"
    elif s.range is not None:
        kind = f"{s.type_doc} {_number(s.range[0])}-{_number(s.range[1])}"
    else:
        kind = s.type_doc
    default = s.client_default
    if _all_choices(s):
        shown = "all"
    else:
        shown = "nil" if default is None else json.dumps(default)
    return f"({kind}; default: {shown})"


def _help_entry(s: Setting) -> list[str]:
    tag = f"*pingti-setting-{s.client_name}*"
    if len(s.client_name) + 1 + len(tag) <= HELP_WIDTH:
        head = [s.client_name + tag.rjust(HELP_WIDTH - len(s.client_name))]
    else:
        head = [tag.rjust(HELP_WIDTH), s.client_name]
    text = f"{_help_summary(s)} {_doc(s)}"
    if re.search(r"[*|]", s.doc):
        raise GenerateError(f"the doc of {s.name} has '*' or '|' (a tag or a link in Vim help)")
    body = textwrap.wrap(text, HELP_WIDTH, initial_indent="    ", subsequent_indent="    ",
                         break_long_words=False, break_on_hyphens=False)
    return head + body


def help_section() -> list[str]:
    lines = [
        "",
        "What the server accepts in the `settings` option (|pingti-opt-settings|) and",
        "|pingti.configure()|; an invalid value is reported and replaced by its",
        "default. The same list is `require('pingti.settings')`.",
        "",
    ]
    for s in _documented():
        lines += _help_entry(s)
    return lines + [""]


def render_nvim_help(text: str) -> str:
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.rstrip().endswith(HELP_TAG)]
    if len(starts) != 1:
        raise GenerateError(f"{NVIM_HELP}: no single header line ending with {HELP_TAG}")
    start = starts[0] + 1
    end = start
    while end < len(lines) and not lines[end].startswith(("=====", " vim:")):
        end += 1
    if end == len(lines):
        raise GenerateError(f"{NVIM_HELP}: nothing ends the section under {HELP_TAG}")
    return "\n".join(lines[:start] + help_section() + lines[end:])


# --- all of them -----------------------------------------------------------------------------

ARTEFACTS: dict[Path, Callable[[str], str]] = {
    README: render_readme,
    PACKAGE_JSON: render_package_json,
    NVIM_LUA: render_nvim_lua,
    NVIM_HELP: render_nvim_help,
}


def generate(root: Path | None = None) -> dict[Path, tuple[str, str]]:
    """Each artefact's path → (its text now, its text from the schema)."""
    root = root or ROOT
    out = {}
    for rel, render in ARTEFACTS.items():
        path = root / rel
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        out[rel] = (old, render(old))
    return out


def check(root: Path | None = None) -> list[str]:
    """A unified diff (committed → generated) for every artefact that drifted from the schema."""
    diffs = []
    for rel, (old, new) in generate(root).items():
        if old != new:
            diffs.append("".join(difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True),
                fromfile=f"{rel} (committed)", tofile=f"{rel} (from server/config.py)")))
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and show a diff when an artefact differs")
    args = parser.parse_args(argv)
    try:
        if args.check:
            diffs = check()
            for diff in diffs:
                sys.stdout.write(diff)
            if diffs:
                print(f"\n{len(diffs)} artefact(s) differ from server/config.py's settings: run "
                      f"python {GENERATED_BY}", file=sys.stderr)
                return 1
            return 0
        for rel, (old, new) in generate().items():
            if old != new:
                (ROOT / rel).write_text(new, encoding="utf-8")
                print(f"wrote {rel}")
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
