"""Read the project's Dockerfile: its stages, their instructions, environment and installs."""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def parse_dockerfile(path: Path = DOCKERFILE) -> list[dict]:
    """Stages of a Dockerfile: ``{'name', 'base', 'instructions': [(KEYWORD, text)]}``."""
    lines, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    stages: list[dict] = []
    global_args = {}
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            stages.append({"name": name, "base": words[0], "instructions": []})
        elif not stages:
            if keyword == "ARG" and "=" in rest:
                key, value = rest.split("=", 1)
                global_args[key.strip()] = value.strip()
        else:
            stages[-1]["instructions"].append((keyword, rest.strip()))
    for stage in stages:
        stage["global_args"] = global_args
    return stages


def get_stage(stages: list[dict], name: str) -> dict:
    """The stage called ``name`` (``FROM ... AS name``)."""
    return next(s for s in stages if s["name"] == name)


def stage_env(stage: dict) -> dict:
    """``ENV`` settings of a stage, ``{name: value}``."""
    env = {}
    for keyword, text in stage["instructions"]:
        if keyword == "ENV":
            for item in shlex.split(text):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def pip_installs(commands: list[str]) -> list[str]:
    """What each ``pip install`` installs, in order (non-option arguments)."""
    found = []
    for command in commands:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        simple, words = [], []
        for token in lexer:
            if token in ("&&", ";", "||", "|"):
                simple.append(words)
                words = []
            else:
                words.append(token)
        simple.append(words)
        for words in simple:
            if "pip" in " ".join(words[:4]) and "install" in words:
                found.extend(w for w in words[words.index("install") + 1:]
                             if not w.startswith("-"))
    return found


def run_commands(stage: dict) -> list[str]:
    """The shell commands of a stage's ``RUN`` instructions."""
    return [text for keyword, text in stage["instructions"] if keyword == "RUN"]
