"""Count the plugin's lines per package as code / docstring / comment / blank.

    python scripts/line_counts.py [plugin/kedro_mlflow_starter]
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path


def classify(source: str) -> Counter:
    lines = source.splitlines()
    docstring_lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    kinds: Counter = Counter()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if number in docstring_lines:
            kinds["docstring"] += 1
        elif not stripped:
            kinds["blank"] += 1
        elif stripped.startswith("#"):
            kinds["comment"] += 1
        else:
            kinds["code"] += 1
    return kinds


def main(root: Path) -> None:
    per_package: dict[str, Counter] = {}
    for path in sorted(root.rglob("*.py")):
        package = path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 1 else "(top)"
        per_package.setdefault(package, Counter()).update(classify(path.read_text()))
    total: Counter = Counter()
    print(f"{'package':<12}{'code':>7}{'docstring':>11}{'comment':>9}{'blank':>7}{'total':>7}")
    for package, kinds in sorted(per_package.items()):
        total.update(kinds)
        print(f"{package:<12}{kinds['code']:>7}{kinds['docstring']:>11}{kinds['comment']:>9}{kinds['blank']:>7}"
              f"{sum(kinds.values()):>7}")
    print(f"{'all':<12}{total['code']:>7}{total['docstring']:>11}{total['comment']:>9}{total['blank']:>7}"
          f"{sum(total.values()):>7}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "plugin" / "kedro_mlflow_starter"))
