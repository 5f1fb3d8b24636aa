"""The documentation: the site builds strictly, the README stays a front door, and no file
names a document that the repository does not contain."""

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from playspeed.cli import COMMANDS

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
SETUP_COMMANDS = (
    'pip install torch==2.13.0 -e ".[dev]" && playspeed demo --quick',
    'pip install torch==2.13.0 -e ".[dev]" && python -m pytest -q',
)
# Documents that playspeed and its benchmarks write into run directories: naming them names
# no file of the repository. Each must appear quoted in the code that writes it, so the list
# cannot outlive the code.
RUN_OUTPUTS = ("report.md", "compare.md", "model_card.md", "table.md", "summary.md")
DOCUMENT = re.compile(r"(?<![\w./-])([\w.-]*\w\.md)\b")
REPO_PATH = re.compile(r"(?<![\w./-])((?:docs|configs|benchmarks|src|tests|\.ci)/[\w./*-]*\w)"
                       r"(#[\w-]+)?")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
SKIPPED_FOLDERS = {"__pycache__", "runs", "site", "build", "dist"}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(*patterns: str) -> list[Path]:
    return sorted({path for pattern in patterns for path in REPO.glob(pattern)
                   if path.is_file()})


# Files that may name documents: what users read (README, the site, the configs) and the code
# beside it. Left out: the tests, which name the temporary files they write, and
# pyproject.toml, whose package-data globs are relative to the package.
USER_FILES = _files("README.md", "mkdocs.yml", ".ci/*", "docs/**/*.md", "docs/**/*.py",
                    "src/playspeed/configs/*/*.yaml", "benchmarks/*.py")
PACKAGE_FILES = _files("src/playspeed/**/*.py")
BENCHMARK_FILES = _files("benchmarks/*.py")
MARKDOWN_FILES = _files("README.md", "docs/**/*.md")


def _anchors(markdown_file: Path) -> set[str]:
    """The heading ids MkDocs gives a page (outside code blocks; inline markup dropped)."""
    text = FENCE.sub("", markdown_file.read_text(encoding="utf-8"))
    return {slugify(re.sub(r"[`*_]", "", heading), "-") for heading in HEADING.findall(text)}


@functools.cache
def _repository_names() -> frozenset[str]:
    """The names of the repository's files (hidden folders, caches and run outputs left out)."""
    names = set()
    for _root, folders, files in os.walk(REPO):
        folders[:] = [f for f in folders if not f.startswith(".") and f not in SKIPPED_FOLDERS
                      and not f.endswith(".egg-info")]
        names.update(files)
    return frozenset(names)


def _missing_documents(path: Path, text: str | None = None) -> list[str]:
    """Every document, repository path or anchor that ``path`` (or ``text``, as if it were
    that file's) names and that is not there."""
    text = path.read_text(encoding="utf-8") if text is None else text
    problems = [f"{path.relative_to(REPO)}: names {name}, which the repository does not hold"
                for name in DOCUMENT.findall(text)
                if name not in _repository_names() and name not in RUN_OUTPUTS]
    for target, anchor in REPO_PATH.findall(text):
        found = list(REPO.glob(target)) if "*" in target else [REPO / target]
        if not any(candidate.exists() for candidate in found):
            problems.append(f"{path.relative_to(REPO)}: names {target}, which does not exist")
        elif anchor and target.endswith(".md") and anchor[1:] not in _anchors(REPO / target):
            problems.append(f"{path.relative_to(REPO)}: {target}{anchor}: no such heading")
    return problems


def _broken_links(path: Path, text: str | None = None) -> list[str]:
    """Relative Markdown links and images of ``path`` (or of ``text`` placed there) whose file
    or heading is missing."""
    text = path.read_text(encoding="utf-8") if text is None else text
    problems = []
    for link in LINK.findall(FENCE.sub("", text)):
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        if not resolved.is_file():
            problems.append(f"{path.relative_to(REPO)}: link {link}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{path.relative_to(REPO)}: link {link}: no such heading")
    return problems


def test_the_scanned_files_are_there():
    assert REPO / "README.md" in USER_FILES
    assert REPO / "docs" / "method.md" in USER_FILES
    assert REPO / "src" / "playspeed" / "configs" / "pretrain" / "synthetic_cpu.yaml" in USER_FILES
    assert REPO / "src" / "playspeed" / "cli.py" in PACKAGE_FILES


@pytest.mark.parametrize("name", RUN_OUTPUTS)
def test_run_outputs_are_written_by_the_code(name):
    assert any(f'"{name}"' in path.read_text(encoding="utf-8")
               for path in PACKAGE_FILES + BENCHMARK_FILES)


@pytest.mark.parametrize("path", USER_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_file_names_a_missing_document(path):
    assert _missing_documents(path) == []


def test_no_package_file_names_a_missing_document():
    assert [problem for path in PACKAGE_FILES for problem in _missing_documents(path)] == []


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_markdown_links_resolve(path):
    assert _broken_links(path) == []


def test_the_checks_find_what_is_missing():
    page = REPO / "docs" / "probe.md"  # not written: the text is checked as if it were there
    text = ("See [the spec](SPEC.md), [a heading](method.md#no-such-heading),\n"
            "docs/nowhere.png, docs/method.md#nor-this and OTHER.md.\n"
            "[fine](method.md#temporal-group-normalization), docs/figures/method.png\n")
    links, documents = _broken_links(page, text), _missing_documents(page, text)
    assert len(links) == 2 and "SPEC.md" in links[0] and "no-such-heading" in links[1]
    assert sorted(p.split(": names ")[-1].split(",")[0] for p in documents
                  if "names" in p) == ["OTHER.md", "SPEC.md", "docs/nowhere.png"]
    assert any("docs/method.md#nor-this: no such heading" in p for p in documents)


def test_readme_is_a_short_front_door():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES
    for command in SETUP_COMMANDS:  # .ci/run greps the test command
        assert command in lines


def test_sphinx_roles_become_code():
    pytest.importorskip("griffe")
    roles = _load(REPO / "docs" / "hooks" / "sphinx_roles.py", "sphinx_roles")
    assert roles.replace_roles("see :class:`~playspeed.data.PretextGrid` and "
                               ":func:`playspeed.export.load_backbone`, :data:`FORMATS`") == \
        "see `PretextGrid` and `playspeed.export.load_backbone`, `FORMATS`"


def test_cli_reference_is_the_parsers_help():
    hook = _load(REPO / "docs" / "hooks" / "cli_reference.py", "cli_reference")
    page = hook.render_reference()
    for command in COMMANDS:
        assert f"## playspeed {command}\n" in page
        assert f"usage: playspeed {command}" in page
    assert "--topk TOPK" in page  # an option, as argparse prints it
    assert hook.on_page_markdown(f"# CLI\n\n{hook.MARKER}\n", None, None, None).count(
        "usage: playspeed") == len(COMMANDS) + 1


@pytest.mark.slow
def test_method_figure_draws(tmp_path):
    figure = _load(REPO / "docs" / "figures" / "method_figure.py", "method_figure")
    out = figure.main(tmp_path / "method.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 50_000


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as ``mkdocs build --strict`` writes it (warnings fail the build)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "-f", str(REPO / "mkdocs.yml"), "-d", str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.slow
def test_site_builds_strictly(site):
    for page in ("", "method", "data", "training", "scaling", "runs", "export", "cli", "api",
                 "studies", "studies/transfer-recipe", "studies/pretext-comparison",
                 "studies/throughput"):
        assert (site / page / "index.html").is_file(), page
    assert (site / "figures" / "method.png").is_file()


@pytest.mark.slow
def test_site_has_the_cli_reference_and_the_api(site):
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert all(f"usage: playspeed {command}" in cli for command in COMMANDS)
    api = re.sub(r"<[^>]+>", "", (site / "api" / "index.html").read_text(encoding="utf-8"))
    for name in ("TemporalGroupNorm", "build_backbone", "load_backbone", "PlaybackSpeedClips",
                 "FrameStore", "load_config", "OBJECTIVES"):
        assert name in api
    assert not re.search(r":(class|func|meth|mod|data):", api)
