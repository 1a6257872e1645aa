"""The system prompt, assembled from named, versioned blocks.

A block is a file in the project's `prompt_blocks` folder (default `policies/`): its name is the
file stem, its suffix .md, .txt or .j2. It may start with YAML front matter:

    ---
    version: 3
    description: refusal rules agreed with legal, 2026-03
    ---
    # Refusal rules ...

A block's version is its front-matter `version`, else the first 12 hex digits of the sha256 of
the file. Block names (in the candidate's `prompt.blocks`) and block bodies are Jinja2 templates
(undefined variables are errors) over the variables: the candidate's `prompt.variables`, then the
request's metadata (the request wins). So `jurisdiction-{{ jurisdiction }}` picks the block
jurisdiction-EU for a request (or eval case) with metadata `jurisdiction: EU`.

Default layout of the system message (empty parts left out, parts separated by a blank line):
the blocks in order, the candidate's inline `system_prompt`, the output format (when the
candidate has a schema), the tools section, the context section (rung.pipeline.context). A
candidate's `prompt.template` (a Jinja file) replaces that layout; it sees {{ blocks }},
{{ system_prompt }}, {{ output_format }}, {{ tools }}, {{ context }} and the variables.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rung.core import Message, Request, RetrievedChunk
from rung.errors import ConfigError
from rung.pipeline.context import format_context

if TYPE_CHECKING:
    import jinja2

    from rung.config import CandidateConfig

BLOCK_SUFFIXES = (".md", ".txt", ".j2")
TEMPLATE_SLOTS = ("blocks", "system_prompt", "output_format", "tools", "context")
_JINJA = re.compile(r"{{.*?}}|{%.*?%}", re.DOTALL)
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*\r?$\n?", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One prompt block file."""

    name: str
    path: Path
    body: str
    version: str
    description: str = ""
    body_line: int = 1  # line of the file where the body starts
    digest: str = ""  # content_version of the whole file (front matter included)


@dataclass
class BuiltPrompt:
    """The messages to send for one request, and which block versions made the system prompt."""

    messages: list[Message]
    block_versions: dict[str, str]
    system_text: str
    template_version: str | None = None

    def event(self) -> dict[str, Any]:
        """The trace event recording the prompt's blocks."""
        ev: dict[str, Any] = {"type": "prompt", "blocks": dict(self.block_versions)}
        if self.template_version:
            ev["template"] = self.template_version
        return ev


def content_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def parse_block(path: Path) -> Block:
    """A block file, with its front matter read (ConfigError names the file and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read prompt block: {e}") from None
    meta: dict[str, Any] = {}
    body, body_line = text, 1
    m = _FRONT.match(text)
    if m:
        try:
            loaded = yaml.safe_load(m.group(1))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f":{mark.line + 2}" if mark else ""
            raise ConfigError(f"{path}{line}: front matter is not valid YAML: {getattr(e, 'problem', e)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}:2: front matter must be a mapping (version:, description:), "
                              f"got {type(loaded).__name__}")
        meta = loaded or {}
        body = text[m.end():]
        body_line = text[:m.end()].count("\n") + 1
    version = meta.get("version")
    return Block(name=path.stem, path=path, body=body.strip(),
                 version=str(version) if version is not None else content_version(text),
                 description=str(meta.get("description") or ""), body_line=body_line,
                 digest=content_version(text))


def load_blocks(folder: Path) -> dict[str, Block]:
    """Every block file of a folder (not recursive), by name. Two files with one stem are an error."""
    if not folder.is_dir():
        raise ConfigError(f"prompt_blocks: folder {folder} does not exist")
    blocks: dict[str, Block] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in BLOCK_SUFFIXES or not path.is_file():
            continue
        if path.stem in blocks:
            raise ConfigError(f"{folder}: two prompt blocks named {path.stem!r}: "
                              f"{blocks[path.stem].path.name} and {path.name}; rename one")
        blocks[path.stem] = parse_block(path)
    return blocks


def _env() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                              keep_trailing_newline=False)


@dataclass
class _Compiled:
    """A Jinja template, the variables it needs, and where it comes from (for errors)."""

    template: Any
    needs: frozenset[str]
    where: str


class PromptBuilder:
    """Builds the messages of one candidate for each request (see the module doc)."""

    def __init__(self, blocks: Mapping[str, Block], block_names: Sequence[str], *, folder: Path,
                 system_prompt: str = "", variables: Mapping[str, Any] | None = None,
                 template: Path | None = None, output_format: str = "") -> None:
        self.blocks = dict(blocks)
        self.block_names = list(block_names)
        self.folder = folder
        self.system_prompt = system_prompt.strip()
        self.variables = dict(variables or {})
        self.output_format = output_format.strip()
        self._env = _env()
        self._names = [self._compile(n, f"prompt block name {n!r}") for n in self.block_names]
        self._bodies: dict[str, _Compiled] = {}
        self._template: _Compiled | None = None
        self.template_version: str | None = None
        if template is not None:
            if not template.is_file():
                raise ConfigError(f"prompt.template: {template}: no such file")
            text = template.read_text(encoding="utf-8")
            self._template = self._compile(text, f"prompt template {template}")
            self.template_version = f"{template.name}@{content_version(text)}"
        for name in self.block_names:
            if not _JINJA.search(name):  # static names are checked now, not per case
                self._block(name, name, None)

    @classmethod
    def from_config(cls, candidate: CandidateConfig, *, blocks_folder: Path, root: Path,
                    schemas: Mapping[str, Any] | None = None, where: str = "rung.yaml") -> PromptBuilder:
        """The builder of a candidate: its blocks from `blocks_folder` (rung.yaml's
        `prompt_blocks`, resolved), its template (relative to `root`, the folder of rung.yaml)
        and variables, its inline system_prompt and (with a schema) the output-format section.
        `schemas` is what rung.core.schemas.load_schemas(config) returned; `where` names
        rung.yaml in errors."""
        prompt = candidate.prompt
        folder = blocks_folder
        names = list(prompt.blocks) if prompt else []
        if names and not folder.is_dir():
            raise ConfigError(f"{where}: prompt_blocks: folder {folder} does not exist "
                              f"(the candidate uses blocks {', '.join(names)})")
        blocks = load_blocks(folder) if names else {}
        template = None
        if prompt and prompt.template:
            template = Path(prompt.template).expanduser()
            template = template if template.is_absolute() else root / template
        output_format = ""
        if candidate.output_schema:
            from rung.pipeline.structured import SchemaEnforcer

            enforcer = SchemaEnforcer.from_config(candidate, schemas or {}, where)
            output_format = enforcer.instructions() if enforcer else ""
        return cls(blocks, names, folder=folder, system_prompt=candidate.system_prompt,
                   variables=prompt.variables if prompt else {}, template=template,
                   output_format=output_format)

    # ------------------------------------------------------------ rendering

    def _compile(self, source: str, where: str, first_line: int = 1) -> _Compiled:
        import jinja2
        from jinja2 import meta

        try:
            ast = self._env.parse(source)
        except jinja2.TemplateSyntaxError as e:
            line = (e.lineno or 1) + first_line - 1
            raise ConfigError(f"{where}, line {line}: Jinja syntax error: {e.message}") from None
        return _Compiled(self._env.from_string(ast), frozenset(meta.find_undeclared_variables(ast)), where)

    def _render(self, c: _Compiled, variables: Mapping[str, Any], request: Request | None) -> str:
        import jinja2

        for_case = f" (case {request.id!r})" if request is not None else ""
        missing = sorted(c.needs - set(variables))
        if missing:
            available = ", ".join(sorted(variables)) or "none"
            raise ConfigError(f"{c.where}: variable {missing[0]!r} is undefined{for_case}; set it in the "
                              f"candidate's prompt.variables or the case's metadata (available: {available})")
        try:
            return c.template.render(**variables)
        except jinja2.UndefinedError as e:
            raise ConfigError(f"{c.where}: {e.message}{for_case}") from None
        except jinja2.TemplateError as e:
            raise ConfigError(f"{c.where}: {e}{for_case}") from None

    def variables_for(self, request: Request | None) -> dict[str, Any]:
        """The candidate's variables, overridden by the request's metadata."""
        return {**self.variables, **(request.metadata if request is not None else {})}

    def _block(self, rendered: str, configured: str, request: Request | None) -> Block:
        block = self.blocks.get(rendered)
        if block is not None:
            return block
        close = difflib.get_close_matches(rendered, list(self.blocks), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = f" rendered as {rendered!r}" if rendered != configured else ""
        for_case = f" (case {request.id!r})" if request is not None else ""
        known = ", ".join(sorted(self.blocks)) or "none"
        raise ConfigError(f"prompt block {configured!r}{shown}{for_case}: no file {rendered}"
                          f"{{{','.join(BLOCK_SUFFIXES)}}} in {self.folder}{hint} (blocks: {known})")

    def render_blocks(self, request: Request | None) -> list[tuple[Block, str]]:
        """The request's blocks, in order, each with its rendered text."""
        variables = self.variables_for(request)
        out = []
        for configured, compiled in zip(self.block_names, self._names):
            name = self._render(compiled, variables, request).strip()
            block = self._block(name, configured, request)
            if name not in self._bodies:
                self._bodies[name] = self._compile(block.body, f"prompt block {name!r} ({block.path})",
                                                   block.body_line)
            out.append((block, self._render(self._bodies[name], variables, request).strip()))
        return out

    def system_text(self, request: Request | None, retrieved: Sequence[RetrievedChunk] = (),
                    tools_section: str = "") -> tuple[str, dict[str, str]]:
        """The system prompt for a request and the versions of the blocks in it."""
        rendered = self.render_blocks(request)
        versions = {b.name: b.version for b, _ in rendered}
        blocks_text = "\n\n".join(t for _, t in rendered if t)
        context = format_context(retrieved)
        slots = {"blocks": blocks_text, "system_prompt": self.system_prompt,
                 "output_format": self.output_format, "tools": tools_section.strip(), "context": context}
        if self._template is not None:
            text = self._render(self._template, {**self.variables_for(request), **slots}, request).strip()
        else:
            text = "\n\n".join(slots[k] for k in TEMPLATE_SLOTS if slots[k])
        return text, versions

    def build(self, request: Request, retrieved: Sequence[RetrievedChunk] = (), tools_section: str = "") -> BuiltPrompt:
        """The system message (when not empty) followed by the request's conversation. A system
        message at the start of the request's conversation is appended to the built one."""
        text, versions = self.system_text(request, retrieved, tools_section)
        chat = request.chat()
        if chat and chat[0].get("role") == "system":
            own = chat.pop(0).get("content", "")
            text = f"{text}\n\n{own}".strip() if text else own
        messages: list[Message] = ([{"role": "system", "content": text}] if text else []) + chat
        return BuiltPrompt(messages, versions, text, self.template_version)

    # ------------------------------------------------------------ identity

    def reachable_blocks(self) -> list[Block]:
        """Blocks the candidate can use: its static names, and for a templated name every block
        matching it with each Jinja expression as a wildcard."""
        out: dict[str, Block] = {}
        for name in self.block_names:
            pattern = _JINJA.sub("*", name)
            for b in self.blocks.values():
                if fnmatch.fnmatchcase(b.name, pattern):
                    out[b.name] = b
        return [out[k] for k in sorted(out)]

    def fingerprint(self) -> str:
        """sha256 of everything that shapes the system prompt (for the candidate's identity)."""
        payload = {
            "blocks": self.block_names,
            "versions": {b.name: b.digest for b in self.reachable_blocks()},
            "template": self.template_version,
            "system_prompt": self.system_prompt,
            "variables": {k: str(v) for k, v in sorted(self.variables.items())},
            "output_format": self.output_format,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()
