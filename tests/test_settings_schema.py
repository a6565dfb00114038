"""The settings schema (server/config.py ``SETTINGS``) and what is derived from it.

- Each setting is declared once: the accepted keys, ranges, types and ``Config.model_key()``
  follow from the declarations, with nothing listed twice.
- ``scripts/gen_settings.py --check``: the README table, VS Code's package.json and the Neovim
  settings list and help are what the schema writes (run the script to update them).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from server import languages
from server.config import (
    BACKEND_FIELDS,
    CONSTRAINT_LANGUAGES,
    SETTINGS,
    Audience,
    Backend,
    Config,
    EngineType,
    parse_settings,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = Config()
BY_NAME = {s.name: s for s in SETTINGS}
# The fields whose change loads the model again (server/lsp.py compares model_key()).
RELOADING = {"model", "backend", "quantization", "device", "threads", "cache_dir",
             "fake_token_delay", "context_window", "kv_cache_tokens", "kv_cache_documents",
             "flash_attention",
             "backends", "draft_tokens", "draft_model"}
# A valid non-default value of the settings whose type alone does not give one.
OTHER_VALUES: dict[str, Any] = {"backends": [{"type": "local"}], "repo_exclude": ["*.gen.py"]}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_settings", ROOT / "scripts" / "gen_settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def _other_value(s: Any) -> Any:
    """A valid raw value for ``s`` that differs from its default."""
    if s.name in OTHER_VALUES:
        return OTHER_VALUES[s.name]
    if s.choices and not isinstance(s.default, tuple):
        return next(c for c in s.choices if c != s.client_default)
    if isinstance(s.default, tuple):
        return list(s.choices[:1])
    if s.range is not None:
        lo, hi = s.range
        return hi if s.default != hi else lo
    return "/some/path"


# ---------------------------------------------------------------------------------------------
# The schema itself


def test_every_field_is_one_setting_in_field_order():
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(Config)]


def test_defaults_and_types_are_the_fields():
    for s in SETTINGS:
        assert getattr(DEFAULTS, s.name) == s.default, s.name
        if isinstance(s.type, type) and issubclass(s.type, enum.Enum):
            assert s.choices == tuple(m.value for m in s.type)


def test_client_names_are_camel_case_of_the_field():
    for s in SETTINGS:
        head, *rest = s.name.split("_")
        assert s.client_name == head + "".join(p.capitalize() for p in rest), s.name


def test_every_setting_has_a_short_doc():
    for s in SETTINGS:
        assert s.doc[:1].isupper() or s.doc.startswith("`"), s.name
        assert s.doc.rstrip().endswith((".", "…", ")")), s.name
        assert len(s.doc) < 400, s.name


def test_keys_are_unique_across_settings():
    keys = [k for s in SETTINGS for k in {s.name, s.client_name, *s.aliases}]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("s", SETTINGS, ids=lambda s: s.name)
def test_every_key_of_a_setting_applies(s):
    raw = _other_value(s)
    expected = parse_settings({s.client_name: raw})
    assert expected.errors == []
    assert getattr(expected.config, s.name) != s.default
    for key in (s.name, *s.aliases):
        assert parse_settings({key: raw}).config == expected.config


@pytest.mark.parametrize("s", [s for s in SETTINGS if s.range], ids=lambda s: s.name)
def test_the_declared_range_is_what_is_checked(s):
    lo, hi = s.range
    for ok in (lo, hi):
        parsed = parse_settings({s.client_name: ok})
        assert parsed.errors == [] and getattr(parsed.config, s.name) == ok
    step = 1 if isinstance(lo, int) and isinstance(hi, int) else 1e-3
    for bad in (lo - step, hi + step):
        parsed = parse_settings({s.client_name: bad})
        assert getattr(parsed.config, s.name) == s.default
        assert len(parsed.errors) == 1 and f"between {lo} and {hi}" in parsed.errors[0]


def test_constraint_languages_are_the_languages_module():
    assert CONSTRAINT_LANGUAGES == tuple(lang.value for lang in languages.Language)
    assert BY_NAME["constraint_languages"].choices == CONSTRAINT_LANGUAGES
    # Every dialect id the languages module knows counts as its language.
    for lsp_id, lang in languages.LSP_IDS.items():
        parsed = parse_settings({"constraintLanguages": [lsp_id.upper()]})
        assert parsed.errors == [] and parsed.config.constraint_languages == (lang.value,)


def test_the_test_backend_knob_is_not_offered_to_users():
    assert BY_NAME["fake_token_delay"].audience is Audience.TESTS
    offered = {s.client_name for s in SETTINGS if s.audience is Audience.EDITORS}
    assert "fakeTokenDelay" not in offered


# ---------------------------------------------------------------------------------------------
# model_key


def test_model_key_is_the_reloading_settings():
    assert {s.name for s in SETTINGS if s.reload} == RELOADING
    assert DEFAULTS.model_key() == tuple(getattr(DEFAULTS, s.name) for s in SETTINGS if s.reload)


@pytest.mark.parametrize("s", SETTINGS, ids=lambda s: s.name)
def test_model_key_changes_exactly_with_reloading_settings(s):
    changed = parse_settings({s.client_name: _other_value(s)}).config
    assert changed != DEFAULTS
    assert (changed.model_key() != DEFAULTS.model_key()) is s.reload


def test_model_key_ignores_non_reloading_settings_all_at_once():
    raw = {s.client_name: _other_value(s) for s in SETTINGS if not s.reload}
    parsed = parse_settings(raw, Config(backend=Backend.FAKE))
    assert parsed.errors == []
    assert parsed.config.model_key() == Config(backend=Backend.FAKE).model_key()


# ---------------------------------------------------------------------------------------------
# The generated artefacts


def test_committed_artefacts_match_the_schema():
    diffs = gen.check()
    assert not diffs, ("generated settings lists drifted from server/config.py; run "
                       "`.venv/bin/python scripts/gen_settings.py`:\n" + "\n".join(diffs)[:6000])


def test_check_reports_a_drift(tmp_path, capsys, monkeypatch):
    for rel in gen.ARTEFACTS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text(encoding="utf-8"), encoding="utf-8")
    assert gen.check(tmp_path) == []
    readme = tmp_path / gen.README
    readme.write_text(readme.read_text(encoding="utf-8").replace("| `768` |", "| `1024` |"),
                      encoding="utf-8")
    diffs = gen.check(tmp_path)
    assert len(diffs) == 1 and "-| `contextTokens` | `1024` |" in diffs[0]
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert "contextTokens" in capsys.readouterr().out
    assert gen.main([]) == 0
    assert gen.check(tmp_path) == []


def test_readme_table_lists_every_documented_setting():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index(gen.README_BEGIN):text.index(gen.README_END)]
    for s in SETTINGS:
        assert (f"| `{s.client_name}` |" in table) is (s.audience is not Audience.TESTS), s.name


def test_package_json_offers_the_editor_settings_and_keeps_the_extensions_own():
    manifest = json.loads((ROOT / gen.PACKAGE_JSON).read_text(encoding="utf-8"))
    props = manifest["contributes"]["configuration"]["properties"]
    server_keys = {k.removeprefix("pingti.") for k in props if not gen._is_client_setting(k)}
    assert server_keys == {s.client_name for s in SETTINGS if s.audience is Audience.EDITORS}
    assert {"pingti.server.command", "pingti.server.python", "pingti.languages",
            "pingti.trace.server"} <= set(props)
    for s in SETTINGS:
        entry = props.get(f"pingti.{s.client_name}")
        if entry is None:
            continue
        assert entry["default"] == s.client_default
        if s.range:
            assert (entry["minimum"], entry["maximum"]) == s.range
        if s.choices:
            assert entry["enum"] == list(s.choices)
            if "enumDescriptions" in entry:
                assert len(entry["enumDescriptions"]) == len(s.choices)
        assert ("reloads the model" in entry["markdownDescription"]) is s.reload
    assert props["pingti.sandbox"]["scope"] == "machine"  # a workspace may not turn it off


def test_vscode_entry_keeps_extra_fields_and_moves_enum_descriptions():
    s = BY_NAME["backend"]
    old = {"type": "string", "enum": ["fake", "auto", "llama.cpp", "transformers"],
           "enumDescriptions": ["F", "A", "L", "T"], "scope": "window", "description": "old"}
    entry = gen.vscode_entry(s, old, set())
    assert entry["enum"] == list(s.choices)
    assert entry["enumDescriptions"] == [{"auto": "A", "transformers": "T", "llama.cpp": "L",
                                          "fake": "F"}[c] for c in s.choices]
    assert entry["scope"] == "window"
    assert "description" not in entry and entry["markdownDescription"].startswith("Which")


def test_package_json_backends_are_the_parsers_keys():
    manifest = json.loads((ROOT / gen.PACKAGE_JSON).read_text(encoding="utf-8"))
    entry = manifest["contributes"]["configuration"]["properties"]["pingti.backends"]
    assert entry["type"] == "array" and entry["default"] == []
    items = entry["items"]
    assert items["type"] == "object" and items["additionalProperties"] is False
    assert items["required"] == ["type"]
    assert list(items["properties"]) == list(BACKEND_FIELDS)
    for key, (_, jtype, description) in BACKEND_FIELDS.items():
        assert items["properties"][key]["type"] == jtype
        assert items["properties"][key]["markdownDescription"] == description
    assert items["properties"]["type"]["enum"] == [t.value for t in EngineType]
    # In its description `model` is an entry's key, not a link to the model setting.
    assert "#pingti.model#" not in entry["markdownDescription"]
    # A workspace's settings may not send the code to another machine (or hold a key).
    assert entry["scope"] == "machine"


def test_readme_and_help_point_at_the_backend_keys():
    s = BY_NAME["backends"]
    assert gen._readme_default(s) == "`[]`"
    values = gen._readme_values(s)
    assert "`type` (required)" in values and all(f"`{k}`" in values for k in BACKEND_FIELDS)
    assert gen._help_summary(s) == "(list of backend objects; default: [])"


def test_a_list_of_unknown_objects_is_an_error_not_a_list_of_strings():
    @dataclasses.dataclass(frozen=True)
    class Other:
        x: int = 0

    s = dataclasses.replace(BY_NAME["backends"], type=tuple[Other, ...])
    with pytest.raises(gen.GenerateError, match="OBJECT_LISTS"):
        gen._json_schema(s)


def test_nvim_settings_list_names_every_setting():
    text = (ROOT / gen.NVIM_LUA).read_text(encoding="utf-8")
    for s in SETTINGS:
        assert f"name = '{s.client_name}'," in text
        assert f"field = '{s.name}'," in text
    assert text.count("reload = true,") == len(RELOADING)
