"""Generates docs/API.md from the docstrings of rnnfast's public modules.

    python docs/gen_api.py           # rewrite docs/API.md
    python docs/gen_api.py --check   # exit 1 if docs/API.md is out of date

It reads the package's sources with ``ast`` (nothing is imported), so it needs neither the
compiled extension nor the optional dependencies, and gives the same page everywhere.
``--package-dir`` reads another copy of the package (the tests pass the installed one).

For each module: its docstring, then every name of its ``__all__`` (or its public functions
and classes), followed to where it is defined: the signature as written (annotations
included) and the docstring. Docstring sections ``Args:``/``Returns:``/``Raises:`` become
lists; a paragraph ending in ``::`` introduces a code block.
"""
import argparse
import ast
import inspect
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAGE = HERE / "API.md"
PACKAGE = "rnnfast"

# (module, how): "full" documents every public name; "names" lists them after the docstring.
MODULES = [
    ("rnnfast", "full"),
    ("rnnfast.functional", "full"),
    ("rnnfast.reference", "names"),
    ("rnnfast.nn", "full"),
    ("rnnfast.models", "full"),
    ("rnnfast.models.merging", "full"),
    ("rnnfast.losses", "full"),
    ("rnnfast.optim", "full"),
    ("rnnfast.utils", "full"),
    ("rnnfast.generation", "full"),
    ("rnnfast.torch", "full"),
]
SECTIONS = ("Args:", "Arguments:", "Parameters:", "Returns:", "Yields:", "Raises:", "Attributes:")
WIDTH = 88
# An entry of a section: "name: text", "a, b: text", "*args: text", "name (type): text".
ITEM = re.compile(r"^([\w*]+(?:, [\w*]+)*)(\s*\([^)]*\))?:(\s.*|)$")


class Source:
    """The parsed modules of one copy of the package, by dotted name."""

    def __init__(self, package_dir):
        self.package_dir = Path(package_dir)
        self.trees = {}

    def path(self, module):
        parts = module.split(".")[1:]
        base = self.package_dir.joinpath(*parts)
        for candidate in (base / "__init__.py", base.with_suffix(".py")):
            if candidate.is_file():
                return candidate
        return None

    def tree(self, module):
        if module not in self.trees:
            path = self.path(module)
            self.trees[module] = ast.parse(path.read_text(encoding="utf-8")) if path else None
        return self.trees[module]


def is_package(source, module):
    path = source.path(module)
    return path is not None and path.name == "__init__.py"


def absolute(source, module, node):
    """The module an ``ImportFrom`` in ``module`` imports from."""
    if not node.level:
        return node.module
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package(source, module) else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def public_names(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(node.value)][0]
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and not n.name.startswith("_")]


def resolve(source, module, name, depth=0):
    """(module, node) where ``name`` of ``module`` is defined; node is None when it comes
    from outside the package or cannot be found."""
    tree = source.tree(module)
    if tree is None or depth > 20:
        return module, None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return module, node
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return module, node
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    origin = absolute(source, module, node)
                    if origin == PACKAGE or origin.startswith(PACKAGE + "."):
                        if source.tree(origin) is None and source.path(f"{origin}.{alias.name}"):
                            return f"{origin}.{alias.name}", None
                        return resolve(source, origin, alias.name, depth + 1)
                    return origin, None
    return module, None


def format_arguments(args, drop_first):
    """The parameters of a signature, each as written in the source."""
    def one(arg, default=None, prefix=""):
        text = prefix + arg.arg
        if arg.annotation is not None:
            text += ": " + ast.unparse(arg.annotation)
        if default is not None:
            text += (" = " if arg.annotation is not None else "=") + ast.unparse(default)
        return text

    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    items = [one(a, d) for a, d in zip(positional, defaults)]
    if args.posonlyargs:
        items.insert(len(args.posonlyargs), "/")
    if drop_first and positional:
        items = items[1:]
        if items and items[0] == "/":
            items = items[1:]
    if args.vararg:
        items.append(one(args.vararg, prefix="*"))
    elif args.kwonlyargs:
        items.append("*")
    items += [one(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        items.append(one(args.kwarg, prefix="**"))
    return items


def signature(prefix, node, drop_first=False, returns=True):
    items = format_arguments(node.args, drop_first)
    tail = ")"
    if returns and node.returns is not None:
        tail += " -> " + ast.unparse(node.returns)
    line = f"{prefix}(" + ", ".join(items) + tail
    if len(line) <= WIDTH:
        return line
    return f"{prefix}(\n" + "".join(f"    {item},\n" for item in items) + tail


def decorators(node):
    return {ast.unparse(d) for d in node.decorator_list}


def render_docstring(text):
    """Markdown of a docstring: sections as lists, ``::`` blocks as code, other text as is."""
    if not text:
        return []
    out, section, literal = [], None, None
    for raw in numpy_sections(inspect.cleandoc(text).splitlines()) + [""]:
        indent = len(raw) - len(raw.lstrip())
        line = raw.strip()
        if literal is not None:
            if line and indent <= literal[0]:
                out += ["```python"] + [l[literal[1]:] for l in trim(literal[2])] + ["```", ""]
                literal = None
            else:
                literal[2].append(raw)
                if line and literal[1] is None:
                    literal[1] = indent
                continue
        if line in SECTIONS:
            section = line[:-1]
            out += [f"**{section}**", ""]
            continue
        if not line:
            section = None if indent == 0 else section
            out.append("")
            continue
        if line.endswith("::"):
            out.append(line[:-1])
            literal = [indent, None, []]
            continue
        item = ITEM.match(line) if section and indent <= 4 else None
        if item:
            out.append(f"- `{item.group(1)}`{item.group(2) or ''}:{item.group(3)}")
        elif section and out and out[-1].startswith("- "):
            out[-1] += " " + line
        else:
            out.append(line)
    return collapse(out)


def numpy_sections(lines):
    """NumPy-style headers (a title underlined with dashes) as ``Title:``."""
    out = []
    for line in lines:
        if out and set(line.strip()) == {"-"} and out[-1].strip() + ":" in SECTIONS:
            out[-1] = out[-1].strip() + ":"
            continue
        out.append(line)
    return out


def trim(lines):
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def collapse(lines):
    """No runs of blank lines, none at either end."""
    out = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    return trim(out)


def render_function(qualified, node, drop_first=False, level="###"):
    lines = [f"{level} `{qualified}`", "", "```python",
             signature(f"def {qualified.rsplit('.', 1)[-1]}", node, drop_first), "```", ""]
    return lines + render_docstring(ast.get_docstring(node)) + [""]


def render_class(qualified, node):
    name = qualified.rsplit(".", 1)[-1]
    bases = ", ".join(ast.unparse(b) for b in node.bases)
    lines = [f"### `{qualified}`", ""]
    init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                None)
    header = signature(f"class {name}", init, drop_first=True, returns=False) if init else (
        f"class {name}" + (f"({bases})" if bases else ""))
    lines += ["```python", header, "```", ""]
    if bases and init:
        lines += [f"Bases: `{bases}`", ""]
    lines += render_docstring(ast.get_docstring(node)) + [""]
    if init is not None and ast.get_docstring(init):
        lines += render_docstring(ast.get_docstring(init)) + [""]
    for child in node.body:
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if child.name.startswith("_") and child.name != "__call__":
            continue
        kinds = decorators(child)
        if "property" in kinds:
            lines += [f"#### `{name}.{child.name}` (property)", ""]
            lines += render_docstring(ast.get_docstring(child)) + [""]
            continue
        if any(k.endswith((".setter", ".deleter")) for k in kinds):
            continue
        lines += render_function(f"{name}.{child.name}", child,
                                 drop_first="staticmethod" not in kinds, level="####")
    return lines


def render_module(source, module, how):
    tree = source.tree(module)
    lines = [f"## `{module}`", ""] + render_docstring(ast.get_docstring(tree)) + [""]
    names = public_names(tree)
    if how == "names":
        return lines + ["Names: " + ", ".join(f"`{n}`" for n in names), ""]
    for name in names:
        origin, node = resolve(source, module, name)
        qualified = f"{module}.{name}"
        if isinstance(node, ast.ClassDef):
            lines += render_class(qualified, node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines += render_function(qualified, node)
        elif node is not None:
            lines += [f"### `{qualified}`", "", f"Variable, defined in `{origin}`.", ""]
        else:
            lines += [f"### `{qualified}`", "", f"From `{origin}`.", ""]
    return lines


def render(package_dir):
    """The whole page, as text, from the package sources in ``package_dir``."""
    source = Source(package_dir)
    present = [(m, how) for m, how in MODULES if source.tree(m) is not None]
    lines = ["# rnnfast API", "",
             "Generated from the docstrings by `python docs/gen_api.py`; do not edit by hand.",
             "Shapes: `T` time steps, `B` sequences (batch), `I` input features, `H` hidden",
             "units, `L` length, `C` channels, `K` kernel size. The contract behind them is",
             "the project's DESIGN.md.", "", "Modules: " + ", ".join(
                 f"[`{m}`](#{m.replace('.', '')})" for m, _ in present), ""]
    for module, how in present:
        lines += render_module(source, module, how)
    return "\n".join(collapse(lines)) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    parser.add_argument("--package-dir", type=Path, default=HERE.parent / PACKAGE,
                        help="the package to document (default: the source tree's)")
    args = parser.parse_args(argv)
    page = render(args.package_dir)
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if current != page:
            print(f"{PAGE.name} is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
