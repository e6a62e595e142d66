"""Copies generated results tables into the docs: every block of a markdown file between
  <!-- results: PATH -->
  <!-- end results -->
is replaced by the file PATH (from the repository root; its "# " title line dropped). Run by
benchmarks/regenerate.sh after the benchmarks write benchmarks/results/.

  python3 benchmarks/splice_results.py docs/benchmarks.md [more.md ...]
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- results: (\S+) -->\n)(.*?)(<!-- end results -->)", re.S)


def splice(doc_path):
    with open(doc_path) as f:
        text = f.read()

    def body(m):
        path = os.path.join(ROOT, m.group(2))
        if not os.path.exists(path):
            sys.exit("splice_results: %s names %s, which does not exist (run the benchmark first)" % (doc_path, path))
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if not l.startswith("# ")]
        return m.group(1) + "\n".join(lines).strip() + "\n" + m.group(4)

    new, count = BLOCK.subn(body, text)
    if count == 0:
        sys.exit("splice_results: no <!-- results: PATH --> block in %s" % doc_path)
    with open(doc_path, "w") as f:
        f.write(new)
    print("splice_results: %d block(s) of %s regenerated" % (count, doc_path))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        splice(p)
