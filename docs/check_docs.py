#!/usr/bin/env python3
"""Checks README.md and docs/**/*.md against the tree, so the docs cannot rot.

1. Programs: a ```cpp block right after `<!-- program: PATH -->` must equal the file PATH
   (from the repository root) byte for byte; a ```cpp block holding `int main(` without such a
   marker fails (a complete program shown must be a file that //docs/programs:programs_test
   builds and runs); and every docs/programs/*.cc must be shown somewhere.
2. Links: every relative link and image in the markdown must name a file or folder that
   exists, and a #fragment must name a heading of its target (GitHub's anchor rules).

Usage: check_docs.py README.md [more .md files...]. The markdown and the program files come
in as Bazel runfiles; links are resolved in the source tree the runfiles point into (the
test is tagged "external" so Bazel reruns it rather than trusting a cached pass after a
linked file moves).
"""
import os
import re
import sys

MARKER = re.compile(r"^<!-- program: (\S+) -->$")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def fenced_blocks(lines):
    """Yields (start_line_index, info_string, body) for every ``` fenced block."""
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, info, start = m.group(1), m.group(2), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line)
            i += 1
        yield start, info, "".join(l + "\n" for l in body)
        i += 1


def github_slug(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def heading_slugs(text):
    slugs, seen, fence = set(), {}, False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            slugs.add(slug if n == 0 else "%s-%d" % (slug, n))
    return slugs


def outside_code(text):
    """The text with fenced blocks and inline code blanked, so code is not read as links."""
    out, fence = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
            out.append("")
            continue
        out.append("" if fence else re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def check_programs(md_path, rel, text, root, shown, errors):
    lines = text.split("\n")
    for start, info, body in fenced_blocks(lines):
        if info not in ("cpp", "c++", "cc"):
            continue
        marker = MARKER.match(lines[start - 1].strip()) if start > 0 else None
        if not marker:
            if re.search(r"\bint\s+main\s*\(", body):
                errors.append("%s:%d: a complete C++ program (it has main) without a "
                              "'<!-- program: docs/programs/NAME.cc -->' marker: put it in "
                              "docs/programs/ and mark the block" % (rel, start + 1))
            continue
        program = marker.group(1)
        shown.add(program)
        path = os.path.join(root, program)
        if not os.path.isfile(path):
            errors.append("%s:%d: the marker names %s, which does not exist" % (rel, start + 1, program))
            continue
        with open(path, encoding="utf-8") as f:
            wanted = f.read()
        if body != wanted:
            got, want = body.split("\n"), wanted.split("\n")
            line = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            errors.append("%s:%d: the block differs from %s from its line %d (block: %r, file: %r)" %
                          (rel, start + 1, program, line + 1,
                           got[line] if line < len(got) else "<end>",
                           want[line] if line < len(want) else "<end>"))


def check_links(md_path, rel, text, root, slugs_of, errors):
    base = os.path.dirname(md_path)
    for n, line in enumerate(outside_code(text).split("\n"), 1):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, fragment = target.partition("#")
            resolved = os.path.normpath(os.path.join(base, path)) if path else md_path
            if not os.path.realpath(resolved).startswith(os.path.realpath(root) + os.sep):
                errors.append("%s:%d: link %s leaves the repository" % (rel, n, target))
                continue
            if not os.path.exists(resolved):
                errors.append("%s:%d: link %s: %s does not exist" % (rel, n, target, os.path.relpath(resolved, root)))
                continue
            if fragment and resolved.endswith(".md"):
                if resolved not in slugs_of:
                    with open(resolved, encoding="utf-8") as f:
                        slugs_of[resolved] = heading_slugs(f.read())
                if fragment not in slugs_of[resolved]:
                    errors.append("%s:%d: link %s: no heading with anchor #%s in %s" %
                                  (rel, n, target, fragment, os.path.relpath(resolved, root)))


def main(argv):
    if len(argv) < 2 or os.path.basename(argv[1]) != "README.md":
        print("usage: check_docs.py README.md [docs/*.md ...]", file=sys.stderr)
        return 2
    root = os.path.dirname(os.path.realpath(argv[1]))  # the source tree, through the runfile link
    files = [os.path.join(root, os.path.relpath(os.path.realpath(p), root)) for p in argv[1:]]
    errors, shown, slugs_of = [], set(), {}
    for md in files:
        rel = os.path.relpath(md, root)
        with open(md, encoding="utf-8") as f:
            text = f.read()
        check_programs(md, rel, text, root, shown, errors)
        check_links(md, rel, text, root, slugs_of, errors)
    programs_dir = os.path.join(root, "docs", "programs")
    for name in sorted(os.listdir(programs_dir)):
        program = "docs/programs/" + name
        if name.endswith(".cc") and program not in shown:
            errors.append("%s is shown in no README or docs page (mark a block with "
                          "'<!-- program: %s -->')" % (program, program))
    for e in errors:
        print(e, file=sys.stderr)
    print("%d markdown files, %d programs shown, %d problems" % (len(files), len(shown), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
